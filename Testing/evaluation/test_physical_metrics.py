"""The metrics in physical units (meddenoiselib.evaluation.physical; ``evaluate --noise`` and the real-noise
benchmark) on synthetic images with known answers: body RMSE in HU, PSNR in the soft-tissue window, SSIM over a
mask, and the 10-90 % edge width."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from meddenoiselib.evaluation.physical import (
    body_mask,
    edge_levels,
    edge_sampler,
    edge_width_mm,
    masked_ssim,
    rmse,
    window_psnr,
)

#: a straight air / soft-tissue edge: tissue (0 HU) left of column 100, air (-1000 HU) right of it
CLEAN = np.where(np.mgrid[:120, :200][1] < 100, 0.0, -1000.0)[None]
PIXEL_MM = 0.5


def blurred(sigma_px: float, noise_hu: float = 0.0, seed: int = 0) -> np.ndarray:
    image = ndimage.gaussian_filter(CLEAN, (0, sigma_px, sigma_px), mode="nearest")
    return image + np.random.default_rng(seed).normal(0, noise_hu, image.shape) if noise_hu else image


def test_body_rmse_and_window_psnr():
    body = body_mask(CLEAN)
    assert body.sum() == 120 * 100
    shifted = CLEAN + 20.0
    assert rmse(CLEAN, shifted, body) == pytest.approx(20.0)
    assert window_psnr(CLEAN, shifted, body) == pytest.approx(20 * np.log10(400 / 20))
    # the window clips: +1000 HU in soft tissue counts as 240 HU off (the window's top), not 1000
    assert window_psnr(CLEAN, CLEAN + 1000.0, body) == pytest.approx(20 * np.log10(400 / 240))
    assert masked_ssim(CLEAN, CLEAN, body, 400.0) == pytest.approx(1.0)
    assert masked_ssim(CLEAN, blurred(0, noise_hu=50.0), body, 400.0) < 0.5


@pytest.mark.parametrize("sigma_px", [1.5, 2.0, 3.0])
def test_edge_width_of_a_gaussian_edge(sigma_px):
    clean = blurred(1.0, noise_hu=5.0)
    sampler = edge_sampler(clean, PIXEL_MM)
    assert sampler.count > 50
    levels = edge_levels(sampler.t_mm, sampler.mean_profile(clean))
    width = edge_width_mm(sampler.t_mm, sampler.mean_profile(blurred(sigma_px)), levels)
    # the 10-90 % rise of a Gaussian-blurred step is 2.563 sigma
    assert width == pytest.approx(2.563 * sigma_px * PIXEL_MM, rel=0.05)
