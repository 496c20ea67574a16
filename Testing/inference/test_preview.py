"""``Denoiser.preview`` and ``denoise --preview-slice``: one slice, in seconds, that is the full run's slice (user
need 9: a preview that predicts the full-volume result, not a run on a crop)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from skimage.io import imread

from meddenoiselib.cli import main
from meddenoiselib.errors import OptionError
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import Volume, VolumeSeries, read_volume, write_volume

from ..conftest import dicom_testdata


@pytest.fixture(scope="module")
def ct_volume(ct_series_dir) -> Volume:
    """The sample chest CT (4 slices, int16 HU, real scanner noise), its central 256x256 pixels (time)."""
    volume = read_volume(ct_series_dir).slab(1, 128, 384).slab(2, 128, 384)
    return volume.with_array(np.ascontiguousarray(volume.array))


@pytest.fixture(scope="module")
def ct_full(ct_volume) -> np.ndarray:
    denoiser = Denoiser("auto")
    out = denoiser.denoise(ct_volume).array
    assert denoiser.last_report.refined == 0.6 and denoiser.last_report.ensemble == 8  # the short-CT tier
    return out


def test_ct_preview_is_the_full_runs_slice(ct_volume, ct_full):
    denoiser = Denoiser("auto")
    before = ct_volume.array.copy()
    middle = denoiser.preview(ct_volume, 1)
    np.testing.assert_array_equal(ct_volume.array, before)  # the input is not modified
    assert middle.shape == (1, 256, 256) and middle.array.dtype == np.int16
    # slice 1's network and refinement read slices 0-3: all of this volume, so the same numbers as the full run
    np.testing.assert_array_equal(middle.array[0], ct_full[1])
    assert "CT" in denoiser.last_report.choice and denoiser.last_report.refined == 0.6
    # placed where it lies: 2 mm along z from the volume's origin, the DICOM file of that slice kept
    np.testing.assert_allclose(middle.origin, np.add(ct_volume.origin, (0.0, 0.0, 2.0)))
    assert middle.source.dicom_files == ct_volume.source.dicom_files[1:2]
    # the end slice's refinement measures the noise spectrum on slices 0-2 instead of 0-3: within rounding here
    # (measured: max 1 HU, RMS 0.12 HU on the 512x512 slices; docs/preview.md has longer volumes)
    end = denoiser.preview(ct_volume, 3).array[0].astype(np.float32)
    difference = end - ct_full[3]
    assert np.sqrt(np.mean(difference**2)) < 0.5 and np.abs(difference).max() <= 3
    removed = np.sqrt(np.mean((end - ct_volume.array[3]) ** 2))
    assert removed > 10 * np.sqrt(np.mean(difference**2))  # tens of HU of noise removed, against < 0.5 HU


@pytest.fixture(scope="module")
def mr_volume(mr_nifti) -> Volume:
    return read_volume(mr_nifti)


def test_mr_preview_takes_the_whole_volumes_scaling_and_floor(mr_volume):
    """The burst model, its refinement and the floor's removal (read from the whole volume's air) on a preview's
    slice as in the full run. The correction allows for what the model left in air, measured in the slice's own air;
    a 58 x 58 slice of this 4 x 4 x 5 mm head shows none, so a nominal 0.1 sigma is allowed for where the full run
    measured 0.22 on the volume: the preview's air may keep a few grey levels the full run takes to 0."""
    denoiser = Denoiser("auto", modality="mr")
    full = denoiser.denoise(mr_volume).array.astype(np.float32)
    assert "noise floor removed" in denoiser.last_report.choice
    axis = denoiser.slice_axis_for(mr_volume)
    assert mr_volume.shape[axis] == 24  # the 5 mm axis
    for index in (0, 11, 23):
        preview = denoiser.preview(mr_volume, index)
        assert preview.shape[axis] == 1
        difference = preview.array.astype(np.float32) - np.take(full, [index], axis=axis)
        # measured: RMS 2.2-2.6 grey levels (3.4-3.7 with the plain inversion there), the slices' means 48-117
        assert np.sqrt(np.mean(difference**2)) < 3.0
    # what a preview must not be: the same slice denoised from a 5-slice crop, which fits its own intensity scaling
    # and noise floor (measured: up to 30 grey levels apart, RMS 2.7 against a mean step of 44 between voxels)
    crop = mr_volume.slab(axis, 9, 14)
    from_crop = np.take(denoiser.denoise(crop).array, [2], axis=axis).astype(np.float32)
    assert np.abs(from_crop - np.take(full, [11], axis=axis)).max() > 5


def test_cli_preview_of_a_4d_series_frame(tmp_path, mr_nifti):
    import nibabel as nib

    image = nib.load(mr_nifti)
    rng = np.random.default_rng(1)
    base = np.asarray(image.dataobj, dtype=np.float32)[..., 8:14]
    data = np.stack([base + rng.normal(0, 30, base.shape) for _ in range(3)], axis=-1).astype(np.float32)
    source = tmp_path / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(data, image.affine), source)
    whole, out = tmp_path / "whole.nii.gz", tmp_path / "slice.nii.gz"
    options = ["--model", "kpn-burst3", "-q"]
    assert main(["denoise", str(source), str(whole), *options]) == 0
    assert main(["denoise", str(source), str(out), *options, "--preview-slice", "3", "--preview-frame", "2"]) == 0
    written = read_volume(out)
    expected = np.asarray(nib.load(whole).dataobj)[..., 3, 2]  # NIfTI (x, y, z, t): slice 3 along z of frame 2
    assert written.shape == (1, *expected.T.shape)
    np.testing.assert_allclose(written.array[0], expected.T, atol=1e-3)


def test_fine_magnitude_mr_preview_removes_the_floor_as_the_full_run(mr_png):
    """The burst model on fine magnitude MR, its refinement, then the floor's removal, whose correction allows for
    the residual noise in air measured on the output: on a preview's slice, in that slice's own air."""
    clean = imread(mr_png).astype(np.float32)
    stack = np.stack([np.roll(clean, shift, axis=1) for shift in (-2, 0, 2, 4)])
    sigma = 0.03 * np.percentile(clean, 99)  # Rician 3 %
    rng = np.random.default_rng(3)
    noisy = np.hypot(stack + rng.normal(0, sigma, stack.shape), rng.normal(0, sigma, stack.shape))
    volume = Volume(noisy.astype(np.float32))
    denoiser = Denoiser("auto", modality="mr")
    full = denoiser.denoise(volume).array
    assert "noise floor removed" in denoiser.last_report.choice and denoiser.last_report.refined == 1.0
    for index in range(4):
        difference = denoiser.preview(volume, index).array[0] - full[index]
        # measured: RMS 0.02-0.14 against 6.5 removed (1.4 with the full volume's correction, air not allowed for)
        assert np.sqrt(np.mean(difference**2)) < 0.3


def test_preview_with_mask_strength_and_missing_voxels(mr_volume):
    array = mr_volume.array.astype(np.float32)
    array[:, :8, :] = np.nan  # no data along one edge, as a resampled volume has
    volume = mr_volume.with_array(array)
    mask = np.zeros(volume.shape, bool)
    mask[:, 20:40, 20:40] = True
    denoiser = Denoiser("auto", modality="mr", strength=0.5)
    full = denoiser.denoise(volume, mask=mask).array
    axis = denoiser.slice_axis_for(volume)
    preview = denoiser.preview(volume, 7, mask=mask).array
    expected = np.take(full, [7], axis=axis)
    np.testing.assert_array_equal(np.isnan(preview), np.isnan(expected))
    # the refinement of a slab and of the whole volume sum in another order (measured: 1.1e-5 relative at most)
    np.testing.assert_allclose(np.nan_to_num(preview), np.nan_to_num(expected), rtol=1e-4, atol=1e-3)
    outside = ~np.take(mask, [7], axis=axis) & ~np.isnan(expected)
    np.testing.assert_array_equal(preview[outside], np.take(array, [7], axis=axis)[outside])


def test_series_preview_is_the_series_runs_slice(mr_png):
    """A frame of a 4D series, as denoise_series runs it (the series' scaling; a burst model sees the adjacent
    frames), not as the frame alone."""
    clean = imread(mr_png).astype(np.float32)
    stack = np.stack([np.roll(clean, shift, axis=1) for shift in (-2, 0, 2, 4)])
    rng = np.random.default_rng(5)
    frames = np.stack([stack * (1 + 0.1 * t) + rng.normal(0, 8, stack.shape) for t in range(3)]).astype(np.float32)
    series = VolumeSeries(frames)
    for method in ("kpn-burst3", "median"):
        denoiser = Denoiser(method)
        whole = denoiser.denoise(series, sigma=0.03).array
        for frame, index in ((0, 0), (1, 2), (2, 3)):
            preview = denoiser.preview(series, index, sigma=0.03, frame=frame)
            np.testing.assert_array_equal(preview.array[0], whole[frame, index])
            assert denoiser.last_report.preview == f"frame {frame} of 3, slice {index} of 4 along array axis 0"
    # the network's output (the refinement, which each frame of a series gets too since 2026-12-06, narrows it)
    network = Denoiser("kpn-burst3", refine="off")
    alone = network.denoise(series.frame(1)).array[2]
    assert np.sqrt(np.mean((alone - network.denoise(series).array[1, 2]) ** 2)) > 1.0
    with pytest.raises(OptionError, match="frame 3 is outside the series: it has 3 frames, 0 to 2"):
        Denoiser("median").preview(series, 0, frame=3)
    with pytest.raises(OptionError, match="`frame` is for a 4D series"):
        Denoiser("median").preview(series.frame(0), 0, frame=0)


def test_preview_refuses_a_slice_outside_the_volume(mr_volume):
    with pytest.raises(OptionError, match="has 24 slices along array axis 0 \\(the slice axis\\), 0 to 23"):
        Denoiser("median").preview(mr_volume, 24)
    with pytest.raises(OptionError, match="has 1 slice along array axis 0 \\(the slice axis\\), only 0$"):
        Denoiser("median").preview(Volume(np.zeros((1, 8, 8), np.float32)), 1)


def test_cli_preview_slice_writes_the_full_runs_slice(tmp_path, ct_volume, ct_full, capsys):
    source = tmp_path / "ct.nrrd"
    write_volume(ct_volume, source)
    out, residual, report = tmp_path / "slice.nrrd", tmp_path / "residual.nrrd", tmp_path / "report.json"
    args = [str(source), str(out), "--preview-slice", "1", "--residual", str(residual), "--report", str(report)]
    assert main(["denoise", *args]) == 0
    written = read_volume(out)
    assert written.shape == (1, 256, 256) and written.array.dtype == np.int16
    np.testing.assert_array_equal(written.array[0], ct_full[1])
    np.testing.assert_allclose(written.origin, np.add(ct_volume.origin, (0.0, 0.0, 2.0)), atol=1e-4)
    removed = read_volume(residual).array[0]
    np.testing.assert_allclose(removed, ct_volume.array[1].astype(np.float32) - ct_full[1])
    values = json.loads(report.read_text())
    assert values["noise_before_hu"] > 2 * values["noise_after_hu"]
    assert values["preview"] == "slice 1 of 4 along array axis 0" and values["shape_zyx"] == [1, 256, 256]
    # a slice outside the volume, a folder: one line each, nothing written
    assert main(["denoise", str(source), str(tmp_path / "no.nrrd"), "--preview-slice", "4"]) != 0
    assert "--preview-slice 4: " in (err := capsys.readouterr().err) and "has 4 slices along array axis 0" in err
    assert main(["denoise", str(tmp_path), str(tmp_path / "folder"), "--preview-slice", "0"]) != 0
    assert "previews one volume" in capsys.readouterr().err
    nowhere = ["denoise", str(source), str(tmp_path / "no.nrrd")]
    assert main([*nowhere, "--preview-slice", "0", "--preview-frame", "0"]) != 0
    assert "is one volume, not a 4D series" in capsys.readouterr().err
    assert main([*nowhere, "--preview-frame", "0"]) != 0
    assert "give --preview-slice too" in capsys.readouterr().err
    assert not (tmp_path / "no.nrrd").exists() and not (tmp_path / "folder").exists()


def test_cli_preview_of_dicom_writes_dicom_where_a_slice_is_a_file(tmp_path, ct_series_dir, capsys):
    """A DICOM series' or single file's slice is written as DICOM (that slice's file as the template); a frame of a
    multi-frame file is not (its header describes every frame): one line naming the formats to use instead."""
    out = tmp_path / "slice"
    assert main(["denoise", str(ct_series_dir), str(out), "--preview-slice", "2", "--model", "median", "-q"]) == 0
    (written,) = out.iterdir()
    assert read_volume(out).shape == (1, 512, 512) and written.name == "00-slice099.dcm"
    frames = dicom_testdata("emri_small.dcm")  # enhanced MR, 10 frames in one file
    assert main(["denoise", str(frames), str(tmp_path / "frame"), "--preview-slice", "3", "-q"]) == 1
    assert "not written as DICOM; name a .nii.gz, .nrrd or .mha output" in capsys.readouterr().err
    assert main(["denoise", str(frames), str(tmp_path / "frame.nrrd"), "--preview-slice", "3", "-q"]) == 0
    assert read_volume(tmp_path / "frame.nrrd").shape == (1, 64, 64)
