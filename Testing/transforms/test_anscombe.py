"""The generalized Anscombe transform and the photon-noise fit that decides where it is used."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meddenoiselib.io import read_volume
from meddenoiselib.transforms.anscombe import GeneralizedAnscombe
from meddenoiselib.transforms.noise import samplers
from meddenoiselib.transforms.noise_level import NoiseLevel, estimate_photon_noise

PEAK, READ = 100.0, 1.0  # counts at intensity 1, read noise in counts: variance x / PEAK + (READ / PEAK)^2
LEVEL = NoiseLevel(1.0 / PEAK, (READ / PEAK) ** 2)


def _photons(clean: np.ndarray, peak: float = PEAK, seed: int = 0) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    return samplers.poisson_gaussian(torch.from_numpy(clean), peak, READ, generator).float().numpy()


@pytest.fixture(scope="module")
def xray(xray_png) -> np.ndarray:
    """The test data's chest radiograph, ``(Y, X)`` scaled to [0, 1]."""
    image = read_volume(xray_png).array[0].astype(np.float32)
    return (image - image.min()) / np.ptp(image)


def test_forward_gives_photon_noise_one_level():
    """Flat images of 2-300 counts: the raw noise's standard deviation grows 12-fold, the transformed one's is
    1 +- 0.08 at every level (the transform's own approximation is off by a few percent at 2 counts)."""
    transform = GeneralizedAnscombe(LEVEL)
    raw, stabilized = [], []
    for counts in (2, 10, 30, 100, 300):
        noisy = _photons(np.full((200, 200), counts / PEAK, np.float32), seed=counts)
        raw.append(noisy.std())
        stabilized.append(transform.forward(noisy).std())
    assert raw[-1] / raw[0] > 10
    np.testing.assert_allclose(stabilized, 1.0, atol=0.08)


def test_inverse_is_unbiased_at_low_counts():
    """The transformed image's local mean (what a denoiser estimates) mapped back: the exact unbiased inverse gives
    1, 3 and 10 counts within 5 %; the algebraic inverse (squaring back) misses 1 count by over 20 %."""
    transform = GeneralizedAnscombe(LEVEL)
    for counts in (1, 3, 10):
        noisy = _photons(np.full((400, 400), counts / PEAK, np.float32), seed=counts)
        mean = transform.forward(noisy).mean()
        unbiased = float(transform.inverse(np.array(mean))) * PEAK
        assert unbiased == pytest.approx(counts, rel=0.05)
        algebraic = ((mean * LEVEL.gain / 2) ** 2 - 0.375 * LEVEL.gain**2 - LEVEL.floor) / LEVEL.gain * PEAK
        if counts == 1:
            assert abs(algebraic - counts) > 0.2
    assert float(transform.inverse(np.array(0.0))) == 0.0  # never below no photons


def test_needs_noise_that_grows():
    with pytest.raises(ValueError, match="gain > 0"):
        GeneralizedAnscombe(NoiseLevel(0.0, 1e-4))


def test_photon_noise_is_found_on_a_radiograph_and_gaussian_noise_is_not(xray):
    """Poisson-Gaussian noise of 30 and 300 counts on the radiograph: found, with a gain within 30 % of the true
    1 / counts; white Gaussian noise of sigma 5, 25 and 50 / 255: None (constant noise)."""
    for peak in (30.0, 300.0):
        level = estimate_photon_noise(_photons(xray, peak))
        assert level is not None and level.gain == pytest.approx(1.0 / peak, rel=0.3)
    rng = np.random.default_rng(0)
    for sigma in (5, 25, 50):
        assert estimate_photon_noise(xray + rng.normal(0, sigma / 255, xray.shape).astype(np.float32)) is None


def test_the_level_keeps_the_offset_min_max_scaling_gives_photon_counts(xray):
    """The Denoiser reads photon noise on the noisy image min-max scaled, whose 0 is its darkest pixel, a few
    read-noise sigmas below the counts' zero: the line of variance against intensity then crosses 0 just above the
    image's 0. Kept with its negative floor, its gain is that of the simulation within 5 % at 30 and 300 counts
    (read noise 1 and 3 counts); forced through the origin, as the fit did before, it was 25-30 % low at 30 counts."""
    for peak, read in ((30.0, 1.0), (300.0, 3.0)):
        generator = torch.Generator().manual_seed(int(peak))
        noisy = samplers.poisson_gaussian(torch.from_numpy(xray), peak, read, generator).float().numpy()
        scaled = (noisy - noisy.min()) / np.ptp(noisy)
        level = estimate_photon_noise(scaled)
        assert level is not None
        assert level.gain == pytest.approx(1.0 / peak / np.ptp(noisy), rel=0.05)
        assert level.floor < 0  # the line crosses 0 above the image's 0


def test_noise_that_follows_the_position_is_not_photon_noise(xray):
    """Gaussian noise rising down the radiograph (sigma 5 -> 60 / 255, as a detector's gain or a coil makes it),
    where the brighter lower lungs are also the noisier: the line through all intensities rises, but the halves'
    lines disagree, so it is not taken for photon noise; a crop too small to fit each half is not either."""
    ramp = np.linspace(5, 60, xray.shape[0])[:, None] / 255
    noisy = (xray + np.random.default_rng(1).normal(size=xray.shape) * ramp).astype(np.float32)
    assert estimate_photon_noise(noisy) is None
    assert estimate_photon_noise(_photons(xray[:96, :96], 30.0)) is None
