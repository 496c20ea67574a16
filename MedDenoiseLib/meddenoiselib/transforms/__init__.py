"""MONAI-style transforms: intensity scaling with an exact inverse, noise simulation, noise-level estimation."""

from __future__ import annotations

from .estimate import NoiseEstimate, estimate_noise, estimate_sigma, estimate_sigma_per_slice, magnitude_floor_ratio
from .intensity import IntensityScaling, NoiseSD, ScalingMode, fit_scaling, sigma_from_255
from .magnitude import MagnitudeFloor, correct_magnitude_bias, estimate_magnitude_floor
from .noise import (
    BatchNoise,
    NoiseKind,
    NoiseRange,
    NoiseSpec,
    RandNoise,
    RandNoised,
    add_noise,
    make_noise_transform,
    parse_noise_range,
    parse_noise_spec,
    simulate_volume,
)
from .noise_sd_map import NoiseSDMap, estimate_noise_sd_map
from .scaling_transforms import RestoreUnits, RestoreUnitsd, ScaleToUnit, ScaleToUnitd

__all__ = [
    "MagnitudeFloor",
    "correct_magnitude_bias",
    "estimate_magnitude_floor",
    "BatchNoise",
    "IntensityScaling",
    "NoiseEstimate",
    "NoiseKind",
    "ScaleToUnit",
    "ScaleToUnitd",
    "RestoreUnits",
    "RestoreUnitsd",
    "NoiseRange",
    "NoiseSpec",
    "RandNoise",
    "RandNoised",
    "ScalingMode",
    "add_noise",
    "estimate_noise",
    "estimate_sigma",
    "estimate_sigma_per_slice",
    "fit_scaling",
    "make_noise_transform",
    "parse_noise_range",
    "parse_noise_spec",
    "NoiseSD",
    "NoiseSDMap",
    "estimate_noise_sd_map",
    "sigma_from_255",
    "magnitude_floor_ratio",
    "simulate_volume",
]
