"""A reference-free quality report for one denoising run: what a user without a clean image can check."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..blend import residual
from ..io.series import VolumeSeries
from ..io.volume import Volume
from ..transforms.estimate import estimate_sigma
from ..transforms.intensity import fit_scaling

__all__ = ["denoising_report", "residual_volume", "run_report"]


def residual_volume(noisy: Volume, denoised: Volume) -> Volume:
    """``noisy − denoised`` in the input's physical units (float32), with the input's geometry.

    What was removed: white noise looks structureless; visible anatomy means the denoiser took signal too.
    """
    return noisy.with_array(residual(noisy.array, denoised.array))


def _lag_one_correlation(residual: np.ndarray) -> float:
    """Mean correlation of the residual with its neighbour along x and y: about 0 for white noise."""
    values = []
    for axis in (-1, -2):
        if residual.shape[axis] < 2:
            continue
        a = np.moveaxis(residual, axis, 0)
        x, y = a[:-1].ravel().astype(np.float64), a[1:].ravel().astype(np.float64)
        x, y = x - x.mean(), y - y.mean()
        denominator = np.sqrt((x * x).sum() * (y * y).sum())
        values.append(float((x * y).sum() / denominator) if denominator > 0 else 0.0)
    return float(np.mean(values)) if values else 0.0


def denoising_report(noisy: Volume, denoised: Volume, method: str, seconds: float, device: str) -> dict[str, Any]:
    """Reference-free numbers for a run: noise estimates before and after, residual statistics, runtime.

    Noise levels are wavelet-MAD estimates (see :func:`~meddenoiselib.transforms.estimate_sigma`) on the input's
    min-max normalized scale, reported on the 0-255 scale, so runs on different scans compare.

    Args:
        noisy: the input volume.
        denoised: the output volume.
        method: model or baseline name.
        seconds: denoising wall time.
        device: the device used.
    """
    scalar = lambda v: v.array if v.num_components == 1 else v.array.mean(axis=-1)  # noqa: E731
    before, after = scalar(noisy).astype(np.float32), scalar(denoised).astype(np.float32)
    scaling = fit_scaling(before, "minmax")
    removed = before - after
    return {
        "method": method,
        "device": device,
        "seconds": round(float(seconds), 3),
        "shape_zyx": list(noisy.shape),
        "dtype": str(noisy.array.dtype),
        "noise_sigma_before_0_255": round(estimate_sigma(scaling.apply(before)) * 255.0, 3),
        "noise_sigma_after_0_255": round(estimate_sigma(scaling.apply(after)) * 255.0, 3),
        "residual_std": round(float(removed.std()), 4),
        "residual_mean": round(float(removed.mean()), 4),
        "residual_neighbour_correlation": round(_lag_one_correlation(removed), 4),
        "value_range_before": [float(before.min()), float(before.max())],
        "value_range_after": [float(after.min()), float(after.max())],
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
    the number of frames.
    """
    report = denoiser.last_report
    values = denoising_report(
        _frames_as_volume(noisy),
        _frames_as_volume(denoised),
        report.method if report is not None else denoiser.method,
        report.seconds if report is not None else 0.0,
        report.device if report is not None else str(denoiser.device),
    )
    if report is not None:
        values.update(modality=report.modality, model_choice=report.choice or "given explicitly")
    if isinstance(noisy, VolumeSeries):
        values["shape_zyx"] = list(noisy.shape)
        values["frames"] = noisy.num_frames
    if report is not None and report.sigma is not None:
        values["sigma_used_0_255"] = round(report.sigma * 255, 3)
    return values
