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
