"""Siemens mosaic images: one DICOM image holding a whole volume's slices tiled in a grid.

Siemens scanners store EPI acquisitions (fMRI, diffusion, perfusion, ASL) one file per volume: the ``n`` slices of a
volume lie side by side in one large image of ``g x g`` tiles (``g = ceil(sqrt(n))``, row by row, the last tiles
empty), ``ImageType`` ends in ``MOSAIC`` and the private element *NumberOfImagesInMosaic* (``(0019,xx0A)`` of the
``SIEMENS MR HEADER`` block) gives ``n``. Denoised as the image it is, a mosaic's slices would never be each
other's neighbours (a burst model would read another volume's tile) and the empty tiles would count as air; so the
reader records the layout, the library denoises the tiles as the slices of a volume, and puts them back in place:
the files written are mosaics again, the empty tiles as they were.

The tiles' slice order is the acquisition's spatial order along the slice normal; this module places the first tile
where the mosaic's ImagePositionPatient says (the corner of the mosaic as if it were one image centred on that
tile) and the rest along the slice normal at SpacingBetweenSlices. The normal's sign is the scanner's: the
``SliceNormalVector`` of the private CSA image header (``(0029,xx10)``, read with nibabel's CSA reader), which may
point against ``row x column``. Denoising does not need it; a 4D file's affine does, so a mosaic whose CSA header is
missing (anonymised) is written back as mosaics only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .dicom_private import private_integer

__all__ = ["MosaicLayout", "mosaic_direction", "mosaic_layout", "mosaic_origin", "pack_mosaic", "unpack_mosaic"]

#: the private block that holds the mosaic's slice count, and that count's element within the block
SIEMENS_MR_HEADER = "SIEMENS MR HEADER"
IMAGES_IN_MOSAIC_ELEMENT = 0x0A


@dataclass(frozen=True)
class MosaicLayout:
    """How a mosaic image's pixels hold a volume.

    Attributes:
        images: slices in the mosaic (``n``).
        grid: tiles per row and per column of the mosaic (``ceil(sqrt(n))``).
        tile_rows, tile_columns: one slice's size in pixels.
        slice_normal: the direction (LPS unit vector) in which the tiles' slices follow each other, the CSA header's
            ``SliceNormalVector``; None where the header is missing. Not compared: the files of one series may
            differ in its last digits.
    """

    images: int
    grid: int
    tile_rows: int
    tile_columns: int
    slice_normal: tuple[float, float, float] | None = field(default=None, compare=False)


def mosaic_layout(dataset, label: str, rows: int, columns: int, frames: int) -> MosaicLayout | None:
    """The mosaic layout of a DICOM image (pydicom dataset, pixels deferred), or None for any other image.

    Raises:
        InputError: the image says it is a mosaic and gives its slice count, but the count does not tile its
            ``rows x columns`` (a corrupt or hand-edited header); the message names the file.
    """
    image_type = dataset.get("ImageType") or ()
    kinds = [str(v).strip().upper() for v in ([image_type] if isinstance(image_type, str) else image_type)]
    if "MOSAIC" not in kinds:
        return None
    images = private_integer(dataset, 0x0019, SIEMENS_MR_HEADER, IMAGES_IN_MOSAIC_ELEMENT)
    if images is None or images < 1 or frames != 1:
        return None  # a mosaic without its count (anonymised private tags): read as the image it is
    grid = math.ceil(math.sqrt(images))
    if rows % grid or columns % grid:
        raise InputError(
            f"{label}: a Siemens mosaic of {images} slices should be a grid of {grid} x {grid} tiles, but its "
            f"{rows} x {columns} pixels do not divide into them"
        )
    if images == 1:
        return None
    return MosaicLayout(images, grid, rows // grid, columns // grid, _csa_slice_normal(dataset))


def _csa_slice_normal(dataset) -> tuple[float, float, float] | None:
    """The CSA image header's ``SliceNormalVector`` (a unit vector in LPS), None where it is missing or unreadable."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nibabel calls its DICOM readers experimental
            from nibabel.nicom import csareader

            header = csareader.get_csa_header(dataset, "image")
            normal = None if header is None else csareader.get_slice_normal(header)
    except Exception:  # noqa: BLE001 - a damaged private header only loses the sign of the slice direction
        return None
    if normal is None:
        return None
    vector = np.asarray(normal, dtype=np.float64)
    norm = float(np.linalg.norm(vector))
    if vector.shape != (3,) or not np.isfinite(norm) or norm < 0.5:
        return None
    return tuple(float(v) for v in vector / norm)


def mosaic_direction(direction: np.ndarray, layout: MosaicLayout) -> np.ndarray:
    """The ``3 x 3`` direction (columns i, j, k) of the slices a mosaic holds: the mosaic's row and column
    directions, and the slice normal pointing the CSA header's way (which may make the grid left-handed).

    Raises:
        ValueError: the layout has no slice normal (no CSA header).
    """
    if layout.slice_normal is None:
        raise ValueError("the mosaic's CSA header, with its slice normal, is missing")
    direction = np.array(direction, dtype=np.float64).reshape(3, 3)
    if float(np.dot(direction[:, 2], layout.slice_normal)) < 0:
        direction[:, 2] = -direction[:, 2]
    return direction


def _all_tiles(mosaic: np.ndarray, layout: MosaicLayout) -> np.ndarray:
    """``(..., rows, columns)`` -> all ``g * g`` tiles ``(..., g * g, tile_rows, tile_columns)``, a copy."""
    g, r, c = layout.grid, layout.tile_rows, layout.tile_columns
    lead = mosaic.shape[:-2]
    return np.ascontiguousarray(np.moveaxis(mosaic.reshape(*lead, g, r, g, c), -3, -2).reshape(*lead, g * g, r, c))


def unpack_mosaic(mosaic: np.ndarray, layout: MosaicLayout) -> np.ndarray:
    """``(..., rows, columns)`` mosaics -> their ``(..., n, tile_rows, tile_columns)`` slices, a copy."""
    return np.ascontiguousarray(_all_tiles(mosaic, layout)[..., : layout.images, :, :])


def pack_mosaic(slices: np.ndarray, layout: MosaicLayout, into: np.ndarray) -> np.ndarray:
    """``(..., n, tile_rows, tile_columns)`` slices put back in place in a copy of the ``(..., rows, columns)``
    mosaics ``into`` (whose empty tiles are kept), with ``into``'s dtype."""
    g, r, c = layout.grid, layout.tile_rows, layout.tile_columns
    tiles = _all_tiles(into, layout)
    tiles[..., : layout.images, :, :] = slices
    grid = tiles.reshape(*into.shape[:-2], g, g, r, c)
    return np.ascontiguousarray(np.moveaxis(grid, -2, -3).reshape(into.shape))


def mosaic_origin(
    corner: tuple[float, ...], direction: np.ndarray, spacing: tuple[float, ...], layout: MosaicLayout
) -> tuple[float, float, float]:
    """The LPS position (mm) of the first tile's first pixel, from the mosaic's ImagePositionPatient ``corner``,
    its ``3 x 3`` ``direction`` (columns i, j, k) and ``(x, y)`` pixel ``spacing``: the mosaic is placed as if it
    were one image centred on the first slice, so its corner lies half the difference of the sizes away."""
    shift_x = (layout.grid - 1) * layout.tile_columns / 2 * spacing[0]
    shift_y = (layout.grid - 1) * layout.tile_rows / 2 * spacing[1]
    origin = np.asarray(corner, dtype=np.float64) + direction[:, 0] * shift_x + direction[:, 1] * shift_y
    return tuple(float(v) for v in origin)
