"""Convolutional denoising autoencoder (Gondara, ICDMW 2016)."""

from __future__ import annotations

import torch
from monai.networks.layers.factories import Conv, Pool
from torch import nn

from ._utils import ActSpec, activation, check_positive_int, check_spatial_dims, pad_to_multiple

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
    - The clean image is predicted directly (no residual), output in (0, 1) through the sigmoid, as in the paper.
    - ``refine_convs > 0`` (this library's addition): the decoder output is concatenated with the noisy input and
      passed through ``refine_convs`` full-resolution conv + ReLU layers before the head. Two pooling levels
      discard the fine detail a denoiser must keep (the plain autoencoder's output is smooth, so it loses to
      non-local means at low noise); this single full-resolution skip gives the head the input's detail back
      while the autoencoder still supplies the denoised context. A residual head (input minus a correction) was
      tried instead and fails: a pooled-and-upsampled branch cannot represent per-pixel noise.
    - Any spatial size works: the input is padded (reflection, or replication for tiny inputs) to a multiple of
      ``size_multiple = 2**levels`` and the output cropped back.
    - ``receptive_field``: 24 px with the defaults (computed for any setting; nearest upsampling adds nothing).
    - Parameters (2D, 1 channel, defaults): 112,001, matching networks.md's derivation for the recalled layout.
    - Published results: the paper's SSIM table was not retrieved for networks.md; a third-party chest X-ray
      comparison reads about SSIM 0.81 / PSNR 27.3 dB from a bar chart (unknown noise level).
    - Deviations: the paper's Keras model has fixed 64×64 inputs; the refinement skip, ``convs_per_level`` and 3D
      are additions. The layout itself is recalled (networks.md marks it unverified).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        features: channels of every hidden conv. Defaults to 64.
        levels: number of pooling / upsampling levels. Defaults to 2.
        convs_per_level: conv + ReLU layers before each pooling and each upsampling. Defaults to 1.
        refine_convs: full-resolution conv + ReLU layers on [decoder output, noisy input] before the head (see
            above); 0 is the paper's autoencoder. Defaults to 0.
        act: MONAI activation spec after every hidden conv. Defaults to in-place ReLU (the paper's).

    Raises:
        ValueError: for an unsupported ``spatial_dims`` or non-positive sizes.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: int = 64,
        levels: int = 2,
        convs_per_level: int = 1,
        refine_convs: int = 0,
        act: ActSpec = ("relu", {"inplace": True}),
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        check_positive_int("features", features)
        check_positive_int("levels", levels)
        check_positive_int("convs_per_level", convs_per_level)
        if refine_convs < 0:
            raise ValueError(f"`refine_convs` must be non-negative, got {refine_convs}.")
        conv = Conv[Conv.CONV, spatial_dims]
        encoder: list[nn.Module] = []
        decoder: list[nn.Module] = []
        rf, jump = 1, 1
        c_in = in_channels
        for _ in range(levels):
            for _ in range(convs_per_level):
                encoder += [conv(c_in, features, 3, padding=1), activation(act)]
                c_in = features
                rf += 2 * jump
            encoder.append(Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2))
            rf += jump
            jump *= 2
        for _ in range(levels):
            for _ in range(convs_per_level):
                decoder += [conv(features, features, 3, padding=1), activation(act)]
                rf += 2 * jump
            decoder.append(nn.Upsample(scale_factor=2, mode="nearest"))
            jump //= 2
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        refine: list[nn.Module] = []
        c_in = features + in_channels
        for _ in range(refine_convs):
            refine += [conv(c_in, features, 3, padding=1), activation(act)]
            c_in = features
            rf += 2
        self.refine = nn.Sequential(*refine) if refine_convs else None
        self.head = conv(features, out_channels, 3, padding=1)
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
        features = self.decoder(self.encoder(xp))
        if self.refine is not None:
            features = self.refine(torch.cat([features, xp], dim=1))
        return torch.sigmoid(self.head(features))[crop].to(x.dtype)
