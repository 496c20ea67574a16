"""Every shipped model loads safely, has a complete model card, and denoises a held-back real CT slice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from meddenoiselib.evaluation import psnr, reference_slices
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.transforms import make_noise_transform
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


def _held_back_case(card: dict) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(clean, noisy, sigma for the median baseline, required PSNR gain) matching the model's noise model.

    Gaussian models: a real chest CT slice not used for training (bundled sample, slice 100) with sigma 25.
    Rician MR models: a held-out head MR slice (skimage brain.tiff, slice 5) with Rician sigma 25.
    Speckle models: a held-out ultrasound image with multiplicative speckle of relative sigma 0.2.
    """
    noise = card["training"]["noise"]
    kinds = {entry.split(":")[0] for entry in noise} if isinstance(noise, list) else set()
    if "speckle" in kinds:
        volume = read_volume(Path(__file__).resolve().parents[1] / "data" / "us_hc18_131_HC.png")
        _, clean = reference_slices(volume, "us", max_slices=1)[0]
        transform, sigma, gain = make_noise_transform("speckle", 0.2), 0.1, 3.0
    elif kinds & {"rician", "noncentral-chi"}:
        volume = read_volume(Path(__file__).resolve().parents[1] / "data" / "mr_skimage_brain_slice5.png")
        _, clean = reference_slices(volume, "mr", max_slices=1)[0]
        transform, sigma, gain = make_noise_transform("rician", 25), 25 / 255, 3.0
    else:
        volume = read_volume(WEIGHTS_DIR.parent / "samples" / "ct_chest")
        _, clean = reference_slices(volume, "ct", max_slices=2)[1]
        transform, sigma = make_noise_transform("gaussian", 25), 25 / 255
        gain = 5.0 if card["training"]["mode"] == "self-supervised" else 6.0
    transform.set_random_state(11)
    noisy = np.asarray(transform(clean[None]), dtype=np.float32)[0]
    return clean, noisy, sigma, gain


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_denoises_held_back_data(name):
    card = load_model_card(name)
    clean, noisy, sigma, required = _held_back_case(card)
    denoised = Denoiser(name, device="cpu").denoise_array(noisy)
    median = Denoiser("median").denoise_array(noisy, sigma=sigma)
    gain = psnr(clean, denoised) - psnr(clean, noisy)
    assert gain >= required, f"{name}: +{gain:.2f} dB"
    assert psnr(clean, denoised) > psnr(clean, median)
    assert np.isfinite(denoised).all()


BURST = [name for name in SHIPPED if load_model_card(name)["architecture"].get("burst", 1) > 1]


@pytest.mark.parametrize("name", BURST)
def test_burst_model_uses_the_neighbouring_slices(name):
    """On three adjacent held-back CT slices with independent noise, the centre slice comes out better when the
    model sees the real noisy neighbours than when it sees the noisy centre slice three times (central 256x256 of
    the body: +1.5 / +1.3 dB for kpn-burst3 / kpn-ct-burst3, +1.6 / +1.8 dB on the whole 512x512 slice)."""
    volume = read_volume(WEIGHTS_DIR.parent / "samples" / "ct_chest")
    stack = volume.array[1:4, 128:384, 128:384].astype(np.float32)  # slices 099-101, centre 100
    low, high = stack[1].min(), stack[1].max()
    clean = (stack - low) / (high - low)
    transform = make_noise_transform("gaussian", 25)
    transform.set_random_state(5)
    noisy = np.asarray(transform(clean), dtype=np.float32)
    denoiser = Denoiser(name, device="cpu")
    with_neighbours = psnr(clean[1], denoiser.denoise_array(noisy)[1])
    centre_only = psnr(clean[1], denoiser.denoise_array(np.repeat(noisy[1:2], 3, axis=0))[1])
    assert with_neighbours > centre_only + 0.3, f"{with_neighbours:.2f} vs {centre_only:.2f} dB"


def test_self_ensemble_improves_the_default_model():
    """The 8-view geometric self-ensemble lowers the default model's error on the held-back CT slice
    (measured on the 14 benchmark references: +0.17/+0.16/+0.24 dB at sigma 15/25/50 for kpn-small)."""
    name = Denoiser("default").method
    clean, noisy, _, _ = _held_back_case(load_model_card(name))
    single = psnr(clean, Denoiser(name, device="cpu", ensemble=1).denoise_array(noisy))
    ensembled = psnr(clean, Denoiser(name, device="cpu", ensemble=8).denoise_array(noisy))
    assert ensembled > single + 0.05, f"{ensembled:.2f} vs {single:.2f} dB"
