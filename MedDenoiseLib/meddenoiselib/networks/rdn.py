"""RDN: Residual Dense Network for image restoration (Zhang et al., CVPR 2018 / TPAMI 2020)."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from torch import nn

from ._utils import ActSpec, activation, check_positive_int, check_spatial_dims, reference_slice

__all__ = ["RDN"]


class _RDB(nn.Module):
    """Residual dense block: ``layers`` densely connected conv 3×3 + ReLU layers (each sees the block input and all
    earlier outputs), local feature fusion by a 1×1 conv, and a local residual."""

    def __init__(self, spatial_dims: int, features: int, growth: int, layers: int, act: ActSpec) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.layers = nn.ModuleList(
            nn.Sequential(conv(features + j * growth, growth, 3, padding=1), activation(act)) for j in range(layers)
        )
        self.fuse = conv(features + layers * growth, features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in self.layers:
            h = torch.cat([h, layer(h)], dim=1)
        return x + self.fuse(h)


class RDN(nn.Module):
    """Residual Dense Network (RDN) denoiser for 2D slices or 3D volumes.

    Y. Zhang, Y. Tian, Y. Kong, B. Zhong, Y. Fu, "Residual Dense Network for Image Restoration", IEEE TPAMI
    43(7):2480-2495, 2021 (arXiv 1812.10477); first published for super-resolution at CVPR 2018.

    Layout (all convs with bias, zero padding, no normalisation, no pooling): shallow features conv 3×3
    ``in → features`` (F₋₁) and conv 3×3 (F₀); ``num_blocks`` residual dense blocks, each with
    ``layers_per_block`` conv 3×3 + ReLU layers of ``growth`` channels on the running concatenation, a 1×1 local
    fusion back to ``features`` and a local residual; global feature fusion: concat of all block outputs → conv
    1×1 → conv 3×3, plus F₋₁; final conv 3×3 → ``out_channels``; plus the input image.

    - Input ``(B, in_channels, *spatial)``, float32, nominally in [0, 1]; output ``(B, out_channels, *spatial)``,
      the denoised image (not clipped). Any spatial size works (``size_multiple = 1``).
    - Residual output: ``reference + tail``, with the reference channels of ``_utils.reference_slice``.
    - ``receptive_field`` = ``2 * (num_blocks * layers_per_block + 4) + 1`` px: 265 for config B.
    - Parameters (2D, 1 channel), as derived in networks.md: config B (D 16, C 8, G 64, G0 64) 21,973,377;
      config A (D 20, C 6, G 32, G0 64) 5,466,497.
    - Published results: the TPAMI denoising tables (AWGN σ 10/30/50/70) could not be read for networks.md;
      nothing is quoted here.
    - Deviations: an image-level residual is added at the output (networks.md could not verify whether the TPAMI
      denoising model has one; it helps short training and does not change the parameter count); 3D uses 3×3×3
      convs; PyTorch's default initialisation.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        num_blocks: number of residual dense blocks D. Defaults to 16.
        layers_per_block: conv layers per block C. Defaults to 8.
        growth: growth rate G (channels added by each dense layer). Defaults to 64.
        features: feature channels G0. Defaults to 64.
        act: MONAI activation spec inside the dense layers. Defaults to in-place ReLU (the paper's).

    Raises:
        ValueError: for an unsupported ``spatial_dims``, non-positive sizes or an impossible
            ``in_channels``/``out_channels`` pair.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        num_blocks: int = 16,
        layers_per_block: int = 8,
        growth: int = 64,
        features: int = 64,
        act: ActSpec = ("relu", {"inplace": True}),
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        check_positive_int("num_blocks", num_blocks)
        check_positive_int("layers_per_block", layers_per_block)
        check_positive_int("growth", growth)
        check_positive_int("features", features)
        self._ref = reference_slice(in_channels, out_channels)
        conv = Conv[Conv.CONV, spatial_dims]
        self.sfe1 = conv(in_channels, features, 3, padding=1)
        self.sfe2 = conv(features, features, 3, padding=1)
        self.blocks = nn.ModuleList(
            _RDB(spatial_dims, features, growth, layers_per_block, act) for _ in range(num_blocks)
        )
        self.gff = nn.Sequential(conv(num_blocks * features, features, 1), conv(features, features, 3, padding=1))
        self.tail = conv(features, out_channels, 3, padding=1)
        self.receptive_field: int | None = 2 * (num_blocks * layers_per_block + 4) + 1
        self.size_multiple = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x``.

        Args:
            x: noisy image ``(B, in_channels, *spatial)``.

        Returns:
            The denoised image ``(B, out_channels, *spatial)``: reference channels plus the predicted correction.
        """
        f_minus1 = self.sfe1(x)
        h = self.sfe2(f_minus1)
        outs = []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        h = self.gff(torch.cat(outs, dim=1)) + f_minus1
        return x[:, self._ref] + self.tail(h)
