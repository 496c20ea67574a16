"""4D images: frames of one 3D geometry along a 4th axis (time, DWI gradient directions, Slicer sequences).

A :class:`VolumeSeries` holds ``(T, Z, Y, X)`` voxels (``(T, Z, Y, X, C)`` for colour frames) with one geometry;
``frame(t)`` is an ordinary :class:`~meddenoiselib.io.Volume`. :func:`read_series` reads 4D NIfTI (``(X, Y, Z, T)``),
MGH / MGZ and Philips PAR/REC files (their results written as NIfTI), and NRRD files with a frame axis anywhere (see
:mod:`.nrrd`); :func:`write_series` writes the result back in the
input's layout: the NIfTI header (affine, ``pixdim[4]``, units) or the NRRD axis order, kinds, labels and
key/values of the file it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, MedDenoiseError, OutputError
from ..transforms.missing import missing_values
from .atomic import atomic_file
from .formats import detect_format
from .limits import Encoding, check_claimed_size
from .modality import diffusion_table
from .mosaic import mosaic_direction, mosaic_origin, pack_mosaic, unpack_mosaic
from .nibabel_formats import load_nibabel, nibabel_frames, nibabel_voxels, probe_nibabel, save_mgh
from .nifti import stored_like_source
from .nrrd import NrrdLayout, is_nrrd_series, read_nrrd_series, write_nrrd_series
from .outputs import ImageSpec, PlannedOutput, plan_output, refuse_read_only
from .tiff import TiffLayout, probe_tiff, read_tiff, write_tiff
from .volume import SourceInfo, Volume

__all__ = [
    "VolumeSeries",
    "frames_description",
    "frame_interval_seconds",
    "frames_of_slices",
    "is_series_file",
    "probe_series",
    "read_series",
    "series_of_repeated_frames",
    "stacked_frames",
    "write_series",
]

_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class VolumeSeries:
    """Frames of one geometry along a 4th axis.

    Attributes:
        array: ``(T, Z, Y, X)`` or ``(T, Z, Y, X, C)`` voxels in physical units.
        spacing, origin, direction: the frames' geometry, as in :class:`~meddenoiselib.io.Volume` (LPS).
        frame_label: what the 4th axis is (``"time"``, ``"gradient"``, ``"frame"``).
        frame_values: the value of each frame (times, b-values, ...) as text, or empty.
        source: the file the series came from (``format`` ``"nifti"``, ``"nrrd"``, ``"mgh"``, ``"parrec"``, ``"tiff"``
            or ``"memory"``).
        layout: what is needed to write the series back in its file's layout (a NIfTI header, a NRRD layout).
        metadata: header values every frame shares (e.g. a DICOM series' Modality ``"0008|0060"``), given to
            :meth:`frame`'s volumes.
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    frame_label: str = "frame"
    frame_values: tuple[str, ...] = ()
    source: SourceInfo = field(default_factory=SourceInfo)
    layout: Any = None
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim not in (4, 5):
            raise ValueError(f"`array` must have shape (T, Z, Y, X) or (T, Z, Y, X, C), got {self.array.shape}.")
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "direction", np.asarray(self.direction, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "frame_values", tuple(str(v) for v in self.frame_values))

    @property
    def num_frames(self) -> int:
        return int(self.array.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(Z, Y, X)`` of every frame."""
        return tuple(self.array.shape[1:4])  # type: ignore[return-value]

    @property
    def num_components(self) -> int:
        return 1 if self.array.ndim == 4 else int(self.array.shape[4])

    def frame(self, index: int) -> Volume:
        """Frame ``index`` as a :class:`~meddenoiselib.io.Volume` with the series' geometry."""
        return Volume(
            self.array[index],
            self.spacing,
            self.origin,
            self.direction,
            metadata=dict(self.metadata),
            source=SourceInfo(path=self.source.path, format="memory"),
        )

    def with_array(self, array: np.ndarray) -> VolumeSeries:
        """The same series (geometry, frames, layout) with new voxels of the same shape."""
        if tuple(array.shape[:4]) != tuple(self.array.shape[:4]):
            raise ValueError(f"new array shape {array.shape} does not match the series shape {self.array.shape}.")
        return replace(self, array=array)

    def ijk_to_ras(self) -> np.ndarray:
        """The frames' ``4 x 4`` IJK-to-RAS matrix."""
        return self.frame(0).ijk_to_ras()

    @staticmethod
    def from_ijk_to_ras(
        array: np.ndarray, ijk_to_ras: np.ndarray, frame_label: str = "frame", frame_values: tuple[str, ...] = ()
    ) -> VolumeSeries:
        """A series from ``(T, k, j, i[, c])`` voxels and an IJK-to-RAS matrix (as Slicer sequence items store it)."""
        geometry = Volume.from_ijk_to_ras(np.zeros((1, 1, 1)), ijk_to_ras)
        return VolumeSeries(array, geometry.spacing, geometry.origin, geometry.direction, frame_label, frame_values)


def _holds_frames(volume: Volume) -> bool:
    """Whether ``volume``'s slices are the frames of a DICOM series (:func:`series_of_repeated_frames`)."""
    source = volume.source
    if source.mosaic is not None:
        return volume.array.ndim == 3 and volume.array.shape[0] == source.repeated_frames
    return source.repeated_frames > 1 and volume.array.shape[0] % source.repeated_frames == 0


def frames_of_slices(volume: Volume, array: np.ndarray) -> np.ndarray:
    """A ``(Z, Y, X[, C])`` array on ``volume``'s slices (its voxels, a mask) as the ``(F, P, Y', X'[, C])`` frames
    :func:`series_of_repeated_frames` makes of them: each position's consecutive images, or each mosaic's tiles."""
    source = volume.source
    if source.mosaic is not None:
        return unpack_mosaic(array, source.mosaic)
    if source.frame_order:
        array = array[list(source.frame_order)]
    frames = source.repeated_frames
    return np.ascontiguousarray(array.reshape(-1, frames, *array.shape[1:]).swapaxes(0, 1))


def series_of_repeated_frames(volume: Volume) -> VolumeSeries | None:
    """A volume whose slices are the frames of a DICOM series, as the series of those frames, ``(F, P, Y, X[, C])``
    on one frame's grid, labelled as the headers say (``"gradient"``, ``"time"``, ``"echo"``, ``"repeat"``), with
    the volume's header values; None for any other volume. Three such volumes:

    - a series holding the same number ``F`` of images at every slice position (:attr:`SourceInfo.repeated_frames`:
      a classic DWI, fMRI, multi-echo or perfusion series): its slices ``(P * F, Y, X[, C])``, each position's frames
      consecutive;
    - Siemens mosaics (:attr:`SourceInfo.mosaic`): its ``F`` slices are mosaics, each frame's ``P`` slices tiled;
    - multi-frame files with several frames at every position (:attr:`SourceInfo.frame_order`): its slices are the
      files' frames, in the order the files hold them.

    :func:`stacked_frames` gives a result back in the volume's slices."""
    if not _holds_frames(volume):
        return None
    source = volume.source
    array = frames_of_slices(volume, volume.array)
    positions = array.shape[1]
    direction = volume.direction
    if source.mosaic is not None:
        # mosaics all lie at one position, so the reader's slice spacing already is SpacingBetweenSlices (else
        # SliceThickness, else 1 mm): the tiles' step
        spacing = volume.spacing
        origin = mosaic_origin(volume.origin, volume.direction, volume.spacing, source.mosaic)
        if source.mosaic.slice_normal is not None:  # the scanner's slice order (else the working grid's)
            direction = mosaic_direction(volume.direction, source.mosaic)
    else:
        count = volume.array.shape[0]
        # the volume's slice step is the mean over all its slices; the positions are (P - 1) steps apart
        step = volume.spacing[2] * (count - 1) / (positions - 1) if positions > 1 else volume.spacing[2]
        spacing, origin = (volume.spacing[0], volume.spacing[1], step), volume.origin
    return VolumeSeries(
        array,
        spacing,
        origin,
        direction,
        source.repeated_frame_label or "repeat",
        source=source,
        metadata=dict(volume.metadata),
    )


def frames_description(volume: Volume, series: VolumeSeries) -> str:
    """What :func:`series_of_repeated_frames` made of ``volume``, in words for logs, reports and ``info``."""
    count, (slices, rows, columns) = series.num_frames, series.shape[:3]
    mosaic = volume.source.mosaic
    if mosaic is not None:
        how = f"Siemens mosaics of {slices} slices of {columns} x {rows} in {mosaic.grid} x {mosaic.grid} tiles"
    else:
        how = f"{count} images at each of {slices} slice positions"
    return f"{count} frames ({series.frame_label}): {how}"


def stacked_frames(frames: np.ndarray, volume: Volume) -> np.ndarray:
    """``(F, P, ...)`` frames (of :func:`series_of_repeated_frames`, or a result of the same shape) -> an array on
    ``volume``'s slices: each position's frames consecutive, or the frames tiled back into their mosaics (the empty
    tiles as ``volume`` holds them, the dtype of ``frames``)."""
    frames = np.asarray(frames)
    mosaic = volume.source.mosaic
    if mosaic is not None:
        return pack_mosaic(frames, mosaic, volume.array.astype(frames.dtype, copy=False))
    slices = np.ascontiguousarray(frames.swapaxes(0, 1).reshape(-1, *frames.shape[2:]))
    order = volume.source.frame_order
    if order:  # back to the files' frame order
        in_files = np.empty_like(slices)
        in_files[list(order)] = slices
        return in_files
    return slices


def is_series_file(path: str | Path) -> bool:
    """Whether ``path`` is a 4D NIfTI or NRRD with more than one frame, or a TIFF time series of volumes (ImageJ or
    OME ``T`` and ``Z`` both longer than 1) (cheap: reads the header only)."""
    path = Path(path)
    if not path.is_file():
        return False
    fmt = detect_format(path)
    if fmt == "nrrd":
        return is_nrrd_series(path)
    if fmt == "tiff":
        try:
            probe_tiff(path, series=True)
        except MedDenoiseError:
            return False  # not a series (read_volume reports a damaged file)
        return True
    if fmt == "nifti":
        try:
            import nibabel as nib

            shape = nib.load(str(path)).header.get_data_shape()
        except Exception:  # noqa: BLE001 - not readable: let read_volume report it
            return False
        return len(shape) >= 4 and shape[3] > 1 and all(s == 1 for s in shape[4:])
    if fmt in ("mgh", "parrec"):
        try:
            return nibabel_frames(load_nibabel(path, fmt), fmt, str(path)) > 1
        except MedDenoiseError:
            return False  # not readable, or not a series: read_volume reports it
    return False


def read_series(path: str | Path) -> VolumeSeries:
    """Read a 4D NIfTI or NRRD file, or a TIFF time series of volumes.

    Raises:
        MedDenoiseError: the file is missing, not 4D, unreadable, or holds infinite voxels or no data (all NaN).
    """
    path = Path(path)
    if not path.is_file():
        raise MedDenoiseError(f"{path}: no such file")
    fmt = detect_format(path)
    if fmt == "nifti":
        series = _read_nifti_series(path)
    elif fmt in ("mgh", "parrec"):
        series = _read_nibabel_series(path, fmt)
    elif fmt == "nrrd":
        try:
            array, spacing, origin, direction, layout = read_nrrd_series(path)
        except OSError as exc:
            raise MedDenoiseError(f"{path}: cannot read ({exc})") from exc
        label = _nrrd_frame_label(layout)
        values = dict(layout.key_values).get(f"axis {layout.frame_axis} index values", "").split()
        series = VolumeSeries(
            array, spacing, origin, direction, label, tuple(values), SourceInfo(path=str(path), format="nrrd"), layout
        )
    elif fmt == "tiff":
        array, spacing, metadata, _ = read_tiff(path, series=True)
        layout = TiffLayout.from_metadata(metadata)
        interval = layout.frame_interval()
        times = tuple(f"{index * interval:g}" for index in range(array.shape[0])) if interval else ()
        source = SourceInfo(path=str(path), format="tiff")
        series = VolumeSeries(array, spacing, frame_label="time", frame_values=times, source=source, layout=layout)
    else:
        raise MedDenoiseError(
            f"{path}: 4D images are read from NIfTI (.nii, .nii.gz), NRRD (.nrrd), MGH (.mgz), PAR/REC or ImageJ / "
            "OME TIFF files"
        )
    if series.array.dtype.kind == "f":
        missing_values(series.array, str(path))  # NaN is no data, denoised around; infinite values are refused
    if series.array.dtype.kind not in "iuf":
        raise MedDenoiseError(f"{path}: unsupported pixel type {series.array.dtype}")
    return series


def _nrrd_frame_label(layout: NrrdLayout) -> str:
    labels = [w.strip('"') for w in (layout.field("labels") or "").split('" "')]
    label = labels[layout.frame_axis].strip('"') if len(labels) == len(layout.sizes) else ""
    if not label and any(key.startswith("DWMRI_gradient_") for key, _ in layout.key_values):
        label = "gradient"
    return label or "frame"


def _check_nifti_series_size(path: Path, image) -> None:
    """The bounded-read check for a 4D NIfTI (the same rule as :func:`~.probe.probe_volume`'s)."""
    header = image.header
    disk = np.dtype(header.get_data_dtype())
    size = path.stat().st_size
    compressed = path.name.lower().endswith(".gz")
    check_claimed_size(
        str(path),
        tuple(int(n) for n in header.get_data_shape()),
        disk,
        data_bytes=size if compressed else max(size - int(header.get_data_offset()), 0),
        encoding=Encoding.DEFLATE if compressed else Encoding.RAW,
    )


def _read_nifti_series(path: Path) -> VolumeSeries:
    import nibabel as nib

    try:
        image = nib.load(str(path))
    except Exception as exc:  # noqa: BLE001 - nibabel raises several types for corrupt files
        raise InputError(f"{path}: cannot read as NIfTI ({exc})") from exc
    _check_nifti_series_size(path, image)
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # noqa: BLE001 - nibabel raises several types for corrupt files
        raise MedDenoiseError(f"{path}: cannot read as NIfTI ({exc})") from exc
    if diffusion_table(path) is not None:  # frames are diffusion gradients (b-values and directions), not times
        label, values = "gradient", ()
    else:
        step = float(image.header["pixdim"][4])
        label = "time"
        values = tuple(f"{t * step:g}" for t in range(data.shape[3])) if step > 0 and data.ndim >= 4 else ()
    return _series_from_nibabel(data, image.affine, path, "nifti", label, values, image.header.copy())


def _read_nibabel_series(path: Path, fmt: str) -> VolumeSeries:
    """A 4D MGH / MGZ (frames) or PAR/REC (dynamics, echoes, diffusion directions...) file."""
    probe_nibabel(path, fmt, series=True)  # the bounded-read check
    image = load_nibabel(path, fmt)
    data = nibabel_voxels(image, fmt, str(path))
    label, values = "frame", ()
    if fmt == "parrec":
        # what varies from volume to volume ("dynamic scan number", "echo number", ...), when one label does
        varying = {k: v for k, v in image.header.get_volume_labels().items() if len(set(np.asarray(v).tolist())) > 1}
        if len(varying) == 1:
            label, numbers = next(iter(varying.items()))
            values = tuple(f"{value:g}" for value in np.asarray(numbers, dtype=np.float64))
    layout = image.header.copy() if fmt == "mgh" else None
    return _series_from_nibabel(data, image.affine, path, fmt, label, values, layout)


def _series_from_nibabel(data, affine, path: Path, fmt: str, label: str, values: tuple, layout) -> VolumeSeries:
    """A series from nibabel's ``(x, y, z, t)`` voxels and voxel-to-RAS affine (frames ``(t, z, y, x)``, LPS)."""
    if data.ndim > 4 and all(s == 1 for s in data.shape[4:]):
        data = data.reshape(data.shape[:4])
    if data.ndim != 4:
        raise MedDenoiseError(f"{path}: a series needs a 4D image (x, y, z, frames), got shape {data.shape}")
    affine = np.asarray(affine, dtype=np.float64)
    lps = _LPS_FROM_RAS @ affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if np.any(spacing == 0):
        raise MedDenoiseError(f"{path}: the affine has a zero-length axis")
    array = np.ascontiguousarray(np.transpose(data, (3, 2, 1, 0)))
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return VolumeSeries(
        array,
        tuple(spacing),
        tuple(_LPS_FROM_RAS @ affine[:3, 3]),
        lps / spacing,
        label,
        values,
        SourceInfo(path=str(path), format=fmt),
        layout,
    )


def write_series(
    series: VolumeSeries,
    path: str | Path,
    overwrite: bool = False,
    inputs: tuple[str | Path, ...] = (),
    compress: bool = True,
    role: str = "image",
    gradients: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Write a series atomically as NIfTI (``.nii``, ``.nii.gz``) or NRRD (``.nrrd``), in its source's layout.

    ``gradients`` (``(F,)`` b-values, ``(F, 3)`` unit LPS directions; of a DICOM diffusion series, which has no
    layout of its own) make a NRRD the diffusion-weighted NRRD 3D Slicer reads as a DWI; other formats ignore them.

    A series read from a NIfTI file keeps its header (``pixdim[4]``, units, intent) and, when the geometry is
    unchanged, its affine bit for bit, and an ``"image"`` (not a residual or noise map, ``role``) its scaled-integer
    storage (:func:`~.nifti.stored_like_source`); one read from a NRRD keeps its axis order, kinds, labels and
    key/values.

    Raises:
        MedDenoiseError: the output exists (without ``overwrite``), would overwrite an input, or its format cannot
            hold a series.
    """
    path = Path(path)
    sources = (Path(series.source.path),) if series.source.path else ()
    plan_series_output(path, series_spec(series), overwrite=overwrite, protected=(*inputs, *sources))
    fmt = detect_format(path)
    name = path.name.lower()
    if fmt == "nrrd" and name.endswith(".nrrd"):
        layout = series.layout if isinstance(series.layout, NrrdLayout) else None
        with atomic_file(path, suffix=".nrrd") as temporary:
            write_nrrd_series(
                temporary,
                series.array,
                series.spacing,
                series.origin,
                series.direction,
                layout,
                series.frame_label,
                series.frame_values,
                compress=compress,
                gradients=gradients if layout is None else None,
            )
    elif fmt == "nifti":
        _write_nifti_series(series, path, keep_storage=role == "image")
    elif fmt == "mgh":
        _write_mgh_series(series, path)
    elif fmt == "tiff":
        layout = series.layout if isinstance(series.layout, TiffLayout) else TiffLayout()
        array = series.array.astype(series.array.dtype.newbyteorder("="), copy=False)  # native byte order
        with atomic_file(path, suffix=path.suffix) as temporary:
            write_tiff(array, series.spacing, layout.metadata(), False, temporary, compress, series.source.path,
                       frames=True)  # fmt: skip
    else:
        raise MedDenoiseError(f"{path}: a 4D series is written as .nii, .nii.gz, .nrrd, .mgz or .tif")
    return path


def _write_nifti_series(series: VolumeSeries, path: Path, keep_storage: bool = True) -> None:
    import nibabel as nib

    if series.num_components != 1:
        raise MedDenoiseError(f"{path}: multi-component frames are written as .nrrd, not NIfTI")
    array = series.array
    affine = series.ijk_to_ras()
    header = series.layout.copy() if isinstance(series.layout, nib.Nifti1Header) else None
    source = None
    if header is not None and series.source.path and Path(series.source.path).is_file():
        source = nib.load(series.source.path)
        if np.allclose(source.affine, affine, atol=1e-5):
            affine = source.affine  # keep the source's exact float values
    data = np.ascontiguousarray(np.transpose(array, (3, 2, 1, 0)))
    # values in physical units, stored unscaled, or as the source's scaled integers (keep_storage)
    data, dtype, scaling = stored_like_source(data, source if keep_storage else None)
    image = nib.Nifti1Image(data, affine, header, dtype=dtype)
    if scaling is not None:
        image.header.set_slope_inter(*scaling)
    qform = int(header["qform_code"]) if header is not None and header["qform_code"] > 0 else 1
    sform = int(header["sform_code"]) if header is not None and header["sform_code"] > 0 else 1
    image.set_qform(affine, code=qform)
    image.set_sform(affine, code=sform)
    if header is None:
        _set_frame_interval(image.header, series)
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    with atomic_file(path, suffix=suffix) as temporary:
        nib.save(image, str(temporary))


def _set_frame_interval(header, series: VolumeSeries) -> None:
    """Give a new NIfTI header of a time series from DICOM (an fMRI, perfusion or DCE run) the interval between its
    volumes as ``pixdim[4]`` in seconds, as dcm2niix writes it and FSL, AFNI and fMRIPrep read it
    (:func:`frame_interval_seconds`). Other series keep ``pixdim[4]`` 1 without a time unit."""
    seconds = frame_interval_seconds(series)
    if seconds is None:
        return
    zooms = header.get_zooms()
    header.set_zooms((*zooms[:3], seconds, *zooms[4:]))
    header.set_xyzt_units("mm", "sec")


def frame_interval_seconds(series: VolumeSeries) -> float | None:
    """The interval between a time series' volumes in seconds: a NIfTI's ``pixdim[4]`` in its time unit (s, ms or
    us), else the DICOM header's RepetitionTime (``0018|0080``, ms); None for frames that are not time points, a
    NIfTI without a time unit, or a header without a positive RepetitionTime."""
    import nibabel as nib

    if series.frame_label != "time":
        return None
    if isinstance(series.layout, nib.Nifti1Header):
        step = float(series.layout["pixdim"][4])
        per_second = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}.get(series.layout.get_xyzt_units()[1])
        return step * per_second if per_second and np.isfinite(step) and step > 0 else None
    try:
        repetition_ms = float(series.metadata.get("0018|0080", "").split("\\")[0])
    except ValueError:
        return None
    if not np.isfinite(repetition_ms) or repetition_ms <= 0:
        return None
    return repetition_ms / 1000.0


def _write_mgh_series(series: VolumeSeries, path: Path) -> None:
    """Write a 4D MGH / MGZ; from an MGH source, its header (TR, TE, TI, flip angle) is kept."""
    import nibabel as nib

    if series.num_components != 1:
        raise MedDenoiseError(f"{path}: multi-component frames are written as .nrrd, not MGH")
    header = series.layout if isinstance(series.layout, nib.freesurfer.mghformat.MGHHeader) else None
    save_mgh(np.transpose(series.array, (3, 2, 1, 0)), series.ijk_to_ras(), header, path)


def series_spec(series: VolumeSeries, dtype: np.dtype | str | None = None) -> ImageSpec:
    """What writing ``series`` (or a ``dtype`` version of it, e.g. a float32 residual) puts in a file."""
    return ImageSpec(
        shape=series.shape,
        components=series.num_components,
        dtype=np.dtype(dtype if dtype is not None else series.array.dtype),
        source_format=series.source.format,
    )


def plan_series_output(
    path: str | Path, spec: ImageSpec, role: str = "image", overwrite: bool = False, protected=(), others=()
) -> PlannedOutput:
    """:func:`~.outputs.plan_output` for a 4D series: only NIfTI (``.nii``, ``.nii.gz``), ``.nrrd`` and TIFF (an
    ImageJ or OME hyperstack) hold one."""
    path = Path(path)
    refuse_read_only(str(path), detect_format(path))
    if detect_format(path) not in ("nifti", "nrrd", "mgh", "tiff") or path.name.lower().endswith(".nhdr"):
        raise OutputError(f"{path}: a 4D series is written as .nii, .nii.gz, .nrrd, .mgz or .tif")
    return plan_output(path, spec, role=role, overwrite=overwrite, protected=protected, others=others)


def probe_series(path: str | Path, max_bytes: int | None = None):
    """Describe a 4D NIfTI/NRRD from its header, with the bounded-read check (see :func:`~.probe.probe_volume`).

    Returns:
        A :class:`~.probe.VolumeHeader` whose ``shape`` is one frame's ``(Z, Y, X)`` and ``frames`` the count.
    """
    from .nrrd import _DTYPE_OF, _layout, read_nrrd_header
    from .probe import VolumeHeader, text_header_data_files

    path = Path(path)
    fmt = detect_format(path)
    try:
        if fmt == "nifti":
            import nibabel as nib

            image = nib.load(str(path))
            _check_nifti_series_size(path, image)
            shape = tuple(int(n) for n in image.header.get_data_shape())
            dtype = np.asarray(image.dataobj[(0,) * len(shape)]).dtype
            frames, components, spatial = shape[3], 1, shape[:3]
            files = (str(path),)
        elif fmt == "nrrd":
            fields, key_values, comments, offset = read_nrrd_header(path)
            layout = _layout(path, fields, key_values, comments)
            dtype = _DTYPE_OF.get((layout.field("type") or "").lower())
            if dtype is None:
                raise InputError(f"{path}: NRRD type {layout.field('type')!r} is not supported")
            frames = layout.sizes[layout.frame_axis]
            components = 1 if layout.component_axis is None else layout.sizes[layout.component_axis]
            spatial = tuple(layout.sizes[a] for a in layout.spatial_axes)
            files = (str(path), *text_header_data_files(path))
        elif fmt in ("mgh", "parrec"):
            header = probe_nibabel(path, fmt, max_bytes, series=True)
            frames, components, spatial = header.frames, 1, tuple(reversed(header.shape))
            dtype, files = header.dtype, header.files
        elif fmt == "tiff":
            plan, dtype = probe_tiff(path, series=True)
            frames, components, spatial = plan.frames, plan.components, tuple(reversed(plan.shape))
            files = (str(path),)
        else:
            raise InputError(
                f"{path}: 4D images are read from NIfTI (.nii, .nii.gz), NRRD (.nrrd), MGH (.mgz), PAR/REC or TIFF "
                "files"
            )
    except MedDenoiseError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed headers surface as many types
        raise InputError(f"{path}: cannot read the header ({exc})") from exc
    full = (frames, *spatial) + ((components,) if components > 1 else ())
    nbytes = check_claimed_size(str(path), full, np.dtype(dtype), max_bytes=max_bytes)
    return VolumeHeader(
        path=str(path),
        format=fmt,
        shape=(spatial[2], spatial[1], spatial[0]),
        components=components,
        dtype=np.dtype(dtype),
        is_2d=False,
        files=files,
        nbytes=nbytes,
        frames=int(frames),
    )
