"""Property-style round trips: random small volumes of every dtype each format holds, write -> read, exactly.

Each (format, dtype) pair is tried on several random volumes (random shape including one-voxel axes, random
values over the dtype's whole range, random oblique geometry). Values and dtype must come back bit for bit;
geometry to the format's precision (NIfTI stores float32); formats without 3D geometry (TIFF, 2D images) are
checked for values only. DICOM round trips go through real source files of each pixel kind: the values written
are random physical values the source's stored representation can hold.
"""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from meddenoiselib.io import Volume, read_volume, write_volume
from meddenoiselib.io.dicom_frames import read_dicom_image
from meddenoiselib.io.volume import SourceInfo

from ..conftest import dicom_testdata, leftover_temporaries

ALL = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "uint64", "float32", "float64")
FORMATS = {
    ".nii.gz": ALL,
    ".nii": ALL,
    ".nrrd": ALL,
    ".nhdr": ALL,
    ".mha": ALL,
    ".mhd": ALL,
    ".tif": ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32"),
    ".png": ("uint8", "uint16"),
    ".bmp": ("uint8",),
}
GEOMETRY = {".nii.gz": 1e-4, ".nii": 1e-4, ".nrrd": 1e-9, ".nhdr": 1e-9, ".mha": 1e-9, ".mhd": 1e-9}
TRIALS = 4


def _random_values(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    kind = np.dtype(dtype)
    if kind.kind in "iu":
        info = np.iinfo(kind)
        return rng.integers(info.min, info.max, size=shape, dtype=kind, endpoint=True)
    # finite values over many orders of magnitude, both signs, and exact zeros
    exponent = rng.uniform(-30, 30, size=shape)
    values = rng.choice([-1.0, 1.0], size=shape) * 10.0**exponent
    values[rng.random(shape) < 0.1] = 0.0
    return values.astype(kind)


def _random_geometry(rng: np.random.Generator) -> dict:
    a, b, c = rng.uniform(-np.pi, np.pi, size=3)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    return {
        "spacing": tuple(rng.uniform(0.1, 5.0, size=3)),
        "origin": tuple(rng.uniform(-500, 500, size=3)),
        "direction": rz @ ry @ rx,
    }


@pytest.mark.parametrize("suffix, dtype", [(s, d) for s, dtypes in FORMATS.items() for d in dtypes])
def test_random_volumes_round_trip_exactly(tmp_path, suffix, dtype):
    rng = np.random.default_rng(abs(hash((suffix, dtype))) % 2**32)
    planar = suffix in (".png", ".bmp")
    for trial in range(TRIALS):
        shape = (1 if planar else int(rng.integers(1, 5)), int(rng.integers(1, 10)), int(rng.integers(1, 10)))
        geometry = {} if planar else _random_geometry(rng)
        volume = Volume(_random_values(rng, dtype, shape), source=SourceInfo(is_2d=planar), **geometry)
        back = read_volume(write_volume(volume, tmp_path / f"v{trial}{suffix}"))
        assert back.array.dtype == np.dtype(dtype), (trial, back.array.dtype)
        np.testing.assert_array_equal(back.array, volume.array)
        if suffix in GEOMETRY:
            tolerance = GEOMETRY[suffix]
            np.testing.assert_allclose(
                back.ijk_to_lps(),
                volume.ijk_to_lps(),
                rtol=0,
                atol=tolerance * max(1.0, np.abs(volume.ijk_to_lps()).max()),
            )
    assert leftover_temporaries(tmp_path) == []


DICOM_SOURCES = [
    "CT_small.dcm",  # signed 16-bit, intercept -1024 -> int32 HU
    "MR_small_bigendian.dcm",  # big-endian source, written little-endian
    "RG3_UNCR.dcm",  # MONOCHROME1, 10 bits stored
    "eCT_Supplemental.dcm",  # enhanced CT, per-frame functional groups
    "emri_small_jpeg_ls_lossless.dcm",  # compressed enhanced MR, 10 frames
    "rtdose.dcm",  # 32-bit dose, DoseGridScaling -> float64 Gy
    "MR2_UNCR.dcm",  # fractional rescale slope -> float32
]


@pytest.mark.parametrize("name", DICOM_SOURCES)
def test_random_physical_values_round_trip_through_dicom(tmp_path, name):
    source = dicom_testdata(name)
    image = read_dicom_image(source)
    template = read_volume(source)
    rng = np.random.default_rng(len(name))
    low, high = image.stored_range
    for trial in range(2):
        stored = rng.integers(low, high, size=template.shape, endpoint=True)
        values = np.empty(template.shape, dtype=np.float64)
        for k in range(template.shape[0]):
            frame = stored[k].astype(np.float64) * image.slopes[k] + image.intercepts[k]
            if image.photometric == "MONOCHROME1":
                frame = (image.slopes[k] * (low + high) + 2 * image.intercepts[k]) - frame
            values[k] = frame
        volume = template.with_array(values.astype(template.array.dtype))
        out = write_volume(volume, tmp_path / f"r{trial}.dcm")
        back = read_volume(out)
        assert back.array.dtype == template.array.dtype
        np.testing.assert_array_equal(back.array, volume.array)
        written = pydicom.dcmread(out)
        np.testing.assert_array_equal(written.pixel_array.reshape(stored.shape), stored)
        assert written.PhotometricInterpretation == image.photometric
    assert leftover_temporaries(tmp_path) == []
