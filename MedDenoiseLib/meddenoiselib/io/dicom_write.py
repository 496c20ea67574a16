"""Derived DICOM writing: each source file's header copied with pydicom, only what a derived image changes replaced.

Every other tag (patient, study, frame of reference, acquisition, functional groups) survives. Physical values go
back to stored integers through the source's own value map (:func:`~.dicom_frames.physical_to_stored`: per-frame
rescale, Dose Grid Scaling, MONOCHROME1), so a viewer shows the written values with the source's display settings.
Colour sources (ultrasound is usually RGB or YBR, often JPEG-compressed) are written as uncompressed RGB, the
components interleaved, as the library decoded them.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import numpy as np

from ..errors import OutputError
from .dicom_frames import DicomImage, physical_to_stored, read_dicom_image, with_transfer_syntax

__all__ = ["check_dicom_writable", "derived_file_names", "write_derived_dicom"]

logger = logging.getLogger(__name__)


#: the most characters a Long String (LO) value holds, as SeriesDescription is one (DICOM PS3.5, 6.2)
LONG_STRING_MAX = 64


def _with_suffix(description: str, suffix: str) -> str:
    """``description`` with ``suffix`` appended, within :data:`LONG_STRING_MAX` characters: where both do not fit,
    the description is cut (the suffix is what tells a reader the series is derived)."""
    suffix = suffix[:LONG_STRING_MAX]
    return (description[: max(LONG_STRING_MAX - len(suffix), 0)].rstrip() + suffix).strip()


def check_dicom_writable(images: tuple[DicomImage, ...] | list[DicomImage], label: str) -> None:
    """Refuse sources whose pixels a derived image cannot be written into.

    Raises:
        OutputError: floating-point source pixels (the derived series keeps the source's representation).
    """
    for image in images:
        if image.float_pixels:
            raise OutputError(
                f"{label}: the source stores floating-point pixels, which derived DICOM output does "
                "not write; write .nii.gz, .nrrd or .mha instead"
            )


def write_derived_dicom(
    frames: np.ndarray,
    source_files: tuple[str, ...],
    output_dir: Path,
    description_suffix: str = " denoised",
    derivation: str = "Denoised with MedDenoise",
) -> list[Path]:
    """Write ``frames`` as a derived DICOM series, one output file per source file, named like the source.

    Each output copies its source file's header and changes only: SeriesInstanceUID (one new UID for the whole
    series), SOPInstanceUID (new per file), SeriesDescription (+ ``description_suffix``), ImageType
    (``DERIVED\\SECONDARY`` + the source's remaining values), SeriesNumber (+1000), DerivationDescription, a
    SourceImageSequence pointing at the source image, the pixel data, and the transfer syntax when the source
    was compressed or big-endian (written as Explicit VR Little Endian). The pixel representation, BitsStored and
    the value map (Rescale per frame, Dose Grid Scaling, MONOCHROME1) are kept; stored values are the rounded
    inverse of that map, clipped to the stored range.

    Args:
        frames: physical values (e.g. HU), the source files' frames one after another: ``(len(source_files), Y,
            X)`` for single-frame files, ``(F, Y, X)`` for one multi-frame file of ``F`` frames, ``(N * F, Y, X)``
            for ``N`` such files.
        source_files: the source DICOM files, in the order of ``frames``.
        output_dir: an existing folder to write into (a private temporary folder; the caller moves the files).
        description_suffix: appended to SeriesDescription. Defaults to " denoised".
        derivation: DerivationDescription text. Defaults to "Denoised with MedDenoise".

    Returns:
        The written file paths.

    Raises:
        OutputError: the frames do not match the sources, or a source cannot be read back.
    """
    import pydicom
    from pydicom.uid import generate_uid

    images = []
    for source in source_files:
        try:
            images.append(read_dicom_image(source))
        except Exception as exc:  # noqa: BLE001 - the source changed or vanished since it was read
            raise OutputError(f"{source}: cannot read the source DICOM header for the derived series ({exc})") from exc
    if frames.shape[0] != sum(image.frames for image in images):
        counts = f"{len(source_files)} source DICOM files of {sum(image.frames for image in images)} frames"
        raise OutputError(f"{output_dir}: {frames.shape[0]} slices to write but {counts}")
    series_uid = generate_uid()
    now = datetime.datetime.now()
    written: list[Path] = []
    names = derived_file_names(source_files)
    start = 0
    for index, (source, image) in enumerate(zip(source_files, images, strict=True)):
        try:
            ds = with_transfer_syntax(pydicom.dcmread(source, force=True))
        except Exception as exc:  # noqa: BLE001 - the source changed or vanished since it was read
            raise OutputError(f"{source}: cannot read the source DICOM header for the derived series ({exc})") from exc
        check_dicom_writable([image], str(output_dir))
        values = frames[start : start + image.frames]  # the file's frames: one, or all of a multi-frame file's
        start += image.frames
        if image.is_colour:
            stored, bits, stored_bits = _colour_to_stored(values, image, source)
            _set_rgb(ds, bits, stored_bits)
        else:
            stored, bits = physical_to_stored(values, image), image.bits_allocated
        _replace_pixels(ds, stored, bits, image.frames > 1)
        _mark_derived(ds, series_uid, description_suffix, derivation, now)

        target = output_dir / names[index]
        syntax = ds.file_meta.TransferSyntaxUID
        try:
            if not syntax.is_implicit_VR:
                _give_every_element_a_vr(ds)
            if ds.original_encoding[1] is False:
                ds = _little_endian_copy(ds)
            pydicom.dcmwrite(
                target, ds, enforce_file_format=True, implicit_vr=syntax.is_implicit_VR, little_endian=True
            )
        except Exception as exc:  # noqa: BLE001 - pydicom refuses some malformed source elements on writing
            # pydicom's message for a malformed element carries the traceback text of its cause: its first line only
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            # named by its source: the output is still a temporary file, and the element at fault is the source's
            raise OutputError(f"{source}: this header cannot be written into a derived DICOM file ({reason})") from exc
        written.append(target)
    return written


def _give_every_element_a_vr(dataset) -> None:
    """Give the elements of ``dataset`` (and of its sequences' items) that have no VR one, for an explicit-VR write.

    A source encoded in implicit VR under an explicit-VR transfer syntax (pydicom's SC_rgb_jpeg.dcm; pydicom reads it,
    warning) holds its elements undecoded and without a VR, which the explicit-VR writer cannot encode ("encoding
    without a string argument"). Each one is decoded as reading its value would (its VR from the dictionary); one
    that does not decode as the dictionary's VR (a private tag whose bytes are not what the private dictionary
    says) keeps its bytes as UN, as DICOM stores an element of unknown VR.
    """
    from pydicom.dataelem import DataElement

    for tag in list(dataset.keys()):
        raw = dataset.get_item(tag)
        if getattr(raw, "VR", "") is None:
            try:
                element = dataset[tag]
            except Exception:  # noqa: BLE001 - pydicom raises several types for a value that does not fit its VR
                dataset[tag] = DataElement(tag, "UN", raw.value)
                continue
        elif getattr(raw, "VR", "") == "SQ":
            element = dataset[tag]
        else:
            continue
        if element.VR == "SQ":
            for item in element.value:
                _give_every_element_a_vr(item)


def _colour_to_stored(values: np.ndarray, image: DicomImage, source: str) -> tuple[np.ndarray, int, int]:
    """RGB components ``(n, rows, columns, 3)`` as the library decoded them, rounded and clipped to the unsigned
    integers of the source's depth (a palette's: the depth of its colour table); returns them, BitsAllocated and
    BitsStored."""
    if values.ndim != 4 or values.shape[-1] != 3:
        raise OutputError(
            f"{source}: the source is colour ({image.photometric}) but the image to write has shape {values.shape}"
        )
    if image.photometric == "PALETTE COLOR":
        allocated = stored_bits = image.palette_bits
    else:
        allocated, stored_bits = image.bits_allocated, image.bits_stored
    dtype = np.dtype(f"<u{allocated // 8}")
    return np.clip(np.rint(values), 0, (1 << stored_bits) - 1).astype(dtype), allocated, stored_bits


#: tags of a palette colour source that an RGB image must not keep (its colour tables)
_PALETTE_KEYWORDS = (
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "PaletteColorLookupTableUID",
)


def _set_rgb(ds, bits_allocated: int, bits_stored: int) -> None:
    """Describe ``ds``'s pixels as uncompressed RGB, components interleaved (PlanarConfiguration 0)."""
    ds.PhotometricInterpretation = "RGB"
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored = bits_allocated, bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    for keyword in _PALETTE_KEYWORDS:
        if keyword in ds:
            del ds[keyword]


def _replace_pixels(ds, stored: np.ndarray, bits_allocated: int, multi_frame: bool) -> None:
    """Put ``stored`` values (the source's pixel representation) into ``ds`` as uncompressed little-endian data.

    A compressed, deflated or big-endian source is rewritten as Explicit VR Little Endian; the pixel statistics
    tags that would now be wrong are dropped.
    """
    from pydicom.uid import ExplicitVRLittleEndian

    transfer_syntax = ds.file_meta.TransferSyntaxUID
    if transfer_syntax.is_compressed or not transfer_syntax.is_little_endian or transfer_syntax.is_deflated:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = stored.tobytes()
    ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"
    ds["PixelData"].is_undefined_length = False
    if multi_frame:
        ds.NumberOfFrames = int(stored.shape[0])
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        if keyword in ds:
            del ds[keyword]


def _mark_derived(ds, series_uid: str, description_suffix: str, derivation: str, now: datetime.datetime) -> None:
    """Make ``ds`` a derived image of a new series that points back at its source image (new UIDs, DERIVED
    SECONDARY, SeriesNumber + 1000, DerivationDescription, SourceImageSequence)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    reference = Dataset()
    reference.ReferencedSOPClassUID = ds.SOPClassUID
    reference.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = _with_suffix(str(getattr(ds, "SeriesDescription", "") or ""), description_suffix)
    image_type = list(getattr(ds, "ImageType", []) or [])
    ds.ImageType = ["DERIVED", "SECONDARY"] + [str(v) for v in image_type[2:]]
    if "SeriesNumber" in ds and ds.SeriesNumber not in (None, ""):
        try:
            ds.SeriesNumber = int(ds.SeriesNumber) + 1000
        except (TypeError, ValueError):
            pass  # a malformed SeriesNumber is kept as it was
    ds.DerivationDescription = derivation[:1024]
    ds.SeriesDate = now.strftime("%Y%m%d")
    ds.SeriesTime = now.strftime("%H%M%S")
    ds.SourceImageSequence = Sequence([reference])


_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _swap_binary_values(dataset) -> None:
    """Byte-swap the binary (OW/OF/OL/OD/OV) values of a data set read as big endian, for little-endian writing.

    pydicom converts numbers (US, SS, FL...) by itself when the encoding changes, but not raw binary values; the
    pixel data has already been replaced by little-endian values.
    """

    def swap(ds, element) -> None:
        size = _WORD_SIZES.get(element.VR)
        if size is None or element.tag == 0x7FE00010 or not isinstance(element.value, (bytes, bytearray)):
            return
        if len(element.value) % size:
            return
        element.value = np.frombuffer(element.value, dtype=f">u{size}").astype(f"<u{size}").tobytes()

    dataset.walk(swap)


def _little_endian_copy(dataset):
    """A copy of a data set read as big endian that pydicom encodes as little endian (it will not convert the
    original in place)."""
    from pydicom.dataset import Dataset, FileMetaDataset

    _swap_binary_values(dataset)

    def copy(source) -> Dataset:
        target = Dataset()
        for element in source:
            if element.VR == "SQ":
                element.value = [copy(item) for item in element.value]
            target.add(element)
        return target

    result = copy(dataset)
    result.file_meta = FileMetaDataset(dataset.file_meta)
    result.preamble = dataset.preamble
    return result


def derived_file_names(source_files: tuple[str, ...]) -> list[str]:
    """The names :func:`write_derived_dicom` gives its outputs (the sources' names, numbered when repeated)."""
    names: list[str] = []
    for index, source in enumerate(source_files):
        name = Path(source).name
        if name in names or not name:
            name = f"{index:05d}.dcm"
        names.append(name)
    return names
