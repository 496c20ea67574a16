"""DnCNN: a plain deep CNN that learns the noise residual (Zhang et al., TIP 2017)."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_norm_layer
from torch import nn

from ._utils import ActSpec, activation, check_positive_int, check_spatial_dims, reference_slice

__all__ = ["DnCNN"]


class DnCNN(nn.Module):
    """DnCNN denoiser for 2D slices or 3D volumes.

    K. Zhang, W. Zuo, Y. Chen, D. Meng, L. Zhang, "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for
    Image Denoising", IEEE TIP 26(7):3142-3155, 2017.

    Layout (``depth`` convs, all 3×3 or 3×3×3, zero "same" padding, bias in every conv as in KAIR):
    conv ``in_channels → features`` + ReLU, then ``depth - 2`` × [conv → BatchNorm (eps 1e-4) → ReLU], then conv
    ``features → out_channels``. The body predicts the noise and ``forward`` returns ``reference − noise``.

    - Input ``(B, in_channels, *spatial)``, float32, nominally in [0, 1]; output ``(B, out_channels, *spatial)``,
      the denoised image (not clipped). Any spatial size works (no down-sampling, ``size_multiple = 1``).
    - Residual output. The reference image is the whole input when ``in_channels == out_channels``; otherwise the
      centre frame (channel ``(in_channels - 1) // 2``) when ``out_channels == 1``, or the first
      ``out_channels`` channels when the last input channel is a noise-level map (see
      ``_utils.reference_slice``).
    - Receptive field ``2 * depth + 1`` px per axis (35 for depth 17, 41 for depth 20).
    - Parameter counts (2D, 1 channel, 64 features) match networks.md's KAIR-style derivation: depth 17
      (DnCNN-S) 557,057; depth 20 (DnCNN-B) 668,225.
    - Published results (BSD68 gray, PSNR dB, σ 15/25/50): DnCNN-S 31.73/29.23/26.23, DnCNN-B 31.61/29.16/26.23.
    - Deviations: none in the 2D layout (the subtraction inside ``forward`` is what KAIR does too). 3D uses
      3×3×3 convs; PyTorch's default initialisation is kept (the original trainers use orthogonal or MSRA init)
      and BatchNorm keeps PyTorch's default momentum (0.1); non-matching in/out channel counts follow the
      reference-channel rule above.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        features: channels of the hidden layers. Defaults to 64.
        depth: number of conv layers, >= 2. Defaults to 17.
        bias: add a bias to every conv. Defaults to True.
        norm: MONAI norm spec for the middle layers (``"batch"`` means BatchNorm with eps 1e-4), or ``None`` for
            no normalisation. Defaults to ``"batch"``.
        act: MONAI activation spec after the first and the middle convs. Defaults to in-place ReLU (the paper's).

    Raises:
        ValueError: for an unsupported ``spatial_dims``, a non-positive width/depth or an impossible
            ``in_channels``/``out_channels`` pair.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: int = 64,
        depth: int = 17,
        bias: bool = True,
        norm: str | tuple | None = "batch",
        act: ActSpec = ("relu", {"inplace": True}),
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        check_positive_int("features", features)
        check_positive_int("depth", depth, minimum=2)
        self._ref = reference_slice(in_channels, out_channels)
        if isinstance(norm, str) and norm.lower() == "batch":
            norm = ("batch", {"eps": 1e-4})
        conv = Conv[Conv.CONV, spatial_dims]
        layers: list[nn.Module] = [conv(in_channels, features, 3, padding=1, bias=bias), activation(act)]
        for _ in range(depth - 2):
            layers.append(conv(features, features, 3, padding=1, bias=bias))
            if norm is not None:
                layers.append(get_norm_layer(norm, spatial_dims=spatial_dims, channels=features))
            layers.append(activation(act))
        layers.append(conv(features, out_channels, 3, padding=1, bias=bias))
        self.body = nn.Sequential(*layers)
        self.receptive_field: int | None = 2 * depth + 1
        self.size_multiple = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x``.

        Args:
            x: noisy image ``(B, in_channels, *spatial)``.

        Returns:
            The denoised image ``(B, out_channels, *spatial)``: reference channels minus the predicted noise.
        """
        noise = self.body(x)
        return x[:, self._ref] - noise
