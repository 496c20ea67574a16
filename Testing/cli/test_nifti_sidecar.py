"""A NIfTI output's JSON sidecar (``out.json`` beside ``out.nii.gz``), as dcm2niix and BIDS write it: from a DICOM
input's header (acquisition values under their BIDS names and units, never the patient's), or a copy of a NIfTI
input's own sidecar; both say what denoised the image. Before 2026-12-07 a DICOM scan written as NIfTI lost its
modality, scanner and timing, so the output denoised again went to ``auto`` as an unknown file."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom

from meddenoiselib import __version__
from meddenoiselib.cli import main
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.io.sidecar import dicom_sidecar

MEDIAN = ["--model", "median", "--quiet"]


def test_a_dicom_ct_written_as_nifti_gets_its_acquisition_in_a_sidecar(tmp_path, ct_series_dir):
    out = tmp_path / "chest.nii.gz"
    assert main(["denoise", str(ct_series_dir), str(out), "--quiet"]) == 0
    values = json.loads((tmp_path / "chest.json").read_text())
    source = pydicom.dcmread(next(p for p in sorted(ct_series_dir.iterdir()) if p.is_file()), stop_before_pixels=True)
    assert values["Modality"] == "CT" and values["Manufacturer"] == source.Manufacturer
    assert values["KVP"] == float(source.KVP) and values["ConvolutionKernel"] == source.ConvolutionKernel
    assert values["ImageType"] == list(source.ImageType)
    assert values["ConversionSoftware"] == values["DenoisingSoftware"] == "MedDenoise"
    assert values["DenoisingSoftwareVersion"] == __version__
    assert values["DenoisingMethod"].startswith("auto: kpn-ct-burst3 for CT")
    assert not any("Patient" in key or "Date" in key for key in values)

    # denoised again, the NIfTI is CT by its sidecar, not by guessing from its values
    denoiser = Denoiser()
    denoiser.denoise(read_volume(out))
    assert "its sidecar chest.json gives Modality CT" in denoiser.last_report.choice


def test_dicom_values_become_bids_values():
    header = {
        "0008|0060": "MR",
        "0018|0081": "30",
        "0018|0080": "2500",
        "0018|1314": "90",
        "0018|0087": "3",
        "0008|0008": "ORIGINAL\\PRIMARY\\M\\ND",
        "0010|0010": "Doe^John",
        "0008|0020": "20260101",
        "0018|0082": "not a number",
    }
    assert dicom_sidecar(header) == {
        "Modality": "MR",
        "MagneticFieldStrength": 3,
        "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"],
        "EchoTime": 0.03,
        "RepetitionTime": 2.5,
        "FlipAngle": 90,
    }


def test_a_nifti_inputs_sidecar_is_copied_with_what_denoised_it(tmp_path, mr_nifti):
    import shutil

    shutil.copyfile(mr_nifti, tmp_path / "mr.nii.gz")
    # a BIDS NIfTI with its dcm2niix sidecar: the sidecar is copied beside the output, with what denoised it
    bids = {"Modality": "MR", "EchoTime": 0.03, "RepetitionTime": 2.5, "ConversionSoftware": "dcm2niix"}
    (tmp_path / "mr.json").write_text(json.dumps(bids))
    assert main(["denoise", str(tmp_path / "mr.nii.gz"), str(tmp_path / "mr_dn.nii.gz"), *MEDIAN]) == 0
    copied = json.loads((tmp_path / "mr_dn.json").read_text())
    assert {key: copied[key] for key in bids} == bids  # dcm2niix stays the converter
    assert copied["DenoisingMethod"] == "median" and copied["DenoisingSoftware"] == "MedDenoise"

    # a NIfTI without a sidecar gets none; neither does a NRRD output
    (tmp_path / "mr.json").unlink()
    assert main(["denoise", str(tmp_path / "mr.nii.gz"), str(tmp_path / "plain.nii.gz"), *MEDIAN]) == 0
    assert main(["denoise", str(tmp_path / "mr.nii.gz"), str(tmp_path / "plain.nrrd"), *MEDIAN]) == 0
    assert not (tmp_path / "plain.json").exists()


def test_the_sidecar_is_planned_like_any_output(tmp_path, ct_series_dir):
    out = tmp_path / "ct.nii.gz"
    (tmp_path / "ct.json").write_text("{}")
    assert main(["denoise", str(ct_series_dir), str(out), *MEDIAN]) == 1  # it exists: refused before computing
    assert not out.exists() and (tmp_path / "ct.json").read_text() == "{}"
    assert main(["denoise", str(ct_series_dir), str(out), *MEDIAN, "--overwrite"]) == 0
    assert json.loads((tmp_path / "ct.json").read_text())["Modality"] == "CT"
    # a report named like the sidecar is the report, as asked
    assert (
        main(["denoise", str(ct_series_dir), str(tmp_path / "r.nii.gz"), *MEDIAN, "--report", str(tmp_path / "r.json")])
        == 0
    )
    assert "noise_sigma_before_0_255" in json.loads((tmp_path / "r.json").read_text())
    assert nib.load(str(tmp_path / "r.nii.gz")).shape[2] == 4
    assert np.isfinite(np.asarray(nib.load(str(out)).dataobj)).all()
