"""NumPy ``.npy`` arrays: what research pipelines pass around (dipy's and MONAI's examples, a deep-learning
preprocessing step), without geometry or units.

Axes are NumPy's (and SimpleITK's ``GetArrayFromImage``'s): ``(Y, X)`` is a 2D image, ``(Z, Y, X)`` a volume
whose slices run along the first axis, and a last axis of 3 or 4 holds colour components (``(Y, X, 3)`` an RGB
image, ``(Z, Y, X, 3)`` an RGB volume; a fourth, alpha component is dropped as for PNG). A volume saved from
nibabel's ``get_fdata()`` is ``(X, Y, Z)``: read as it is, its slices run along x, which a 2.5D model only sees as
other neighbours (give it ``np.transpose(a, (2, 1, 0))`` to denoise along z). The file holds no voxel size, position
or modality: 1 mm voxels at the origin are assumed, and ``auto`` chooses its model from ``--modality`` or the
voxels. Arrays are memory-mapped to read their header; Python objects (pickles) are never loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import InputError

__all__ = ["NpyLayout", "probe_npy", "read_npy", "write_npy"]

logger = logging.getLogger(__name__)

#: the smallest in-plane size of a volume's slice: an array whose last axes are smaller is not ``(Z, Y, X)``
MIN_PLANE_PIXELS = 8
#: lengths of a last axis that holds colour components (RGB, RGBA)
COLOUR_COMPONENTS = (3, 4)


class NpyLayout(NamedTuple):
    """How a ``.npy`` file's array maps onto a volume.

    Attributes:
        shape: spatial shape ``(Z, Y, X)`` (``Z`` = 1 for a 2D image).
        components: colour components kept (1, or 3 for RGB; an alpha component is dropped).
        dtype: the array's dtype.
        is_2d: the array is one 2D image.
    """

    shape: tuple[int, int, int]
    components: int
    dtype: np.dtype
    is_2d: bool


#: the first bytes of every .npy file
_MAGIC = b"\x93NUMPY"


def _open(path: Path) -> np.ndarray:
    """The file's array, memory-mapped (its header read, no pixels)."""
    with open(path, "rb") as handle:
        if handle.read(len(_MAGIC)) != _MAGIC:
            raise InputError(f"{path}: not a NumPy .npy array (the file does not start with its header)")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        text = str(exc)
        if "Python objects" in text or "pickle" in text.lower():
            raise InputError(f"{path}: the array holds Python objects (a pickle), which are never loaded") from None
        if "mmap length" in text or "larger than" in text:
            raise InputError(f"{path}: truncated (the file is shorter than its header's array)") from None
        raise InputError(f"{path}: not a NumPy .npy array ({text[:200]})") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: not a NumPy .npy array ({exc})") from None


def probe_npy(path: str | Path) -> NpyLayout:
    """Read a ``.npy`` file's header and map its array onto a volume (see the module's docstring).

    Raises:
        InputError: not a ``.npy`` file, truncated, Python objects, complex or structured values, an empty array,
            or a shape that is not a 2D image, a volume or their colour forms.
    """
    path = Path(path)
    array = _open(path)
    if not isinstance(array, np.ndarray):
        raise InputError(f"{path}: not a single NumPy array")
    dtype, shape = array.dtype, tuple(int(n) for n in array.shape)
    if dtype.kind == "c":
        raise InputError(
            f"{path}: complex values ({dtype}); denoise the magnitude (np.abs) or each of the real and imaginary parts"
        )
    if dtype.kind not in "iufb" or dtype.fields is not None:
        raise InputError(f"{path}: unsupported pixel type {dtype} (only real-valued numbers)")
    if 0 in shape:
        raise InputError(f"{path}: the array is empty (shape {shape})")
    colour = len(shape) in (3, 4) and shape[-1] in COLOUR_COMPONENTS
    spatial = shape[:-1] if colour else shape
    if len(spatial) == 2:
        z, (y, x) = 1, spatial
    elif len(spatial) == 3:
        z, y, x = spatial
    else:
        raise InputError(
            f"{path}: a {len(shape)}D array (shape {shape}); a .npy input is (Y, X), (Z, Y, X) or either with a "
            "last axis of 3 RGB components: save each volume of a 4D array on its own, or write NIfTI"
        )
    if min(y, x) < MIN_PLANE_PIXELS:
        raise InputError(
            f"{path}: shape {shape} read as (Z, Y, X) gives {z} slices of {y} x {x} pixels; a .npy volume's slices "
            "run along its first axis (a volume stored as (X, Y, Z) or (Y, X, Z) needs np.transpose first, an image "
            "with channels first needs them last)"
        )
    components = 3 if colour else 1
    return NpyLayout((z, y, x), components, dtype, len(spatial) == 2)


def read_npy(path: str | Path) -> tuple[np.ndarray, NpyLayout]:
    """The pixels of a ``.npy`` file as ``(Z, Y, X)`` or ``(Z, Y, X, 3)``, native byte order, C order, dtype kept.

    Raises:
        InputError: as :func:`probe_npy`.
    """
    layout = probe_npy(path)
    array = np.asarray(_open(Path(path)))
    if layout.components > 1:
        array = array[..., : layout.components]  # alpha dropped
    array = array.reshape(layout.shape + ((layout.components,) if layout.components > 1 else ()))
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return np.ascontiguousarray(array), layout


def write_npy(array: np.ndarray, is_2d: bool, target: Path) -> None:
    """Write ``(Z, Y, X[, C])`` pixels as ``.npy``, dtype kept; a 2D image (``is_2d`` and one slice) as ``(Y, X[,
    C])``. The caller makes the write atomic and says what geometry the file cannot hold."""
    if is_2d and array.shape[0] == 1:
        array = array[0]
    with open(target, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
