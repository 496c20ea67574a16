"""The ``Volume`` record: voxels plus the geometry and source information needed to write them back."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import OptionError
from .mosaic import MosaicLayout

__all__ = ["Volume", "SourceInfo"]


@dataclass(frozen=True)
class SourceInfo:
    """Where a volume came from, so that writers can reproduce the input's format and headers.

    Attributes:
        path: the file or DICOM series folder that was read.
        format: one of ``"nifti"``, ``"nrrd"``, ``"metaimage"``, ``"dicom-series"``, ``"dicom-file"``,
            ``"png"``, ``"tiff"``, ``"jpeg"``, ``"bmp"``, or ``"memory"`` for arrays built in code.
        is_2d: the source file was a 2D image (written back as 2D); a 3D file with one slice is not.
        dicom_files: for DICOM input, the source files in the order of the volume's slices (axis 0).
        series_uid: for DICOM input, the SeriesInstanceUID that was read.
        grid_problem: empty when the slices lie on the volume's regular grid; otherwise why one affine cannot
            place them (uneven slice steps, gaps, repeated positions). Formats with one affine (NIfTI, NRRD,
            MetaImage, TIFF) then refuse the volume; a derived DICOM series keeps each slice's own position.
        repeated_frames: for a DICOM series that holds the same number of images at every slice position (a
            classic DWI, fMRI, multi-echo or perfusion series: several frames in one series), that number, the
            images of each position being consecutive slices of the volume in acquisition order; else 1.
        repeated_frame_label: what those frames are, from their headers: ``"gradient"`` (DiffusionBValue),
            ``"time"`` (TemporalPositionIdentifier or TriggerTime), ``"echo"`` (EchoTime), else ``"repeat"``.
        mosaic: for Siemens mosaic DICOM (each image a whole volume's slices tiled in a grid: a single file, or a
            series of them, one per frame), how they are tiled (:class:`~meddenoiselib.io.mosaic.MosaicLayout`); the
            volume's slices are then the mosaics, :func:`~meddenoiselib.io.series.series_of_repeated_frames` gives
            their tiles as the slices of each frame. Else None.
        frame_order: for multi-frame DICOM files that hold several frames at every position (an enhanced DWI, fMRI
            or multi-echo file; a series of such files, one volume each), the volume's slices (the files' frames in
            file order) in position order, each position's frames consecutive in file order; ``repeated_frames``
            gives how many. Empty where the slices are already in that order.
    """

    path: str = ""
    format: str = "memory"
    is_2d: bool = False
    dicom_files: tuple[str, ...] = ()
    series_uid: str = ""
    grid_problem: str = ""
    repeated_frames: int = 1
    repeated_frame_label: str = ""
    mosaic: MosaicLayout | None = None
    frame_order: tuple[int, ...] = ()


@dataclass(frozen=True)
class Volume:
    """An image volume in physical space.

    Attributes:
        array: voxels indexed ``[k, j, i]`` = ``(z, y, x)``, shape ``(Z, Y, X)`` for scalar images or
            ``(Z, Y, X, C)`` for multi-component images (RGB histology). 2D images have ``Z == 1``. Any numeric
            dtype; values are in the file's physical units after DICOM/NIfTI rescaling (e.g. HU for CT).
        spacing: voxel size in mm along ``(i, j, k)`` = ``(x, y, z)``, SimpleITK order.
        origin: position in mm of voxel ``[0, 0, 0]`` in LPS patient coordinates (DICOM/ITK convention).
        direction: ``3 x 3`` array whose column ``m`` is the LPS unit vector of index axis ``m`` (i, j, k).
        metadata: header key/value strings from the reader (e.g. DICOM tags as ``"0008|0060"``).
        source: where the volume came from (format, files), used to write derived outputs.
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: dict[str, str] = field(default_factory=dict)
    source: SourceInfo = field(default_factory=SourceInfo)

    def __post_init__(self) -> None:
        if not isinstance(self.array, np.ndarray):
            raise OptionError(f"`array` must be a numpy array, got {type(self.array).__name__}.")
        if self.array.ndim not in (3, 4):
            raise OptionError(f"`array` must have shape (Z, Y, X) or (Z, Y, X, C), got {self.array.shape}.")
        try:
            spacing = tuple(float(s) for s in self.spacing)
            origin = tuple(float(o) for o in self.origin)
            direction = np.asarray(self.direction, dtype=np.float64).reshape(3, 3)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"`spacing`, `origin` and `direction` must be 3, 3 and 3x3 numbers ({exc}).") from None
        if len(spacing) != 3 or len(origin) != 3:
            raise OptionError(f"`spacing` and `origin` need 3 values, got {spacing} and {origin}.")
        # geometry that is not finite cannot be written to any format; refuse it where it is made
        if not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise OptionError(f"`spacing` must be finite and positive, got {spacing}.")
        if not all(np.isfinite(origin)) or not np.all(np.isfinite(direction)):
            raise OptionError(f"`origin` and `direction` must be finite, got {origin} and {direction.tolist()}.")
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "direction", direction)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(Z, Y, X)``."""
        return tuple(self.array.shape[:3])  # type: ignore[return-value]

    @property
    def num_components(self) -> int:
        """1 for scalar images, C for ``(Z, Y, X, C)`` arrays."""
        return 1 if self.array.ndim == 3 else int(self.array.shape[3])

    @property
    def is_2d(self) -> bool:
        """True when the volume is a single 2D image."""
        return self.source.is_2d or self.array.shape[0] == 1

    def ijk_to_lps(self) -> np.ndarray:
        """The ``4 x 4`` matrix mapping voxel indices ``(i, j, k, 1)`` to LPS millimetres."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.direction @ np.diag(self.spacing)
        matrix[:3, 3] = self.origin
        return matrix

    def ijk_to_ras(self) -> np.ndarray:
        """The ``4 x 4`` matrix mapping voxel indices ``(i, j, k, 1)`` to RAS millimetres (Slicer, NIfTI)."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.ijk_to_lps()

    def with_array(self, array: np.ndarray) -> Volume:
        """A copy of this volume's geometry, metadata and source with new voxels of the same spatial shape."""
        if tuple(array.shape[:3]) != self.shape:
            raise OptionError(f"new array shape {array.shape} does not match the volume's spatial shape {self.shape}.")
        return replace(self, array=array)

    def slab(self, axis: int, start: int, stop: int) -> Volume:
        """The slices ``start:stop`` along array ``axis`` (0 = z, 1 = y, 2 = x), placed where they lie in this
        volume (the origin moves to the first one; the voxels are a view of this volume's); a DICOM source keeps
        the files of those slices (axis 0).

        Raises:
            OptionError: ``axis`` is not 0, 1 or 2, or the range is empty or outside the volume.
        """
        if axis not in (0, 1, 2):
            raise OptionError(f"`axis` must be 0, 1 or 2, got {axis!r}.")
        if not 0 <= start < stop <= self.shape[axis]:
            raise OptionError(f"slices {start}:{stop} are outside the {self.shape[axis]} slices along axis {axis}.")
        index_axis = 2 - axis  # array axis a is index axis (i, j, k)[2 - a]
        origin = np.asarray(self.origin) + self.direction[:, index_axis] * self.spacing[index_axis] * start
        files = self.source.dicom_files
        if files:
            files = files[start:stop] if axis == 0 and len(files) == self.shape[0] else ()
        array = self.array[(slice(None),) * axis + (slice(start, stop),)]
        source = replace(self.source, dicom_files=files)
        if (start, stop) != (0, self.shape[axis]) and (source.repeated_frames > 1 or source.mosaic is not None):
            # part of a series of frames is no longer their grid; slabs of whole mosaics still are mosaics
            mosaics = source.mosaic is not None and axis == 0
            source = replace(
                source,
                repeated_frames=stop - start if mosaics else 1,
                repeated_frame_label=source.repeated_frame_label if mosaics else "",
                mosaic=source.mosaic if mosaics else None,
                frame_order=(),
            )
        return replace(self, array=array, origin=tuple(origin), source=source)

    def same_geometry(self, other: Volume, atol: float = 1e-6) -> bool:
        """Whether ``other`` has the same spatial shape, spacing, origin and direction (within ``atol`` mm)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    @staticmethod
    def from_ijk_to_ras(array: np.ndarray, ijk_to_ras: np.ndarray, source: SourceInfo | None = None) -> Volume:
        """Build a volume from a ``(k, j, i)`` array and an IJK-to-RAS matrix (as Slicer volume nodes store it)."""
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(ijk_to_ras, dtype=np.float64)
        axes = lps[:3, :3]
        spacing = np.linalg.norm(axes, axis=0)
        if np.any(spacing <= 0):
            raise OptionError(f"IJK-to-RAS matrix has a zero-length axis: {ijk_to_ras!r}")
        return Volume(
            array=array,
            spacing=tuple(spacing),
            origin=tuple(lps[:3, 3]),
            direction=axes / spacing,
            source=source or SourceInfo(),
        )
