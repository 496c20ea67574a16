"""The noise map of a denoising run as a volume (or 4D series) with the input's geometry; see
:mod:`meddenoiselib.noise_map` for what it measures."""

from __future__ import annotations

from ..io.series import VolumeSeries
from ..io.volume import Volume
from ..noise_map import DEFAULT_WINDOW_PX, local_noise_sd, residual_noise_map

__all__ = ["local_noise_sd", "noise_map_volume"]


def noise_map_volume(
    noisy: Volume | VolumeSeries, denoised: Volume | VolumeSeries, window_px: float = DEFAULT_WINDOW_PX
) -> Volume | VolumeSeries:
    """The local standard deviation of ``noisy − denoised`` (:func:`~meddenoiselib.noise_map.local_noise_sd`), with
    the input's geometry.

    Args:
        noisy: the input, ``(Z, Y, X[, C])`` (a volume) or ``(T, Z, Y, X[, C])`` (a series), physical units.
        denoised: the result, same shape.
        window_px: in-plane Gaussian window in pixels. Defaults to
            :data:`~meddenoiselib.noise_map.DEFAULT_WINDOW_PX`.

    Returns:
        A float32 volume (series) of the input's shape and geometry, in the input's units (HU for CT), >= 0.
    """
    if isinstance(noisy, VolumeSeries):
        components = noisy.array.ndim == 5
    else:
        components = noisy.num_components > 1
    return noisy.with_array(residual_noise_map(noisy.array, denoised.array, components, window_px))
