"""A DICOM CT series whose slices are unevenly spaced (a head CT with thin slices through the posterior fossa and
thicker ones above, on a tilted gantry, as GE's routine head protocol takes it) named into a NIfTI: refused without
``--split-uneven`` (one affine cannot place its slices), written as one file per evenly spaced part with it, each
part's slices exactly where the DICOM headers put them (nothing resampled) and its voxels the library's denoising
of that part."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest

from meddenoiselib.cli import main
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import probe_volume, read_volume
from meddenoiselib.io.geometry import even_parts
from meddenoiselib.io.uneven import uneven_parts, volume_part

from .tilted_ct import tilted_column, write_tilted_ct

COLUMN = tilted_column(15.0)  # a gantry tilted 15 degrees
#: slice heights (mm along the patient's S axis): five 2.5 mm apart, then four 5 mm apart
HEIGHTS = (0.0, 2.5, 5.0, 7.5, 10.0, 13.0, 18.0, 23.0, 28.0)
NOISE_HU = 25.0


def _clean_hu(ct_crop: np.ndarray) -> np.ndarray:
    """``(9, 128, 128)`` HU: the real chest CT crop, shifted a little from slice to slice."""
    hu = ct_crop.astype(np.float64) * 1400.0 - 1000.0
    return np.stack([np.roll(hu, (k, k // 2), axis=(0, 1)) for k in range(len(HEIGHTS))])


def _write_ct(folder, hu: np.ndarray) -> None:
    """The uneven series of ``hu`` ``(Z, Y, X)``: slice k at ``HEIGHTS[k]``, 2.5 / 5 mm thick, tilted 15 degrees."""
    write_tilted_ct(
        folder, hu, HEIGHTS, 15.0, "1.2.3.4.9", thickness=[2.5 if k < 5 else 5.0 for k in range(len(HEIGHTS))]
    )


@pytest.fixture(scope="module")
def uneven_ct(ct_crop, tmp_path_factory):
    """``(series folder, clean HU, noisy HU)`` of the uneven tilted CT, noise 25 HU."""
    clean = _clean_hu(ct_crop)
    noisy = clean + np.random.default_rng(5).normal(0.0, NOISE_HU, clean.shape)
    folder = tmp_path_factory.mktemp("uneven") / "head_ct"
    _write_ct(folder, noisy)
    return folder, clean, np.rint(noisy)


def test_even_parts_split_a_stack_at_its_step_changes():
    heights = np.array(HEIGHTS)
    assert even_parts(np.c_[0 * heights, 0 * heights, heights]) == [(0, 5), (5, 9)]
    gap = np.array([0.0, 2.0, 4.0, 6.0, 10.0, 12.0, 14.0])  # a slice missing after the fourth
    assert even_parts(np.c_[0 * gap, gap * 0.5, gap]) == [(0, 4), (4, 7)]
    even = np.arange(6) * 1.25
    assert even_parts(np.c_[0 * even, 0 * even, even]) == [(0, 6)]


def test_a_nifti_of_an_uneven_series_is_refused_with_what_the_flag_would_write(uneven_ct, tmp_path, capsys):
    folder, _, _ = uneven_ct
    assert main(["denoise", str(folder), str(tmp_path / "ct.nii.gz"), "--quiet"]) == 1
    error = capsys.readouterr().err
    assert "not evenly spaced" in error and "--split-uneven" in error
    assert "2 evenly spaced parts (5 slices 2.5 mm apart, 4 slices 5 mm apart)" in error
    assert "ct_part1.nii.gz ... ct_part2.nii.gz" in error
    assert list(tmp_path.iterdir()) == []


def test_split_uneven_writes_each_part_where_its_slices_lie(uneven_ct, tmp_path):
    folder, clean, noisy = uneven_ct
    out = tmp_path / "ct.nii.gz"
    code = main(["denoise", str(folder), str(out), "--split-uneven", "--residual", str(tmp_path / "res.nii.gz")])
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ct_part1.json",
        "ct_part1.nii.gz",
        "ct_part2.json",
        "ct_part2.nii.gz",
        "res_part1.nii.gz",
        "res_part2.nii.gz",
    ]
    header = probe_volume(folder)
    parts = uneven_parts(header)
    assert [(p.start, p.stop, round(p.step, 6)) for p in parts] == [(0, 5, 2.5), (5, 9, 5.0)]
    whole = read_volume(folder)
    # the whole series denoised as one (as its DICOM output is: slice by slice, no grid along the slices)
    as_one = Denoiser().denoise(whole).array
    ras = np.diag([-1.0, -1.0, 1.0])
    for part in parts:
        written = nib.load(str(tmp_path / f"ct_part{part.number}.nii.gz"))
        assert written.shape == (128, 128, part.slices) and written.get_data_dtype() == whole.array.dtype
        # every slice's first pixel where its DICOM header put it, the rows along the tilted column direction
        for k in range(part.slices):
            position = np.array([-45.0, -40.0, 100.0 + HEIGHTS[part.start + k]])
            np.testing.assert_allclose(written.affine @ [0, 0, k, 1], [*(ras @ position), 1.0], atol=1e-4)
        np.testing.assert_allclose(written.affine[:3, 1], ras @ COLUMN * 0.7, atol=1e-6)
        # the voxels are the library's denoising of that part, as close to the clean slices as the whole series
        # denoised as one (the reference's own texture and noise, ~40 HU, bound both)
        expected = Denoiser().denoise(volume_part(whole, header, part)).array  # (Z, Y, X) HU
        denoised = np.asarray(written.dataobj).transpose(2, 1, 0)
        np.testing.assert_array_equal(denoised, expected)
        span = slice(part.start, part.stop)
        before = np.sqrt(np.mean((noisy[span] - clean[span]) ** 2))
        after = np.sqrt(np.mean((denoised - clean[span]) ** 2))
        one = np.sqrt(np.mean((as_one[span] - clean[span]) ** 2))
        assert after < 0.85 * before and after < 1.05 * one, (part, before, after, one)
        residual = nib.load(str(tmp_path / f"res_part{part.number}.nii.gz"))
        np.testing.assert_allclose(residual.affine, written.affine)
        np.testing.assert_allclose(np.asarray(residual.dataobj).transpose(2, 1, 0), noisy[span] - denoised, atol=1e-3)
        assert json.loads((tmp_path / f"ct_part{part.number}.json").read_text())["Modality"] == "CT"


def test_split_uneven_refuses_label_maps_of_the_whole_series(uneven_ct, tmp_path, capsys):
    folder, _, _ = uneven_ct
    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((128, 128, 9), np.uint8), np.eye(4)), str(mask))
    code = main(["denoise", str(folder), str(tmp_path / "ct.nii.gz"), "--split-uneven", "--mask", str(mask)])
    assert code != 0
    assert "--mask label the whole series' grid" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.nii.gz"]


def test_a_dicom_output_of_an_uneven_series_is_one_series_as_before(uneven_ct, tmp_path):
    folder, _, _ = uneven_ct
    assert main(["denoise", str(folder), str(tmp_path / "out"), "--split-uneven", "--model", "median"]) == 0
    for file in sorted(folder.iterdir()):
        written = pydicom.dcmread(tmp_path / "out" / file.name)
        assert list(written.ImagePositionPatient) == list(pydicom.dcmread(file).ImagePositionPatient)


def test_info_lists_the_evenly_spaced_parts(uneven_ct, capsys):
    folder, _, _ = uneven_ct
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "slices 0-4 2.5 mm apart, slices 5-8 5 mm apart (denoise --split-uneven" in out


def test_a_tilted_nifti_warns_that_itk_tools_read_its_qform(uneven_ct, tmp_path, capsys):
    """The sform holds a tilted gantry's shear, the qform cannot, and ITK-based tools (3D Slicer) read the qform of
    a sheared NIfTI: the CLI says so; a NRRD keeps the shear for them (SimpleITK places every slice exactly)."""
    import SimpleITK as sitk

    folder, _, _ = uneven_ct
    assert main(["denoise", str(folder), str(tmp_path / "ct.nii.gz"), "--split-uneven", "--model", "median"]) == 0
    error = capsys.readouterr().err
    assert error.count("the slices are sheared (stepping 15 degrees off the image plane's normal") == 2
    assert "ITK-based tools (3D Slicer" in error and "write .nrrd or .mha" in error
    assert main(["denoise", str(folder), str(tmp_path / "ct.nrrd"), "--split-uneven", "--model", "median"]) == 0
    assert "sheared" not in capsys.readouterr().err
    image = sitk.ReadImage(str(tmp_path / "ct_part2.nrrd"))
    for k in range(4):
        expected = [-45.0, -40.0, 100.0 + HEIGHTS[5 + k]]  # LPS, as ITK speaks
        np.testing.assert_allclose(image.TransformIndexToPhysicalPoint((0, 0, k)), expected, atol=1e-4)
    # a NIfTI of an untilted scan: no warning
    assert main(["denoise", str(folder / "00.dcm"), str(tmp_path / "one.nii.gz"), "--model", "median"]) == 0
    assert "sheared" not in capsys.readouterr().err


def test_a_folder_run_counts_an_input_whose_parts_fail_once(uneven_ct, tmp_path, capsys, monkeypatch):
    """In a folder run, an uneven series split into two parts that both fail is one failed input of the count."""
    import shutil

    from meddenoiselib.errors import MedDenoiseError

    folder, _, _ = uneven_ct
    batch = tmp_path / "in"
    shutil.copytree(folder, batch / "head_ct")

    def refuse(self, *args, **kwargs):
        raise MedDenoiseError("refused for the test")

    monkeypatch.setattr(Denoiser, "denoise", refuse)
    code = main(["denoise", str(batch), str(tmp_path / "out"), "--format", "nifti", "--split-uneven", "-q"])
    assert code != 0
    error = capsys.readouterr().err
    assert error.count("refused for the test") == 2
    assert "denoised 0 of 1 inputs" in error and "; 1 failed" in error
