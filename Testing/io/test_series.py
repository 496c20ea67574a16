"""4D NIfTI and NRRD series: read in any axis layout, written back in the same layout (header, key/values, geometry)."""

from __future__ import annotations

import bz2
import gzip

import nibabel as nib
import numpy as np
import pytest

from meddenoiselib import MedDenoiseError
from meddenoiselib.io import is_series_file, read_series, write_series
from meddenoiselib.io.nrrd import read_nrrd_header

# frame axis position, encoding, endianness: Slicer sequences put the list axis last, DWI files often first
NRRD_CASES = [
    ("first", "gzip", "little"),
    ("last", "raw", "big"),
    ("first", "bzip2", "little"),
    ("last", "ascii", "little"),
]


def _oblique_affine() -> np.ndarray:
    angle = np.deg2rad(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.9, 1.2, 3.0])
    affine[:3, 3] = [-40.5, 22.0, 7.25]
    return affine


def _nifti_4d(path, shape=(7, 6, 5, 4)) -> np.ndarray:
    data = np.random.default_rng(0).integers(-500, 1500, size=shape).astype(np.int16)
    image = nib.Nifti1Image(data, _oblique_affine())
    image.header.set_xyzt_units("mm", "sec")
    image.header["pixdim"][4] = 2.5
    image.header["descrip"] = b"perfusion test"
    nib.save(image, str(path))
    return data


def test_nifti_series_round_trip_keeps_header_and_affine(tmp_path):
    source = tmp_path / "perfusion.nii.gz"
    data = _nifti_4d(source)
    assert is_series_file(source)
    series = read_series(source)
    assert series.array.shape == (4, 5, 6, 7) and series.array.dtype == np.int16  # (T, Z, Y, X)
    assert series.array[3, 4, 2, 1] == data[1, 2, 4, 3]  # voxel (i=1, j=2, k=4) of frame 3
    assert series.frame_values == ("0", "2.5", "5", "7.5") and series.frame_label == "time"
    ras = series.ijk_to_ras()
    np.testing.assert_allclose(ras, _oblique_affine(), rtol=0, atol=1e-6)

    out = tmp_path / "out.nii.gz"
    write_series(series.with_array(series.array + 1), out)
    written = nib.load(str(out))
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), data + 1)
    np.testing.assert_array_equal(written.affine, nib.load(str(source)).affine)  # bit for bit
    assert written.header["pixdim"][4] == 2.5 and written.header.get_xyzt_units() == ("mm", "sec")
    assert written.header["descrip"].tobytes().rstrip(b"\0") == b"perfusion test"
    assert written.get_data_dtype() == np.int16
    with pytest.raises(MedDenoiseError, match="already exists"):
        write_series(series, out)


def _nrrd_bytes(data_tkji: np.ndarray, frame_axis: str, encoding: str, endian: str) -> bytes:
    """A NRRD written by hand (not by the code under test): 3 spatial axes (RAS space) plus a gradient axis."""
    t, k, j, i = data_tkji.shape
    if frame_axis == "first":
        file_array = np.transpose(data_tkji, (1, 2, 3, 0))  # C order (k, j, i, t): t varies fastest
        sizes, kinds = f"{t} {i} {j} {k}", "list domain domain domain"
        directions = "none (0.9,0,0) (0,1.2,0) (0,0,3)"
        frame_index = 0
    else:
        file_array = data_tkji
        sizes, kinds = f"{i} {j} {k} {t}", "domain domain domain list"
        directions = "(0.9,0,0) (0,1.2,0) (0,0,3) none"
        frame_index = 3
    dtype = np.dtype(">i2" if endian == "big" else "<i2")
    raw = np.ascontiguousarray(file_array).astype(dtype).tobytes()
    if encoding == "gzip":
        raw = gzip.compress(raw)
    elif encoding == "bzip2":
        raw = bz2.compress(raw)
    elif encoding == "ascii":
        raw = " ".join(str(int(v)) for v in np.ascontiguousarray(file_array).ravel()).encode()
    header = [
        "NRRD0005",
        "# written by hand for the test",
        "type: short",
        "dimension: 4",
        "space: right-anterior-superior",
        f"sizes: {sizes}",
        f"space directions: {directions}",
        f"kinds: {kinds}",
        f"endian: {endian}",
        f"encoding: {encoding}",
        "space origin: (10,-20,5.5)",
        "measurement frame: (1,0,0) (0,1,0) (0,0,1)",
        "modality:=DWMRI",
        "DWMRI_b-value:=1000",
    ] + [f"DWMRI_gradient_{n:04d}:=0 0 {n}" for n in range(t)]
    assert frame_index in (0, 3)
    return ("\n".join(header) + "\n\n").encode() + raw


@pytest.mark.parametrize("frame_axis, encoding, endian", NRRD_CASES)
def test_nrrd_series_in_any_layout_round_trips(tmp_path, frame_axis, encoding, endian):
    data = np.random.default_rng(1).integers(-300, 3000, size=(5, 3, 4, 6)).astype(np.int16)  # (T, k, j, i)
    source = tmp_path / "dwi.nrrd"
    source.write_bytes(_nrrd_bytes(data, frame_axis, encoding, endian))
    assert is_series_file(source)
    series = read_series(source)
    np.testing.assert_array_equal(series.array, data)
    assert series.frame_label == "gradient"
    # RAS space in the file: the library's LPS origin has x and y negated
    assert series.origin == (-10.0, 20.0, 5.5) and series.spacing == (0.9, 1.2, 3.0)
    np.testing.assert_allclose(series.ijk_to_ras()[:3, 3], (10, -20, 5.5))

    out = tmp_path / "out.nrrd"
    write_series(series.with_array(series.array * 2), out)
    fields, key_values, _, _ = read_nrrd_header(out)
    original_fields, original_keys, _, _ = read_nrrd_header(source)
    kept = {"dimension", "space", "sizes", "space directions", "kinds", "space origin", "measurement frame"}
    assert {k: v for k, v in fields if k in kept} == {k: v for k, v in original_fields if k in kept}
    assert key_values == original_keys  # DWMRI gradients and b-value in their order
    np.testing.assert_array_equal(read_series(out).array, data * 2)


def test_three_dimensional_and_vector_files_are_not_series(tmp_path):
    image = nib.Nifti1Image(np.zeros((4, 4, 3), np.int16), np.eye(4))
    nib.save(image, str(tmp_path / "three.nii.gz"))
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 1), np.int16), np.eye(4)), str(tmp_path / "one_frame.nii.gz"))
    vector = tmp_path / "rgb.nrrd"
    vector.write_bytes(
        b"NRRD0004\ntype: uchar\ndimension: 4\nspace: left-posterior-superior\nsizes: 3 4 4 2\n"
        b"space directions: none (1,0,0) (0,1,0) (0,0,1)\nkinds: RGB-color domain domain domain\n"
        b"encoding: raw\nspace origin: (0,0,0)\n\n" + bytes(96)
    )
    for name in ("three.nii.gz", "one_frame.nii.gz", "rgb.nrrd"):
        assert not is_series_file(tmp_path / name), name


def test_broken_series_files_fail_with_one_message(tmp_path):
    data = np.zeros((2, 3, 4, 5), np.int16)
    truncated = tmp_path / "truncated.nrrd"
    truncated.write_bytes(_nrrd_bytes(data, "last", "raw", "little")[:-10])
    with pytest.raises(MedDenoiseError, match="truncated"):
        read_series(truncated)
    no_geometry = tmp_path / "no_geometry.nrrd"
    no_geometry.write_bytes(b"NRRD0004\ntype: short\ndimension: 4\nsizes: 5 4 3 2\nencoding: raw\n\n" + bytes(240))
    with pytest.raises(MedDenoiseError, match="needs 'space' and 'space directions'"):
        read_series(no_geometry)
    with pytest.raises(MedDenoiseError, match="written as .nii, .nii.gz, .nrrd, .mgz or .tif"):
        write_series(read_series(_write(tmp_path / "ok.nrrd", data)), tmp_path / "out.mha")


def _write(path, data):
    path.write_bytes(_nrrd_bytes(data, "last", "raw", "little"))
    return path
