"""Never lose or corrupt data: the bad-input table of issue 16, run through the command line in-process.

Each case builds its inputs in a temporary folder (real files from pydicom's test data and the ``pydicom-data``
package, or malformed files made here), runs ``main([...])`` and checks: the exit code; for a refusal, one line on
stderr that names the file and the problem; that no hidden temporary (``.tmp-``) is left anywhere; and that every
input's bytes are unchanged (sha256 before and after). Refusals that can be foreseen must come before any
computation: the denoiser is replaced by one that fails the test if it is called. Cases that must succeed check
what the output holds (pixels, geometry, headers). ``cNN`` in a case's name is the numbered point of the issue.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from meddenoiselib.cli import main
from meddenoiselib.demo import sample_path
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume

from ..conftest import dicom_testdata, digest_tree, leftover_temporaries

MEDIAN = ["--model", "median", "-q"]
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


@dataclass
class Case:
    """One row of the table.

    Attributes:
        argv: the command line.
        code: the expected exit code.
        name: a file name the error line must contain (refusals only).
        fragment: text the error line must contain.
        inputs: paths whose bytes must not change.
        check: further assertions after the run.
        before_compute: a refusal must come before any denoising.
        batch: a folder run: one error line per failed file, then a summary line.
        absent: text the error line must not contain (another component's wording).
    """

    argv: list[str]
    code: int
    name: str = ""
    fragment: str = ""
    inputs: tuple[Path, ...] = ()
    check: Callable[[], None] | None = None
    before_compute: bool = True
    batch: bool = False
    absent: str = ""


# ---------------------------------------------------------------------------------------------- builders
def _ct_series(folder: Path) -> Path:
    shutil.copytree(sample_path("ct_chest"), folder)
    for file in folder.iterdir():
        file.chmod(0o644)
    return folder


def _mr(tmp: Path, name: str = "mr.nii.gz") -> Path:
    target = tmp / name
    shutil.copy(sample_path("mr_head"), target)
    return target


def _copy(source: Path, tmp: Path, name: str | None = None) -> Path:
    target = tmp / (name or source.name)
    shutil.copy(source, target)
    target.chmod(0o644)
    return target


def _edit_series(folder: Path, edit: Callable[[int, pydicom.Dataset], None]) -> Path:
    """Apply ``edit(k, dataset)`` to the k-th file (sorted by name) of a series folder."""
    for k, file in enumerate(sorted(folder.iterdir())):
        ds = pydicom.dcmread(file)
        edit(k, ds)
        ds.save_as(file)
    return folder


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def _stored(path: Path) -> np.ndarray:
    return pydicom.dcmread(path).pixel_array


def _read_only_folder(tmp: Path, monkeypatch) -> Path:
    """A folder nobody may write into; as root (who may write anyway) the permission check is told so."""
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if ROOT:
        import meddenoiselib.io.outputs as outputs

        real = os.access
        monkeypatch.setattr(outputs.os, "access", lambda p, mode: real(p, mode) and Path(p) != locked)
    return locked


def _refuse_compute(*args, **kwargs):
    raise AssertionError("the denoiser ran although the run had to be refused first")


# ------------------------------------------------------------------------------- 1. folders are merged into
def c01_overwrite_into_parent_folder_keeps_everything(tmp: Path, monkeypatch) -> Case:
    parent = tmp / "parent"
    parent.mkdir()
    series = _ct_series(parent / "series")
    (parent / "thesis.docx").write_bytes(b"years of work")
    (parent / "sub").mkdir()
    (parent / "sub" / "notes.txt").write_text("keep me")

    def check() -> None:
        assert (parent / "thesis.docx").read_bytes() == b"years of work"
        assert (parent / "sub" / "notes.txt").read_text() == "keep me"
        derived = sorted(p for p in parent.glob("*.dcm"))
        assert len(derived) == 4 and all(pydicom.dcmread(p).SeriesDescription.endswith("denoised") for p in derived)

    return Case(
        ["denoise", str(series), str(parent), "--overwrite", *MEDIAN],
        0,
        inputs=(series, parent / "thesis.docx", parent / "sub"),
        check=check,
    )


def c01_existing_output_folder_is_merged_file_by_file(tmp: Path, monkeypatch) -> Case:
    series = _ct_series(tmp / "series")
    out = tmp / "out"
    out.mkdir()
    (out / "thesis.docx").write_bytes(b"unrelated")
    (out / "sub").mkdir()
    assert main(["denoise", str(series), str(out), *MEDIAN]) == 0  # a first run into the existing folder

    def check() -> None:
        assert (out / "thesis.docx").read_bytes() == b"unrelated" and (out / "sub").is_dir()
        assert sorted(p.name for p in out.glob("*.dcm")) == sorted(p.name for p in series.iterdir())

    return Case(
        ["denoise", str(series), str(out), "--overwrite", *MEDIAN], 0, inputs=(series, out / "thesis.docx"), check=check
    )


def c01_output_folder_that_is_the_input_is_refused(tmp: Path, monkeypatch) -> Case:
    series = _ct_series(tmp / "series")
    return Case(["denoise", str(series), str(series), "--overwrite", *MEDIAN], 1, "series", "input", inputs=(series,))


def c01_second_run_needs_overwrite(tmp: Path, monkeypatch) -> Case:
    series = _ct_series(tmp / "series")
    out = tmp / "out"
    assert main(["denoise", str(series), str(out), *MEDIAN]) == 0
    return Case(
        ["denoise", str(series), str(out), *MEDIAN], 1, "out", "already exists; pass --overwrite", inputs=(series, out)
    )


# ---------------------------------------------------------------------------------- 2. reports are planned
def c02_residual_onto_the_input_is_refused(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(
        ["denoise", str(mr), str(tmp / "out.nii.gz"), "--residual", str(mr), "--overwrite", *MEDIAN],
        1,
        "mr.nii.gz",
        "would overwrite the input",
        inputs=(mr,),
        check=lambda: not (tmp / "out.nii.gz").exists() or pytest.fail("image written"),
    )


def c02_report_onto_the_input_is_refused(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(
        ["denoise", str(mr), str(tmp / "out.nii.gz"), "--report", str(mr), "--overwrite", *MEDIAN],
        1,
        "mr.nii.gz",
        "report must be a .json file",
        inputs=(mr,),
    )


def c02_existing_report_needs_overwrite(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    report = tmp / "qa.json"
    report.write_text('{"mine": 1}')
    return Case(
        ["denoise", str(mr), str(tmp / "out.nii.gz"), "--report", str(report), *MEDIAN],
        1,
        "qa.json",
        "already exists",
        inputs=(mr, report),
        check=lambda: not (tmp / "out.nii.gz").exists() or pytest.fail("image written"),
    )


def c02_report_that_is_the_image_output_is_refused(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(
        ["denoise", str(mr), str(tmp / "out.nii.gz"), "--report", str(tmp / "out.nii.gz"), *MEDIAN],
        1,
        "out.nii.gz",
        "report must be a .json file",
        inputs=(mr,),
    )


def c02_residual_that_is_the_image_output_is_refused(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    out = str(tmp / "out.nii.gz")
    return Case(
        ["denoise", str(mr), out, "--residual", out, *MEDIAN],
        1,
        "out.nii.gz",
        "same path as the image output",
        inputs=(mr,),
    )


def c02_report_in_a_missing_folder_fails_before_anything_is_written(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(
        ["denoise", str(mr), str(tmp / "out.nii.gz"), "--report", str(tmp / "no" / "qa.json"), *MEDIAN],
        1,
        "qa.json",
        "does not exist",
        inputs=(mr,),
        check=lambda: not (tmp / "out.nii.gz").exists() or pytest.fail("image written"),
    )


def c02_report_in_a_read_only_folder_fails_first(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    locked = _read_only_folder(tmp, monkeypatch)
    return Case(
        ["denoise", str(mr), str(tmp / "out.nii.gz"), "--report", str(locked / "qa.json"), *MEDIAN],
        1,
        "qa.json",
        "not writable",
        inputs=(mr,),
    )


# ------------------------------------------------------------------------------ 3-5. pixels of DICOM kinds
def _monochrome1(name: str) -> Callable:
    def case(tmp: Path, monkeypatch) -> Case:
        source = _copy(dicom_testdata(name), tmp, "cr.dcm")
        out, nifti = tmp / "out.dcm", tmp / "out.nii.gz"
        assert main(["denoise", str(source), str(nifti), "--strength", "0", *MEDIAN]) == 0

        def check() -> None:
            written = pydicom.dcmread(out)
            assert written.PhotometricInterpretation == "MONOCHROME1"
            # a viewer shows the same image: the stored values are the source's, not inverted
            np.testing.assert_array_equal(written.pixel_array, _stored(source))
            header = pydicom.dcmread(source)
            top = 2 ** int(header.BitsStored) - 1
            # NIfTI holds displayed intensities (bright = high), consistently with the DICOM reading
            values = read_volume(nifti).array[0]
            np.testing.assert_array_equal(values.astype(np.int64), top - _stored(source).astype(np.int64))

        return Case(["denoise", str(source), str(out), "--strength", "0", *MEDIAN], 0, inputs=(source,), check=check)

    case.__name__ = f"c03_monochrome1_{name.split('.')[0]}"
    return case


def c03_monochrome1_dicomdir_cr1(tmp: Path, monkeypatch) -> Case:
    source = _copy(dicom_testdata("dicomdirtests/77654033/CR1/6154"), tmp, "6154")

    def check() -> None:
        assert pydicom.dcmread(tmp / "cr.dcm").PhotometricInterpretation == "MONOCHROME1"
        np.testing.assert_array_equal(_stored(tmp / "cr.dcm"), _stored(source))

    return Case(
        ["denoise", str(source), str(tmp / "cr.dcm"), "--strength", "0", *MEDIAN], 0, inputs=(source,), check=check
    )


def c04_enhanced_ct_keeps_per_frame_rescale(tmp: Path, monkeypatch) -> Case:
    source = _copy(dicom_testdata("eCT_Supplemental.dcm"), tmp)
    out = tmp / "out.dcm"

    def check() -> None:
        stored = _stored(out)
        assert stored.max() == 1196  # not 0..158: HU -1024..172 written back through the frames' own rescale
        np.testing.assert_array_equal(stored, _stored(source))

    return Case(["denoise", str(source), str(out), "--strength", "0", *MEDIAN], 0, inputs=(source,), check=check)


def c04_enhanced_frames_with_different_rescales(tmp: Path, monkeypatch) -> Case:
    source = _copy(dicom_testdata("eCT_Supplemental.dcm"), tmp, "two_maps.dcm")
    ds = pydicom.dcmread(source)
    for frame, (slope, intercept) in zip(ds.PerFrameFunctionalGroupsSequence, ((1, -1024), (2, -3000)), strict=False):
        item = pydicom.Dataset()
        item.RescaleSlope, item.RescaleIntercept, item.RescaleType = slope, intercept, "US"
        frame.PixelValueTransformationSequence = [item]
    del ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence
    ds.save_as(source)
    stored = _stored(source).astype(np.int64)
    out = tmp / "out.dcm"

    def check() -> None:
        values = read_volume(source).array
        np.testing.assert_array_equal(values[0], stored[0] - 1024)
        np.testing.assert_array_equal(values[1], 2 * stored[1] - 3000)
        np.testing.assert_array_equal(_stored(out), stored)

    return Case(["denoise", str(source), str(out), "--strength", "0", *MEDIAN], 0, inputs=(source,), check=check)


def c05_big_endian_32bit_dose_reads_and_writes(tmp: Path, monkeypatch) -> Case:
    source = _copy(dicom_testdata("rtdose_expb.dcm"), tmp)
    out = tmp / "dose.dcm"
    header = pydicom.dcmread(source)
    expected = _stored(source).astype(np.float64) * float(header.DoseGridScaling)

    def check() -> None:
        np.testing.assert_allclose(read_volume(source).array, expected, rtol=1e-12)
        assert expected.max() == pytest.approx(1.254)  # Gy, not 4.29e9 byte-swapped counts
        written = pydicom.dcmread(out)
        assert written.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        np.testing.assert_array_equal(written.pixel_array, _stored(source))

    return Case(["denoise", str(source), str(out), "--strength", "0", *MEDIAN], 0, inputs=(source,), check=check)


def c14_rt_dose_grid_scaling_is_applied(tmp: Path, monkeypatch) -> Case:
    source = _copy(dicom_testdata("rtdose.dcm"), tmp)

    def check() -> None:
        volume = read_volume(source)
        assert volume.array.dtype == np.float64 and volume.array.max() == pytest.approx(1.254)
        assert volume.shape == (15, 10, 10) and volume.spacing[2] == pytest.approx(5.0)  # GridFrameOffsetVector

    return Case(["info", str(source)], 0, inputs=(source,), check=check)


# ----------------------------------------------------------------------------------------- 6. bounded reads
def c06_gz_nifti_claiming_8_gb(tmp: Path, monkeypatch) -> Case:
    header = nib.Nifti1Header()
    header.set_data_shape((2048, 2048, 2048))
    header.set_data_dtype(np.uint8)
    payload = header.binaryblock + b"\0" * 4 + os.urandom(64 * 1024)
    path = tmp / "huge.nii.gz"
    path.write_bytes(gzip.compress(payload))
    return Case(["info", str(path)], 1, "huge.nii.gz", "more than", inputs=(path,))


def c06_raw_nifti_claiming_more_than_the_file(tmp: Path, monkeypatch) -> Case:
    header = nib.Nifti1Header()
    header.set_data_shape((1024, 1024, 1024))
    header.set_data_dtype(np.int16)
    path = tmp / "short.nii"
    path.write_bytes(header.binaryblock + b"\0" * 4 + os.urandom(64 * 1024))
    return Case(["denoise", str(path), str(tmp / "o.nii"), *MEDIAN], 1, "short.nii", "truncated", inputs=(path,))


def c06_image_larger_than_the_memory_budget(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    monkeypatch.setenv("MEDDENOISE_MAX_READ_BYTES", "100000")  # the 58x58x24 int16 MR needs 161 KB
    return Case(["info", str(mr)], 1, "mr.nii.gz", "would need", inputs=(mr,))


def c06_dicom_claiming_more_frames_than_it_holds(tmp: Path, monkeypatch) -> Case:
    path = _copy(dicom_testdata("CT_small.dcm"), tmp, "frames.dcm")
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 100000
    ds.save_as(path)
    return Case(["info", str(path)], 1, "frames.dcm", "truncated file or corrupt header", inputs=(path,))


def c06_nrrd_with_a_missing_data_file(tmp: Path, monkeypatch) -> Case:
    header = tmp / "x.nhdr"
    header.write_text(
        "NRRD0004\ntype: short\ndimension: 3\nsizes: 4000 4000 4000\nencoding: raw\n"
        "endian: little\ndata file: x.raw\n\n"
    )
    (tmp / "x.raw").write_bytes(b"\0" * 1000)
    return Case(["info", str(header)], 1, "x.nhdr", "truncated", inputs=(header, tmp / "x.raw"))


# ------------------------------------------------------------------------------------ 7. irregular series
def _gap(k: int, ds: pydicom.Dataset) -> None:
    if k >= 2:
        ds.ImagePositionPatient = [float(v) for v in ds.ImagePositionPatient[:2]] + [
            float(ds.ImagePositionPatient[2]) + 64.0
        ]


def c07_gap_to_nifti_is_refused(tmp: Path, monkeypatch) -> Case:
    series = _edit_series(_ct_series(tmp / "gap"), _gap)
    return Case(
        ["denoise", str(series), str(tmp / "gap.nii.gz"), *MEDIAN],
        1,
        "gap.nii.gz",
        "not evenly spaced",
        inputs=(series,),
    )


def c07_gap_to_dicom_keeps_every_slice_position(tmp: Path, monkeypatch) -> Case:
    series = _edit_series(_ct_series(tmp / "gap"), _gap)
    out = tmp / "out"

    def check() -> None:
        for file in series.iterdir():
            source, written = pydicom.dcmread(file), pydicom.dcmread(out / file.name)
            assert list(written.ImagePositionPatient) == list(source.ImagePositionPatient)

    return Case(["denoise", str(series), str(out), *MEDIAN], 0, inputs=(series,), check=check)


def c07_repeated_positions_to_nifti_are_refused(tmp: Path, monkeypatch) -> Case:
    def duplicate(k: int, ds: pydicom.Dataset) -> None:
        if k == 1:
            ds.ImagePositionPatient = [float(v) for v in ds.ImagePositionPatient[:2]] + [
                float(ds.ImagePositionPatient[2]) - 2.0
            ]  # onto slice 0

    series = _edit_series(_ct_series(tmp / "dup"), duplicate)
    return Case(
        ["denoise", str(series), str(tmp / "dup.nrrd"), *MEDIAN],
        1,
        "dup.nrrd",
        "repeat another slice",
        inputs=(series,),
    )


def c07_two_orientations_are_refused(tmp: Path, monkeypatch) -> Case:
    def turn(k: int, ds: pydicom.Dataset) -> None:
        if k >= 2:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal

    series = _edit_series(_ct_series(tmp / "mixed"), turn)
    return Case(
        ["denoise", str(series), str(tmp / "m.nii.gz"), *MEDIAN],
        1,
        "mixed",
        "2 different orientations",
        inputs=(series,),
    )


def c07_radial_series_is_refused(tmp: Path, monkeypatch) -> Case:
    def radial(k: int, ds: pydicom.Dataset) -> None:
        angle = np.deg2rad(45 * k)
        ds.ImageOrientationPatient = [float(np.cos(angle)), float(np.sin(angle)), 0.0, 0.0, 0.0, -1.0]

    series = _edit_series(_ct_series(tmp / "radial"), radial)
    return Case(["info", str(series)], 1, "radial", "4 different orientations", inputs=(series,))


def c07_missing_position_is_refused(tmp: Path, monkeypatch) -> Case:
    def drop(k: int, ds: pydicom.Dataset) -> None:
        if k == 2:
            del ds.ImagePositionPatient

    series = _edit_series(_ct_series(tmp / "holes"), drop)
    return Case(
        ["denoise", str(series), str(tmp / "h.nii.gz"), *MEDIAN],
        1,
        "holes",
        "no ImagePositionPatient",
        inputs=(series,),
    )


def c07_tilted_stack_is_placed_exactly(tmp: Path, monkeypatch) -> Case:
    def tilt(k: int, ds: pydicom.Dataset) -> None:
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [x, y + 0.7 * k, z]  # gantry tilt: a constant in-plane shift per slice

    series = _edit_series(_ct_series(tmp / "tilt"), tilt)
    out = tmp / "tilt.nii.gz"

    def check() -> None:
        volume = read_volume(out)
        order = sorted(series.iterdir(), key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
        for k, file in enumerate(order):
            expected = [float(v) for v in pydicom.dcmread(file).ImagePositionPatient]
            np.testing.assert_allclose((volume.ijk_to_lps() @ [0, 0, k, 1])[:3], expected, atol=1e-3)

    return Case(["denoise", str(series), str(out), *MEDIAN], 0, inputs=(series,), check=check)


# ------------------------------------------------------------------------------- 8. detached header formats
def _detached(suffix: str, data: str) -> Callable:
    def case(tmp: Path, monkeypatch) -> Case:
        mr = _mr(tmp)
        out = tmp / f"out{suffix}"
        assert main(["denoise", str(mr), str(out), *MEDIAN]) == 0

        def check() -> None:
            names = sorted(p.name for p in tmp.iterdir())
            assert names == sorted(["mr.nii.gz", out.name, f"out{data}"])  # no orphan from the first run
            assert f"out{data}" in out.read_text(errors="replace")
            np.testing.assert_array_equal(read_volume(out).array.shape, read_volume(mr).array.shape)

        return Case(["denoise", str(mr), str(out), "--overwrite", *MEDIAN], 0, inputs=(mr,), check=check)

    case.__name__ = f"c08_{suffix[1:]}_names_its_final_data_file"
    return case


# ------------------------------------------------------------------------------------------- 9. residuals
def c09_residual_to_dicom_is_refused_first(tmp: Path, monkeypatch) -> Case:
    series = _ct_series(tmp / "series")
    return Case(
        ["denoise", str(series), str(tmp / "out"), "--residual", str(tmp / "r.dcm"), *MEDIAN],
        1,
        "r.dcm",
        "negative",
        inputs=(series,),
        check=lambda: not (tmp / "out").exists() or pytest.fail("image written"),
    )


def c09_residual_keeps_negative_values(tmp: Path, monkeypatch) -> Case:
    series = _ct_series(tmp / "series")
    residual = tmp / "r.nrrd"

    def check() -> None:
        values = read_volume(residual).array
        assert values.dtype == np.float32 and values.min() < 0 < values.max()

    return Case(
        ["denoise", str(series), str(tmp / "out"), "--residual", str(residual), *MEDIAN],
        0,
        inputs=(series,),
        check=check,
    )


def c09_noise_map_to_dicom_is_refused_first(tmp: Path, monkeypatch) -> Case:
    series = _ct_series(tmp / "series")
    return Case(
        ["denoise", str(series), str(tmp / "out"), "--noise-map", str(tmp / "noise"), *MEDIAN],
        1,
        "noise",
        "fractional",
        inputs=(series,),
        check=lambda: not (tmp / "out").exists() or pytest.fail("image written"),
    )


# ------------------------------------------------------------------------ 10. outputs checked before compute
def c10_missing_output_folder(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(
        ["denoise", str(mr), str(tmp / "nope" / "o.nii.gz"), *MEDIAN], 1, "o.nii.gz", "does not exist", inputs=(mr,)
    )


def c10_existing_output(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    out = tmp / "o.nii.gz"
    out.write_bytes(b"previous result")
    return Case(["denoise", str(mr), str(out), *MEDIAN], 1, "o.nii.gz", "pass --overwrite", inputs=(mr, out))


def c10_unknown_extension(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(
        ["denoise", str(mr), str(tmp / "o.xyz"), *MEDIAN], 1, "o.xyz", "cannot tell the output format", inputs=(mr,)
    )


def c10_unknown_extension_with_dicom_input(tmp: Path, monkeypatch) -> Case:
    """With DICOM input a suffix-less name is a derived series folder; a mistyped extension is not made into one."""
    series = _ct_series(tmp / "series")
    return Case(
        ["denoise", str(series), str(tmp / "o.nii.gzz"), *MEDIAN],
        1,
        "o.nii.gzz",
        "'.gzz' is not an image format",
        inputs=(series,),
        check=lambda: not (tmp / "o.nii.gzz").exists() or pytest.fail("a folder was made"),
    )


def c10_dicom_output_folder_named_after_a_uid(tmp: Path, monkeypatch) -> Case:
    """A new folder whose name ends in digits (a UID) is a derived DICOM series, not a mistyped extension."""
    series = _ct_series(tmp / "series")
    out = tmp / "1.2.826.0.1.3680043"
    return Case(
        ["denoise", str(series), str(out), *MEDIAN],
        0,
        inputs=(series,),
        check=lambda: len(list(out.glob("*.dcm"))) == len(list(series.iterdir())) or pytest.fail("no DICOM series"),
    )


def c10_folder_run_keeps_series_folder_names_ending_like_a_file(tmp: Path, monkeypatch) -> Case:
    """A folder run names each series' output after its folder, whatever that name ends in (not a typed name)."""
    series = _ct_series(tmp / "in" / "Head.Neck")
    out = tmp / "out"
    return Case(
        ["denoise", str(tmp / "in"), str(out), *MEDIAN],
        0,
        inputs=(series,),
        check=lambda: (
            len(list((out / "Head.Neck").glob("*.dcm"))) == len(list(series.iterdir()))
            or pytest.fail("no DICOM series")
        ),
    )


def c10_volume_to_png(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(["denoise", str(mr), str(tmp / "o.png"), *MEDIAN], 1, "o.png", "holds one 2D image", inputs=(mr,))


def c10_rgb_to_nifti(tmp: Path, monkeypatch) -> Case:
    rgb = tmp / "rgb.png"
    array = np.random.default_rng(0).integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(array, isVector=True), str(rgb))
    return Case(
        ["denoise", str(rgb), str(tmp / "o.nii.gz"), *MEDIAN],
        1,
        "o.nii.gz",
        "3 components (colour or channels)",
        inputs=(rgb,),
    )


def c10_segmentation_to_dicom(tmp: Path, monkeypatch) -> Case:
    source = _copy(dicom_testdata("liver.dcm"), tmp)
    return Case(["denoise", str(source), str(tmp / "o.dcm"), *MEDIAN], 1, "liver.dcm", "Segmentation", inputs=(source,))


def c10_dicom_output_from_nifti(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(["denoise", str(mr), str(tmp / "o.dcm"), *MEDIAN], 1, "o.dcm", "needs DICOM input", inputs=(mr,))


def c10_folder_batch_processes_every_file(tmp: Path, monkeypatch) -> Case:
    folder = tmp / "in"
    folder.mkdir()
    xray = Path(__file__).resolve().parents[1] / "data" / "xray_nih_00027426_000.png"
    for name in ("a.png", "c.png"):
        image = sitk.ReadImage(str(xray))[100:164, 100:164]
        sitk.WriteImage(image, str(folder / name))
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 20)
    out = tmp / "out"

    def check() -> None:
        assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]

    return Case(
        ["denoise", str(folder), str(out), *MEDIAN],
        1,
        "b.png",
        "cannot decode the PNG image (truncated or corrupt)",
        inputs=(folder,),
        check=check,
        before_compute=False,
        batch=True,
        absent="ITK",
    )


def c10_folder_output_named_like_a_file(tmp: Path, monkeypatch) -> Case:
    folder = tmp / "in"
    folder.mkdir()
    _mr(folder, "b1.nii.gz")
    return Case(
        ["denoise", str(folder), str(tmp / "b3.nii.gz"), *MEDIAN],
        1,
        "b3.nii.gz",
        "must be a folder",
        inputs=(folder,),
        check=lambda: not (tmp / "b3.nii.gz").exists() or pytest.fail("created"),
    )


def c10_two_inputs_onto_one_output_name(tmp: Path, monkeypatch) -> Case:
    folder = tmp / "in"
    folder.mkdir()
    _mr(folder, "scan.nii.gz")
    sitk.WriteImage(sitk.ReadImage(str(sample_path("mr_head"))), str(folder / "scan.nrrd"))
    out = tmp / "out"
    return Case(
        ["denoise", str(folder), str(out), "--format", "nifti", *MEDIAN],
        1,
        "scan.nii.gz",
        "same path as the image output",
        inputs=(folder,),
        before_compute=False,
        batch=True,
    )


# ----------------------------------------------------------------------------- 11. one line, no traceback
def c11_info_bad_vr(tmp: Path, monkeypatch) -> Case:
    source = _copy(dicom_testdata("badVR.dcm"), tmp)
    return Case(["info", str(source)], 1, "badVR.dcm", "NumberOfFrames '1A'", inputs=(source,))


def c11_cifti_is_not_an_image(tmp: Path, monkeypatch) -> Case:
    source = _copy(Path(nib.__file__).parent / "tests" / "data" / "row_major.dconn.nii", tmp)
    return Case(
        ["denoise", str(source), str(tmp / "o.nii"), *MEDIAN],
        1,
        "row_major.dconn.nii",
        "not an image",
        inputs=(source,),
    )


def c11_nifti_with_nan_voxel_size(tmp: Path, monkeypatch) -> Case:
    path = _nifti(tmp / "nan.nii.gz", np.ones((4, 5, 6), np.int16))
    image = nib.load(path)
    header = image.header.copy()
    header["pixdim"][1] = np.nan
    header.set_sform(None, code=0)
    header.set_qform(None, code=0)
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6), np.int16), None, header), path)
    return Case(["denoise", str(path), str(tmp / "o.nii.gz"), *MEDIAN], 1, "nan.nii.gz", "not finite", inputs=(path,))


def c11_window_nan(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(
        ["denoise", str(mr), str(tmp / "o.nii.gz"), "--window", "nan,400", *MEDIAN], 2, "", "--window", inputs=(mr,)
    )


def c11_simulate_poisson_inf(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(
        ["simulate", str(mr), str(tmp / "n.nii.gz"), "--noise", "poisson:inf", "-q"],
        2,
        "",
        "argument --noise",
        inputs=(mr,),
    )


def c11_evaluate_on_a_one_pixel_image(tmp: Path, monkeypatch) -> Case:
    tiny = _nifti(tmp / "tiny.nii.gz", np.ones((1, 1), np.float32))
    return Case(
        ["evaluate", str(tiny), "--methods", "median", "-o", str(tmp / "ev"), "-q"],
        1,
        "tiny.nii.gz",
        "smaller than the 11x11",
        inputs=(tiny,),
        check=lambda: not (tmp / "ev").exists() or pytest.fail(),
    )


def c11_evaluate_on_an_empty_folder(tmp: Path, monkeypatch) -> Case:
    empty = tmp / "empty"
    empty.mkdir()
    return Case(
        ["evaluate", str(empty), "--methods", "median", "-o", str(tmp / "ev"), "-q"],
        1,
        "empty",
        "no images",
        inputs=(empty,),
    )


def c11_evaluate_into_an_existing_file(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    blocker = tmp / "results"
    blocker.write_text("a file")
    return Case(
        ["evaluate", str(mr), "--methods", "median", "-o", str(blocker), "-q"],
        1,
        "results",
        "a file of that name exists",
        inputs=(mr, blocker),
    )


def c11_evaluate_into_a_read_only_folder(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    locked = _read_only_folder(tmp, monkeypatch)
    return Case(
        ["evaluate", str(mr), "--methods", "median", "-o", str(locked), "-q"], 1, "locked", "not writable", inputs=(mr,)
    )


def c11_non_image_dicom_objects(name: str) -> Callable:
    def case(tmp: Path, monkeypatch) -> Case:
        source = _copy(dicom_testdata(name), tmp)
        return Case(["info", str(source)], 1, source.name, "holds no image", inputs=(source,))

    case.__name__ = f"c11_no_image_in_{name.split('.')[0]}"
    return case


# ---------------------------------------------------------------------------------- 12. finite numbers
def _option(option: list[str], fragment: str, command: str = "denoise") -> Callable:
    def case(tmp: Path, monkeypatch) -> Case:
        mr = _mr(tmp)
        if command == "denoise":
            argv = ["denoise", str(mr), str(tmp / "o.nii.gz"), *option, *MEDIAN]
        elif command == "simulate":
            argv = ["simulate", str(mr), str(tmp / "o.nii.gz"), *option, "-q"]
        else:
            argv = ["evaluate", str(mr), "--methods", "median", "-o", str(tmp / "ev"), *option, "-q"]
        return Case(
            argv, 2, "", fragment, inputs=(mr,), check=lambda: not (tmp / "o.nii.gz").exists() or pytest.fail("written")
        )

    case.__name__ = f"c12_{command}_{'_'.join(o.strip('-').replace(':', '_') for o in option)}"
    return case


def c12_float64_extremes_survive(tmp: Path, monkeypatch) -> Case:
    data = np.random.default_rng(0).normal(size=(6, 20, 20))
    data[3, 10, 10] = 1e300
    path = _nifti(tmp / "f64.nii", data.astype(np.float64))
    out = tmp / "o.nii"

    def check() -> None:
        result = read_volume(out).array
        assert result.dtype == np.float64 and np.all(np.isfinite(result))
        assert result.max() == pytest.approx(1e300)

    return Case(["denoise", str(path), str(out), "--strength", "0", *MEDIAN], 0, inputs=(path,), check=check)


# ---------------------------------------------------------------------------------------- 14. the rest
def c14_single_slice_3d_file_stays_3d(tmp: Path, monkeypatch) -> Case:
    path = _nifti(tmp / "one.nii.gz", np.arange(35, dtype=np.int16).reshape(5, 7, 1))
    out = tmp / "o.nii.gz"
    return Case(
        ["denoise", str(path), str(out), *MEDIAN],
        0,
        inputs=(path,),
        check=lambda: nib.load(out).shape == (5, 7, 1) or pytest.fail(str(nib.load(out).shape)),
    )


def c14_float64_is_kept(tmp: Path, monkeypatch) -> Case:
    path = _nifti(tmp / "f.nii.gz", np.random.default_rng(1).normal(size=(8, 16, 16)))
    out = tmp / "o.nrrd"
    return Case(
        ["denoise", str(path), str(out), *MEDIAN],
        0,
        inputs=(path,),
        check=lambda: read_volume(out).array.dtype == np.float64 or pytest.fail("not float64"),
    )


def c14_one_bit_pixels_are_refused(tmp: Path, monkeypatch) -> Case:
    source = _copy(dicom_testdata("CT_small.dcm"), tmp, "mask.dcm")
    ds = pydicom.dcmread(source)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 0, 0
    ds.PixelData = b"\0" * (128 * 128 // 8)
    ds.save_as(source)
    return Case(["denoise", str(source), str(tmp / "o.dcm"), *MEDIAN], 1, "mask.dcm", "1-bit", inputs=(source,))


def c14_no_pydicom_advice_for_non_dicom(tmp: Path, monkeypatch) -> Case:
    junk = tmp / "junk.dcm"
    junk.write_bytes(os.urandom(4096))

    def check() -> None:
        pass

    return Case(["info", str(junk)], 1, "junk.dcm", "not a DICOM file", inputs=(junk,), check=check)


def c14_single_file_errors_do_not_say_series(tmp: Path, monkeypatch) -> Case:
    source = _copy(dicom_testdata("MR_truncated.dcm"), tmp)
    return Case(["info", str(source)], 1, "MR_truncated.dcm", "truncated", inputs=(source,), absent="series")


def c14_truncated_jpeg2000_says_truncated(tmp: Path, monkeypatch) -> Case:
    source = _copy(dicom_testdata("emri_small_jpeg_2k_lossless_too_short.dcm"), tmp)
    return Case(["info", str(source)], 1, source.name, "truncated", inputs=(source,), absent="PixelData")


def c11_unknown_model_is_a_usage_error(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(
        ["denoise", str(mr), str(tmp / "o.nii.gz"), "--model", "nonsense", "-q"], 2, "", "unknown model", inputs=(mr,)
    )


def c14_series_uid_for_a_file_is_refused(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(
        ["denoise", str(mr), str(tmp / "o.nii.gz"), "--series-uid", "1.2.3", *MEDIAN],
        2,
        "mr.nii.gz",
        "--series-uid applies only to DICOM input",
        inputs=(mr,),
        absent="choose one",
    )


def c14_series_uid_for_info_on_a_nifti_is_refused(tmp: Path, monkeypatch) -> Case:
    mr = _mr(tmp)
    return Case(
        ["info", str(mr), "--series-uid", "1.2.3"],
        2,
        "mr.nii.gz",
        "this is a NIfTI file",
        inputs=(mr,),
        absent="choose one",
    )


def c14_series_uid_of_another_series_for_a_dicom_file(tmp: Path, monkeypatch) -> Case:
    source = _copy(dicom_testdata("CT_small.dcm"), tmp)
    return Case(["info", str(source), "--series-uid", "1.2.3"], 2, "CT_small.dcm", "not 1.2.3", inputs=(source,))


def c14_info_on_a_folder_of_images(tmp: Path, monkeypatch) -> Case:
    folder = tmp / "imgs"
    folder.mkdir()
    _mr(folder, "a.nii.gz")
    shutil.copy(Path(__file__).resolve().parents[1] / "data" / "us_hc18_131_HC.png", folder / "b.png")
    return Case(["info", str(folder)], 0, inputs=(folder,))


CASES = [
    c01_overwrite_into_parent_folder_keeps_everything,
    c01_existing_output_folder_is_merged_file_by_file,
    c01_output_folder_that_is_the_input_is_refused,
    c01_second_run_needs_overwrite,
    c02_residual_onto_the_input_is_refused,
    c02_report_onto_the_input_is_refused,
    c02_existing_report_needs_overwrite,
    c02_report_that_is_the_image_output_is_refused,
    c02_residual_that_is_the_image_output_is_refused,
    c02_report_in_a_missing_folder_fails_before_anything_is_written,
    c02_report_in_a_read_only_folder_fails_first,
    _monochrome1("RG3_UNCR.dcm"),
    _monochrome1("RG1_UNCR.dcm"),
    c03_monochrome1_dicomdir_cr1,
    c04_enhanced_ct_keeps_per_frame_rescale,
    c04_enhanced_frames_with_different_rescales,
    c05_big_endian_32bit_dose_reads_and_writes,
    c06_gz_nifti_claiming_8_gb,
    c06_raw_nifti_claiming_more_than_the_file,
    c06_image_larger_than_the_memory_budget,
    c06_dicom_claiming_more_frames_than_it_holds,
    c06_nrrd_with_a_missing_data_file,
    c07_gap_to_nifti_is_refused,
    c07_gap_to_dicom_keeps_every_slice_position,
    c07_repeated_positions_to_nifti_are_refused,
    c07_two_orientations_are_refused,
    c07_radial_series_is_refused,
    c07_missing_position_is_refused,
    c07_tilted_stack_is_placed_exactly,
    _detached(".nhdr", ".raw.gz"),
    _detached(".mhd", ".zraw"),
    c09_residual_to_dicom_is_refused_first,
    c09_residual_keeps_negative_values,
    c09_noise_map_to_dicom_is_refused_first,
    c10_missing_output_folder,
    c10_existing_output,
    c10_unknown_extension,
    c10_unknown_extension_with_dicom_input,
    c10_dicom_output_folder_named_after_a_uid,
    c10_folder_run_keeps_series_folder_names_ending_like_a_file,
    c10_volume_to_png,
    c10_rgb_to_nifti,
    c10_segmentation_to_dicom,
    c10_dicom_output_from_nifti,
    c10_folder_batch_processes_every_file,
    c10_folder_output_named_like_a_file,
    c10_two_inputs_onto_one_output_name,
    c11_info_bad_vr,
    c11_unknown_model_is_a_usage_error,
    c11_cifti_is_not_an_image,
    c11_nifti_with_nan_voxel_size,
    c11_window_nan,
    c11_simulate_poisson_inf,
    c11_evaluate_on_a_one_pixel_image,
    c11_evaluate_on_an_empty_folder,
    c11_evaluate_into_an_existing_file,
    c11_evaluate_into_a_read_only_folder,
    *[c11_non_image_dicom_objects(n) for n in ("rtstruct.dcm", "rtplan.dcm", "test-SR.dcm", "waveform_ecg.dcm")],
    _option(["--sigma", "nan"], "--sigma"),
    _option(["--sigma", "inf"], "--sigma"),
    _option(["--strength", "nan"], "--strength"),
    _option(["--overlap", "inf"], "--overlap"),
    _option(["--noise", "gaussian:nan"], "argument --noise", "simulate"),
    _option(["--noise", "speckle:-1"], "--noise", "simulate"),
    _option(["--sigma", "nan"], "--sigma", "evaluate"),
    _option(["--sigma", "1e9"], "--sigma", "evaluate"),
    c12_float64_extremes_survive,
    c14_rt_dose_grid_scaling_is_applied,
    c14_single_slice_3d_file_stays_3d,
    c14_float64_is_kept,
    c14_one_bit_pixels_are_refused,
    c14_no_pydicom_advice_for_non_dicom,
    c14_single_file_errors_do_not_say_series,
    c14_truncated_jpeg2000_says_truncated,
    c14_series_uid_for_a_file_is_refused,
    c14_series_uid_for_info_on_a_nifti_is_refused,
    c14_series_uid_of_another_series_for_a_dicom_file,
    c14_info_on_a_folder_of_images,
]


@pytest.mark.parametrize("build", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_table(build, tmp_path, capsys, monkeypatch):
    case = build(tmp_path, monkeypatch)
    capsys.readouterr()  # what building the case printed
    before = {path: digest_tree(path) for path in case.inputs}
    if case.code != 0 and case.before_compute:
        monkeypatch.setattr(Denoiser, "denoise", _refuse_compute)
    code = main(case.argv)
    err = capsys.readouterr().err
    assert code == case.code, err
    if case.code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        errors = [line for line in lines if "error:" in line]
        assert len(errors) == 1 and len(lines) == 1 + case.batch, err
        if case.batch:
            assert "failed" in lines[-1]
        assert "Traceback" not in err and "force=True" not in err
        assert case.name in errors[0] and case.fragment in errors[0], err
        assert not case.absent or case.absent not in errors[0], err
    assert leftover_temporaries(tmp_path) == []
    for path, digest in before.items():
        assert digest_tree(path) == digest, f"{path} changed"
    if case.check is not None:
        case.check()


def test_library_errors_are_meddenoise_errors(tmp_path):
    """Through the Python API every bad input raises the library's InputError, never ValueError & co."""
    from meddenoiselib import InputError

    bad = [
        dicom_testdata("badVR.dcm"),
        Path(nib.__file__).parent / "tests" / "data" / "row_major.dconn.nii",
        dicom_testdata("rtstruct.dcm"),
        dicom_testdata("liver.dcm"),
    ]
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"\x1f\x8b" + os.urandom(300))
    bad.append(junk)
    for path in bad:
        with pytest.raises(InputError) as info:
            read_volume(path)
        assert path.name in str(info.value) and "\n" not in str(info.value)


def test_series_uid_for_a_non_dicom_file_says_it_applies_to_dicom_only(tmp_path):
    from meddenoiselib import OptionError

    with pytest.raises(OptionError) as info:
        read_volume(_mr(tmp_path), series_uid="1.2.3")
    assert "mr.nii.gz" in str(info.value) and "applies only to DICOM input" in str(info.value)
    assert info.value.parameter is None  # no "choose another series" advice: the remedy is to leave it out


@pytest.mark.parametrize("precision", ["fp8", "FP32", "", None, 16])
def test_denoiser_checks_precision_when_built(precision):
    from meddenoiselib import OptionError

    with pytest.raises(OptionError) as info:
        Denoiser(method="median", precision=precision)
    assert info.value.parameter == "precision"
    assert "auto, fp32, bf16, fp16" in str(info.value) and repr(precision) in str(info.value)


def test_broken_pngs_in_a_batch_are_one_line_each_in_our_words(tmp_path, capfd):
    """libpng prints "libpng error: Read Error" to descriptor 2 itself, and ITK's message carries a source location
    and an object address: the user sees one line per file in the library's words, and nothing else."""
    folder = tmp_path / "in"
    folder.mkdir()
    good = Path(__file__).resolve().parents[1] / "data" / "us_hc18_131_HC.png"
    shutil.copy(good, folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"broken" * 20)  # corrupt chunk: libpng speaks
    (folder / "c.png").write_bytes(good.read_bytes()[:60000])  # truncated image data
    before = digest_tree(folder)
    capfd.readouterr()
    code = main(["denoise", str(folder), str(tmp_path / "out"), *MEDIAN])
    os.write(2, b"fd 2 is back\n")
    err = capfd.readouterr().err
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[:2] == [
        f"error: {folder / name}: cannot decode the PNG image (truncated or corrupt)" for name in ("b.png", "c.png")
    ], err
    assert "1 of 3" in lines[2] and "2 failed" in lines[2] and lines[3:] == ["fd 2 is back"], err
    assert "libpng" not in err and "0x" not in err and "ITK" not in err
    assert digest_tree(folder) == before and leftover_temporaries(tmp_path) == []


def test_c_stderr_goes_to_the_debug_log_only_when_switched_on(capfd, monkeypatch):
    import logging

    from meddenoiselib.io import itk_messages
    from meddenoiselib.io.itk_messages import c_stderr_logged, capture_c_stderr

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append
    monkeypatch.setattr(itk_messages.logger, "handlers", [handler])
    monkeypatch.setattr(itk_messages.logger, "propagate", False)
    monkeypatch.setattr(itk_messages.logger, "level", itk_messages.logger.level)
    itk_messages.logger.setLevel(logging.DEBUG)  # setLevel, not setattr: it clears logging's level cache
    with c_stderr_logged():
        os.write(2, b"library default: shown\n")
    previous = capture_c_stderr(True)
    try:
        with pytest.raises(KeyboardInterrupt), c_stderr_logged():
            os.write(2, b"libpng error: Read Error\n")
            raise KeyboardInterrupt  # however the block ends, descriptor 2 comes back
    finally:
        capture_c_stderr(previous)
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert err.splitlines() == ["library default: shown", "after"]
    assert [(r.levelname, r.getMessage()) for r in records] == [("DEBUG", "C library stderr: libpng error: Read Error")]


def test_empty_file_in_a_dicom_series_folder_is_named_in_a_warning(tmp_path, capsys):
    series = _ct_series(tmp_path / "series")
    (series / "zz-slice.dcm").write_bytes(b"")
    before = digest_tree(series)
    capsys.readouterr()
    assert main(["denoise", str(series), str(tmp_path / "o.nii.gz"), "--model", "median", "--no-progress"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert f"{series / 'zz-slice.dcm'}: empty file (0 bytes) in the DICOM series folder; skipped" in lines
    assert main(["denoise", str(series), str(tmp_path / "q.nii.gz"), *MEDIAN]) == 0
    assert capsys.readouterr().err == ""  # --quiet: nothing but errors
    assert read_volume(tmp_path / "o.nii.gz").shape[0] == 4
    assert digest_tree(series) == before and leftover_temporaries(tmp_path) == []


def _nifti_with_zero_voxel_size(path: Path, sform: bool) -> Path:
    """A NIfTI whose stored pixdim[1] is 0 (nibabel repairs it when saving, so the bytes are patched)."""
    import struct

    image = nib.Nifti1Image(np.arange(120, dtype=np.int16).reshape(4, 5, 6), np.diag([2.0, 2.0, 3.0, 1.0]))
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=2 if sform else 0)
    nib.save(image, path)
    raw = bytearray(path.read_bytes())
    raw[80:84] = struct.pack("<f", 0.0)  # pixdim[1]
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("sform", [False, True])
def test_zero_voxel_size_in_a_nifti_is_a_warning_and_kept_consistent(tmp_path, capsys, sform):
    source = _nifti_with_zero_voxel_size(tmp_path / "flat.nii", sform)
    before = digest_tree(source)
    capsys.readouterr()
    assert main(["denoise", str(source), str(tmp_path / "o.nii.gz"), "--model", "median", "--no-progress"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "voxel size" in line]
    if sform:  # the sform gives the geometry, pixdim is not used: nothing to say
        assert warnings == []
    else:
        assert warnings == [f"{source}: voxel size 0 on axis 0 (pixdim[1]); using 1 mm"]
    written = nib.load(tmp_path / "o.nii.gz")
    assert np.allclose(written.affine, nib.load(source).affine)  # what was read (with the 1 mm) is written
    assert np.allclose(written.header.get_zooms(), (2.0 if sform else 1.0, 2.0, 3.0))
    assert digest_tree(source) == before


def test_report_json_is_complete(tmp_path):
    mr = _mr(tmp_path)
    report = tmp_path / "qa.json"
    assert main(["denoise", str(mr), str(tmp_path / "o.nii.gz"), "--report", str(report), *MEDIAN]) == 0
    assert json.loads(report.read_text())["method"] == "median"


def test_unexpected_errors_are_one_line_with_exit_3(tmp_path, capsys, monkeypatch):
    """A bug (any exception that is not the library's) still gives one line and no traceback without --debug."""
    mr = _mr(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(Denoiser, "denoise", broken)
    argv = ["denoise", str(mr), str(tmp_path / "o.nii.gz"), *MEDIAN]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error (RuntimeError: something unexpected)" in err
    assert "Traceback" not in err and leftover_temporaries(tmp_path) == []
    with pytest.raises(RuntimeError):
        main([*argv, "--debug"])


@pytest.mark.parametrize("source", ["badVR.dcm", "row_major.dconn.nii"])
def test_third_party_log_lines_stay_out_of_a_fresh_process(tmp_path, source):
    """In a new process too the refusal is the only line: pydicom resets its logger's level when first imported,
    and nibabel logs header fixes ("setting qfac to 1") through a stderr handler of its own."""
    import subprocess
    import sys

    if source.endswith(".dcm"):
        path = _copy(dicom_testdata(source), tmp_path)
    else:
        path = _copy(Path(nib.__file__).parent / "tests" / "data" / source, tmp_path)
    child = subprocess.run(
        [sys.executable, "-m", "meddenoiselib", "info", str(path)], capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 1
    assert child.stderr.count("\n") == 1 and child.stderr.startswith(f"error: {path}"), child.stderr
