"""A CT series taken on a tilted gantry (slices stepping along the table, so the grid is sheared): ``io.tilt``
resamples it onto the orthogonal grid of its image planes, and ``denoise --correct-tilt`` writes that grid, which
ITK-based readers (SimpleITK here, as 3D Slicer) place where the DICOM headers put every slice, where they misplace
the exact, sheared NIfTI by many millimetres."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from meddenoiselib.cli import main
from meddenoiselib.io import Volume, VolumeSeries, read_volume
from meddenoiselib.io.tilt import correct_tilt, gantry_tilt_degrees, orthogonal_grid

from .tilted_ct import PIXEL_MM, ROW, tilted_column, write_tilted_ct

STEP_MM = 2.5  # along the table (the patient's S axis)


def _write_tilted_ct(folder, hu: np.ndarray, tilt_degrees: float) -> None:
    """A series of ``hu`` ``(Z, Y, X)``, slices 2.5 mm apart along the table, the gantry tilted ``tilt_degrees``."""
    write_tilted_ct(folder, hu, STEP_MM * np.arange(hu.shape[0]), tilt_degrees, "1.2.3.4.7")


@pytest.fixture(scope="module")
def tilted_ct(ct_crop, tmp_path_factory):
    """A 12-slice series of the real chest CT crop (HU, shifted a little from slice to slice), tilted 20 degrees."""
    hu = ct_crop.astype(np.float64) * 1400.0 - 1000.0
    stack = np.stack([np.roll(hu, (k, k // 2), axis=(0, 1)) for k in range(12)])
    folder = tmp_path_factory.mktemp("tilted") / "head_ct"
    _write_tilted_ct(folder, stack, 20.0)
    return folder


def _itk_values_at(image: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Bilinear (trilinear) values of ``image`` at LPS ``points`` ``(N, 3)``, where SimpleITK places its voxels."""
    index = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(map(float, p))) for p in points])
    voxels = sitk.GetArrayFromImage(image).astype(np.float64)  # (z, y, x)
    return ndimage.map_coordinates(voxels, index[:, ::-1].T, order=1, mode="nearest")


def test_a_whole_pixel_shift_per_slice_moves_each_slice_exactly(ct_crop):
    """A tilt whose in-plane shift is exactly one row per slice: every slice lands on the orthogonal grid without
    interpolation, its planes where they were (the slice spacing is their distance apart), nothing cut."""
    tilt = math.degrees(math.asin(PIXEL_MM / STEP_MM))  # 16.26 degrees: the step's in-plane part is one pixel
    column = tilted_column(tilt)
    step = np.array([0.0, 0.0, STEP_MM])
    slices = np.stack([np.rint(ct_crop * 1400 - 1000).astype(np.int16) + k for k in range(6)])
    direction = np.stack([ROW, column, step / STEP_MM], axis=1)
    volume = Volume(slices, (PIXEL_MM, PIXEL_MM, STEP_MM), (-45.0, -40.0, 100.0), direction)
    assert gantry_tilt_degrees(direction) == pytest.approx(tilt)
    corrected = correct_tilt(volume)
    assert corrected.shape == (6, 128 + 5, 128) and corrected.array.dtype == np.int16
    assert corrected.spacing[2] == pytest.approx(STEP_MM * math.cos(math.radians(tilt)))
    np.testing.assert_allclose(corrected.direction.T @ corrected.direction, np.eye(3), atol=1e-12)
    for k in range(6):
        # slice k moved down its columns by k rows (the column direction tilts away from S), exactly
        rows = slice(5 - k, 5 - k + 128) if column @ step < 0 else slice(k, k + 128)
        np.testing.assert_array_equal(corrected.array[k, rows], slices[k])
        uncovered = np.ones(133, bool)
        uncovered[rows] = False
        assert np.all(corrected.array[k, uncovered] == slices.min())
        # the same physical place for the slice's first pixel
        first = np.array([0, rows.start, k, 1.0])
        np.testing.assert_allclose((corrected.ijk_to_lps() @ first)[:3], (volume.ijk_to_lps() @ [0, 0, k, 1])[:3])
    # frames of a tilted series (a head CT perfusion): each frame as the volume, on the same grid
    series = VolumeSeries(np.stack([slices, slices - 7]), volume.spacing, volume.origin, volume.direction)
    frames = correct_tilt(series, fill=-2000)
    assert frames.array.shape == (2, *corrected.shape) and frames.spacing == corrected.spacing
    covered = frames.array[0] != -2000  # the fill marks what the slices do not reach
    np.testing.assert_array_equal(frames.array[0][covered], corrected.array[covered])
    np.testing.assert_array_equal(frames.array[1][covered], corrected.array[covered] - 7)
    assert np.count_nonzero(~covered) == 6 * 5 * 128 and np.all(frames.array[1][~covered] == -2000)


def test_an_orthogonal_grid_is_left_alone(ct_crop):
    volume = Volume(ct_crop[None].repeat(3, axis=0), (0.7, 0.7, 2.0), (1.0, 2.0, 3.0))
    assert orthogonal_grid(volume.shape, volume.spacing, volume.origin, volume.direction) is None
    assert correct_tilt(volume) is volume


def test_correct_tilt_puts_an_itk_reader_where_the_dicom_headers_put_each_voxel(tilted_ct, tmp_path, capsys):
    """Through the CLI: the exact sheared grid as NRRD (which SimpleITK places right), the NIfTI without the flag
    (which SimpleITK misplaces), and the NIfTI with ``--correct-tilt``, all read back with SimpleITK and sampled at
    the physical points of the series' own voxels."""
    args = ["--model", "median", "--residual"]
    assert main(["denoise", str(tilted_ct), str(tmp_path / "exact.nrrd"), *args, str(tmp_path / "r.nrrd")]) == 0
    assert main(["denoise", str(tilted_ct), str(tmp_path / "plain.nii.gz"), "--model", "median"]) == 0
    assert "ITK-based tools" in capsys.readouterr().err
    corrected_path = tmp_path / "corrected.nii.gz"
    code = main(
        ["denoise", str(tilted_ct), str(corrected_path), "--correct-tilt", *args, str(tmp_path / "rc.nii.gz")]
        + ["--report", str(tmp_path / "report.json")]
    )
    assert code == 0
    assert json.loads((tmp_path / "report.json").read_text())["gantry_tilt_corrected_degrees"] == 20.0
    captured = capsys.readouterr()
    assert "sheared" not in captured.err
    assert "corrected a gantry tilt of 20 degrees: resampled onto an orthogonal grid of 12x" in captured.err

    exact = sitk.ReadImage(str(tmp_path / "exact.nrrd"))
    volume = read_volume(tilted_ct)
    rng = np.random.default_rng(3)
    index = np.c_[rng.integers(8, 120, 400), rng.integers(8, 120, 400), rng.integers(0, 12, 400)]  # (i, j, k)
    points = (volume.ijk_to_lps() @ np.c_[index, np.ones(400)].T).T[:, :3]
    truth = sitk.GetArrayFromImage(exact)[index[:, 2], index[:, 1], index[:, 0]].astype(np.float64)
    np.testing.assert_allclose(_itk_values_at(exact, points), truth, atol=1e-6)  # NRRD holds the shear

    corrected = sitk.ReadImage(str(corrected_path))
    assert corrected.GetSize()[2] == 12 and corrected.GetSize()[1] > 128
    off_corrected = np.abs(_itk_values_at(corrected, points) - truth)
    off_plain = np.abs(_itk_values_at(sitk.ReadImage(str(tmp_path / "plain.nii.gz")), points) - truth)
    # bilinear resampling of a real CT's edges costs about 1 HU at most voxels; the qform's misplacement (up to
    # 13 pixels on the last slice) ten times that
    assert np.median(off_corrected) < 3.0 and np.median(off_plain) > 5 * np.median(off_corrected)
    # the corrected slices lie on their planes: every voxel's point at a whole slice index
    slice_index = np.array([corrected.TransformPhysicalPointToContinuousIndex(tuple(p))[2] for p in points])
    np.testing.assert_allclose(slice_index, np.rint(slice_index), atol=1e-4)
    # the residual on the same grid, zero where the series does not reach
    residual = sitk.ReadImage(str(tmp_path / "rc.nii.gz"))
    assert residual.GetSize() == corrected.GetSize()
    np.testing.assert_allclose(residual.GetOrigin(), corrected.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(residual.GetDirection(), corrected.GetDirection(), atol=1e-6)
    corner = sitk.GetArrayFromImage(residual)[-1]
    assert np.count_nonzero(corner) < corner.size  # the uncovered rows of the last slice are 0


def test_correct_tilt_is_refused_for_a_dicom_output_and_says_so_for_an_untilted_scan(tilted_ct, tmp_path, capsys):
    assert main(["denoise", str(tilted_ct), str(tmp_path / "out"), "--correct-tilt", "--model", "median"]) != 0
    assert "a DICOM output keeps every slice's own position" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    one = tilted_ct / "00.dcm"
    assert main(["denoise", str(one), str(tmp_path / "one.nii.gz"), "--correct-tilt", "--model", "median"]) == 0
    assert "--correct-tilt: no gantry tilt to correct" in capsys.readouterr().err


def test_info_shows_the_tilt(tilted_ct, capsys):
    assert main(["info", str(tilted_ct)]) == 0
    out = capsys.readouterr().out
    assert "gantry_tilt" in out and "20 degrees: a sheared grid" in out and "--correct-tilt" in out
    assert main(["info", str(tilted_ct / "00.dcm")]) == 0
    assert "gantry_tilt" not in capsys.readouterr().out
