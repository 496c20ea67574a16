"""Training samples on the noisy file's min-max scale: the map the CLI applies to a user's file, simulated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meddenoiselib.io import read_volume
from meddenoiselib.training.file_range import FILE_RANGE_MARGIN, to_noisy_file_range


def test_real_files_noisy_extremes_lie_in_the_simulated_margins(xray_png, us_png):
    """The CLI maps a noisy file by its own min / max: on real images with Gaussian noise those extremes lie
    between 1 and 5 sigma beyond the clean range, the margins the training map draws from."""
    rng = np.random.default_rng(0)
    for path in (xray_png, us_png):
        clean = read_volume(path).array.astype(np.float64)[0]
        clean = (clean - clean.min()) / (clean.max() - clean.min())
        for sigma in (15 / 255, 50 / 255):
            noisy = clean + rng.normal(0, sigma, clean.shape)
            low, high = -noisy.min() / sigma, (noisy.max() - 1) / sigma
            assert FILE_RANGE_MARGIN[0] <= low <= FILE_RANGE_MARGIN[1], (path.name, sigma, low)
            assert FILE_RANGE_MARGIN[0] <= high <= FILE_RANGE_MARGIN[1], (path.name, sigma, high)


def test_chosen_samples_are_mapped_affinely_and_the_rest_unchanged():
    generator = torch.Generator().manual_seed(0)
    clean = torch.rand(64, 1, 8, 8)
    sigma = torch.full((64,), 0.1)
    noisy = clean + sigma.view(-1, 1, 1, 1) * torch.randn(clean.shape, generator=generator)
    new_clean, new_noisy, new_sigma = to_noisy_file_range(clean, noisy, sigma, 0.5, generator)
    kept = torch.isclose(new_sigma, sigma)
    assert 16 < int(kept.sum()) < 48  # about half
    torch.testing.assert_close(new_clean[kept], clean[kept], rtol=0, atol=0)
    torch.testing.assert_close(new_noisy[kept], noisy[kept], rtol=0, atol=0)
    mapped = ~kept
    span = sigma[mapped] / new_sigma[mapped]  # 1 + a + b
    assert torch.all(span >= 1 + 2 * FILE_RANGE_MARGIN[0] * 0.1 - 1e-6)
    assert torch.all(span <= 1 + 2 * FILE_RANGE_MARGIN[1] * 0.1 + 1e-6)
    # one affine map per sample, the same for the target and the input: the noise is only rescaled
    residual_before = (noisy - clean)[mapped] / span.view(-1, 1, 1, 1)
    torch.testing.assert_close((new_noisy - new_clean)[mapped], residual_before, rtol=1e-5, atol=1e-6)
    # the clean range [0, 1] lands inside (0, 1), offset by a = k·sigma
    offset = new_clean[mapped].flatten(1)[:, 0] - clean[mapped].flatten(1)[:, 0] / span
    assert torch.all(offset * span >= FILE_RANGE_MARGIN[0] * 0.1 - 1e-5)
    assert torch.all(offset * span <= FILE_RANGE_MARGIN[1] * 0.1 + 1e-5)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_fraction_zero_changes_nothing_and_one_maps_everything(fraction):
    clean = torch.rand(8, 3, 6, 6)
    sigma = torch.full((8,), 0.05)
    out = to_noisy_file_range(clean, clean + 0.01, sigma, fraction, torch.Generator().manual_seed(1))
    changed = ~torch.isclose(out[2], sigma)
    assert int(changed.sum()) == (0 if fraction == 0 else 8)


def test_config_refuses_a_fraction_outside_zero_to_one(xray_png):
    from meddenoiselib.training import TrainConfig

    with pytest.raises(ValueError, match="noisy_range_fraction"):
        TrainConfig(inputs=[str(xray_png)], noisy_range_fraction=1.5).validate()
