"""MR images that are not magnitudes (phase, real, imaginary: DICOM ImageType or ComplexImageComponent, a dcm2niix
sidecar, a BIDS name) get what they need from ``auto``: a phase image is left alone with a clear error, a real or
imaginary image gets the Gaussian burst model without a magnitude floor's removal, and a series mixing them is
refused instead of being denoised as one volume."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from meddenoiselib.cli import main
from meddenoiselib.demo import sample_path
from meddenoiselib.errors import InputError
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.io.modality import signal_component, signal_component_of_dicom

from ..conftest import new_dicom_dataset

SIGMA = 20.0


def _write_mr_series(folder, slices: np.ndarray, image_types: list[list[str]], ge_code: int | None = None) -> None:
    """One signed 16-bit MR file per slice of ``slices`` ``(Z, Y, X)`` (4 x 4 x 5 mm), each with its ImageType;
    ``ge_code``: GE's private image type (0043,102F) too."""
    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    for k, (pixels, image_type) in enumerate(zip(slices, image_types, strict=True)):
        ds = new_dicom_dataset(study=study, series=series)
        ds.Modality, ds.PatientID, ds.ImageType, ds.InstanceNumber = "MR", "complex", image_type, k + 1
        ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [0.0, 0.0, 5.0 * k]
        ds.PixelSpacing, ds.SliceThickness = [4.0, 4.0], 5.0
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.rint(pixels).astype(np.int16).tobytes()
        if ge_code is not None:
            ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x2F, "SS", ge_code)
        pydicom.dcmwrite(str(folder / f"{k:03d}.dcm"), ds, enforce_file_format=True)


def _complex_head() -> tuple[np.ndarray, np.ndarray]:
    """The bundled head MR's slices 5-18 as the magnitude of a complex image with a smooth phase (a 2.5 pi ramp
    left-right, a bowl front-back): ``(real part, phase in radians)``, both ``(14, 58, 58)``."""
    head = np.asarray(nib.load(str(sample_path("mr_head"))).dataobj, dtype=np.float64).transpose(2, 1, 0)[5:19]
    z, y, x = np.mgrid[0 : head.shape[0], 0 : head.shape[1], 0 : head.shape[2]]
    phase = 2.5 * np.pi * (x / x.max() - 0.5) + 8.0 * (y / y.max() - 0.5) ** 2 + 0.1 * z
    return head * np.cos(phase), np.angle(np.exp(1j * phase))


def _psnr(clean: np.ndarray, result: np.ndarray) -> float:
    span = clean.max() - clean.min()
    return float(10 * np.log10(span**2 / np.mean((result.astype(np.float64) - clean) ** 2)))


@pytest.mark.parametrize(
    ("complex_component", "image_type", "expected"),
    [
        ("", "ORIGINAL\\PRIMARY\\P\\ND", "phase"),  # Siemens
        ("", "ORIGINAL\\PRIMARY\\P_FFE\\P\\FFE", "phase"),  # Philips
        ("", "ORIGINAL\\PRIMARY\\M\\ND\\NORM", "magnitude"),
        ("", "ORIGINAL\\PRIMARY\\R\\ND", "real"),
        ("IMAGINARY", "ORIGINAL\\PRIMARY\\OTHER", "imaginary"),  # enhanced MR names it in its own element
        ("", "ORIGINAL\\PRIMARY\\AXIAL", ""),  # a CT's, or a magnitude MR that does not say
        ("", "ORIGINAL\\PRIMARY\\M\\P", ""),  # two parts named: not told
    ],
)
def test_the_part_of_the_complex_signal_is_read_from_the_header(complex_component, image_type, expected):
    assert signal_component_of_dicom(complex_component, image_type) == expected


def test_a_real_part_image_gets_the_gaussian_burst_model_without_a_floor_removed(tmp_path):
    """The real part of a complex MR is signed with zero-mean Gaussian noise; until 2026-12-06 `auto` gave it the
    Rician model (it has negative values, so no floor was read), which lost 2.9 dB against the noisy input here."""
    clean, _ = _complex_head()
    noisy = clean + np.random.default_rng(3).normal(0, SIGMA, clean.shape)
    _write_mr_series(tmp_path / "real", noisy, [["ORIGINAL", "PRIMARY", "R", "ND"]] * len(noisy))
    volume = read_volume(tmp_path / "real")
    assert signal_component(volume) == "real"
    denoiser = Denoiser("auto")
    result = denoiser.denoise(volume)
    choice = denoiser.choose(volume)
    assert choice.model == "kpn-burst3" and choice.magnitude_floor is None and "real part" in choice.reason
    gain = _psnr(clean, result.array) - _psnr(clean, volume.array)
    rician = _psnr(clean, Denoiser("kpn-small-rician-mr").denoise(volume).array) - _psnr(clean, volume.array)
    assert gain > 2.5 and gain - rician > 4.0, (gain, rician)
    assert abs(float(np.mean(result.array - clean))) < 0.05 * SIGMA  # no floor taken away from signed values


def test_a_phase_image_is_left_alone_by_auto_and_denoised_when_a_model_is_chosen(tmp_path, capsys):
    _, phase = _complex_head()
    stored = phase / np.pi * 4096  # Siemens' scale: -4096..4095 for -pi..pi
    _write_mr_series(tmp_path / "phase", stored, [["ORIGINAL", "PRIMARY", "P", "ND"]] * len(stored))
    with pytest.raises(InputError, match=r"phase image .* wrap around .* choose a model with --model"):
        Denoiser("auto").denoise(read_volume(tmp_path / "phase"))
    assert main(["denoise", str(tmp_path / "phase"), str(tmp_path / "out"), "--quiet"]) == 1
    assert "MR phase image" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(["info", str(tmp_path / "phase"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["auto"].startswith("nothing: ")
    out = tmp_path / "chosen"
    assert main(["denoise", str(tmp_path / "phase"), str(out), "--model", "kpn-burst3", "--quiet"]) == 0
    assert read_volume(out).shape == (14, 58, 58)


def test_a_ge_phase_image_is_known_by_its_private_image_type(tmp_path):
    """GE writes ImageType ORIGINAL\\PRIMARY\\OTHER for magnitude and phase alike; its private (0043,102F) tells."""
    _, phase = _complex_head()
    _write_mr_series(tmp_path / "ge", phase * 1000, [["ORIGINAL", "PRIMARY", "OTHER"]] * len(phase), ge_code=1)
    volume = read_volume(tmp_path / "ge")
    assert signal_component(volume) == "phase"
    with pytest.raises(InputError, match="phase image"):
        Denoiser("auto").denoise(volume)
    assert signal_component_of_dicom("", "ORIGINAL\\PRIMARY\\OTHER", "2") == "real"


def test_a_nifti_phase_image_is_known_by_its_sidecar_or_its_bids_name(tmp_path):
    _, phase = _complex_head()
    image = nib.Nifti1Image(phase.transpose(2, 1, 0).astype(np.float32), np.diag([4.0, 4.0, 5.0, 1.0]))
    nib.save(image, tmp_path / "sub-01_part-phase_bold.nii.gz")
    nib.save(image, tmp_path / "fieldmap_e2_ph.nii.gz")
    (tmp_path / "fieldmap_e2_ph.json").write_text(
        json.dumps({"Modality": "MR", "ImageType": ["ORIGINAL", "PRIMARY", "P", "ND"]})
    )
    nib.save(image, tmp_path / "sub-01_phasediff.nii.gz")
    for name in ("sub-01_part-phase_bold.nii.gz", "fieldmap_e2_ph.nii.gz", "sub-01_phasediff.nii.gz"):
        volume = read_volume(tmp_path / name)
        assert signal_component(volume) == "phase", name
        with pytest.raises(InputError, match="phase image"):
            Denoiser("auto", modality="mr").denoise(volume)


def test_a_series_of_magnitude_and_phase_images_is_refused_as_one_volume(tmp_path):
    clean, phase = _complex_head()
    pixels = np.concatenate([np.abs(clean[:7]), phase[:7] / np.pi * 4096])  # magnitude then phase at 7 positions
    types = [["ORIGINAL", "PRIMARY", "M", "ND"]] * 7 + [["ORIGINAL", "PRIMARY", "P", "ND"]] * 7
    _write_mr_series(tmp_path / "fieldmap", pixels, types)
    with pytest.raises(InputError, match=r"7 magnitude, 7 phase"):
        read_volume(tmp_path / "fieldmap")
