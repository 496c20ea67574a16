"""Training samples re-expressed on the scale the CLI gives a network: the min-max of the *noisy* file.

A user's noisy file is scaled by its own minimum and maximum, which lie a few noise standard deviations beyond the
clean image's range (the extremes of many Gaussian draws at the darkest and brightest pixels). A network trained
only on images whose clean range fills [0, 1] exactly learns to rely on that, and loses ~0.5 dB on the user's
path (docs/benchmarks_gaussian_cli.md). Training on a share of samples mapped the way the file would be closes
that gap without changing inference.
"""

from __future__ import annotations

import torch

__all__ = ["to_noisy_file_range", "FILE_RANGE_MARGIN"]

#: how far beyond the clean range the noisy file's minimum / maximum fall, in noise sigmas (uniform draw): about
#: sqrt(2 ln N) for N pixels at the extreme value (4.5 for a 512x512 background), less where few pixels are.
FILE_RANGE_MARGIN = (1.0, 5.0)


def to_noisy_file_range(
    clean: torch.Tensor, noisy: torch.Tensor, sigma: torch.Tensor, fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Map a random ``fraction`` of the samples by ``x -> (x + a) / (1 + a + b)``, with ``a, b = k·sigma`` and
    ``k ~ U(FILE_RANGE_MARGIN)`` drawn separately for the low and the high end.

    Args:
        clean: ``(B, C, *spatial)`` targets on the clean image's min-max scale ([0, 1]).
        noisy: ``(B, C, *spatial)`` the same samples with noise, same scale.
        sigma: ``(B,)`` noise standard deviation of each sample on that scale.
        fraction: share of samples to map, 0 to 1.
        generator: the random source (CPU); the draws cover the whole batch, so every DDP rank maps alike.

    Returns:
        ``(clean, noisy, sigma)`` with the chosen samples mapped (sigma divided by the same factor); the others
        unchanged.
    """
    b = clean.shape[0]
    low_k, high_k = FILE_RANGE_MARGIN
    chosen = torch.rand(b, generator=generator) < fraction
    margins = low_k + (high_k - low_k) * torch.rand(b, 2, generator=generator)
    level = sigma.detach().to(torch.float32).cpu().reshape(b)
    a = torch.where(chosen, margins[:, 0] * level, torch.zeros(b))
    span = torch.where(chosen, 1.0 + a + margins[:, 1] * level, torch.ones(b))
    view = (b,) + (1,) * (clean.ndim - 1)
    a_, span_ = a.view(view).to(clean.dtype), span.view(view).to(clean.dtype)
    return (clean + a_) / span_, (noisy + a_) / span_, sigma / span.to(sigma.dtype)
