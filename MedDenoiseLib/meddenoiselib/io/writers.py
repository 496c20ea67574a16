"""Writing volumes safely in the input's format: NIfTI, NRRD, MGH / MGZ, MetaImage, 2D images, NumPy .npy,
derived DICOM.

Every write is planned first (:func:`~.outputs.plan_output`: format, room, collisions, existing files), then
written through temporaries (:mod:`.atomic`): a failure or a signal leaves either the previous file or the new one,
never a partial file, and never removes anything the library did not write.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import MedDenoiseError, OptionError, OutputError
from .atomic import atomic_file, commit_files, staging_folder
from .dicom_write import write_derived_dicom
from .formats import IMAGE_2D_FORMATS, as_path
from .nibabel_formats import save_mgh
from .nifti import sheared_grid_warning, stored_like_source
from .npy import write_npy
from .outputs import ImageSpec, PlannedOutput, plan_output, refuse_read_only
from .tiff import write_tiff
from .volume import Volume

__all__ = ["write_volume", "volume_to_sitk", "output_format_for"]

logger = logging.getLogger(__name__)


def output_format_for(path: str | Path, volume: Volume) -> str:
    """The format a path asks for: its suffix, or a derived DICOM series for a suffix-less path from DICOM.

    Raises:
        OutputError: the name gives no known format.
    """
    from .formats import detect_format

    fmt = detect_format(path)
    refuse_read_only(str(path), fmt)
    if fmt is not None:
        return fmt
    if volume.source.format in ("dicom-series", "dicom-file") and volume.source.dicom_files:
        return "dicom-series"
    raise OutputError(
        f"{path}: cannot tell the output format from the name; use .nii.gz, .nrrd, .mha, .png, .tif, .npy or .dcm "
        "(a folder name is only valid for DICOM input)"
    )


def write_volume(
    volume: Volume,
    path: str | Path,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    description_suffix: str = " denoised",
    derivation: str = "Denoised with MedDenoise",
    compress: bool = True,
    role: str = "image",
    others: Iterable[PlannedOutput] = (),
) -> Path:
    """Write a volume safely; the format follows the output name.

    A name without an image suffix writes a derived DICOM series folder (DICOM input only; an existing folder
    is merged into file by file, never emptied); ``.dcm`` writes a derived single (possibly multi-frame) DICOM
    file. Geometry (spacing, origin, direction) is written exactly; NIfTI output from NIfTI input keeps the
    source affine bit for bit when the geometry is unchanged. The dtype is kept, float64 included.

    Args:
        volume: what to write.
        path: output file or (DICOM series) folder.
        overwrite: replace files of the same name that this output writes. Defaults to False.
        inputs: input paths that must never be written (the volume's own source is always protected).
        description_suffix: DICOM SeriesDescription suffix. Defaults to " denoised".
        derivation: DICOM DerivationDescription. Defaults to "Denoised with MedDenoise".
        compress: compress NRRD, MetaImage and TIFF output (``.nii.gz`` is always compressed, ``.nii`` never).
            Temporary hand-over files are faster uncompressed. Defaults to True.
        role: ``"image"``, ``"residual"`` (signed values) or ``"noise map"`` (fractional values): DICOM refused for
            the last two. Defaults to ``"image"``.
        others: outputs of the same run already planned; this one must not share a file with them.

    Returns:
        The path written.

    Raises:
        OutputError: see :func:`~meddenoiselib.io.outputs.plan_output` (existing output without ``overwrite``,
            an input or another output, missing or read-only folder, a format that cannot hold the volume), or
            the write itself failed (disk full...). Nothing partial is left behind.
    """
    if not isinstance(volume, Volume):
        raise OptionError(f"`volume` must be a Volume, got {type(volume).__name__}.")
    path = as_path(path)
    protected = [*inputs, *_source_paths(volume)]
    plan = plan_output(
        path,
        ImageSpec.of(volume),
        role=role,
        overwrite=overwrite,
        protected=protected,
        others=others,
        compress=compress,
    )
    try:
        if plan.format == "dicom-series":
            _write_dicom_series(volume, plan, description_suffix, derivation)
        elif plan.format == "dicom-file":
            _write_dicom_file(volume, plan, description_suffix, derivation)
        elif plan.format == "nifti":
            _write_nifti(volume, path, keep_storage=role == "image")
        elif plan.format == "mgh":
            _write_mgh(volume, path)
        elif plan.format == "tiff":
            _write_tiff(volume, path, compress)
        elif plan.format == "npy":
            _write_npy(volume, path)
        else:
            _write_with_sitk(volume, plan, compress)
    except MedDenoiseError:
        raise
    except MemoryError:
        raise OutputError(f"{path}: not enough memory to write {plan.format}") from None
    except Exception as exc:  # noqa: BLE001 - SimpleITK, nibabel and the OS raise many types (disk full, ...)
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise OutputError(f"{path}: cannot write {plan.format} ({lines[-1] if lines else type(exc).__name__})") from exc
    logger.debug("wrote %s", path)
    return path


def _source_paths(volume: Volume) -> tuple[Path, ...]:
    paths = [Path(volume.source.path)] if volume.source.path else []
    paths += [Path(f) for f in volume.source.dicom_files]
    return tuple(paths)


def _sitk_array(volume: Volume) -> np.ndarray:
    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def in_plane_direction(direction: np.ndarray) -> tuple[float, ...] | None:
    """The 2x2 direction of a slice lying in the patient's x-y plane (an axial slice, rotated or flipped in it);
    None for a slice in any other plane (sagittal, coronal, oblique), whose geometry a 2D image cannot hold."""
    block = np.asarray(direction, dtype=np.float64)[:2, :2]
    return tuple(block.ravel()) if np.allclose(block @ block.T, np.eye(2), atol=1e-6) else None


def volume_to_sitk(volume: Volume, as_2d: bool | None = None) -> sitk.Image:
    """Convert a :class:`Volume` to a SimpleITK image, dtype kept.

    Args:
        volume: the volume.
        as_2d: make a 2D image (the volume must have one slice); a slice outside the x-y plane then gets the 2D
            identity direction (for formats that store none). Defaults to: the source was a 2D image lying in the
            x-y plane.
    """
    if as_2d is None:
        as_2d = volume.source.is_2d and volume.shape[0] == 1 and in_plane_direction(volume.direction) is not None
    array = _sitk_array(volume)
    if array.dtype == np.float16:
        array = array.astype(np.float32)  # ITK has no half floats; float32 holds every float16 value exactly
    is_vector = array.ndim == 4
    if as_2d:
        image = sitk.GetImageFromArray(array[0], isVector=is_vector)
        image.SetSpacing(volume.spacing[:2])
        image.SetOrigin(volume.origin[:2])
        direction = in_plane_direction(volume.direction)
        if direction is not None:
            image.SetDirection(direction)
    else:
        image = sitk.GetImageFromArray(array, isVector=is_vector)
        image.SetSpacing(volume.spacing)
        image.SetOrigin(volume.origin)
        image.SetDirection(tuple(volume.direction.ravel()))
    return image


def _write_with_sitk(volume: Volume, plan: PlannedOutput, compress: bool = True) -> None:
    fmt, path = plan.format, plan.files[0]
    # a single slice outside the x-y plane (a sagittal MR slice) stays a one-slice 3D image where the format keeps
    # geometry (volume_to_sitk's default): its 2x2 in-plane direction would be singular
    image = volume_to_sitk(volume, as_2d=True if fmt in IMAGE_2D_FORMATS else None)
    use_compression = compress and fmt in ("nrrd", "metaimage", "tiff")
    if len(plan.files) > 1:
        # A detached header names its data file: write both under their final names in a staging folder, then
        # move the data file first and the header last, so the header never points at a temporary name.
        with staging_folder(path) as folder:
            sitk.WriteImage(image, str(folder / path.name), useCompression=use_compression)
            if fmt == "metaimage":
                _add_metaimage_modality(folder / path.name, volume)
            written = {p.name for p in folder.iterdir()}
            expected = {p.name for p in plan.files}
            if written != expected:
                raise OutputError(f"{path}: the writer produced {sorted(written)}, expected {sorted(expected)}")
            commit_files([(folder / p.name, p) for p in plan.files[1:]] + [(folder / path.name, path)])
        return
    suffix = "".join(Path(path.name).suffixes[-1:])
    with atomic_file(path, suffix=suffix) as temporary:
        sitk.WriteImage(image, str(temporary), useCompression=use_compression)
        if fmt == "metaimage":
            _add_metaimage_modality(temporary, volume)


#: MetaImage's modality values for DICOM Modality values (MetaIO knows these four besides OTHER / UNKNOWN)
_METAIMAGE_MODALITIES = {"CT": "MET_MOD_CT", "MR": "MET_MOD_MR", "US": "MET_MOD_US", "NM": "MET_MOD_NM"}


def _add_metaimage_modality(header: Path, volume: Volume) -> None:
    """Write the volume's modality (a MetaImage source's ``Modality`` field, or its DICOM Modality tag) into a
    MetaImage header that SimpleITK wrote without it, so ``auto`` picks the same model for the output. The field
    goes before ``ElementDataFile``, the header's last line; attached data is copied after it unchanged."""
    value = volume.metadata.get("Modality", "").strip().upper() if volume.source.format == "metaimage" else ""
    if not value.startswith("MET_MOD_"):
        value = _METAIMAGE_MODALITIES.get(volume.metadata.get("0008|0060", "").strip().upper(), "")
    if not value:
        return
    patched = header.with_name(header.name + ".modality")
    try:
        with open(header, "rb") as source, open(patched, "wb") as target:
            head = source.read(1 << 16)
            end = head.find(b"ElementDataFile")
            if end < 0 or b"\nModality" in head[:end]:
                return
            target.write(head[:end] + f"Modality = {value}\n".encode() + head[end:])
            shutil.copyfileobj(source, target, 1 << 22)
        os.replace(patched, header)
    finally:
        patched.unlink(missing_ok=True)


def _write_tiff(volume: Volume, path: Path, compress: bool) -> None:
    """Write TIFF in the source's layout when it was one (ImageJ, OME; :mod:`.tiff`), else a plain stack."""
    metadata = volume.metadata if volume.source.format == "tiff" else {}
    is_2d = volume.source.is_2d and volume.shape[0] == 1
    with atomic_file(path, suffix=path.suffix) as temporary:
        write_tiff(_sitk_array(volume), volume.spacing, metadata, is_2d, temporary, compress, volume.source.path)


def _write_npy(volume: Volume, path: Path) -> None:
    """Write ``.npy``, which holds the pixels only: geometry other than 1 mm voxels at the origin is said lost."""
    spacing, origin, direction = volume.spacing, volume.origin, volume.direction
    unit_grid = np.allclose(spacing, 1.0) and np.allclose(origin, 0.0) and np.allclose(direction, np.eye(3))
    if not unit_grid and volume.source.format != "npy":
        logger.warning(
            "%s: a .npy file keeps the pixels only, not the voxel size %s mm, position or orientation; write .nii.gz "
            "or .nrrd to keep them",
            path,
            "x".join(f"{s:g}" for s in volume.spacing),
        )
    with atomic_file(path, suffix=".npy") as temporary:
        write_npy(_sitk_array(volume), volume.source.is_2d, temporary)


def _write_nifti(volume: Volume, path: Path, keep_storage: bool = True) -> None:
    """Write NIfTI; from a NIfTI source with the same geometry, its header and exact affine, and with
    ``keep_storage`` its scaled-integer storage (:func:`~.nifti.stored_like_source`) for float values."""
    import nibabel as nib

    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.dtype == np.float16:
        array = array.astype(np.float32)  # NIfTI has no half floats; float32 holds every float16 value exactly
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    data = np.transpose(array, (2, 1, 0))  # (z, y, x) -> nibabel (x, y, z)
    affine = volume.ijk_to_ras()
    header, source = None, None
    if volume.source.format == "nifti" and volume.source.path and Path(volume.source.path).is_file():
        try:
            source = nib.load(volume.source.path)
            if np.allclose(source.affine, affine, atol=1e-5):
                affine = source.affine  # keep the source's exact float values
                header = source.header.copy()
        except Exception:  # noqa: BLE001 - the source changed since it was read: write our own header
            header, source = None, None
    if volume.source.is_2d and data.shape[2] == 1:
        data = data[:, :, 0]  # a 2D source stays 2D
    # values in physical units, stored unscaled, or as the source's scaled integers (keep_storage)
    data, dtype, scaling = stored_like_source(data, source if keep_storage and header is not None else None)
    image = nib.Nifti1Image(np.ascontiguousarray(data), affine, header, dtype=dtype)
    if scaling is not None:
        image.header.set_slope_inter(*scaling)
    image.set_qform(affine, code=int(header["qform_code"]) if header is not None and header["qform_code"] > 0 else 1)
    image.set_sform(affine, code=int(header["sform_code"]) if header is not None and header["sform_code"] > 0 else 1)
    warning = sheared_grid_warning(
        image,
        str(path),
        "write .nrrd or .mha for them, or resample it (io.tilt.correct_tilt; the CLI's --correct-tilt)",
    )
    if warning:
        logger.warning("%s", warning)
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    with atomic_file(path, suffix=suffix) as temporary:
        nib.save(image, str(temporary))


def _write_mgh(volume: Volume, path: Path) -> None:
    """Write FreeSurfer MGH / MGZ (by the suffix); from an MGH source, its header (sequence timing: TR, TE, TI,
    flip angle) is kept."""
    import nibabel as nib

    array = volume.array.astype(np.uint8) if volume.array.dtype == np.bool_ else volume.array
    header = None
    if volume.source.format == "mgh" and volume.source.path and Path(volume.source.path).is_file():
        try:
            header = nib.load(volume.source.path).header
        except Exception:  # noqa: BLE001 - the source changed since it was read: write a plain header
            header = None
    save_mgh(np.transpose(array, (2, 1, 0)), volume.ijk_to_ras(), header, path)


def _write_dicom_series(volume: Volume, plan: PlannedOutput, description_suffix: str, derivation: str) -> None:
    folder = plan.folder
    with staging_folder(folder) as staging:
        written = write_derived_dicom(volume.array, volume.source.dicom_files, staging, description_suffix, derivation)
        if not folder.exists():
            os.rename(staging, folder)  # a new series appears whole
            return
        # an existing folder is merged into: only the files this series writes are replaced
        commit_files([(file, folder / file.name) for file in written], folder=folder)


def _write_dicom_file(volume: Volume, plan: PlannedOutput, description_suffix: str, derivation: str) -> None:
    path = plan.files[0]
    with staging_folder(path) as staging:
        written = write_derived_dicom(volume.array, volume.source.dicom_files, staging, description_suffix, derivation)
        commit_files([(written[0], path)])
