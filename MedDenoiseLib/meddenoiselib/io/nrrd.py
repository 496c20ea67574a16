"""NRRD files with a frame axis (time series, DWI gradients, Slicer sequences) read and written in their own layout.

SimpleITK reads a NRRD whose non-spatial axis is a ``list`` as a vector image and writes it back with that axis
first and of kind ``vector``: the frame axis, its labels and per-axis key/values would be lost. This module reads
the header itself, returns the voxels as ``(T, Z, Y, X[, C])`` plus a :class:`NrrdLayout` that remembers the file's
axis order and every header line, and writes a result back with the same axes, kinds, labels, key/values (e.g.
``DWMRI_gradient_0001``, ``axis 3 index values``) and geometry lines.

Supported: attached (``.nrrd``) and single-file detached (``.nhdr``) data, encodings raw, gzip, bzip2 and ascii,
both endiannesses, ``space`` left-posterior-superior / right-anterior-superior / left-anterior-superior, three
spatial axes plus one frame axis and at most one component axis.
"""

from __future__ import annotations

import bz2
import gzip
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MedDenoiseError
from .limits import Encoding, check_claimed_size

__all__ = ["NrrdLayout", "is_nrrd_series", "read_nrrd_header", "read_nrrd_series", "write_nrrd_series"]

_TYPES = {
    np.dtype("int8"): ("signed char", "int8", "int8_t"),
    np.dtype("uint8"): ("uchar", "unsigned char", "uint8", "uint8_t"),
    np.dtype("int16"): ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    np.dtype("uint16"): ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    np.dtype("int32"): ("int", "signed int", "int32", "int32_t"),
    np.dtype("uint32"): ("uint", "unsigned int", "uint32", "uint32_t"),
    np.dtype("int64"): (
        "longlong",
        "long long",
        "long long int",
        "signed long long",
        "signed long long int",
        "int64",
        "int64_t",
    ),
    np.dtype("uint64"): ("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
    np.dtype("float32"): ("float",),
    np.dtype("float64"): ("double",),
}
_DTYPE_OF = {name: dtype for dtype, names in _TYPES.items() for name in names}
_TYPE_NAME = {
    np.dtype("int8"): "int8",
    np.dtype("uint8"): "uint8",
    np.dtype("int16"): "short",
    np.dtype("uint16"): "ushort",
    np.dtype("int32"): "int",
    np.dtype("uint32"): "uint",
    np.dtype("int64"): "longlong",
    np.dtype("uint64"): "ulonglong",
    np.dtype("float32"): "float",
    np.dtype("float64"): "double",
}

#: axis kinds that hold the components of one voxel (colour, vectors), as opposed to frames.
COMPONENT_KINDS = {
    "vector",
    "covariant-vector",
    "normal",
    "2-vector",
    "3-vector",
    "4-vector",
    "3-gradient",
    "3-normal",
    "rgb-color",
    "hsv-color",
    "xyz-color",
    "rgba-color",
    "2-color",
    "3-color",
    "4-color",
    "complex",
    "quaternion",
}
_SPATIAL_KINDS = {"domain", "space"}
#: LPS from each supported space (a sign per axis).
_SPACES = {
    "left-posterior-superior": (1, 1, 1),
    "lps": (1, 1, 1),
    "right-anterior-superior": (-1, -1, 1),
    "ras": (-1, -1, 1),
    "left-anterior-superior": (1, -1, 1),
    "las": (1, -1, 1),
}
#: fields rewritten for every output (everything else is copied from the input's header).
_REWRITTEN = {
    "type",
    "encoding",
    "endian",
    "data file",
    "datafile",
    "line skip",
    "lineskip",
    "byte skip",
    "byteskip",
    "min",
    "max",
    "old min",
    "oldmin",
    "old max",
    "oldmax",
    "content",
}


@dataclass(frozen=True)
class NrrdLayout:
    """Where each axis of a NRRD file went, and its header, to write a result back in the same layout.

    Attributes:
        fields: header fields in file order, ``(name, value)`` (``name`` lower case, as NRRD compares them).
        key_values: ``key:=value`` lines, in file order.
        sizes: ``sizes`` per file axis (fastest first).
        frame_axis: file axis of the frames.
        component_axis: file axis of the voxel components, or None.
        spatial_axes: the file axes of i, j, k.
        comments: ``#`` lines after the magic line.
    """

    fields: tuple[tuple[str, str], ...]
    key_values: tuple[tuple[str, str], ...]
    sizes: tuple[int, ...]
    frame_axis: int
    component_axis: int | None
    spatial_axes: tuple[int, int, int]
    comments: tuple[str, ...] = field(default=())

    def field(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.fields:
            if key == name:
                return value
        return default

    @property
    def order(self) -> tuple[int, ...]:
        """numpy axes of the file's C-order array, in series order ``(frame, k, j, i[, component])``."""
        n = len(self.sizes)
        axes = [self.frame_axis, *reversed(self.spatial_axes)]
        if self.component_axis is not None:
            axes.append(self.component_axis)
        return tuple(n - 1 - a for a in axes)


def read_nrrd_header(path: str | Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[str], int]:
    """``(fields, key_values, comments, data_offset)`` of a NRRD header (attached or detached)."""
    path = Path(path)
    with open(path, "rb") as handle:
        magic = handle.readline()
        if not magic.startswith(b"NRRD000"):
            raise MedDenoiseError(f"{path}: not a NRRD file (no NRRD magic line)")
        fields, key_values, comments = [], [], []
        while True:
            raw = handle.readline()
            if len(raw) > 65536:
                raise MedDenoiseError(f"{path}: NRRD header line too long")
            line = raw.decode("latin-1").rstrip("\r\n")
            if not raw or line == "":
                break
            if line.startswith("#"):
                comments.append(line)
            elif ":=" in line:
                key, value = line.split(":=", 1)
                key_values.append((key, value))
            elif ": " in line:
                key, value = line.split(": ", 1)
                fields.append((key.strip().lower(), value.strip()))
            else:
                raise MedDenoiseError(f"{path}: malformed NRRD header line {line[:60]!r}")
        return fields, key_values, comments, handle.tell()


def _words(value: str) -> list[str]:
    return re.findall(r'"[^"]*"|\S+', value)


def _vector(text: str) -> np.ndarray | None:
    if text == "none":
        return None
    try:
        return np.array([float(v) for v in text.strip("()").split(",")])
    except ValueError:
        raise MedDenoiseError(f"malformed NRRD vector {text!r}") from None


def _layout(path: Path, fields, key_values, comments) -> NrrdLayout:
    lookup = dict(fields)
    try:
        dimension = int(lookup["dimension"])
        sizes = tuple(int(v) for v in lookup["sizes"].split())
    except (KeyError, ValueError):
        raise MedDenoiseError(f"{path}: NRRD header without valid 'dimension' and 'sizes'") from None
    if len(sizes) != dimension or min(sizes) < 1:
        raise MedDenoiseError(f"{path}: NRRD sizes {sizes} do not match dimension {dimension}")
    directions = _words(lookup.get("space directions", ""))
    if "space" not in lookup or len(directions) != dimension:
        raise MedDenoiseError(f"{path}: a NRRD series needs 'space' and 'space directions' (its world geometry)")
    kinds = [k.strip('"').lower() for k in _words(lookup.get("kinds", ""))] or ["???"] * dimension
    if len(kinds) != dimension:
        raise MedDenoiseError(f"{path}: NRRD 'kinds' has {len(kinds)} entries for {dimension} axes")
    spatial = tuple(a for a, d in enumerate(directions) if d != "none")
    others = [a for a in range(dimension) if a not in spatial]
    if len(spatial) != 3:
        raise MedDenoiseError(f"{path}: NRRD with {len(spatial)} spatial axes; 3 are needed")
    components = [a for a in others if kinds[a] in COMPONENT_KINDS]
    frames = [a for a in others if a not in components]
    if len(frames) != 1 or len(components) > 1:
        raise MedDenoiseError(
            f"{path}: NRRD axes {kinds} are not 3 spatial axes, one frame axis and at most one component axis"
        )
    return NrrdLayout(
        tuple(fields),
        tuple(key_values),
        sizes,
        frames[0],
        components[0] if components else None,
        spatial,
        tuple(comments),
    )


def is_nrrd_series(path: str | Path) -> bool:
    """Whether ``path`` is a NRRD with a frame axis of more than one frame (read it with :func:`read_nrrd_series`)."""
    try:
        fields, key_values, comments, _ = read_nrrd_header(path)
        layout = _layout(Path(path), fields, key_values, comments)
    except (MedDenoiseError, OSError):
        return False
    return layout.sizes[layout.frame_axis] > 1


def _geometry(path: Path, layout: NrrdLayout) -> tuple[tuple[float, ...], tuple[float, ...], np.ndarray]:
    space = layout.field("space", "").lower()
    if space not in _SPACES:
        raise MedDenoiseError(f"{path}: NRRD space {space!r} is not supported (LPS, RAS or LAS)")
    signs = np.array(_SPACES[space], dtype=float)
    directions = _words(layout.field("space directions"))
    axes = np.stack([_vector(directions[a]) for a in layout.spatial_axes], axis=1) * signs[:, None]
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0):
        raise MedDenoiseError(f"{path}: NRRD space directions have a zero-length axis")
    origin = _vector(layout.field("space origin", "(0,0,0)"))
    origin = np.zeros(3) if origin is None else origin * signs
    return tuple(spacing), tuple(origin), axes / spacing


def _data(path: Path, layout: NrrdLayout, offset: int) -> np.ndarray:
    type_name = layout.field("type", "").lower()
    if type_name not in _DTYPE_OF:
        raise MedDenoiseError(f"{path}: NRRD type {type_name!r} is not supported")
    dtype = _DTYPE_OF[type_name]
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(">" if layout.field("endian", "little").lower() == "big" else "<")
    encoding = layout.field("encoding", "raw").lower()
    data_file = layout.field("data file") or layout.field("datafile")
    if data_file:
        if data_file.startswith("LIST") or len(data_file.split()) > 1:
            raise MedDenoiseError(f"{path}: NRRD with several data files is not supported")
        source, offset = path.parent / data_file, 0
    else:
        source = path
    for name in ("line skip", "lineskip", "byte skip", "byteskip"):
        if layout.field(name, "0") != "0":
            raise MedDenoiseError(f"{path}: NRRD '{name}' is not supported")
    count = int(np.prod(layout.sizes))
    expected = count * dtype.itemsize
    kind = {"raw": Encoding.RAW, "gzip": Encoding.DEFLATE, "gz": Encoding.DEFLATE}.get(encoding, Encoding.OTHER)
    try:
        available = max(source.stat().st_size - offset, 0)
    except OSError as exc:
        raise MedDenoiseError(f"{path}: cannot read the data file {source.name} ({exc.strerror or exc})") from None
    # the claim is checked before the payload is read or decompressed
    check_claimed_size(str(path), tuple(layout.sizes), dtype, data_bytes=available, encoding=kind)
    with open(source, "rb") as handle:
        handle.seek(offset)
        payload = handle.read()
    try:
        if encoding in ("gzip", "gz"):
            payload = gzip.decompress(payload)
        elif encoding in ("bzip2", "bz2"):
            payload = bz2.decompress(payload)
        elif encoding in ("ascii", "text", "txt"):
            values = np.array(payload.decode("latin-1").split(), dtype=np.float64)
            if values.size != count:
                raise MedDenoiseError(f"{path}: NRRD holds {values.size} values, the header says {count}")
            return values.astype(dtype.newbyteorder("=")).reshape(tuple(reversed(layout.sizes)))
        elif encoding != "raw":
            raise MedDenoiseError(f"{path}: NRRD encoding {encoding!r} is not supported")
    except (OSError, EOFError, ValueError) as exc:
        raise MedDenoiseError(f"{path}: corrupt NRRD data ({exc})") from None
    if len(payload) < expected:
        raise MedDenoiseError(f"{path}: NRRD data is truncated ({len(payload)} of {expected} bytes)")
    array = np.frombuffer(payload[:expected], dtype=dtype).reshape(tuple(reversed(layout.sizes)))
    return array.astype(dtype.newbyteorder("="))


def read_nrrd_series(path: str | Path):
    """Read a NRRD series: ``(array (T, Z, Y, X[, C]), spacing, origin (LPS), direction, layout)``."""
    path = Path(path)
    fields, key_values, comments, offset = read_nrrd_header(path)
    layout = _layout(path, fields, key_values, comments)
    spacing, origin, direction = _geometry(path, layout)
    array = np.ascontiguousarray(np.transpose(_data(path, layout, offset), layout.order))
    return array, spacing, origin, direction, layout


def _format_vector(values) -> str:
    return "(" + ",".join(repr(float(v)) for v in values) + ")"


def write_nrrd_series(
    path: str | Path,
    array: np.ndarray,
    spacing,
    origin,
    direction,
    layout: NrrdLayout | None,
    frame_label: str = "frame",
    frame_values: tuple[str, ...] = (),
    compress: bool = True,
    gradients: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Write ``array`` ``(T, Z, Y, X[, C])`` as an attached NRRD (``path`` is written as given, not atomically).

    With a ``layout`` (from :func:`read_nrrd_series`) the file has the input's axis order and header; the geometry
    lines are rewritten from ``spacing``/``origin``/``direction`` only when they differ from the layout's. Without
    one, Slicer's sequence layout is used: ``kinds: [vector] domain domain domain list``, frame labels and index
    values as key/values; with ``gradients`` (``(F,)`` b-values in s/mm^2, ``(F, 3)`` unit directions in LPS), the
    diffusion-weighted NRRD that 3D Slicer and DWIConvert write (:func:`dwmri_header`).
    """
    array = np.asarray(array)
    dtype = np.dtype("float32") if array.dtype == np.float64 and layout is None else array.dtype.newbyteorder("=")
    if dtype not in _TYPE_NAME:
        raise MedDenoiseError(f"{path}: NRRD cannot hold {array.dtype} voxels")
    direction = np.asarray(direction, dtype=float)
    if layout is None:
        components = array.ndim == 5
        n = 5 if components else 4
        spatial = (1, 2, 3) if components else (0, 1, 2)
        sizes = [*(reversed(array.shape[1:4])), array.shape[0]]
        if components:
            sizes = [array.shape[4], *sizes]
        kinds = (["vector"] if components else []) + ["domain"] * 3 + ["list"]
        frame = n - 1
        fields = [
            ("dimension", str(n)),
            ("space", "left-posterior-superior"),
            ("sizes", " ".join(map(str, sizes))),
            ("space directions", ""),
            ("kinds", " ".join(kinds)),
            ("labels", " ".join('""' if a != frame else f'"{frame_label}"' for a in range(n))),
            ("space origin", ""),
        ]
        key_values = [(f"axis {frame} index type", "numeric" if _numeric(frame_values) else "text")]
        if frame_values:
            key_values.append((f"axis {frame} index values", " ".join(frame_values)))
        if gradients is not None:
            frame_fields, key_values = dwmri_header(*gradients)
            fields += frame_fields
        layout = NrrdLayout(tuple(fields), tuple(key_values), tuple(sizes), frame, 0 if components else None, spatial)
    file_array = np.transpose(np.asarray(array, dtype=dtype), np.argsort(layout.order))
    if tuple(reversed(file_array.shape)) != layout.sizes:
        raise MedDenoiseError(f"{path}: array shape {array.shape} does not fit the NRRD layout sizes {layout.sizes}")
    space = layout.field("space", "left-posterior-superior").lower()
    signs = np.array(_SPACES.get(space, (1, 1, 1)), dtype=float)
    axes = np.asarray(direction) @ np.diag(spacing) * signs[:, None]
    words = ["none"] * len(layout.sizes)
    for column, axis in enumerate(layout.spatial_axes):
        words[axis] = _format_vector(axes[:, column])
    new_directions, new_origin = " ".join(words), _format_vector(np.asarray(origin) * signs)
    try:  # keep the input's geometry lines verbatim when the geometry is the same
        old_spacing, old_origin, old_direction = _geometry(Path(path), layout)
        unchanged = (
            np.allclose(old_spacing, spacing, rtol=0, atol=1e-9)
            and np.allclose(old_origin, origin, rtol=0, atol=1e-9)
            and np.allclose(old_direction, direction, rtol=0, atol=1e-12)
        )
    except (MedDenoiseError, IndexError, ValueError, TypeError):  # a layout made here has no geometry lines yet
        unchanged = False
    encoding = "gzip" if compress else "raw"
    lines = ["NRRD0004", *layout.comments, f"type: {_TYPE_NAME[dtype]}"]
    for name, value in layout.fields:
        if name in _REWRITTEN:
            continue
        if name == "space directions" and not unchanged:
            value = new_directions
        elif name == "space origin" and not unchanged:
            value = new_origin
        lines.append(f"{name}: {value}")
    if dtype.itemsize > 1:
        lines.append("endian: little")
    lines.append(f"encoding: {encoding}")
    lines += [f"{key}:={value}" for key, value in layout.key_values]
    payload = np.ascontiguousarray(file_array).astype(dtype.newbyteorder("<"), copy=False).tobytes()
    if compress:
        payload = gzip.compress(payload, compresslevel=1)
    with open(path, "wb") as handle:
        handle.write(("\n".join(lines) + "\n\n").encode("latin-1"))
        handle.write(payload)


def dwmri_header(b_values: np.ndarray, directions: np.ndarray) -> tuple[list, list]:
    """``(fields, key_values)`` of a diffusion-weighted NRRD (3D Slicer's and DWIConvert's convention): the
    measurement frame is the identity of the ``left-posterior-superior`` space, so each ``DWMRI_gradient_NNNN`` is a
    frame's LPS direction, scaled to ``sqrt(b / DWMRI_b-value)`` (zero for b = 0)."""
    b_values = np.asarray(b_values, dtype=np.float64)
    b_max = float(b_values.max()) if b_values.size else 0.0
    key_values = [("modality", "DWMRI"), ("DWMRI_b-value", f"{b_max:g}")]
    for index, (b, direction) in enumerate(zip(b_values, np.asarray(directions, dtype=np.float64), strict=True)):
        scale = math.sqrt(b / b_max) if b_max > 0 and b > 0 else 0.0
        vector = np.asarray(direction) * scale
        vector[np.abs(vector) < 1e-12] = 0.0
        key_values.append((f"DWMRI_gradient_{index:04d}", " ".join(f"{v:.8g}" for v in vector)))
    return [("measurement frame", "(1,0,0) (0,1,0) (0,0,1)")], key_values


def _numeric(values: tuple[str, ...]) -> bool:
    try:
        [float(v) for v in values]
    except ValueError:
        return False
    return True
