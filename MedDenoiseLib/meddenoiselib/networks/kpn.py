"""KPN: Kernel Prediction Network for single-frame or burst denoising (Mildenhall et al., CVPR 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers.factories import Conv, Pool
from torch import nn

from ._utils import ActSpec, activation, check_positive_int, check_spatial_dims, pad_to_multiple

__all__ = ["KPN", "apply_kernels"]


def apply_kernels(
    frames: torch.Tensor,
    kernels: torch.Tensor,
    kernel_size: int,
    bias: torch.Tensor | None = None,
    dilation: int = 1,
) -> torch.Tensor:
    """Filter each frame with its own per-pixel kernels and sum over frames.

    ``out[b, 0, p] = Σₙ Σₒ kernels[b, n·K^d + o, p] · frames[b, n, p + offset(o)] (+ Σₘ bias[b, m, p])``

    where ``o`` runs over the ``K^d`` kernel offsets in row-major order (``(ky, kx)`` in 2D, ``(kz, ky, kx)`` in
    3D; ``offset(o)`` goes from ``-(K // 2)·dilation`` to ``(K // 2)·dilation`` in steps of ``dilation`` on each
    axis). The kernels are used as given
    (linear, not normalised). Frames are padded by replication at the borders, so a kernel never reads zeros.
    2D multiplies with an unfolded view of the frames; 3D sums ``K³`` shifted views (no per-pixel Python loop).

    Args:
        frames: ``(B, N, *spatial)`` with 2 or 3 spatial dims.
        kernels: ``(B, N·K^d, *spatial)``, frame-major: channels ``n·K^d … (n+1)·K^d − 1`` belong to frame ``n``.
        kernel_size: the odd kernel edge K.
        bias: optional per-pixel bias ``(B, M, *spatial)``, summed over its ``M`` channels. Defaults to None.
        dilation: spacing of the taps in pixels (a ``K``-tap kernel spans ``(K - 1)·dilation + 1`` pixels per axis).
            Defaults to 1.

    Returns:
        ``(B, 1, *spatial)``, in the promoted dtype of ``frames`` and ``kernels``.

    Raises:
        ValueError: for an even or non-positive ``kernel_size``, a non-positive ``dilation`` or mismatched shapes.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"`kernel_size` must be a positive odd integer, got {kernel_size!r}.")
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"`dilation` must be a positive integer, got {dilation!r}.")
    if frames.dim() not in (4, 5):
        raise ValueError(f"`frames` must be (B, N, H, W) or (B, N, D, H, W), got shape {tuple(frames.shape)}.")
    b, n = frames.shape[:2]
    spatial = frames.shape[2:]
    d = len(spatial)
    taps = kernel_size**d
    if tuple(kernels.shape) != (b, n * taps, *spatial):
        raise ValueError(
            f"`kernels` must have shape {(b, n * taps, *spatial)} for frames {tuple(frames.shape)} and "
            f"kernel_size {kernel_size}, got {tuple(kernels.shape)}."
        )
    if bias is not None and (bias.dim() != frames.dim() or bias.shape[0] != b or bias.shape[2:] != spatial):
        raise ValueError(f"`bias` must have shape (B, M, *spatial) matching `frames`, got {tuple(bias.shape)}.")
    r = kernel_size // 2 * dilation
    span = 2 * r + 1
    padded = F.pad(frames, [r] * (2 * d), mode="replicate") if r else frames
    if d == 2 and kernels.is_contiguous(memory_format=torch.channels_last):
        # channels-last kernels (the CPU inference path) hold each pixel's N·K² taps together: multiply them with
        # a strided (B, H, W, N, K, K) view of the padded frames, no im2col copy (2.5x faster on CPU than unfold
        # against channels-last kernels, and no (B, N·K², H·W) patch tensor)
        patches = padded.permute(0, 2, 3, 1).unfold(1, span, 1).unfold(2, span, 1)[..., ::dilation, ::dilation]
        per_pixel = kernels.permute(0, 2, 3, 1).reshape(b, *spatial, n, kernel_size, kernel_size)
        out = (patches * per_pixel).sum(dim=(-3, -2, -1)).unsqueeze(1)
    elif d == 2:
        patches = F.unfold(padded, kernel_size, dilation=dilation)  # (B, N·K², H·W), channel = n·K² + ky·K + kx
        out = (patches * kernels.reshape(b, n * taps, -1)).sum(dim=1, keepdim=True).reshape(b, 1, *spatial)
    else:
        k = kernels.reshape(b, n, taps, *spatial)
        out = None
        o = 0
        for dz in range(0, span, dilation):
            for dy in range(0, span, dilation):
                for dx in range(0, span, dilation):
                    view = padded[:, :, dz : dz + spatial[0], dy : dy + spatial[1], dx : dx + spatial[2]]
                    term = (k[:, :, o] * view).sum(dim=1, keepdim=True)
                    out = term if out is None else out + term
                    o += 1
    if bias is not None:
        out = out + bias.sum(dim=1, keepdim=True)
    return out


class _Basic(nn.Sequential):
    """``convs`` × [conv 3×3 + ReLU]."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, convs: int, act: ActSpec) -> None:
        conv = Conv[Conv.CONV, spatial_dims]
        layers: list[nn.Module] = []
        for i in range(convs):
            layer = activation(act)
            if hasattr(layer, "inplace"):
                # each activation reads only its conv's output, which nothing else uses: in place saves a
                # full-size tensor per layer (~12 % of the CPU forward time at 512x512)
                layer.inplace = True
            layers += [conv(in_channels if i == 0 else out_channels, out_channels, 3, padding=1), layer]
        super().__init__(*layers)


class KPN(nn.Module):
    """Kernel Prediction Network (KPN) for 2D slices or 3D volumes, single frame or burst.

    B. Mildenhall, J. T. Barron, J. Chen, D. Sharlet, R. Ng, R. Carroll, "Burst Denoising with Kernel Prediction
    Networks", CVPR 2018 (arXiv 1712.02327).

    A U-Net predicts, for every pixel and every input frame, a ``K×K`` (2D) or ``K×K×K`` (3D) kernel; the output
    is the sum over frames of each frame filtered by its per-pixel kernels (:func:`apply_kernels`, linear
    kernels, no softmax). Layout, following the paper's U-Net for ``features = (c0, …, cL)``:

    - encoder: Basic(``in → c0``) at full resolution, then for each further level a 2×2 average pool and
      Basic(``c(i-1) → ci``); a Basic block is ``convs_per_block`` × [conv 3×3 + ReLU];
    - decoder from level ``L − 1`` down to level 1: bilinear (2D) / trilinear (3D) ×2 upsample, concatenation
      with the encoder output of that level, Basic block to ``ci`` channels, except that the level-1 block
      outputs the kernel channels directly (the full-resolution level-0 features are not skipped);
    - bilinear/trilinear ×2 upsample to full resolution and a 1×1 conv to the ``N·K^d`` (+ ``N`` bias channels
      when ``core_bias``) kernel channels.

    Inputs and outputs:

    - Input ``(B, in_channels, *spatial)``, float32, nominally in [0, 1]: the ``N`` frames first (for a burst of
      adjacent slices, in slice order, with the reference in the centre), then, when ``noise_map=True``, one
      noise-level map as the LAST channel; the map conditions the U-Net but is not filtered. So
      ``in_channels = N + noise_map``.
    - Output ``(B, 1, *spatial)`` with the dtype of ``x``: the denoised reference frame (the kernels of all ``N``
      frames contribute; training decides how). With ``N = 1`` this is the paper's single-frame KPN.
    - Any spatial size works: the U-Net input is padded (reflection, or replication for tiny inputs) to a
      multiple of ``size_multiple = 2**(len(features) − 1)``; the kernels are cropped back and applied to the
      unpadded frames, which :func:`apply_kernels` pads by replication. ``receptive_field`` is ``None``.
    - Initialisation: every conv is Kaiming-normal (fan_in, ReLU) with zero bias (the paper's PyTorch port uses
      Xavier); the final 1×1 conv starts with zero weights and a bias equal to a centred delta of weight ``1/N``
      for every frame, so an untrained KPN returns the mean of the frames (the identity when ``N = 1``). This
      makes training converge much faster than a random start.
    - Parameters: with the paper preset (``features=(64, 128, 256, 512, 512)``, 3 convs per block, K = 5) the
      layout reproduces networks.md's counts exactly: 28,743,264 for gray N = 8 with a noise map (9 inputs,
      200 kernel channels) and 27,385,607 for one frame plus a noise map; one blind frame (the ``kpn`` preset)
      gives 27,385,031.
    - Coarse kernels (``coarse_kernels=True``, a two-scale KPN): a second 1×1 conv on the same half-resolution
      decoder features predicts ``N·K^d`` more kernels, applied at half resolution to the 2×2-averaged frames; the
      result is upsampled (bilinear/trilinear ×2) and added to the fine output. Each coarse tap averages 2^d
      pixels and the kernel spans ``2K`` pixels per axis, so flat regions can average over a support the 5×5
      kernels cannot reach (correlated CT noise has most of its power there). The conv starts at zero, so a KPN
      grown from a trained one (``train --grow``: the old weights loaded with ``strict=False``) starts as that
      network exactly. Cost: ~2 % of the CLI time on a 512×512×300 CT (docs/memory.md).
    - Dilated kernels (``dilated_kernels=True``): a third 1×1 conv on the same decoder features predicts ``N·K^d``
      more full-resolution kernels whose taps are 2 pixels apart (a ``2K − 1`` support), added to the output. Next
      to bone in a thick-slice head CT the 2×2 averages of the coarse scale mix bone into every tap, so the fine
      scale alone has to find the brain pixels, and a 5×5 window holds too few of them (docs/benchmarks_real_noise.md).
      Starts at zero like the coarse conv, so ``train --grow`` starts from the trained network's exact output.
      Tried on the CT model (``kpn-msd-burst3``) and the general model (``kpn-msd-small``, 2026-12-03: +0.02 dB in
      memory on the Gaussian references, edge error unchanged): no shipped model uses it.
    - Wide coarse kernels (``wide_coarse_kernels=True``, with ``coarse_kernels``): one more 1×1 conv on the same
      decoder features predicts ``N·K^d`` half-resolution kernels whose taps are 2 coarse pixels apart, applied to
      the 2×2-averaged frames like the coarse kernels: a ``4K − 2``-pixel support per axis (18 px for K = 5), for
      CT noise 2-3 pixels wide (small fields of view), whose power sits below the band the 10-pixel coarse support
      averages out. Starts at zero, so ``train --grow`` starts from the trained network's exact output.
    - Full-resolution head (``full_res_head=True``): the paper's kernels come from half-resolution decoder
      features upsampled bilinearly, so they change smoothly from pixel to pixel and cannot follow an edge that
      falls between two half-resolution positions: next to bone a kernel that leaves the bone out for one pixel
      reads it for the next, and the network has to settle for small kernels there. The head gates the upsampled
      fine kernels per pixel and per tap: ``k · (1 + g)``, with ``g`` (``K^d`` channels, shared by all frames: an
      edge is where it is in every slice) a 1×1 conv of the first encoder block's full-resolution features
      (receptive field 5×5, so they see where the edge is). The conv starts at zero, so ``train --grow`` starts
      from the trained network's exact output. Cost: a 1×1 conv ``c0 → K^d`` and a product at full resolution
      (+15-25 % of a CPU step). Tried on the CT and the general model (2026-12-02): no better than without it
      (docs/benchmarks_real_noise.md), so no shipped model uses it.
    - Published results: the paper's synthetic-burst PSNR/SSIM table was not retrieved for networks.md.
    - Deviations: 3D variant (``N·K³`` kernel channels: prefer a small K); Kaiming instead of Xavier init;
      delta initialisation of the last conv; replicate border padding for the kernel application; the
      annealed per-frame loss of the paper belongs to training, not to this module.

    Args:
        spatial_dims: 2 or 3.
        in_channels: ``N`` frames plus 1 if ``noise_map``.
        out_channels: must be 1 (one filtered frame). Defaults to 1.
        features: U-Net widths per level, at least 3 levels. Defaults to ``(64, 128, 256, 512, 512)``.
        convs_per_block: conv + ReLU layers per Basic block. Defaults to 3.
        kernel_size: odd per-pixel kernel edge K. Defaults to 5.
        burst: number of frames N; ``None`` infers ``in_channels − noise_map``. Defaults to None.
        noise_map: the last input channel is a noise-level map. Defaults to False.
        core_bias: also predict a per-pixel, per-frame additive bias. Defaults to False.
        coarse_kernels: also predict half-resolution kernels for the 2×2-averaged frames (see above). Defaults to
            False.
        dilated_kernels: also predict full-resolution kernels with taps 2 pixels apart (see above). Defaults to
            False.
        wide_coarse_kernels: also predict half-resolution kernels with taps 2 coarse pixels apart (see above;
            needs ``coarse_kernels``). Defaults to False.
        full_res_head: gate the fine kernels per pixel from the full-resolution features (see above). Defaults to
            False.
        act: MONAI activation spec after every conv of the Basic blocks. Defaults to ``"relu"``.

    Raises:
        ValueError: for an unsupported ``spatial_dims``, ``out_channels != 1``, fewer than 3 levels, an even
            ``kernel_size`` or a ``burst`` inconsistent with ``in_channels`` and ``noise_map``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int = 1,
        features: Sequence[int] = (64, 128, 256, 512, 512),
        convs_per_block: int = 3,
        kernel_size: int = 5,
        burst: int | None = None,
        noise_map: bool = False,
        core_bias: bool = False,
        coarse_kernels: bool = False,
        dilated_kernels: bool = False,
        full_res_head: bool = False,
        act: ActSpec = "relu",
        wide_coarse_kernels: bool = False,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.in_channels = check_positive_int("in_channels", in_channels)
        if out_channels != 1:
            raise ValueError(f"`out_channels` must be 1 for KPN (one filtered frame), got {out_channels!r}.")
        self.out_channels = 1
        channels = tuple(features)
        if len(channels) < 3:
            raise ValueError(f"`features` needs at least 3 levels, got {channels!r}.")
        for c in channels:
            check_positive_int("features", c)
        check_positive_int("convs_per_block", convs_per_block)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"`kernel_size` must be a positive odd integer, got {kernel_size!r}.")
        self.noise_map = bool(noise_map)
        frames = in_channels - int(self.noise_map)
        if burst is None:
            burst = frames
        if burst != frames or burst < 1:
            raise ValueError(
                f"`burst` ({burst!r}) must equal in_channels ({in_channels}) minus 1 if noise_map "
                f"({self.noise_map}), and be >= 1."
            )
        self.burst = burst
        self.kernel_size = kernel_size
        self.core_bias = bool(core_bias)
        self.taps = kernel_size**spatial_dims
        kernel_channels = burst * self.taps + (burst if self.core_bias else 0)

        pool = Pool[Pool.AVG, spatial_dims]
        self.encoder = nn.ModuleList([_Basic(spatial_dims, in_channels, channels[0], convs_per_block, act)])
        for i in range(1, len(channels)):
            block = _Basic(spatial_dims, channels[i - 1], channels[i], convs_per_block, act)
            self.encoder.append(nn.Sequential(pool(kernel_size=2, stride=2), block))
        self.decoder = nn.ModuleList()
        prev = channels[-1]
        for i in range(len(channels) - 2, 0, -1):
            out = kernel_channels if i == 1 else channels[i]
            self.decoder.append(_Basic(spatial_dims, prev + channels[i], out, convs_per_block, act))
            prev = out
        self.out = Conv[Conv.CONV, spatial_dims](kernel_channels, kernel_channels, 1)
        self.coarse_kernels = bool(coarse_kernels)
        self.out_coarse = (
            Conv[Conv.CONV, spatial_dims](kernel_channels, burst * self.taps, 1) if self.coarse_kernels else None
        )
        self.dilated_kernels = bool(dilated_kernels)
        self.out_dilated = (
            Conv[Conv.CONV, spatial_dims](kernel_channels, burst * self.taps, 1) if self.dilated_kernels else None
        )
        if wide_coarse_kernels and not self.coarse_kernels:
            raise ValueError("`wide_coarse_kernels` widens the coarse scale: it needs `coarse_kernels=True`.")
        self.out_wide_coarse = (
            Conv[Conv.CONV, spatial_dims](kernel_channels, burst * self.taps, 1) if wide_coarse_kernels else None
        )
        self.full_res_head = Conv[Conv.CONV, spatial_dims](channels[0], self.taps, 1) if full_res_head else None
        self._pool = pool(kernel_size=2, stride=2)
        self._mode = "bilinear" if spatial_dims == 2 else "trilinear"
        self.reset_parameters()
        self.receptive_field: int | None = None
        self.size_multiple = 2 ** (len(channels) - 1)

    def reset_parameters(self) -> None:
        """Kaiming-normal convs with zero bias, and the delta initialisation of the final 1×1 conv (zero weights,
        bias = a centred delta of weight ``1/N`` for each frame, zero bias channels)."""
        conv = Conv[Conv.CONV, self.spatial_dims]
        for m in self.modules():
            if isinstance(m, conv):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.out.weight)
        for extra in (self.out_coarse, self.out_dilated, self.out_wide_coarse, self.full_res_head):
            if extra is not None:
                # zero: the extra kernels add nothing until training finds a use for them
                nn.init.zeros_(extra.weight)
                nn.init.zeros_(extra.bias)
        with torch.no_grad():
            delta = torch.zeros(self.taps)
            delta[self.taps // 2] = 1.0 / self.burst
            self.out.bias.zero_()
            self.out.bias[: self.burst * self.taps] = delta.repeat(self.burst)

    def _decoder_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The U-Net up to the level-1 decoder block: ``(B, kernel channels, *spatial / 2)``, and the first
        encoder block's full-resolution features ``(B, c0, *spatial)`` when the full-resolution head reads them
        (None otherwise, so they are freed before the kernels are applied, the step that sets peak memory)."""
        skips = []
        h = x
        for level in self.encoder:
            h = level(h)
            skips.append(h)
        for j, block in enumerate(self.decoder):
            h = F.interpolate(h, scale_factor=2, mode=self._mode, align_corners=False)
            h = block(torch.cat([h, skips[-2 - j]], dim=1))
        return h, skips[0] if self.full_res_head is not None else None

    def _fine_kernels(self, h: torch.Tensor, full_res: torch.Tensor | None, crop: tuple[slice, ...]) -> torch.Tensor:
        """The full-resolution kernel (and bias) channels, cropped: the upsampled 1×1 conv of the decoder features
        ``h``, gated by the full-resolution head from the first block's features ``full_res`` if present."""
        k = self._upsample(self.out(h))[crop]
        if self.full_res_head is None:
            return k
        gate = 1 + self.full_res_head(full_res[crop].to(k.dtype))
        n_k = self.burst * self.taps
        # channels moved last: on the CPU path (channels-last) these are views and the product comes out
        # channels-last, as apply_kernels' fast path wants it
        taps = k[:, :n_k].movedim(1, -1).unflatten(-1, (self.burst, self.taps))
        gated = (taps * gate.movedim(1, -1).unsqueeze(-2)).flatten(-2).movedim(-1, 1)
        return torch.cat([gated, k[:, n_k:]], dim=1) if self.core_bias else gated

    def predict_kernels(self, x: torch.Tensor) -> torch.Tensor:
        """Run the U-Net.

        Args:
            x: input ``(B, in_channels, *spatial)`` whose spatial sizes are multiples of ``size_multiple``.

        Returns:
            ``(B, N·K^d (+ N), *spatial)`` kernel (and bias) channels, frame-major as :func:`apply_kernels` reads
            them (the fine scale only; see :meth:`forward` for the coarse kernels).
        """
        h, full_res = self._decoder_features(x)
        return self._fine_kernels(h, full_res, (slice(None),) * x.dim())

    def _upsample(self, h: torch.Tensor) -> torch.Tensor:
        # the 1x1 convs commute with the (weights summing to 1) interpolation: applying them before upsampling
        # gives the same kernels at a quarter (an eighth in 3D) of the cost
        return F.interpolate(h, scale_factor=2, mode=self._mode, align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise the reference frame.

        Args:
            x: ``(B, in_channels, *spatial)``: ``N`` frames, then the noise map if ``noise_map``.

        Returns:
            ``(B, 1, *spatial)`` denoised image with the dtype of ``x``.
        """
        xp, crop = pad_to_multiple(x, self.size_multiple)
        h, full_res = self._decoder_features(xp)
        # the kernel heads and the filtering in float32 even under bf16/fp16 autocast: the output is a sum of ~75
        # taps whose weights add up to ~1, and bf16's 8-bit mantissa puts ~0.4 % on every weight, several HU on
        # water at 0.5 of the CT map (bf16 lost 0.21 dB on the benchmark's water phantom at ~25 HU); the U-Net
        # before them, nearly all of the cost, keeps the fast dtype
        with torch.autocast(x.device.type, enabled=False):
            h, frames, padded = h.float(), x[:, : self.burst].float(), xp[:, : self.burst].float()
            k = self._fine_kernels(h, full_res, crop)
            n_k = self.burst * self.taps
            bias = k[:, n_k:] if self.core_bias else None
            out = apply_kernels(frames, k[:, :n_k], self.kernel_size, bias)
            if self.out_dilated is not None:
                dilated = self._upsample(self.out_dilated(h))[crop]
                out = out + apply_kernels(frames, dilated, self.kernel_size, dilation=2)
            if self.out_coarse is not None:
                # the padded frames (sizes even) averaged 2x2 match the half-resolution features pixel for pixel
                pooled = self._pool(padded)
                coarse = apply_kernels(pooled, self.out_coarse(h), self.kernel_size)
                if self.out_wide_coarse is not None:
                    coarse = coarse + apply_kernels(pooled, self.out_wide_coarse(h), self.kernel_size, dilation=2)
                out = out + self._upsample(coarse)[crop]
        return out.to(x.dtype)
