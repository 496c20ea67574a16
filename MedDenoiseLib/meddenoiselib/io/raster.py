"""PNG and BMP facts ITK's readers hide or get wrong, read from the files' own headers: a 1-bit (bilevel) image,
a grey palette (ITK expands it to RGB), a grey + alpha PNG (ITK cannot read two components)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["PngHeader", "bmp_bits", "bmp_has_gray_palette", "decode_png", "png_has_gray_palette", "png_header"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types (IHDR): grey, RGB, palette, grey + alpha, RGB + alpha
GREY, RGB, PALETTE, GREY_ALPHA, RGB_ALPHA = 0, 2, 3, 4, 6
#: bytes of a BMP's file header and BITMAPINFOHEADER, which hold its bit depth and palette size
_BMP_HEADER = 54


class PngHeader(NamedTuple):
    """The fields of a PNG's IHDR chunk that matter here."""

    width: int
    height: int
    bit_depth: int
    colour_type: int


def _head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of a file (fewer for a shorter file; empty when it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def png_header(path: Path) -> PngHeader | None:
    """The IHDR fields of a PNG file, or None when it does not start like one (ITK then says why)."""
    head = _head(path, 29)
    if len(head) < 29 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    return PngHeader(*struct.unpack(">IIBB", head[16:26]))


def png_has_gray_palette(path: Path) -> bool:
    """Whether a palette PNG's PLTE entries are all grey (red = green = blue); the chunks are walked from the file
    up to the palette (which comes before the image data), not read whole."""
    try:
        with open(path, "rb") as handle:
            handle.seek(len(_PNG_SIGNATURE))
            while len(chunk := handle.read(8)) == 8:
                length, kind = struct.unpack(">I4s", chunk)
                if kind == b"PLTE":
                    palette = handle.read(length // 3 * 3)
                    entries = np.frombuffer(palette, np.uint8).reshape(-1, 3)
                    return entries.size > 0 and bool(np.all(entries == entries[:, :1]))
                if kind == b"IDAT":
                    return False
                handle.seek(length + 4, 1)  # the chunk's data and CRC
    except OSError:
        return False
    return False


def decode_png(path: Path) -> np.ndarray:
    """A PNG's pixels at their full bit depth, ``(Y, X)`` or ``(Y, X, C)`` (imagecodecs' libpng)."""
    import imagecodecs

    return imagecodecs.png_decode(Path(path).read_bytes())


def bmp_bits(path: Path) -> int | None:
    """A BMP's bits per pixel, or None when it does not start like one."""
    head = _head(path, 30)
    if len(head) < 30 or head[:2] != b"BM":
        return None
    return int.from_bytes(head[28:30], "little")


def bmp_has_gray_palette(path: Path) -> bool:
    """Whether a BMP is 8-bit with a gray palette (each entry's blue, green and red equal)."""
    head = _head(path, _BMP_HEADER)
    if len(head) < _BMP_HEADER or head[:2] != b"BM":
        return False
    bits = int.from_bytes(head[28:30], "little")
    info_size = int.from_bytes(head[14:18], "little")
    colours = int.from_bytes(head[46:50], "little") or 256
    if bits != 8 or colours > 256:
        return False
    try:
        with open(path, "rb") as handle:
            handle.seek(14 + info_size)
            palette = handle.read(4 * colours)
    except OSError:
        return False
    entries = np.frombuffer(palette[: len(palette) // 4 * 4], dtype=np.uint8).reshape(-1, 4)
    return entries.size > 0 and bool(np.all(entries[:, 0] == entries[:, 1]) and np.all(entries[:, 1] == entries[:, 2]))
