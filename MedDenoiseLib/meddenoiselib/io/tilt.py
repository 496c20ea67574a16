"""Tilted-gantry grids: how far a volume's slices step off their normal, and a copy resampled onto an orthogonal grid.

A CT taken with the gantry tilted (routine for head CT, to spare the orbits) has image planes that are not
perpendicular to the table: each slice is the previous one moved along the table, so the grid is sheared. The
library keeps that grid exactly (``Volume.direction``'s slice axis follows the step between slices) and DICOM, NRRD
and MetaImage outputs hold it, but a NIfTI file holds it only in its sform, which ITK-based tools (3D Slicer,
ITK-SNAP, ANTs) do not read for a sheared affine (:func:`~meddenoiselib.io.nifti.qform_misplacement`).

:func:`correct_tilt` gives the alternative dcm2niix and Slicer's DICOM loader offer: the same slices on an
orthogonal grid. The image planes stay where they are (the new slice axis is their normal, the slice spacing their
distance apart); each slice only moves within its plane by a whole grid of the in-plane shift the tilt makes, with
bilinear interpolation for the fractional part, on a grid grown so that no voxel is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from ..errors import OptionError
from .geometry import gantry_tilt_degrees, in_plane_step
from .series import VolumeSeries
from .volume import Volume

__all__ = ["OrthogonalGrid", "correct_tilt", "gantry_tilt_degrees", "orthogonal_grid"]

#: a shear whose largest in-plane shift over the volume stays below this fraction of a voxel is left alone
NEGLIGIBLE_SHIFT_VOXELS = 0.1


@dataclass(frozen=True)
class OrthogonalGrid:
    """An orthogonal grid that holds a sheared volume's slices.

    Attributes:
        origin: LPS position in mm of voxel ``[0, 0, 0]``.
        spacing: ``(x, y, z)`` voxel size in mm: the in-plane pixel size, and the distance between the image planes.
        direction: ``3 x 3``; columns: the row and column directions of the slices, and their normal (on the side
            the slices step to).
        shape: ``(Z, Y, X)``; ``Z`` as the source's, ``Y`` and ``X`` grown by the tilt's in-plane shift.
        offsets: ``(Z, 2)``: for slice ``k``, the source pixel ``(row, column)`` that lands on the new grid's pixel
            ``(0, 0)`` (fractional).
        tilt_degrees: the angle between the source's slice axis and the planes' normal.
    """

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: np.ndarray
    shape: tuple[int, int, int]
    offsets: np.ndarray
    tilt_degrees: float


def orthogonal_grid(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], origin, direction: np.ndarray
) -> OrthogonalGrid | None:
    """The orthogonal grid for a volume of ``shape`` ``(Z, Y, X)`` on the grid ``spacing`` / ``origin`` /
    ``direction`` (as in :class:`~meddenoiselib.io.Volume`), or None when its slices' in-plane shift over the whole
    volume stays below a tenth of a pixel (nothing to correct).

    Raises:
        OptionError: the image plane's row and column directions are not perpendicular unit vectors.
    """
    slices, rows, columns = (int(n) for n in shape)
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    row_axis, column_axis = direction[:, 0], direction[:, 1]
    if abs(row_axis @ column_axis) > 1e-3 or not np.allclose(np.linalg.norm(direction[:, :2], axis=0), 1, atol=1e-3):
        raise OptionError("the image plane's row and column directions are not perpendicular unit vectors")
    normal = np.cross(row_axis, column_axis)
    step = direction[:, 2] * float(spacing[2])
    plane_distance = float(step @ normal)
    if plane_distance < 0:  # the normal on the side the slices step to, so slice k stays slice k
        normal, plane_distance = -normal, -plane_distance
    if plane_distance <= 1e-6 * float(spacing[2]):
        raise OptionError("the slices step within their own plane: they are not a stack")
    shift = in_plane_step(spacing, direction)  # of each slice from the one before it, (rows, columns) pixels
    span = shift * (slices - 1)
    if float(np.max(np.abs(span))) < NEGLIGIBLE_SHIFT_VOXELS:
        return None
    low = np.floor(np.minimum(span, 0) + 1e-6)
    high = np.ceil(np.maximum(span, 0) - 1e-6)
    grown = (rows + int(high[0] - low[0]), columns + int(high[1] - low[1]))
    origin = np.asarray(origin, dtype=np.float64) + low[1] * spacing[0] * row_axis + low[0] * spacing[1] * column_axis
    offsets = low[None, :] - np.arange(slices)[:, None] * shift[None, :]
    return OrthogonalGrid(
        origin=tuple(float(v) for v in origin),
        spacing=(float(spacing[0]), float(spacing[1]), plane_distance),
        direction=np.stack([row_axis, column_axis, normal], axis=1),
        shape=(slices, *grown),
        offsets=offsets,
        tilt_degrees=gantry_tilt_degrees(direction),
    )


def _resample_slices(array: np.ndarray, grid: OrthogonalGrid, fill: float) -> np.ndarray:
    """``array`` ``(Z, Y, X)`` or ``(Z, Y, X, C)`` on ``grid``: each slice moved within its plane (bilinear), the
    uncovered border ``fill``; integer types rounded and clipped to their range."""
    out_shape = grid.shape + tuple(array.shape[3:])
    out = np.empty(out_shape, dtype=array.dtype)
    integer = np.issubdtype(array.dtype, np.integer)
    limits = np.iinfo(array.dtype) if integer else None
    for k in range(array.shape[0]):
        planes = array[k] if array.ndim == 4 else array[k][..., None]
        for c in range(planes.shape[-1]):
            moved = ndimage.affine_transform(
                planes[..., c].astype(np.float64 if integer else np.result_type(array.dtype, np.float32)),
                np.eye(2),
                offset=grid.offsets[k],
                output_shape=grid.shape[1:],
                order=1,
                mode="constant",
                cval=fill,
            )
            if integer:
                moved = np.clip(np.rint(moved), limits.min, limits.max)
            if array.ndim == 4:
                out[k, ..., c] = moved
            else:
                out[k] = moved
    return out


def correct_tilt(data: Volume | VolumeSeries, fill: float | None = None) -> Volume | VolumeSeries:
    """``data`` resampled onto the orthogonal grid of its image planes (:func:`orthogonal_grid`), or ``data`` itself
    when its grid is orthogonal (or nearly: below a tenth of a pixel of shift over the volume).

    Args:
        data: a volume ``(Z, Y, X[, C])`` or a series of frames ``(T, Z, Y, X[, C])`` in physical units (e.g. HU).
        fill: the value of voxels the source does not cover (the corners the shift uncovers); default the data's
            minimum (air, or the scanner's padding outside its field of view).

    Returns:
        The same type, with the new grid's origin, spacing and direction, each slice moved within its plane by the
        shift the tilt makes (bilinear interpolation); values in the source's units and dtype (integers rounded).
        Metadata and source information are kept.

    Raises:
        OptionError: the volume's row and column directions are not perpendicular, or its slices do not stack.
    """
    grid = orthogonal_grid(data.shape, data.spacing, data.origin, data.direction)
    if grid is None:
        return data
    array = data.array
    if fill is None:
        fill = float(np.min(array)) if array.size else 0.0
    if isinstance(data, VolumeSeries):
        moved = np.stack([_resample_slices(frame, grid, fill) for frame in array])
    else:
        moved = _resample_slices(array, grid, fill)
    return replace(data, array=moved, origin=grid.origin, spacing=grid.spacing, direction=grid.direction)
