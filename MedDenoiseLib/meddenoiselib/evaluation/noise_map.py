"""The noise map of a denoising run as a volume (or 4D series) with the input's geometry, from its residual; see
:mod:`meddenoiselib.noise_map` for what it measures."""

from __future__ import annotations

from ..io.series import VolumeSeries
from ..io.volume import Volume
from ..noise_map import DEFAULT_WINDOW_PX, local_noise_sd, residual_noise_map

__all__ = ["local_noise_sd", "noise_map_volume"]


def noise_map_volume(removed: Volume | VolumeSeries, window_px: float = DEFAULT_WINDOW_PX) -> Volume | VolumeSeries:
    """The local standard deviation of a residual (:func:`~meddenoiselib.noise_map.local_noise_sd`), with its
    geometry.

    Args:
        removed: input minus denoised (:func:`~.report.residual_volume`, or a series' residual), ``(Z, Y, X[, C])``
            (a volume) or ``(T, Z, Y, X[, C])`` (a series), physical units.
        window_px: in-plane Gaussian window in pixels. Defaults to
            :data:`~meddenoiselib.noise_map.DEFAULT_WINDOW_PX`.

    Returns:
        A float32 volume (series) of the input's shape and geometry, in the input's units (HU for CT), >= 0.
    """
    if isinstance(removed, VolumeSeries):
        components = removed.array.ndim == 5
    else:
        components = removed.num_components > 1
    return removed.with_array(residual_noise_map(removed.array, components, window_px))
