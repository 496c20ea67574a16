"""TIFF through tifffile: stacks of pages, tiles, any compression, and the layouts microscopy writes (ImageJ
hyperstacks, OME-TIFF) with their channels, z spacing and physical pixel size.

ITK's TIFF reader (under SimpleITK) reads a tiled 16-bit grey TIFF through its 8-bit RGBA fallback (the data's
low bits lost), takes an ImageJ hyperstack's channels for slices (a 2-channel z-stack of 8 slices as 16 slices,
channels interleaved, so a 2.5D model mixed them), and ignores ImageJ's and OME's pixel sizes.

Axes (tifffile's letters): ``Y`` and ``X`` are the plane; ``S`` (samples: RGB, RGBA) and ``C`` (channels) are the
volume's components, each denoised on its own (an alpha sample is dropped, as for other formats); every other axis
(``Z``, ``I`` and ``Q`` for plain page stacks, ``T`` of a 2D time-lapse) runs along the slice axis. A time series
of volumes (``T`` and ``Z`` both longer than 1) is a 4D series (:func:`~meddenoiselib.io.read_series`), not one
volume.

Pixel sizes are read into millimetres (the library's unit): OME's ``PhysicalSize`` (micrometres by default);
ImageJ's ``unit``, ``spacing`` and resolution tags; otherwise the resolution tags in inches or centimetres (as ITK
reads them), 1 mm without a unit. Written back the way they were read (same layout, axes and unit; an ImageJ
source's channel LUTs and display ranges, an OME source's channel names, colours and fluorophores), so Fiji and
OME readers see what they saw in the source.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["TiffLayout", "probe_tiff", "read_tiff", "write_tiff"]

logger = logging.getLogger(__name__)

#: millimetres per unit, for the unit names ImageJ and OME write (lower case)
_MM_PER_UNIT = {
    "m": 1e3,
    "cm": 10.0,
    "centimeter": 10.0,
    "mm": 1.0,
    "millimeter": 1.0,
    "um": 1e-3,
    "µm": 1e-3,
    "\u03bcm": 1e-3,
    "micron": 1e-3,
    "microns": 1e-3,
    "micrometer": 1e-3,
    "nm": 1e-6,
    "nanometer": 1e-6,
    "inch": 25.4,
    "in": 25.4,
}
#: ImageJ hyperstacks hold these pixel types only
_IMAGEJ_DTYPES = ("uint8", "uint16", "float32")
#: metadata keys of a volume read from TIFF (strings, as every :attr:`Volume.metadata` value)
LAYOUT_KEY = "tiff_kind"
_FIELDS = ("kind", "components", "unit", "photometric", "stack", "interval")


@dataclass(frozen=True)
class TiffLayout:
    """How a TIFF file arranges an image, as far as writing it back needs.

    Attributes:
        kind: ``"imagej"``, ``"ome"`` or ``"plain"``.
        components: ``"C"`` (channels), ``"S"`` (samples: RGB) or ``""`` (scalar).
        unit: the unit the file gives pixel sizes in (``"micron"``, ``"µm"``, ``"mm"``...; ``""``: none).
        photometric: ``"miniswhite"`` (0 is white) or ``"palette"`` (values index a grey map or an ImageJ LUT,
            written back with the source's map), else ``""``.
        stack: the axis the slices run along in an ImageJ or OME file: ``"Z"``, or ``"T"`` for a 2D time-lapse
            (its frames are the volume's slices, and go back as frames).
        interval: for ``"T"``, the time between frames as the file gives it (ImageJ ``finterval``, OME
            ``TimeIncrement``), else ``""``.
    """

    kind: str = "plain"
    components: str = ""
    unit: str = ""
    photometric: str = ""
    stack: str = "Z"
    interval: str = ""

    def metadata(self) -> dict[str, str]:
        return {f"tiff_{name}": str(getattr(self, name)) for name in _FIELDS}

    def frame_interval(self) -> float | None:
        """:attr:`interval` as a positive number, or None."""
        return _number(self.interval)

    @staticmethod
    def from_metadata(metadata: dict[str, str]) -> TiffLayout:
        defaults = TiffLayout()
        return TiffLayout(**{name: metadata.get(f"tiff_{name}", getattr(defaults, name)) for name in _FIELDS})


@dataclass(frozen=True)
class _Plan:
    """How a series' axes map to ``(Z, Y, X[, C])``."""

    order: tuple[int, ...]  # transposition to ([T,] slice axes..., Y, X, component axes...)
    shape: tuple[int, int, int]
    frames: int  # a time series of volumes: its T (the first axis after the transposition), else 1
    components: int  # after an alpha sample is dropped
    alpha: bool
    is_2d: bool
    layout: TiffLayout


def _plan(label: str, axes: str, shape: tuple[int, ...], kind: str, series: bool = False) -> _Plan:
    axes = axes.upper()
    if "Y" not in axes or "X" not in axes:
        raise InputError(f"{label}: a TIFF series with axes {axes!r} has no image plane (Y and X)")
    sizes = dict(zip(axes, shape, strict=True))
    frames = sizes["T"] if sizes.get("T", 1) > 1 and sizes.get("Z", 1) > 1 else 1
    if frames > 1 and not series:
        raise InputError(
            f"{label}: a time series of volumes ({frames} frames of {sizes['Z']} slices, axes {axes}); `denoise` "
            "reads it as a 4D series (meddenoiselib.io.read_series), other commands take one volume"
        )
    if series and frames == 1:
        raise InputError(f"{label}: not a time series of volumes (axes {axes})")
    component_axes = [i for i, a in enumerate(axes) if a in "CS"]
    slice_axes = [i for i, a in enumerate(axes) if a not in "CSYX" and not (frames > 1 and a == "T")]
    time_axes = [axes.index("T")] if frames > 1 else []
    order = (*time_axes, *slice_axes, axes.index("Y"), axes.index("X"), *component_axes)
    depth = int(np.prod([shape[i] for i in slice_axes])) if slice_axes else 1
    count = int(np.prod([shape[i] for i in component_axes])) if component_axes else 1
    letters = "".join(axes[i] for i in component_axes)
    alpha = letters == "S" and count in (2, 4)  # grey + alpha, RGBA
    stacked = "".join(axes[i] for i in slice_axes if shape[i] > 1)
    layout = TiffLayout(kind, "C" if "C" in letters else ("S" if letters else ""), stack="T" if stacked == "T" else "Z")
    return _Plan(
        order=order,
        shape=(depth, sizes["Y"], sizes["X"]),
        frames=frames,
        components=count - 1 if alpha else count,
        alpha=alpha,
        is_2d=not slice_axes or (all(shape[i] == 1 for i in slice_axes) and "Z" not in axes),
        layout=layout,
    )


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split()))


#: tifffile's warnings that mean the file holds less than it says (pages cut off, offsets past its end)
_DAMAGE_WORDS = ("offset", "corrupt", "truncat", "invalid")


@contextmanager
def _checked(path: Path) -> Iterator[None]:
    """Run tifffile on ``path`` with its warnings caught: they go to the DEBUG log instead of the terminal, and one
    that says the file is damaged (tifffile then returns the pages before the damage) refuses the file."""
    records = _Records()
    source = logging.getLogger("tifffile")
    source.addHandler(records)
    propagate, source.propagate = source.propagate, False
    try:
        yield
    finally:
        source.removeHandler(records)
        source.propagate = propagate
    for message in records.messages:
        logger.debug("%s: tifffile: %s", path, message)
    damage = [m for m in records.messages if any(word in m.lower() for word in _DAMAGE_WORDS)]
    if damage:
        reason = damage[0].split("> ", 1)[-1][:200]
        raise InputError(f"{path}: the TIFF file is truncated or corrupt ({reason})")


def _open(path: Path):
    import tifffile

    try:
        return tifffile.TiffFile(str(path))
    except Exception as exc:  # noqa: BLE001 - tifffile raises several types for files that are not TIFF
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(f"{path}: cannot read as TIFF ({reason})") from exc


def _layout_kind(tif) -> str:
    return "ome" if tif.is_ome else ("imagej" if tif.is_imagej else "plain")


def probe_tiff(path: Path, series: bool = False) -> tuple[_Plan, np.dtype]:
    """The layout of a TIFF's first image series and its pixel type, from its tags only.

    Args:
        series: the file must be a time series of volumes (``T`` and ``Z`` both longer than 1); else it must not.

    Raises:
        InputError: not a TIFF, no image plane, or (not) a time series of volumes.
    """
    with _checked(path), _open(path) as tif:
        plan, colours = _plan_of(tif, path, series)
        dtype = colours.dtype if colours is not None else np.dtype(tif.series[0].dtype)
        return plan, dtype.newbyteorder("=")


def _plan_of(tif, path: Path, series: bool) -> tuple[_Plan, np.ndarray | None]:
    """The plan of an open TIFF's first image series, and its colour palette when that makes it an RGB image (the
    plan then has 3 components, the last axis of ``colours[:, data]``)."""
    if not tif.series:
        raise InputError(f"{path}: the TIFF file holds no image")
    if len(tif.series) > 1:
        logger.info("%s holds %d image series; reading the first", path, len(tif.series))
    first = tif.series[0]
    plan = _plan(str(path), first.axes, tuple(first.shape), _layout_kind(tif), series)
    colours = _colour_palette(tif.pages[0], tif.is_imagej)
    if colours is not None:
        plan = replace(plan, components=3, order=(*plan.order, len(plan.order)))
    return plan, colours


def read_tiff(path: Path, series: bool = False) -> tuple[np.ndarray, tuple[float, float, float], dict[str, str], bool]:
    """The pixels of a TIFF's first series as ``(Z, Y, X)`` or ``(Z, Y, X, C)``, native byte order; with ``series``,
    of a time series of volumes as ``(T, Z, Y, X[, C])``.

    Returns:
        ``(array, spacing, metadata, is_2d)``: spacing ``(x, y, z)`` in mm; metadata the layout to write back
        (:class:`TiffLayout`).

    Raises:
        InputError: as :func:`probe_tiff`, or the pixel data cannot be decoded.
    """
    with _checked(path), _open(path) as tif:
        plan, colours = _plan_of(tif, path, series)
        try:
            data = tif.series[0].asarray()
        except Exception as exc:  # noqa: BLE001 - codecs raise many types for truncated or corrupt data
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise InputError(f"{path}: cannot decode the TIFF image ({reason})") from exc
        spacing, unit = _pixel_size(tif, plan.layout.kind)
        interval = _frame_interval(tif) if plan.layout.stack == "T" or plan.frames > 1 else ""
        photometric = {1: "", 0: "miniswhite", 3: "palette"}.get(int(tif.pages[0].photometric), "")
    if colours is not None:  # a colour palette (not grey, not an ImageJ LUT) is a colour image: RGB, as ITK reads it
        data, photometric = np.moveaxis(colours[:, data], 0, -1), ""
    data = np.transpose(data, plan.order)
    shape = (plan.frames, *plan.shape) if plan.frames > 1 else plan.shape
    if plan.components > 1 or plan.alpha:
        data = data.reshape(*shape, -1)
        if plan.alpha:
            data = data[..., :-1]
        if data.shape[-1] == 1:
            data = data[..., 0]
    else:
        data = data.reshape(shape)
    array = np.ascontiguousarray(data)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    layout = replace(
        plan.layout,
        components="S" if colours is not None else plan.layout.components,
        unit=unit,
        photometric=photometric,
        interval=interval,
    )
    return array, spacing, layout.metadata(), plan.is_2d


def _frame_interval(tif) -> str:
    """The time between frames of an ImageJ (``finterval``) or OME (``TimeIncrement``) time-lapse, as text."""
    if tif.is_imagej:
        return str((tif.imagej_metadata or {}).get("finterval", ""))
    if tif.is_ome:
        pixels = _ome_pixels(tif.ome_metadata or "")
        return pixels.attrib.get("TimeIncrement", "") if pixels is not None else ""
    return ""


def _colour_palette(page, imagej: bool) -> np.ndarray | None:
    """A palette page's colour map ``(3, entries)`` when its colours are not grey and the file is not ImageJ's (an
    ImageJ LUT colours a measurement for display); None otherwise, and the indices are the image."""
    if int(page.photometric) != 3 or imagej or page.colormap is None:
        return None
    colormap = np.asarray(page.colormap)
    if np.array_equal(colormap[0], colormap[1]) and np.array_equal(colormap[1], colormap[2]):
        return None
    return colormap


def _pixel_size(tif, kind: str) -> tuple[tuple[float, float, float], str]:
    """``((x, y, z) in mm, unit the file uses)``; 1 mm where the file gives no physical size."""
    if kind == "ome":
        found = _ome_pixel_size(tif.ome_metadata or "")
        if found is not None:
            return found
    page = tif.pages[0]
    x, y = _resolution(page, "XResolution"), _resolution(page, "YResolution")
    if kind == "imagej":
        values = tif.imagej_metadata or {}
        unit = str(values.get("unit", "")).strip()
        scale = _MM_PER_UNIT.get(unit.lower())
        if scale is not None and x and y:
            z = float(values.get("spacing", 1.0) or 1.0)
            return (scale / x, scale / y, scale * z if z > 0 else scale), unit
        return (1.0, 1.0, 1.0), ""
    unit_tag = page.tags.get("ResolutionUnit")
    scale = {2: 25.4, 3: 10.0}.get(int(unit_tag.value) if unit_tag is not None else 2) if x and y else None
    if scale is None:
        return (1.0, 1.0, 1.0), ""
    return (scale / x, scale / y, 1.0), "cm" if scale == 10.0 else "inch"


def _resolution(page, name: str) -> float | None:
    """Pixels per unit from a resolution tag (a fraction), or None when missing, zero or not finite."""
    tag = page.tags.get(name)
    if tag is None:
        return None
    value = tag.value
    number = value[0] / value[1] if isinstance(value, tuple) and value[1] else float(value) if value else 0.0
    return number if np.isfinite(number) and number > 0 else None


def _ome_pixels(xml: str):
    """The first ``Pixels`` element of OME-XML, or None."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    return next((element for element in root.iter() if element.tag.rpartition("}")[2] == "Pixels"), None)


def _ome_pixel_size(xml: str) -> tuple[tuple[float, float, float], str] | None:
    pixels = _ome_pixels(xml)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    unit = pixels.attrib.get("PhysicalSizeXUnit", "µm")
    sizes = []
    for axis in "XYZ":
        scale = _MM_PER_UNIT.get(pixels.attrib.get(f"PhysicalSize{axis}Unit", unit).lower())
        try:
            value = float(pixels.attrib.get(f"PhysicalSize{axis}", "nan"))
        except ValueError:
            value = float("nan")
        sizes.append(value * scale if scale is not None and np.isfinite(value) and value > 0 else None)
    if sizes[0] is None or sizes[1] is None:
        return None
    return (sizes[0], sizes[1], sizes[2] or 1.0), unit


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) and value > 0 else None


#: ImageJ's display settings: composite / colour / grey mode, one LUT and one display range per channel
_IMAGEJ_DISPLAY = ("mode", "LUTs", "Ranges")


@dataclass(frozen=True)
class _SourceTiff:
    """What an output copies from the TIFF it was read from, read in one opening: an ImageJ file's metadata (its
    channels' display settings), an OME file's ``Channel`` elements, the first page's palette. Empty for a source
    that is not a TIFF, or that changed since it was read."""

    imagej: dict | None = None
    ome_channels: tuple = ()
    colormap: np.ndarray | None = None

    @staticmethod
    def read(source: str) -> _SourceTiff:
        import tifffile

        if not source:
            return _SourceTiff()
        try:
            with tifffile.TiffFile(source) as tif:
                imagej = tif.imagej_metadata if tif.is_imagej else None
                pixels = _ome_pixels(tif.ome_metadata or "") if tif.is_ome else None
                colormap = tif.pages[0].colormap
        except Exception:  # noqa: BLE001 - not a TIFF source, or it changed since it was read: nothing to copy
            return _SourceTiff()
        channels = () if pixels is None else tuple(e for e in pixels if e.tag.rpartition("}")[2] == "Channel")
        return _SourceTiff(imagej, channels, None if colormap is None else np.asarray(colormap))

    def imagej_display(self, channels: int) -> dict[str, object]:
        """The ImageJ display settings (how Fiji shows the channels) when the source has ``channels`` channels, so
        the denoised file opens looking like the noisy one; empty otherwise."""
        values = self.imagej
        if not values or int(values.get("channels", 1)) != channels:
            return {}
        return {key: values[key] for key in _IMAGEJ_DISPLAY if key in values}

    def ome_channel_attributes(self, channels: int) -> dict[str, object]:
        """The channel names and colours (and fluorophores, wavelengths) when the OME source has ``channels``
        channels, as tifffile's OME writer takes them (``{"Channel": {"Name": [...], ...}}``); empty otherwise."""
        if len(self.ome_channels) != channels:
            return {}
        attributes = {}
        for name in _OME_CHANNEL_ATTRIBUTES:
            values = [element.attrib.get(name) for element in self.ome_channels]
            if all(value is not None for value in values):
                attributes[name] = [_ome_value(name, value) for value in values]
        return {"Channel": attributes} if attributes else {}

    def palette(self, dtype: np.dtype) -> np.ndarray | None:
        """The source's colour map when its size fits ``dtype`` (8 or 16 bits), else None."""
        colormap = self.colormap
        if colormap is None or dtype.kind != "u" or colormap.shape[-1] != 2 ** (8 * dtype.itemsize):
            return None
        return colormap


#: the attributes of an OME ``Channel`` element carried from a source to its output (how viewers label and colour
#: the channels; what the channel measures)
_OME_CHANNEL_ATTRIBUTES = ("Name", "Color", "Fluor", "EmissionWavelength", "ExcitationWavelength")


def _ome_value(name: str, text: str) -> object:
    """An OME ``Channel`` attribute as tifffile writes it back (colours as integers, wavelengths as numbers)."""
    if name == "Color":
        return int(text)
    if name.endswith("Wavelength"):
        return float(text)
    return text


def write_tiff(
    array: np.ndarray,
    spacing: tuple[float, float, float],
    metadata: dict[str, str],
    is_2d: bool,
    target: Path,
    compress: bool = True,
    source: str = "",
    frames: bool = False,
) -> None:
    """Write ``(Z, Y, X[, C])`` pixels as TIFF in the layout of ``metadata`` (:class:`TiffLayout`; plain by default);
    with ``frames``, a time series of volumes ``(T, Z, Y, X[, C])`` as an ImageJ or OME hyperstack.

    Args:
        array: the pixels, native byte order.
        spacing: ``(x, y, z)`` in mm.
        metadata: the source's layout keys, if it was a TIFF.
        is_2d: write one page (``Z`` must be 1).
        target: the file to write (the caller makes it atomic).
        compress: deflate-compress the pages.
        source: the TIFF the volume was read from (its palette, and an ImageJ file's channel LUTs and display
            ranges, are copied to the output).
        frames: ``array`` is a time series ``(T, Z, Y, X[, C])``.
    """
    import tifffile

    layout = TiffLayout.from_metadata(metadata)
    spatial = 4 if frames else 3
    components = array.shape[-1] if array.ndim == spatial + 1 else 1
    channels = components > 1 and (layout.components == "C" or components not in (3, 4))
    kind = layout.kind
    if kind == "imagej" and (
        array.dtype.name not in _IMAGEJ_DTYPES or components > 1 and not channels and array.dtype != np.uint8
    ):
        kind = "plain"  # ImageJ holds 8- and 16-bit integers and float32, and RGB of 8 bits only
    if kind == "plain" and (channels or frames):
        kind = "ome"  # plain TIFF has no channel or time axis; OME's are read by tifffile, Fiji and Bio-Formats
    # a TIFF source without a physical unit gets none back (its 1 mm is a placeholder); other sources' mm are real
    sized = layout.unit.lower() in _MM_PER_UNIT or LAYOUT_KEY not in metadata
    unit = layout.unit if layout.unit.lower() in _MM_PER_UNIT else ("µm" if kind == "ome" else "mm")
    per_unit = _MM_PER_UNIT[unit.lower()] if kind != "plain" else 10.0
    x, y, z = (value / per_unit for value in spacing)
    data = np.moveaxis(array, -1, -3) if channels else array  # ([T,] Z, C, Y, X) for a channel axis
    axes = ("T" if frames else "") + ("ZCYX" if channels else "ZYXS" if components > 1 else "ZYX")
    if is_2d and not frames and data.shape[0] == 1:
        data, axes = data[0], axes[1:]
    elif kind != "plain" and layout.stack == "T" and not frames:
        axes = "T" + axes[1:]  # a time-lapse's frames go back as frames
    options: dict[str, object] = {"compression": "zlib" if compress else None}
    found = _SourceTiff.read(source)
    if components > 1 and not channels:
        options["photometric"] = "rgb"
    elif not channels:
        options["photometric"] = "miniswhite" if layout.photometric == "miniswhite" else "minisblack"
        colormap = found.palette(array.dtype) if layout.photometric == "palette" else None
        if colormap is not None:
            options.update(photometric="palette", colormap=colormap)
    if kind == "imagej":
        extra: dict[str, object] = {"axes": axes}
        if sized:
            extra.update(unit=unit, **({"spacing": z} if "Z" in axes else {}))
            options["resolution"] = (1 / x, 1 / y)
        if "T" in axes and layout.frame_interval():
            extra["finterval"] = layout.frame_interval()
        extra.update(found.imagej_display(components if channels else 1))
        tifffile.imwrite(target, data, imagej=True, metadata=extra, **options)
    elif kind == "ome":
        extra = {"axes": axes}
        if sized:
            for axis, size in zip("XYZ", (x, y, z) if "Z" in axes else (x, y), strict=False):
                extra.update({f"PhysicalSize{axis}": size, f"PhysicalSize{axis}Unit": unit})
        if "T" in axes and layout.frame_interval():
            extra["TimeIncrement"] = layout.frame_interval()
        if channels:
            extra.update(found.ome_channel_attributes(components))
        tifffile.imwrite(target, data, ome=True, metadata=extra, **options)
    else:
        tifffile.imwrite(target, data, resolution=(1 / x, 1 / y), resolutionunit="CENTIMETER", metadata=None, **options)
