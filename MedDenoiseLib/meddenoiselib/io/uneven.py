"""A DICOM series with unevenly spaced slices as evenly spaced parts, each of which one affine can place.

A head CT taken with thin slices through the posterior fossa and thicker ones above (GE's and Siemens' routine
head protocols), or a series with a slice missing, has no single grid: a NIfTI, NRRD or MetaImage file would put
its slices in the wrong place, so such outputs are refused and a derived DICOM series keeps each slice's own
position. Each run of evenly spaced slices (:func:`~meddenoiselib.io.geometry.even_parts`) has a grid, so the
volume can be written as one file per part, each with its slices exactly where they were; nothing is resampled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .geometry import even_parts, stack_geometry
from .volume import Volume

__all__ = ["UnevenPart", "uneven_parts", "volume_part"]


@dataclass(frozen=True)
class UnevenPart:
    """Slices ``start`` to ``stop - 1`` (axis 0) of an uneven series, evenly spaced ``step`` mm apart (0 for a part
    of one slice); ``number`` counts the parts from 1."""

    number: int
    start: int
    stop: int
    step: float

    @property
    def slices(self) -> int:
        return self.stop - self.start


def _stack_positions(stack) -> np.ndarray | None:
    """Each slice's LPS position ``(Z, 3)`` of a classic DICOM stack (one image per slice), or None when a slice
    has no position or the stack holds frames (several images per position, mosaics, multi-frame files)."""
    if stack is None or stack.repeated_frames > 1 or stack.mosaic is not None or stack.frame_order:
        return None
    if any(image.frames != 1 or image.positions is None or len(image.positions) != 1 for image in stack.images):
        return None
    return np.concatenate([image.positions for image in stack.images]).astype(np.float64)


def uneven_parts(header) -> list[UnevenPart]:
    """The evenly spaced parts of a probed DICOM series (:func:`~meddenoiselib.io.probe_volume`) whose slices one
    affine cannot place; empty for any other input (a regular grid, a file format, frames of a 4D run, slices
    without positions)."""
    stack = getattr(header, "dicom", None)
    if stack is None or not stack.geometry.problem:
        return []
    positions = _stack_positions(stack)
    if positions is None or len(positions) != header.shape[0]:
        return []
    parts = even_parts(positions)
    if len(parts) < 2:
        return []
    return [
        UnevenPart(
            number,
            start,
            stop,
            float(np.linalg.norm(positions[stop - 1] - positions[start])) / max(stop - start - 1, 1),
        )
        for number, (start, stop) in enumerate(parts, 1)
    ]


def volume_part(volume: Volume, header, part: UnevenPart) -> Volume:
    """Slices ``part`` of ``volume`` (read from the series ``header`` describes) on their own grid: the first
    slice's position as origin, their common step as the slice axis (with a gantry tilt, not orthogonal to the
    image plane), the source files of those slices only.

    Raises:
        ValueError: ``header`` is not the probe of an uneven DICOM series, or ``part`` is not one of its parts.
    """
    if part not in uneven_parts(header):
        raise ValueError(
            f"{volume.source.path}: slices {part.start}-{part.stop - 1} are not one of its evenly spaced parts"
        )
    stack = header.dicom
    positions = _stack_positions(stack)[part.start : part.stop]
    first = stack.images[part.start]
    orientation = None if first.orientations is None else first.orientations[0]
    geometry = stack_geometry(
        str(volume.source.path), orientation, first.pixel_spacing, positions, len(positions), first.slice_spacing
    )
    source = replace(volume.source, dicom_files=volume.source.dicom_files[part.start : part.stop], grid_problem="")
    return Volume(
        array=np.ascontiguousarray(volume.array[part.start : part.stop]),
        spacing=geometry.spacing,
        origin=geometry.origin,
        direction=geometry.direction,
        metadata=dict(volume.metadata),
        source=source,
    )
