"""The noise map of a denoising run: the local standard deviation of what the denoiser removed, voxel by voxel, in the
input's units. numpy and scipy only (no torch), so the Slicer module's strength slider can use it live.

Pipelines want a noise (σ) map written next to the result for QA (CT: HU of noise per voxel, which follows the
patient's size and the tube current; MR: σ maps of parallel imaging). The map is measured on the residual (input −
denoised), so it shows the noise the denoiser found and removed: where the denoiser is right that is the input's
noise; where it also took signal (anatomy visible in the residual) the map rises there too, which is why it is a QA
output next to the residual and not an independent noise estimate.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import MedDenoiseError

__all__ = ["DEFAULT_WINDOW_PX", "local_noise_sd", "residual_noise_map"]

#: in-plane Gaussian window (standard deviation, pixels) of the local statistics: ~100 effective samples, so the
#: standard deviation of white noise is estimated within ~7 %, while the map still follows a body's outline
DEFAULT_WINDOW_PX = 4.0


def local_noise_sd(values: np.ndarray, yx_axes: tuple[int, int], window_px: float = DEFAULT_WINDOW_PX) -> np.ndarray:
    """Local standard deviation of ``values`` in a Gaussian window in each plane, ``sqrt(G*v² − (G*v)²)``.

    In-plane only (the two ``yx_axes``): slices of a CT or MR series are reconstructed one by one, and a noise map
    that mixes neighbouring slices would blur slice-to-slice changes of the dose (tube current modulation).

    Args:
        values: any shape with the two in-plane axes among its axes, e.g. a residual ``(Z, Y, X)``, physical units.
        yx_axes: the in-plane axes of ``values``.
        window_px: standard deviation of the Gaussian window in pixels (> 0).

    Returns:
        float32 array of ``values``' shape, >= 0, in the units of ``values``; NaN where ``values`` is NaN (no data).

    Raises:
        MedDenoiseError: ``window_px`` is not a positive number.
    """
    if not np.isfinite(window_px) or window_px <= 0:
        raise MedDenoiseError(f"the noise map's window must be a positive number of pixels, got {window_px}")
    sigma = [0.0] * values.ndim
    for axis in yx_axes:
        if axis % values.ndim == 0:
            raise MedDenoiseError("the noise map walks the first axis plane by plane; it cannot be an in-plane axis")
        sigma[axis] = float(window_px)
    plane_sigma = sigma[1:]
    out = np.empty(values.shape, dtype=np.float32)
    # a slice (frame) at a time along the first axis: float64 working copies of one plane, never of the volume
    for index in range(values.shape[0]):
        part = values[index].astype(np.float64)
        missing = np.isnan(part)
        if missing.any():
            out[index] = _local_sd_with_data(part, missing, plane_sigma)
            continue
        mean = ndimage.gaussian_filter(part, plane_sigma, mode="reflect")
        mean_square = ndimage.gaussian_filter(part * part, plane_sigma, mode="reflect")
        out[index] = np.sqrt(np.maximum(mean_square - mean * mean, 0.0))
    return out


def _local_sd_with_data(part: np.ndarray, missing: np.ndarray, plane_sigma: list[float]) -> np.ndarray:
    """:func:`local_noise_sd` of one plane with voxels without data (NaN, where the input had none): the window's
    weights renormalized over the voxels with data (normalized convolution), so the map does not drop towards the
    no-data region's edge; NaN where there is no data."""
    weight = ndimage.gaussian_filter((~missing).astype(np.float64), plane_sigma, mode="reflect")
    data = np.where(missing, 0.0, part)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = ndimage.gaussian_filter(data, plane_sigma, mode="reflect") / weight
        mean_square = ndimage.gaussian_filter(data * data, plane_sigma, mode="reflect") / weight
    sd = np.sqrt(np.maximum(mean_square - mean * mean, 0.0))
    sd[missing] = np.nan
    return sd


def residual_noise_map(
    removed: np.ndarray, components: bool = False, window_px: float = DEFAULT_WINDOW_PX
) -> np.ndarray:
    """:func:`local_noise_sd` of a residual, every plane of it.

    Args:
        removed: input minus denoised (:func:`meddenoiselib.blend.residual`), ``(..., Y, X)``, or ``(..., Y, X, C)``
            with ``components``; physical units.
        components: the last axis holds colour components (filtered separately).
        window_px: in-plane Gaussian window in pixels. Defaults to :data:`DEFAULT_WINDOW_PX`.

    Returns:
        float32, the shape of ``removed``, >= 0, in the input's units.
    """
    plane = removed.shape[removed.ndim - 2 - int(components) :]
    yx_axes = (-3, -2) if components else (-2, -1)
    # every leading axis (slices, frames) flattened into one walked plane by plane
    return local_noise_sd(removed.reshape(-1, *plane), yx_axes, window_px).reshape(removed.shape)
