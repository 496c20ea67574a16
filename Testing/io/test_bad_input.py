"""Bad input raises MedDenoiseError naming the file and the problem, and never modifies the input."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest

from meddenoiselib import MedDenoiseError
from meddenoiselib.io import Volume, read_volume, write_volume

from ..conftest import digest_tree


def _nifti(path, data):
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def _case_missing(tmp_path):
    return tmp_path / "nope.nii.gz", "no such file"


def _case_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image\n")
    return path, "unsupported file type"


def _case_fake_nifti(tmp_path):
    path = tmp_path / "fake.nii.gz"
    path.write_bytes(b"\x00" * 100)
    return path, "cannot read as NIfTI"


def _case_corrupt_dicom(tmp_path):
    path = tmp_path / "bad.dcm"
    path.write_bytes(b"DICM" * 64)
    return path, "holds no image"


def _case_truncated_dicom(tmp_path, ct_series_dir):
    data = (ct_series_dir / "00-slice099.dcm").read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(data[: len(data) // 2])
    return path, "truncated.dcm"


def _case_truncated_dicom_in_series(tmp_path, ct_series_dir):
    folder = tmp_path / "series"
    shutil.copytree(ct_series_dir, folder)
    victim = folder / "00-slice100.dcm"
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[:200_000])
    return folder, "series"


def _case_broken_link_in_series(tmp_path, ct_series_dir):
    """A series folder assembled from links, one of whose targets has gone: GDCM's scan then finds no series (the
    link sorts first here), and the folder was read as separate DICOM slices."""
    folder = tmp_path / "linked-series"
    folder.mkdir()
    for source in sorted(ct_series_dir.glob("*.dcm")):
        (folder / source.name).symlink_to(source)
    (folder / "00-slice000.dcm").symlink_to(tmp_path / "moved" / "00-slice000.dcm")
    return folder, "00-slice000.dcm: a link to"


def _case_empty_folder(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "readme.txt").write_text("x")
    return folder, "no DICOM images"


def _case_zip(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "export.zip", "w") as archive:
        archive.writestr("DICOMDIR", b"")
    return tmp_path / "export.zip", "an archive; extract it and give the folder"


def _case_4d(tmp_path):
    return _nifti(tmp_path / "fmri.nii.gz", np.zeros((4, 5, 6, 3), np.int16)), "4D data"


def _case_infinite(tmp_path):
    data = np.ones((4, 5, 6), np.float32)
    data[1, 2, 3] = np.nan  # no data: denoised around (Testing/inference/test_missing_voxels.py)
    data[0, 0, 0] = -np.inf
    data[0, 0, 1] = np.inf
    return _nifti(tmp_path / "inf.nii.gz", data), "2 infinite voxels"


def _case_all_nan(tmp_path):
    return _nifti(tmp_path / "nan.nii.gz", np.full((4, 5, 6), np.nan, np.float32)), "every voxel is NaN"


def _case_zero_size(tmp_path):
    return _nifti(tmp_path / "empty.nii.gz", np.zeros((4, 0, 6), np.int16)), "zero-size axis"


CASES = [
    _case_missing,
    _case_text_file,
    _case_fake_nifti,
    _case_corrupt_dicom,
    _case_truncated_dicom,
    _case_truncated_dicom_in_series,
    _case_broken_link_in_series,
    _case_empty_folder,
    _case_zip,
    _case_4d,
    _case_infinite,
    _case_all_nan,
    _case_zero_size,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[6:] for c in CASES])
def test_bad_input_raises_library_error_naming_the_file(tmp_path, ct_series_dir, case):
    kwargs = {"ct_series_dir": ct_series_dir} if "ct_series_dir" in case.__code__.co_varnames else {}
    path, fragment = case(tmp_path, **kwargs)
    before = digest_tree(path) if path.exists() else {}
    with pytest.raises(MedDenoiseError) as info:
        read_volume(path)
    message = str(info.value)
    assert str(path.name) in message and fragment in message
    assert "\n" not in message
    assert (digest_tree(path) if path.exists() else {}) == before


def test_existing_output_is_not_overwritten_without_permission(tmp_path):
    volume = Volume(np.zeros((2, 3, 4), np.int16))
    target = write_volume(volume, tmp_path / "out.nrrd")
    before = target.read_bytes()
    with pytest.raises(MedDenoiseError, match="already exists") as info:
        write_volume(volume.with_array(np.ones((2, 3, 4), np.int16)), target)
    assert info.value.parameter == "overwrite"  # the library names the argument; the CLI adds its option
    assert target.read_bytes() == before
    write_volume(volume.with_array(np.ones((2, 3, 4), np.int16)), target, overwrite=True)
    assert read_volume(target).array.max() == 1


def test_output_onto_the_input_is_refused_even_with_overwrite(tmp_path, mr_nifti):
    copy = tmp_path / "mr.nii.gz"
    shutil.copy(mr_nifti, copy)
    volume = read_volume(copy)
    before = copy.read_bytes()
    with pytest.raises(MedDenoiseError, match="overwrite the input"):
        write_volume(volume, copy, overwrite=True)
    assert copy.read_bytes() == before


def test_failed_write_leaves_no_partial_output(tmp_path):
    volume = Volume(np.zeros((3, 4, 5), np.float32))
    with pytest.raises(MedDenoiseError, match="PNG holds one 2D image"):
        write_volume(volume, tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_dicom_output_needs_dicom_input(tmp_path):
    with pytest.raises(MedDenoiseError, match="DICOM output needs DICOM input"):
        write_volume(Volume(np.zeros((2, 3, 4), np.int16)), tmp_path / "series.dcm")
