"""``Denoiser.denoise(mask=...)``, 4D series (``VolumeSeries``) and the numpy-only blend helpers."""

from __future__ import annotations

import numpy as np
import pytest

from meddenoiselib import MedDenoiseError
from meddenoiselib.blend import apply_mask, blend, mask_array, residual
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import Volume, VolumeSeries, read_volume

# (strength, dtype): the blend must hit both ends exactly and round integers
BLEND_CASES = [(0.0, np.int16), (1.0, np.int16), (0.3, np.int16), (0.75, np.float32), (0.5, np.uint8)]


def _noisy_mr(mr_nifti, seed=3):
    clean = read_volume(mr_nifti)
    rng = np.random.default_rng(seed)
    noisy = clean.array.astype(np.float64) + rng.normal(0, 40.0, clean.array.shape)
    return clean, clean.with_array(np.clip(np.rint(noisy), -32768, 32767).astype(np.int16))


def _box_mask(volume: Volume) -> Volume:
    inside = np.zeros(volume.shape, np.uint8)
    z, y, x = volume.shape
    inside[z // 4 : 3 * z // 4, y // 4 : 3 * y // 4, x // 3 : 2 * x // 3] = 1
    return volume.with_array(inside)


def test_mask_keeps_outside_voxels_exactly_and_denoises_inside(mr_nifti):
    clean, noisy = _noisy_mr(mr_nifti)
    mask = _box_mask(noisy)
    inside = mask.array.astype(bool)
    denoiser = Denoiser("nlm", device="cpu")
    whole = denoiser.denoise(noisy, sigma=10 / 255)
    masked = denoiser.denoise(noisy, sigma=10 / 255, mask=mask)
    assert masked.array.dtype == np.int16 and masked.same_geometry(noisy)
    np.testing.assert_array_equal(masked.array[~inside], noisy.array[~inside])  # outside: the input, bit for bit
    np.testing.assert_array_equal(masked.array[inside], whole.array[inside])  # inside: the unmasked result
    error = lambda a: float(np.sqrt(np.mean((a[inside].astype(float) - clean.array[inside]) ** 2)))  # noqa: E731
    assert error(masked.array) < error(noisy.array)  # 35.8 vs 39.7: the box holds the head, little background
    # a boolean array works the same (no geometry to check)
    np.testing.assert_array_equal(denoiser.denoise(noisy, sigma=10 / 255, mask=inside).array, masked.array)


def test_mask_on_another_grid_is_refused_with_the_difference(mr_nifti):
    _, noisy = _noisy_mr(mr_nifti)
    mask = _box_mask(noisy)
    denoiser = Denoiser("median", device="cpu")
    shifted = Volume(mask.array, mask.spacing, tuple(np.add(mask.origin, (0.0, 2.5, 0.0))), mask.direction)
    with pytest.raises(MedDenoiseError, match=r"not on the image's voxel grid \(origin differs by 2.5"):
        denoiser.denoise(noisy, mask=shifted)
    with pytest.raises(MedDenoiseError, match=r"shape \(24, 58, 57\) \(z, y, x\) but the image has \(24, 58, 58\)"):
        denoiser.denoise(noisy, mask=Volume(mask.array[..., :57], mask.spacing, mask.origin, mask.direction))
    with pytest.raises(MedDenoiseError, match="no voxel inside"):
        denoiser.denoise(noisy, mask=mask.with_array(np.zeros_like(mask.array)))
    with pytest.raises(MedDenoiseError, match="2 components"):
        denoiser.denoise(noisy, mask=mask.with_array(np.stack([mask.array, mask.array], axis=-1)))


@pytest.mark.parametrize("strength, dtype", BLEND_CASES)
def test_blend_ends_exactly_and_rounds(strength, dtype):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    low, high = (info.min, info.max) if info else (-1000, 1000)
    noisy = rng.integers(max(low, -1000), min(high, 1000), size=(3, 5, 7)).astype(dtype)
    denoised = rng.integers(max(low, -1000), min(high, 1000), size=(3, 5, 7)).astype(dtype)
    out = blend(noisy, denoised, strength)
    assert out.dtype == dtype
    expected = noisy.astype(np.float64) + strength * (denoised.astype(np.float64) - noisy)
    if info:  # rounded to the nearest integer (float32 arithmetic: ties may go either way)
        assert np.abs(out.astype(np.float64) - np.clip(expected, info.min, info.max)).max() <= 0.5 + 1e-3
    else:
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-3)
    if strength in (0.0, 1.0):
        np.testing.assert_array_equal(out, denoised if strength else noisy)
    np.testing.assert_array_equal(residual(noisy, out), noisy.astype(np.float32) - out.astype(np.float32))
    with pytest.raises(MedDenoiseError, match="strength"):
        blend(noisy, denoised, 1.5)


def test_blend_equals_the_denoiser_strength(mr_nifti):
    """Blending afterwards (what the Slicer slider does) = denoising with ``strength`` (up to rounding)."""
    _, noisy = _noisy_mr(mr_nifti)
    full = Denoiser("median", device="cpu").denoise(noisy, sigma=20 / 255)
    for strength in (0.25, 0.6):
        direct = Denoiser("median", device="cpu", strength=strength).denoise(noisy, sigma=20 / 255)
        difference = np.abs(blend(noisy.array, full.array, strength).astype(int) - direct.array.astype(int))
        assert difference.max() <= 1, difference.max()


def test_apply_mask_broadcasts_over_frames_and_components():
    rng = np.random.default_rng(1)
    noisy = rng.integers(0, 255, size=(4, 2, 3, 5, 3)).astype(np.uint8)  # (T, Z, Y, X, C)
    denoised = rng.integers(0, 255, size=noisy.shape).astype(np.uint8)
    inside = np.zeros((2, 3, 5), bool)
    inside[1, 1:, 2:4] = True
    out = apply_mask(noisy, denoised, inside, frame_axes=1)
    np.testing.assert_array_equal(out[:, inside], denoised[:, inside])
    np.testing.assert_array_equal(out[:, ~inside], noisy[:, ~inside])
    assert mask_array(VolumeSeries(noisy), inside.astype(np.uint8)).sum() == inside.sum()


def _series_from_slices(volume: np.ndarray) -> VolumeSeries:
    """Frame t = slice t of ``volume`` (each frame a single-slice 3D image)."""
    return VolumeSeries(
        volume[:, np.newaxis],
        spacing=(0.8, 0.8, 3.0),
        frame_label="time",
        frame_values=tuple(str(t) for t in range(volume.shape[0])),
    )


def test_series_frames_are_denoised_one_by_one(mr_nifti):
    """Median commutes with the series-wide intensity scaling, so each frame's result equals the frame alone."""
    _, noisy = _noisy_mr(mr_nifti)
    frames = np.stack([noisy.array[::2], noisy.array[1::2]]).astype(np.float32)  # (2, 12, 58, 58)
    series = VolumeSeries(frames, noisy.spacing, noisy.origin, noisy.direction, "time", ("0", "2.5"))
    denoiser = Denoiser("median", device="cpu")
    result = denoiser.denoise(series, sigma=20 / 255)
    assert isinstance(result, VolumeSeries) and result.array.shape == frames.shape
    assert result.frame_values == ("0", "2.5") and result.array.dtype == np.float32
    for t in range(2):
        alone = denoiser.denoise(series.frame(t), sigma=20 / 255).array
        np.testing.assert_allclose(result.array[t], alone, rtol=0, atol=1e-3)
    mask = np.zeros(series.shape, bool)
    mask[3:9, 10:40, 5:50] = True
    masked = denoiser.denoise(series, sigma=20 / 255, mask=mask).array
    np.testing.assert_array_equal(masked[:, ~mask], frames[:, ~mask])
    np.testing.assert_array_equal(masked[:, mask], result.array[:, mask])


def test_burst_model_uses_adjacent_frames_as_its_burst(ct_series_dir):
    """A series whose frame t is slice t of a CT gives the burst model exactly the bursts it gets from adjacent
    slices of the volume: the results are the same (the network's; a volume's refinement is not a series frame's)."""
    volume = read_volume(ct_series_dir)
    crop = volume.array[:, 160:288, 160:288].astype(np.float32)
    crop += np.random.default_rng(0).normal(0, 60, crop.shape).astype(np.float32)
    denoiser = Denoiser("kpn-burst3", device="cpu", precision="fp32", slice_axis=0, refine="off")
    assert denoiser.burst == 3
    as_volume = denoiser.denoise(Volume(crop, (0.8, 0.8, 3.0)))
    as_series = denoiser.denoise(_series_from_slices(crop))
    np.testing.assert_allclose(as_series.array[:, 0], as_volume.array, rtol=0, atol=1e-3)
    # and not what it gives when each frame is alone (the burst then repeats the one slice)
    alone = denoiser.denoise(Volume(crop[1:2], (0.8, 0.8, 3.0))).array[0]
    assert np.abs(alone - as_series.array[1, 0]).max() > 1.0


def test_a_diffusion_series_burst_is_each_frames_own_adjacent_slices(mr_nifti):
    """In a diffusion series (frames labelled ``gradient``) a b = 0 frame's neighbours are b = 1000 frames of other
    contrast: the burst model reads each frame's own adjacent slices, so a frame's result is the same wherever its
    gradient lies in the series (scanners interleave b = 0 frames), unlike a time series' frame. On a held-out
    simulated DWI this is 0.1-0.6 dB better than a burst of adjacent gradients (docs/benchmarks_masked_dwi.md)."""
    clean_head = read_volume(mr_nifti)
    head = clean_head.array[6:14].astype(np.float32)
    weights = (0.5, 1.0, 0.45, 0.55)  # b = 1000, b = 0, b = 1000, b = 1000
    rng = np.random.default_rng(4)
    frames = np.stack([head * w + rng.normal(0, 30, head.shape) for w in weights]).astype(np.float32)
    denoiser = Denoiser("kpn-burst3", device="cpu", precision="fp32", refine="off")

    def run(order, label):
        series = VolumeSeries(frames[list(order)], clean_head.spacing, frame_label=label)
        return denoiser.denoise(series, sigma=30 / 255).array

    order, b0_first = (0, 1, 2, 3), (1, 3, 0, 2)
    gradient, reordered = run(order, "gradient"), run(b0_first, "gradient")
    np.testing.assert_allclose(reordered[0], gradient[1], rtol=0, atol=1e-3)
    np.testing.assert_allclose(reordered[2], gradient[0], rtol=0, atol=1e-3)
    time, reordered_time = run(order, "time"), run(b0_first, "time")
    assert np.abs(reordered_time[0] - time[1]).max() > 1.0  # a time series' burst is its neighbouring frames


def test_magnitude_mr_series_floor_removal_allows_for_the_noise_left_in_air(mr_png):
    """``auto`` on a 4D magnitude MR series reads the floor from the first frame; its removal allows for the noise
    the model left in air, measured in the series' own air (the floor's air tiles belong to a frame, not to the
    series: the series fell back to the plain inversion, which turns that residual noise into a positive bias)."""
    from scipy import ndimage
    from skimage.io import imread

    clean = imread(mr_png).astype(np.float32)
    clean = np.where(clean < 12, 0, clean)  # a reference with empty air, so that the bias is the method's
    head = ndimage.binary_dilation(clean > 0, iterations=5)
    shifts = (-2, 0, 2, 4)
    stack = np.stack([np.roll(clean, s, axis=1) for s in shifts])
    air = np.stack([~np.roll(head, s, axis=1) for s in shifts])
    sigma = 0.03 * np.percentile(clean, 99)  # Rician 3 %
    rng = np.random.default_rng(5)
    frames = np.stack(
        [np.hypot(stack + rng.normal(0, sigma, stack.shape), rng.normal(0, sigma, stack.shape)) for _ in range(3)]
    ).astype(np.float32)
    denoiser = Denoiser("auto", modality="mr")
    out = denoiser.denoise(VolumeSeries(frames)).array
    assert "noise floor removed" in denoiser.last_report.choice
    bias = np.mean([(out[t] - stack)[air].mean() for t in range(3)]) / sigma
    # measured: noisy +1.25 sigma; the plain inversion +0.158; allowing for the residual +0.013 (each frame denoised
    # as a volume: +0.015)
    assert abs(bias) < 0.05


def test_each_frame_of_a_magnitude_mr_series_is_refined(mr_png):
    """A 4D magnitude MR series (a DWI, an fMRI run) gets what each of its frames would get alone: the burst model's
    output filtered collaboratively (thresholded pilot, noise capped at the floor's sigma), then the floor removed.
    The test's brain slice (empty air) shifted into 4 slices, 3 frames at 100 / 80 / 60 % of its intensity, Rician
    noise of 3 % of the first frame's 99th percentile: over the head 31.7 dB noisy, 37.8 without the refinement (4D
    series were not refined until 2026-12-06), 40.0 with it."""
    from scipy import ndimage
    from skimage.io import imread

    from meddenoiselib.evaluation import psnr

    clean = imread(mr_png).astype(np.float32)
    clean = np.where(clean < 12, 0, clean)
    stack = np.stack([np.roll(clean, s, axis=1) for s in (-2, 0, 2, 4)])
    truth = np.stack([stack * level for level in (1.0, 0.8, 0.6)])
    sigma = 0.03 * np.percentile(clean, 99)
    rng = np.random.default_rng(5)
    noisy = np.hypot(truth + rng.normal(0, sigma, truth.shape), rng.normal(0, sigma, truth.shape)).astype(np.float32)
    refined = Denoiser("auto", modality="mr")
    out = refined.denoise(VolumeSeries(noisy)).array
    report = refined.last_report
    assert report.method == "kpn-burst3" and report.refined == 1.0
    assert report.refine_detail.startswith("noise level, at most the floor's sigma")
    plain = Denoiser("auto", modality="mr", refine="off").denoise(VolumeSeries(noisy)).array
    head = np.broadcast_to(ndimage.binary_dilation(stack > 0, iterations=2), truth.shape)
    peak = float(truth.max())
    gain = psnr(truth[head], out[head], peak) - psnr(truth[head], plain[head], peak)
    assert gain > 1.5, gain
