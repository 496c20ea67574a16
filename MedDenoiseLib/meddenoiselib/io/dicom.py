"""DICOM series discovery and reading (SimpleITK/GDCM), and derived-series writing (pydicom).

Reading goes through GDCM so that compressed transfer syntaxes (JPEG, JPEG 2000, RLE) decode; writing copies
each source slice's header with pydicom and replaces only what a derived image must change, so every other
tag (patient, study, frame of reference, acquisition) survives.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import MedDenoiseError

__all__ = ["DicomSeries", "list_dicom_series", "select_dicom_series", "write_derived_dicom", "stored_value_range"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DicomSeries:
    """One DICOM series in a folder: its UID and its files sorted by slice position (GDCM order)."""

    uid: str
    files: tuple[str, ...]
    modality: str = ""
    description: str = ""

    def summary(self) -> str:
        """A one-line description for listings and error messages."""
        desc = f" '{self.description}'" if self.description else ""
        return f"{self.uid} ({len(self.files)} files, {self.modality or '?'}{desc})"


def _header_value(path: str, keyword: str) -> str:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[keyword])
        return str(getattr(ds, keyword, "") or "")
    except Exception:  # noqa: BLE001 - a description is best-effort; the series itself was already listed
        return ""


def list_dicom_series(folder: str | Path) -> list[DicomSeries]:
    """All DICOM series directly inside ``folder`` (not recursive), largest first.

    Raises:
        MedDenoiseError: if the folder cannot be scanned.
    """
    folder = str(folder)
    try:
        uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    except RuntimeError as exc:
        raise MedDenoiseError(f"{folder}: cannot scan for DICOM series ({_first_line(exc)})") from exc
    series = []
    for uid in uids:
        files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid))
        if not files:
            continue
        series.append(
            DicomSeries(
                uid=uid,
                files=files,
                modality=_header_value(files[0], "Modality"),
                description=_header_value(files[0], "SeriesDescription"),
            )
        )
    series.sort(key=lambda s: len(s.files), reverse=True)
    return series


def select_dicom_series(folder: str | Path, series_uid: str | None = None) -> DicomSeries:
    """The series to read from ``folder``: the one named by ``series_uid``, else the largest one.

    Raises:
        MedDenoiseError: no series in the folder, the named UID is absent, or the two largest series have the
            same number of files (ambiguous); the message lists the series found.
    """
    series = list_dicom_series(folder)
    if not series:
        raise MedDenoiseError(f"{folder}: no DICOM images found in this folder")
    listing = "; ".join(s.summary() for s in series)
    if series_uid:
        for s in series:
            if s.uid == series_uid:
                return s
        raise MedDenoiseError(f"{folder}: no series with UID {series_uid}; the folder holds: {listing}")
    if len(series) > 1:
        if len(series[0].files) == len(series[1].files):
            raise MedDenoiseError(
                f"{folder}: holds {len(series)} DICOM series and the largest is ambiguous; "
                f"choose one with --series-uid: {listing}"
            )
        logger.warning("%s holds %d series; reading the largest, %s", folder, len(series), series[0].summary())
    return series[0]


def read_dicom_files(files: tuple[str, ...], label: str) -> sitk.Image:
    """Read a sorted list of DICOM files as one image through GDCM (rescale slope/intercept applied)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(files))
    reader.MetaDataDictionaryArrayUpdateOn()
    reader.LoadPrivateTagsOn()
    # ITK prints warnings (e.g. non-uniform slice spacing) straight to stderr; keep the console clean.
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise MedDenoiseError(f"{label}: cannot read the DICOM series ({_first_line(exc)})") from exc
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)
    if len(files) > 2:
        _warn_if_non_uniform(reader, len(files), label)
    return image


def _warn_if_non_uniform(reader: sitk.ImageSeriesReader, count: int, label: str) -> None:
    """Log a warning when slice positions are unevenly spaced (ITK assumes uniform spacing in that case)."""
    try:
        positions = np.array(
            [[float(v) for v in reader.GetMetaData(k, "0020|0032").split("\\")] for k in range(count)]
        )
    except (RuntimeError, ValueError):
        return
    gaps = np.linalg.norm(np.diff(positions, axis=0), axis=1)
    if gaps.size and gaps.max() - gaps.min() > 0.01 * max(gaps.max(), 1e-6):
        logger.warning(
            "%s: slice spacing is not uniform (%.3g to %.3g mm); the volume uses %.3g mm",
            label, gaps.min(), gaps.max(), float(np.mean(gaps)),
        )


def stored_value_range(bits_stored: int, pixel_representation: int) -> tuple[int, int]:
    """The range of stored pixel values for ``BitsStored`` and ``PixelRepresentation`` (0 unsigned, 1 signed)."""
    if pixel_representation == 1:
        return -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1
    return 0, 2**bits_stored - 1


def _stored_dtype(bits_allocated: int, pixel_representation: int) -> np.dtype:
    kind = "i" if pixel_representation == 1 else "u"
    if bits_allocated not in (8, 16, 32):
        raise MedDenoiseError(f"unsupported DICOM BitsAllocated {bits_allocated} for writing")
    return np.dtype(f"<{kind}{bits_allocated // 8}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    # SimpleITK messages start with a file:line location; the useful part is usually the last line.
    useful = [line.strip() for line in text if line.strip()]
    return useful[-1] if useful else type(exc).__name__


def write_derived_dicom(
    frames: np.ndarray,
    source_files: tuple[str, ...],
    output_dir: Path,
    description_suffix: str = " denoised",
    derivation: str = "Denoised with MedDenoise",
) -> list[Path]:
    """Write ``frames`` as a derived DICOM series, one output file per source file.

    Each output copies its source file's header and changes only: SeriesInstanceUID (one new UID for the whole
    series), SOPInstanceUID (new per file), SeriesDescription (+ ``description_suffix``), ImageType
    (``DERIVED\\SECONDARY`` + the source's remaining values), SeriesNumber (+1000), DerivationDescription, a
    SourceImageSequence pointing at the source image, the pixel data, and the transfer syntax when the source
    was compressed (written as Explicit VR Little Endian). The pixel representation, BitsStored and
    RescaleSlope/RescaleIntercept are kept, and pixel values are stored as ``round((value - intercept) / slope)``
    clipped to the stored range, so viewers recover the written physical values.

    Args:
        frames: physical values (e.g. HU), shape ``(len(source_files), Y, X)`` for single-frame files, or
            ``(F, Y, X)`` for one multi-frame source file.
        source_files: the source DICOM files, in the order of ``frames``.
        output_dir: an existing, empty folder to write into (the caller renames it into place atomically).
        description_suffix: appended to SeriesDescription. Defaults to " denoised".
        derivation: DerivationDescription text. Defaults to "Denoised with MedDenoise".

    Returns:
        The written file paths.
    """
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    multi_frame = len(source_files) == 1 and frames.shape[0] > 1
    if not multi_frame and frames.shape[0] != len(source_files):
        raise MedDenoiseError(
            f"{output_dir}: {frames.shape[0]} slices to write but {len(source_files)} source DICOM files"
        )
    series_uid = generate_uid()
    now = datetime.datetime.now()
    written: list[Path] = []
    used_names: set[str] = set()
    for index, source in enumerate(source_files):
        try:
            ds = pydicom.dcmread(source)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types for bad files
            raise MedDenoiseError(f"{source}: cannot read DICOM header for the derived series ({exc})") from exc
        values = frames if multi_frame else frames[index : index + 1]
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        bits_allocated = int(ds.BitsAllocated)
        bits_stored = int(getattr(ds, "BitsStored", bits_allocated))
        representation = int(getattr(ds, "PixelRepresentation", 0))
        low, high = stored_value_range(bits_stored, representation)
        stored = np.rint((values.astype(np.float64) - intercept) / slope)
        stored = np.clip(stored, low, high).astype(_stored_dtype(bits_allocated, representation))
        if int(getattr(ds, "SamplesPerPixel", 1)) != 1:
            raise MedDenoiseError(f"{source}: only single-sample (grayscale) DICOM can be written as a series")

        source_sop_class = ds.SOPClassUID
        source_sop_uid = ds.SOPInstanceUID
        transfer_syntax = ds.file_meta.TransferSyntaxUID
        if transfer_syntax.is_compressed or not transfer_syntax.is_little_endian:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = stored.tobytes()
        ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"
        ds["PixelData"].is_undefined_length = False
        if multi_frame:
            ds.NumberOfFrames = int(values.shape[0])
        for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
            if keyword in ds:
                del ds[keyword]

        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesDescription = (str(getattr(ds, "SeriesDescription", "") or "") + description_suffix).strip()
        image_type = list(getattr(ds, "ImageType", []) or [])
        ds.ImageType = ["DERIVED", "SECONDARY"] + [str(v) for v in image_type[2:]]
        if "SeriesNumber" in ds and ds.SeriesNumber not in (None, ""):
            ds.SeriesNumber = int(ds.SeriesNumber) + 1000
        ds.DerivationDescription = derivation[:1024]
        ds.SeriesDate = now.strftime("%Y%m%d")
        ds.SeriesTime = now.strftime("%H%M%S")
        reference = Dataset()
        reference.ReferencedSOPClassUID = source_sop_class
        reference.ReferencedSOPInstanceUID = source_sop_uid
        ds.SourceImageSequence = Sequence([reference])

        name = Path(source).name
        if name in used_names or not name:
            name = f"{index:05d}.dcm"
        used_names.add(name)
        target = output_dir / name
        ds.save_as(target, enforce_file_format=True)
        written.append(target)
    return written
