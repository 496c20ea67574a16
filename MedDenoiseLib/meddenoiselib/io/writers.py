"""Writing volumes atomically in the input's format: NIfTI, NRRD, MetaImage, 2D images, derived DICOM."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import MedDenoiseError
from .atomic import atomic_file, atomic_folder, check_output_path
from .dicom import write_derived_dicom
from .formats import IMAGE_2D_FORMATS, detect_format
from .volume import Volume

__all__ = ["write_volume", "volume_to_sitk", "output_format_for"]

logger = logging.getLogger(__name__)

_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


def output_format_for(path: str | Path, volume: Volume) -> str:
    """The format a path asks for: its suffix, or a derived DICOM series for a suffix-less path from DICOM."""
    fmt = detect_format(path)
    if fmt is not None:
        return fmt
    if volume.source.format in ("dicom-series", "dicom-file") and volume.source.dicom_files:
        return "dicom-series"
    raise MedDenoiseError(
        f"{path}: cannot tell the output format from the name; use .nii.gz, .nrrd, .mha, .png, .tif or .dcm "
        "(a folder name is only valid for DICOM input)"
    )


def write_volume(
    volume: Volume,
    path: str | Path,
    overwrite: bool = False,
    inputs: tuple[str | Path, ...] = (),
    description_suffix: str = " denoised",
    derivation: str = "Denoised with MedDenoise",
    compress: bool = True,
) -> Path:
    """Write a volume atomically; the format follows the output name.

    A name without an image suffix writes a derived DICOM series folder (DICOM input only); ``.dcm`` writes a
    derived single (possibly multi-frame) DICOM file. Geometry (spacing, origin, direction) is written exactly;
    NIfTI output from NIfTI input keeps the source affine bit for bit when the geometry is unchanged.

    Args:
        volume: what to write. Integer arrays are written with their dtype; float arrays as float32.
        path: output file or (DICOM series) folder.
        overwrite: replace an existing output. Defaults to False.
        inputs: input paths that must never be overwritten.
        description_suffix: DICOM SeriesDescription suffix. Defaults to " denoised".
        derivation: DICOM DerivationDescription. Defaults to "Denoised with MedDenoise".
        compress: compress NRRD, MetaImage and TIFF output (``.nii.gz`` is always compressed, ``.nii`` never).
            Temporary hand-over files are faster uncompressed. Defaults to True.

    Returns:
        The path written.

    Raises:
        MedDenoiseError: the output exists (without ``overwrite``), would overwrite an input, its folder is
            missing, or the format cannot hold this volume.
    """
    path = Path(path)
    check_output_path(path, overwrite, tuple(Path(p) for p in inputs) + _source_paths(volume))
    fmt = output_format_for(path, volume)
    try:
        if fmt == "dicom-series":
            _write_dicom(volume, path, folder=True, description_suffix=description_suffix, derivation=derivation)
        elif fmt == "dicom-file":
            _write_dicom(volume, path, folder=False, description_suffix=description_suffix, derivation=derivation)
        elif fmt == "nifti":
            _write_nifti(volume, path)
        else:
            _write_with_sitk(volume, path, fmt, compress)
    except MedDenoiseError:
        raise
    except (RuntimeError, OSError, ValueError) as exc:
        raise MedDenoiseError(f"{path}: cannot write {fmt} ({str(exc).strip().splitlines()[-1]})") from exc
    logger.debug("wrote %s", path)
    return path


def _source_paths(volume: Volume) -> tuple[Path, ...]:
    paths = [Path(volume.source.path)] if volume.source.path else []
    paths += [Path(f) for f in volume.source.dicom_files]
    return tuple(paths)


def volume_to_sitk(volume: Volume, as_2d: bool | None = None) -> sitk.Image:
    """Convert a :class:`Volume` to a SimpleITK image (2D when the volume is a single 2D image)."""
    as_2d = volume.is_2d and volume.shape[0] == 1 if as_2d is None else as_2d
    array = volume.array
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    is_vector = array.ndim == 4
    if as_2d:
        image = sitk.GetImageFromArray(array[0], isVector=is_vector)
        image.SetSpacing(volume.spacing[:2])
        image.SetOrigin(volume.origin[:2])
        image.SetDirection(tuple(volume.direction[:2, :2].ravel()))
    else:
        image = sitk.GetImageFromArray(array, isVector=is_vector)
        image.SetSpacing(volume.spacing)
        image.SetOrigin(volume.origin)
        image.SetDirection(tuple(volume.direction.ravel()))
    return image


def _write_with_sitk(volume: Volume, path: Path, fmt: str, compress: bool = True) -> None:
    if fmt in IMAGE_2D_FORMATS:
        if volume.shape[0] != 1:
            raise MedDenoiseError(
                f"{path}: {fmt.upper()} holds one 2D image but the volume has {volume.shape[0]} slices"
            )
        allowed = ("uint8",) if fmt in ("jpeg", "bmp") else ("uint8", "uint16")
        if volume.array.dtype.name not in allowed:
            raise MedDenoiseError(
                f"{path}: {fmt.upper()} cannot store {volume.array.dtype} pixels; write .tif, .nrrd or .nii.gz instead"
            )
    image = volume_to_sitk(volume, as_2d=volume.is_2d and volume.shape[0] == 1)
    suffix = "".join(Path(path.name).suffixes[-1:])
    with atomic_file(path, suffix=suffix) as temporary:
        sitk.WriteImage(image, str(temporary), useCompression=compress and fmt in ("nrrd", "metaimage", "tiff"))


def _write_nifti(volume: Volume, path: Path) -> None:
    import nibabel as nib

    if volume.num_components != 1:
        raise MedDenoiseError(f"{path}: multi-component images are written as .nrrd, .mha or .tif, not NIfTI")
    array = volume.array
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    data = np.transpose(array, (2, 1, 0))  # (z, y, x) -> nibabel (x, y, z)
    affine = np.eye(4)
    affine[:3, :3] = _LPS_FROM_RAS @ volume.direction @ np.diag(volume.spacing)
    affine[:3, 3] = _LPS_FROM_RAS @ np.asarray(volume.origin)
    header = None
    if volume.source.format == "nifti" and volume.source.path and Path(volume.source.path).is_file():
        source = nib.load(volume.source.path)
        if np.allclose(source.affine, affine, atol=1e-5):
            affine = source.affine  # keep the source's exact float values
            header = source.header.copy()
    if volume.is_2d and data.shape[2] == 1 and volume.source.format == "nifti":
        data = data[:, :, 0]  # a 2D NIfTI stays 2D
    image = nib.Nifti1Image(np.ascontiguousarray(data), affine, header)
    image.set_data_dtype(array.dtype)
    image.header.set_slope_inter(1.0, 0.0)  # values are already in physical units: store them unscaled
    image.set_qform(affine, code=int(header["qform_code"]) if header is not None and header["qform_code"] > 0 else 1)
    image.set_sform(affine, code=int(header["sform_code"]) if header is not None and header["sform_code"] > 0 else 1)
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    with atomic_file(path, suffix=suffix) as temporary:
        nib.save(image, str(temporary))


def _write_dicom(volume: Volume, path: Path, folder: bool, description_suffix: str, derivation: str) -> None:
    files = volume.source.dicom_files
    if not files:
        raise MedDenoiseError(
            f"{path}: DICOM output needs DICOM input (its patient, study and geometry headers); "
            "write .nii.gz, .nrrd or .mha instead"
        )
    if volume.num_components != 1:
        raise MedDenoiseError(f"{path}: only grayscale volumes can be written as DICOM")
    frames = volume.array
    if folder:
        with atomic_folder(path) as temporary:
            write_derived_dicom(frames, files, temporary, description_suffix, derivation)
        return
    if len(files) != 1:
        raise MedDenoiseError(
            f"{path}: the input is a {len(files)}-file DICOM series; give a folder name (no suffix) as output"
        )
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as scratch:
        written = write_derived_dicom(frames, files, Path(scratch), description_suffix, derivation)
        with atomic_file(path, suffix=".dcm") as temporary:
            os.replace(written[0], temporary)
