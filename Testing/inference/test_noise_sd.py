"""A noise level in the image's own units (``NoiseSD``: HU for CT): the Denoiser converts it to each scaling's
normalized scale, so a user who measured 25 HU in flat tissue need not know the scaling a method chooses.

Real data: a 128x128 crop of a real chest CT slice in HU with white noise of known SD; a real MR head slab.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from meddenoiselib.bundle import noise_level
from meddenoiselib.cli import main
from meddenoiselib.errors import OptionError
from meddenoiselib.evaluation import psnr
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import Volume, read_volume, write_volume
from meddenoiselib.transforms import NoiseSD

NOISE_HU = 40.0


@pytest.fixture(scope="module")
def noisy_ct(ct_crop):
    """(clean, noisy) 3-slice HU volumes of the real chest crop, white noise of 40 HU."""
    clean = np.repeat((ct_crop.astype(np.float64) * 1400.0 - 1000.0)[np.newaxis], 3, axis=0)
    noisy = clean + np.random.default_rng(5).normal(0.0, NOISE_HU, clean.shape)
    spacing_mm = (0.7, 0.7, 2.5)
    return Volume(clean.astype(np.float32), spacing=spacing_mm), Volume(noisy.astype(np.float32), spacing=spacing_mm)


def _window_psnr(clean: np.ndarray, other: np.ndarray) -> float:
    return psnr(np.clip(other, -160, 240), np.clip(clean, -160, 240), data_range=400.0)


def test_the_sd_in_hu_is_the_normalized_sigma_of_the_method_s_scaling(noisy_ct):
    clean, noisy = noisy_ct
    denoiser = Denoiser("nlm", modality="ct")
    by_hu = denoiser.denoise(noisy, sigma=NoiseSD(NOISE_HU)).array
    report = denoiser.last_report
    scale = report.scaling[0]["high"] - report.scaling[0]["low"]
    assert report.sigma == pytest.approx(NOISE_HU / scale) and report.sigma_used and not report.sigma_estimated
    np.testing.assert_array_equal(by_hu, denoiser.denoise(noisy, sigma=NOISE_HU / scale).array)
    # the true SD denoises best: a tenth of it leaves the noise, twice it smooths the anatomy away (W400 gains in
    # dB; measured +2.14, +0.00, -3.39)
    before = _window_psnr(clean.array, noisy.array)
    gain = {
        factor: _window_psnr(clean.array, denoiser.denoise(noisy, sigma=NoiseSD(NOISE_HU * factor)).array) - before
        for factor in (0.1, 2.0)
    }
    gain[1.0] = _window_psnr(clean.array, by_hu) - before
    assert gain[1.0] > 1.5 and gain[0.1] < 0.5 and gain[2.0] < 0.0, gain


def test_the_same_scan_in_other_units_gets_the_same_result_in_those_units(mr_nifti):
    """An MR head slab, and the same stored x3 (another scanner's scale): SD 20 and SD 60 give results x3 apart."""
    head = read_volume(mr_nifti).array[8:11].astype(np.float32)
    noisy = head + np.random.default_rng(2).normal(0.0, 20.0, head.shape).astype(np.float32)
    denoiser = Denoiser("nlm", modality="mr")
    once = denoiser.denoise(Volume(noisy, spacing=(4.0, 4.0, 5.0)), sigma=NoiseSD(20.0)).array
    thrice = denoiser.denoise(Volume(3.0 * noisy, spacing=(4.0, 4.0, 5.0)), sigma=NoiseSD(60.0)).array
    np.testing.assert_allclose(thrice, 3.0 * once, rtol=1e-4, atol=1e-2 * float(noisy.max()))


def test_a_blind_model_whose_refinement_measures_the_ct_noise_says_it_used_no_level(ct_series_dir):
    denoiser = Denoiser("auto")
    series = read_volume(ct_series_dir)
    crop = Volume(series.array[:2, 128:384, 128:384], spacing=series.spacing, metadata=series.metadata)
    denoiser.denoise(crop, sigma=NoiseSD(25.0))
    assert denoiser.last_report.method.startswith("kpn-ct") and not denoiser.last_report.sigma_used


@pytest.mark.parametrize("value", [0.0, -3.0, float("nan"), float("inf")])
def test_a_noise_sd_is_a_positive_number(value):
    with pytest.raises(ValueError, match="a noise SD must be a positive number in the image's units"):
        NoiseSD(value)


def test_denoise_array_takes_no_sd_in_image_units(noisy_ct):
    with pytest.raises(OptionError, match="needs the image's scaling"):
        Denoiser("nlm").denoise_array(np.zeros((32, 32), np.float32), sigma=NoiseSD(5.0))


def test_cli_noise_sd_in_hu_is_recorded_and_refused_with_sigma(noisy_ct, tmp_path, capsys):
    clean, noisy = noisy_ct
    source = tmp_path / "ct.nii.gz"
    write_volume(noisy, source)
    out, report = tmp_path / "out.nii.gz", tmp_path / "report.json"
    args = ["denoise", str(source), str(out), "--model", "nlm", "--modality", "ct", "--noise-sd", "40"]
    assert main([*args, "--report", str(report), "--no-progress"]) == 0
    values = json.loads(report.read_text())
    assert values["noise_sd_given"] == 40.0 and values["noise_sd_units"] == "HU"
    library = Denoiser("nlm", modality="ct")
    np.testing.assert_array_equal(read_volume(out).array, library.denoise(read_volume(source), NoiseSD(40.0)).array)
    assert values["sigma_used_0_255"] == pytest.approx(library.last_report.sigma * 255.0, abs=1e-3)
    assert values["sigma_estimated"] is False
    assert "noise SD 40 HU given" in capsys.readouterr().err
    gain = _window_psnr(clean.array, read_volume(out).array) - _window_psnr(clean.array, noisy.array)
    assert gain > 1.5
    assert main([*args, "--sigma", "5"]) == 2
    assert "--sigma and --noise-sd both give the noise level: give one" in capsys.readouterr().err
    assert main(["denoise", str(source), str(out), "--noise-sd", "-4"]) == 2
    assert "the noise SD must be positive" in capsys.readouterr().err


def test_the_bundle_hands_noise_sd_to_the_denoiser_in_image_units():
    assert noise_level("auto", None) == "auto" and noise_level(0.04, "null") == 0.04
    assert noise_level("auto", "25") == NoiseSD(25.0) and noise_level("auto", 25) == NoiseSD(25.0)
    with pytest.raises(ValueError, match="both give the noise level"):
        noise_level(0.04, 25)
    with pytest.raises(ValueError, match="noise_sd must be a number"):
        noise_level("auto", "lots")


@pytest.mark.parametrize("units_per_grey_level", [1.0, 10.0])
def test_info_reads_the_noise_sd_in_the_image_s_units_for_noise_sd(xray_png, tmp_path, capsys, units_per_grey_level):
    """A real chest X-ray with white noise of 12 grey levels, stored as is and x10 (another detector's scale): info
    reads ~12 and ~120 (the X-ray's own noise adds ~0.8 in quadrature), the number --noise-sd takes."""
    image = read_volume(xray_png)
    noisy = image.array.astype(np.float32) + np.random.default_rng(4).normal(0.0, 12.0, image.shape).astype(np.float32)
    path = tmp_path / "xray.nii.gz"
    write_volume(Volume(noisy * units_per_grey_level, spacing=image.spacing), path)
    assert main(["info", str(path), "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    note = values["noise"]
    assert "what --noise-sd takes" in note and values["noise_sd_units"] == "image units"
    assert float(note.split()[0]) == values["noise_sd"] == pytest.approx(12.0 * units_per_grey_level, rel=0.08)
    # a run's report gives the same estimate in the image's units, before and after
    report = tmp_path / "report.json"
    args = ["denoise", str(path), str(tmp_path / "out.nii.gz"), "--model", "median", "--report", str(report), "-q"]
    assert main(args) == 0
    values = json.loads(report.read_text())
    assert values["noise_sd_before"] == pytest.approx(float(note.split()[0]), rel=0.01)
    assert values["noise_sd_after"] < 0.5 * values["noise_sd_before"]


def test_on_ct_the_given_level_keeps_the_scan_s_noise_texture(ct_series_dir):
    """The real chest CT (its own noise is correlated): a method taking a noise level gets the SD given, with the
    spectrum's shape measured in flat body tissue (BM3D then filters by texture: on 6 held-out chest slices with
    simulated low-dose noise, 28.3 HU in the body, +0.28 dB W400 over the white level at the true SD); a volume
    taken for another modality gets the white level."""
    series = read_volume(ct_series_dir)
    crop = Volume(series.array[:, 96:416, 96:416], spacing=series.spacing, metadata=series.metadata)
    denoiser = Denoiser("nlm")
    denoiser.denoise(crop, sigma=NoiseSD(30.0))
    report = denoiser.last_report
    scale = report.scaling[0]["high"] - report.scaling[0]["low"]
    assert report.modality == "ct" and report.noise_correlated
    assert report.sigma == pytest.approx(30.0 / scale) and not report.sigma_estimated
    other = Denoiser("nlm", modality="other")
    other.denoise(Volume(crop.array.astype(np.float32), spacing=crop.spacing), sigma=NoiseSD(30.0))
    assert other.last_report.modality == "other" and not other.last_report.noise_correlated


def test_on_magnitude_mr_the_sd_given_is_the_floor_s_sigma(mr_nifti):
    """The real MR head with Rician noise of 3 % (sigma 23.9): auto reads 26.3 from the background; given the true
    sigma, the floor's removal uses it (bias in air 0.03 sigma, measured; PSNR over the head 38.41 dB against 38.37);
    given two thirds of it, a third of the floor stays (+0.59 sigma)."""
    from dataclasses import replace

    from meddenoiselib.transforms import parse_noise_spec, simulate_volume

    clean = read_volume(mr_nifti)
    clean = replace(clean, metadata={**clean.metadata, "0008|0060": "MR"})
    truth = clean.array.astype(np.float64)
    sigma = 0.03 * np.percentile(truth, 99)
    air = truth == 0
    noisy = simulate_volume(clean, parse_noise_spec("rician:3%"), seed=3)
    bias = {}
    for factor in (1.0, 2.0 / 3.0):
        denoiser = Denoiser("auto")
        result = denoiser.denoise(noisy, NoiseSD(sigma * factor)).array.astype(np.float64)
        assert f"sigma {sigma * factor:.4g} as given, 1 coil from the background" in denoiser.last_report.choice
        bias[factor] = float(result[air].mean()) / sigma
    assert abs(bias[1.0]) < 0.1 and bias[2.0 / 3.0] > 0.3, bias
