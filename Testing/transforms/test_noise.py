"""Noise transforms have the right statistics and are reproducible under a seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meddenoiselib.transforms import (
    BatchNoise,
    RandPoissonNoise,
    RandPoissonNoised,
    RandSpeckleNoise,
    RandSpeckleNoised,
    make_noise_transform,
    parse_noise_spec,
)

FLAT = np.full((1, 256, 256), 0.5, dtype=np.float32)


def _apply(kind, level, seed, image=FLAT):
    transform = make_noise_transform(kind, level)
    transform.set_random_state(seed)
    return np.asarray(transform(image), dtype=np.float64)


def test_gaussian_mean_and_std():
    noisy = _apply("gaussian", 25, 0)
    assert abs(noisy.mean() - 0.5) < 0.002
    assert noisy.std() == pytest.approx(25 / 255, rel=0.02)


def test_rician_background_mean_is_sigma_sqrt_pi_over_2():
    sigma = 20 / 255
    background = _apply("rician", 20, 0, np.zeros((1, 256, 256), np.float32))
    assert background.min() >= 0
    assert background.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.02)
    # at high SNR Rician noise is nearly Gaussian with the same sigma
    bright = _apply("rician", 20, 1, np.full((1, 256, 256), 0.8, np.float32))
    assert bright.std() == pytest.approx(sigma, rel=0.03)


def test_poisson_variance_is_mean_over_peak():
    noisy = _apply("poisson", 100, 0)
    assert noisy.mean() == pytest.approx(0.5, rel=0.01)
    assert noisy.var() == pytest.approx(0.5 / 100, rel=0.03)
    with_read_noise = RandPoissonNoise(peak=100, gaussian_std=0.05).set_random_state(3)
    values = np.asarray(with_read_noise(FLAT), dtype=np.float64)
    assert values.var() == pytest.approx(0.5 / 100 + 0.05**2, rel=0.03)


@pytest.mark.parametrize("model", ["gamma", "gaussian"])
def test_speckle_is_multiplicative(model):
    transform = RandSpeckleNoise(sigma=0.3, model=model).set_random_state(0)
    ramp = np.linspace(0.1, 1.0, 256, dtype=np.float32)[None, None].repeat(256, axis=1)
    noisy = np.asarray(transform(ramp), dtype=np.float64)
    ratio = noisy / ramp
    assert ratio.mean() == pytest.approx(1.0, abs=0.01)
    assert ratio.std() == pytest.approx(0.3, rel=0.03)
    # the standard deviation grows with intensity
    assert noisy[..., -16:].std() > 5 * noisy[..., :16].std()


@pytest.mark.parametrize("kind, level", [("gaussian", 25), ("rician", 25), ("poisson", 50), ("speckle", 0.2)])
def test_same_seed_same_noise_other_seed_other_noise(kind, level):
    a, b, c = _apply(kind, level, 7), _apply(kind, level, 7), _apply(kind, level, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_torch_input_gives_torch_output():
    transform = RandSpeckleNoise(0.2).set_random_state(0)
    assert isinstance(transform(torch.full((1, 8, 8), 0.5)), torch.Tensor)


@pytest.mark.parametrize("cls, kwargs", [(RandPoissonNoised, {"peak": 50}), (RandSpeckleNoised, {"sigma": 0.2})])
def test_dictionary_versions_draw_independently_per_key_and_reproducibly(cls, kwargs):
    data = {"a": FLAT.copy(), "b": FLAT.copy(), "label": np.zeros(3)}
    first = cls(keys=["a", "b"], **kwargs).set_random_state(5)(data)
    second = cls(keys=["a", "b"], **kwargs).set_random_state(5)(data)
    np.testing.assert_array_equal(first["a"], second["a"])
    assert not np.array_equal(first["a"], first["b"])  # keys do not share one draw
    np.testing.assert_array_equal(first["label"], data["label"])


def test_batch_noise_levels_and_statistics():
    generator = torch.Generator().manual_seed(0)
    noise = BatchNoise(["gaussian"], (0, 50), generator)
    clean = torch.full((64, 1, 32, 32), 0.5)
    noisy, sigma = noise(clean)
    assert sigma.min() >= 0 and sigma.max() <= 50 / 255
    measured = (noisy - clean).flatten(1).std(dim=1)
    torch.testing.assert_close(measured, sigma, atol=0.01, rtol=0.05)
    again, _ = BatchNoise(["gaussian"], (0, 50), torch.Generator().manual_seed(0))(clean)
    torch.testing.assert_close(again, noisy)


def test_batch_noise_mixture_uses_each_model():
    noise = BatchNoise(["gaussian", "speckle", "poisson", "rician"], (10, 50), torch.Generator().manual_seed(1))
    noisy, sigma = noise(torch.full((32, 1, 16, 16), 0.5))
    assert torch.isfinite(noisy).all() and (sigma > 0).all()


def test_noise_spec_parsing():
    assert parse_noise_spec("gaussian:15") == ("gaussian", 15.0)
    assert parse_noise_spec("speckle")[1] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="unknown noise model"):
        parse_noise_spec("salt:3")
    with pytest.raises(ValueError, match="must be positive"):
        parse_noise_spec("poisson:0")
