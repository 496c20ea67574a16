"""Reading volumes: NIfTI (nibabel), NRRD/MetaImage/2D images (SimpleITK), DICOM series and files (GDCM)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import MedDenoiseError
from .dicom import _first_line, read_dicom_files, select_dicom_series
from .formats import IMAGE_2D_FORMATS, detect_format
from .volume import SourceInfo, Volume

__all__ = ["read_volume", "volume_from_sitk", "check_volume"]

logger = logging.getLogger(__name__)

_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


def read_volume(path: str | Path, series_uid: str | None = None) -> Volume:
    """Read an image file or a DICOM series folder into a :class:`Volume`.

    Supported: ``.nii``/``.nii.gz`` (2D single-slice and 3D; a trailing singleton 4th axis is dropped),
    ``.nrrd``/``.nhdr``, ``.mha``/``.mhd``, a folder holding a DICOM series (the largest series, or the one named
    by ``series_uid``), a single DICOM file (2D or multi-frame), and 2D ``.png``/``.tif``/``.jpg``/``.bmp``
    images (grayscale or RGB; multi-page TIFF reads as a volume).

    Args:
        path: the file or folder.
        series_uid: for a DICOM folder, the SeriesInstanceUID to read. Defaults to the largest series.

    Returns:
        The volume, values in physical units (DICOM/NIfTI rescale applied), integer dtypes kept.

    Raises:
        MedDenoiseError: missing path, unsupported or corrupt file, empty folder, 4D data, NaN/Inf voxels or a
            zero-size axis. The message names the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise MedDenoiseError(f"{path}: no such file or folder")
    if path.is_dir():
        volume = _read_dicom_folder(path, series_uid)
    else:
        fmt = detect_format(path)
        if fmt == "nifti":
            volume = _read_nifti(path)
        elif fmt in (None, "dicom-file"):
            volume = _read_dicom_file(path, known_suffix=fmt is not None)
        else:
            volume = _read_with_sitk(path, fmt)
    check_volume(volume, str(path))
    return volume


def check_volume(volume: Volume, label: str) -> None:
    """Raise :class:`MedDenoiseError` if a volume has a zero-size axis or non-finite values."""
    if 0 in volume.array.shape:
        raise MedDenoiseError(f"{label}: image has a zero-size axis (shape {volume.array.shape})")
    if volume.array.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(volume.array)))
        if bad:
            raise MedDenoiseError(f"{label}: image contains {bad} NaN/Inf voxels; fix or mask them first")
    elif volume.array.dtype.kind not in "iub":
        raise MedDenoiseError(f"{label}: unsupported pixel type {volume.array.dtype}")


def volume_from_sitk(image: sitk.Image, source: SourceInfo, metadata: dict[str, str] | None = None) -> Volume:
    """Convert a 2D or 3D SimpleITK image (scalar or vector) to a :class:`Volume`."""
    label = source.path or "image"
    dimension = image.GetDimension()
    if dimension == 4:
        size = image.GetSize()
        if size[3] != 1:
            raise MedDenoiseError(f"{label}: 4D data (size {size}) is not supported; split it into 3D volumes")
        image = image[:, :, :, 0]
        dimension = 3
    if dimension not in (2, 3):
        raise MedDenoiseError(f"{label}: {dimension}D images are not supported")
    array = sitk.GetArrayFromImage(image)
    components = image.GetNumberOfComponentsPerPixel()
    if dimension == 2:
        array = array[np.newaxis]
        spacing = (*image.GetSpacing(), 1.0)
        origin = (*image.GetOrigin(), 0.0)
        direction = np.eye(3)
        direction[:2, :2] = np.asarray(image.GetDirection()).reshape(2, 2)
    else:
        spacing = image.GetSpacing()
        origin = image.GetOrigin()
        direction = np.asarray(image.GetDirection()).reshape(3, 3)
    if components > 1 and array.ndim != 4:
        raise MedDenoiseError(f"{label}: unexpected array shape {array.shape} for a {components}-component image")
    if metadata is None:
        metadata = {key: image.GetMetaData(key) for key in image.GetMetaDataKeys()}
    return Volume(array=array, spacing=spacing, origin=origin, direction=direction, metadata=metadata, source=source)


def _read_with_sitk(path: Path, fmt: str) -> Volume:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise MedDenoiseError(f"{path}: cannot read as {fmt} ({_first_line(exc)})") from exc
    is_2d = image.GetDimension() == 2 or fmt in IMAGE_2D_FORMATS
    volume = volume_from_sitk(image, SourceInfo(path=str(path), format=fmt, is_2d=is_2d))
    if volume.num_components not in (1, 3, 4):
        raise MedDenoiseError(f"{path}: {volume.num_components}-component pixels are not supported")
    if volume.num_components == 4:
        # RGBA: the alpha channel is not image content; keep RGB.
        volume = volume.with_array(volume.array[..., :3])
    return volume


def _read_nifti(path: Path) -> Volume:
    import nibabel as nib

    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # noqa: BLE001 - nibabel raises several types for corrupt files
        raise MedDenoiseError(f"{path}: cannot read as NIfTI ({exc})") from exc
    if data.size == 0:
        raise MedDenoiseError(f"{path}: image has a zero-size axis (header dimensions {image.header.get_data_shape()})")
    if data.ndim > 3:
        extra = data.shape[3:]
        if int(np.prod(extra)) != 1:
            raise MedDenoiseError(
                f"{path}: 4D data (shape {data.shape}) is not supported; split it into 3D volumes"
            )
        data = data.reshape(data.shape[:3])
    is_2d = data.ndim == 2 or (data.ndim == 3 and data.shape[2] == 1)
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    if data.ndim != 3:
        raise MedDenoiseError(f"{path}: unsupported NIfTI shape {data.shape}")
    affine = np.asarray(image.affine, dtype=np.float64)
    lps = _LPS_FROM_RAS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if np.any(spacing == 0):
        raise MedDenoiseError(f"{path}: the NIfTI affine has a zero-length axis")
    origin = _LPS_FROM_RAS @ affine[:3, 3]
    # nibabel's array is (x, y, z); the Volume convention is (z, y, x).
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    metadata = {"nifti_descrip": str(image.header.get("descrip", b"").astype(str))} if hasattr(image, "header") else {}
    return Volume(
        array=array,
        spacing=tuple(spacing),
        origin=tuple(origin),
        direction=lps / spacing,
        metadata=metadata,
        source=SourceInfo(path=str(path), format="nifti", is_2d=is_2d),
    )


def _read_dicom_folder(path: Path, series_uid: str | None) -> Volume:
    series = select_dicom_series(path, series_uid)
    _check_skipped_files(path, series.uid, set(series.files))
    image = read_dicom_files(series.files, str(path))
    metadata = _first_slice_metadata(series.files[0])
    source = SourceInfo(
        path=str(path), format="dicom-series", is_2d=False, dicom_files=series.files, series_uid=series.uid
    )
    if image.GetDimension() == 3 and image.GetSize()[2] != len(series.files):
        # Multi-frame files inside a "series" folder: the frame/file correspondence needed to write back is lost.
        source = SourceInfo(path=str(path), format="dicom-series", series_uid=series.uid)
    return volume_from_sitk(image, source, metadata)


def _check_skipped_files(folder: Path, series_uid: str, listed: set[str]) -> None:
    """GDCM silently leaves out files it cannot decode (e.g. truncated); refuse a series with holes instead."""
    import pydicom

    listed_names = {Path(f).name for f in listed}
    for entry in sorted(folder.iterdir()):
        if not entry.is_file() or entry.name.startswith(".") or entry.name in listed_names:
            continue
        try:
            header = pydicom.dcmread(str(entry), stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        except Exception:  # noqa: BLE001 - not DICOM at all: a README, a thumbnail... ignore it
            continue
        if str(getattr(header, "SeriesInstanceUID", "")) == series_uid:
            raise MedDenoiseError(
                f"{entry}: this file of series {series_uid} cannot be decoded (truncated or corrupt); "
                "the series would have a missing slice"
            )


def _read_dicom_file(path: Path, known_suffix: bool) -> Volume:
    import pydicom

    try:
        header = pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises InvalidDicomError, EOFError, ...
        if known_suffix:
            raise MedDenoiseError(f"{path}: not a readable DICOM file ({exc})") from exc
        raise MedDenoiseError(
            f"{path}: unsupported file type (expected .nii/.nii.gz, .nrrd, .mha/.mhd, .png, .tif, .jpg, "
            "a DICOM file or a DICOM series folder)"
        ) from exc
    if "PixelData" not in header and "FloatPixelData" not in header and not _has_pixel_data(path):
        raise MedDenoiseError(f"{path}: DICOM file holds no image (no PixelData)")
    image = read_dicom_files((str(path),), str(path))
    frames = int(getattr(header, "NumberOfFrames", 1) or 1)
    is_2d = image.GetDimension() == 2 or (frames == 1 and image.GetSize()[2] == 1)
    source = SourceInfo(
        path=str(path),
        format="dicom-file",
        is_2d=is_2d,
        dicom_files=(str(path),),
        series_uid=str(getattr(header, "SeriesInstanceUID", "")),
    )
    volume = volume_from_sitk(image, source, _first_slice_metadata(str(path)))
    expected = (frames, int(header.Rows), int(header.Columns))
    if volume.shape != expected:
        raise MedDenoiseError(f"{path}: decoded shape {volume.shape} does not match the header's {expected}")
    return volume


def _has_pixel_data(path: Path) -> bool:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), specific_tags=["PixelData"])
    except Exception:  # noqa: BLE001
        return False
    return "PixelData" in ds


def _first_slice_metadata(path: str) -> dict[str, str]:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.LoadPrivateTagsOff()
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return {}
    return {key: reader.GetMetaData(key).strip() for key in reader.GetMetaDataKeys()}
