"""Volumes nibabel reads besides NIfTI: FreeSurfer MGH / MGZ (read and written), Philips PAR/REC and MINC 1 / 2
(read only; their results are written as NIfTI).

Each is opened through nibabel, which gives the voxels and a voxel-to-RAS affine like a NIfTI file's, so the
readers and writers turn them into a :class:`~meddenoiselib.io.Volume` the same way. What differs is what can go
wrong, and this module says it in the library's words: a PAR header without its REC data file, a header whose slice
table disagrees with itself, a MINC 2 file without h5py, a MINC file with a time axis.

Values: PAR/REC voxels are the scanner's display values (nibabel's ``scaling="dv"``, what the console shows), MINC
voxels its real values (each slice's own scaling applied). Both are stored as integers of at most 16 bits with a
scale per slice, so they are read as float32, which holds every scaled value to 7 significant digits.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import InputError, MedDenoiseError
from .atomic import atomic_file
from .formats import format_name
from .limits import Encoding, check_claimed_size

__all__ = [
    "NIBABEL_FORMATS",
    "load_nibabel",
    "nibabel_frames",
    "nibabel_metadata",
    "nibabel_voxels",
    "probe_nibabel",
    "read_dtype",
    "rec_file_of",
    "save_mgh",
]

logger = logging.getLogger(__name__)

#: formats (:func:`~.formats.detect_format` names) this module opens.
NIBABEL_FORMATS = ("mgh", "parrec", "minc")


def rec_file_of(par: Path) -> Path:
    """The REC data file beside a PAR header: the same name, ``.REC`` in the case of its ``.PAR`` (nibabel's rule)."""
    suffix = ".REC" if par.suffix == ".PAR" else ".rec" if par.suffix == ".par" else ".REC"
    return par.with_suffix(suffix)


def _short(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def load_nibabel(path: str | Path, fmt: str):
    """Open an MGH / MGZ, PAR/REC or MINC file with nibabel (header only; voxels are read on access).

    Raises:
        InputError: naming the file: a missing REC, an inconsistent PAR header, MINC 2 without h5py, or a file
            nibabel cannot parse as ``fmt``.
    """
    import nibabel as nib

    path = Path(path)
    label = str(path)
    if fmt == "parrec" and not rec_file_of(path).is_file():
        raise InputError(f"{label}: the PAR/REC pair's data file {rec_file_of(path).name} does not exist")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = nib.load(label)  # PAR/REC volumes in nibabel's default order, as its parrec2nii writes them
    except ModuleNotFoundError as exc:
        if exc.name == "h5py":
            raise InputError(
                f"{label}: a MINC 2 file (HDF5), which needs the h5py package: pip install h5py "
                "(or meddenoiselib[minc])"
            ) from None
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel raises several types for malformed headers
        raise InputError(f"{label}: cannot read as {format_name(fmt)} ({_short(exc)})") from exc
    for warning in caught:
        text = str(warning.message)
        if not text.startswith("unclosed file"):  # nibabel's own file handles, nothing about this file
            logger.warning("%s: %s", label, " ".join(text.split())[:300])
    expected = {"mgh": nib.MGHImage, "parrec": nib.parrec.PARRECImage, "minc": nib.minc1.Minc1Image}[fmt]
    if not isinstance(image, expected):
        raise InputError(f"{label}: not a {format_name(fmt)} file (nibabel reads it as {type(image).__name__})")
    if fmt == "parrec":
        _check_magnitude_only(image, label)
    return image


#: the PAR header's ``image_type_mr`` codes of the images the scanner reconstructs from one acquisition
_PARREC_IMAGE_TYPES = {0: "magnitude", 1: "real", 2: "imaginary", 3: "phase"}


def _check_magnitude_only(image, label: str) -> None:
    """Refuse a PAR/REC that holds anything but magnitude images.

    Real, imaginary and phase images are signed or wrap around, and other types (computed maps: ADC, B0...) carry
    no Rician noise: the MR models' noise is wrong for every one of them, and in one series a frame of each would be
    denoised as if it were the same kind of image as its neighbours.
    """
    codes = sorted({int(code) for code in np.asarray(image.header.image_defs["image_type_mr"]).reshape(-1)})
    if codes == [0]:
        return
    names = ", ".join(f"{code} ({_PARREC_IMAGE_TYPES.get(code, 'other')})" for code in codes)
    raise InputError(
        f"{label}: holds images of type {names}; only magnitude images (type 0) are denoised. Export the magnitude "
        "images alone, or convert to NIfTI (nibabel's parrec2nii) and choose a model with --model"
    )


def read_dtype(image, fmt: str) -> np.dtype:
    """The dtype the library reads an opened file as: MGH as stored; PAR/REC and MINC float32 when their scaled
    values come from integers of at most 16 bits, else float64 (see the module docstring)."""
    disk = np.dtype(image.get_data_dtype())
    if fmt == "mgh":
        return disk.newbyteorder("=")
    return np.dtype(np.float32 if disk.kind in "iu" and disk.itemsize <= 2 else np.float64)


def nibabel_frames(image, fmt: str, label: str) -> int:
    """The number of 3D volumes in an opened file: 1 for a 2D or 3D image, else the length of its 4th axis.

    Raises:
        InputError: a MINC file with more than three axes (nibabel gives a MINC time axis first, with no affine
            for it), or an image with more than four axes.
    """
    shape = tuple(int(n) for n in image.shape)
    if len(shape) <= 3:
        return 1
    if fmt == "minc":
        raise InputError(
            f"{label}: a MINC file with {len(shape)} axes (shape {shape}); only 3D MINC is read: split the frames "
            "(mincreshape) or convert it to NIfTI (mnc2nii)"
        )
    if len(shape) > 4 and any(n != 1 for n in shape[4:]):
        raise InputError(f"{label}: {len(shape)}D data (shape {shape}) is not a volume or a 4D series")
    return shape[3]


def probe_nibabel(path: str | Path, fmt: str, max_bytes: int | None = None, series: bool = False):
    """Describe an MGH / MGZ, PAR/REC or MINC file from its header, with the bounded-read check.

    Args:
        path: the file (for PAR/REC, the ``.PAR`` header).
        fmt: ``"mgh"``, ``"parrec"`` or ``"minc"``.
        max_bytes: the memory budget (see :func:`~.limits.memory_budget`).
        series: describe a 4D file as a series (``frames`` set, ``shape`` one frame's); otherwise a file with
            more than one volume is refused as 4D.

    Returns:
        A :class:`~.probe.VolumeHeader`.

    Raises:
        InputError: see :func:`load_nibabel`; a zero-size or 1D image; 4D data when ``series`` is False; a non-finite
            or degenerate affine; a claimed size the file or memory cannot hold.
    """
    from .probe import VolumeHeader, four_d_error

    path = Path(path)
    label = str(path)
    image = load_nibabel(path, fmt)
    shape = tuple(int(n) for n in image.shape)
    if len(shape) == 0 or 0 in shape:
        raise InputError(f"{label}: image has a zero-size axis (dimensions {shape})")
    if len(shape) == 1:
        raise InputError(f"{label}: 1D data (shape {shape}) is not an image")
    frames = nibabel_frames(image, fmt, label)
    if frames > 1 and not series:
        raise four_d_error(label, shape)
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        raise InputError(f"{label}: the {format_name(fmt)} header's voxel sizes or orientation are not finite")
    if np.any(np.linalg.norm(affine[:3, :3], axis=0) == 0):
        raise InputError(f"{label}: the {format_name(fmt)} header gives an axis of zero length")
    disk = np.dtype(image.get_data_dtype())
    data_file = rec_file_of(path) if fmt == "parrec" else path
    compressed = fmt == "mgh" and path.name.lower().endswith(".mgz")
    # MINC is HDF5 / NetCDF (compressed chunks or not): no simple byte count to hold the claim against
    data_bytes = None if fmt == "minc" else os.path.getsize(data_file)
    check_claimed_size(
        label if data_file == path else f"{label}: its data file {data_file.name}",
        shape,
        disk,
        data_bytes=data_bytes,
        encoding=Encoding.DEFLATE if compressed else Encoding.RAW if data_bytes is not None else Encoding.OTHER,
        max_bytes=max_bytes,
    )
    dtype = read_dtype(image, fmt)
    nbytes = check_claimed_size(label, shape, dtype, max_bytes=max_bytes)
    spatial = shape[:3] + (1,) * (3 - len(shape[:3]))
    files = (label,) if data_file == path else (label, str(data_file))
    return VolumeHeader(
        path=label,
        format=fmt,
        shape=(spatial[2], spatial[1], spatial[0]),
        components=1,
        dtype=dtype,
        is_2d=len(shape) == 2,
        files=files,
        nbytes=nbytes,
        frames=frames if series else 1,
    )


def nibabel_voxels(image, fmt: str, label: str) -> np.ndarray:
    """The voxels of an opened file in nibabel's ``(x, y, z[, t])`` order, as :func:`read_dtype` says.

    Raises:
        InputError: the data cannot be decoded (a truncated REC, a damaged MGZ...).
    """
    try:
        data = np.asanyarray(image.dataobj)
    except MedDenoiseError:
        raise
    except Exception as exc:  # noqa: BLE001 - nibabel and zlib raise several types for damaged data
        raise InputError(f"{label}: cannot read the {format_name(fmt)} image data ({_short(exc)})") from exc
    dtype = read_dtype(image, fmt)
    if data.dtype != dtype:
        data = data.astype(dtype)
    return data


def nibabel_metadata(image, fmt: str) -> dict[str, str]:
    """What a report or a later write keeps of the header: the sequence timing of MGH and PAR/REC (ms, degrees)."""
    metadata: dict[str, str] = {}
    if fmt == "mgh":
        header = image.header
        for key in ("tr", "flip_angle", "te", "ti"):
            value = float(np.asarray(header[key]).reshape(-1)[0])
            if value:
                metadata[f"mgh_{key}"] = f"{value:g}"
    elif fmt == "parrec":
        info = image.header.general_info
        for key in ("protocol_name", "exam_name", "scan_mode", "tech"):
            value = str(info.get(key, "")).strip()
            if value:
                metadata[f"parrec_{key}"] = value
        repetition = np.asarray(info.get("repetition_time", ())).reshape(-1)
        if repetition.size:
            metadata["parrec_repetition_time"] = f"{float(repetition[0]):g}"
    return metadata


def save_mgh(data: np.ndarray, affine: np.ndarray, header, path: Path) -> None:
    """Write FreeSurfer MGH, or MGZ for a ``.mgz`` name, atomically.

    Args:
        data: ``(x, y, z)`` or ``(x, y, z, t)`` voxels in nibabel's order, a dtype MGH stores (uint8, int16, int32,
            float32; :func:`~.outputs.check_format_holds` refused the others).
        affine: the 4 x 4 voxel-to-RAS matrix.
        header: an MGH header whose sequence timing (TR, TE, TI, flip angle) is kept, or None.
        path: the output file.
    """
    import nibabel as nib

    data = np.ascontiguousarray(data.astype(data.dtype.newbyteorder("="), copy=False))
    image = nib.MGHImage(data, affine, None if header is None else header.copy())
    image.set_data_dtype(data.dtype)
    with atomic_file(path, suffix=".mgz" if path.name.lower().endswith(".mgz") else ".mgh") as temporary:
        nib.save(image, str(temporary))
