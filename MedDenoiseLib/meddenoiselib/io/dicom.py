"""DICOM series discovery (GDCM through SimpleITK) and assembly of series and multi-frame files into volumes.

GDCM finds the series in a folder; each file is then parsed once with pydicom (:mod:`.dicom_frames`), the slices
are ordered by their position along the image normal, and the stack's grid is checked (:mod:`.geometry`): slices in
several orientations or with partly missing positions are refused (they are not one volume), uneven steps are
recorded as a grid problem so that formats with a single affine refuse the volume while a derived DICOM series,
which keeps every slice's own position, stays possible.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError, OptionError
from .dicom_diffusion import PRIVATE_B_VALUE_KEY
from .dicom_frames import DicomImage, decode_physical, read_dicom_image
from .discovery import check_links
from .geometry import STEP_ABSOLUTE_TOLERANCE_MM, StackGeometry, orientation_groups, stack_geometry
from .itk_messages import itk_messages_logged
from .limits import check_claimed_size
from .modality import dicom_signal_component
from .mosaic import MosaicLayout

__all__ = [
    "dicom_listings_kept",
    "DicomSeries",
    "DicomStack",
    "dicom_stack_of_file",
    "dicom_stack_of_series",
    "header_value",
    "list_dicom_series",
    "read_dicom_stack",
    "select_dicom_series",
    "series_file_names",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series in a folder: its UID and its files sorted by slice position (GDCM order)."""

    uid: str
    files: tuple[str, ...]
    modality: str = ""
    description: str = ""
    number: str = ""  # SeriesNumber, as the scanner counted the series of a study

    def summary(self) -> str:
        """A one-line description for listings and error messages."""
        desc = f" '{self.description}'" if self.description else ""
        return f"{self.uid} ({len(self.files)} files, {self.modality or '?'}{desc})"

    def file_name(self) -> str:
        """A file-system-safe name for this series' output: ``<SeriesNumber>_<SeriesDescription>`` (e.g.
        ``3_HELICAL_CHEST``), or ``series_<last part of the UID>`` when the files carry neither."""
        words = "_".join(part for part in (self.number.strip(), self.description.strip()) if part)
        safe = re.sub(r"[^A-Za-z0-9+-]+", "_", words).strip("_-")
        return safe or f"series_{self.uid.rsplit('.', 1)[-1]}"


def series_file_names(series: list[DicomSeries]) -> list[str]:
    """:meth:`DicomSeries.file_name` of each series, made unique by the end of its UID where two are alike (a
    study's series without numbers or descriptions, two reconstructions of one description)."""
    names = [s.file_name() for s in series]
    return [
        f"{name}_{s.uid.rsplit('.', 1)[-1]}" if names.count(name) > 1 else name
        for name, s in zip(names, series, strict=True)
    ]


def header_value(path: str | Path, keyword: str) -> str:
    """One element of a DICOM file's header by keyword (``"Modality"``), the pixels not read; ``""`` when the file has
    none or cannot be read (best effort: reading the image names the problem)."""
    return header_values(path, (keyword,))[0]


def header_values(path: str | Path, keywords: tuple[str, ...]) -> tuple[str, ...]:
    """:func:`header_value` of several keywords, the file read once."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(keywords))
        return tuple(str(getattr(ds, keyword, "") or "") for keyword in keywords)
    except Exception:  # noqa: BLE001 - best effort; whoever reads the image reports what is wrong with it
        return ("",) * len(keywords)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # SimpleITK messages start with a file:line location; the useful part is usually the last line.
    useful = [line.strip() for line in text if line.strip()]
    return useful[-1] if useful else type(exc).__name__


#: the listings of one run (:func:`dicom_listings_kept`), by folder and its modification time; None: not kept
_LISTINGS: ContextVar[dict[tuple[str, int], tuple[DicomSeries, ...]] | None] = ContextVar("listings", default=None)


@contextmanager
def dicom_listings_kept() -> Iterator[None]:
    """Within the block, :func:`list_dicom_series` scans each folder once.

    GDCM reads every file's header on each scan, and once more per series for its file names: a folder of N series
    is N + 1 scans, and a run that lists a folder, then probes and reads each of its series, made that ~2N times
    (``--all-series`` on 8 series of 64 CT slices, 512 files: 154 scans, 35 of the run's 61 s). A listing is kept
    for the folder's path and modification time, which changes when a file is added, removed or renamed; what the
    run itself writes into that folder (a DICOM output beside its input) therefore lists it again. The CLI keeps
    listings for each command it runs.
    """
    token = _LISTINGS.set({})
    try:
        yield
    finally:
        _LISTINGS.reset(token)


def list_dicom_series(folder: str | Path) -> list[DicomSeries]:
    """All DICOM series directly inside ``folder`` (not recursive), largest first.

    Raises:
        InputError: if the folder cannot be scanned, or holds a broken link (:func:`~.discovery.check_links`).
    """
    check_links(folder)
    kept = _LISTINGS.get()
    key = None
    if kept is not None:
        try:
            key = (os.path.realpath(folder), os.stat(folder).st_mtime_ns)
        except OSError:
            key = None
        if key in kept:
            return list(kept[key])
    series = _scan_dicom_series(str(folder))
    if key is not None:
        kept[key] = tuple(series)
    return series


def _scan_dicom_series(folder: str) -> list[DicomSeries]:
    """:func:`list_dicom_series` of a folder, scanned by GDCM."""
    try:
        with itk_messages_logged():
            uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
            listed = [(uid, tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid))) for uid in uids]
    except RuntimeError as exc:
        raise InputError(f"{folder}: cannot scan for DICOM series ({_first_line(exc)})") from exc
    series = []
    for uid, files in listed:
        if not files:
            continue
        modality, description, number = header_values(files[0], ("Modality", "SeriesDescription", "SeriesNumber"))
        series.append(DicomSeries(uid=uid, files=files, modality=modality, description=description, number=number))
    series.sort(key=lambda s: len(s.files), reverse=True)
    return series


def select_dicom_series(folder: str | Path, series_uid: str | None = None) -> DicomSeries:
    """The series to read from ``folder``: the one named by ``series_uid``, else the largest one.

    Raises:
        InputError: no series in the folder, or the two largest series have the same number of files
            (ambiguous; ``parameter`` is ``"series_uid"``); the message lists the series found.
        OptionError: the named UID is absent.
    """
    series = list_dicom_series(folder)
    if not series:
        raise InputError(f"{folder}: no DICOM images found in this folder")
    listing = "; ".join(s.summary() for s in series)
    if series_uid:
        for s in series:
            if s.uid == series_uid:
                return s
        raise OptionError(
            f"{folder}: no series with UID {series_uid}; the folder holds: {listing}", parameter="series_uid"
        )
    if len(series) > 1:
        if len(series[0].files) == len(series[1].files):
            raise InputError(
                f"{folder}: holds {len(series)} DICOM series and the largest is ambiguous; choose one by its UID: "
                f"{listing}",
                parameter="series_uid",
            )
        logger.warning("%s holds %d series; reading the largest, %s", folder, len(series), series[0].summary())
    return series[0]


def check_skipped_files(folder: Path, series_uid: str, listed: set[str]) -> None:
    """GDCM silently leaves out files it cannot decode (e.g. truncated); refuse a series with holes instead.

    Empty (0-byte) files cannot tell which series they belonged to; they are skipped with a warning naming them.
    """
    import pydicom

    listed_names = {Path(f).name for f in listed}
    for entry in sorted(folder.iterdir()):
        if not entry.is_file() or entry.name.startswith(".") or entry.name in listed_names:
            continue
        try:
            empty = entry.stat().st_size == 0
        except OSError:
            empty = False
        if empty:
            # an interrupted copy or download leaves such files; the series may be missing a slice
            logger.warning("%s: empty file (0 bytes) in the DICOM series folder; skipped", entry)
            continue
        try:
            header = pydicom.dcmread(str(entry), stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
        except Exception:  # noqa: BLE001 - not DICOM at all: a README, a thumbnail... ignore it
            continue
        if str(getattr(header, "SeriesInstanceUID", "")) == series_uid:
            raise InputError(
                f"{entry}: this file of series {series_uid} cannot be decoded (truncated or corrupt); "
                "the series would have a missing slice"
            )


# ----------------------------------------------------------------------------------------------- stacks
@dataclass(frozen=True)
class DicomStack:
    """A DICOM volume before its pixels are decoded: the files in slice order, the grid and the value type.

    Attributes:
        label: the file or folder named in messages.
        images: one header per file, in slice order (one entry for a multi-frame file).
        geometry: the grid (see :class:`~meddenoiselib.io.geometry.StackGeometry`; ``problem`` when irregular).
        shape: ``(Z, Y, X)`` or ``(Z, Y, X, 3)``.
        dtype: the dtype of the physical values.
        series_uid: SeriesInstanceUID.
        repeated_frames, repeated_frame_label: as :class:`~meddenoiselib.io.SourceInfo` has them.
        mosaic: as :class:`~meddenoiselib.io.SourceInfo` has it: the layout of Siemens mosaics, each image one
            frame (a single file, or a series of them at one position); else None.
        frame_order: as :class:`~meddenoiselib.io.SourceInfo` has it: for multi-frame files holding several frames
            at every position, the stack's frames in position order, each position's frames in file order.
    """

    label: str
    images: tuple[DicomImage, ...]
    geometry: StackGeometry
    shape: tuple[int, ...]
    dtype: np.dtype
    series_uid: str
    repeated_frames: int = 1
    repeated_frame_label: str = ""
    mosaic: MosaicLayout | None = None
    frame_order: tuple[int, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        """The source files in slice order."""
        return tuple(image.path for image in self.images)

    @property
    def metadata(self) -> dict[str, str]:
        """The first file's header values."""
        return self.images[0].metadata


def _single_orientation(label: str, orientations: np.ndarray | None, what: str) -> np.ndarray | None:
    if orientations is None:
        return None
    groups = orientation_groups(orientations)
    if max(groups) > 0:
        raise InputError(
            f"{label}: the {what} lie in {max(groups) + 1} different orientations (e.g. a localizer or a radial "
            "acquisition); they are not one volume"
        )
    return np.asarray(orientations, dtype=np.float64)[0]


def dicom_stack_of_file(image: DicomImage) -> DicomStack:
    """The stack of one DICOM file (a single image, or the frames of a multi-frame file in file order).

    Raises:
        InputError: an MR file whose frames hold different parts of the complex signal (magnitude and phase).
    """
    _check_one_signal_component(image.path, [image], image.series_uid)
    orientation = _single_orientation(image.path, image.orientations, "frames")
    positions = image.positions if image.positions is not None and len(image.positions) == image.frames else None
    first = image.positions[:1] if image.positions is not None else None
    geometry = stack_geometry(
        image.path,
        orientation,
        image.pixel_spacing,
        positions if positions is not None else first,
        image.frames,
        image.slice_spacing,
    )
    grouped = _frames_by_position(image.path, (image,), orientation)
    if grouped is None:
        return DicomStack(
            image.path,
            (image,),
            geometry,
            image.decoded_shape,
            image.physical_dtype,
            image.series_uid,
            mosaic=image.mosaic,
        )
    geometry, frames, order = grouped
    kind = _varying_frame_kind([image.frame_values]) or "repeat"
    shape, dtype = image.decoded_shape, image.physical_dtype
    return DicomStack(image.path, (image,), geometry, shape, dtype, image.series_uid, frames, kind, frame_order=order)


def _frames_by_position(label: str, images, orientation: np.ndarray | None):
    """For multi-frame files whose frames lie at the same positions several times each (an enhanced DWI, fMRI or
    multi-echo file; a series of such files, one volume each): ``(geometry, frames per position, order)``, the
    geometry that of the positions and ``order`` the stack's frame indices (the files' frames one after another)
    sorted by position, each position's frames in stack order; None where the frames are not such a grid."""
    if any(image.positions is None or len(image.positions) != image.frames for image in images):
        return None
    positions = np.concatenate([image.positions for image in images])
    count = len(positions)
    order, sorted_height, repeats = _along_normal(positions, orientation, lambda k: k)
    frames = _frames_per_position(sorted_height, order) if repeats else 1
    if frames < 2:
        return None
    first = images[0]
    geometry = stack_geometry(label, orientation, first.pixel_spacing, positions[order], count, first.slice_spacing)
    return _with_repeats(geometry, repeats), frames, tuple(order)


def _along_normal(positions: np.ndarray, orientation: np.ndarray | None, tie) -> tuple[list[int], np.ndarray, int]:
    """The indices of ``positions`` ``(N, 3)`` (LPS, mm) sorted by their height along the image normal (rounded to
    0.1 um), equal heights by ``tie(index)``; the heights in that order; how many lie at the position before theirs
    (within :data:`~.geometry.STEP_ABSOLUTE_TOLERANCE_MM`)."""
    row, column = (orientation[:3], orientation[3:]) if orientation is not None else (np.eye(3)[0], np.eye(3)[1])
    height = positions @ np.cross(row, column)
    order = sorted(range(len(positions)), key=lambda k: (round(float(height[k]), 4), tie(k)))
    sorted_height = height[order]
    return order, sorted_height, int(np.count_nonzero(np.diff(sorted_height) < STEP_ABSOLUTE_TOLERANCE_MM))


def _with_repeats(geometry: StackGeometry, repeats: int) -> StackGeometry:
    """``geometry`` marked as holding ``repeats`` slices at another slice's position."""
    return StackGeometry(
        geometry.origin,
        geometry.spacing,
        geometry.direction,
        f"{repeats} slices repeat another slice's position (several echoes, phases or acquisitions in one series)",
    )


def _varying_frame_kind(frame_values: list[dict[str, tuple[str, ...]]]) -> str:
    """The first kind of frame (``gradient``, ``echo``, ``time``) whose enhanced per-frame values differ: within one
    file's frames (one entry) or between files (several); ``""`` where none does."""
    for kind in ("gradient", "echo", "time"):
        texts = [values.get(kind, ()) for values in frame_values]
        if len(frame_values) == 1 and len(set(texts[0])) > 1:
            return kind
        if len(frame_values) > 1 and len(set(texts)) > 1:
            return kind
    return ""


def dicom_stack_of_series(label: str, files: tuple[str, ...], series_uid: str = "") -> DicomStack:
    """Order a series' single-frame files by position along the image normal and check they form one volume.

    Raises:
        InputError: a file is unreadable or not an image, the files differ in size or pixel spacing, lie in
            several orientations, only some have positions, or the series mixes in multi-frame files.
    """
    images = [read_dicom_image(f) for f in files]
    if len(images) == 1:
        return dicom_stack_of_file(images[0])
    _check_one_signal_component(label, images, series_uid)
    multi = [image for image in images if image.frames > 1]
    if multi:
        stack = _stack_of_volume_files(label, images, series_uid) if len(multi) == len(images) else None
        if stack is None:
            raise InputError(
                f"{label}: series {series_uid or '?'} is split over {len(images)} files of which {len(multi)} hold "
                f"several frames (e.g. {Path(multi[0].path).name}), which are not one volume each at the same "
                "positions; read each multi-frame file on its own"
            )
        return stack
    first = images[0]
    for image in images[1:]:
        if (image.rows, image.columns, image.is_colour) != (first.rows, first.columns, first.is_colour):
            raise InputError(
                f"{label}: the slices differ in size ({Path(first.path).name}: {first.rows}x{first.columns}, "
                f"{Path(image.path).name}: {image.rows}x{image.columns}); they are not one volume"
            )
        if not np.allclose(image.pixel_spacing, first.pixel_spacing, rtol=1e-4, atol=1e-6):
            raise InputError(
                f"{label}: the slices differ in pixel spacing ({first.pixel_spacing} and {image.pixel_spacing} mm); "
                "they are not one volume"
            )
    with_orientation = [image for image in images if image.orientations is not None]
    if with_orientation and len(with_orientation) != len(images):
        raise InputError(
            f"{label}: {len(images) - len(with_orientation)} of {len(images)} slices have no "
            "ImageOrientationPatient; they cannot be placed in one volume"
        )
    orientation = None
    if with_orientation:
        orientation = _single_orientation(label, np.stack([image.orientations[0] for image in images]), "slices")
    with_position = [image for image in images if image.positions is not None]
    if with_position and len(with_position) != len(images):
        missing = next(image for image in images if image.positions is None)
        raise InputError(
            f"{label}: {len(images) - len(with_position)} of {len(images)} slices have no ImagePositionPatient "
            f"(e.g. {Path(missing.path).name}); the slices cannot be ordered"
        )
    if with_position:
        positions = np.stack([image.positions[0] for image in images])
        # then InstanceNumber, then name: a deterministic order for repeated positions
        order, sorted_height, repeats = _along_normal(
            positions, orientation, lambda k: (images[k].instance_number or 0, images[k].path)
        )
        images = [images[k] for k in order]
        positions = positions[order]
    else:
        order = sorted(range(len(images)), key=lambda k: (images[k].instance_number or 0, images[k].path))
        images = [images[k] for k in order]
        positions, repeats = None, 0
    geometry = stack_geometry(label, orientation, first.pixel_spacing, positions, len(images), first.slice_spacing)
    frames, frame_label = 1, ""
    if repeats:
        geometry = _with_repeats(geometry, repeats)
        frames = _frames_per_position(sorted_height, [image.instance_number for image in images])
        frame_label = _repeated_frame_label(images) if frames > 1 else ""
    mosaic = _series_mosaic(label, images, frames)
    if mosaic is not None:
        frame_label = _mosaic_frame_label(images)
    dtype = np.result_type(*[image.physical_dtype for image in images])
    shape = (len(images), first.rows, first.columns) + ((3,) if first.is_colour else ())
    uid = series_uid or first.series_uid
    return DicomStack(label, tuple(images), geometry, shape, np.dtype(dtype), uid, frames, frame_label, mosaic)


def _stack_of_volume_files(label: str, images: list, series_uid: str) -> DicomStack | None:
    """A series of multi-frame files that each hold one volume of the same positions (an enhanced fMRI or DWI
    written one file per volume, as Siemens XA scanners do) as the stack of all their frames, file after file in
    InstanceNumber order, one frame per file at every position; None for any other series of multi-frame files."""
    first = images[0]
    if any((image.frames, image.rows, image.columns) != (first.frames, first.rows, first.columns) for image in images):
        return None
    if any(image.is_colour or image.orientations is None for image in images):
        return None
    images = sorted(images, key=lambda image: (image.instance_number or 0, image.path))
    orientation = _single_orientation(label, np.concatenate([image.orientations for image in images]), "frames")
    grouped = _frames_by_position(label, images, orientation)
    if grouped is None or grouped[1] != len(images):
        return None
    geometry, frames, order = grouped
    kind = _varying_frame_kind([image.frame_values for image in images])
    if not kind:  # each file one volume: diffusion-weighted, else repeated over time
        kind = "gradient" if _diffusion_image_type(images) else "time"
    dtype = np.dtype(np.result_type(*[image.physical_dtype for image in images]))
    shape = (first.frames * len(images), first.rows, first.columns)
    uid = series_uid or first.series_uid
    return DicomStack(label, tuple(images), geometry, shape, dtype, uid, frames, kind, frame_order=order)


def _check_one_signal_component(label: str, images: list, series_uid: str) -> None:
    """Refuse an MR series whose images hold different parts of the complex signal (magnitude and phase images of
    one field-map or SWI acquisition in one series, as some scanners export them), or an enhanced MR file whose frames
    do (Philips writes magnitude and phase frames into one file): as one volume, phase angles would be denoised as
    magnitudes beside them."""
    if not any(image.metadata.get("0008|0060", "").strip().upper() == "MR" for image in images):
        return
    counts: dict[str, int] = {}
    for image in images:
        per_frame = image.frame_values.get("component", ())
        # a frame naming no part has the file's (top-level ComplexImageComponent, ImageType)
        file_part = dicom_signal_component(image.metadata) if "MIXED" not in image.metadata.get("0008|9208", "") else ""
        for component in per_frame or (file_part,) * image.frames:
            key = component or file_part or "unnamed"
            counts[key] = counts.get(key, 0) + 1
    named = [component for component in counts if component != "unnamed"]
    if len(named) > 1:
        parts = ", ".join(f"{count} {component}" for component, count in counts.items())
        if len(images) == 1 and images[0].frames > 1:
            raise InputError(
                f"{label}: this MR file's frames hold different parts of the complex signal ({parts}: its per-frame "
                "ComplexImageComponent / FrameType); they are not one image to denoise. Export the magnitude frames "
                "as a series of their own and denoise that"
            )
        raise InputError(
            f"{label}: MR series {series_uid or '?'} holds images of different parts of the complex signal ({parts}: "
            "DICOM ImageType / ComplexImageComponent / GE's image type); they are not one image to denoise. Put the "
            "magnitude images' files in a folder of their own and denoise that"
        )


def _series_mosaic(label: str, images: list, frames: int) -> MosaicLayout | None:
    """The mosaic layout every image of a series shares when the images are the frames of one position (a Siemens
    fMRI, diffusion or perfusion series: one mosaic per volume); None otherwise, with a warning where mosaics are
    read as the images they are."""
    layouts = {image.mosaic for image in images}
    if layouts == {None}:
        return None
    if len(layouts) == 1 and frames == len(images):
        return images[0].mosaic
    logger.warning(
        "%s: the series holds Siemens mosaics that are not one volume per image at one position; denoised as the "
        "images they are (each mosaic's slices side by side)",
        label,
    )
    return None


def _mosaic_frame_label(images) -> str:
    """Siemens mosaics are EPI volumes: diffusion-weighted (ImageType DIFFUSION, or b-values that vary) or repeated
    over time (fMRI, perfusion, ASL)."""
    diffusion = _diffusion_image_type(images) or _repeated_frame_label(images) == "gradient"
    return "gradient" if diffusion else "time"


def _diffusion_image_type(images) -> bool:
    """Whether an image's ImageType says it is diffusion-weighted (Siemens: ``ORIGINAL\\PRIMARY\\DIFFUSION...``)."""
    return any("DIFFUSION" in image.metadata.get("0008|0008", "").upper().split("\\") for image in images)


#: header values that tell what the images at one position are, in the order they are asked (GDCM keys)
_FRAME_KINDS = (
    ("gradient", ("0018|9087", "0018|9089", PRIVATE_B_VALUE_KEY)),  # DiffusionBValue, GradientOrientation, private
    ("time", ("0020|0100", "0018|1060")),  # TemporalPositionIdentifier, TriggerTime
    ("echo", ("0018|0081", "0018|0086")),  # EchoTime, EchoNumbers
)


def _frames_per_position(heights: np.ndarray, instance_numbers: list) -> int:
    """How many images each slice position holds when every position holds the same number (sorted ``heights``
    along the slice normal, mm, and the images' InstanceNumbers in that order), each position's images in the
    order of distinct InstanceNumbers (the acquisition order, the same frame at every position); 1 otherwise (a few
    repeated slices, or images whose order at a position is not known, are not frames)."""
    starts = np.flatnonzero(np.diff(heights) >= STEP_ABSOLUTE_TOLERANCE_MM) + 1
    bounds = np.concatenate([[0], starts, [len(heights)]]).astype(int)
    counts = np.diff(bounds)
    if len(set(counts.tolist())) != 1 or counts[0] < 2:
        return 1
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        numbers = instance_numbers[start:stop]
        if any(n is None for n in numbers) or len(set(numbers)) != len(numbers):
            return 1
    return int(counts[0])


def _repeated_frame_label(images) -> str:
    """What the images at one position differ by: the first of :data:`_FRAME_KINDS` whose values vary across the
    series, else ``"repeat"``."""
    for label, keys in _FRAME_KINDS:
        if any(len({image.metadata.get(key, "") for image in images}) > 1 for key in keys):
            return label
    return "repeat"


def read_dicom_stack(stack: DicomStack, max_bytes: int | None = None) -> np.ndarray:
    """Decode a stack's pixels to physical values, ``stack.shape``, ``stack.dtype``.

    The whole stack is checked against the memory budget before the first file is decoded.
    """
    check_claimed_size(stack.label, stack.shape, stack.dtype, max_bytes=max_bytes)
    if len(stack.images) == 1:
        return decode_physical(stack.images[0], max_bytes).astype(stack.dtype, copy=False).reshape(stack.shape)
    array = np.empty(stack.shape, dtype=stack.dtype)
    start = 0
    for image in stack.images:  # one frame per file, or a multi-frame file's frames one after another
        array[start : start + image.frames] = decode_physical(image, max_bytes)
        start += image.frames
    return array
