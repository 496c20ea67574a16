"""A volume converted from a DICOM series (a NIfTI of dcm2niix, an NRRD of Slicer) put back on that series' grid, so
that its result is written as a derived series of the original study: what planning software and PACS take.

Converters reorder the axes (dcm2niix flips the rows to NIfTI's RAS-like order, and may reverse the slices), so the
voxels are matched by geometry, not by index: each of the series' axes must be one of the volume's, the same way or
reversed, with the same voxel size, and the voxel at the series' first corner must lie at its first image's
position. Only axes are permuted and reversed; nothing is interpolated. Its values must be the series' (the same
physical units): a volume normalized or rescaled since is refused rather than written as HU it is not.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .volume import Volume

__all__ = ["on_dicom_grid"]

#: the axes of the two grids are the same when their directions' dot product is at least this (0.26 degrees)
_SAME_AXIS = 0.99999
#: voxel sizes agree within this fraction (converters store them as float32)
_SPACING_TOLERANCE = 1e-3
#: the first voxels' positions agree within this fraction of the smallest voxel size (and at least 0.01 mm)
_POSITION_TOLERANCE = 0.05
#: the values' 1st-99th percentile spans agree within this factor, and their medians within this share of the span
_SPAN_FACTOR = 1.05
_MEDIAN_SHIFT = 0.02


def on_dicom_grid(volume: Volume, series: Volume, label: str = "input") -> Volume:
    """``volume``'s voxels on the grid of the DICOM ``series`` it was converted from, with the series' geometry,
    header values and source files (so :func:`~meddenoiselib.io.write_volume` writes a derived series of it).

    Args:
        volume: the converted volume, ``(Z, Y, X[, C])``, in the series' physical units.
        series: the series as :func:`~meddenoiselib.io.read_volume` reads it (its pixels give the values' check).
        label: how messages name ``volume`` (its file).

    Returns:
        A volume of ``series``' shape, geometry, metadata and source, holding ``volume``'s values (dtype kept).

    Raises:
        InputError: ``series`` is not DICOM or its slices are not on one grid, or the two grids or value ranges
            differ (the message says how).
    """
    where = f"{label} and the DICOM series {series.source.path}"
    if not series.source.dicom_files:
        raise InputError(f"{series.source.path}: not DICOM; give the DICOM series the input was converted from")
    if series.source.grid_problem:
        raise InputError(f"{series.source.path}: {series.source.grid_problem}; a converted volume cannot match it")
    if volume.num_components != series.num_components:
        raise InputError(f"{where}: {volume.num_components} and {series.num_components} components per voxel differ")
    axes, flips = _matching_axes(volume, series, where)
    array = np.transpose(volume.array, [2 - axes[2 - a] for a in range(3)] + list(range(3, volume.array.ndim)))
    flip = tuple(2 - a for a in range(3) if flips[a])
    array = np.flip(array, axis=flip) if flip else array
    if array.shape[:3] != series.shape:
        raise InputError(f"{where}: {array.shape[:3]} voxels on the series' axes, the series {series.shape} (z, y, x)")
    spacing = np.asarray(volume.spacing)[list(axes)]
    if not np.allclose(spacing, series.spacing, rtol=_SPACING_TOLERANCE, atol=0.0):
        raise InputError(
            f"{where}: voxel sizes differ ({_mm(spacing)} and {_mm(series.spacing)} mm): resampled since conversion?"
        )
    corner = np.array([volume.shape[2 - b] - 1 if flips[a] else 0 for a, b in enumerate(axes)], dtype=np.float64)
    first = np.asarray(volume.origin) + volume.direction[:, list(axes)] @ (corner * spacing)
    offset = float(np.linalg.norm(first - np.asarray(series.origin)))
    if offset > max(0.01, _POSITION_TOLERANCE * float(min(series.spacing))):
        raise InputError(
            f"{where}: the grids are {offset:.3g} mm apart (the series' first voxel at {_mm(series.origin)} mm, the "
            f"input's at {_mm(first)}): cropped or moved since conversion?"
        )
    array = np.ascontiguousarray(array)  # one copy of a reordered volume, not one per use
    _check_values(array, series.array, where)
    return series.with_array(array)


def _matching_axes(volume: Volume, series: Volume, where: str) -> tuple[tuple[int, int, int], tuple[bool, ...]]:
    """For each of the series' x, y, z axes, the volume's axis along it and whether it runs the other way."""
    dots = series.direction.T @ volume.direction  # [series axis, volume axis]
    axes, flips = [], []
    for a in range(3):
        b = int(np.argmax(np.abs(dots[a])))
        single = series.shape[2 - a] == 1 and volume.shape[2 - b] == 1  # one slice: its normal need not agree
        if b in axes or (abs(dots[a, b]) < _SAME_AXIS and not single):
            raise InputError(
                f"{where}: the grids are not the same up to the order and sense of their axes (rotated or resampled "
                "since conversion?)"
            )
        axes.append(b)
        flips.append(bool(dots[a, b] < 0) and not single)
    return tuple(axes), tuple(flips)


def _check_values(values: np.ndarray, original: np.ndarray, where: str) -> None:
    """Refuse values that are not the series' own units (normalized, rescaled or another image)."""
    low, median, high = np.nanpercentile(values[::2, ::2, ::2].astype(np.float64), (1, 50, 99))
    low_o, median_o, high_o = np.nanpercentile(original[::2, ::2, ::2].astype(np.float64), (1, 50, 99))
    span, span_o = high - low, high_o - low_o
    same_span = span_o > 0 and 1 / _SPAN_FACTOR <= span / span_o <= _SPAN_FACTOR
    if not same_span or abs(median - median_o) > _MEDIAN_SHIFT * span_o:
        raise InputError(
            f"{where}: the values are not the series' (1st / 50th / 99th percentiles {low:.4g} / {median:.4g} / "
            f"{high:.4g} against {low_o:.4g} / {median_o:.4g} / {high_o:.4g}): normalized or rescaled since "
            "conversion? A derived series would store them as the series' units"
        )


def _mm(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in np.asarray(values, dtype=np.float64)) + ")"
