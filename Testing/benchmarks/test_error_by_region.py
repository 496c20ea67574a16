"""benchmarks/error_by_region.py splits an image's error into flat regions, texture and edges of the clean image,
in parts that add up to the image's RMSE, with the edges where the clean image changes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from error_by_region import region_masks, region_rmse  # noqa: E402


def _disc(size: int = 64) -> np.ndarray:
    """A bright disc on a gentle ramp: edges on the disc's rim, texture-free elsewhere."""
    y, x = np.mgrid[:size, :size].astype(np.float32)
    ramp = 0.2 * x / size
    return np.where(np.hypot(y - size / 2, x - size / 2) < size / 4, 0.9, ramp).astype(np.float32)


def test_regions_partition_the_image_with_edges_on_the_rim():
    clean = _disc()
    masks = region_masks(clean)
    stacked = np.stack(list(masks.values())).astype(int)
    assert (stacked.sum(axis=0) == 1).all()  # every pixel in exactly one region
    assert masks["edges"].mean() == pytest.approx(0.10, abs=0.02)
    assert masks["flat"].mean() == pytest.approx(0.50, abs=0.02)
    y, x = np.nonzero(masks["edges"])
    radius = np.hypot(y - 32, x - 32)
    assert np.all(np.abs(radius - 16) < 4)  # the top 10 % of the gradient lies on the disc's rim


def test_region_parts_add_up_in_quadrature_to_the_rmse_on_the_255_scale():
    clean = _disc()
    rng = np.random.default_rng(0)
    error = rng.normal(0, 10 / 255, clean.shape).astype(np.float32)
    error[region_masks(clean)["edges"]] *= 3  # a denoiser that fails at edges
    parts = region_rmse(clean, clean + error, region_masks(clean))
    rmse = np.sqrt(np.mean(error.astype(np.float64) ** 2)) * 255
    assert np.sqrt(sum(p**2 for p in parts.values())) == pytest.approx(rmse, rel=1e-6)
    # white error of 10 is sqrt(0.5) * 10 over the flat half; the edges' tenth carries 3x the error
    assert parts["flat"] == pytest.approx(10 * np.sqrt(0.5), rel=0.05)
    assert parts["edges"] == pytest.approx(30 * np.sqrt(0.1), rel=0.1)
