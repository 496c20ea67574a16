"""Speckle reducing anisotropic diffusion (SRAD; Yu & Acton, IEEE TIP 2002), in 2D and 3D.

Ultrasound speckle is multiplicative: a homogeneous region's intensity varies by a constant fraction (its
coefficient of variation, ``q0``) around the echo level. SRAD diffuses where the local coefficient of variation
(the "instantaneous coefficient of variation" ``q``, from the local gradient and Laplacian over the intensity) is
near ``q0``, and stops at edges, where ``q`` is far above it. ``q0`` is read from the image at every step as the
25th percentile of the coefficient of variation in 7-pixel windows: most windows of an ultrasound image are
speckle in tissue, and those with an edge or a structure read higher.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["SRAD_TIME_STEP", "speckle_level", "speckle_scale", "srad_denoise", "srad3d_denoise"]

#: the explicit scheme's time step (lambda); stable up to 1 with the diffusion coefficient in [0, 1]
SRAD_TIME_STEP = 0.5
#: windows of this edge (pixels) give the coefficient of variation from which the speckle scale is read
SPECKLE_WINDOW = 7
#: the speckle scale is this percentile of the windows' coefficients of variation
SPECKLE_PERCENTILE = 25.0
#: iterations per unit of the speckle level read on the input (:func:`speckle_level`), within MIN/MAX_ITERATIONS.
#: Chosen on 10 of the training ultrasound images (scripts/data_split.py), central 512 x 512, with simulated speckle
#: 0.1 / 0.2 / 0.4 (read 0.102 / 0.202 / 0.403, +-0.002 over the images): the best counts of 5-300 were 10 / 20 / 40
#: (PSNR 40.95 / 37.06 / 32.68 dB against 33.96 / 27.94 / 21.92 noisy; 300 steps: 30.3 / 30.1 / 29.2). The window
#: coefficient of variation (:func:`speckle_scale`) reads texture as speckle (0.11-0.17 at 0.1), so it only steers
#: each step, not how many there are
ITERATIONS_PER_LEVEL = 100.0
MIN_ITERATIONS, MAX_ITERATIONS = 3, 300


def speckle_scale(image: np.ndarray, floor: float = 1e-3) -> float:
    """``q0``: the coefficient of variation of homogeneous speckle, the :data:`SPECKLE_PERCENTILE` percentile of the
    coefficient of variation in windows of :data:`SPECKLE_WINDOW` pixels whose mean is above ``floor`` (not the black
    around a sector)."""
    image = np.asarray(image, dtype=np.float64)
    mean = ndimage.uniform_filter(image, SPECKLE_WINDOW, mode="reflect")
    square = ndimage.uniform_filter(image * image, SPECKLE_WINDOW, mode="reflect")
    spread = np.sqrt(np.maximum(square - mean * mean, 0.0))
    lit = mean > max(floor, 0.05 * float(np.percentile(image, 99)))
    if not lit.any():
        return 0.0
    return float(np.percentile(spread[lit] / mean[lit], SPECKLE_PERCENTILE))


def speckle_level(image: np.ndarray) -> float:
    """The speckle's coefficient of variation: the median of the finest diagonal Haar detail over the local mean
    (2 x 2 blocks whose mean is above 5 % of the 99th percentile), over 0.6745. Multiplicative speckle of
    independent pixels makes that detail ``mean x CV x N(0, 1)``; tissue texture barely reaches the finest diagonal
    scale. Speckle correlated over several pixels (a real scanner's grain) reads lower."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 3:
        return float(np.median([speckle_level(plane) for plane in array]))
    h, w = array.shape[0] // 2 * 2, array.shape[1] // 2 * 2
    if h == 0 or w == 0:
        return 0.0
    a, b, c, d = array[0:h:2, 0:w:2], array[0:h:2, 1:w:2], array[1:h:2, 0:w:2], array[1:h:2, 1:w:2]
    detail, mean = (a - b - c + d) / 2.0, (a + b + c + d) / 4.0
    lit = mean > max(1e-12, 0.05 * float(np.percentile(array, 99)))
    if not lit.any():
        return 0.0
    return float(np.median(np.abs(detail[lit]) / mean[lit]) / 0.6745)


def _differences(image: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
    """One-sided differences to both neighbours along every axis, with edges replicated: ``(d, axis, step)``."""
    padded = np.pad(image, 1, mode="edge")
    core = tuple(slice(1, -1) for _ in range(image.ndim))
    out = []
    for axis in range(image.ndim):
        for step in (-1, 1):
            index = list(core)
            index[axis] = slice(1 + step, image.shape[axis] + 1 + step)
            out.append((padded[tuple(index)] - image, axis, step))
    return out


def srad_denoise(
    image: np.ndarray, sigma: float = 0.0, iterations: int | None = None, time_step: float = SRAD_TIME_STEP
) -> np.ndarray:
    """SRAD of a 2D image (or, called directly, of a volume: see :func:`srad3d_denoise`).

    Args:
        image: ``(Y, X)`` or ``(Z, Y, X)`` intensities with 0 as no echo (normalized, float32).
        sigma: unused (the speckle scale is read from the image); there for the baselines' call signature.
        iterations: diffusion steps; None: from the speckle level read on the input (:data:`ITERATIONS_PER_LEVEL`).
        time_step: lambda of the explicit scheme. Defaults to :data:`SRAD_TIME_STEP`.

    Returns:
        float32, the same shape; values stay within the input's range (a diffusion's maximum principle).
    """
    current = np.asarray(image, dtype=np.float64).copy()
    low = float(current.min())
    offset = 1e-6 - min(low, 0.0)  # the model is multiplicative around 0: never divide by 0 or by a negative level
    current += offset
    neighbours = 2 * current.ndim
    q0 = speckle_scale(current - offset)
    if q0 <= 0:
        return np.asarray(image, dtype=np.float32).copy()
    if iterations is None:
        level = speckle_level(current - offset)
        iterations = int(np.clip(round(ITERATIONS_PER_LEVEL * level), MIN_ITERATIONS, MAX_ITERATIONS))
    for _ in range(int(iterations)):
        q0 = speckle_scale(current - offset)
        if q0 <= 1e-6:
            break
        differences = _differences(current)
        gradient = sum(d * d for d, _, _ in differences) / (current * current)
        laplacian = sum(d for d, _, _ in differences) / current
        q_squared = (0.5 * gradient - (laplacian / neighbours) ** 2) / (1.0 + laplacian / neighbours) ** 2
        q0_squared = q0 * q0
        coefficient = 1.0 / (1.0 + (q_squared - q0_squared) / (q0_squared * (1.0 + q0_squared)))
        coefficient = np.clip(coefficient, 0.0, 1.0)
        # the flux between a pixel and its neighbour takes the coefficient of the pixel on the neighbour's side
        # that lies after it (Yu & Acton's discretization): conservative, and symmetric between the two
        padded = np.pad(coefficient, 1, mode="edge")
        update = np.zeros_like(current)
        for d, axis, step in differences:
            if step < 0:
                update += coefficient * d
            else:
                index = [slice(1, -1)] * current.ndim
                index[axis] = slice(2, current.shape[axis] + 2)
                update += padded[tuple(index)] * d
        current += (time_step / neighbours) * update
    return (current - offset).astype(np.float32)


def srad3d_denoise(volume: np.ndarray, sigma: float = 0.0, iterations: int | None = None) -> np.ndarray:
    """SRAD of a whole volume at once (3D SRAD: six neighbours; for volumes of near-isotropic voxels, such as 3D
    ultrasound). A 2D image is filtered as :func:`srad_denoise` does."""
    return srad_denoise(volume, sigma, iterations)
