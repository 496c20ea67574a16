"""How the noise variance changes with the signal: ``variance = gain * x + floor``.

Photon counting (X-ray detectors, fluorescence microscopy) gives noise whose variance grows linearly with the
signal (Poisson) on top of a constant read noise (Gaussian): the Poisson-Gaussian model. White Gaussian noise is the
case ``gain = 0``. The fit reads Donoho's wavelet estimate per bin of intensity (Foi et al., "Practical
Poissonian-Gaussian noise modeling and fitting for single-image raw-data", IEEE TIP 17(10), 2008, fit the same line
to local estimates binned by intensity); written from that description.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.ndimage import uniform_filter

from .estimate import mad_sigma, noise_band, sampled_slice_indices

__all__ = [
    "LEVEL_BINS",
    "LEVEL_MIN_PER_BIN",
    "SIGNAL_DEPENDENT_RATIO",
    "NoiseLevel",
    "estimate_noise_level",
    "estimate_photon_noise",
]

#: intensity bins of the noise-level fit, and the fewest wavelet coefficients per bin for it (else the noise is taken
#: as constant: the image is too small to tell how the noise changes with intensity)
LEVEL_BINS, LEVEL_MIN_PER_BIN = 12, 200

#: the noise counts as signal-dependent when the fitted variance at the brightest tenth of the image's intensities is
#: at least this many times that at the darkest tenth. On 35 training images (CT, MR, ultrasound, X-ray, microscopy):
#: white Gaussian noise of sigma 5-50 / 255 reads 1.00-1.49; Poisson-Gaussian noise of 30-1000 counts 5-1e8 on every
#: image with dark regions, 1.0-1.3 on bright-everywhere microscopy (where one sigma is nearly right anyway)
SIGNAL_DEPENDENT_RATIO = 2.0

#: photon noise depends on the intensity, not on where it is: the lines fitted on two halves of the image (left and
#: right, top and bottom) predict variances at the median intensity within this factor of each other. On the same
#: training images photon noise of 30 and 300 counts reads 1.00-1.14; Gaussian noise whose level rises across the
#: image (5 -> 60 / 510) 1.7-6.2 where its intensity follows the position closely enough to pass the test above
SPATIAL_CONSISTENCY = 1.4

#: the pilot intensity of the photon-noise fit: a local mean over this many pixels of the noisy image (its noise
#: only blurs which bin a coefficient falls in)
PILOT_WIDTH = 4


@dataclass(frozen=True)
class NoiseLevel:
    """Noise variance as a function of the clean intensity ``x``: ``gain * x + floor`` (Poisson-Gaussian: photon
    noise grows with the signal; white Gaussian noise has ``gain = 0``), at most ``ceiling`` (magnitude MR: its
    noise is never stronger than the sigma of its floor). Units: those of the image (variance in the square of
    them)."""

    gain: float
    floor: float
    ceiling: float = math.inf

    def variance(self, intensity: torch.Tensor) -> torch.Tensor:
        """Variance at ``intensity`` (any shape), never below a millionth of the floor's scale nor above the
        ceiling."""
        low = max(self.floor, 1e-12) * 1e-6 + 1e-12
        variance = (self.gain * intensity + self.floor).clamp_min(low)
        return variance if math.isinf(self.ceiling) else variance.clamp_max(max(self.ceiling, low))

    def spread(self, low: float, high: float) -> float:
        """How many times the variance at intensity ``high`` is that at ``low`` (1 for constant noise)."""
        at = self.variance(torch.tensor([low, high], dtype=torch.float64))
        return float(at[1] / at[0])


def _band_and_intensity(noisy: np.ndarray, pilot: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """The wavelet coefficients of one ``(H, W)`` slice that measure its noise, the pilot's intensity where each
    lies (its 2x2 block mean, on the band's grid), the whole slice's noise variance, and which coefficients of the
    band's ``(h, w)`` grid those are (for :func:`_second_halves`)."""
    diagonal, unmasked = noise_band(noisy)
    overall = mad_sigma(diagonal[unmasked]) ** 2
    h, w = min(diagonal.shape[0], noisy.shape[0] // 2), min(diagonal.shape[1], noisy.shape[1] // 2)
    kept = unmasked[:h, :w]
    intensity = np.asarray(pilot, dtype=np.float64)[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
    # a masked background (all at the minimum) carries no noise: binned with the tissue it would pull the dark bins'
    # variance, and so the line's floor, to 0
    return np.abs(diagonal[:h, :w])[kept], intensity[kept], overall, kept


def _second_halves(kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each coefficient :func:`_band_and_intensity` kept on its ``(h, w)`` grid: whether it lies in the second
    half across (columns) and down (rows)."""
    h, w = kept.shape
    rows, columns = np.mgrid[:h, :w]
    return (columns >= w // 2)[kept], (rows >= h // 2)[kept]


def _binned_variances(coefficients: np.ndarray, intensity: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(x, v)``: the mean ``intensity`` and the noise variance of :data:`LEVEL_BINS` bins of equal count in it,
    darkest first; None when there are too few coefficients."""
    if coefficients.size < LEVEL_BINS * LEVEL_MIN_PER_BIN:
        return None
    order = np.argsort(intensity, kind="stable")
    bins = np.array_split(order, LEVEL_BINS)
    x = np.array([intensity[b].mean() for b in bins])
    v = np.array([mad_sigma(coefficients[b]) ** 2 for b in bins])
    return x, v


def _line(binned: tuple[np.ndarray, np.ndarray] | None, overall: float, offset: bool = False) -> NoiseLevel:
    """The least-squares line through :func:`_binned_variances`' bins; constant noise (``overall``) when there were
    too few coefficients or the line falls.

    A line with a negative floor is replaced by one through the origin, unless ``offset`` and the line's variance is
    positive at the darkest bin: then the image's zero lies below the zero of its photon counts (min-max scaling of a
    noisy image puts 0 at its darkest pixel, a few read-noise sigmas below the counts' zero; a camera adds an offset),
    and the line is kept as it is."""
    if binned is None:
        return NoiseLevel(0.0, overall)
    x, v = binned
    gain, floor = np.polyfit(x, v, 1)
    if gain <= 0:
        return NoiseLevel(0.0, overall)
    if floor < 0 and not (offset and gain * x[0] + floor > 0):
        gain, floor = float(np.dot(x, v) / np.dot(x, x)), 0.0
    return NoiseLevel(float(gain), float(floor))


def _fit_line(coefficients: np.ndarray, intensity: np.ndarray, overall: float) -> NoiseLevel:
    """:func:`_line` through the bins of ``coefficients`` by ``intensity``, through the origin where it would fall
    below it."""
    return _line(_binned_variances(coefficients, intensity), overall)


def estimate_noise_level(noisy: np.ndarray, pilot: np.ndarray) -> NoiseLevel:
    """Fit ``variance = gain * x + floor`` to the noise of one 2D slice.

    Donoho's wavelet estimate (:func:`~meddenoiselib.transforms.estimate.mad_sigma` of the finest diagonal band, as
    ``estimate_sigma`` takes it), taken per bin of the pilot's intensity (12 bins of equal count) instead of over the
    whole image, and a least-squares line through the bins' variances; a falling or flat line gives constant noise
    (the whole image's estimate). Coefficients of a masked background (support all at the minimum) are left out
    (:func:`~meddenoiselib.transforms.estimate.noise_band`).

    Args:
        noisy: ``(H, W)`` noisy slice. pilot: ``(H, W)`` an estimate of the clean slice, same units.

    Returns:
        The fitted :class:`NoiseLevel`.
    """
    return _fit_line(*_band_and_intensity(noisy, pilot)[:3])


def estimate_photon_noise(array: np.ndarray, max_slices: int = 8) -> NoiseLevel | None:
    """The signal-dependent (Poisson-Gaussian) noise of an image, or None where its noise does not grow with the
    signal.

    One line (:func:`estimate_noise_level`'s fit) through the wavelet coefficients of up to ``max_slices`` evenly
    spaced slices pooled, each binned by a local mean of the noisy slice (:data:`PILOT_WIDTH` pixels: no denoiser is
    needed to tell where the signal is bright); signal-dependent when the line's variance at the 90th percentile of
    those intensities is at least :data:`SIGNAL_DEPENDENT_RATIO` times that at the 10th, and the lines of the image's
    halves agree (:data:`SPATIAL_CONSISTENCY`: noise whose level changes across the image, as a coil or a detector's
    gain makes it, is not photon noise even where the brighter side is also the noisier); None for an image too small
    to fit each half (fewer than ``LEVEL_BINS * LEVEL_MIN_PER_BIN`` coefficients in one). The level returned keeps
    a negative floor where its line stays positive over the data (an offset: min-max scaling puts a noisy image's 0
    at its darkest pixel, a few read-noise sigmas below the counts' zero; a camera adds its own offset): forced
    through the origin instead, the line read the gain 25-30 % low at 30 counts on held-out images (kept: within 3 %
    of the simulated gain).

    Args:
        array: ``(Y, X)`` or ``(Z, Y, X)`` noisy image, any units (the level is in them).

    Returns:
        The fitted :class:`NoiseLevel` (``gain > 0``), or None.
    """
    array = np.asarray(array)
    slices = array[None] if array.ndim == 2 else array
    parts = [
        _band_and_intensity(slices[k], uniform_filter(slices[k].astype(np.float64), PILOT_WIDTH))
        for k in sampled_slice_indices(slices.shape[0], max_slices)
    ]
    coefficients = np.concatenate([p[0] for p in parts])
    intensity = np.concatenate([p[1] for p in parts])
    overall = float(np.median([p[2] for p in parts]))
    # whether the noise follows the signal is decided on lines through the origin where they would fall below it
    # (the tests' factors were chosen on those); the level returned keeps an offset the data show
    binned = _binned_variances(coefficients, intensity)
    level = _line(binned, overall)
    if level.gain <= 0:
        return None
    low, middle, high = (float(v) for v in np.percentile(intensity, [10, 50, 90]))
    if level.spread(low, high) < SIGNAL_DEPENDENT_RATIO:
        return None
    at_middle = torch.tensor([middle], dtype=torch.float64)
    halves = [_second_halves(p[3]) for p in parts]
    for half in (np.concatenate([h[0] for h in halves]), np.concatenate([h[1] for h in halves])):
        if min(np.count_nonzero(half), np.count_nonzero(~half)) < LEVEL_BINS * LEVEL_MIN_PER_BIN:
            return None  # too small to tell whether the noise follows the intensity or the position
        first, second = (
            float(_fit_line(coefficients[side], intensity[side], overall).variance(at_middle)[0])
            for side in (~half, half)
        )
        if max(first, second) > SPATIAL_CONSISTENCY * min(first, second):
            return None
    return _line(binned, overall, offset=True)
