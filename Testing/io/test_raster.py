"""PNG and BMP that ITK's readers get wrong: grey + alpha PNG (ITK cannot read two components), grey palettes (ITK
expands them to RGB), 1-bit BMP (ITK reads 8, 24 and 32 bits only)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage.io import imread

from meddenoiselib.errors import InputError
from meddenoiselib.io import read_volume, write_volume


def _grey_alpha_png(path, grey: np.ndarray) -> None:
    """A grey + alpha PNG (colour type 4) at ``grey``'s bit depth (8 or 16), opaque."""
    depth = 16 if grey.dtype == np.uint16 else 8
    pixels = np.stack([grey, np.full_like(grey, np.iinfo(grey.dtype).max)], axis=-1).astype(f">u{depth // 8}")
    rows = b"".join(b"\0" + row.tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", grey.shape[1], grey.shape[0], depth, 4, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grey_alpha_png_reads_its_grey_at_full_depth(tmp_path, mr_png, dtype):
    grey = imread(mr_png).astype(dtype) * (257 if dtype == np.uint16 else 1)
    _grey_alpha_png(tmp_path / "la.png", grey)
    volume = read_volume(tmp_path / "la.png")
    assert volume.array.dtype == dtype and volume.num_components == 1 and volume.source.is_2d
    np.testing.assert_array_equal(volume.array[0], grey)
    back = read_volume(write_volume(volume, tmp_path / "out.png"))
    np.testing.assert_array_equal(back.array, volume.array)


def test_a_grey_palette_png_is_one_grey_component(tmp_path, mr_png):
    grey = imread(mr_png)
    Image.fromarray(grey).convert("P").save(tmp_path / "palette.png")  # Pillow writes a grey palette
    volume = read_volume(tmp_path / "palette.png")
    assert volume.num_components == 1
    np.testing.assert_array_equal(volume.array[0], grey)
    assert Image.open(write_volume(volume, tmp_path / "out.png")).mode == "L"


def test_a_one_bit_bmp_is_refused_in_words(tmp_path, mr_png):
    Image.fromarray(imread(mr_png) > 100).save(tmp_path / "mask.bmp")
    with pytest.raises(InputError, match="mask.bmp: 1-bit .*BMP is not supported"):
        read_volume(tmp_path / "mask.bmp")
