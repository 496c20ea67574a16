"""``denoise VOLUME OUT --dicom-like SERIES``: a NIfTI converted from a DICOM series (axes reordered as converters
do) denoised and written back as a derived series of the original study, voxel for voxel what denoising the series
itself writes; a volume that no longer matches the series (cropped, moved, rescaled) is refused by name.

Real data: the bundled 4-slice chest CT series (uint16 stored, intercept -1024).
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from meddenoiselib.cli import main
from meddenoiselib.errors import InputError
from meddenoiselib.io import read_volume, write_volume
from meddenoiselib.io.dicom_like import on_dicom_grid
from meddenoiselib.io.volume import Volume

MEDIAN = ["--model", "median", "-q"]


def _converted(ct_series_dir: Path, path: Path, flip_y: bool = True, reverse_z: bool = True, scale: float = 1.0):
    """The series as a converter writes it: NIfTI with the rows flipped and the slices reversed (the affine
    says so), values in HU times ``scale``."""
    series = read_volume(ct_series_dir)
    write_volume(series, path.with_name("plain.nii.gz"), overwrite=True)
    image = nib.load(path.with_name("plain.nii.gz"))
    data = np.asanyarray(image.dataobj).astype(np.float32) * scale
    affine = image.affine.copy()
    for axis, flip in ((1, flip_y), (2, reverse_z)):
        if flip:
            data = np.flip(data, axis=axis)
            affine[:3, 3] = affine[:3, 3] + affine[:3, axis] * (data.shape[axis] - 1)
            affine[:3, axis] = -affine[:3, axis]
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), path)
    return path


def test_a_converted_volume_goes_back_as_a_derived_series_of_its_study(ct_series_dir, tmp_path):
    nifti = _converted(ct_series_dir, tmp_path / "converted.nii.gz")
    out, direct = tmp_path / "out", tmp_path / "direct"
    report = tmp_path / "report.json"
    args = ["denoise", str(nifti), str(out), "--dicom-like", str(ct_series_dir), "--report", str(report)]
    assert main([*args, *MEDIAN]) == 0
    assert main(["denoise", str(ct_series_dir), str(direct), *MEDIAN]) == 0
    written = read_volume(out)
    np.testing.assert_array_equal(written.array, read_volume(direct).array)
    assert written.spacing == pytest.approx(read_volume(ct_series_dir).spacing)
    # a derived series of the original study, one file per source file
    source = pydicom.dcmread(sorted(ct_series_dir.iterdir())[0])
    derived = [pydicom.dcmread(path) for path in sorted(out.iterdir())]
    assert len(derived) == len(list(ct_series_dir.iterdir()))
    assert {d.StudyInstanceUID for d in derived} == {source.StudyInstanceUID}
    assert {d.SeriesInstanceUID for d in derived} != {source.SeriesInstanceUID}
    assert all("DERIVED" in d.ImageType for d in derived)
    assert json.loads(report.read_text())["modality"] == "ct"  # the series' Modality, which a NIfTI has not


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("crop", "not converted from it, or cropped or resampled"),
        ("scale", "the values are not the series'"),
        ("move", "mm apart"),
    ],
)
def test_a_volume_that_no_longer_matches_its_series_is_refused(ct_series_dir, tmp_path, capsys, change, message):
    nifti = _converted(ct_series_dir, tmp_path / "converted.nii.gz", scale=1e-3 if change == "scale" else 1.0)
    image = nib.load(nifti)
    if change == "crop":
        nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj)[:, :500], image.affine), nifti)
    if change == "move":
        moved = image.affine.copy()
        moved[0, 3] += 5.0
        nib.save(nib.Nifti1Image(np.asanyarray(image.dataobj), moved), nifti)
    out = tmp_path / "out"
    assert main(["denoise", str(nifti), str(out), "--dicom-like", str(ct_series_dir), *MEDIAN]) == 1
    error = capsys.readouterr().err
    assert message in error and str(nifti) in error
    assert not out.exists()


def test_dicom_or_a_folder_of_inputs_is_a_usage_error(ct_series_dir, tmp_path, capsys):
    assert main(["denoise", str(ct_series_dir), str(tmp_path / "o"), "--dicom-like", str(ct_series_dir), *MEDIAN]) == 2
    assert "--dicom-like" in capsys.readouterr().err
    single = tmp_path / "slice.nii.gz"
    write_volume(read_volume(ct_series_dir), single)
    assert main(["denoise", str(single), str(tmp_path / "o"), "--dicom-like", str(single), *MEDIAN]) == 2
    assert "names the DICOM series" in capsys.readouterr().err


def test_swapped_axes_are_matched_by_their_directions(ct_series_dir):
    """Rows and columns swapped (a transposed array whose direction says so) land on the series' grid exactly."""
    series = read_volume(ct_series_dir)
    swapped = Volume(
        np.ascontiguousarray(series.array.transpose(0, 2, 1)),
        spacing=(series.spacing[1], series.spacing[0], series.spacing[2]),
        origin=series.origin,
        direction=series.direction[:, [1, 0, 2]],
    )
    np.testing.assert_array_equal(on_dicom_grid(swapped, series).array, series.array)
    tilted = Volume(series.array, series.spacing, series.origin, series.direction @ _rotation_z(10.0))
    with pytest.raises(InputError, match="not the same up to the order and sense"):
        on_dicom_grid(tilted, series)


def _rotation_z(degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    return np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
