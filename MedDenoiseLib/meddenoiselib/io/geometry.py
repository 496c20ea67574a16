"""Slice-stack geometry: from per-slice positions and orientations to one grid, or a reason there is none.

A DICOM series (or a multi-frame file) is a stack of 2D images, each with its own position. A volume file
(NIfTI, NRRD, MetaImage) has one affine, so it can only place the slices if they lie on one regular grid: the same
orientation, and a constant step from one slice to the next. :func:`stack_geometry` computes that grid, or says
why there is none, so writers can refuse a format that would put slices in the wrong place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = [
    "StackGeometry",
    "even_parts",
    "gantry_tilt_degrees",
    "in_plane_step",
    "orientation_groups",
    "stack_geometry",
]

#: two orientations (unit row/column vectors) are the same when their components differ by less than this.
ORIENTATION_TOLERANCE = 1e-3
#: slice steps are "constant" when each differs from the mean step by at most this fraction of it ...
STEP_RELATIVE_TOLERANCE = 0.01
#: ... or by at most this many millimetres (positions are decimal strings rounded by the scanner)
STEP_ABSOLUTE_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class StackGeometry:
    """The grid of a slice stack.

    Attributes:
        origin: LPS position in mm of voxel ``[0, 0, 0]`` (the first slice's first pixel).
        spacing: voxel size in mm along ``(i, j, k)`` = (column, row, slice).
        direction: ``3 x 3``; column m is the LPS unit vector of index axis m. The slice axis follows the actual
            step between slices, so it need not be orthogonal to the image plane (gantry tilt).
        problem: empty when every slice lies on this grid; otherwise why one affine cannot place the slices
            (uneven steps, gaps, slices out of line). The grid is then only approximate.
    """

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: np.ndarray
    problem: str = ""


def gantry_tilt_degrees(direction: np.ndarray) -> float:
    """The angle in degrees between a grid's slice axis (``direction``'s third column) and the normal of its image
    planes (the first two columns'; any lengths); 0 for an orthogonal grid, the gantry tilt of a sheared one."""
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    normal = np.cross(direction[:, 0], direction[:, 1])
    axis = direction[:, 2]
    cosine = abs(float(normal @ axis)) / max(float(np.linalg.norm(normal) * np.linalg.norm(axis)), 1e-12)
    return math.degrees(math.acos(min(cosine, 1.0)))


def in_plane_step(spacing, direction: np.ndarray) -> np.ndarray:
    """``(rows, columns)``: the in-plane part, in pixels, of the step from one slice to the next of a grid
    ``spacing`` / ``direction`` (as in :class:`~meddenoiselib.io.Volume`): how far along its column and row
    directions each slice of a sheared (tilted-gantry) grid sits from the one before; zeros for an orthogonal grid."""
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    step = direction[:, 2] * float(spacing[2])
    return np.array([step @ direction[:, 1] / float(spacing[1]), step @ direction[:, 0] / float(spacing[0])])


def _unit(vector: np.ndarray, label: str, what: str) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-6:
        raise InputError(f"{label}: {what} is not a direction ({vector.tolist()})")
    return vector / norm


def orientation_groups(orientations: np.ndarray) -> list[int]:
    """Group index of each ``(6,)`` row/column orientation: equal orientations share a group, in first-seen order."""
    groups: list[int] = []
    seen: list[np.ndarray] = []
    for orientation in np.asarray(orientations, dtype=np.float64).reshape(-1, 6):
        for index, reference in enumerate(seen):
            if np.max(np.abs(orientation - reference)) <= ORIENTATION_TOLERANCE:
                groups.append(index)
                break
        else:
            seen.append(orientation)
            groups.append(len(seen) - 1)
    return groups


def stack_geometry(
    label: str,
    orientation: np.ndarray | None,
    pixel_spacing: tuple[float, float],
    positions: np.ndarray | None,
    count: int,
    slice_spacing: float = 1.0,
) -> StackGeometry:
    """The grid of ``count`` slices that share one orientation.

    Args:
        label: the file or folder named in messages.
        orientation: DICOM ImageOrientationPatient ``(6,)``: row direction, then column direction (LPS); None
            means unknown (identity).
        pixel_spacing: ``(x, y)`` in mm: the spacing between columns, then between rows.
        positions: ``(count, 3)`` LPS positions of each slice's first pixel, in stack order; None when unknown
            (then only the first slice's position, if any, should be passed as a ``(1, 3)`` array).
        count: number of slices.
        slice_spacing: the spacing to use when positions cannot tell it (one slice, or unknown positions), in mm.
            Defaults to 1.

    Returns:
        The grid; ``problem`` says why it is only approximate (uneven or zero steps, slices not in line).
    """
    if orientation is None:
        row, column = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    else:
        orientation = np.asarray(orientation, dtype=np.float64).reshape(6)
        row = _unit(orientation[:3], label, "the image row orientation")
        column = _unit(orientation[3:], label, "the image column orientation")
    normal = np.cross(row, column)
    if np.linalg.norm(normal) < 1e-3:
        raise InputError(f"{label}: the image row and column orientations are parallel")
    normal = normal / np.linalg.norm(normal)
    spacing_x, spacing_y = (float(s) for s in pixel_spacing)
    direction = np.column_stack([row, column, normal])
    fallback = float(slice_spacing) if np.isfinite(slice_spacing) and slice_spacing > 0 else 1.0
    known = positions is not None and len(positions) == count
    origin = np.zeros(3) if positions is None or len(positions) == 0 else np.asarray(positions[0], dtype=np.float64)
    if count < 2 or not known:
        return StackGeometry(tuple(origin), (spacing_x, spacing_y, fallback), direction)

    positions = np.asarray(positions, dtype=np.float64).reshape(count, 3)
    steps = np.diff(positions, axis=0)
    mean_step = (positions[-1] - positions[0]) / (count - 1)
    length = float(np.linalg.norm(mean_step))
    if length < STEP_ABSOLUTE_TOLERANCE_MM:
        return StackGeometry(
            tuple(origin), (spacing_x, spacing_y, fallback), direction, "the slices all lie at the same position"
        )
    through_plane = float(np.dot(mean_step, normal)) / length
    axis = mean_step / length
    if abs(through_plane) < 0.1:
        # the "stack" runs within the image plane: no volume grid can hold it
        return StackGeometry(
            tuple(origin),
            (spacing_x, spacing_y, length),
            direction,
            "the slices are displaced within the image plane, not stacked through it",
        )
    deviation = np.linalg.norm(steps - mean_step, axis=1)
    tolerance = max(STEP_ABSOLUTE_TOLERANCE_MM, STEP_RELATIVE_TOLERANCE * length)
    direction = np.column_stack([row, column, axis])
    if float(deviation.max()) > tolerance:
        distances = np.linalg.norm(steps, axis=1)
        worst = int(np.argmax(deviation))
        problem = (
            f"the slices are not evenly spaced (steps from {distances.min():.4g} to {distances.max():.4g} mm; "
            f"the largest irregularity is between slices {worst} and {worst + 1})"
        )
        return StackGeometry(tuple(origin), (spacing_x, spacing_y, length), direction, problem)
    return StackGeometry(tuple(origin), (spacing_x, spacing_y, length), direction)


def even_parts(positions: np.ndarray) -> list[tuple[int, int]]:
    """Split a stack of unevenly spaced slices into runs of evenly spaced ones.

    A head CT taken with thin slices through the posterior fossa and thicker ones above (or a series with a slice
    missing) has no single grid, but each run of slices with one step has. Slices are taken in order: a run goes
    on while each step equals its first step (within the tolerances :func:`stack_geometry` uses), and the next run
    begins at the slice after the first step that differs, so every slice is in exactly one run.

    Args:
        positions: ``(Z, 3)`` LPS positions of each slice's first pixel (mm), in stack order.

    Returns:
        Half-open slice ranges ``[(start, stop), ...]`` covering ``0..Z`` in order; one range for an evenly spaced
        stack.
    """
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    count = len(positions)
    parts: list[tuple[int, int]] = []
    start = 0
    while start < count:
        stop = start + 1
        if stop < count:
            first = positions[stop] - positions[start]
            tolerance = max(STEP_ABSOLUTE_TOLERANCE_MM, STEP_RELATIVE_TOLERANCE * float(np.linalg.norm(first)))
            stop += 1
            while stop < count and np.linalg.norm(positions[stop] - positions[stop - 1] - first) <= tolerance:
                stop += 1
        parts.append((start, stop))
        start = stop
    return parts
