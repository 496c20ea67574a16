"""Evaluation: PSNR/SSIM (MONAI metrics), method comparison tables and figures."""

from __future__ import annotations

from .compare import (
    EvaluationRow,
    add_noise,
    evaluate,
    load_references,
    reference_slices,
    summarize,
    write_csv,
    write_markdown,
)
from .figures import comparison_figure
from .metrics import psnr, ssim
from .noise_map import local_noise_sd, noise_map_volume
from .report import denoising_report, residual_volume, run_report

__all__ = [
    "EvaluationRow",
    "add_noise",
    "comparison_figure",
    "denoising_report",
    "evaluate",
    "load_references",
    "psnr",
    "reference_slices",
    "residual_volume",
    "local_noise_sd",
    "noise_map_volume",
    "run_report",
    "ssim",
    "summarize",
    "write_csv",
    "write_markdown",
]
