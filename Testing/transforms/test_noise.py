"""Noise models have the right statistics in their own units and are reproducible under a seed; training and
simulation draw from the same code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import gamma as gamma_function

from meddenoiselib.transforms import (
    BatchNoise,
    RandNoise,
    RandNoised,
    make_noise_transform,
    parse_noise_range,
    parse_noise_spec,
)
from meddenoiselib.transforms.noise import LevelUnit, NoiseKind, samplers

FLAT = np.full((1, 256, 256), 0.5, dtype=np.float32)


def _apply(spec, seed, image=FLAT):
    transform = RandNoise(spec)
    transform.set_random_state(seed)
    return np.asarray(transform(image), dtype=np.float64)


def test_gaussian_mean_and_std():
    noisy = _apply("gaussian:25", 0)
    assert abs(noisy.mean() - 0.5) < 0.002
    assert noisy.std() == pytest.approx(25 / 255, rel=0.02)


def test_percent_levels_refer_to_the_99th_percentile():
    ramp = np.linspace(0, 2.0, 256 * 256, dtype=np.float32).reshape(1, 256, 256)
    noisy = _apply("gaussian:3%", 0, ramp)
    assert (noisy - ramp).std() == pytest.approx(0.03 * np.percentile(ramp, 99), rel=0.02)


def test_rician_background_mean_is_sigma_sqrt_pi_over_2():
    sigma = 20 / 255
    background = _apply("rician:20", 0, np.zeros((1, 256, 256), np.float32))
    assert background.min() >= 0
    assert background.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.05)
    # at high SNR Rician noise is nearly Gaussian with the same sigma
    bright = _apply("rician:20", 1, np.full((1, 256, 256), 0.8, np.float32))
    assert bright.std() == pytest.approx(sigma, rel=0.03)


@pytest.mark.parametrize("coils", [4, 8])
def test_noncentral_chi_background_mean_grows_with_coils(coils):
    sigma = 20 / 255
    background = _apply(f"noncentral-chi:20,{coils}", 0, np.zeros((1, 256, 256), np.float32))
    expected = sigma * math.sqrt(2) * gamma_function(coils + 0.5) / gamma_function(coils)
    assert background.mean() == pytest.approx(expected, rel=0.05)
    assert background.mean() > 2 * sigma * np.sqrt(np.pi / 2)


def test_poisson_gaussian_variance_is_mean_over_peak_plus_read_noise():
    noisy = _apply("poisson:100", 0)
    assert noisy.mean() == pytest.approx(0.5, rel=0.01)
    assert noisy.var() == pytest.approx(0.5 / 100, rel=0.03)
    with_read = _apply("poisson-gaussian:100,5", 3)
    assert with_read.var() == pytest.approx(0.5 / 100 + (5 / 100) ** 2, rel=0.03)


def test_speckle_is_gamma_multiplicative():
    ramp = np.linspace(0.1, 1.0, 256, dtype=np.float32)[None, None].repeat(256, axis=1)
    noisy = _apply("speckle:0.3", 0, ramp)
    ratio = noisy / ramp
    assert ratio.min() > 0  # gamma factors are positive; Gaussian-multiplicative ones would not be
    assert ratio.mean() == pytest.approx(1.0, abs=0.01)
    assert ratio.std() == pytest.approx(0.3, rel=0.03)
    skewness = np.mean((ratio - ratio.mean()) ** 3) / ratio.std() ** 3
    assert skewness == pytest.approx(2 * 0.3, rel=0.15)  # Gamma(L, 1/L) skewness is 2/sqrt(L)


def test_standard_gamma_matches_moments_for_small_and_large_shape():
    generator = torch.Generator().manual_seed(0)
    for k in (0.5, 3.0, 25.0):
        draws = samplers.standard_gamma(torch.tensor(k, dtype=torch.float64), (200_000,), generator)
        assert float(draws.mean()) == pytest.approx(k, rel=0.02)
        assert float(draws.var()) == pytest.approx(k, rel=0.04)


@pytest.mark.parametrize("spec", ["gaussian:25", "rician:25", "noncentral-chi:25,4", "poisson:50", "speckle:0.2"])
def test_same_seed_same_noise_other_seed_other_noise(spec):
    a, b, c = _apply(spec, 7), _apply(spec, 7), _apply(spec, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("spec", ["gaussian:25", "rician:25", "noncentral-chi:25,4", "poisson:50", "speckle:0.2"])
def test_training_batches_and_simulate_draw_the_same_noise(spec):
    """BatchNoise (training) and RandNoise (simulate, evaluation) run the same sampler: one seed, one noise."""
    fixed = parse_noise_spec(spec)
    level_range = parse_noise_range(
        f"{spec.split(':')[0]}:{fixed.level:g}-{fixed.level:g}"
        + (f",{fixed.coils}" if fixed.kind == NoiseKind.NONCENTRAL_CHI else "")
    )
    transform = RandNoise(fixed).set_random_state(3)
    simulated = np.asarray(transform(FLAT))
    batch = BatchNoise([level_range], generator=torch.Generator().manual_seed(transform.generator_seed))
    trained, _ = batch(torch.from_numpy(FLAT)[None])
    np.testing.assert_array_equal(trained[0].numpy(), simulated)


def test_torch_input_gives_torch_output():
    transform = make_noise_transform("speckle", 0.2).set_random_state(0)
    assert isinstance(transform(torch.full((1, 8, 8), 0.5)), torch.Tensor)


@pytest.mark.parametrize("spec", ["poisson:50", "speckle:0.2"])
def test_dictionary_version_draws_independently_per_key_and_reproducibly(spec):
    data = {"a": FLAT.copy(), "b": FLAT.copy(), "label": np.zeros(3)}
    first = RandNoised(keys=["a", "b"], spec=spec).set_random_state(5)(data)
    second = RandNoised(keys=["a", "b"], spec=spec).set_random_state(5)(data)
    np.testing.assert_array_equal(first["a"], second["a"])
    assert not np.array_equal(first["a"], first["b"])  # keys do not share one draw
    np.testing.assert_array_equal(first["label"], data["label"])


def test_batch_noise_levels_and_statistics():
    noise = BatchNoise(["gaussian:0-50"], torch.Generator().manual_seed(0))
    clean = torch.full((64, 1, 32, 32), 0.5)
    noisy, sigma = noise(clean)
    assert sigma.min() >= 0 and sigma.max() <= 50 / 255
    measured = (noisy - clean).flatten(1).std(dim=1)
    torch.testing.assert_close(measured, sigma, atol=0.01, rtol=0.05)
    again, _ = BatchNoise(["gaussian:0-50"], torch.Generator().manual_seed(0))(clean)
    torch.testing.assert_close(again, noisy)


def test_batch_noise_mixture_uses_each_model_in_its_own_units():
    noise = BatchNoise(
        ["gaussian:10-50", "speckle:0.1-0.4", "poisson:20-200", "rician:10-50"], torch.Generator().manual_seed(1)
    )
    noisy, sigma = noise(torch.full((64, 1, 16, 16), 0.5))
    assert torch.isfinite(noisy).all() and (sigma > 0).all()


def test_noise_spec_parsing_and_units():
    spec = parse_noise_spec("gaussian:15")
    assert (spec.kind, spec.level, spec.unit) == (NoiseKind.GAUSSIAN, 15.0, LevelUnit.SCALE255)
    assert parse_noise_spec("speckle").level == pytest.approx(0.2)
    assert parse_noise_spec("rician:3%").unit == LevelUnit.PERCENT
    ct = parse_noise_spec("ct-lowdose:0.25,kernel=hann,views=540,electronic=4")
    assert (ct.level, ct.unit, ct.scanner.kernel, ct.scanner.views, ct.scanner.electronic_noise) == (
        0.25,
        LevelUnit.DOSE,
        "hann",
        540,
        4.0,
    )
    assert parse_noise_spec("ct-lowdose:25HU").unit == LevelUnit.HU
    assert str(parse_noise_spec("poisson:100")) == "poisson-gaussian:100"
    ranges = parse_noise_range("ct-lowdose:5HU-100HU,kernel=shepp-logan|hann,views=540|1080,electronic=4|12")
    assert (ranges.low, ranges.high, ranges.kernels, ranges.views, ranges.electronic, ranges.log_uniform) == (
        5.0,
        100.0,
        ("shepp-logan", "hann"),
        (540, 1080),
        (4.0, 12.0),
        True,
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        ("salt:3", "unknown noise model"),
        ("poisson:0", "must be above 0"),
        ("gaussian:nan", "not a number"),
        ("gaussian:inf", "not a number"),
        ("poisson:inf", "not a number"),
        ("gaussian:-1", "at least 0"),
        ("speckle:3%", "not valid for speckle"),
        ("ct-lowdose:0.25,kernel=sharpest", "unknown CT kernel"),
        ("ct-lowdose:0.25,views=3", "views"),
        ("ct-lowdose:0.25,slices=3", "unknown ct-lowdose option"),
        ("noncentral-chi:3%", "needs SIGMA,COILS"),
        ("gaussian:0.1-0.5", "is a range"),
    ],
)
def test_bad_noise_specs_are_refused_with_the_reason(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_noise_spec(bad)
