"""The bundle's NIfTI writer, in-process: a time series' interval as ``pixdim[4]`` in seconds, the file's dtype, and
the warning for a sheared (tilted-gantry) grid that ITK-based tools would misplace."""

from __future__ import annotations

import logging
import math

import nibabel as nib
import numpy as np
import pytest
import torch

from meddenoiselib.bundle.writers import FRAME_INTERVAL_KEY, SeriesNiftiWriter, TiltCorrectingNiftiWriter, writer_for


def _write(path, array: np.ndarray, affine: np.ndarray, meta: dict, writer_type=SeriesNiftiWriter) -> nib.Nifti1Image:
    writer = writer_type(output_dtype=None)
    writer.set_data_array(torch.from_numpy(array), channel_dim=0)
    writer.set_metadata({"affine": affine, "original_affine": affine, **meta}, resample=False)
    writer.write(str(path))
    return nib.load(str(path))


def test_a_time_series_gets_its_interval_and_keeps_its_dtype(tmp_path):
    frames = np.arange(3 * 4 * 5 * 6, dtype=np.int16).reshape(3, 4, 5, 6)  # (T, I, J, K): channels first
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    written = _write(tmp_path / "bold.nii.gz", frames, affine, {FRAME_INTERVAL_KEY: 2.5})
    assert written.shape == (4, 5, 6, 3) and written.get_data_dtype() == np.int16
    np.testing.assert_allclose(written.header.get_zooms(), (2.0, 2.0, 3.0, 2.5))
    assert written.header.get_xyzt_units() == ("mm", "sec")
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.moveaxis(frames, 0, -1))
    plain = _write(tmp_path / "dwi.nii.gz", frames, affine, {})
    assert plain.header.get_zooms()[3] == 1.0 and plain.header.get_xyzt_units()[1] == "unknown"
    assert writer_for(".nii.gz") is SeriesNiftiWriter and writer_for(".nrrd") is None


def test_a_sheared_grid_warns_that_itk_tools_read_the_qform(tmp_path, caplog):
    volume = np.zeros((1, 8, 8, 6), dtype=np.float32)
    tilt = math.radians(20.0)
    sheared = np.eye(4)
    sheared[1:3, 2] = 2.0 * math.sin(tilt), 2.0 * math.cos(tilt)  # 2 mm slices stepping 20 degrees off the normal
    with caplog.at_level(logging.WARNING, logger="meddenoiselib.bundle.writers"):
        _write(tmp_path / "tilted.nii.gz", volume, sheared, {})
    assert "sheared (stepping 20 degrees off the image plane's normal" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="meddenoiselib.bundle.writers"):
        _write(tmp_path / "straight.nii.gz", volume, np.diag([1.0, 1.0, 2.0, 1.0]), {})
    assert "sheared" not in caplog.text


def test_correct_tilt_writes_the_planes_on_an_orthogonal_grid(tmp_path, caplog):
    """The config's ``correct_tilt``: a sheared grid whose slices step one voxel in-plane each comes out orthogonal,
    every slice moved by whole voxels (so exactly), each voxel where it was, no warning; an orthogonal grid as is."""
    rng = np.random.default_rng(0)
    volume = rng.integers(-1000, 1000, (1, 8, 8, 6)).astype(np.int16)  # (C, I, J, K)
    tilt = math.asin(0.5)  # 30 degrees: a 2 mm step moves 1 mm (one voxel) along J
    sheared = np.eye(4)
    sheared[1:3, 2] = 2.0 * math.sin(tilt), 2.0 * math.cos(tilt)
    assert writer_for(".nii.gz", correct_tilt=True) is TiltCorrectingNiftiWriter
    # as the bundle's command line hands it over
    assert (
        writer_for(".nii.gz", "true") is TiltCorrectingNiftiWriter and writer_for(".nii", "false") is SeriesNiftiWriter
    )
    with pytest.raises(ValueError, match="correct_tilt resamples NIfTI outputs"):
        writer_for(".nrrd", correct_tilt=True)
    with caplog.at_level(logging.WARNING, logger="meddenoiselib.bundle.writers"):
        written = _write(tmp_path / "tilted.nii.gz", volume, sheared, {}, TiltCorrectingNiftiWriter)
    assert "sheared" not in caplog.text
    assert written.shape == (8, 8 + 5, 6) and written.get_data_dtype() == np.int16
    affine = written.affine
    np.testing.assert_allclose(affine[:3, :3].T @ affine[:3, :3], np.diag([1.0, 1.0, 3.0]), atol=1e-9)
    data = np.asarray(written.dataobj)
    for i, j, k in [(0, 0, 0), (3, 7, 5), (7, 2, 3), (5, 5, 1)]:
        position = sheared @ [i, j, k, 1.0]
        index = np.rint(np.linalg.solve(affine, position)[:3]).astype(int)
        np.testing.assert_allclose(affine @ [*index, 1.0], position, atol=1e-9)
        assert data[tuple(index)] == volume[0, i, j, k]
    straight = _write(
        tmp_path / "straight.nii.gz", volume, np.diag([1.0, 1.0, 2.0, 1.0]), {}, TiltCorrectingNiftiWriter
    )
    np.testing.assert_array_equal(np.asarray(straight.dataobj), volume[0])


def test_a_switch_from_the_bundle_s_command_line():
    """``--save_noise_map True`` arrives as a bool, ``--correct_tilt false`` as a string: both read as meant."""
    from meddenoiselib.bundle import flag

    assert flag(True) and not flag(False)
    assert all(flag(text) for text in ("true", "True", " yes", "1", "on"))
    assert not any(flag(text) for text in ("false", "FALSE", "no", "0", "off", ""))
    with pytest.raises(ValueError, match="expected true or false, got 'maybe'"):
        flag("maybe")
