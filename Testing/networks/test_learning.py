"""Each network's small preset learns to denoise a real CT crop in 150 Adam steps (>= +3 dB PSNR over the input).

The clean image is a 128×128 crop of a chest CT slice stored in ``Testing/data`` (see its README). Training uses
random 32×32 patches, batch 8, fresh Gaussian noise σ = 25/255 each step, an MSE loss, channels_last and the
library's own precision choice (bf16 autocast on CPUs with native bf16, float32 elsewhere, where emulated bf16 is
about 10x slower), the way the library trains on CPU; evaluation runs in float32 on the full image with a fixed noise
draw. Everything random comes from seeded generators, so the test is deterministic on a given machine.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from meddenoiselib.inference import autocast_dtype
from meddenoiselib.networks import create_network

DATA = Path(__file__).resolve().parents[1] / "data" / "ct_chest_slice095_crop128.npy"
SIGMA = 25.0 / 255.0
STEPS, BATCH, PATCH = 150, 8, 32
AUTOCAST = autocast_dtype(torch.device("cpu"), "auto")

# (registry name, constructor overrides, learning rate)
TEST_CASES = [
    ("dncnn-small", {}, 1e-3),
    ("dran-small", {}, 1e-3),
    ("irunet", {}, 2e-3),
    ("rdn-small", {}, 1e-3),
    ("conv-dae", {}, 2e-3),
    ("kpn-small", {}, 5e-4),
    ("kpn-burst3", {}, 5e-4),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 OpenMP threads run up to 10x slower under contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _psnr(x: torch.Tensor, ref: torch.Tensor) -> float:
    mse = torch.mean((x.float() - ref.float()) ** 2).item()
    return 10.0 * math.log10(1.0 / mse)


def _noisy(clean: torch.Tensor, frames: int, gen: torch.Generator) -> torch.Tensor:
    """``clean`` (B, 1, H, W) → (B, frames, H, W): independent noise on each copy."""
    reps = clean.expand(-1, frames, -1, -1)
    return reps + SIGMA * torch.randn(reps.shape, generator=gen)


@pytest.fixture(scope="module")
def clean() -> torch.Tensor:
    image = np.load(DATA)
    assert image.shape == (128, 128) and image.dtype == np.float32
    return torch.from_numpy(image)[None, None]


@pytest.mark.parametrize("name, overrides, lr", TEST_CASES, ids=[c[0] for c in TEST_CASES])
@pytest.mark.slow  # every preset trained until it denoises: about a minute on 2 cores
def test_network_learns_to_denoise(clean: torch.Tensor, name: str, overrides: dict, lr: float) -> None:
    torch.manual_seed(0)
    net = create_network(name, spatial_dims=2, **overrides)
    frames = net.in_channels
    gen = torch.Generator().manual_seed(1234)
    eval_noisy = _noisy(clean, frames, torch.Generator().manual_seed(99))
    centre = frames // 2
    with torch.no_grad():
        net.eval()
        psnr_init = _psnr(net(eval_noisy), clean)
    psnr_noisy = _psnr(eval_noisy[:, centre : centre + 1], clean)

    net.train()
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    size = clean.shape[-1]
    for _ in range(STEPS):
        ys = torch.randint(0, size - PATCH + 1, (BATCH,), generator=gen).tolist()
        xs = torch.randint(0, size - PATCH + 1, (BATCH,), generator=gen).tolist()
        target = torch.cat([clean[..., y : y + PATCH, x : x + PATCH] for y, x in zip(ys, xs, strict=True)])
        noisy = _noisy(target, frames, gen).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=AUTOCAST or torch.bfloat16, enabled=AUTOCAST is not None):
            denoised = net(noisy)
        loss = torch.mean((denoised.float() - target) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    net.eval()
    with torch.no_grad():
        denoised = net(eval_noisy.contiguous(memory_format=torch.channels_last))
    assert denoised.shape == clean.shape
    psnr_out = _psnr(denoised, clean)
    assert psnr_out >= psnr_noisy + 3.0, f"{name}: noisy {psnr_noisy:.2f} dB, denoised {psnr_out:.2f} dB"
    # training must improve on the untrained network too (for the burst KPN the untrained output is already the
    # frame mean, about +4.8 dB)
    assert psnr_out >= psnr_init + 1.0, f"{name}: untrained {psnr_init:.2f} dB, trained {psnr_out:.2f} dB"
