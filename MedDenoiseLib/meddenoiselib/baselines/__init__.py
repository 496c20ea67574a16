"""Classical denoising baselines: median, non-local means, BM3D/BM4D (optional), anisotropic diffusion."""

from __future__ import annotations

from .bm3d import bm3d_available, bm3d_denoise, bm4d_available, bm4d_denoise
from .diffusion import diffusion_denoise
from .median import median_denoise
from .nlm import nlm_denoise
from .registry import BASELINES, BaselineSpec, get_baseline, list_baselines

__all__ = [
    "BASELINES",
    "BaselineSpec",
    "bm3d_available",
    "bm3d_denoise",
    "bm4d_available",
    "bm4d_denoise",
    "diffusion_denoise",
    "get_baseline",
    "list_baselines",
    "median_denoise",
    "nlm_denoise",
]
