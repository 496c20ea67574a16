"""Round trips through every format keep voxel values, dtype and geometry exactly."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from meddenoiselib.io import Volume, read_volume, write_volume
from meddenoiselib.io.volume import SourceInfo


def _oblique_volume(dtype: str) -> Volume:
    """A non-axis-aligned, anisotropic volume with structured integer values."""
    rng = np.random.default_rng(0)
    angle = np.deg2rad(17.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    if info is not None:
        low, high = max(info.min, -3000), min(info.max, 3000)
        array = rng.integers(low, high, size=(7, 11, 13)).astype(dtype)
    else:
        array = rng.normal(size=(7, 11, 13)).astype(dtype)
    return Volume(array=array, spacing=(0.7, 0.9, 2.5), origin=(-120.5, 33.25, 7.125), direction=rotation @ tilt)


CASES = [
    ("scan.nii.gz", "int16"),
    ("scan.nii", "uint16"),
    ("scan.nii.gz", "float32"),
    ("scan.nrrd", "int16"),
    ("scan.nrrd", "float32"),
    ("scan.mha", "uint8"),
    ("scan.mha", "int32"),
    ("scan.mhd", "int16"),
]


@pytest.mark.parametrize("name, dtype", CASES)
def test_volume_formats_round_trip_geometry_and_values(tmp_path, name, dtype):
    volume = _oblique_volume(dtype)
    path = write_volume(volume, tmp_path / name)
    back = read_volume(path)
    assert back.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.spacing, volume.spacing, rtol=0, atol=1e-5)
    np.testing.assert_allclose(back.origin, volume.origin, rtol=0, atol=1e-4)
    np.testing.assert_allclose(back.direction, volume.direction, rtol=0, atol=1e-5)
    # a second trip through the file must be bit-exact (no drift)
    again = read_volume(write_volume(back, tmp_path / f"again_{name}"))
    assert again.spacing == back.spacing and again.origin == back.origin
    np.testing.assert_array_equal(again.direction, back.direction)


def test_world_coordinates_of_marked_voxel_survive_nifti_and_nrrd(tmp_path):
    volume = _oblique_volume("int16")
    array = np.zeros_like(volume.array)
    array[5, 3, 9] = 1000
    volume = volume.with_array(array)
    expected = volume.ijk_to_lps() @ np.array([9, 3, 5, 1.0])
    for name in ("m.nii.gz", "m.nrrd"):
        back = read_volume(write_volume(volume, tmp_path / name))
        k, j, i = np.argwhere(back.array == 1000)[0]
        np.testing.assert_allclose(back.ijk_to_lps() @ np.array([i, j, k, 1.0]), expected, atol=1e-4)
    # and SimpleITK, an independent reader, agrees on the physical point
    image = sitk.ReadImage(str(tmp_path / "m.nrrd"))
    np.testing.assert_allclose(image.TransformIndexToPhysicalPoint((9, 3, 5)), expected[:3], atol=1e-4)


def test_real_nifti_keeps_header_affine_bit_for_bit(tmp_path, mr_nifti):
    import nibabel as nib

    volume = read_volume(mr_nifti)
    assert volume.shape == (24, 58, 58) and volume.array.dtype == np.int16
    assert volume.spacing == pytest.approx((4.0, 4.0, 5.0))
    out = write_volume(volume, tmp_path / "mr.nii.gz")
    np.testing.assert_array_equal(nib.load(out).affine, nib.load(mr_nifti).affine)
    np.testing.assert_array_equal(np.asanyarray(nib.load(out).dataobj), np.asanyarray(nib.load(mr_nifti).dataobj))


@pytest.mark.parametrize("frames", [0, 3])
def test_scaled_integer_nifti_is_written_back_as_scaled_integers(tmp_path, mr_nifti, frames):
    """A NIfTI stored as int16 with scl_slope / scl_inter (dcm2niix's Philips MR, FSL, SPM) reads as float64 physical
    values; the denoised image goes back to int16 under the source's own slope and intercept (4x smaller than
    float64; unchanged values exactly, changed ones within half a step); the float32 residual stays float32; values
    beyond what the source's integers hold get a slope nibabel fits to their range."""
    import nibabel as nib

    from meddenoiselib.io import read_series, write_series

    head = nib.load(mr_nifti)
    stored = np.asarray(head.dataobj).astype(np.int16)
    if frames:
        stored = np.stack([stored + 7 * t for t in range(frames)], axis=-1)
    source = tmp_path / "scaled.nii.gz"
    image = nib.Nifti1Image(stored, head.affine, dtype=np.int16)
    image.header.set_slope_inter(0.0754, 3100.76)
    nib.save(image, source)
    slope, inter = nib.load(source).dataobj.slope, nib.load(source).dataobj.inter
    read, write = (read_series, write_series) if frames else (read_volume, write_volume)

    values = read(source)
    assert values.array.dtype == np.float64
    back = read(write(values, tmp_path / "same.nii.gz"))
    np.testing.assert_array_equal(back.array, values.array)  # unchanged values: exactly
    changed = values.with_array(values.array + np.random.default_rng(0).normal(0, 2.0, values.array.shape))
    out, residual = tmp_path / "out.nii.gz", tmp_path / "residual.nii.gz"
    write(changed, out)
    write(changed.with_array(changed.array.astype(np.float32)), residual, role="residual")

    written = nib.load(out)
    assert written.get_data_dtype() == np.int16
    assert (written.dataobj.slope, written.dataobj.inter) == (slope, inter)
    np.testing.assert_allclose(read(out).array, changed.array, rtol=0, atol=0.51 * slope)
    np.testing.assert_array_equal(written.affine, head.affine)
    assert nib.load(residual).get_data_dtype() == np.float32
    # beyond the int16 range under the source's scaling: a fitted slope instead of wrapped integers
    wide = values.with_array(values.array * 10.0)
    written = nib.load(write(wide, tmp_path / "wide.nii.gz"))
    assert written.get_data_dtype() == np.int16 and written.dataobj.slope != slope
    step = (wide.array.max() - wide.array.min()) / 65535
    np.testing.assert_allclose(read(tmp_path / "wide.nii.gz").array, wide.array, rtol=0, atol=0.51 * step + 1e-9)


def test_two_dimensional_nifti_stays_2d(tmp_path):
    import nibabel as nib

    data = np.arange(35, dtype=np.int16).reshape(5, 7)
    affine = np.diag([0.5, 0.25, 1.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "slice.nii.gz")
    volume = read_volume(tmp_path / "slice.nii.gz")
    assert volume.shape == (1, 7, 5) and volume.is_2d
    back = nib.load(write_volume(volume, tmp_path / "out.nii.gz"))
    assert back.shape == (5, 7)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), data)


@pytest.mark.parametrize(
    "fixture, dtype, shape", [("us_png", "uint8", (1, 540, 800)), ("xray_png", "uint8", (1, 512, 512))]
)
def test_png_round_trip(tmp_path, request, fixture, dtype, shape):
    path = request.getfixturevalue(fixture)
    volume = read_volume(path)
    assert volume.is_2d and volume.shape == shape and volume.array.dtype == np.dtype(dtype)
    back = read_volume(write_volume(volume, tmp_path / "out.png"))
    np.testing.assert_array_equal(back.array, volume.array)


def test_uint16_png_and_float_tiff_round_trip(tmp_path):
    volume = Volume(np.arange(3 * 40, dtype=np.uint16).reshape(1, 3, 40) * 500, source=SourceInfo(is_2d=True))
    back = read_volume(write_volume(volume, tmp_path / "u16.png"))
    np.testing.assert_array_equal(back.array, volume.array)
    stack = Volume(np.random.default_rng(1).normal(size=(4, 9, 10)).astype(np.float32), spacing=(0.5, 0.5, 3.0))
    back = read_volume(write_volume(stack, tmp_path / "stack.tif"))
    np.testing.assert_array_equal(back.array, stack.array)
    assert back.shape == (4, 9, 10)


def test_rgb_image_round_trip(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, size=(1, 20, 30, 3)).astype(np.uint8)
    volume = Volume(rgb, source=SourceInfo(is_2d=True))
    back = read_volume(write_volume(volume, tmp_path / "rgb.png"))
    assert back.num_components == 3
    np.testing.assert_array_equal(back.array, rgb)


def test_dicom_series_round_trip_writes_a_derived_series(tmp_path, ct_series_dir):
    volume = read_volume(ct_series_dir)
    assert volume.shape == (4, 512, 512) and volume.array.dtype == np.int16
    assert volume.array.min() == -1024  # HU: stored 0 + intercept -1024
    assert volume.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))
    changed = volume.with_array(np.clip(volume.array.astype(np.int32) + 7, -1024, 2976).astype(np.int16))
    out = write_volume(changed, tmp_path / "derived")
    back = read_volume(out)
    np.testing.assert_array_equal(back.array, changed.array)
    assert back.same_geometry(volume)

    sources = {pydicom.dcmread(f).SOPInstanceUID: pydicom.dcmread(f) for f in volume.source.dicom_files}
    written = sorted(out.iterdir())
    assert len(written) == 4
    series_uids, sop_uids = set(), set()
    for path in written:
        ds = pydicom.dcmread(path)
        source = pydicom.dcmread(ct_series_dir / path.name)
        series_uids.add(ds.SeriesInstanceUID)
        sop_uids.add(ds.SOPInstanceUID)
        assert ds.SOPInstanceUID not in sources and ds.SeriesInstanceUID != source.SeriesInstanceUID
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SeriesDescription.endswith("denoised")
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        for keyword in (
            "StudyInstanceUID",
            "PatientID",
            "PatientName",
            "FrameOfReferenceUID",
            "StudyDate",
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "PixelSpacing",
            "KVP",
            "PixelRepresentation",
            "BitsAllocated",
            "BitsStored",
            "RescaleSlope",
            "RescaleIntercept",
        ):
            assert ds.get(keyword) == source.get(keyword), keyword
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        # stored values follow the kept rescale: stored = HU - intercept
        hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        source_hu = source.pixel_array.astype(np.int32) - 1024
        np.testing.assert_array_equal(hu, np.clip(source_hu + 7, -1024, 2976))
    assert len(series_uids) == 1 and len(sop_uids) == 4


def test_dicom_values_beyond_the_stored_range_are_clipped_not_wrapped(tmp_path, ct_series_dir):
    volume = read_volume(ct_series_dir)
    low = volume.with_array(np.full(volume.array.shape, -2000, dtype=np.int16))  # below stored 0 (HU -1024)
    back = read_volume(write_volume(low, tmp_path / "low"))
    assert int(back.array.min()) == -1024 and int(back.array.max()) == -1024


def test_a_long_series_description_keeps_the_suffix_within_64_characters(tmp_path, ct_series_dir):
    """A 60-character SeriesDescription (the most a scanner's LO value holds is 64) and " denoised": the written
    value is 64 characters, ends with the suffix, begins with the original, and pydicom writes it without a warning
    about the value's length."""
    import warnings

    from meddenoiselib.io.volume import Volume

    source = ct_series_dir / "00-slice099.dcm"
    ds = pydicom.dcmread(source)
    ds.SeriesDescription = "Thorax 1.0 B31f lung window axial reconstruction series 0042"[:60].ljust(60, "x")
    long = tmp_path / "long.dcm"
    ds.save_as(long)
    volume = read_volume(long)
    assert isinstance(volume, Volume)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = write_volume(volume, tmp_path / "out.dcm")
    written = pydicom.dcmread(out).SeriesDescription
    assert len(written) == 64 and written.endswith(" denoised") and written.startswith("Thorax 1.0 B31f")


def test_single_dicom_file_round_trip(tmp_path, ct_series_dir):
    source = ct_series_dir / "00-slice099.dcm"
    volume = read_volume(source)
    assert volume.is_2d and volume.shape == (1, 512, 512)
    out = write_volume(volume, tmp_path / "one.dcm")
    back = read_volume(out)
    np.testing.assert_array_equal(back.array, volume.array)
    assert pydicom.dcmread(out).SeriesDescription.endswith("denoised")


@pytest.mark.parametrize(
    ("name", "photometric"),
    [
        ("US1_J2KR.dcm", "YBR_RCT"),
        ("SC_ybr_full_422_uncompressed.dcm", "YBR_FULL_422"),
        ("OT-PAL-8-face.dcm", None),
        ("SC_rgb_32bit_2frame.dcm", "RGB"),
    ],
    ids=["us-jpeg2000-ybr", "ybr-422", "palette-no-meta-header", "rgb-32-bit-2-frames"],
)
def test_colour_dicom_writes_a_derived_rgb_image(tmp_path, name, photometric):
    """Ultrasound DICOM is usually colour (RGB or YBR, often compressed): the derived image is written as
    uncompressed interleaved RGB with the source's header otherwise, and reads back (here, with pydicom and with
    GDCM) as the values written, at the source's bit depth (32 bits stayed 32: a first version clipped to 16). The
    palette file has no meta header (pre-DICOM-3.0), which reading and writing both handle."""
    from ..conftest import dicom_testdata

    source = dicom_testdata(name)
    original = pydicom.dcmread(source, force=True)
    if photometric is not None:
        assert original.PhotometricInterpretation == photometric
    volume = read_volume(source)
    assert volume.array.ndim == 4 and volume.array.shape[-1] == 3
    changed = volume.with_array((volume.array.max() - volume.array).astype(volume.array.dtype))
    out = write_volume(changed, tmp_path / "derived.dcm")
    written = pydicom.dcmread(out)
    assert written.PhotometricInterpretation == "RGB" and written.SamplesPerPixel == 3
    assert written.PlanarConfiguration == 0 and not written.file_meta.TransferSyntaxUID.is_compressed
    assert written.SOPClassUID == original.SOPClassUID and written.SeriesInstanceUID != original.SeriesInstanceUID
    assert not [keyword for keyword in written.dir() if "Palette" in keyword]
    np.testing.assert_array_equal(read_volume(out).array, changed.array)
    np.testing.assert_array_equal(written.pixel_array.reshape(changed.array.shape), changed.array)
    gdcm = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    np.testing.assert_array_equal(gdcm.reshape(changed.array.shape), changed.array)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii.gz"])
def test_a_single_sagittal_dicom_slice_keeps_its_geometry_in_any_3d_format(tmp_path, suffix):
    """A single DICOM slice outside the x-y plane (here pydicom's sagittal MR2_J2KI, JPEG 2000) was written as a 2D
    image whose 2x2 direction was singular: NRRD and MetaImage refused it ("cannot write nrrd (0.822001 0)"). It
    is now a one-slice 3D image with the slice's full direction and origin."""
    from ..conftest import dicom_testdata

    volume = read_volume(dicom_testdata("MR2_J2KI.dcm"))
    assert volume.is_2d and abs(volume.direction[2, 1]) == 1.0  # the rows run along the patient's z axis
    back = read_volume(write_volume(volume, tmp_path / f"slice{suffix}"))
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.direction, volume.direction, atol=1e-5)
    np.testing.assert_allclose(back.origin, volume.origin, atol=1e-4)
    np.testing.assert_allclose(back.spacing[:2], volume.spacing[:2], rtol=1e-5)


def test_a_source_in_implicit_vr_under_an_explicit_syntax_is_written_with_its_tags(tmp_path):
    """pydicom's SC_rgb_jpeg.dcm is encoded in implicit VR although its transfer syntax (JPEG baseline) is explicit;
    pydicom reads it (warning) but its not-yet-decoded elements have no VR, which the explicit-VR writer could not
    encode ("With tag (0008,0023) got exception: encoding without a string argument": the whole denoising was lost at
    the last step). Each element is decoded before writing now: the derived file holds the source's tags and
    values, and reads back as the image written."""
    from ..conftest import dicom_testdata

    source = dicom_testdata("SC_rgb_jpeg.dcm")
    volume = read_volume(source)
    write_volume(volume, tmp_path / "derived.dcm")
    derived, original = pydicom.dcmread(tmp_path / "derived.dcm"), pydicom.dcmread(source, force=True)
    assert derived.ContentDate == original.ContentDate == "20200217"
    assert derived.PatientName == original.PatientName and derived.StudyInstanceUID == original.StudyInstanceUID
    assert derived.SeriesInstanceUID != original.SeriesInstanceUID and "DERIVED" in derived.ImageType
    np.testing.assert_array_equal(read_volume(tmp_path / "derived.dcm").array, volume.array)


def test_a_private_element_that_does_not_decode_as_its_dictionary_vr_keeps_its_bytes(tmp_path, ct_series_dir):
    """The sample chest CT's private (01F1,1026) holds the text b'0.15' where the private dictionary says FD: in a
    copy encoded in implicit VR under an explicit transfer syntax (as SC_rgb_jpeg.dcm is) it cannot be decoded to
    get its VR, and is written with its bytes as UN; every standard element keeps its value."""
    from pydicom.uid import ExplicitVRLittleEndian

    dataset = pydicom.dcmread(sorted(ct_series_dir.glob("*.dcm"))[0])
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.save_as(tmp_path / "mislabelled.dcm", implicit_vr=True, little_endian=True, force_encoding=True)
    with pytest.warns(UserWarning, match="Expected explicit VR, but found implicit VR"):
        volume = read_volume(tmp_path / "mislabelled.dcm")
    write_volume(volume, tmp_path / "derived.dcm")
    derived = pydicom.dcmread(tmp_path / "derived.dcm")
    assert derived.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert derived.get_item(0x01F11026).VR == "UN" and derived.get_item(0x01F11026).value == b"0.15"
    for keyword in ("PatientName", "StudyInstanceUID", "RescaleIntercept", "PixelSpacing", "ImagePositionPatient"):
        assert derived.data_element(keyword).value == dataset.data_element(keyword).value
    np.testing.assert_array_equal(read_volume(tmp_path / "derived.dcm").array, volume.array)


def test_a_header_pydicom_refuses_to_write_fails_with_one_line_naming_the_source(tmp_path, ct_series_dir, monkeypatch):
    """When pydicom refuses to write a source's header (its message carries a traceback's text), the error names
    the source file (not the output's temporary name), in one line, and leaves nothing behind."""
    from meddenoiselib import MedDenoiseError

    def refuse(*args, **kwargs):
        raise TypeError("With tag (0008,0023) got exception: encoding without a string argument\nTraceback ...")

    source = sorted(ct_series_dir.glob("*.dcm"))[0]
    volume = read_volume(source)
    monkeypatch.setattr(pydicom, "dcmwrite", refuse)
    with pytest.raises(MedDenoiseError) as info:
        write_volume(volume, tmp_path / "derived.dcm")
    message = str(info.value)
    assert message.startswith(str(source)) and "(0008,0023)" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_multi_frame_dicom_file_round_trip(tmp_path, ct_series_dir):
    """A single multi-frame DICOM file reads as a volume and writes back as a derived multi-frame file."""
    files = sorted(ct_series_dir.iterdir())
    ds = pydicom.dcmread(files[0])
    frames = np.stack([pydicom.dcmread(f).pixel_array for f in files])[:, 100:164, 120:200]
    ds.NumberOfFrames = frames.shape[0]
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.PixelData = frames.astype(np.uint16).tobytes()
    source = tmp_path / "multiframe.dcm"
    ds.save_as(source, enforce_file_format=True)
    volume = read_volume(source)
    assert volume.shape == (4, 64, 80) and not volume.is_2d
    np.testing.assert_array_equal(volume.array, frames.astype(np.int32) - 1024)
    out = write_volume(volume.with_array(volume.array + 1), tmp_path / "derived.dcm")
    written = pydicom.dcmread(out)
    assert int(written.NumberOfFrames) == 4 and written.SOPInstanceUID != ds.SOPInstanceUID
    np.testing.assert_array_equal(read_volume(out).array, volume.array + 1)


def test_a_nifti_pair_is_read_and_written_as_one_nifti_file(tmp_path, mr_nifti, capsys):
    """SPM and older tools keep NIfTI as a pair (``scan.hdr`` + ``scan.img``): read like ``.nii``, written as one
    ``.nii.gz`` (never as a pair); Analyze 7.5, which has no orientation, and a pair without its data are refused."""
    import nibabel as nib

    from meddenoiselib.cli import main
    from meddenoiselib.errors import InputError
    from meddenoiselib.io import probe_volume

    head = nib.load(mr_nifti)
    folder = tmp_path / "spm"
    folder.mkdir()
    nib.save(nib.Nifti1Pair(np.asarray(head.dataobj), head.affine), folder / "scan.hdr")
    volume = read_volume(folder / "scan.hdr")
    np.testing.assert_array_equal(volume.array, read_volume(mr_nifti).array)
    np.testing.assert_allclose(volume.ijk_to_lps(), read_volume(mr_nifti).ijk_to_lps())
    assert probe_volume(folder / "scan.hdr").files == (str(folder / "scan.hdr"), str(folder / "scan.img"))

    assert main(["denoise", str(folder), str(tmp_path / "out"), "--model", "median", "-q"]) == 0
    written = nib.load(tmp_path / "out" / "scan.nii.gz")
    np.testing.assert_allclose(written.affine, head.affine, atol=1e-5)
    assert main(["denoise", str(folder / "scan.hdr"), str(tmp_path / "o.hdr"), "-q"]) == 1
    assert "o.hdr: NIfTI pairs (.hdr/.img) are read, not written" in capsys.readouterr().err

    nib.save(nib.AnalyzeImage(np.asarray(head.dataobj), np.diag([4.0, 4.0, 5.0, 1.0])), tmp_path / "old.hdr")
    with pytest.raises(InputError, match="old.hdr: an Analyze 7.5 file stores no orientation"):
        read_volume(tmp_path / "old.hdr")
    (folder / "scan.img").unlink()
    with pytest.raises(InputError, match="scan.hdr: the NIfTI pair's data file scan.img does not exist"):
        read_volume(folder / "scan.hdr")
