"""Blind-spot masking for self-supervised (Noise2Void / Noise2Self-style) training on noisy images alone."""

from __future__ import annotations

import torch

__all__ = ["blind_spot_mask"]


def blind_spot_mask(
    noisy: torch.Tensor, fraction: float, generator: torch.Generator, radius: int = 2, channel: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide a random subset of pixels by replacing each with a random neighbour (Krull et al., Noise2Void).

    A network trained to predict the *original noisy* value at the hidden pixels from the masked input cannot
    copy its input there, and because the noise is pixel-wise independent the best it can do is predict the
    clean value: the expected masked loss is the clean-image error plus the noise variance.

    Args:
        noisy: ``(B, C, *spatial)`` noisy batch.
        fraction: share of pixels hidden per image, e.g. 0.02.
        generator: the random source.
        radius: neighbours are drawn from the ``(2r+1)^d`` window around the pixel, excluding the pixel.
            Defaults to 2.
        channel: the channel to mask (the reference slice of a burst). Defaults to 0.

    Returns:
        ``(masked input, mask)``; ``mask`` is a boolean ``(B, 1, *spatial)`` tensor of the hidden pixels.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"`fraction` must be in (0, 1), got {fraction}.")
    b, _, *spatial = noisy.shape
    shape = (b, 1, *spatial)
    mask = torch.rand(shape, generator=generator) < fraction
    # random non-zero offsets per pixel and axis
    offsets = []
    for _ in spatial:
        offsets.append(torch.randint(-radius, radius + 1, shape, generator=generator))
    zero = torch.ones(shape, dtype=torch.bool)
    for off in offsets:
        zero &= off == 0
    offsets[-1] = torch.where(zero, torch.ones_like(offsets[-1]), offsets[-1])
    grids = torch.meshgrid(*[torch.arange(n) for n in spatial], indexing="ij")
    flat_index = torch.zeros(shape, dtype=torch.long)
    stride = 1
    for axis in reversed(range(len(spatial))):
        base = grids[axis].expand(shape)
        coordinate = base + offsets[axis]
        # mirror the offset at the border so the neighbour is never the pixel itself
        outside = (coordinate < 0) | (coordinate >= spatial[axis])
        coordinate = torch.where(outside, base - offsets[axis], coordinate).clamp(0, spatial[axis] - 1)
        flat_index += coordinate * stride
        stride *= spatial[axis]
    source = noisy[:, channel : channel + 1].reshape(b, 1, -1)
    replacement = torch.gather(source, 2, flat_index.reshape(b, 1, -1)).reshape(shape)
    masked = noisy.clone()
    target = masked[:, channel : channel + 1]
    target[mask] = replacement[mask].to(masked.dtype)
    return masked, mask
