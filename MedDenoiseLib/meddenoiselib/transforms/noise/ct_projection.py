"""Parallel-beam CT geometry in torch: forward projection (line integrals) and filtered back-projection (FBP).

This is the scanner model under the ``ct-lowdose`` noise: an image of linear attenuation μ is projected into
line integrals, photon noise is inserted on the projections, and the noise is reconstructed with FBP so that it
has a scanner's correlation (ramp-filtered "ring" noise power spectrum) and non-stationarity (streaks behind
dense structures, more noise along long paths). ``skimage.transform.radon``/``iradon`` implement the same
geometry on the CPU one angle at a time; this version batches angles through ``grid_sample`` so a 512×512 slice
at 720 views takes a couple of seconds on two CPU cores, and it runs on CUDA unchanged.

Geometry: the detector has ``D`` bins of one pixel pitch, centred on the image centre, with ``D`` odd and large
enough to cover the image diagonal, so no part of the image is outside the field of view. Angles are spread
over 180° (parallel-beam data over 360° is redundant). Lengths are in pixels; callers convert with the pixel
spacing in mm.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

__all__ = ["RECONSTRUCTION_KERNELS", "ParallelBeam", "fbp_filter"]

#: apodization windows of the ramp filter, from sharp to smooth (``skimage.transform.iradon``'s names).
RECONSTRUCTION_KERNELS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")

#: views processed together: bounds the sampling grid to ~100 MB on a 512×512 slice (CPU), ~1 GB (CUDA).
_VIEW_CHUNK = {"cpu": 24, "cuda": 240}


def _apodization(kernel: str, frequency: torch.Tensor) -> torch.Tensor:
    """The apodization window of ``kernel`` at ``frequency`` (cycles per detector bin, within [-0.5, 0.5]): the
    closed forms of the windows below (``shepp-logan`` sinc, ``cosine``, ``hamming``, ``hann``), for a detector
    coarser than the pixel grid."""
    if kernel == "shepp-logan":
        omega = math.pi * frequency
        return torch.where(omega == 0, torch.ones_like(omega), torch.sin(omega) / torch.where(omega == 0, 1.0, omega))
    if kernel == "cosine":
        return torch.cos(math.pi * frequency)
    if kernel == "hamming":
        return 0.54 + 0.46 * torch.cos(2 * math.pi * frequency)
    if kernel == "hann":
        return 0.5 + 0.5 * torch.cos(2 * math.pi * frequency)
    return torch.ones_like(frequency)


@lru_cache(maxsize=32)
def _fbp_filter_cached(detectors: int, kernel: str, grain: float = 1.0) -> torch.Tensor:
    padded = max(64, 2 ** math.ceil(math.log2(2 * detectors)))
    # The ramp built from its band-limited spatial form (Kak & Slaney, eq. 61) has no DC error, unlike |f|.
    n = torch.cat([torch.arange(1, padded // 2 + 1, 2), torch.arange(padded // 2 - 1, 0, -2)]).double()
    spatial = torch.zeros(padded, dtype=torch.float64)
    spatial[0] = 0.25
    spatial[1::2] = -1.0 / (math.pi * n) ** 2
    ramp = 2.0 * torch.fft.fft(spatial).real
    omega = math.pi * torch.fft.fftfreq(padded, dtype=torch.float64)[1:]
    window = torch.ones(padded, dtype=torch.float64)
    if kernel == "shepp-logan":
        window[1:] = torch.sin(omega) / omega
    elif kernel == "cosine":
        window = torch.fft.fftshift(torch.sin(torch.linspace(0, math.pi, padded + 1, dtype=torch.float64)[:-1]))
    elif kernel == "hamming":
        window = torch.fft.fftshift(torch.hamming_window(padded, periodic=True, dtype=torch.float64))
    elif kernel == "hann":
        window = torch.fft.fftshift(torch.hann_window(padded, periodic=True, dtype=torch.float64))
    elif kernel != "ramp":
        raise ValueError(f"unknown reconstruction kernel {kernel!r}; choose one of {', '.join(RECONSTRUCTION_KERNELS)}")
    if grain != 1.0:
        # a detector (and kernel) resolving `grain` pixels: the window spans its own band, nothing passes above it
        scaled = torch.fft.fftfreq(padded, dtype=torch.float64) * grain
        window = torch.where(scaled.abs() <= 0.5, _apodization(kernel, scaled), torch.zeros_like(scaled))
    return (ramp * window).float()


def fbp_filter(detectors: int, kernel: str = "shepp-logan", grain: float = 1.0) -> torch.Tensor:
    """The frequency response of the FBP filter for ``detectors`` bins (zero-padded FFT length).

    Args:
        detectors: number of detector bins.
        kernel: one of :data:`RECONSTRUCTION_KERNELS`.
        grain: the scanner's resolution cell in pixels (see :class:`~.ct_lowdose.CTScanner`): above 1 the window
            is stretched over the band ``|f| <= 0.5 / grain`` cycles per pixel and nothing passes above it, so the
            noise grain is ``grain`` pixels wide. Defaults to 1 (the pixel grid).

    Returns:
        ``(P,)`` float32 filter, ``P`` the padded FFT length (a power of two ≥ 2·``detectors``).
    """
    return _fbp_filter_cached(int(detectors), str(kernel), float(grain))


class ParallelBeam:
    """A parallel-beam scanner for ``(H, W)`` slices: ``views`` angles over 180°, one-pixel detector pitch.

    Args:
        shape: slice shape ``(H, W)`` in pixels.
        views: number of projection angles. Defaults to 720.
        device: where projections are computed. Defaults to CPU.

    Attributes:
        detectors: number of detector bins ``D`` (odd, ≥ the image diagonal).
        angles: ``(views,)`` angles in radians.
    """

    def __init__(self, shape: tuple[int, int], views: int = 720, device: torch.device | str = "cpu") -> None:
        if views < 8:
            raise ValueError(f"`views` must be at least 8, got {views}.")
        self.shape = (int(shape[0]), int(shape[1]))
        self.views = int(views)
        self.device = torch.device(device)
        diagonal = math.ceil(math.hypot(*self.shape))
        self.detectors = diagonal + 1 - diagonal % 2 + 2  # odd, with a bin of margin on each side
        # on the device: the sampling grids built from them are views x detectors² coordinates, which the CPU would
        # otherwise compute and copy for every chunk (on a GPU that left it idle, 2026-12-04: >2 s per slice)
        self.angles = torch.arange(self.views, dtype=torch.float64, device=self.device) * (math.pi / self.views)

    def project(self, image: torch.Tensor) -> torch.Tensor:
        """Line integrals through ``image`` along every ray.

        Args:
            image: ``(B, H, W)`` values per pixel (e.g. μ·pixel size, dimensionless).

        Returns:
            ``(B, views, detectors)`` sinogram: the sum of ``image`` along each ray (bilinear sampling at one
            point per pixel length), zero outside the image.
        """
        b = image.shape[0]
        source = image.to(self.device, torch.float32).unsqueeze(1)
        d = self.detectors
        t = torch.arange(d, dtype=torch.float64, device=self.device) - (d - 1) / 2  # detector == ray sample offsets
        sinogram = torch.empty(b, self.views, d, dtype=torch.float32, device=self.device)
        chunk = _VIEW_CHUNK.get(self.device.type, 24)
        h, w = self.shape
        for start in range(0, self.views, chunk):
            theta = self.angles[start : start + chunk]
            v = theta.shape[0]
            cos, sin = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
            # ray j of view k: t_j (cos θ, sin θ) + s (-sin θ, cos θ), sampled at s = t, in grid_sample's [-1, 1]
            # units (align_corners=True). The products are (views, D) and the (views, D, D) sums and scalings stay
            # float64 before one rounding to float32, exactly as before: the sinogram sets the Poisson rates, and a
            # rate off in its last bit changes how many uniforms the sampler draws, so every later count would differ
            grid = torch.empty(v, d, d, 2, dtype=torch.float32, device=self.device)
            wide = torch.empty(v, d, d, dtype=torch.float64, device=self.device)
            t_cos, t_sin = t * cos, t * sin
            torch.sub(t_cos[:, :, None], t_sin[:, None, :], out=wide)
            torch.div(wide, (w - 1) / 2, out=grid[..., 0])
            torch.add(t_sin[:, :, None], t_cos[:, None, :], out=wide)
            torch.div(wide, (h - 1) / 2, out=grid[..., 1])
            grid = grid.reshape(1, v * d, d, 2).expand(b, -1, -1, -1)
            samples = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            sinogram[:, start : start + v] = samples.reshape(b, v, d, d).sum(dim=-1)
        return sinogram

    def filter(self, sinogram: torch.Tensor, kernel: str = "shepp-logan", grain: float = 1.0) -> torch.Tensor:
        """Ramp-filter each projection (zero-padded FFT), with the apodization ``kernel`` (over a band of
        ``0.5 / grain`` cycles per pixel, see :func:`fbp_filter`)."""
        response = fbp_filter(self.detectors, kernel, grain).to(sinogram.device)
        spectrum = torch.fft.fft(sinogram.float(), n=response.shape[0], dim=-1)
        return torch.fft.ifft(spectrum * response, dim=-1).real[..., : self.detectors]

    def backproject(self, sinogram: torch.Tensor) -> torch.Tensor:
        """Smear each projection back across the image and sum over views (linear interpolation).

        Args:
            sinogram: ``(B, views, detectors)``.

        Returns:
            ``(B, H, W)``: ``Σ_k sinogram[k, x cos θ_k + y sin θ_k]`` (no FBP weighting; see :meth:`reconstruct`).
        """
        b = sinogram.shape[0]
        h, w = self.shape
        d = self.detectors
        y = torch.arange(h, dtype=torch.float64, device=self.device) - (h - 1) / 2
        x = torch.arange(w, dtype=torch.float64, device=self.device) - (w - 1) / 2
        output = torch.zeros(b, h, w, dtype=torch.float32, device=self.device)
        chunk = _VIEW_CHUNK.get(self.device.type, 24)
        for start in range(0, self.views, chunk):
            theta = self.angles[start : start + chunk]
            v = theta.shape[0]
            # sample row k of the chunk's (v, D) "image" at detector x cos θ + y sin θ: grid x = detector (its two
            # terms in float64, per view and row or column, in [-1, 1] units), grid y = view
            across = ((x[None, :] * torch.cos(theta)[:, None]) / ((d - 1) / 2)).float()  # (v, W)
            down = ((y[None, :] * torch.sin(theta)[:, None]) / ((d - 1) / 2)).float()  # (v, H)
            grid = torch.empty(v, h, w, 2, dtype=torch.float32, device=self.device)
            torch.add(down[:, :, None], across[:, None, :], out=grid[..., 0])
            view_row = torch.arange(v, dtype=torch.float64, device=self.device) / max(v - 1, 1) * 2 - 1
            grid[..., 1] = view_row.float()[:, None, None]
            grid = grid.reshape(1, v * h, w, 2)
            rows = sinogram[:, start : start + v].to(self.device, torch.float32).unsqueeze(1)  # (B, 1, v, D)
            samples = F.grid_sample(
                rows, grid.expand(b, -1, -1, -1), mode="bilinear", padding_mode="zeros", align_corners=True
            )
            output += samples.reshape(b, v, h, w).sum(dim=1)
        return output

    def reconstruct(self, sinogram: torch.Tensor, kernel: str = "shepp-logan", grain: float = 1.0) -> torch.Tensor:
        """Filtered back-projection: ``(B, views, detectors)`` line integrals -> ``(B, H, W)`` per-pixel values."""
        return self.backproject(self.filter(sinogram, kernel, grain)) * (math.pi / (2 * self.views))
