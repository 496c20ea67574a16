"""PNG and BMP facts ITK's readers hide or get wrong, read from the files' own headers: a 1-bit (bilevel) image,
a grey palette (ITK expands it to RGB), a grey + alpha PNG (ITK cannot read two components)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

__all__ = ["PngHeader", "bmp_bits", "decode_png", "png_header", "png_has_gray_palette"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types (IHDR): grey, RGB, palette, grey + alpha, RGB + alpha
GREY, RGB, PALETTE, GREY_ALPHA, RGB_ALPHA = 0, 2, 3, 4, 6


class PngHeader(tuple):
    """``(width, height, bit_depth, colour_type)`` of a PNG's IHDR chunk."""

    width = property(lambda self: self[0])
    height = property(lambda self: self[1])
    bit_depth = property(lambda self: self[2])
    colour_type = property(lambda self: self[3])


def png_header(path: Path) -> PngHeader | None:
    """The IHDR fields of a PNG file, or None when it does not start like one (ITK then says why)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(29)
    except OSError:
        return None
    if len(head) < 29 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    return PngHeader((width, height, depth, colour))


def png_has_gray_palette(path: Path) -> bool:
    """Whether a palette PNG's PLTE entries are all grey (red = green = blue)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind == b"PLTE":
            entries = np.frombuffer(data[position + 8 : position + 8 + length // 3 * 3], np.uint8).reshape(-1, 3)
            return entries.size > 0 and bool(np.all(entries == entries[:, :1]))
        if kind == b"IDAT":
            return False
        position += 12 + length
    return False


def decode_png(path: Path) -> np.ndarray:
    """A PNG's pixels at their full bit depth, ``(Y, X)`` or ``(Y, X, C)`` (imagecodecs' libpng)."""
    import imagecodecs

    return imagecodecs.png_decode(Path(path).read_bytes())


def bmp_bits(path: Path) -> int | None:
    """A BMP's bits per pixel, or None when it does not start like one."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(30)
    except OSError:
        return None
    if len(head) < 30 or head[:2] != b"BM":
        return None
    return int.from_bytes(head[28:30], "little")
