"""Noise for training batches: a level (and model) drawn per sample, then the same samplers as ``simulate``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..intensity import sigma_from_255
from . import samplers
from .ct_lowdose import shaped_unit_noise
from .spec import LevelUnit, NoiseKind, NoiseRange, parse_noise_range

__all__ = ["BatchNoise", "CT_TERMS_PER_FRAME"]

#: auxiliary channels per frame that ``ct-lowdose`` training needs (two normalized variance terms and one
#: normalized projection-domain realization, see :meth:`BatchNoise.__call__`).
CT_TERMS_PER_FRAME = 3


class BatchNoise:
    """Corrupt a clean training batch with a noise level drawn per sample (blind denoising over a range).

    Args:
        ranges: noise models with level ranges (:class:`NoiseRange` or text such as ``"gaussian:0-50"``,
            ``"ct-lowdose:5HU-100HU,kernel=shepp-logan|hann"``); each sample draws one model uniformly.
        generator: random source of the noise itself. Defaults to a generator seeded with 0.
        level_generator: random source of the per-sample model, level and scanner choices, kept apart so that a
            fixed level reproduces exactly what ``RandNoise`` with the same generator seed draws. Defaults to a
            generator seeded with 1.
        hu_per_unit: HU per normalized unit of the training images (``ct-lowdose``; 400 for the CT HU map).
        projection_fraction: ``ct-lowdose``: share of samples whose noise is the stored projection-domain
            realization (scaled to the drawn level) rather than fresh image-domain noise. The fast model has the
            right spectrum and local level but no streaks; the stored realizations have streaks but repeat.
            Defaults to 0.5.
        store_8bit_fraction: share of samples (non-CT models) whose noisy image is then stored as an 8-bit file
            would be: clipped to [0, 1] and rounded to 1/255 steps. Noisy PNG/JPEG inputs look like that (the
            noise below black and above white is cut off), and a model that never saw it leaves a bias there.
            Defaults to 0.
    """

    def __init__(
        self,
        ranges: Sequence[NoiseRange | str] = ("gaussian:0-50",),
        generator: torch.Generator | None = None,
        level_generator: torch.Generator | None = None,
        hu_per_unit: float = 400.0,
        projection_fraction: float = 0.5,
        store_8bit_fraction: float = 0.0,
    ) -> None:
        self.ranges = tuple(parse_noise_range(r) if isinstance(r, str) else r for r in ranges)
        if not self.ranges:
            raise ValueError("`ranges` must name at least one noise model.")
        for r in self.ranges:
            if r.unit == LevelUnit.PERCENT:
                raise ValueError(f"training ranges take levels on the 0-255 scale, not % ({r}).")
            if r.kind == NoiseKind.CT_LOWDOSE and r.unit != LevelUnit.HU:
                raise ValueError(f"ct-lowdose training ranges are body noise levels in HU, e.g. 5HU-100HU ({r}).")
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.level_generator = level_generator if level_generator is not None else torch.Generator().manual_seed(1)
        self.hu_per_unit = float(hu_per_unit)
        self.projection_fraction = float(projection_fraction)
        self.store_8bit_fraction = float(store_8bit_fraction)

    @property
    def needs_ct_terms(self) -> bool:
        """Whether batches need the per-pixel CT variance terms (:data:`CT_TERMS_PER_FRAME` per frame)."""
        return any(r.kind == NoiseKind.CT_LOWDOSE for r in self.ranges)

    def _uniform(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.level_generator, dtype=torch.float64)

    def _levels(self, r: NoiseRange, n: int) -> torch.Tensor:
        if r.log_uniform:
            return self._log_uniform(r.low, r.high, n)
        return r.low + self._uniform(n) * (r.high - r.low)

    def _log_uniform(self, low: float, high: float, n: int) -> torch.Tensor:
        return torch.exp(math.log(low) + self._uniform(n) * (math.log(high) - math.log(low)))

    def __call__(self, clean: torch.Tensor, ct_terms: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrupt a batch.

        Args:
            clean: ``(B, C, *spatial)`` on the normalized scale (CPU).
            ct_terms: ``ct-lowdose`` only: ``(B, 3·C, H, W)``, per frame the quantum and electronic variance terms
                normalized to the slice's body noise (``var_HU = σ²·q + e²·σ⁴·r`` for a body noise σ in HU and
                electronic noise e in counts) and a projection-domain realization of unit body std
                (:func:`~meddenoiselib.training.data.ct_training_terms`). None: stationary noise of level σ.

        Returns:
            ``(noisy, sigma)``: the noisy batch and ``(B,)`` noise standard deviations in normalized units (for
            speckle and Poisson the value at intensity 0.5, as a guide for noise-map networks).
        """
        b = clean.shape[0]
        choice = (self._uniform(b) * len(self.ranges)).long().clamp_(max=len(self.ranges) - 1)
        noisy = torch.empty_like(clean)
        sigma = torch.empty(b, dtype=torch.float32)
        for k, r in enumerate(self.ranges):
            idx = (choice == k).nonzero().flatten()
            if idx.numel() == 0:
                continue
            levels = self._levels(r, idx.numel())
            x = clean[idx]
            if r.kind == NoiseKind.CT_LOWDOSE:
                noisy[idx], sigma[idx] = self._ct(x, levels, r, None if ct_terms is None else ct_terms[idx])
                continue
            if r.kind == NoiseKind.GAUSSIAN:
                level = sigma_from_255(levels)
                y = samplers.gaussian(x, level, self.generator)
            elif r.kind in (NoiseKind.RICIAN, NoiseKind.NONCENTRAL_CHI):
                level = sigma_from_255(levels)
                y = samplers.noncentral_chi(x, level, r.coils, self.generator)
            elif r.kind == NoiseKind.SPECKLE:
                level = 0.5 * levels
                y = samplers.speckle(x, levels, self.generator)
            else:
                level = torch.sqrt(0.5 / levels + (r.read_noise / levels) ** 2)
                y = samplers.poisson_gaussian(x, levels, r.read_noise, self.generator)
            if self.store_8bit_fraction > 0:
                stored = (self._uniform(idx.numel()) < self.store_8bit_fraction).view(-1, *([1] * (y.ndim - 1)))
                y = torch.where(stored, torch.round(torch.clamp(y, 0, 1) * 255) / 255, y)
            noisy[idx] = y.to(clean.dtype)
            sigma[idx] = level.float()
        return noisy, sigma

    def _grains(self, r: NoiseRange, n: int) -> list[float]:
        """Per sample the noise grain in pixels, log-uniform over ``r.grain`` in steps of 0.25 pixel (a few cached
        noise filters); nothing is drawn for a fixed grain, so such runs sample exactly as before grains existed."""
        low, high = r.grain
        if high <= low:
            return [low] * n
        return [float(g) for g in (self._log_uniform(low, high, n) * 4).round() / 4]

    def _ct(
        self, clean: torch.Tensor, levels: torch.Tensor, r: NoiseRange, terms: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n, frames = clean.shape[:2]
        kernel_index = (self._uniform(n) * len(r.kernels)).long().clamp_(max=len(r.kernels) - 1)
        # views only shape the spectrum's far tail; steps of 180 keep the cached spectra few
        views = ((r.views[0] + self._uniform(n) * (r.views[1] - r.views[0])) / 180).round().clamp(min=1).long() * 180
        electronic = r.electronic[0] + self._uniform(n) * (r.electronic[1] - r.electronic[0])
        stored = self._uniform(n) < self.projection_fraction
        grain = self._grains(r, n)
        sigma_hu = levels.view(n, 1, 1, 1)
        if terms is None:
            variance = (sigma_hu**2).expand(n, frames, *clean.shape[-2:])
        else:
            per = CT_TERMS_PER_FRAME
            quantum, elec = terms[:, 0::per].double(), terms[:, 1::per].double()
            variance = sigma_hu**2 * quantum + (electronic.view(n, 1, 1, 1) ** 2) * sigma_hu**4 * elec
        noise = torch.empty(clean.shape, dtype=torch.float64)
        for i in range(n):
            if terms is not None and bool(stored[i]):
                noise[i] = terms[i, 2::CT_TERMS_PER_FRAME].double() * sigma_hu[i]
                continue
            shaped = shaped_unit_noise(
                tuple(clean.shape[1:]), int(views[i]), r.kernels[int(kernel_index[i])], self.generator, grain[i]
            )
            noise[i] = shaped.double() * torch.sqrt(torch.clamp(variance[i], min=0))
        noisy = clean + (noise / self.hu_per_unit).to(clean.dtype)
        return noisy, (levels / self.hu_per_unit).float()
