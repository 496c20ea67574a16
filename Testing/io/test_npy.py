"""NumPy ``.npy`` input and output: axes (Z, Y, X), colour last, no geometry, no pickles."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from meddenoiselib.cli import main
from meddenoiselib.errors import InputError
from meddenoiselib.evaluation.metrics import psnr
from meddenoiselib.io import read_volume, write_volume
from meddenoiselib.io.volume import Volume


@pytest.fixture(scope="module")
def ct_hu(ct_series_dir) -> np.ndarray:
    """A 4 x 160 x 160 int16 crop of the bundled chest CT, in HU."""
    return read_volume(ct_series_dir).array[:, 180:340, 170:330].astype(np.int16)


def test_a_2d_image_and_a_volume_read_with_their_values(tmp_path, ct_crop, ct_hu):
    np.save(tmp_path / "slice.npy", ct_crop)
    image = read_volume(tmp_path / "slice.npy")
    assert image.shape == (1, 128, 128) and image.source.is_2d and image.array.dtype == np.float32
    np.testing.assert_array_equal(image.array[0], ct_crop)
    assert image.spacing == (1.0, 1.0, 1.0) and image.source.format == "npy"
    # Fortran order and big-endian storage read as the same values, native and C-ordered
    np.save(tmp_path / "volume.npy", np.asfortranarray(ct_hu.astype(">i2")))
    volume = read_volume(tmp_path / "volume.npy")
    assert volume.shape == (4, 160, 160) and not volume.source.is_2d
    assert volume.array.dtype == np.int16 and volume.array.dtype.isnative and volume.array.flags.c_contiguous
    np.testing.assert_array_equal(volume.array, ct_hu)


def test_colour_is_the_last_axis_and_goes_back_as_it_came(tmp_path, ct_crop):
    rgb = np.stack([ct_crop * 255, ct_crop * 200, ct_crop * 100], axis=-1).astype(np.uint8)
    np.save(tmp_path / "rgb.npy", rgb)
    image = read_volume(tmp_path / "rgb.npy")
    assert image.shape == (1, 128, 128) and image.num_components == 3 and image.source.is_2d
    write_volume(image, tmp_path / "copy.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "copy.npy"), rgb)
    rgba = np.concatenate([rgb, np.full((128, 128, 1), 255, np.uint8)], axis=-1)
    np.save(tmp_path / "rgba.npy", rgba)
    np.testing.assert_array_equal(read_volume(tmp_path / "rgba.npy").array[0], rgb)  # alpha dropped


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array([{"a": 1}, None], dtype=object), r"Python objects \(a pickle\), which are never loaded"),
        (np.zeros((64, 64), np.complex64), "complex values"),
        (np.zeros((2, 3, 64, 64), np.float32), "a 4D array"),
        (np.zeros((64, 64, 2), np.float32), "2 pixels"),
        (np.zeros((0, 64), np.float32), "empty"),
    ],
)
def test_arrays_that_are_not_an_image_are_refused_by_name(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(InputError, match=message) as caught:
        read_volume(path)
    assert str(path) in str(caught.value)


def test_a_truncated_file_is_refused(tmp_path, ct_hu):
    path = tmp_path / "cut.npy"
    np.save(path, ct_hu)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(InputError, match="truncated"):
        read_volume(path)
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(InputError, match="not a NumPy .npy array"):
        read_volume(tmp_path / "text.npy")


def test_denoised_npy_equals_the_same_array_denoised_as_nifti(tmp_path, ct_hu):
    """One data path: a noisy CT crop in HU as .npy, denoised with default flags and ``--modality ct``, equals the
    same array written as NIfTI (1 mm voxels, the .npy's geometry) and denoised the same way; the output keeps the
    array's dtype and shape and removes noise (PSNR in W400 against the scan)."""
    noisy = (ct_hu + np.random.default_rng(3).normal(0.0, 40.0, ct_hu.shape)).round().astype(np.int16)
    np.save(tmp_path / "noisy.npy", noisy)
    write_volume(Volume(noisy), tmp_path / "noisy.nii.gz")
    for name in ("noisy.npy", "noisy.nii.gz"):
        out = tmp_path / name.replace("noisy", "out")
        assert main(["denoise", str(tmp_path / name), str(out), "--modality", "ct", "-q"]) == 0
    result = np.load(tmp_path / "out.npy")
    assert result.dtype == np.int16 and result.shape == ct_hu.shape
    np.testing.assert_array_equal(result, read_volume(tmp_path / "out.nii.gz").array)

    def window(a):
        return np.clip(a.astype(np.float64), -160, 240)

    gain = psnr(window(result), window(ct_hu), 400.0) - psnr(window(noisy), window(ct_hu), 400.0)
    assert gain > 3.0


def test_writing_geometry_to_npy_says_it_is_lost_and_a_folder_finds_npy_files(tmp_path, ct_series_dir, caplog):
    scan = read_volume(ct_series_dir)
    part = Volume(scan.array[:, :64, :64], scan.spacing, scan.origin, scan.direction)
    with caplog.at_level(logging.WARNING):
        write_volume(part, tmp_path / "part.npy")
    assert "keeps the pixels only, not the voxel size" in caplog.text
    assert np.load(tmp_path / "part.npy").shape == (4, 64, 64)
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "a.npy", scan.array[:1, :64, :64].astype(np.float32))
    out = tmp_path / "out"
    report = tmp_path / "{name}.json"
    assert main(["denoise", str(folder), str(out), "--model", "median", "--report", str(report), "-q"]) == 0
    assert np.load(out / "a.npy").shape == (1, 64, 64)
    assert json.loads((tmp_path / "a.json").read_text())["method"] == "median"


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_half_floats_are_written_as_float32_where_the_format_has_no_float16(tmp_path, ct_crop, suffix):
    """A float16 array (a mixed-precision pipeline's output) written as NIfTI failed ('data dtype float16 not
    supported'); NIfTI and ITK's formats get float32, which holds each value exactly; .npy keeps float16."""
    np.save(tmp_path / "half.npy", ct_crop.astype(np.float16))
    image = read_volume(tmp_path / "half.npy")
    assert image.array.dtype == np.float16
    write_volume(image, tmp_path / f"out{suffix}")
    written = read_volume(tmp_path / f"out{suffix}")
    assert written.array.dtype == np.float32
    np.testing.assert_array_equal(written.array, image.array.astype(np.float32))
    write_volume(image, tmp_path / "out.npy")
    assert np.load(tmp_path / "out.npy").dtype == np.float16
