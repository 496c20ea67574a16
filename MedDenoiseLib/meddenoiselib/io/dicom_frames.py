"""What the frames of one DICOM image file mean: geometry, stored-to-physical value map, decoding.

One header parser serves reading and writing, so the value map a reader applies is exactly the one a writer
inverts: per-frame Rescale Slope/Intercept of enhanced (functional-group) objects, RT Dose Grid Scaling,
MONOCHROME1 (read as displayed intensities: bright is high, as in MONOCHROME2; inverted back on writing, so a
viewer shows the same image), byte order (pydicom decodes big-endian data), per-frame positions and orientations.
Objects that are not images to denoise (no pixel data, 1-bit masks, segmentations) are refused as such.

Pixel data is decoded by pydicom (with pylibjpeg for JPEG, JPEG-LS and JPEG 2000). GDCM (through SimpleITK) is the
fallback for the few codecs pydicom lacks (12-bit JPEG Extended), only where its value conventions equal ours.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .dicom_diffusion import PRIVATE_B_VALUE_KEY, private_b_value
from .dicom_private import GE_COMPLEX_COMPONENT_KEY, private_integer
from .itk_messages import c_stderr_logged, itk_messages_logged
from .limits import Encoding, check_claimed_size
from .modality import signal_component_of_dicom
from .mosaic import MosaicLayout, mosaic_layout

__all__ = [
    "DicomImage",
    "decode_physical",
    "read_dicom_image",
    "physical_to_stored",
    "stored_value_range",
    "with_transfer_syntax",
]

logger = logging.getLogger(__name__)

SEGMENTATION_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RT_DOSE_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.2"
#: photometric interpretations this library reads (the colour ones become RGB components).
GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "PALETTE COLOR", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
#: stored integers above 2**23 lose precision in float32, so those rescale to float64.
FLOAT32_EXACT_BITS = 23


def stored_value_range(bits_stored: int, pixel_representation: int) -> tuple[int, int]:
    """The range of stored pixel values for ``BitsStored`` and ``PixelRepresentation`` (0 unsigned, 1 signed)."""
    if pixel_representation == 1:
        return -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1
    return 0, 2**bits_stored - 1


@dataclass(frozen=True)
class DicomImage:
    """The header of one DICOM image file, reduced to what decoding, geometry and writing back need.

    Attributes:
        path: the file.
        sop_class_uid: SOPClassUID (may be empty for old files).
        series_uid: SeriesInstanceUID.
        instance_number: InstanceNumber, or None.
        rows, columns, frames, samples: image size; ``samples`` is 3 for colour.
        bits_allocated, bits_stored, pixel_representation: the stored integer representation.
        photometric: PhotometricInterpretation.
        float_pixels: ``"float32"``/``"float64"`` for Float/Double Float Pixel Data, else empty.
        encapsulated: the pixel data is compressed (encapsulated).
        deflated: the whole data set is deflate-compressed (Deflated Explicit VR Little Endian).
        slopes, intercepts: per frame, the linear map stored -> physical (Rescale, or Dose Grid Scaling).
        orientations: ``(frames, 6)`` ImageOrientationPatient per frame, or None when the file has none.
        positions: ``(frames, 3)`` ImagePositionPatient per frame, or None when unknown; a file with only its
            first frame's position (legacy multi-frame without offsets) gives ``(1, 3)``.
        pixel_spacing: ``(x, y)`` mm between columns and between rows.
        slice_spacing: SpacingBetweenSlices, else SliceThickness, else 1 (mm), for stacks without positions.
        file_bytes: the file size.
        palette_bits: for PALETTE COLOR, the bits of the colour table entries (8 or 16).
        mosaic: for a Siemens mosaic (a volume's slices tiled in one image), how they are tiled; else None.
        frame_values: for an enhanced (functional-group) file, per kind of frame (``"gradient"``, ``"echo"``,
            ``"time"``) the per-frame values that name it (the MR diffusion item, EffectiveEchoTime,
            TemporalPositionIndex; ``""`` where a frame has none), and under ``"component"`` the part of the complex
            MR signal each frame holds (``"magnitude"``, ``"phase"``, ``"real"``, ``"imaginary"`` or ``""``, from
            its MR Image Frame Type group's ComplexImageComponent, else FrameType); empty for other files.
        metadata: top-level header values as ``"gggg|eeee"`` -> text (the keys SimpleITK/GDCM use).
    """

    path: str
    sop_class_uid: str
    series_uid: str
    instance_number: int | None
    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    float_pixels: str
    encapsulated: bool
    deflated: bool
    slopes: tuple[float, ...]
    intercepts: tuple[float, ...]
    orientations: np.ndarray | None
    positions: np.ndarray | None
    pixel_spacing: tuple[float, float]
    slice_spacing: float
    file_bytes: int
    palette_bits: int = 16
    mosaic: MosaicLayout | None = None
    frame_values: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    metadata: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_colour(self) -> bool:
        """Whether the pixels decode to RGB components."""
        return self.photometric in COLOUR

    @property
    def stored_range(self) -> tuple[int, int]:
        """The range of stored integers (BitsStored, PixelRepresentation)."""
        return stored_value_range(self.bits_stored, self.pixel_representation)

    @property
    def stored_dtype(self) -> np.dtype:
        """The native integer dtype of the stored samples."""
        kind = "i" if self.pixel_representation == 1 else "u"
        return np.dtype(f"{kind}{max(self.bits_allocated, 8) // 8}")

    @property
    def rescaled(self) -> bool:
        """Whether any frame maps stored values other than identically."""
        return any(s != 1 for s in self.slopes) or any(b != 0 for b in self.intercepts)

    def physical_range(self) -> tuple[float, float]:
        """The smallest and largest physical value any frame can hold."""
        low, high = self.stored_range
        values = [s * v + b for s, b in zip(self.slopes, self.intercepts, strict=True) for v in (low, high)]
        return min(values), max(values)

    @property
    def physical_dtype(self) -> np.dtype:
        """The dtype of the decoded physical values.

        The stored integer type when the value map is the identity; the smallest of it, int16, int32, int64 that
        holds every rescaled value when slopes and intercepts are integers (CT in HU); float32 for fractional maps
        of up to 23-bit stored values (exact: the round trip back to stored integers is lossless), else float64.
        Colour keeps the decoder's type.
        """
        if self.float_pixels:
            return np.dtype(self.float_pixels)
        if self.photometric == "PALETTE COLOR":
            return np.dtype(np.uint8 if self.palette_bits == 8 else np.uint16)
        if self.is_colour or not self.rescaled:
            return self.stored_dtype
        integral = all(float(v).is_integer() for v in (*self.slopes, *self.intercepts))
        if integral:
            low, high = self.physical_range()
            for candidate in (self.stored_dtype, np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64)):
                info = np.iinfo(candidate)
                if info.min <= low and high <= info.max:
                    return candidate
        return np.dtype(np.float32 if self.bits_stored <= FLOAT32_EXACT_BITS else np.float64)

    @property
    def decoded_shape(self) -> tuple[int, ...]:
        """``(frames, rows, columns)`` or ``(frames, rows, columns, 3)`` for colour."""
        shape = (self.frames, self.rows, self.columns)
        return shape + (3,) if self.is_colour else shape


# ------------------------------------------------------------------------------------------------ header
def _first_item(dataset, keyword: str):
    sequence = dataset.get(keyword) if dataset is not None else None
    return sequence[0] if sequence else None


def _number(value, label: str, keyword: str, default: float | None = None) -> float | None:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{label}: invalid DICOM header value {keyword} {str(value)!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{label}: invalid DICOM header value {keyword} {str(value)!r} (not finite)")
    return number


def _integer(dataset, keyword: str, label: str, default: int | None = None) -> int | None:
    value = dataset.get(keyword)
    number = _number(value, label, keyword)
    if number is None:
        return default
    if not number.is_integer():
        raise InputError(f"{label}: invalid DICOM header value {keyword} {str(value)!r} (not an integer)")
    return int(number)


def _vector(value, size: int, label: str, keyword: str) -> np.ndarray | None:
    if value is None or value == "":
        return None
    try:
        vector = np.array([float(v) for v in (value if not isinstance(value, (str, bytes)) else [value])])
    except (TypeError, ValueError):
        raise InputError(f"{label}: invalid DICOM header value {keyword} {str(value)!r}") from None
    if vector.size != size or not np.all(np.isfinite(vector)):
        raise InputError(f"{label}: invalid DICOM header value {keyword} {str(value)!r} (expected {size} numbers)")
    return vector


def _metadata(dataset) -> dict[str, str]:
    """Top-level text values keyed like GDCM (``"0008|0060"``): binary, sequence and pixel elements left out."""
    skip = {"OB", "OW", "OF", "OD", "OL", "OV", "UN", "SQ"}
    values: dict[str, str] = {}
    for tag in list(dataset.keys()):
        if tag.is_private or tag.group in (0x0002, 0x7FE0):
            continue
        try:
            element = dataset[tag]
            if element.VR in skip:
                continue
            value = element.value
            many = isinstance(value, (list, tuple)) or element.VM > 1
            text = "\\".join(str(v) for v in value) if many else str(value)
        except Exception:  # noqa: BLE001 - one undecodable value must not make the file unreadable
            continue
        values[f"{element.tag.group:04x}|{element.tag.element:04x}"] = text.strip()[:1024]
    return values


def _read_dataset(path: Path, label: str, known_suffix: bool):
    """The header with pixel data deferred (not loaded); files without the DICM preamble are read leniently."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = pydicom.dcmread(str(path), defer_size=1024)
        if any("End of file" in str(w.message) for w in caught):
            raise InputError(f"{label}: the DICOM file is truncated (it ends inside a data element)")
        if len(dataset) == 0:
            raise InputError(f"{label}: the DICOM file holds no data set after its file meta header (truncated?)")
        return dataset
    except InputError:
        raise
    except InvalidDicomError:
        pass  # no preamble: an old ACR-NEMA style file, or not DICOM at all; try once without the preamble
    except Exception as exc:  # noqa: BLE001 - pydicom raises EOFError, struct.error, ValueError... for bad files
        raise InputError(f"{label}: not a readable DICOM file ({_reason(exc)})") from exc
    if not known_suffix:
        raise InputError(
            f"{label}: unsupported file type (expected .nii/.nii.gz/.hdr, .nrrd/.nhdr, .mha/.mhd, .mgz/.mgh, .PAR, "
            ".mnc, .png, .tif, .jpg, .bmp, a DICOM file or a DICOM series folder)"
        )
    try:
        dataset = pydicom.dcmread(str(path), defer_size=1024, force=True)
        dataset.get("Rows")  # parsing is lazy; touch one value so garbage fails here
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{label}: not a DICOM file (no DICOM header found)") from exc
    if "Rows" not in dataset and "SOPClassUID" not in dataset:
        raise InputError(f"{label}: not a DICOM file (no DICOM header found)")
    return dataset


def _reason(exc: BaseException) -> str:
    """A third-party exception in one short line, without advice meant for programmers."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for noise in (" Use force=True to force reading.", "Use force=True to force reading."):
        text = text.replace(noise, "")
    return text[:300].strip()


def _sop_class_name(uid: str) -> str:
    if not uid:
        return "object"
    try:
        from pydicom.uid import UID

        name = UID(uid).name
    except Exception:  # noqa: BLE001
        name = uid
    return name.replace(" Storage", "") or uid


def _frame_maps(dataset, label: str, frames: int, sop_class: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-frame (slope, intercept): per-frame functional groups, then shared, then top level; RT Dose scaling."""
    shared = _first_item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    top_slope = _number(dataset.get("RescaleSlope"), label, "RescaleSlope")
    top_intercept = _number(dataset.get("RescaleIntercept"), label, "RescaleIntercept")
    dose = _number(dataset.get("DoseGridScaling"), label, "DoseGridScaling")
    if top_slope is None and dose is not None and (sop_class == RT_DOSE_SOP_CLASS or top_intercept is None):
        top_slope, top_intercept = dose, 0.0  # dose in Gy = stored * DoseGridScaling
    shared_map = _first_item(shared, "PixelValueTransformationSequence")
    slopes, intercepts = [], []
    for index in range(frames):
        item = None
        if per_frame is not None and index < len(per_frame):
            item = _first_item(per_frame[index], "PixelValueTransformationSequence")
        item = item if item is not None else shared_map
        if item is not None:
            slope = _number(item.get("RescaleSlope"), label, "RescaleSlope", 1.0)
            intercept = _number(item.get("RescaleIntercept"), label, "RescaleIntercept", 0.0)
        else:
            slope = 1.0 if top_slope is None else top_slope
            intercept = 0.0 if top_intercept is None else top_intercept
        if slope == 0:
            raise InputError(f"{label}: invalid DICOM header value RescaleSlope 0 (frame {index + 1})")
        slopes.append(slope)
        intercepts.append(intercept)
    return tuple(slopes), tuple(intercepts)


#: what tells an enhanced file's frames at one position apart: (kind, per-frame functional group, its keyword or
#: None for the whole item: a diffusion frame is its b-value and gradient direction)
_FRAME_KIND_GROUPS = (
    ("gradient", "MRDiffusionSequence", None),
    ("echo", "MREchoSequence", "EffectiveEchoTime"),
    ("time", "FrameContentSequence", "TemporalPositionIndex"),
)


def _frame_values(dataset) -> dict[str, tuple[str, ...]]:
    """Per kind of :data:`_FRAME_KIND_GROUPS`, each frame's value as text (``""`` where it has none); empty for a
    file without per-frame functional groups."""
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        return {}
    values = {}
    for kind, sequence, keyword in _FRAME_KIND_GROUPS:
        texts = []
        for item in per_frame:
            group = _first_item(item, sequence)
            texts.append("" if group is None else str(group if keyword is None else group.get(keyword, "")))
        values[kind] = tuple(texts)
    shared = _first_item(dataset, "SharedFunctionalGroupsSequence")
    components = []
    for item in per_frame:
        group = _first_item(item, "MRImageFrameTypeSequence")
        group = group if group is not None else _first_item(shared, "MRImageFrameTypeSequence")
        if group is None:
            components.append("")
            continue
        frame_type = group.get("FrameType") or ()
        frame_type = "\\".join([frame_type] if isinstance(frame_type, str) else [str(v) for v in frame_type])
        components.append(signal_component_of_dicom(str(group.get("ComplexImageComponent", "") or ""), frame_type))
    values["component"] = tuple(components)
    return values


def _frame_geometry(dataset, label: str, frames: int):
    """Per-frame orientations ``(F, 6)`` and positions (``(F, 3)``, ``(1, 3)`` or None), pixel and slice spacing."""
    shared = _first_item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")

    def group(index: int, keyword: str):
        if per_frame is not None and index < len(per_frame):
            item = _first_item(per_frame[index], keyword)
            if item is not None:
                return item
        return _first_item(shared, keyword)

    measures = group(0, "PixelMeasuresSequence")
    spacing_source = measures if measures is not None and "PixelSpacing" in measures else dataset
    spacing = None
    for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        candidate = _vector(spacing_source.get(keyword) or dataset.get(keyword), 2, label, keyword)
        if candidate is not None and np.all(candidate > 0):
            spacing = candidate
            break
    pixel_spacing = (1.0, 1.0) if spacing is None else (float(spacing[1]), float(spacing[0]))  # (columns, rows)
    slice_spacing = None
    for source in (measures, dataset):
        if source is None:
            continue
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            value = _number(source.get(keyword), label, keyword)
            if value is not None and value != 0:
                slice_spacing = abs(value)
                break
        if slice_spacing is not None:
            break
    slice_spacing = slice_spacing or 1.0

    if per_frame is not None or shared is not None:
        orientations, positions = [], []
        for index in range(frames):
            plane = group(index, "PlaneOrientationSequence")
            where = group(index, "PlanePositionSequence")
            orientations.append(
                _vector(plane.get("ImageOrientationPatient"), 6, label, "ImageOrientationPatient")
                if plane is not None
                else None
            )
            positions.append(
                _vector(where.get("ImagePositionPatient"), 3, label, "ImagePositionPatient")
                if where is not None
                else None
            )
        top_orientation = _vector(dataset.get("ImageOrientationPatient"), 6, label, "ImageOrientationPatient")
        orientations = [o if o is not None else top_orientation for o in orientations]
        orientation_array = None if any(o is None for o in orientations) else np.stack(orientations)
        position_array = None if any(p is None for p in positions) else np.stack(positions)
        if position_array is None and "ImagePositionPatient" in dataset:
            position_array = _vector(dataset.ImagePositionPatient, 3, label, "ImagePositionPatient")[np.newaxis]
        return orientation_array, position_array, pixel_spacing, slice_spacing

    orientation = _vector(dataset.get("ImageOrientationPatient"), 6, label, "ImageOrientationPatient")
    position = _vector(dataset.get("ImagePositionPatient"), 3, label, "ImagePositionPatient")
    orientations = None if orientation is None else np.tile(orientation, (frames, 1))
    positions = None if position is None else position[np.newaxis]
    offsets = dataset.get("GridFrameOffsetVector")
    if frames > 1 and position is not None and offsets is not None:
        # RT Dose and some NM: frame k lies at IPP + offset_k along the normal; the first offset is 0 (relative)
        # or equals IPP's z (absolute, axial only) -- subtracting it covers both.
        offsets = _vector(offsets, frames, label, "GridFrameOffsetVector")
        row, column = (orientation[:3], orientation[3:]) if orientation is not None else (np.eye(3)[0], np.eye(3)[1])
        normal = np.cross(row, column)
        normal = normal / (np.linalg.norm(normal) or 1.0)
        positions = position + np.outer(offsets - offsets[0], normal)
    elif frames == 1 and position is not None:
        positions = position[np.newaxis]
    return orientations, positions, pixel_spacing, slice_spacing


def read_dicom_image(path: str | Path, known_suffix: bool = True) -> DicomImage:
    """Parse one DICOM file's header (pixel data is not loaded) and refuse objects that are not images to denoise.

    Args:
        path: the file.
        known_suffix: the name has a DICOM suffix (``.dcm``...); a file without the DICOM preamble is then read
            leniently. Defaults to True.

    Raises:
        InputError: not DICOM, no pixel data (RT Structure Set, SR, ...), a segmentation or 1-bit mask, an
            unsupported photometric interpretation, or an invalid header value. The message names the file.
    """
    path = Path(path)
    label = str(path)
    dataset = _read_dataset(path, label, known_suffix)
    sop_class = str(dataset.get("SOPClassUID", "") or "")
    float_pixels = ""
    if "FloatPixelData" in dataset:
        float_pixels = "float32"
    elif "DoubleFloatPixelData" in dataset:
        float_pixels = "float64"
    elif "PixelData" not in dataset:
        raise InputError(f"{label}: DICOM {_sop_class_name(sop_class)} holds no image (no pixel data)")
    if sop_class == SEGMENTATION_SOP_CLASS:
        raise InputError(f"{label}: DICOM Segmentation is a label mask, not an image to denoise")
    try:
        rows = _integer(dataset, "Rows", label)
        columns = _integer(dataset, "Columns", label)
        frames = _integer(dataset, "NumberOfFrames", label, 1)
        samples = _integer(dataset, "SamplesPerPixel", label, 1)
        bits_allocated = _integer(dataset, "BitsAllocated", label, 32 if float_pixels == "float32" else 64)
        bits_stored = _integer(dataset, "BitsStored", label, bits_allocated)
        representation = _integer(dataset, "PixelRepresentation", label, 0)
        photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2").strip().upper()
        instance = _integer(dataset, "InstanceNumber", label)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed element (bad VR, wrong length) surfaces on access
        raise InputError(f"{label}: invalid DICOM header ({_reason(exc)})") from exc
    if rows is None or columns is None:
        raise InputError(f"{label}: the DICOM header has no image size (Rows/Columns)")
    if rows < 1 or columns < 1 or frames < 1:
        raise InputError(f"{label}: image has a zero-size axis (Rows {rows}, Columns {columns}, frames {frames})")
    if bits_allocated == 1:
        raise InputError(f"{label}: 1-bit pixels are a binary mask, not an image to denoise")
    if not float_pixels and (bits_allocated not in (8, 16, 32) or not 1 <= bits_stored <= bits_allocated):
        raise InputError(
            f"{label}: unsupported pixel format (BitsAllocated {bits_allocated}, BitsStored {bits_stored})"
        )
    if representation not in (0, 1):
        raise InputError(f"{label}: invalid DICOM header value PixelRepresentation {representation}")
    if photometric not in GRAYSCALE + COLOUR:
        raise InputError(f"{label}: unsupported PhotometricInterpretation {photometric}")
    if (photometric in GRAYSCALE + ("PALETTE COLOR",)) != (samples == 1):
        raise InputError(f"{label}: {samples} samples per pixel do not match PhotometricInterpretation {photometric}")
    try:
        slopes, intercepts = _frame_maps(dataset, label, frames, sop_class)
        orientations, positions, pixel_spacing, slice_spacing = _frame_geometry(dataset, label, frames)
        metadata = _metadata(dataset)
        mosaic = None if photometric in COLOUR else mosaic_layout(dataset, label, rows, columns, frames)
        frame_values = _frame_values(dataset) if frames > 1 else {}
        ge_component = private_integer(dataset, 0x0043, "GEMS_PARM_01", 0x2F, signed=True)
        if ge_component is not None:  # GE names a magnitude / phase / real / imaginary image only here
            metadata[GE_COMPLEX_COMPONENT_KEY] = str(ge_component)
        private_b = private_b_value(dataset) if "0018|9087" not in metadata else None
        if private_b is not None:  # tells a vendor's diffusion series' images at one position apart
            metadata[PRIVATE_B_VALUE_KEY] = f"{private_b:g}"
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{label}: invalid DICOM header ({_reason(exc)})") from exc
    palette_bits = 16
    if photometric == "PALETTE COLOR":
        descriptor = dataset.get("RedPaletteColorLookupTableDescriptor")
        try:
            palette_bits = 8 if descriptor is not None and int(descriptor[2]) == 8 else 16
        except (TypeError, ValueError, IndexError):
            raise InputError(f"{label}: invalid DICOM header value RedPaletteColorLookupTableDescriptor") from None
    transfer_syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
    encapsulated = bool(transfer_syntax is not None and transfer_syntax.is_encapsulated)
    deflated = bool(transfer_syntax is not None and transfer_syntax.is_deflated)
    return DicomImage(
        path=label,
        sop_class_uid=sop_class,
        series_uid=str(dataset.get("SeriesInstanceUID", "") or ""),
        instance_number=instance,
        rows=rows,
        columns=columns,
        frames=frames,
        samples=samples,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        pixel_representation=representation,
        photometric=photometric,
        float_pixels=float_pixels,
        encapsulated=encapsulated,
        deflated=deflated,
        slopes=slopes,
        intercepts=intercepts,
        orientations=orientations,
        positions=positions,
        pixel_spacing=pixel_spacing,
        slice_spacing=slice_spacing,
        file_bytes=os.path.getsize(path),
        palette_bits=palette_bits,
        mosaic=mosaic,
        frame_values=frame_values,
        metadata=metadata,
    )


def check_dicom_size(image: DicomImage, max_bytes: int | None = None) -> int:
    """The bounded-read check for one file: native pixel data must fit in the file, the decoded array in memory."""
    pixels = image.frames * image.rows * image.columns
    if image.float_pixels:
        stored = pixels * image.samples * np.dtype(image.float_pixels).itemsize
    else:
        # 4:2:2 chroma subsampling stores two samples per pixel instead of three
        samples = 2 if image.photometric == "YBR_FULL_422" and not image.encapsulated else image.samples
        stored = pixels * samples * max(image.bits_allocated // 8, 1)
    return check_claimed_size(
        image.path,
        image.decoded_shape,
        image.physical_dtype,
        data_bytes=image.file_bytes,
        encoding=Encoding.OTHER if image.encapsulated else (Encoding.DEFLATE if image.deflated else Encoding.RAW),
        stored_bytes=stored,
        max_bytes=max_bytes,
    )


# ---------------------------------------------------------------------------------------------- decoding
def _decode_with_gdcm(image: DicomImage, pydicom_error: BaseException) -> np.ndarray:
    """Stored values through GDCM, for codecs pydicom has no decoder for (e.g. 12-bit JPEG Extended).

    GDCM applies the top-level rescale (and inverts MONOCHROME1) itself; only files where that equals the plain
    stored values are accepted here, so the result means the same as pydicom's.
    """
    import SimpleITK as sitk

    if image.rescaled or image.photometric != "MONOCHROME2":
        raise InputError(f"{image.path}: cannot decode the pixel data ({_reason(pydicom_error)})")
    try:
        with itk_messages_logged(), c_stderr_logged():
            array = sitk.GetArrayFromImage(sitk.ReadImage(image.path))
    except RuntimeError as exc:
        raise InputError(f"{image.path}: cannot decode the pixel data ({_reason(pydicom_error)})") from exc
    return array.reshape(image.decoded_shape)


def with_transfer_syntax(dataset):
    """``dataset`` with a Transfer Syntax UID in its file meta: a file without a meta header (pre-DICOM-3.0 or
    ACR-NEMA style) gets the uncompressed syntax it was parsed with, which pydicom needs to decode and write it."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    if "TransferSyntaxUID" not in dataset.file_meta:
        implicit, little = dataset.original_encoding
        dataset.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return dataset


def _decode_stored(image: DicomImage) -> np.ndarray:
    """The stored samples, ``decoded_shape``, native byte order; palette colour expanded to RGB."""
    import pydicom

    try:
        dataset = with_transfer_syntax(pydicom.dcmread(image.path, force=True))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{image.path}: not a readable DICOM file ({_reason(exc)})") from exc
    try:
        # the codec libraries under pydicom print their failed attempts to descriptor 2 (a 12-bit lossy JPEG:
        # "Unsupported JPEG data precision 12" from each decoder tried before one succeeds), past --quiet
        with c_stderr_logged():
            array = dataset.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        # no pydicom decoder could handle it (missing plugin or codec variant)
        array = _decode_with_gdcm(image, exc)
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt pixel data
        raise InputError(f"{image.path}: cannot decode the pixel data ({_reason(exc)})") from exc
    if image.photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            array = apply_color_lut(array, dataset)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{image.path}: cannot apply the palette colour table ({_reason(exc)})") from exc
        array = array.astype(image.physical_dtype, copy=False)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    expected = image.decoded_shape
    if array.size != int(np.prod(expected)):
        raise InputError(f"{image.path}: decoded {array.shape} pixels, the header says {expected}")
    return array.reshape(expected)


def decode_physical(image: DicomImage, max_bytes: int | None = None) -> np.ndarray:
    """Decode a file's frames to physical values (see :attr:`DicomImage.physical_dtype`).

    Returns:
        ``(frames, rows, columns)`` (``(..., 3)`` for colour): Rescale or Dose Grid Scaling applied per frame,
        MONOCHROME1 inverted within its value range so that high values are bright.

    Raises:
        InputError: the file is larger than it claims room for, or the pixel data cannot be decoded.
    """
    check_dicom_size(image, max_bytes)
    stored = _decode_stored(image)
    if image.is_colour or image.float_pixels:
        return stored
    dtype = image.physical_dtype
    low, high = image.stored_range
    if not image.rescaled and image.photometric == "MONOCHROME2":
        return stored.astype(dtype, copy=False)
    physical = np.empty(stored.shape, dtype=dtype)
    work = np.float64 if dtype.kind == "f" else np.int64
    for index in range(image.frames):
        slope, intercept = image.slopes[index], image.intercepts[index]
        if dtype.kind == "f":
            values = stored[index].astype(np.float64) * slope + intercept
        else:
            values = stored[index].astype(np.int64) * int(slope) + int(intercept)
        if image.photometric == "MONOCHROME1":
            # displayed intensity: the frame's value range mirrored, so high is bright (as ITK/GDCM read it)
            ends = (slope * low + intercept) + (slope * high + intercept)
            values = (work(ends) - values) if dtype.kind == "f" else (int(ends) - values)
        physical[index] = values
    return physical


def physical_to_stored(values: np.ndarray, image: DicomImage, frame_offset: int = 0) -> np.ndarray:
    """Invert :func:`decode_physical` for writing: per frame, round to stored integers, clip to the stored range.

    Args:
        values: physical values, ``(n, rows, columns)``: frames ``frame_offset .. frame_offset + n - 1`` of ``image``.
        image: the source file's header (its value map and representation are kept).
        frame_offset: index of the first frame in ``values``. Defaults to 0.

    Returns:
        Stored samples in :attr:`DicomImage.stored_dtype`, little-endian.
    """
    low, high = image.stored_range
    stored = np.empty(values.shape, dtype=image.stored_dtype.newbyteorder("<"))
    for index in range(values.shape[0]):
        slope = image.slopes[frame_offset + index]
        intercept = image.intercepts[frame_offset + index]
        frame = values[index].astype(np.float64)
        if image.photometric == "MONOCHROME1":
            frame = ((slope * low + intercept) + (slope * high + intercept)) - frame
        stored[index] = np.clip(np.rint((frame - intercept) / slope), low, high)
    return stored
