"""Every shipped model loads safely, has a complete model card, and denoises a held-back real CT slice."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from meddenoiselib.evaluation import psnr, reference_slices
from meddenoiselib.evaluation.compare import add_noise
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.weights import WEIGHTS_DIR, list_shipped_weights, load_model_card, load_pretrained, sha256_of

SHIPPED = list_shipped_weights()


def test_models_are_shipped():
    assert "dncnn-small" in SHIPPED or "dncnn" in SHIPPED
    assert len(SHIPPED) >= 1


@pytest.mark.parametrize("name", SHIPPED)
def test_model_card_is_complete_and_hash_matches(name):
    card = load_model_card(name)
    assert card["sha256"] == sha256_of(WEIGHTS_DIR / f"{name}.safetensors")
    training = card["training"]
    for key in ("data", "noise", "steps", "patches_seen", "wall_time_s", "hardware", "mode", "validation_data"):
        assert training.get(key) not in (None, "", []), key
    assert card["validation"]["psnr"] > 25 and 0 < card["validation"]["ssim"] <= 1
    assert (WEIGHTS_DIR / f"{name}.safetensors").stat().st_size < 10 * 2**20  # a few MB at most
    # held-out files never appear in the training data
    assert not set(training["data"]) & set(training["validation_data"])
    assert not any("slice09" in f or "slice10" in f for f in training["data"])


@pytest.mark.parametrize("name", SHIPPED)
def test_weights_load_as_safetensors_without_pickle(name):
    model, card = load_pretrained(name)
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == card["architecture"]["parameters"]
    with open(WEIGHTS_DIR / f"{name}.safetensors", "rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_length))
    assert all(v["dtype"] in ("F32", "I64", "F16", "BF16") for k, v in header.items() if k != "__metadata__")


@pytest.fixture(scope="module")
def held_back_slice():
    """A real chest CT slice not used for training (bundled sample, slice 100), with sigma 25 noise."""
    volume = read_volume(WEIGHTS_DIR.parent / "samples" / "ct_chest")
    _, clean = reference_slices(volume, "ct", max_slices=2)[1]
    return clean, add_noise(clean, 25.0, seed=11)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_denoises_held_back_ct(name, held_back_slice):
    clean, noisy = held_back_slice
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    denoised = Denoiser(name, device="cpu").denoise_array(noisy)
    median = Denoiser("median").denoise_array(noisy, sigma=25 / 255)
    gain = psnr(clean, denoised) - psnr(clean, noisy)
    card = load_model_card(name)
    required = 5.0 if card["training"]["mode"] == "self-supervised" else 6.0
    assert gain >= required, f"{name}: +{gain:.2f} dB"
    assert psnr(clean, denoised) > psnr(clean, median)
    assert np.isfinite(denoised).all()
