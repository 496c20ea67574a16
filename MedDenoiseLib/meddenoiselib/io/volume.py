"""The ``Volume`` record: voxels plus the geometry and source information needed to write them back."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["Volume", "SourceInfo"]


@dataclass(frozen=True)
class SourceInfo:
    """Where a volume came from, so that writers can reproduce the input's format and headers.

    Attributes:
        path: the file or DICOM series folder that was read.
        format: one of ``"nifti"``, ``"nrrd"``, ``"metaimage"``, ``"dicom-series"``, ``"dicom-file"``,
            ``"png"``, ``"tiff"``, ``"jpeg"``, ``"bmp"``, or ``"memory"`` for arrays built in code.
        is_2d: the source was a 2D image (written back as 2D).
        dicom_files: for DICOM input, the source files in the order of the volume's slices (axis 0).
        series_uid: for DICOM input, the SeriesInstanceUID that was read.
    """

    path: str = ""
    format: str = "memory"
    is_2d: bool = False
    dicom_files: tuple[str, ...] = ()
    series_uid: str = ""


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
        if self.array.ndim not in (3, 4):
            raise ValueError(f"`array` must have shape (Z, Y, X) or (Z, Y, X, C), got {self.array.shape}.")
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "direction", np.asarray(self.direction, dtype=np.float64).reshape(3, 3))

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
            raise ValueError(f"new array shape {array.shape} does not match the volume's spatial shape {self.shape}.")
        return replace(self, array=array)

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
            raise ValueError(f"IJK-to-RAS matrix has a zero-length axis: {ijk_to_ras!r}")
        return Volume(
            array=array,
            spacing=tuple(spacing),
            origin=tuple(lps[:3, 3]),
            direction=axes / spacing,
            source=source or SourceInfo(),
        )
