"""Robust statistics of values stored on a lattice (integers, a DICOM rescale slope's multiples)."""

from __future__ import annotations

import numpy as np
import pytest

from meddenoiselib.transforms.quantization import interval_median_and_spread, lattice_step


def test_lattice_step_finds_integers_and_a_rescale_slope_and_nothing_in_continuous_values():
    rng = np.random.default_rng(0)
    noise = rng.normal(100.0, 3.0, 20_000)
    assert lattice_step(np.rint(noise)) == 1.0
    slope, intercept = 0.3712, -12.5  # stored integers through a DICOM rescale, held as float32
    assert lattice_step((np.rint(noise) * slope + intercept).astype(np.float32)) == pytest.approx(slope, rel=1e-4)
    assert lattice_step(noise) == 0.0
    assert lattice_step(np.full(100, 7.0)) == 0.0


@pytest.mark.parametrize("sigma", [1.5, 2.5, 4.0])
def test_spread_of_rounded_gaussian_noise_is_that_before_rounding(sigma):
    """Gaussian noise of a few grey levels stored as integers: the plain MAD can only be a whole or half step (1.48
    or 2.22 or 2.97 for these sigmas); spread over their intervals, the values give sigma within 2 %, and the
    median to a tenth of a step."""
    rng = np.random.default_rng(1)
    values = rng.normal(20.3, sigma, 200_000)
    median, spread = interval_median_and_spread(np.rint(values))
    assert spread == pytest.approx(sigma, rel=0.02)
    assert median == pytest.approx(20.3, abs=0.1)
    rounded = np.rint(values)
    plain = 1.4826 * np.median(np.abs(rounded - np.median(rounded)))
    assert (plain / 1.4826) % 0.5 == 0  # what the plain MAD of integers can be
    # continuous values are left to the plain statistics
    assert interval_median_and_spread(values)[1] == pytest.approx(
        1.4826 * np.median(np.abs(values - np.median(values)))
    )
