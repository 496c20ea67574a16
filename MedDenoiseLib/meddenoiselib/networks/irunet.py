"""IRUNet: Inception-Residual U-Net for blind denoising (Gil Zuluaga et al., EMBC 2021)."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv, Pool
from torch import nn

from ._utils import ActSpec, activation, check_positive_int, check_spatial_dims, pad_to_multiple

__all__ = ["IRUNet"]


def _he(conv: nn.Module) -> nn.Module:
    """He-uniform weights and zero bias (Keras ``he_uniform``), for convs followed by a ReLU."""
    nn.init.kaiming_uniform_(conv.weight, nonlinearity="relu")
    nn.init.zeros_(conv.bias)
    return conv


def _glorot(conv: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero bias (the Keras default), for linear convs."""
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class _InceptionBlock(nn.Module):
    """Three parallel 3×3 convs (f, 2f, dilation-2 f) with ReLU, concatenated, fused by a 1×1 conv, plus input."""

    def __init__(self, spatial_dims: int, f: int, act: ActSpec) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.branch_a = _he(conv(f, f, 3, padding=1))
        self.branch_b = _he(conv(f, 2 * f, 3, padding=1))
        self.branch_c = _he(conv(f, f, 3, padding=2, dilation=2))
        self.fuse = _glorot(conv(4 * f, f, 1))
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.act(self.branch_a(x)), self.act(self.branch_b(x)), self.act(self.branch_c(x))]
        return x + self.fuse(torch.cat(branches, dim=1))


class _InceptionReduction(nn.Module):
    """Halves the resolution: 3×3 stride-2 convs (f, 2f) with ReLU and a 2×2 average pool, concatenated and fused
    by a 1×1 conv, plus a linear 2×2 stride-2 conv shortcut."""

    def __init__(self, spatial_dims: int, f: int, act: ActSpec) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.shortcut = _glorot(conv(f, f, 2, stride=2))
        self.branch_a = _he(conv(f, f, 3, stride=2, padding=1))
        self.branch_b = _he(conv(f, 2 * f, 3, stride=2, padding=1))
        self.branch_c = Pool[Pool.AVG, spatial_dims](kernel_size=2, stride=2)
        self.fuse = _glorot(conv(4 * f, f, 1))
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.act(self.branch_a(x)), self.act(self.branch_b(x)), self.branch_c(x)]
        return self.shortcut(x) + self.fuse(torch.cat(branches, dim=1))


class _Up(nn.Module):
    """2×2 stride-2 transposed conv + ReLU, then an inception block."""

    def __init__(self, spatial_dims: int, f: int, act: ActSpec) -> None:
        super().__init__()
        self.up = _he(Conv[Conv.CONVTRANS, spatial_dims](f, f, 2, stride=2))
        self.act = activation(act)
        self.block = _InceptionBlock(spatial_dims, f, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.act(self.up(x)))


class IRUNet(nn.Module):
    """Inception-Residual U-Net (IRUNet) for 2D slices or 3D volumes.

    F. Gil Zuluaga, F. Bardozzo, J. I. Rios Patino, R. Tagliaferri, "Blind microscopy image denoising with a deep
    residual and multiscale encoder/decoder network", EMBC 2021, pp. 3483-3486, doi 10.1109/EMBC46164.2021.9630502.

    Layout (follows the authors' Keras code; every level has ``features`` = f channels):

    - head conv 3×3 ``in → f`` + ReLU;
    - encoder ``levels`` × [InceptionReduction → InceptionBlock] giving e1 … e_levels (the last is the
      bottleneck). InceptionReduction: 3×3 stride-2 convs to f and 2f (ReLU) and a 2×2 average pool, concatenated
      (4f), a 1×1 conv to f, plus a linear 2×2 stride-2 conv shortcut. InceptionBlock: 3×3 convs to f, 2f and a
      dilation-2 3×3 conv to f (ReLU), concatenated, a 1×1 conv to f, plus the input;
    - decoder ``levels - 1`` × [ConvTranspose 2×2 stride 2 + ReLU → InceptionBlock], each followed by an additive
      skip from the encoder level of the same resolution, except the deepest one: the code has that ``+ e3`` skip
      commented out, so it is off unless ``skip_deepest=True``;
    - tail ConvTranspose 2×2 stride 2 + ReLU → InceptionBlock → conv 1×1 → ``out_channels`` → sigmoid.

    - Input ``(B, in_channels, *spatial)``, float32, nominally in [0, 1]; output ``(B, out_channels, *spatial)``
      in (0, 1), the clean image predicted directly (no global residual).
    - Any spatial size works: the input is padded (reflection, or replication for tiny inputs) to a multiple of
      ``size_multiple = 2**levels`` (16 by default) and the output cropped back. ``receptive_field`` is ``None``
      (the encoder reaches the whole padded input at 96 px).
    - Parameters (2D, RGB, f = 16, 4 levels): 123,379, the count networks.md derives and the published checkpoint
      size confirms. 1-channel 2D: 123,057.
    - Published results (Kaggle histopathology 96×96 RGB, σ 10/25/50): 42.20/39.64/33.31 dB PSNR,
      0.9977/0.9925/0.9655 SSIM. These numbers are inflated by a data bug (every image carried the same fixed
      seed-0 noise field); the architecture here is unaffected by that bug.
    - Deviations: PyTorch's symmetric "same" padding for the stride-2 3×3 convs (Keras pads only at the end on
      even inputs; no parameter changes); internal padding to the size multiple (the original requires H, W to
      be multiples of 16); 3D version with 3×3×3 convs, 2×2×2 pooling and transposed convs (the original is 2D).
      Initialisation follows Keras: He-uniform for the ReLU convs, Glorot-uniform for linear ones, zero biases.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        features: channels at every level (f; the paper's "filters"). Defaults to 16.
        levels: number of stride-2 reductions, >= 1. Defaults to 4.
        skip_deepest: add the skip at the deepest decoder level (commented out in the original). Defaults to
            False.
        act: MONAI activation spec after every ReLU of the paper. Defaults to ``"relu"``.

    Raises:
        ValueError: for an unsupported ``spatial_dims`` or non-positive sizes.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: int = 16,
        levels: int = 4,
        skip_deepest: bool = False,
        act: ActSpec = "relu",
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        f = check_positive_int("features", features)
        self.levels = check_positive_int("levels", levels)
        self.skip_deepest = bool(skip_deepest)
        conv = Conv[Conv.CONV, spatial_dims]
        self.head = nn.Sequential(_he(conv(in_channels, f, 3, padding=1)), activation(act))
        self.encoder = nn.ModuleList(
            nn.Sequential(_InceptionReduction(spatial_dims, f, act), _InceptionBlock(spatial_dims, f, act))
            for _ in range(levels)
        )
        self.decoder = nn.ModuleList(_Up(spatial_dims, f, act) for _ in range(levels - 1))
        self.tail = _Up(spatial_dims, f, act)
        self.out = _glorot(conv(f, out_channels, 1))
        self.receptive_field: int | None = None
        self.size_multiple = 2**levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x``.

        Args:
            x: noisy image ``(B, in_channels, *spatial)``.

        Returns:
            The denoised image ``(B, out_channels, *spatial)`` in (0, 1), with the dtype of ``x`` (also under
            autocast).
        """
        xp, crop = pad_to_multiple(x, self.size_multiple)
        h = self.head(xp)
        skips = []
        for level in self.encoder:
            h = level(h)
            skips.append(h)
        # decoder step i restores the resolution of encoder output skips[-2 - i]
        for i, up in enumerate(self.decoder):
            h = up(h)
            if i > 0 or self.skip_deepest:
                h = h + skips[-2 - i]
        y = torch.sigmoid(self.out(self.tail(h)))
        return y[crop].to(x.dtype)
