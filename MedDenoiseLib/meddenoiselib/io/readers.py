"""Reading volumes: NIfTI (nibabel), NRRD/MetaImage/2D images (SimpleITK), DICOM files and series (pydicom).

Every read starts with :func:`~.probe.probe_volume`, which parses the header, refuses what is not an image volume
and checks the claimed size against the file and the memory budget before anything is allocated.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError, MedDenoiseError
from ..transforms.missing import missing_values
from .dicom import read_dicom_stack
from .formats import IMAGE_2D_FORMATS
from .itk_messages import c_stderr_logged, itk_messages_logged
from .nibabel_formats import NIBABEL_FORMATS, load_nibabel, nibabel_metadata, nibabel_voxels
from .npy import read_npy
from .probe import VolumeHeader, four_d_error, probe_volume, sitk_read_error
from .provenance import SFORM_CODE_KEY
from .raster import GREY_ALPHA, decode_png, png_header
from .tiff import read_tiff
from .volume import SourceInfo, Volume

__all__ = ["read_volume", "volume_from_sitk", "check_volume"]

logger = logging.getLogger(__name__)

_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


def read_volume(path: str | Path, series_uid: str | None = None, max_bytes: int | None = None) -> Volume:
    """Read an image file or a DICOM series folder into a :class:`Volume`.

    Supported: ``.nii``/``.nii.gz`` (2D and 3D; a trailing singleton 4th axis is dropped), ``.nrrd``/``.nhdr``,
    ``.mha``/``.mhd``, FreeSurfer ``.mgz``/``.mgh``, Philips ``.PAR`` (with its ``.REC``), MINC ``.mnc`` (MINC 2
    needs h5py), a folder holding a DICOM series (the largest series, or the one named by ``series_uid``),
    a single DICOM file (2D or multi-frame), and 2D ``.png``/``.tif``/``.jpg``/``.bmp`` images (grayscale or RGB;
    multi-page TIFF reads as a volume), and NumPy ``.npy`` arrays (``(Y, X)`` or ``(Z, Y, X)``, colour last;
    no geometry: :mod:`.npy`).

    DICOM values are physical: Rescale Slope/Intercept (per frame for enhanced objects) or RT Dose Grid Scaling
    applied, MONOCHROME1 inverted within its range so that high values are bright (written back inverted, so
    viewers show the same image). Slices are ordered along the image normal; a stack whose slices are not on one
    regular grid is read with :attr:`SourceInfo.grid_problem` set (see there).

    Args:
        path: the file or folder.
        series_uid: for a DICOM folder, the SeriesInstanceUID to read (defaults to the largest series); for a
            DICOM file, the series it must belong to.
        max_bytes: the largest decoded image to accept, in bytes. Defaults to half the available memory
            (see :func:`~meddenoiselib.io.limits.memory_budget`).

    Returns:
        The volume, values in physical units, integer dtypes kept.

    Raises:
        InputError: missing path, unsupported or corrupt file, an object that is not an image (DICOM RT
            structures, segmentations, CIFTI), 4D data, infinite voxels, nothing but NaN, a zero-size axis, a header
            claiming more than the file or memory holds, or slices that are not one volume. The message names the
            file. (NaN voxels are no data: :class:`~meddenoiselib.inference.Denoiser` denoises around them.)
        OptionError: ``series_uid`` does not match the input.
    """
    header = probe_volume(path, series_uid=series_uid, max_bytes=max_bytes)
    label = header.path
    try:
        if header.dicom is not None:
            volume = _read_dicom(header, max_bytes)
        elif header.format == "nifti":
            volume = _read_nifti(Path(label), header)
        elif header.format in NIBABEL_FORMATS:
            volume = _read_nibabel(Path(label), header)
        elif header.format == "tiff":
            volume = _read_tiff(Path(label), header)
        elif header.format == "npy":
            array, layout = read_npy(label)
            volume = Volume(array, source=SourceInfo(path=label, format="npy", is_2d=layout.is_2d))
        else:
            volume = _read_with_sitk(Path(label), header)
    except MedDenoiseError:
        raise
    except MemoryError:
        raise InputError(f"{label}: not enough memory to read the image ({header.nbytes / 2**20:.0f} MB)") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise many types for corrupt data; name the file instead
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise InputError(f"{label}: cannot read the image data ({reason})") from exc
    if volume.shape != header.shape or volume.num_components != header.components:
        raise InputError(f"{label}: decoded shape {volume.array.shape} does not match the header's {header.shape}")
    check_volume(volume, label)
    return volume


def check_volume(volume: Volume, label: str) -> None:
    """Raise :class:`InputError` if a volume has a zero-size axis, infinite values, no data (all NaN) or an
    unsupported type."""
    if 0 in volume.array.shape:
        raise InputError(f"{label}: image has a zero-size axis (shape {volume.array.shape})")
    if volume.array.dtype.kind == "f":
        missing_values(volume.array, label)  # NaN is no data, denoised around; infinite values are refused
    elif volume.array.dtype.kind not in "iub":
        raise InputError(f"{label}: unsupported pixel type {volume.array.dtype}")


def volume_from_sitk(image: sitk.Image, source: SourceInfo, metadata: dict[str, str] | None = None) -> Volume:
    """Convert a 2D or 3D SimpleITK image (scalar or vector) to a :class:`Volume`."""
    label = source.path or "image"
    dimension = image.GetDimension()
    if dimension == 4:
        size = image.GetSize()
        if size[3] != 1:
            raise four_d_error(label, tuple(reversed(size)))
        image = image[:, :, :, 0]
        dimension = 3
    if dimension not in (2, 3):
        raise InputError(f"{label}: {dimension}D images are not supported")
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
        raise InputError(f"{label}: unexpected array shape {array.shape} for a {components}-component image")
    if metadata is None:
        metadata = {key: image.GetMetaData(key) for key in image.GetMetaDataKeys()}
    return Volume(array=array, spacing=spacing, origin=origin, direction=direction, metadata=metadata, source=source)


def _read_with_sitk(path: Path, header: VolumeHeader) -> Volume:
    png = png_header(path) if header.format == "png" else None
    if png is not None and png.colour_type == GREY_ALPHA:  # ITK cannot read two components; the alpha is dropped
        grey = decode_png(path)[..., 0]
        return Volume(
            np.ascontiguousarray(grey)[np.newaxis], source=SourceInfo(path=str(path), format="png", is_2d=True)
        )
    try:
        with itk_messages_logged(), c_stderr_logged():
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(sitk_read_error(str(path), header.format, exc)) from exc
    source = SourceInfo(path=str(path), format=header.format, is_2d=header.is_2d)
    volume = volume_from_sitk(image, source)
    if volume.num_components == 4 and header.format in IMAGE_2D_FORMATS:
        # RGBA: the alpha channel is not image content; keep RGB.
        volume = volume.with_array(volume.array[..., :3])
    if header.format in ("bmp", "png") and header.components == 1 and volume.num_components == 3:
        volume = volume.with_array(np.ascontiguousarray(volume.array[..., 0]))  # a gray palette expanded to RGB
    if header.is_2d and volume.array.ndim >= 3 and volume.shape[0] != 1:
        raise InputError(f"{path}: a {header.format} file holds one 2D image, this one decodes to {volume.shape}")
    return volume


def _read_tiff(path: Path, header: VolumeHeader) -> Volume:
    array, spacing, metadata, is_2d = read_tiff(path)
    source = SourceInfo(path=str(path), format="tiff", is_2d=is_2d)
    return Volume(array=array, spacing=spacing, metadata=metadata, source=source)


def _read_nifti(path: Path, header: VolumeHeader) -> Volume:
    import nibabel as nib

    image = nib.load(str(path))
    metadata = {
        "nifti_descrip": str(image.header.get("descrip", b"").astype(str)),
        SFORM_CODE_KEY: str(int(image.header["sform_code"])),
    }
    return _volume_from_nibabel(np.asanyarray(image.dataobj), image.affine, metadata, path, header)


def _read_nibabel(path: Path, header: VolumeHeader) -> Volume:
    image = load_nibabel(path, header.format)
    data = nibabel_voxels(image, header.format, str(path))
    return _volume_from_nibabel(data, image.affine, nibabel_metadata(image, header.format), path, header)


def _volume_from_nibabel(data: np.ndarray, affine, metadata: dict, path: Path, header: VolumeHeader) -> Volume:
    """A volume from nibabel's ``(x, y, z)`` voxels and voxel-to-RAS affine (the volume is ``(z, y, x)`` in LPS)."""
    if data.ndim > 3:
        data = data.reshape(data.shape[:3])
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    affine = np.asarray(affine, dtype=np.float64)
    lps = _LPS_FROM_RAS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    origin = _LPS_FROM_RAS @ affine[:3, 3]
    array = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return Volume(
        array=array,
        spacing=tuple(spacing),
        origin=tuple(origin),
        direction=lps / spacing,
        metadata=metadata,
        source=SourceInfo(path=str(path), format=header.format, is_2d=header.is_2d),
    )


def _read_dicom(header: VolumeHeader, max_bytes: int | None) -> Volume:
    stack = header.dicom
    array = read_dicom_stack(stack, max_bytes)
    geometry = stack.geometry
    source = SourceInfo(
        path=header.path,
        format=header.format,
        is_2d=header.is_2d,
        dicom_files=stack.files,
        series_uid=stack.series_uid,
        grid_problem=geometry.problem,
        repeated_frames=stack.repeated_frames,
        repeated_frame_label=stack.repeated_frame_label,
        mosaic=stack.mosaic,
        frame_order=stack.frame_order,
    )
    if geometry.problem and stack.repeated_frames > 1:
        # not a problem: the frames of a DWI / fMRI run, denoised and written as the 4D series they are
        if stack.mosaic is not None:
            where = f"Siemens mosaics of {stack.mosaic.images} slices"
        else:
            where = f"at each of {header.shape[0] // stack.repeated_frames} slice positions"
        logger.info(
            "%s: %d frames (%s), %s; written as a DICOM series or a 4D file",
            header.path,
            stack.repeated_frames,
            stack.repeated_frame_label or "repeat",
            where,
        )
    elif geometry.problem:
        logger.warning(
            "%s: %s; the volume can be written as DICOM or as its evenly spaced parts, not as one file with one affine",
            header.path,
            geometry.problem,
        )
    return Volume(
        array=array,
        spacing=geometry.spacing,
        origin=geometry.origin,
        direction=geometry.direction,
        metadata=dict(stack.metadata),
        source=source,
    )
