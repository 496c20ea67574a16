"""Collaborative Wiener refinement: BM3D's second stage with the network's output as the pilot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meddenoiselib import MedDenoiseError
from meddenoiselib.evaluation import psnr
from meddenoiselib.inference import Denoiser
from meddenoiselib.inference.collaborative_wiener import REFINED_MODELS, collaborative_wiener
from meddenoiselib.io import Volume, read_volume
from meddenoiselib.transforms import fit_scaling


@pytest.fixture(scope="module")
def brain() -> np.ndarray:
    """The 256x256 brain MR slice of the test data, min-max scaled to [0, 1]."""
    from pathlib import Path

    image = read_volume(Path(__file__).resolve().parents[1] / "data" / "mr_skimage_brain_slice5.png").array[0]
    return fit_scaling(image.astype(np.float32), "minmax").apply(image.astype(np.float32))


def _noisy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return (clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)).astype(np.float32)


def test_with_the_clean_image_as_pilot_it_is_the_oracle_wiener_filter(brain):
    """Blocks matched and gains taken on the true image: the filter keeps the signal and removes most of the noise
    (brain MR at sigma 0.06 of its range: 24.5 dB noisy, 41.1 dB filtered)."""
    noisy = _noisy(brain, 0.06, seed=5)
    filtered = collaborative_wiener(torch.from_numpy(noisy), torch.from_numpy(brain), 0.06).numpy()
    gain = psnr(filtered, brain, data_range=1.0) - psnr(noisy, brain, data_range=1.0)
    assert gain > 14.0


def test_refinement_sharpens_the_general_model_on_brain_mr(brain):
    """Sigma 15 on the 0-255 scale: kpn-general (8 views) 37.64 dB, refined 38.02 dB on this slice; the gain lies at
    the edges (the top 10 % of the clean image's gradient), where the network loses to BM3D."""
    from scipy import ndimage

    noisy = _noisy(brain, 15 / 255, seed=5)
    plain = Denoiser("kpn-general", device="cpu", refine="off").denoise_array(noisy)
    refined = Denoiser("kpn-general", device="cpu").denoise_array(noisy)
    assert psnr(refined, brain, data_range=1.0) > psnr(plain, brain, data_range=1.0) + 0.2
    gradient = np.hypot(*(ndimage.sobel(ndimage.gaussian_filter(brain, 1.0), a) for a in (0, 1)))
    edges = gradient > np.quantile(gradient, 0.9)
    assert np.mean((refined - brain)[edges] ** 2) < 0.9 * np.mean((plain - brain)[edges] ** 2)


def test_nothing_to_filter_returns_the_pilot():
    pilot = torch.rand(40, 40)
    assert torch.equal(collaborative_wiener(pilot + 0.1, pilot, 0.0), pilot)
    small = torch.rand(7, 40)
    assert torch.equal(collaborative_wiener(small + 0.1, small, 0.05), small)


def test_any_image_size_keeps_its_shape_and_flat_values(brain):
    """Sizes that the block grid does not divide are padded and cropped back; a flat image stays flat."""
    odd = _noisy(brain[:101, :77], 0.05, seed=1)
    out = collaborative_wiener(torch.from_numpy(odd), torch.from_numpy(brain[:101, :77]), 0.05)
    assert out.shape == (101, 77) and torch.isfinite(out).all()
    flat = torch.full((30, 45), 0.4)
    np.testing.assert_allclose(collaborative_wiener(flat, flat, 0.05).numpy(), 0.4, atol=1e-5)


def test_auto_refines_a_single_2d_image_of_the_general_model_only(brain):
    """``refine="auto"`` (the default) for the models with a measured share and one 2D image; never for volumes,
    other models unless asked; the report records the share."""
    noisy = _noisy(brain[:64, :64], 15 / 255, seed=2)
    general = Denoiser("kpn-general", device="cpu")
    general.denoise(Volume(noisy[np.newaxis]))
    assert general.last_report.refined == REFINED_MODELS["kpn-general"]
    general.denoise(Volume(np.stack([noisy, noisy[::-1]])))
    assert general.last_report.refined == 0.0
    other = Denoiser("kpn-small", device="cpu")
    other.denoise(Volume(noisy[np.newaxis]))
    assert other.last_report.refined == 0.0
    forced = Denoiser("kpn-small", device="cpu", refine="on")
    forced.denoise(Volume(np.stack([noisy, noisy[::-1]])))
    assert forced.last_report.refined > 0
    automatic = Denoiser(device="cpu", modality="xray")
    automatic.denoise(Volume(noisy[np.newaxis]))
    assert automatic.last_report.method == "kpn-general" and automatic.last_report.refined > 0


def test_refine_option_is_checked():
    with pytest.raises(MedDenoiseError, match="refine must be one of auto, on, off") as info:
        Denoiser("median", refine="yes")
    assert info.value.parameter == "refine"


def test_the_noise_level_follows_photon_noise_and_stays_flat_for_gaussian_noise(brain):
    """Poisson-Gaussian noise (100 counts at intensity 1, 1 count of read noise): variance x / 100 + 1e-4, so ~9x
    larger at 0.8 than at 0.08; white Gaussian noise: the same everywhere. The fit reads both within 25 %."""
    from meddenoiselib.inference.collaborative_wiener import estimate_noise_level

    rng = np.random.default_rng(3)
    photons = ((rng.poisson(brain * 100) + rng.normal(0, 1, brain.shape)) / 100).astype(np.float32)
    level = estimate_noise_level(photons, brain)
    for x in (0.2, 0.5, 0.8):
        truth = x / 100 + 1e-4
        assert abs(float(level.variance(torch.tensor(x))) - truth) < 0.25 * truth
    gaussian = _noisy(brain, 0.05, seed=3)
    level = estimate_noise_level(gaussian, brain)
    for x in (0.0, 0.5, 1.0):
        assert abs(float(level.variance(torch.tensor(x))) - 0.05**2) < 0.25 * 0.05**2
