"""Inference: the ``Denoiser`` (networks through sliding windows, or classical baselines)."""

from __future__ import annotations

from .denoiser import (
    PREFERRED_MODELS,
    DenoiseCancelled,
    Denoiser,
    DenoiseReport,
    default_model_name,
    preview_slab,
    slice_axis,
)
from .device import autocast_dtype, resolve_device
from .progress import Progress, ProgressCallback, line_progress_printer
from .sliding import HaloPredictor, build_inferer, count_windows, halo_for

__all__ = [
    "PREFERRED_MODELS",
    "DenoiseCancelled",
    "DenoiseReport",
    "Denoiser",
    "HaloPredictor",
    "Progress",
    "ProgressCallback",
    "autocast_dtype",
    "build_inferer",
    "count_windows",
    "default_model_name",
    "halo_for",
    "line_progress_printer",
    "preview_slab",
    "resolve_device",
    "slice_axis",
]
