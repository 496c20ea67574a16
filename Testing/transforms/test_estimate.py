"""The noise-level estimator is within 15 % of the true sigma on real images."""

from __future__ import annotations

import numpy as np
import pytest

from meddenoiselib.io import read_volume
from meddenoiselib.transforms import estimate_sigma, estimate_sigma_per_slice, fit_scaling


@pytest.mark.parametrize("fixture", ["ct_series_dir", "us_png", "xray_png"])
@pytest.mark.parametrize("sigma255", [10, 25, 50])
def test_estimate_within_15_percent_on_real_images(request, fixture, sigma255):
    image = read_volume(request.getfixturevalue(fixture)).array[0].astype(np.float32)
    clean = fit_scaling(image, "minmax").apply(image)
    noisy = clean + np.random.default_rng(sigma255).normal(0, sigma255 / 255, clean.shape).astype(np.float32)
    assert estimate_sigma(noisy) * 255 == pytest.approx(sigma255, rel=0.15)


def test_volume_estimate_uses_slices_and_per_slice_profile(ct_series_dir):
    hu = read_volume(ct_series_dir).array.astype(np.float32)
    clean = fit_scaling(hu, "minmax").apply(hu)
    rng = np.random.default_rng(0)
    levels = np.array([10, 20, 30, 40]) / 255
    noisy = clean + rng.normal(size=clean.shape).astype(np.float32) * levels[:, None, None]
    per_slice = estimate_sigma_per_slice(noisy)
    np.testing.assert_allclose(per_slice, levels, rtol=0.15)
    assert estimate_sigma(noisy) == pytest.approx(np.median(levels), rel=0.15)


def test_flat_tissue_noise_measures_inserted_ct_noise_in_hu(ct_series_dir):
    """The bundled chest CT (4 slices, ~27 HU of its own noise) with stationary correlated noise added (white noise
    blurred by a 1-pixel Gaussian, 20 HU): with the clean scan as the "output", ``after`` is the scan's own noise in
    its flattest body tissue and ``before`` adds the inserted noise on the same blocks, so ``before² - after²`` is
    the inserted noise's variance."""
    from scipy import ndimage

    from meddenoiselib.transforms.estimate import flat_tissue_noise

    clean = read_volume(ct_series_dir).array.astype(np.float64)
    white = np.random.default_rng(3).normal(0.0, 1.0, clean.shape)
    noise = ndimage.gaussian_filter(white, (0, 1, 1))
    noise *= 20.0 / noise.std()
    body = clean > -500
    measured = flat_tissue_noise(clean + noise, clean, body)
    assert measured is not None and measured.blocks >= 8
    assert 15 < measured.after < 35  # the scan's own noise in fat and muscle
    assert np.sqrt(measured.before**2 - measured.after**2) == pytest.approx(20.0, rel=0.1)
    itself = flat_tissue_noise(clean + noise, clean + noise, body)
    assert itself.after == pytest.approx(itself.before, rel=1e-9)
    # no body in the mask, or slices smaller than one block: too few blocks to say anything
    assert flat_tissue_noise(clean + noise, clean, np.zeros_like(body)) is None
    assert flat_tissue_noise(clean[:, :16, :16], clean[:, :16, :16]) is None


def test_a_masked_background_does_not_hide_the_noise(xray_png):
    """A background set to its minimum by a mask (skull-stripped MR, a collimated X-ray) holds no noise: over more than
    half of the image the wavelet band is exactly 0 there, and its median, the noise estimate, was 0. Coefficients
    whose support is all at the minimum are left out now, for the white-noise estimate and for the refinement's noise
    line; flat regions at other values stay in, so a noise-free piecewise-constant phantom still reads as noise-free."""
    from meddenoiselib.inference.collaborative_wiener import estimate_noise_level
    from meddenoiselib.transforms.estimate import finest_diagonal_band, unmasked_coefficients

    image = read_volume(xray_png).array[0].astype(np.float32)
    clean = fit_scaling(image, "minmax").apply(image)
    noisy = clean + np.random.default_rng(1).normal(0, 10 / 255, clean.shape).astype(np.float32)
    noisy[:, : int(0.6 * noisy.shape[1])] = noisy.min()  # 60 % masked
    assert estimate_sigma(noisy) * 255 == pytest.approx(10, rel=0.1)
    level = estimate_noise_level(noisy, clean)
    assert np.sqrt(level.floor) * 255 == pytest.approx(10, rel=0.15)
    # the coefficients left out are exactly 0 (odd sizes too), and nearly all others are not
    for crop in (noisy, noisy[1:, 3:]):
        band, unmasked = finest_diagonal_band(crop), unmasked_coefficients(crop)
        assert band.shape == unmasked.shape
        assert np.abs(band[~unmasked]).max() < 1e-9 and np.count_nonzero(band[unmasked]) > 0.99 * unmasked.sum()
    # noise-free: a constant image, and a phantom of flat discs on a background at its minimum
    assert estimate_sigma(np.zeros((64, 64), np.float32)) == 0.0
    y, x = np.mgrid[:256, :256]
    phantom = np.where((y - 128) ** 2 + (x - 128) ** 2 < 100**2, 0.6, 0.0).astype(np.float32)
    phantom[(y - 100) ** 2 + (x - 140) ** 2 < 30**2] = 0.9
    assert estimate_sigma(phantom) < 1e-6  # its edges, 8 % of the coefficients kept, leave the median at 0
