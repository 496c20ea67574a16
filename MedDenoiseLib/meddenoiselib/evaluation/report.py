"""A reference-free quality report for one denoising run: what a user without a clean image can check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from ..blend import residual
from ..io.provenance import resampling_sign
from ..io.series import VolumeSeries
from ..io.volume import Volume
from ..transforms.estimate import (
    estimate_sigma,
    estimate_sigma_before_after,
    flat_tissue_noise,
    sampled_slice_indices,
)
from ..transforms.noise.apply import BODY_THRESHOLD_HU

__all__ = [
    "ct_body_noise",
    "ct_body_noise_estimate",
    "denoising_report",
    "image_noise_sd",
    "residual_volume",
    "run_report",
]


def residual_volume(noisy: Volume, denoised: Volume) -> Volume:
    """``noisy − denoised`` in the input's physical units (float32), with the input's geometry.

    What was removed: white noise looks structureless; visible anatomy means the denoiser took signal too.
    """
    return noisy.with_array(residual(noisy.array, denoised.array))


# slices per chunk of the statistics: float32/float64 working copies of 16 slices, never of the whole volume
_CHUNK_SLICES = 16


def _scalar(volume: Volume, slices: slice | np.ndarray) -> np.ndarray:
    """The scalar image (components averaged) of the chosen slices, float32 ``(z, Y, X)``."""
    part = volume.array[slices]
    return (part.mean(axis=-1) if volume.num_components > 1 else part).astype(np.float32)


def _scalar_chunks(volume: Volume) -> Iterator[np.ndarray]:
    """:func:`_scalar` of ``_CHUNK_SLICES`` slices at a time."""
    for start in range(0, volume.array.shape[0], _CHUNK_SLICES):
        yield _scalar(volume, slice(start, start + _CHUNK_SLICES))


def _neighbour_pairs(values: np.ndarray, axis: int, missing: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every voxel and its next neighbour along in-plane ``axis`` (-1: x, -2: y); with ``missing`` (``values`` may
    hold NaN, no data) only the pairs where both have data, as flat arrays."""
    a = np.moveaxis(values, axis, 0)
    x, y = a[:-1], a[1:]
    if not missing:
        return x, y
    both = ~(np.isnan(x) | np.isnan(y))
    return x[both], y[both]


def _with_data(values: np.ndarray, missing: bool) -> np.ndarray:
    """``values`` without NaN (no data) when ``missing``, else ``values`` itself (no copy)."""
    return values[~np.isnan(values)] if missing else values


def _residual_statistics(noisy: Volume, denoised: Volume) -> tuple[list[float], list[float], float, float, float]:
    """Value ranges of both images, and mean, standard deviation and lag-one correlation of ``noisy − denoised``:
    two passes over slice chunks with float64 sums (a 300-slice CT needs no whole-volume float copy). Voxels without
    data (NaN, kept NaN by the denoiser) are left out.

    The correlation is the mean over x and y of the correlation of the residual with its next neighbour: about
    0 for white noise, positive where the method removed structure or correlated noise.

    Returns:
        ``([min, max] before, [min, max] after, mean, std, correlation)``.
    """

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return zip(_scalar_chunks(noisy), _scalar_chunks(denoised), strict=True)

    def residuals() -> Iterator[np.ndarray]:
        for before, after in chunks():
            yield (before - after).astype(np.float64)

    _, height, width = noisy.array.shape[:3]
    axes = [axis for axis, size in ((-1, width), (-2, height)) if size > 1]
    # only float images hold NaN (no data): integer ones (CT, most MR), and chunks without NaN, skip the masking
    floats = noisy.array.dtype.kind == "f" or denoised.array.dtype.kind == "f"

    def holes(values: np.ndarray) -> bool:
        return floats and bool(np.isnan(values).any())

    before_range, after_range = [np.inf, -np.inf], [np.inf, -np.inf]
    for before, after in chunks():
        for extremes, values in ((before_range, before), (after_range, after)):
            present = _with_data(values, holes(values))
            if present.size:
                extremes[:] = min(extremes[0], float(present.min())), max(extremes[1], float(present.max()))
    count, total = 0, 0.0
    sums = {axis: np.zeros(3) for axis in axes}  # Σx, Σy, pairs
    for r in residuals():
        missing = holes(r)
        present = _with_data(r, missing)
        count += present.size
        total += float(present.sum())
        for axis in axes:
            x, y = _neighbour_pairs(r, axis, missing)
            sums[axis] += (x.sum(), y.sum(), x.size)
    mean = total / max(count, 1)
    squares = 0.0
    moments = {axis: np.zeros(3) for axis in axes}  # Σ(x−x̄)(y−ȳ), Σ(x−x̄)², Σ(y−ȳ)²
    for r in residuals():
        missing = holes(r)
        squares += float(np.square(_with_data(r, missing) - mean).sum())
        for axis in axes:
            x, y = _neighbour_pairs(r, axis, missing)
            pairs = max(sums[axis][2], 1)
            x = x - sums[axis][0] / pairs
            y = y - sums[axis][1] / pairs
            moments[axis] += ((x * y).sum(), (x * x).sum(), (y * y).sum())
    correlations = []
    for axis in axes:
        cross, xx, yy = moments[axis]
        correlations.append(float(cross / np.sqrt(xx * yy)) if xx * yy > 0 else 0.0)
    correlation = float(np.mean(correlations)) if correlations else 0.0
    return before_range, after_range, mean, float(np.sqrt(squares / max(count, 1))), correlation


def _noise_before_after(noisy: Volume, denoised: Volume, low: float) -> tuple[float, float]:
    """:func:`estimate_sigma_before_after` of the scalar images' sampled slices, in the image's units; voxels
    without data (NaN) read as ``low``, the noisy image's minimum (the wavelet MAD is robust to the few edges this
    makes)."""
    indices = sampled_slice_indices(noisy.array.shape[0])
    before = np.nan_to_num(_scalar(noisy, indices), nan=low)
    after = np.nan_to_num(_scalar(denoised, indices), nan=low)
    return estimate_sigma_before_after(before, after)


def image_noise_sd(volume: Volume) -> float | None:
    """The noise's standard deviation in the image's own units, as a white-noise estimate from its finest detail
    (the wavelet MAD of :func:`estimate_sigma` on up to 16 slices): what ``--noise-sd`` takes. None for a constant
    image. Not for CT (correlated noise: :func:`ct_body_noise_estimate`) or ultrasound (multiplicative speckle)."""
    scalar = _scalar(volume, sampled_slice_indices(volume.array.shape[0]))
    if not np.isfinite(scalar).any():
        return None
    low, high = float(np.nanmin(scalar)), float(np.nanmax(scalar))
    if high <= low:
        return None
    # the estimator is linear in the values: on the slices as read, in their units
    return estimate_sigma(np.nan_to_num(scalar, nan=low))


#: slices of a CT volume on which the report measures the noise in flat body tissue
_NOISE_SLICES = 16
#: what a CT voxel without data (NaN) reads as in the flat-tissue noise: far below the body's threshold
_NO_DATA_HU = -3000.0


def ct_body_noise(noisy: Volume, denoised: Volume) -> dict[str, Any]:
    """The noise in flat body tissue of a CT before and after denoising, in HU (:func:`flat_tissue_noise` on
    ``_NOISE_SLICES`` evenly spaced slices; the body is where the output exceeds -500 HU, so air, the table's
    foam and the scanner's padding outside the reconstruction circle stay out).

    Returns:
        ``{"noise_before_hu", "noise_after_hu", "noise_hu_blocks"}`` (24x24-pixel blocks used), or ``{}`` when
        the slices hold too little flat body tissue (fewer than 8 blocks).
    """
    indices = sampled_slice_indices(noisy.array.shape[0], _NOISE_SLICES)
    before, after = _scalar(noisy, indices), _scalar(denoised, indices)
    # voxels without data (NaN) out of the body, and out of the flattest blocks (a step of thousands of HU)
    before, after = np.nan_to_num(before, nan=_NO_DATA_HU), np.nan_to_num(after, nan=_NO_DATA_HU)
    noise = flat_tissue_noise(before, after, mask=after > BODY_THRESHOLD_HU, max_slices=_NOISE_SLICES)
    if noise is None:
        return {}
    return {
        "noise_before_hu": round(noise.before, 2),
        "noise_after_hu": round(noise.after, 2),
        "noise_hu_blocks": noise.blocks,
    }


#: the Gaussian blur (pixels) that stands in for a denoised image when a CT's noise is measured before denoising
_GUIDE_BLUR_PX = 2.0


def ct_body_noise_estimate(volume: Volume) -> dict[str, Any]:
    """The noise in flat body tissue of a CT before any denoising, in HU: :func:`ct_body_noise`'s measurement with a
    Gaussian blur of each slice standing in for the denoised image (it only picks the flattest blocks and the
    body; the noise is what the scan holds beyond each block's plane), on ``_NOISE_SLICES`` evenly spaced slices.
    ~0.2 s for 16 slices of 512x512. On the chest CT of the data folder 28.2 HU (its denoised report reads ~27);
    with 25 HU of white noise added 37.6 (sqrt(28.2^2 + 25^2) = 37.7).

    Returns:
        ``{"noise_hu", "noise_hu_blocks", "noise_hu_slices"}``, or ``{}`` with too little flat body tissue.
    """
    from scipy import ndimage

    indices = sampled_slice_indices(volume.array.shape[0], _NOISE_SLICES)
    slices = np.nan_to_num(_scalar(volume, indices), nan=_NO_DATA_HU)
    guide = np.stack([ndimage.gaussian_filter(image, _GUIDE_BLUR_PX) for image in slices])
    noise = flat_tissue_noise(slices, guide, mask=guide > BODY_THRESHOLD_HU, max_slices=_NOISE_SLICES)
    if noise is None:
        return {}
    return {"noise_hu": round(noise.before, 1), "noise_hu_blocks": noise.blocks, "noise_hu_slices": len(indices)}


def denoising_report(noisy: Volume, denoised: Volume, method: str, seconds: float, device: str) -> dict[str, Any]:
    """Reference-free numbers for a run: noise estimates before and after, residual statistics, runtime.

    Noise levels are wavelet-MAD estimates, before and after on the same coefficients (where both images hold signal:
    :func:`~meddenoiselib.transforms.estimate.estimate_sigma_before_after`), on the input's min-max range
    reported as a 0-255 scale, so runs on different scans compare, and in the image's
    own units (``noise_sd_before`` / ``_after``: what ``--noise-sd`` takes; for CT the flat-tissue HU of
    :func:`ct_body_noise` are the better measure of its correlated noise). The statistics
    are computed a few slices at a time: the report adds little memory to a run on a large volume.

    Args:
        noisy: the input volume.
        denoised: the output volume.
        method: model or baseline name.
        seconds: denoising wall time.
        device: the device used.
    """
    before_range, after_range, mean, std, correlation = _residual_statistics(noisy, denoised)
    before_sd, after_sd = _noise_before_after(noisy, denoised, before_range[0])
    # the 0-255 scale is the input's min-max range (a constant input: a range of 1)
    units_per_255 = max(before_range[1] - before_range[0], 0.0) / 255.0 or 1.0 / 255.0
    before, after = before_sd / units_per_255, after_sd / units_per_255
    return {
        "method": method,
        "device": device,
        "seconds": round(float(seconds), 3),
        "shape_zyx": list(noisy.shape),
        "dtype": str(noisy.array.dtype),
        "noise_sigma_before_0_255": round(before, 3),
        "noise_sigma_after_0_255": round(after, 3),
        "noise_sd_before": float(f"{before_sd:.4g}"),
        "noise_sd_after": float(f"{after_sd:.4g}"),
        "residual_std": round(std, 4),
        "residual_mean": round(mean, 4),
        "residual_neighbour_correlation": round(correlation, 4),
        "value_range_before": before_range,
        "value_range_after": after_range,
    }


def _frames_as_volume(image: Volume | VolumeSeries) -> Volume:
    """A series' frames stacked along z (the report's statistics are over all frames); a volume as it is."""
    if isinstance(image, Volume):
        return image
    array = image.array.reshape(-1, *image.array.shape[2:])
    return Volume(array, image.spacing, image.origin, image.direction)


def run_report(denoiser, noisy: Volume | VolumeSeries, denoised: Volume | VolumeSeries) -> dict[str, Any]:
    """The quality report of the last :meth:`~meddenoiselib.inference.Denoiser.denoise` call of ``denoiser``.

    What ``denoise --report`` writes and the Slicer module shows: :func:`denoising_report` (over all frames of a
    series), the modality, which model ``auto`` chose and why, the noise level the method used and, for a series,
    the number of frames; for magnitude MR denoised with one level whose floor varies across the image, what varies
    (``noise_floor_varies``), and the noise SD map a run was divided by (``noise_sd_map``); for CT, the noise in flat
    body tissue before and after in HU (:func:`ct_body_noise`), which
    is then also ``noise_sd_before`` / ``_after`` (``noise_sd_measure`` says which measure they are), as for
    magnitude MR the floor's sigma is (the share of the finest detail's noise left scaling it after); why
    the input looks resampled, when its header says so (:func:`~meddenoiselib.io.provenance.resampling_sign`).
    """
    report = denoiser.last_report
    noisy_frames, denoised_frames = _frames_as_volume(noisy), _frames_as_volume(denoised)
    values = denoising_report(
        noisy_frames,
        denoised_frames,
        report.method if report is not None else denoiser.method,
        report.seconds if report is not None else 0.0,
        report.device if report is not None else str(denoiser.device),
    )
    resampled = resampling_sign(noisy)
    if resampled:
        values["input_resampled"] = resampled
    if report is not None:
        values.update(modality=report.modality, model_choice=report.choice or "given explicitly")
        if report.ensemble > 1:
            values["ensemble_views"] = report.ensemble
        if report.refined > 0:
            values["collaborative_wiener_share"] = report.refined
            values["collaborative_wiener"] = report.refine_detail
        if report.stabilized:
            values["variance_stabilization"] = report.stabilized
        if report.missing_voxels:
            values["voxels_without_data_nan"] = report.missing_voxels
        if report.left_out_voxels:
            values["voxels_left_out"] = report.left_out_voxels
        if report.metal_voxels:
            values["metal_voxels_left_out"] = report.metal_voxels
        if report.preview:
            values["preview"] = report.preview
        if report.frames:
            values["dicom_frames"] = report.frames
    values["noise_sd_measure"] = "finest detail (a white-noise estimate)"
    if report is not None and report.floor_sigma and values["noise_sd_before"] > 0:
        # magnitude MR: the noise is the floor's sigma (what `info` gives and --noise-sd takes); the finest detail
        # mixes it with anatomy (the sample head: 16.4 for a floor of 6.0), so only its share left is used
        left = values["noise_sd_after"] / values["noise_sd_before"]
        values.update(
            noise_sd_before=float(f"{report.floor_sigma:.4g}"),
            noise_sd_after=float(f"{report.floor_sigma * left:.4g}"),
            noise_sd_measure="the magnitude floor's sigma (after: times the share of the finest detail left)",
        )
    if report is not None and report.noise_sd_map:
        values["noise_sd_map"] = report.noise_sd_map
    elif report is not None and report.modality == "mr" and noisy_frames.num_components == 1:
        from ..transforms.magnitude import varying_floor_note

        note = varying_floor_note(noisy_frames.array[: noisy.shape[0]])  # the first frame of a series
        if note is not None:
            values["noise_floor_varies"] = note
    if report is not None and report.modality == "ct":
        body = ct_body_noise(noisy_frames, denoised_frames)
        values.update(body)
        if body:
            # CT noise is correlated: the finest detail holds a fraction of it (the sample chest: 7.5 of 23 HU). Its
            # SD is what flat tissue shows, the number `info` gives and --noise-sd takes
            values.update(
                noise_sd_before=body["noise_before_hu"],
                noise_sd_after=body["noise_after_hu"],
                noise_sd_measure="flat body tissue (HU)",
            )
    if isinstance(noisy, VolumeSeries):
        values["shape_zyx"] = list(noisy.shape)
        values["frames"] = noisy.num_frames
    if report is not None and report.sigma is not None and report.sigma_used:  # on the method's scaling
        values["sigma_used_0_255"] = round(report.sigma * 255, 3)
        values["sigma_estimated"] = report.sigma_estimated
    return values
