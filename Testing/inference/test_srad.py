"""SRAD (speckle reducing anisotropic diffusion), the ultrasound baseline: the speckle scale it reads, its gain over
the median filter on a real ultrasound image with multiplicative speckle, and 3D SRAD using the adjacent slices."""

from __future__ import annotations

import numpy as np
import pytest

from meddenoiselib.baselines import BASELINES
from meddenoiselib.baselines.srad import speckle_level, speckle_scale, srad_denoise
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import Volume, read_volume
from meddenoiselib.transforms import parse_noise_spec, simulate_volume


def _psnr(clean, test):
    return float(10 * np.log10(255.0**2 / np.mean((np.asarray(test, np.float64) - clean) ** 2)))


@pytest.fixture(scope="module")
def speckled(us_png):
    """``(clean, noisy)``: a 256 x 256 crop of the test data's fetal head ultrasound, 3 slices of it with
    independent speckle of 0.2 (multiplicative, Gamma), float32."""
    image = read_volume(us_png).array[0].astype(np.float32)[150:406, 250:506]
    clean = np.stack([image] * 3)
    noisy = simulate_volume(Volume(clean), parse_noise_spec("speckle:0.2"), seed=0, float_output=True).array
    return clean.astype(np.float64), noisy


def test_the_speckle_scale_is_read_from_homogeneous_speckle():
    rng = np.random.default_rng(0)
    field = 100.0 * rng.gamma(25.0, 1.0 / 25.0, size=(128, 128))  # coefficient of variation 1/5
    assert speckle_scale(field) == pytest.approx(0.2, rel=0.1)
    constant = np.full((32, 32), 7.0, np.float32)
    assert speckle_scale(constant) == 0.0
    np.testing.assert_array_equal(srad_denoise(constant), constant)


def test_the_speckle_level_is_read_through_the_anatomy(us_png):
    """The finest diagonal detail over the local mean reads the speckle of the whole real image at 0.1 and 0.4
    within 5 % (the speckle multiplies the image normalized by its percentiles, whose low end is the black around the
    sector: 0): it sets how many steps SRAD takes."""
    volume = read_volume(us_png)
    for level in (0.1, 0.4):
        noisy = simulate_volume(volume, parse_noise_spec(f"speckle:{level}"), seed=1, float_output=True).array
        assert speckle_level(noisy[0]) == pytest.approx(level, rel=0.05)


def test_srad_beats_the_median_filter_and_3d_srad_beats_2d(speckled):
    """Through the Denoiser with the ultrasound's own scaling: SRAD gains > 8 dB over the speckled slice and > 0.5 dB
    over the median filter, stays within the input's range, and 3D SRAD, which sees the adjacent slices' independent
    speckle, gains > 0.5 dB more."""
    clean, noisy = speckled
    volume = Volume(noisy)
    srad = Denoiser("srad", modality="us").denoise(volume).array
    median = Denoiser("median", modality="us").denoise(volume).array
    srad3d = Denoiser("srad3d", modality="us").denoise(volume).array
    noisy_psnr = _psnr(clean[1], noisy[1])
    assert _psnr(clean[1], srad[1]) > noisy_psnr + 8.0
    assert _psnr(clean[1], srad[1]) > _psnr(clean[1], median[1]) + 0.5
    assert _psnr(clean[1], srad3d[1]) > _psnr(clean[1], srad[1]) + 0.5
    assert srad.min() >= noisy.min() and srad.max() <= noisy.max()
    assert not BASELINES["srad"].needs_sigma and BASELINES["srad3d"].volumetric
