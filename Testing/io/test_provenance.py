"""Inputs whose header says they were resampled (user need 21: denoise the rawest data): a NIfTI registered to an
atlas, a reformatted DICOM series. The CLI says so and the report records it; scans as they come are left alone."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pydicom

from meddenoiselib.cli import main
from meddenoiselib.io import read_series, read_volume
from meddenoiselib.io.provenance import resampling_sign


def _with_sform_code(source, target, code: int, frames: int = 0):
    image = nib.load(str(source))
    data = np.asanyarray(image.dataobj)
    if frames:
        data = np.stack([data] * frames, axis=-1)
    copy = nib.Nifti1Image(data, image.affine, image.header.copy())
    copy.set_sform(image.affine, code=code)
    nib.save(copy, str(target))
    return target


def test_an_atlas_registered_nifti_is_named_and_a_scanner_one_is_not(tmp_path, mr_nifti, capsys):
    mni = _with_sform_code(mr_nifti, tmp_path / "t1_mni.nii.gz", 4)
    assert (
        resampling_sign(read_volume(mni)) == "its NIfTI sform code is 4 (MNI 152 space): it was registered to an atlas"
    )
    for code in (1, 2):  # scanner; "aligned", as older converters wrote for scans straight off the scanner
        assert resampling_sign(read_volume(_with_sform_code(mr_nifti, tmp_path / f"c{code}.nii.gz", code))) == ""
    assert resampling_sign(read_series(_with_sform_code(mr_nifti, tmp_path / "4d.nii.gz", 5, frames=2))).startswith(
        "its NIfTI sform code is 5 (a template's space)"
    )

    assert main(["info", str(mni)]) == 0
    assert "resampled" in capsys.readouterr().out
    report = tmp_path / "report.json"
    args = ["denoise", str(mni), str(tmp_path / "out.nii.gz"), "--model", "median", "--sigma", "10"]
    assert main([*args, "--report", str(report), "--no-progress"]) == 0
    assert "t1_mni.nii.gz looks resampled: its NIfTI sform code is 4" in capsys.readouterr().err
    assert json.loads(report.read_text())["input_resampled"].startswith("its NIfTI sform code is 4")
    scanner = ["denoise", str(tmp_path / "c1.nii.gz"), str(tmp_path / "o1.nii.gz"), "--model", "median"]
    assert main([*scanner, "--report", str(report), "--overwrite"]) == 0
    assert "resampled" not in capsys.readouterr().err and "input_resampled" not in json.loads(report.read_text())
    assert main(["denoise", str(tmp_path / "4d.nii.gz"), str(tmp_path / "o4.nii.gz"), "--model", "median"]) == 0
    assert "4d.nii.gz looks resampled" in capsys.readouterr().err


def test_a_reformatted_dicom_series_is_named(tmp_path, ct_series_dir, capsys):
    folder = tmp_path / "mpr"
    shutil.copytree(ct_series_dir, folder)
    for path in folder.iterdir():
        dataset = pydicom.dcmread(path)
        dataset.ImageType = ["DERIVED", "SECONDARY", "MPR"]
        dataset.save_as(path)
    assert resampling_sign(read_volume(folder)) == (
        "its DICOM ImageType is DERIVED\\SECONDARY\\MPR (MPR: a reformatted series)"
    )
    assert resampling_sign(read_volume(ct_series_dir)) == ""  # ORIGINAL\PRIMARY\AXIAL\HELIX
    out = tmp_path / "out.nrrd"
    assert main(["denoise", str(folder), str(out), "--model", "median", "--preview-slice", "1", "--no-progress"]) == 0
    assert "mpr looks resampled: its DICOM ImageType is DERIVED\\SECONDARY\\MPR" in capsys.readouterr().err


def test_a_file_header_alone_says_the_same_as_the_image(tmp_path, mr_nifti, ct_series_dir):
    """``header_resampling_sign`` (what the Slicer module asks of the file a node was loaded from) agrees with
    ``resampling_sign`` of the image read whole, for NIfTI and DICOM; other formats and broken files give ``""``."""
    from meddenoiselib.io.provenance import header_resampling_sign

    for code in (1, 2, 3, 4, 5):
        path = _with_sform_code(mr_nifti, tmp_path / f"s{code}.nii.gz", code)
        assert header_resampling_sign(path) == resampling_sign(read_volume(path))
    assert header_resampling_sign(tmp_path / "s4.nii.gz").startswith("its NIfTI sform code is 4")

    source = sorted(ct_series_dir.glob("*.dcm"))[0]
    assert header_resampling_sign(source) == ""  # ORIGINAL\PRIMARY\AXIAL
    dataset = pydicom.dcmread(source)
    dataset.ImageType = ["DERIVED", "SECONDARY", "MIP"]
    dataset.save_as(tmp_path / "mip.dcm")
    assert header_resampling_sign(tmp_path / "mip.dcm") == resampling_sign(read_volume(tmp_path / "mip.dcm"))
    assert "(MIP: a reformatted series)" in header_resampling_sign(tmp_path / "mip.dcm")

    (tmp_path / "broken.nii.gz").write_bytes(b"not gzip")
    assert header_resampling_sign(tmp_path / "broken.nii.gz") == ""
    assert header_resampling_sign(tmp_path / "missing.dcm") == ""
    assert header_resampling_sign(tmp_path / "image.png") == ""
