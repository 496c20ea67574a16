"""Noise models for simulation, training and evaluation: one implementation, MONAI-style transforms on top.

See :mod:`.spec` for the text forms (``gaussian:25``, ``rician:3%``, ``noncentral-chi:3%,8``, ``speckle:0.2``,
``poisson-gaussian:100,2``, ``ct-lowdose:0.25``) and their units.
"""

from __future__ import annotations

from .apply import BODY_THRESHOLD_HU, add_noise, ct_dose_for_hu, normalized_sigma
from .batch import CT_TERMS_PER_FRAME, BatchNoise
from .ct_lowdose import (
    MU_WATER_PER_MM,
    CTScanner,
    ct_noise_fast,
    ct_noise_projection,
    ct_noise_variance_terms,
    fbp_noise_power_spectrum,
    hu_to_attenuation,
    shaped_unit_noise,
)
from .ct_projection import RECONSTRUCTION_KERNELS, ParallelBeam
from .simulate import in_plane_pixel_mm, simulate_volume
from .spec import LevelUnit, NoiseKind, NoiseRange, NoiseSpec, parse_noise_range, parse_noise_spec
from .transforms import RandNoise, RandNoised, make_noise_transform

__all__ = [
    "BODY_THRESHOLD_HU",
    "BatchNoise",
    "CTScanner",
    "CT_TERMS_PER_FRAME",
    "LevelUnit",
    "MU_WATER_PER_MM",
    "NoiseKind",
    "NoiseRange",
    "NoiseSpec",
    "ParallelBeam",
    "RECONSTRUCTION_KERNELS",
    "RandNoise",
    "RandNoised",
    "add_noise",
    "ct_dose_for_hu",
    "ct_noise_fast",
    "ct_noise_projection",
    "ct_noise_variance_terms",
    "fbp_noise_power_spectrum",
    "hu_to_attenuation",
    "in_plane_pixel_mm",
    "make_noise_transform",
    "normalized_sigma",
    "parse_noise_range",
    "parse_noise_spec",
    "shaped_unit_noise",
    "simulate_volume",
]
