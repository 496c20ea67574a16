"""Convolutional denoising autoencoder (Gondara, ICDMW 2016)."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Act, Conv, Pool
from torch import nn

from ._utils import check_positive_int, check_spatial_dims, pad_to_multiple, reference_slice

__all__ = ["ConvDAE"]


class ConvDAE(nn.Module):
    """Convolutional denoising autoencoder (CNN-DAE) for 2D slices or 3D volumes.

    L. Gondara, "Medical image denoising using convolutional denoising autoencoders", IEEE ICDMW 2016,
    pp. 241-246, doi 10.1109/ICDMW.2016.0041 (arXiv 1608.04667).

    Layout (all convs 3×3 or 3×3×3 with bias and zero padding): encoder ``levels`` × [``convs_per_level`` ×
    (conv → ``features`` + ReLU), max-pool 2]; decoder ``levels`` × [``convs_per_level`` × (conv + ReLU),
    nearest-neighbour upsample ×2]; conv → ``out_channels``; sigmoid. With the defaults this is the recalled
    Gondara layout (64-channel convs, two pooling levels, a 16×16×64 code for a 64×64 input).

    - Input ``(B, in_channels, *spatial)``, float32, nominally in [0, 1]; output ``(B, out_channels, *spatial)``
      with the dtype of ``x``.
    - ``residual=False`` (the paper): the clean image is predicted directly, output in (0, 1).
    - ``residual=True`` (this library's addition): the sigmoid head predicts a correction ``c = 2·sigmoid(z) − 1``
      in (−1, 1) and the output is ``reference − c``, not clamped (reference channels as in
      ``_utils.reference_slice``). The head conv then starts at zero weight and bias, so an untrained network is
      the identity (``c = 0``) and training starts from the noisy input rather than a grey image.
    - Any spatial size works: the input is padded (reflection, or replication for tiny inputs) to a multiple of
      ``size_multiple = 2**levels`` and the output cropped back.
    - ``receptive_field``: 24 px with the defaults (computed for any setting; nearest upsampling adds nothing).
    - Parameters (2D, 1 channel, defaults): 112,001, matching networks.md's derivation for the recalled layout.
    - Published results: the paper's SSIM table was not retrieved for networks.md; a third-party chest X-ray
      comparison reads about SSIM 0.81 / PSNR 27.3 dB from a bar chart (unknown noise level).
    - Deviations: the paper's Keras model has fixed 64×64 inputs; the residual head, ``convs_per_level`` and 3D
      are additions. The layout itself is recalled (networks.md marks it unverified).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        features: channels of every hidden conv. Defaults to 64.
        levels: number of pooling / upsampling levels. Defaults to 2.
        convs_per_level: conv + ReLU layers before each pooling and each upsampling. Defaults to 1.
        residual: predict a correction to the input instead of the clean image (see above). Defaults to False.

    Raises:
        ValueError: for an unsupported ``spatial_dims``, non-positive sizes or (with ``residual=True``) an
            impossible ``in_channels``/``out_channels`` pair.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: int = 64,
        levels: int = 2,
        convs_per_level: int = 1,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        check_positive_int("features", features)
        check_positive_int("levels", levels)
        check_positive_int("convs_per_level", convs_per_level)
        self.residual = bool(residual)
        self._ref = reference_slice(in_channels, out_channels) if self.residual else None
        conv = Conv[Conv.CONV, spatial_dims]
        relu = Act[Act.RELU]
        encoder: list[nn.Module] = []
        decoder: list[nn.Module] = []
        rf, jump = 1, 1
        c_in = in_channels
        for _ in range(levels):
            for _ in range(convs_per_level):
                encoder += [conv(c_in, features, 3, padding=1), relu(inplace=True)]
                c_in = features
                rf += 2 * jump
            encoder.append(Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2))
            rf += jump
            jump *= 2
        for _ in range(levels):
            for _ in range(convs_per_level):
                decoder += [conv(features, features, 3, padding=1), relu(inplace=True)]
                rf += 2 * jump
            decoder.append(nn.Upsample(scale_factor=2, mode="nearest"))
            jump //= 2
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        self.head = conv(features, out_channels, 3, padding=1)
        if self.residual:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.receptive_field: int | None = rf + 2
        self.size_multiple = 2**levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x``.

        Args:
            x: noisy image ``(B, in_channels, *spatial)``.

        Returns:
            The denoised image ``(B, out_channels, *spatial)`` with the dtype of ``x``.
        """
        xp, crop = pad_to_multiple(x, self.size_multiple)
        y = torch.sigmoid(self.head(self.decoder(self.encoder(xp))))[crop]
        if self.residual:
            return x[:, self._ref] - (2 * y - 1)
        return y.to(x.dtype)
