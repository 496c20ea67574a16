"""The generalized Anscombe transform: Poisson-Gaussian noise made (nearly) white with unit variance.

A denoiser built for one noise level (BM3D, NLM, a median filter's threshold) leaves photon noise in the bright
regions when given one sigma for a whole image: that noise's variance grows with the signal. The generalized Anscombe
transform (Murtagh, Starck, Bijaoui 1995) maps an image with ``variance = gain * x + floor``
(:class:`~meddenoiselib.transforms.noise_level.NoiseLevel`) to one whose noise has a standard deviation close to 1
everywhere; the denoised result is mapped back with the closed-form approximation of the *exact unbiased* inverse
(Mäkitalo & Foi, "Optimal inversion of the generalized Anscombe transformation for Poisson-Gaussian noise", IEEE TIP
22(1), 2013): the algebraic inverse is biased at low counts, because the denoiser estimates the mean of the
transformed values, not the transform of the mean. Written from the papers' formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .noise_level import NoiseLevel

__all__ = ["GeneralizedAnscombe"]

_ROOT_3_2 = math.sqrt(1.5)


def _unbiased_inverse(d: np.ndarray, read_variance: float) -> np.ndarray:
    """Mäkitalo & Foi's closed form for unit gain: the Poisson mean whose transformed expectation is ``d``."""
    d = np.asarray(d, dtype=np.float64)
    return 0.25 * d**2 + 0.25 * _ROOT_3_2 / d - 11.0 / 8.0 / d**2 + 5.0 / 8.0 * _ROOT_3_2 / d**3 - 0.125 - read_variance


#: below this transformed value the closed form turns back up (its inverse powers of ``d``), where the mean is 0
#: anyway (the closed form reads -0.24 there for no read noise): the inverse holds it constant, then clips at 0
_SMALLEST = 0.838


@dataclass(frozen=True)
class GeneralizedAnscombe:
    """The transform for one noise level (its units: the image's).

    ``forward(z) = 2 / gain * sqrt(max(gain * z + 3/8 * gain^2 + floor, 0))``: Poisson-Gaussian noise of
    ``variance = gain * x + floor`` becomes noise of standard deviation ~1 (exactly 1 for high counts).
    ``inverse`` maps a denoised transformed image back to the image's units, unbiased, never below 0 (a count).
    A negative floor is an offset (the counts' zero at ``-floor / gain`` in the image, with no read noise left to
    tell apart): the transform is then the Anscombe transform of the counts above it.
    """

    level: NoiseLevel

    def __post_init__(self) -> None:
        if not self.level.gain > 0:
            raise ValueError("the generalized Anscombe transform needs noise that grows with the signal (gain > 0)")

    def forward(self, image: np.ndarray) -> np.ndarray:
        """``image`` (any shape, the level's units) -> transformed, float64, noise std ~1."""
        gain, floor = self.level.gain, self.level.floor
        z = np.asarray(image, dtype=np.float64)
        return 2.0 / gain * np.sqrt(np.maximum(gain * z + 0.375 * gain * gain + floor, 0.0))

    def inverse(self, transformed: np.ndarray) -> np.ndarray:
        """A denoised transformed image (any shape) -> the image's units, float64, >= 0."""
        gain, floor = self.level.gain, self.level.floor
        d = np.maximum(np.asarray(transformed, dtype=np.float64), _SMALLEST)
        return np.maximum(_unbiased_inverse(d, floor / gain**2), 0.0) * gain
