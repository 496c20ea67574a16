"""Reading what an input is from its header alone: format, shape, dtype, files, grid — and whether it fits.

:func:`probe_volume` is the first step of every read (:func:`~meddenoiselib.io.read_volume` calls it) and the
source of what output planning needs before any computation: it parses only headers (nibabel, SimpleITK's
``ReadImageInformation``, pydicom with pixel data deferred), refuses what cannot be an image volume, and runs the
bounded-read check (:func:`~.limits.check_claimed_size`) so no reader allocates what a header merely claims.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, MedDenoiseError, OptionError
from .dicom import DicomStack, check_skipped_files, dicom_stack_of_file, dicom_stack_of_series, select_dicom_series
from .dicom_frames import check_dicom_size, read_dicom_image
from .formats import IMAGE_2D_FORMATS, as_path, detect_format, format_name
from .itk_messages import c_stderr_logged, itk_messages_logged, itk_reason
from .limits import Encoding, check_claimed_size
from .nibabel_formats import NIBABEL_FORMATS, probe_nibabel
from .npy import probe_npy
from .raster import (
    GREY,
    GREY_ALPHA,
    PALETTE,
    PngHeader,
    bmp_bits,
    bmp_has_gray_palette,
    png_has_gray_palette,
    png_header,
)
from .tiff import probe_tiff

__all__ = [
    "VolumeHeader",
    "four_d_error",
    "probe_volume",
    "Segment",
    "slicer_segments",
    "sitk_read_error",
    "text_header_data_files",
    "text_header_values",
]

logger = logging.getLogger(__name__)

_TEXT_HEADER_BYTES = 65536
#: archives users receive DICOM exports in
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".7z", ".rar")


@dataclass(frozen=True)
class VolumeHeader:
    """What an input holds, known before its pixels are read.

    Attributes:
        path: the file or DICOM series folder.
        format: as :attr:`~meddenoiselib.io.SourceInfo.format`.
        shape: spatial shape ``(Z, Y, X)``.
        components: 1 for scalar images, 3 for RGB (an alpha channel is dropped when read).
        dtype: the dtype the read array will have.
        is_2d: the file is a 2D image.
        files: every file that makes up the input (a detached header's data file, a series' DICOM files).
        grid_problem: why one affine cannot place the slices (see :class:`~meddenoiselib.io.SourceInfo`).
        dicom: for DICOM input, the ordered stack of files (internal to the readers and writers).
        nbytes: the size of the decoded array in bytes.
        frames: for a 4D series (:func:`~meddenoiselib.io.series.probe_series`), the number of frames; else 1.
        mask_kind: what kind of mask or label map the file is (a 3D Slicer segmentation, a NIfTI label intent, a
            1-bit image), else empty: readable (as a mask), but not an image to denoise.
    """

    path: str
    format: str
    shape: tuple[int, int, int]
    components: int
    dtype: np.dtype
    is_2d: bool
    files: tuple[str, ...]
    grid_problem: str = ""
    dicom: DicomStack | None = None
    nbytes: int = 0
    frames: int = 1
    mask_kind: str = ""


def probe_volume(path: str | Path, series_uid: str | None = None, max_bytes: int | None = None) -> VolumeHeader:
    """Describe an input from its header and check that reading it is bounded.

    Args:
        path: an image file or a DICOM series folder.
        series_uid: for a DICOM folder, the series to read; for a DICOM file, the series it must belong to.
        max_bytes: memory budget for the decoded image. Defaults to :func:`~.limits.memory_budget`.

    Raises:
        InputError: missing, unsupported, corrupt, not an image, 4D, or claiming more than the file or memory
            can hold.
        OptionError: ``series_uid`` does not match.
    """
    path = as_path(path)
    try:
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir():
            return _probe_dicom_folder(path, series_uid, max_bytes)
        if not path.is_file():
            raise InputError(f"{path}: not a regular file")
        if not os.access(path, os.R_OK):
            raise InputError(f"{path}: permission denied (not readable)")
        fmt = detect_format(path)
        if fmt is None and path.name.lower().endswith(_ARCHIVE_SUFFIXES):
            raise InputError(
                f"{path}: an archive; extract it and give the folder (of a DICOM export, the folder with the DICOMDIR "
                "or a series folder)"
            )
        if series_uid and fmt not in (None, "dicom-file"):
            raise OptionError(
                f"{path}: a series UID applies only to DICOM input (a series folder or a DICOM file); "
                f"this is a {format_name(fmt)} file"
            )
        if fmt == "nifti":
            return _probe_nifti(path, max_bytes)
        if fmt in NIBABEL_FORMATS:
            return probe_nibabel(path, fmt, max_bytes)
        if path.suffix.lower() == ".rec":
            header = path.with_suffix(".PAR" if path.suffix.isupper() else ".par")
            raise InputError(f"{path}: the data file of a Philips PAR/REC pair; give its header {header.name}")
        if fmt in (None, "dicom-file"):
            return _probe_dicom_file(path, fmt is not None, series_uid, max_bytes)
        if fmt == "tiff":
            return _probe_tiff(path, max_bytes)
        if fmt == "npy":
            return _probe_npy(path, max_bytes)
        return _probe_with_sitk(path, fmt, max_bytes)
    except MedDenoiseError:
        raise
    except MemoryError:
        raise InputError(f"{path}: not enough memory to read the header") from None
    except Exception as exc:  # noqa: BLE001 - third-party readers raise many types for malformed headers
        raise InputError(f"{path}: cannot read the header ({type(exc).__name__}: {_short(exc)})") from exc


def four_d_error(label: str, shape: tuple[int, ...]) -> InputError:
    """The error for 4D data where one 3D volume is needed (``denoise`` reads a 4D file as a series)."""
    return InputError(
        f"{label}: 4D data (shape {tuple(int(n) for n in shape)}): `denoise` reads it as a 4D series "
        "(meddenoiselib.io.read_series); other commands take one 3D volume"
    )


def sitk_read_error(label: str, fmt: str, exc: BaseException) -> str:
    """The message for an image SimpleITK cannot read: the library's words for 2D images, ITK's reason otherwise.

    The C decoders under ITK (libpng, libjpeg, libtiff) report truncated or corrupt data in their own terms and
    SimpleITK adds source locations and object addresses; the full text goes to the DEBUG log.
    """
    logger.debug("%s: SimpleITK: %s", label, " ".join(str(exc).split()))
    if fmt in (*IMAGE_2D_FORMATS, "tiff"):
        return f"{label}: cannot decode the {format_name(fmt)} image (truncated or corrupt)"
    return f"{label}: cannot read as {format_name(fmt)} ({itk_reason(exc, label)})"


def _short(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def _check_geometry(label: str, spacing, origin, direction) -> None:
    spacing, origin = np.asarray(spacing, dtype=np.float64), np.asarray(origin, dtype=np.float64)
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"{label}: the header's voxel sizes are not finite positive numbers ({spacing.tolist()})")
    if not np.all(np.isfinite(origin)) or not np.all(np.isfinite(np.asarray(direction, dtype=np.float64))):
        raise InputError(f"{label}: the header's origin or orientation is not finite")


def _check_pixel_type(label: str, dtype: np.dtype) -> None:
    if dtype.kind not in "iufb" or dtype.fields is not None:
        raise InputError(f"{label}: unsupported pixel type {dtype} (only real-valued scalar or RGB pixels)")


# ------------------------------------------------------------------------------------------------- NIfTI
def _probe_nifti(path: Path, max_bytes: int | None) -> VolumeHeader:
    import nibabel as nib

    label = str(path)
    try:
        image = nib.load(str(path))
    except Exception as exc:  # noqa: BLE001 - nibabel raises several types for corrupt files
        raise InputError(f"{label}: cannot read as NIfTI ({_short(exc)})") from exc
    if isinstance(image, nib.AnalyzeImage) and not isinstance(image, nib.Nifti1Pair):
        raise InputError(
            f"{label}: an Analyze 7.5 file stores no orientation (left and right may be swapped); convert it to NIfTI "
            "with its orientation checked"
        )
    if not isinstance(image, (nib.Nifti1Pair, nib.Nifti2Image)):
        kind = type(image).__name__.replace("Image", "")
        raise InputError(f"{label}: a {kind} file is not an image volume (e.g. CIFTI holds surface or matrix data)")
    data_file = Path(image.file_map["image"].filename or path)
    if not data_file.is_file():
        raise InputError(f"{label}: the NIfTI pair's data file {data_file.name} does not exist")
    header = image.header
    shape = tuple(int(n) for n in header.get_data_shape())
    if len(shape) == 0 or 0 in shape:
        raise InputError(f"{label}: image has a zero-size axis (header dimensions {shape})")
    if len(shape) == 1:
        raise InputError(f"{label}: 1D data (shape {shape}) is not an image")
    if len(shape) > 3 and int(np.prod(shape[3:])) != 1:
        raise four_d_error(label, shape)
    disk_dtype = np.dtype(header.get_data_dtype())
    _check_pixel_type(label, disk_dtype)
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        raise InputError(f"{label}: the NIfTI header's voxel sizes or affine are not finite (pixdim or srow NaN/Inf)")
    if np.any(np.linalg.norm(affine[:3, :3], axis=0) == 0):
        raise InputError(f"{label}: the NIfTI affine has a zero-length axis")
    _warn_zero_voxel_sizes(path, header, len(shape))
    offset = int(header.get_data_offset())
    compressed = data_file.name.lower().endswith(".gz")
    size = os.path.getsize(data_file)
    # the read check comes first: the one-voxel read below must not run on a header that lies about its size
    dtype = disk_dtype
    check_claimed_size(
        label,
        shape,
        disk_dtype,
        data_bytes=size if compressed else max(size - offset, 0),
        encoding=Encoding.DEFLATE if compressed else Encoding.RAW,
        max_bytes=max_bytes,
    )
    slope, intercept = header.get_slope_inter()
    if slope not in (None, 1.0) or intercept not in (None, 0.0):
        try:
            dtype = np.asarray(image.dataobj[(0,) * len(shape)]).dtype  # the scaled type nibabel will return
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{label}: cannot read as NIfTI ({_short(exc)})") from exc
        if not np.isfinite(slope if slope is not None else 1.0) or not np.isfinite(intercept or 0.0):
            raise InputError(f"{label}: the NIfTI scaling (scl_slope/scl_inter) is not finite")
    nbytes = check_claimed_size(label, shape, dtype, max_bytes=max_bytes)
    spatial = shape[:3] + (1,) * (3 - len(shape[:3]))
    return VolumeHeader(
        path=label,
        format="nifti",
        shape=(spatial[2], spatial[1], spatial[0]),
        components=1,
        dtype=np.dtype(dtype),
        is_2d=len(shape) == 2,
        files=(label,) if data_file == path else (label, str(data_file)),
        nbytes=nbytes,
        mask_kind="a NIfTI label map (intent NIFTI_INTENT_LABEL)" if int(header["intent_code"]) == 1002 else "",
    )


def _warn_zero_voxel_sizes(path: Path, header, ndim: int) -> None:
    """Say so when a voxel size of 0 in the file becomes 1 mm.

    nibabel replaces a zero ``pixdim`` by 1 when it loads a header, silently. Without an sform the affine is built
    from ``pixdim`` (qform or scaling only), so the volume is read — and written back — with 1 mm on that axis.
    """
    if int(header["sform_code"]) > 0:
        return  # the sform gives the geometry; pixdim is not used
    from nibabel.openers import ImageOpener

    try:
        with ImageOpener(str(path)) as handle:
            raw = type(header).from_fileobj(handle, check=False)  # the header as stored, before nibabel's fixes
        stored = np.asarray(raw["pixdim"][1 : 1 + min(ndim, 3)], dtype=np.float64)
    except Exception:  # noqa: BLE001 - the header was just read; a second read failing changes nothing
        return
    zero = [k for k, size in enumerate(stored) if size == 0]
    if zero:
        axes = ", ".join(str(k) for k in zero)
        fields = ", ".join(f"pixdim[{k + 1}]" for k in zero)
        logger.warning("%s: voxel size 0 on axis %s (%s); using 1 mm", path, axes, fields)


# ----------------------------------------------------------------------------- NRRD, MetaImage, 2D images
def _text_header(path: Path) -> tuple[dict[str, str], int]:
    """Key/value pairs of a NRRD or MetaImage text header, and the byte offset where attached data starts."""
    with open(path, "rb") as handle:
        head = handle.read(_TEXT_HEADER_BYTES)
    text = head.decode("latin-1")
    values: dict[str, str] = {}
    position = 0
    nrrd = text.startswith("NRRD")
    for line in text.splitlines(keepends=True):
        position += len(line)
        stripped = line.strip()
        if nrrd:
            if stripped == "" and values:
                break  # a blank line ends a NRRD header; attached data follows
            if stripped.startswith("#") or ":" not in stripped:
                continue
            key, _, value = stripped.partition(":")
            values[key.strip().lower()] = value.lstrip("=").strip()
        else:
            key, sep, value = stripped.partition("=")
            if not sep:
                continue
            values[key.strip().lower()] = value.strip()
            if key.strip().lower() == "elementdatafile":
                break  # ElementDataFile is the last MetaImage header line
    return values, position


def text_header_values(path: str | Path) -> dict[str, str]:
    """Key / value pairs of a NRRD or MetaImage text header, keys in lower case (``OSError`` when unreadable)."""
    return _text_header(Path(path))[0]


def text_header_data_files(path: str | Path) -> tuple[str, ...]:
    """The data files a detached ``.nhdr``/``.mhd`` header names (empty when data is attached or unreadable)."""
    path = Path(path)
    try:
        values, _ = _text_header(path)
    except OSError:
        return ()
    name = values.get("data file") or values.get("datafile") or values.get("elementdatafile") or ""
    tokens = name.split()
    if not tokens or tokens[0].upper() in ("LOCAL", "LIST") or "%" in name:
        return ()  # attached data, or a list / printf-style pattern of files
    return (str((path.parent / tokens[0]).resolve()),)


def _data_extent(path: Path, fmt: str) -> tuple[int | None, str, tuple[str, ...]]:
    """(bytes available for pixel data, encoding, data files) of a NRRD/MetaImage/2D image file."""
    size = os.path.getsize(path)
    if fmt == "png":
        return size, Encoding.DEFLATE, ()
    if fmt not in ("nrrd", "metaimage"):
        return None, Encoding.OTHER, ()
    values, offset = _text_header(path)
    if fmt == "nrrd":
        encoding = values.get("encoding", "raw").lower()
        kind = {"raw": Encoding.RAW, "gzip": Encoding.DEFLATE, "gz": Encoding.DEFLATE}.get(encoding, Encoding.OTHER)
    else:
        compressed = values.get("compresseddata", "false").lower() == "true"
        kind = Encoding.DEFLATE if compressed else Encoding.RAW
    data_files = text_header_data_files(path)
    named = values.get("data file") or values.get("datafile") or values.get("elementdatafile")
    if data_files:
        data = Path(data_files[0])
        if not data.is_file():
            raise InputError(f"{path}: the data file {data.name} named by the header does not exist")
        return os.path.getsize(data), kind, data_files
    if named and named.split()[0].upper() != "LOCAL":
        return None, Encoding.OTHER, ()  # several data files: the memory budget still applies
    return max(size - offset, 0), kind, ()


def _probe_tiff(path: Path, max_bytes: int | None) -> VolumeHeader:
    plan, dtype = probe_tiff(path)
    label = str(path)
    _check_pixel_type(label, dtype)
    mask_kind = "a 1-bit (bilevel) TIFF, a mask or line art" if dtype == np.bool_ else ""
    full = plan.shape + ((plan.components,) if plan.components > 1 else ())
    nbytes = check_claimed_size(label, full, dtype, max_bytes=max_bytes)
    return VolumeHeader(
        path=label,
        format="tiff",
        shape=plan.shape,
        components=plan.components,
        dtype=dtype,
        is_2d=plan.is_2d,
        files=(label,),
        nbytes=nbytes,
        mask_kind=mask_kind,
    )


def _probe_npy(path: Path, max_bytes: int | None) -> VolumeHeader:
    layout = probe_npy(path)
    label = str(path)
    stored = layout.shape + ((layout.components,) if layout.components > 1 else ())
    nbytes = check_claimed_size(label, stored, layout.dtype, max_bytes=max_bytes)  # np.load checked the file's size
    return VolumeHeader(
        path=label,
        format="npy",
        shape=layout.shape,
        components=layout.components,
        dtype=layout.dtype,
        is_2d=layout.is_2d,
        files=(label,),
        nbytes=nbytes,
        mask_kind="a boolean array, a mask" if layout.dtype == np.bool_ else "",
    )


def _grey_alpha_png(path: Path, png: PngHeader, max_bytes: int | None) -> VolumeHeader:
    """The header of a grey + alpha PNG (ITK cannot read two components; :func:`~.raster.decode_png` can)."""
    label = str(path)
    dtype = np.dtype(np.uint16 if png.bit_depth == 16 else np.uint8)
    shape = (1, png.height, png.width)
    nbytes = check_claimed_size(
        label, (*shape[1:], 2), dtype, data_bytes=os.path.getsize(path), encoding=Encoding.DEFLATE, max_bytes=max_bytes
    )
    return VolumeHeader(label, "png", shape, 1, dtype, True, (label,), nbytes=nbytes // 2)


def _probe_with_sitk(path: Path, fmt: str, max_bytes: int | None) -> VolumeHeader:
    import SimpleITK as sitk

    label = str(path)
    if fmt == "bmp" and bmp_bits(path) == 1:
        raise InputError(f"{label}: 1-bit (bilevel) BMP is not supported (ITK reads 8, 24 and 32 bits); save it as PNG")
    png = png_header(path) if fmt == "png" else None  # read once: the grey + alpha, palette and 1-bit checks below
    if png is not None and png.colour_type == GREY_ALPHA:
        return _grey_alpha_png(path, png, max_bytes)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with itk_messages_logged(), c_stderr_logged():
            reader.ReadImageInformation()
    except RuntimeError as exc:
        raise InputError(sitk_read_error(label, fmt, exc)) from exc
    size = tuple(int(n) for n in reader.GetSize())
    dimension = reader.GetDimension()
    components = int(reader.GetNumberOfComponents())
    if dimension == 4:
        if size[3] != 1:
            raise four_d_error(label, tuple(reversed(size)))
        size = size[:3]
    elif dimension not in (2, 3):
        raise InputError(f"{label}: {dimension}D images are not supported")
    if 0 in size:
        raise InputError(f"{label}: image has a zero-size axis (size {size})")
    raster = fmt in IMAGE_2D_FORMATS  # RGB(A) or grey; NRRD and MetaImage hold any number of channels
    if raster and components not in (1, 3, 4):
        raise InputError(f"{label}: {components}-component pixels are not supported")
    if components == 3 and (
        (fmt == "bmp" and bmp_has_gray_palette(path))
        or (png is not None and png.colour_type == PALETTE and png_has_gray_palette(path))
    ):
        components = 1  # an 8-bit grey palette: ITK expands it to RGB; the reader folds it back
    dtype = sitk.GetArrayFromImage(sitk.Image([1] * len(size), reader.GetPixelID(), components)).dtype
    _check_pixel_type(label, dtype)
    _check_geometry(label, reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
    data_bytes, encoding, data_files = _data_extent(path, fmt)
    mask_kind = _slicer_segmentation(path) if fmt == "nrrd" else ""
    if png is not None and png.bit_depth == 1 and png.colour_type == GREY:
        mask_kind = "a 1-bit (bilevel) PNG, a mask or line art"
    full = tuple(reversed(size)) + ((components,) if components > 1 else ())
    nbytes = check_claimed_size(label, full, dtype, data_bytes=data_bytes, encoding=encoding, max_bytes=max_bytes)
    zyx = tuple(reversed(size))
    shape = zyx if len(zyx) == 3 else (1, *zyx)
    return VolumeHeader(
        path=label,
        format=fmt,
        shape=shape,
        components=3 if raster and components == 4 else components,  # a raster image's alpha is dropped
        dtype=dtype,
        is_2d=dimension == 2 or fmt in IMAGE_2D_FORMATS,
        files=(label, *data_files),
        nbytes=nbytes,
        mask_kind=mask_kind,
    )


@dataclass(frozen=True)
class Segment:
    """One segment of a 3D Slicer segmentation file: its name, the layer (component) holding it, its label value."""

    name: str
    layer: int
    value: int


def slicer_segments(path: str | Path) -> list[Segment]:
    """The segments of a 3D Slicer segmentation (``.seg.nrrd``) in the file's order, else empty. Overlapping segments
    are stored in separate layers (the file's components); a segment is the voxels of its layer at its value."""
    path = Path(path)
    if detect_format(path) != "nrrd":
        return []
    values, _ = _text_header(path)
    found = []
    for index in range(len(values)):
        value = values.get(f"segment{index}_labelvalue", "").strip()
        if not value.isdigit():
            if f"segment{index}_id" not in values:
                break
            continue
        layer = values.get(f"segment{index}_layer", "0").strip()
        name = values.get(f"segment{index}_name", "")
        found.append(Segment(name, int(layer) if layer.isdigit() else 0, int(value)))
    return found


def _slicer_segmentation(path: Path) -> str:
    """``"a 3D Slicer segmentation (segments a, b)"`` when a NRRD header has Slicer's segment fields, else ``""``."""
    values, _ = _text_header(path)
    if "segmentation_masterrepresentation" not in values and "segment0_id" not in values:
        return ""
    names = [value for key, value in values.items() if key.startswith("segment") and key.endswith("_name")]
    return "a 3D Slicer segmentation" + (f" (segments {', '.join(names[:5])})" if names else "")


# ------------------------------------------------------------------------------------------------- DICOM
def _dicom_header(label: str, fmt: str, stack: DicomStack, is_2d: bool, files: tuple[str, ...], nbytes: int):
    shape = stack.shape[:3]
    components = 3 if len(stack.shape) == 4 else 1
    return VolumeHeader(
        path=label,
        format=fmt,
        shape=shape,
        components=components,
        dtype=stack.dtype,
        is_2d=is_2d,
        files=files,
        grid_problem=stack.geometry.problem,
        dicom=stack,
        nbytes=nbytes,
    )


def _probe_dicom_file(path: Path, known_suffix: bool, series_uid: str | None, max_bytes: int | None) -> VolumeHeader:
    image = read_dicom_image(path, known_suffix=known_suffix)
    if series_uid and image.series_uid != series_uid:
        raise OptionError(
            f"{path}: this file belongs to series {image.series_uid or '(none)'}, not {series_uid}",
            parameter="series_uid",
        )
    nbytes = check_dicom_size(image, max_bytes)
    stack = dicom_stack_of_file(image)
    return _dicom_header(str(path), "dicom-file", stack, image.frames == 1, (str(path),), nbytes)


def _probe_dicom_folder(path: Path, series_uid: str | None, max_bytes: int | None) -> VolumeHeader:
    series = select_dicom_series(path, series_uid)
    check_skipped_files(path, series.uid, set(series.files))
    stack = dicom_stack_of_series(str(path), series.files, series.uid)
    for image in stack.images:
        check_dicom_size(image, max_bytes)
    nbytes = check_claimed_size(str(path), stack.shape, stack.dtype, max_bytes=max_bytes)
    is_2d = len(stack.images) == 1 and stack.images[0].frames == 1
    return _dicom_header(str(path), "dicom-series", stack, is_2d, stack.files, nbytes)
