"""MONAI-style transforms: intensity scaling with an exact inverse, noise simulation, noise-level estimation."""

from __future__ import annotations

from .estimate import estimate_sigma, estimate_sigma_per_slice
from .intensity import IntensityScaling, ScalingMode, fit_scaling, sigma_from_255
from .noise import (
    BatchNoise,
    NoiseKind,
    RandPoissonNoise,
    RandPoissonNoised,
    RandSpeckleNoise,
    RandSpeckleNoised,
    make_noise_transform,
    parse_noise_spec,
)
from .scaling_transforms import DenormalizeIntensityd, NormalizeIntensityd

__all__ = [
    "BatchNoise",
    "DenormalizeIntensityd",
    "IntensityScaling",
    "NoiseKind",
    "NormalizeIntensityd",
    "RandPoissonNoise",
    "RandPoissonNoised",
    "RandSpeckleNoise",
    "RandSpeckleNoised",
    "ScalingMode",
    "estimate_sigma",
    "estimate_sigma_per_slice",
    "fit_scaling",
    "make_noise_transform",
    "parse_noise_spec",
    "sigma_from_255",
]
