"""Turn a :class:`NoiseSpec` into noise on an image: unit resolution, then the shared torch samplers.

Intensity-relative models (Gaussian, Rician, non-central chi, speckle, Poisson-Gaussian) work on the image
normalized to [0, 1]; ``ct-lowdose`` works in HU. :func:`add_noise` takes the normalized image and the
:class:`~meddenoiselib.transforms.intensity.IntensityScaling` that produced it, so each model sees its own units
and the result comes back on the normalized scale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from ..ct_padding import OUTSIDE_RECONSTRUCTION_HU
from ..intensity import IntensityScaling, sigma_from_255
from . import samplers
from .ct_lowdose import CTScanner, ct_noise_fast, ct_noise_projection, ct_noise_variance_terms
from .spec import LevelUnit, NoiseKind, NoiseSpec

__all__ = ["add_noise", "normalized_sigma", "ct_dose_for_hu", "BODY_THRESHOLD_HU"]

logger = logging.getLogger(__name__)

#: voxels above this HU count as body for "noise in the body" (soft tissue, fat, bone; not lung or air).
BODY_THRESHOLD_HU = -500.0


def normalized_sigma(spec: NoiseSpec, normalized: torch.Tensor) -> float:
    """The level of an intensity-relative spec in normalized units for this image.

    ``scale255``: ``level/255``; ``percent``: ``level/100`` of the image's 99th percentile; ``relative`` and
    ``counts`` are dimensionless already.
    """
    if spec.unit == LevelUnit.SCALE255:
        return sigma_from_255(spec.level)
    if spec.unit == LevelUnit.PERCENT:
        flat = normalized.detach().reshape(-1).float().cpu()
        step = max(1, flat.numel() // 2_000_000)
        reference = float(torch.quantile(flat[::step], 0.99))
        if reference <= 0:
            raise ValueError("the image's 99th percentile is not positive, so a % noise level is undefined")
        return spec.level / 100.0 * reference
    return spec.level


def ct_dose_for_hu(hu: torch.Tensor, pixel_mm: float, target_hu: float, scanner: CTScanner) -> float:
    """The dose fraction that puts ``target_hu`` of noise (median over the body) in these slices.

    Uses the middle slice's noise-variance map (:func:`ct_noise_variance_terms`); electronic noise is left out
    of the estimate, so at very low doses the result is slightly noisier than asked.
    """
    middle = _middle_slice(hu)
    return _dose_for_quantum_map(middle, ct_noise_variance_terms(middle, pixel_mm, scanner)[0], target_hu)


def _middle_slice(stack: torch.Tensor) -> torch.Tensor:
    """``(..., H, W)`` -> the middle ``(H, W)`` slice of the flattened leading axes."""
    flat = stack.reshape(-1, *stack.shape[-2:])
    return flat[flat.shape[0] // 2]


def _dose_for_quantum_map(middle: torch.Tensor, quantum: torch.Tensor, target_hu: float) -> float:
    body = middle > BODY_THRESHOLD_HU
    if int(body.sum()) < 16:
        raise ValueError(f"no body (voxels above {BODY_THRESHOLD_HU:g} HU) to set a noise level of {target_hu:g} HU")
    reference = float(torch.sqrt(torch.median(quantum[body])))
    return (reference / target_hu) ** 2


def _ct_noise(
    hu: torch.Tensor,
    spec: NoiseSpec,
    pixel_mm: float | None,
    generator: torch.Generator | None,
    on_slice: Callable[[], None] | None,
):
    if pixel_mm is None:
        raise ValueError("ct-lowdose noise needs the in-plane pixel spacing in mm")
    terms = ct_noise_variance_terms(hu, pixel_mm, spec.scanner) if spec.method == "fast" else None
    if spec.unit == LevelUnit.DOSE:
        dose = spec.level
    elif terms is not None:  # the middle slice's quantum map is already in `terms`: the same numbers as ct_dose_for_hu
        quantum = _middle_slice(terms.reshape(-1, 2, *hu.shape[-2:])[:, 0])
        dose = _dose_for_quantum_map(_middle_slice(hu), quantum, spec.level)
    else:
        dose = ct_dose_for_hu(hu, pixel_mm, spec.level, spec.scanner)
    logger.debug("ct-lowdose: dose %.4g of the full dose", dose)
    if terms is not None:
        return ct_noise_fast(terms, dose, spec.scanner, generator)
    return ct_noise_projection(hu, pixel_mm, dose, spec.scanner, generator, on_slice)


def add_noise(
    normalized: torch.Tensor | np.ndarray,
    spec: NoiseSpec,
    scaling: IntensityScaling | None = None,
    pixel_mm: float | None = None,
    generator: torch.Generator | None = None,
    on_slice: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Add noise of ``spec`` to an image on the normalized scale.

    Args:
        normalized: ``(B, C, *spatial)`` float image(s) on the normalized scale; for ``ct-lowdose`` the last two
            axes are the slice plane and every other index is a separate slice.
        spec: the noise model and level.
        scaling: how ``normalized`` maps to the image's units (``scaling.invert``); needed by ``ct-lowdose`` to
            work in HU. None: the normalized scale *is* HU for ``ct-lowdose`` (and irrelevant for the others).
        pixel_mm: in-plane pixel spacing in mm (``ct-lowdose`` only).
        generator: the random source; a seeded generator reproduces the noise exactly.
        on_slice: ``ct-lowdose`` with the projection method: called after each slice (progress).

    Returns:
        The noisy image(s), float32 torch tensor on the normalized scale, same shape.
    """
    clean = torch.as_tensor(np.asarray(normalized) if not isinstance(normalized, torch.Tensor) else normalized)
    clean = clean.float()
    if spec.kind == NoiseKind.CT_LOWDOSE:
        scale = 1.0 if scaling is None else scaling.scale
        low = 0.0 if scaling is None else scaling.low
        hu = (clean.double() * scale + low).float()
        noise = _ct_noise(hu, spec, pixel_mm, generator, on_slice)
        # a scanner stores its padding outside the reconstruction as a constant, with no noise
        noise = noise.masked_fill(hu < OUTSIDE_RECONSTRUCTION_HU, 0.0)
        return clean + (noise / scale).to(clean.dtype)
    level = normalized_sigma(spec, clean)
    if spec.kind == NoiseKind.GAUSSIAN:
        return samplers.gaussian(clean, level, generator)
    if spec.kind in (NoiseKind.RICIAN, NoiseKind.NONCENTRAL_CHI):
        return samplers.noncentral_chi(clean, level, spec.coils, generator)
    if spec.kind == NoiseKind.SPECKLE:
        return samplers.speckle(clean, level, generator)
    return samplers.poisson_gaussian(clean, level, spec.read_noise, generator)
