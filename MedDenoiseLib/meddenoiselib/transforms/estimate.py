"""Noise-level estimation, so that ``--sigma auto`` works on real scans with an unknown noise level."""

from __future__ import annotations

import numpy as np

__all__ = ["estimate_sigma", "estimate_sigma_per_slice"]


def _mad_sigma_2d(image: np.ndarray) -> float:
    """Donoho's wavelet estimator on one 2D image: median(|HH₁|) / 0.6745 of the finest diagonal Daubechies-2
    detail band, which is dominated by white noise and nearly free of smooth structure."""
    import pywt

    _, (_, _, diagonal) = pywt.dwt2(np.asarray(image, dtype=np.float64), "db2", mode="periodization")
    return float(np.median(np.abs(diagonal)) / 0.6745)


def estimate_sigma_per_slice(array: np.ndarray, axis: int = 0) -> np.ndarray:
    """Wavelet-MAD noise estimate of every 2D slice along ``axis``.

    Args:
        array: ``(Z, Y, X)`` or ``(Y, X)`` image, any units.

    Returns:
        ``(Z,)`` noise standard deviations, in the units of ``array``.
    """
    array = np.asarray(array)
    if array.ndim == 2:
        return np.array([_mad_sigma_2d(array)])
    if array.ndim != 3:
        raise ValueError(f"`array` must be 2D or 3D, got shape {array.shape}.")
    moved = np.moveaxis(array, axis, 0)
    return np.array([_mad_sigma_2d(s) if min(s.shape) >= 4 else np.nan for s in moved])


def estimate_sigma(array: np.ndarray, max_slices: int = 32) -> float:
    """Estimate the standard deviation of additive white noise in a 2D image or a volume.

    Uses the wavelet median-absolute-deviation estimator (Donoho & Johnstone 1994) on 2D slices and returns the
    median over up to ``max_slices`` evenly spaced slices of a volume. Flat background (zero after skull
    stripping, air outside the body) makes the estimate low, so slices whose diagonal band is all zero are
    skipped.

    Args:
        array: ``(Y, X)`` or ``(Z, Y, X)`` image, usually normalized to [0, 1].
        max_slices: the most slices of a volume to look at. Defaults to 32.

    Returns:
        σ in the units of ``array`` (on normalized data multiply by 255 for the 0-255 scale).
    """
    array = np.asarray(array)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[0] == 1):
        return _mad_sigma_2d(array.reshape(array.shape[-2:]))
    if array.ndim != 3:
        raise ValueError(f"`array` must be 2D or 3D, got shape {array.shape}.")
    indices = np.unique(np.linspace(0, array.shape[0] - 1, min(max_slices, array.shape[0])).round().astype(int))
    values = np.array([_mad_sigma_2d(array[i]) for i in indices if min(array[i].shape) >= 4])
    values = values[values > 0]
    return float(np.median(values)) if values.size else 0.0
