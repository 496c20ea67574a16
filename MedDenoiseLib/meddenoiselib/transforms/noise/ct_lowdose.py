"""Low-dose CT noise in Hounsfield units: projection-domain insertion, and a fast image-domain approximation.

Projection domain (:func:`ct_noise_projection`), the accepted way to simulate a lower dose from a scan
(noise-physics.md): HU -> linear attenuation μ -> line integrals ``p`` through a parallel-beam scanner ->
photon counts ``N ~ Poisson(I0·dose·exp(-p)) + N(0, σ_e²)`` -> ``p̂ = -log(N / (I0·dose))`` -> FBP of the
projection noise ``p̂ - p`` with the chosen reconstruction kernel -> HU. The result is *noise only*: add it to
the scan and the scan itself is the reference, so a denoiser is graded on exactly what was inserted. The noise is
correlated (ramp-filtered) and non-stationary (streaks behind bone, more noise along long paths) like a scanner's.
The scan's own acquisition noise is not removed: ``dose`` is the dose of the inserted noise (its standard
deviation grows as ``1/sqrt(dose)``), on top of the scan's natural noise.

Image domain (:func:`ct_noise_fast`), for training: white noise shaped by the FBP noise power spectrum of the
same scanner and kernel, times a per-pixel standard deviation map computed once per slice from the same line
integrals (:func:`ct_noise_variance_terms`): ``var(x) = C·[BP(1/N₀)(x)/dose + σ_e²·BP(1/N₀²)(x)/dose²]`` where
``BP`` averages over views the projection-noise variance of the rays through ``x``. It has the projection
model's local noise level and noise power spectrum (tested) but no streak structure, and costs one FFT per patch.

Units: images in HU, pixel spacing in mm, ``dose`` a fraction of the full dose, counts per detector bin per view.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .ct_projection import RECONSTRUCTION_KERNELS, ParallelBeam

__all__ = [
    "MU_WATER_PER_MM",
    "CTScanner",
    "hu_to_attenuation",
    "ct_noise_projection",
    "ct_noise_variance_terms",
    "ct_noise_fast",
    "fbp_noise_power_spectrum",
    "shaped_unit_noise",
]

#: linear attenuation of water at an effective energy of ~70 keV, per mm (HU = 1000·(μ − μw)/μw).
MU_WATER_PER_MM = 0.019

# slices per projector batch: the projector's sampling grids, which cost more than the sampling itself, are built
# once per batch; 4 slices keep the sampled rows of one 512x512 view chunk under ~0.4 GB
_SLICES_PER_BATCH = 4


@dataclass(frozen=True)
class CTScanner:
    """Parameters of the simulated scanner (the same for full dose and the simulated dose).

    Attributes:
        views: projection angles over 180°. Defaults to 720.
        kernel: FBP apodization, one of ``ramp`` (sharpest), ``shepp-logan``, ``cosine``, ``hamming``, ``hann``
            (smoothest). Defaults to ``shepp-logan``.
        full_dose_counts: incident photons per detector bin per view at dose 1 (``I0``). The default inserts
            about 12 HU of noise in the mediastinum of an adult chest (0.98 mm pixels, 720 views, shepp-logan) at
            dose 1, about 24 HU at quarter dose, and less through the lungs. Defaults to 2e6.
        electronic_noise: standard deviation of the detector's electronic noise, in counts. Defaults to 8.
        grain: the reconstruction's resolution cell in pixels: the detector bins (at the isocentre) and the
            kernel's band resolve ``grain`` pixels, so the noise has no power above ``0.5 / grain`` cycles per
            pixel. 1 (the default) simulates a detector of one-pixel pitch; real scanners resolve ~0.5-0.8 mm
            with soft-tissue kernels, which is ~1 pixel at a 500 mm field of view (0.98 mm pixels) but 2-3 pixels
            on a 0.25-0.3 mm targeted reconstruction (spine, inner ear), whose noise grain is that much coarser.
    """

    views: int = 720
    kernel: str = "shepp-logan"
    full_dose_counts: float = 2e6
    electronic_noise: float = 8.0
    grain: float = 1.0

    def __post_init__(self) -> None:
        if self.kernel not in RECONSTRUCTION_KERNELS:
            raise ValueError(f"unknown CT kernel {self.kernel!r}; choose one of {', '.join(RECONSTRUCTION_KERNELS)}.")
        if not (isinstance(self.views, int) and 8 <= self.views <= 10_000):
            raise ValueError(f"`views` must be an integer in [8, 10000], got {self.views!r}.")
        if not (math.isfinite(self.full_dose_counts) and self.full_dose_counts > 0):
            raise ValueError(f"`full_dose_counts` must be a positive number, got {self.full_dose_counts!r}.")
        if not (math.isfinite(self.electronic_noise) and self.electronic_noise >= 0):
            raise ValueError(f"`electronic_noise` must be a non-negative number, got {self.electronic_noise!r}.")
        if not (math.isfinite(self.grain) and 1.0 <= self.grain <= 8.0):
            raise ValueError(f"`grain` must be a number of pixels in [1, 8], got {self.grain!r}.")

    def with_options(self, **options) -> CTScanner:
        """A copy with some fields replaced."""
        return replace(self, **options)


def hu_to_attenuation(hu: torch.Tensor) -> torch.Tensor:
    """HU -> linear attenuation per mm, clipped at 0 (air, and padding such as −3024 HU, attenuate nothing)."""
    return torch.clamp(MU_WATER_PER_MM * (1.0 + hu.float() / 1000.0), min=0.0)


def _as_slices(hu: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, tuple[int, ...]]:
    tensor = torch.as_tensor(hu)
    if tensor.ndim < 2:
        raise ValueError(f"CT noise needs 2D slices, got shape {tuple(tensor.shape)}.")
    shape = tuple(tensor.shape)
    return tensor.reshape(-1, *shape[-2:]).float(), shape


def _pixel_mm(pixel_mm: float) -> float:
    value = float(pixel_mm)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"pixel spacing must be a positive number of mm, got {pixel_mm!r}.")
    return value


def _line_integrals(
    slices: torch.Tensor, pixel_mm: float, views: int, device: torch.device | str = "cpu"
) -> tuple[ParallelBeam, torch.Tensor]:
    """Line integrals of μ, ``(B, views, D)``, computed at half resolution for slices over 256 pixels.

    ``p`` only sets the photon counts (the noise *level* per ray), which varies smoothly along the detector, so
    projecting a 2×-downsampled slice and interpolating to the full detector costs a quarter of the time for a
    change in the noise variance far below its own sampling error.
    """
    geometry = ParallelBeam(tuple(slices.shape[-2:]), views, device)
    mu = hu_to_attenuation(slices.to(device)) * pixel_mm  # attenuation per pixel length
    if min(slices.shape[-2:]) <= 256:
        return geometry, geometry.project(mu)
    coarse_mu = F.avg_pool2d(mu[:, None], 2)[:, 0] * 2.0  # per coarse pixel (twice the length)
    coarse = ParallelBeam(tuple(coarse_mu.shape[-2:]), views, device)
    p = coarse.project(coarse_mu)
    # coarse bin j sits at 2·(j − (Dc−1)/2) fine pixels from the centre
    t_fine = torch.arange(geometry.detectors, dtype=torch.float32, device=p.device) - (geometry.detectors - 1) / 2
    position = (t_fine / 2 + (coarse.detectors - 1) / 2) / ((coarse.detectors - 1) / 2) - 1
    rows = torch.linspace(-1, 1, views, device=p.device)[:, None].expand(-1, geometry.detectors)
    grid = torch.stack((position[None, :].expand(views, -1), rows), dim=-1)
    fine = F.grid_sample(
        p[:, None], grid[None].expand(p.shape[0], -1, -1, -1), mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return geometry, fine[:, 0]


def _counts(p: torch.Tensor, dose: float, scanner: CTScanner) -> torch.Tensor:
    return (scanner.full_dose_counts * dose) * torch.exp(-p)


def _check_dose(dose: float) -> float:
    value = float(dose)
    if not (math.isfinite(value) and 0 < value <= 100):
        raise ValueError(f"dose must be a fraction of the full dose in (0, 100], got {dose!r}.")
    return value


def ct_noise_projection(
    hu: torch.Tensor | np.ndarray,
    pixel_mm: float,
    dose: float,
    scanner: CTScanner = CTScanner(),
    generator: torch.Generator | None = None,
    on_slice: Callable[[], None] | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Reconstructed low-dose noise for CT slices (projection-domain Poisson + electronic noise, FBP).

    Args:
        hu: ``(..., H, W)`` slices in HU (any leading dims; each slice is scanned on its own).
        pixel_mm: in-plane pixel spacing in mm (square pixels).
        dose: fraction of the full dose (0.25 = quarter dose); noise std ∝ 1/sqrt(dose).
        scanner: views, kernel, full-dose counts, electronic noise.
        generator: random source, on ``device``. Defaults to torch's global generator.
        on_slice: called after each slice (progress).
        device: where to compute (CUDA is ~50x faster than two CPU cores). Defaults to CPU.

    Returns:
        Noise in HU, float32, the shape of ``hu``: add it to ``hu`` for the low-dose scan.
    """
    slices, shape = _as_slices(hu)
    pixel = _pixel_mm(pixel_mm)
    dose = _check_dose(dose)
    incident = scanner.full_dose_counts * dose
    output = torch.empty(slices.shape, dtype=torch.float32)
    # a few slices per projector batch share its sampling grids and bound memory (~100 MB per 512² slice)
    for start in range(0, slices.shape[0], _SLICES_PER_BATCH):
        geometry, p = _line_integrals(slices[start : start + _SLICES_PER_BATCH], pixel, scanner.views, device)
        # A cell `grain` pixels wide collects `grain` times a pixel's photons, which is where the log's nonlinearity
        # and photon starvation act. Its linear noise is that of the one-pixel bins, band-limited by the window:
        # drawn from grain x the counts (electronic noise grain x the variance) and scaled back by sqrt(grain), the
        # noise per bin keeps the variance 1/counts + electronic²/counts² that the fast model and the dose
        # calibration use, and on a large body at low dose the bins that would be starved alone are no longer
        # clamped (grain 1: exactly the one-pixel draw)
        cell = float(scanner.grain)
        expected = _counts(p, dose, scanner).double() * cell
        # drawn slice by slice, so a seeded generator gives the same noise whatever the batch size
        counts = torch.empty_like(expected)
        for index in range(expected.shape[0]):
            counts[index] = torch.poisson(expected[index : index + 1], generator=generator)[0]
            if scanner.electronic_noise > 0:
                counts[index] += (scanner.electronic_noise * math.sqrt(cell)) * torch.randn(
                    counts.shape[1:], generator=generator, dtype=counts.dtype, device=counts.device
                )
        # a detector reading of zero or below (photon starvation) is clamped, as scanners do before the log
        measured = -torch.log(torch.clamp(counts, min=0.5) / (incident * cell))
        sinogram_noise = (measured - p.double()) * math.sqrt(cell)
        reconstructed = geometry.reconstruct(sinogram_noise.float(), scanner.kernel, scanner.grain)
        output[start : start + p.shape[0]] = reconstructed.cpu() * (1000.0 / (MU_WATER_PER_MM * pixel))
        if on_slice is not None:
            for _ in range(p.shape[0]):
                on_slice()
    return output.reshape(shape)


@lru_cache(maxsize=16)
def _white_sinogram_response(
    size: int, views: int, kernel: str, grain: float = 1.0
) -> tuple[float, np.ndarray, np.ndarray]:
    """FBP of unit-variance white sinogram noise on a ``size²`` image: the variance per view-averaged bin
    variance (``C``) and the radial noise power spectrum shape (frequency in cycles/pixel, power)."""
    geometry = ParallelBeam((size, size), views)
    generator = torch.Generator().manual_seed(1234)
    noise = torch.randn(2, views, geometry.detectors, generator=generator)
    images = geometry.reconstruct(noise, kernel, grain).double()
    centre = images[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4]
    variance = float(centre.var())
    power = (torch.fft.fft2(centre - centre.mean(dim=(-2, -1), keepdim=True)).abs() ** 2).mean(0).numpy()
    n = centre.shape[-1]
    fy, fx = np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")
    radius = np.hypot(fx, fy)
    edges = np.linspace(0, 0.5 * math.sqrt(2), 46)
    which = np.clip(np.digitize(radius.ravel(), edges) - 1, 0, len(edges) - 2)
    sums = np.bincount(which, weights=power.ravel(), minlength=len(edges) - 1)
    counts = np.bincount(which, minlength=len(edges) - 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    valid = counts > 0
    profile = sums[valid] / counts[valid]
    return variance, centres[valid], profile / profile.max()


def fbp_noise_power_spectrum(
    views: int, kernel: str, size: int = 256, grain: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Radial noise power spectrum shape of FBP-reconstructed white projection noise (``grain``: see
    :class:`CTScanner`).

    Returns:
        ``(frequency, power)``: frequency in cycles per pixel (0 to ~0.7), power normalized to a peak of 1.
    """
    _, frequency, power = _white_sinogram_response(size, int(views), str(kernel), float(grain))
    return frequency, power


def ct_noise_variance_terms(
    hu: torch.Tensor | np.ndarray,
    pixel_mm: float,
    scanner: CTScanner = CTScanner(),
    map_views: int = 90,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Per-pixel terms of the low-dose noise variance, computed once per slice for :func:`ct_noise_fast`.

    ``var_HU(x) = terms[0](x)/dose + σ_e²·terms[1](x)/dose²`` for a scanner with ``scanner.views`` and kernel.

    Args:
        hu: ``(..., H, W)`` slices in HU.
        pixel_mm: in-plane pixel spacing in mm.
        scanner: the scanner whose noise the terms describe (its views, kernel and full-dose counts).
        map_views: views used to average the ray variances (the map is smooth; 90 suffice).
        device: where to compute. Defaults to CPU.

    Returns:
        ``(..., 2, H, W)`` float32: the quantum term (HU² at dose 1) and the electronic term (HU² per count²).
    """
    slices, shape = _as_slices(hu)
    pixel = _pixel_mm(pixel_mm)
    size = min(256, max(32, min(slices.shape[-2:])))
    white_variance, _, _ = _white_sinogram_response(size, scanner.views, scanner.kernel, scanner.grain)
    scale = white_variance * (1000.0 / (MU_WATER_PER_MM * pixel)) ** 2
    terms = torch.empty(slices.shape[0], 2, *slices.shape[-2:], dtype=torch.float32)
    for start in range(0, slices.shape[0], _SLICES_PER_BATCH):
        group = slices[start : start + _SLICES_PER_BATCH]
        n = group.shape[0]
        # one batch through the projector: its sampling grids, which cost more than the sampling, are built once
        # for every slice of the group and both terms
        geometry, p = _line_integrals(group, pixel, map_views, device)
        inverse_counts = 1.0 / _counts(p.double(), 1.0, scanner)
        both = torch.cat((inverse_counts, inverse_counts**2)).float()
        # back-projecting a constant 1 over map_views views gives map_views: divide for a view average
        back = geometry.backproject(both).cpu() * (scale / map_views)
        terms[start : start + n, 0] = back[:n]
        terms[start : start + n, 1] = back[n:]
    return terms.reshape(*shape[:-2], 2, *shape[-2:])


@lru_cache(maxsize=64)
def _noise_filter(shape: tuple[int, int], views: int, kernel: str, grain: float = 1.0) -> torch.Tensor:
    frequency, power = fbp_noise_power_spectrum(views, kernel, grain=grain)
    fy = torch.fft.fftfreq(shape[0], dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(shape[1], dtype=torch.float64)[None, :]
    radius = torch.sqrt(fx**2 + fy**2).numpy()
    amplitude = np.sqrt(np.interp(radius, frequency, power, left=power[0], right=power[-1]))
    amplitude /= math.sqrt(float(np.mean(amplitude**2)))  # unit variance after filtering unit white noise
    return torch.from_numpy(amplitude).float()


def shaped_unit_noise(
    shape: tuple[int, ...], views: int, kernel: str, generator: torch.Generator | None = None, grain: float = 1.0
) -> torch.Tensor:
    """Unit-variance noise with the FBP noise power spectrum of ``views``, ``kernel`` and ``grain`` (the
    resolution cell in pixels, see :class:`CTScanner`), shape ``(..., H, W)``."""
    white = torch.randn(shape, generator=generator)
    response = _noise_filter(tuple(shape[-2:]), int(views), str(kernel), float(grain))
    return torch.fft.ifft2(torch.fft.fft2(white) * response).real


def ct_noise_fast(
    terms: torch.Tensor,
    dose: float | torch.Tensor,
    scanner: CTScanner = CTScanner(),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Image-domain low-dose noise from precomputed variance terms (see :func:`ct_noise_variance_terms`).

    Args:
        terms: ``(..., 2, H, W)`` variance terms of the slices (possibly cropped, flipped or rotated with them).
        dose: fraction of the full dose, a number or a tensor broadcastable to the leading dims ``(...)``.
        scanner: views and kernel (the noise spectrum) and electronic noise; its counts are already in ``terms``.
        generator: random source (CPU).

    Returns:
        ``(..., H, W)`` noise in HU.
    """
    dose = torch.as_tensor(dose, dtype=torch.float32)
    if torch.any(~torch.isfinite(dose)) or torch.any(dose <= 0):
        raise ValueError(f"dose must be positive, got {dose}.")
    dose = dose.reshape(*dose.shape, 1, 1)
    variance = terms[..., 0, :, :] / dose + scanner.electronic_noise**2 * terms[..., 1, :, :] / dose**2
    shaped = shaped_unit_noise(tuple(variance.shape), scanner.views, scanner.kernel, generator, scanner.grain)
    return shaped * torch.sqrt(torch.clamp(variance, min=0.0))
