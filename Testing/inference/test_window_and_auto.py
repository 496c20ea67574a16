"""CT windows never saturate, `auto` picks the model by modality, and the report says what was chosen."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from meddenoiselib.cli import main
from meddenoiselib.evaluation import psnr
from meddenoiselib.inference import Denoiser
from meddenoiselib.inference.auto import AUTO_MODELS, choose_model
from meddenoiselib.io import (
    Modality,
    Volume,
    detect_modality,
    modality_from_dicom_code,
    modality_from_file,
    read_volume,
    write_volume,
)
from meddenoiselib.transforms import estimate_magnitude_floor, magnitude_floor_ratio, parse_noise_spec, simulate_volume

from ..conftest import brain_mask

DATA = Path(__file__).resolve().parents[1] / "data"


def _window_psnr(clean: np.ndarray, other: np.ndarray, body: np.ndarray) -> float:
    a, b = np.clip(clean, -160, 240), np.clip(other.astype(np.float64), -160, 240)
    return float(10 * np.log10(400.0**2 / np.mean((a - b)[body] ** 2)))


def test_window_round_trip_keeps_every_value_outside_the_window(ct_series_dir):
    volume = read_volume(ct_series_dir)
    result = Denoiser("median", window=(40, 400), strength=0.0).denoise(volume)
    np.testing.assert_array_equal(result.array, volume.array)
    windowed = Denoiser("median", window=(40, 400)).denoise(volume, sigma=0.05).array.astype(int)
    # a median filter commutes with the (affine) window map: if nothing saturated, the windowed run equals the
    # run normalized by the percentiles, bone (> 240 HU) and air (< -160 HU) included
    plain = Denoiser("median").denoise(volume, sigma=0.05).array.astype(int)
    assert np.abs(windowed - plain).max() <= 1
    assert windowed.max() > 1000 and windowed.min() <= -1000


@pytest.fixture(scope="module")
def low_dose_ct(ct_series_dir):
    """(clean, noisy at ~40 HU, ``Denoiser("auto")`` of the noisy): the real sample series, simulated once."""
    clean = read_volume(ct_series_dir)
    noisy = simulate_volume(clean, parse_noise_spec("ct-lowdose:40HU,method=fast,views=360"), seed=3)
    return clean, noisy, Denoiser("auto").denoise(noisy)


def test_window_on_low_dose_ct_beats_the_noisy_input(low_dose_ct):
    clean, noisy, denoised = low_dose_ct
    body = clean.array > -500
    assert _window_psnr(clean.array, denoised.array, body) > _window_psnr(clean.array, noisy.array, body) + 2.0


def test_auto_with_a_ct_window_on_low_dose_ct(tmp_path, low_dose_ct):
    """`denoise CT --window 40,400` (issue 12): better than the noisy input in the soft-tissue window, nothing
    outside the window saturated, and the HU-trained model keeps its training map, so the window changes nothing."""
    clean, noisy, plain = low_dose_ct
    source = tmp_path / "noisy.nii.gz"
    from meddenoiselib.io import write_volume

    write_volume(noisy, source)
    assert (
        main(
            [
                "denoise",
                str(source),
                str(tmp_path / "w.nii.gz"),
                "--window",
                "40,400",
                "--report",
                str(tmp_path / "w.json"),
                "-q",
                "--no-progress",
            ]
        )
        == 0
    )
    windowed = read_volume(tmp_path / "w.nii.gz").array.astype(np.float64)
    report = json.loads((tmp_path / "w.json").read_text())
    assert report["method"].startswith("kpn-ct"), report["model_choice"]  # CT recognized from HU values
    body = clean.array > -500
    assert _window_psnr(clean.array, windowed, body) > _window_psnr(clean.array, noisy.array, body) + 2.0
    # bone and air far outside W400/L40 come back in place (a saturating window would flatten them to 240 / -160)
    bone, air = clean.array > 700, clean.array < -900
    assert np.abs(windowed[bone] - clean.array[bone]).mean() < 60
    assert np.abs(windowed[air] - clean.array[air]).mean() < 30
    np.testing.assert_allclose(windowed, plain.array.astype(np.float64), atol=1.0)


def test_window_is_refused_for_networks_trained_on_min_max_images():
    from meddenoiselib.errors import MedDenoiseError

    with pytest.raises(MedDenoiseError, match="trained on images scaled to \\[0, 1\\]"):
        Denoiser("kpn-small", window=(40, 400))


def test_modality_from_tag_hint_and_hu_values(ct_series_dir, mr_nifti, us_png):
    ct, mr, us = read_volume(ct_series_dir), read_volume(mr_nifti), read_volume(us_png)
    assert detect_modality(ct).modality == Modality.CT and "DICOM Modality is CT" in detect_modality(ct).reason
    # the tag wins over a contradicting hint; files without a tag follow the hint
    assert detect_modality(ct, "mr").modality == Modality.CT
    assert detect_modality(mr, "mr").modality == Modality.MR
    assert detect_modality(us, "us").modality == Modality.US
    # the real head's air holds the scanner's magnitude noise floor: MR, read from the NIfTI file's values
    guess = detect_modality(mr)
    assert guess.modality == Modality.MR and "noise floor of a magnitude MR image (2 coils)" in guess.reason
    assert "a guess from its voxels, name the modality if it is not MR" in guess.reason  # how to overrule it
    # not from an array without a file, nor where a mask set the air to 0 (no floor to read)
    assert detect_modality(Volume(mr.array, spacing=mr.spacing)).modality == Modality.OTHER
    assert detect_modality(mr.with_array(np.where(mr.array < 30, 0, mr.array))).modality == Modality.OTHER
    # an ultrasound PNG without a modality gets the general model; the reason says how to pick the modality's own
    other = detect_modality(us)
    assert other.modality == Modality.OTHER and "a modality (ct, mr, us, xray) picks its own model" in other.reason
    # a CT written as NIfTI (no tag) is recognized from its HU values
    untagged = replace(ct, metadata={})
    guess = detect_modality(untagged)
    assert guess.modality == Modality.CT and "HU" in guess.reason
    # a bare DICOM Modality code maps as the tag does (the Slicer module's subject hierarchy hands over the code)
    expected = {"ct": Modality.CT, " MR ": Modality.MR, "US": Modality.US, "DX": Modality.XRAY, "CR": Modality.XRAY}
    expected.update({"MG": Modality.XRAY, "PT": Modality.OTHER, "OT": Modality.OTHER, "": None, None: None})
    assert {code: modality_from_dicom_code(code) for code in expected} == expected


def test_a_volume_file_of_fine_voxels_masked_to_zero_around_the_head_is_mr(mr_nifti, tmp_path):
    """A skull-stripped MR as NIfTI without a modality has no noise floor to tell it by; as a volume file of pixels up
    to 1.5 mm, never negative, masked to 0 around the object it is MR (the burst model with its refinement: on the
    held-out MNI T1 template +2.0-2.6 dB over the general model it got before). Not MR: coarser pixels (PET and SPECT
    reconstructions are 0 outside their field of view too), a crop whose edges are tissue, photon-count zeros,
    negative values, an array without a file."""
    head = read_volume(mr_nifti).array
    inside = brain_mask(head)
    stripped = np.where(inside, head, 0).astype(np.int16)

    def guess(array: np.ndarray, spacing=(1.0, 1.0, 1.0), name: str = "stripped.nii.gz"):
        path = tmp_path / name
        write_volume(Volume(array, spacing=spacing), path, overwrite=True)
        return detect_modality(read_volume(path))

    fine = guess(stripped)
    assert fine.modality == Modality.MR and "masked to 0 around the object" in fine.reason
    assert "name the modality if it is not MR" in fine.reason
    choice = choose_model(read_volume(tmp_path / "stripped.nii.gz"))
    assert choice.model == "kpn-burst3" and choice.magnitude_floor is None and choice.masked is not None
    assert guess(stripped.astype(np.float32), name="stripped.nrrd").modality == Modality.MR
    assert guess(stripped, spacing=(2.6, 2.6, 3.0)).modality == Modality.OTHER  # PET's pixels
    assert guess(stripped, spacing=(4.0, 4.0, 5.0)).modality == Modality.OTHER  # the file as it is
    assert guess(stripped[4:20, 14:44, 14:44]).modality == Modality.OTHER  # a crop inside the head: tissue on its edges
    yy, xx = np.mgrid[:64, :64]
    cone = (np.abs(np.degrees(np.arctan2(xx - 31.5, yy + 4))) < 35) & (np.hypot(xx - 31.5, yy + 4) < 60)
    ultrasound = np.where(cone, np.random.default_rng(1).rayleigh(40, (8, 64, 64)), 0).astype(np.uint8)
    assert guess(ultrasound, spacing=(0.3, 0.3, 0.5)).modality == Modality.OTHER  # a 3D cone reaching the probe
    counts = np.random.default_rng(0).poisson(np.where(inside, 40.0, 0.5)).astype(np.uint16)
    assert guess(counts).modality == Modality.OTHER  # low counts: zeros, but no masked regions
    assert guess(np.where(inside, head, -5).astype(np.int16)).modality == Modality.OTHER  # masked, but not to 0
    assert detect_modality(Volume(stripped)).modality == Modality.OTHER  # no file


def test_a_padded_ct_field_of_view_with_little_air_or_bone_is_ct_from_its_values():
    """A CT reconstruction padded outside its round field of view (-3024 in the corners, 21 % of a square slice) is
    CT from its values even with no bone and little air: a water phantom in NIfTI (until 2026-12-06 it needed air
    near -1000 HU and tissue above +300, and a 130 mm spine reconstruction or a water phantom got the general
    model). Values that are not CT's stay OTHER: a phase map in milliradians, a padded image whose other values run
    far beyond CT's."""
    y, x = np.mgrid[:256, :256] - 127.5
    radius = np.hypot(y, x)
    rng = np.random.default_rng(0)
    phantom = np.where(radius < 80, 0.0, -1000.0) + rng.normal(0, 12, (2, 256, 256))
    phantom = np.where(radius > 128, -3024, np.rint(phantom)).astype(np.int16)
    guess = detect_modality(Volume(phantom))
    assert guess.modality == Modality.CT and "padded outside the field of view (21% of voxels at -3024" in guess.reason
    # the field of view's edge blended with the padding, as in a resampled volume: still CT
    blended = phantom.copy()
    blended[:, (radius > 127) & (radius <= 128)] = -2000
    assert detect_modality(Volume(blended)).modality == Modality.CT
    phase = rng.uniform(-3142, 3142, phantom.shape).astype(np.int16)  # milliradians
    assert detect_modality(Volume(phase)).modality == Modality.OTHER
    beyond = np.where(radius > 128, -3024, rng.uniform(0, 30000, phantom.shape)).astype(np.int16)
    assert detect_modality(Volume(beyond)).modality == Modality.OTHER


def test_auto_prefers_each_modalitys_model_and_falls_back(ct_series_dir, mr_nifti):
    ct, mr = read_volume(ct_series_dir), read_volume(mr_nifti)
    shipped = ["kpn-small", "kpn-small-rician-mr", "kpn-burst3"]
    assert choose_model(ct, shipped=shipped).model == "kpn-burst3"
    # the real 4 x 4 x 5 mm head's air holds a noise floor: the burst model, the floor removed after it
    floor_choice = choose_model(mr, "mr", shipped=shipped)
    assert floor_choice.model == "kpn-burst3" and floor_choice.magnitude_floor is not None
    assert choose_model(mr, "mr", shipped=["kpn-small", "kpn-small-rician-mr"]).model == "kpn-small-rician-mr"
    unknown = Volume(mr.array, spacing=mr.spacing)  # no file, no tag, no floor read: the general model
    assert choose_model(unknown, shipped=shipped).model == "kpn-small"
    assert choose_model(mr, "mr", shipped=["kpn-small"]).model == "kpn-small"
    for models in AUTO_MODELS.values():
        assert models[-1] == "kpn-small"  # every modality ends on a model that ships today
    # with the shipped models: X-ray and files without a modality get the general model, which Denoiser() and
    # Denoiser("default") name too (Denoiser() chooses per volume; "default" always runs the general model)
    assert choose_model(unknown).model == "kpn-general"
    assert choose_model(mr, "xray").model == "kpn-general"
    default = Denoiser()
    assert default.auto and default.method == "auto"
    assert Denoiser("default").method == "kpn-general"


def test_cli_default_is_auto_and_the_report_records_the_choice(tmp_path, mr_nifti):
    report = tmp_path / "qa.json"
    code = main(
        [
            "denoise",
            str(mr_nifti),
            str(tmp_path / "mr.nii.gz"),
            "--modality",
            "mr",
            "--report",
            str(report),
            "-q",
            "--no-progress",
        ]
    )
    assert code == 0
    values = json.loads(report.read_text())
    assert values["modality"] == "mr"
    expected = choose_model(read_volume(mr_nifti), "mr").model
    assert values["method"] == expected and expected in values["model_choice"]
    assert "modality given as mr" in values["model_choice"]
    # an explicit --model always wins
    code = main(
        [
            "denoise",
            str(mr_nifti),
            str(tmp_path / "mr2.nii.gz"),
            "--model",
            "median",
            "--report",
            str(tmp_path / "qa2.json"),
            "-q",
            "--no-progress",
        ]
    )
    values = json.loads((tmp_path / "qa2.json").read_text())
    assert code == 0 and values["method"] == "median" and values["model_choice"] == "given explicitly"


def test_auto_denoiser_delegates_and_can_be_cancelled(ct_series_dir):
    denoiser = Denoiser("auto")
    assert denoiser.method == "auto" and not denoiser.needs_sigma
    volume = read_volume(ct_series_dir)
    denoiser.denoise(volume)
    assert denoiser.last_report.choice.startswith(choose_model(volume).model)
    assert denoiser.last_report.modality == "ct"
    with pytest.raises(Exception, match="unknown modality"):
        Denoiser("auto", modality="pet")


@pytest.mark.parametrize(("coils", "expected_low", "expected_high"), [(1, 1.6, 2.0), (4, 3.6, 4.1), (8, 5.2, 5.9)])
def test_magnitude_floor_ratio_tells_the_coil_count_whatever_sigma(coils, expected_low, expected_high):
    rng = np.random.default_rng(coils)
    for sigma in (3.0, 40.0):
        channels = rng.normal(0, sigma, (2 * coils, 4, 128, 128))
        floor = np.sqrt((channels**2).sum(axis=0))  # pure background: root sum of squares of the coils
        assert expected_low < magnitude_floor_ratio(floor) < expected_high
    assert magnitude_floor_ratio(np.zeros((4, 64, 64))) is None  # a masked background says nothing


def test_auto_reads_the_magnitude_floor_of_a_real_head_and_removes_it(mr_nifti):
    """Magnitude MR: auto reads sigma and the coil count from the background, runs the Gaussian burst model and
    removes the floor: the background's bias goes (Rician: 0.8 sigma left by the model alone on the benchmark,
    8 coils: 3.4 sigma) and the head loses nothing to the correction. At any voxel size: the real head is 4 x 4 x
    5 mm (given 1 x 1 x 2 mm voxels it takes the same path). Without the burst model the Rician / multi-coil models
    leave the floor in empty air (the held-out MNI T1 volume: bias 1.25 sigma, 3.9 at 8 coils)."""
    clean = read_volume(mr_nifti)
    clean = replace(clean, metadata={**clean.metadata, "0008|0060": "MR"})
    fine = replace(clean, spacing=(1.0, 1.0, 2.0))
    truth = clean.array.astype(np.float64)
    sigma = 0.03 * np.percentile(truth, 99)
    head, air = truth > 0.15 * truth.max(), truth == 0
    data_range = float(truth.max())
    for spec, coils, without_burst_model in (
        ("rician:3%", (1,), "kpn-small-rician-mr"),
        ("noncentral-chi:3%,8", (6, 8, 12), "kpn-mr"),
    ):
        fine_noisy = simulate_volume(fine, parse_noise_spec(spec), seed=3)
        assert choose_model(fine_noisy).model == "kpn-burst3"
        others = ["kpn-small", "kpn-small-rician-mr", "kpn-mr"]
        assert choose_model(fine_noisy, shipped=others).model == without_burst_model
        noisy = simulate_volume(clean, parse_noise_spec(spec), seed=3)
        choice = choose_model(noisy)
        assert choice.model == "kpn-burst3" and choice.magnitude_floor.coils in coils, choice
        assert choice.magnitude_floor.sigma == pytest.approx(sigma, rel=0.15)
        denoiser = Denoiser("auto")
        result = denoiser.denoise(noisy).array
        assert "magnitude noise floor removed" in denoiser.last_report.choice
        assert result.dtype == noisy.array.dtype
        denoised = result.astype(np.float64)
        # the model as auto runs it, without the removal: scaled from the minimum (auto does not read a flat
        # background's level from magnitude MR, whose floor is not zero-mean noise around the signal)
        plain = Denoiser("kpn-burst3", scaling_mode="minmax").denoise(noisy).array.astype(np.float64)
        bias, plain_bias = (float(np.mean(a[air])) / sigma for a in (denoised, plain))
        assert plain_bias > 0.5 and abs(bias) < plain_bias / 4, (spec, bias, plain_bias)  # 3/4 of the bias gone
        # in tissue the correction is small (8 coils, 4 mm: -0.4 dB here; +5.7 dB over the brain of the benchmark)
        assert psnr(truth[head], denoised[head], data_range) > psnr(truth[head], plain[head], data_range) - 0.6
    # no magnitude model installed: the Rician-trained model, nothing removed afterwards
    rician = simulate_volume(fine, parse_noise_spec("rician:3%"), seed=3)
    fallback = choose_model(rician, shipped=["kpn-small-rician-mr"])
    assert fallback.model == "kpn-small-rician-mr" and fallback.magnitude_floor is None


def test_no_floor_is_read_from_a_crop_without_air_or_a_constant_background(mr_nifti):
    """Correcting a floor that is not there would darken tissue: the darkest tiles of a crop inside the head give no
    floor (an all-zero background neither: Testing/transforms/test_magnitude.py)."""
    truth = read_volume(mr_nifti).array.astype(np.float64)
    noisy = simulate_volume(read_volume(mr_nifti), parse_noise_spec("rician:3%"), seed=3).array
    assert estimate_magnitude_floor(noisy) is not None
    z, y, x = np.nonzero(truth > 0.3 * truth.max())
    inside = noisy[z.min() : z.max(), y.min() + 8 : y.max() - 8, x.min() + 8 : x.max() - 8]
    assert estimate_magnitude_floor(inside) is None


def test_auto_keeps_a_masked_mr_background_and_denoises_the_head_as_fine_mr(mr_png):
    """Skull-stripped or scanner-masked magnitude MR holds 0 instead of a noise floor in its background, so no floor
    can be read there and auto used to fall back to the Rician model. The tissue's noise is still near-Gaussian at
    its SNR: auto now gives it the fine-MR burst model with its refinement (no floor to remove) and hands the masked
    background back exactly. The test brain slice (x16, 1 mm), Rician 3 %, masked outside the dilated head: +8.1 dB
    over the head against +4.8 with the Rician model, which also smeared values into 1268 masked pixels."""
    from scipy import ndimage

    from meddenoiselib.io import Volume
    from meddenoiselib.transforms.background import masked_background

    slice_ = read_volume(mr_png).array.astype(np.uint16) * 16
    clean = Volume(slice_, spacing=(1.0, 1.0, 1.0), metadata={"0008|0060": "MR"})
    truth = clean.array.astype(np.float64)
    mask = np.stack(
        [ndimage.binary_fill_holes(ndimage.binary_dilation(t > 0.1 * truth.max(), iterations=3)) for t in truth]
    )
    noisy = simulate_volume(clean, parse_noise_spec("rician:3%"), seed=3)
    assert choose_model(noisy).magnitude_floor is not None  # unmasked: the floor is read from the air
    masked_input = noisy.array.copy()
    masked_input[~mask] = 0
    noisy = noisy.with_array(masked_input)
    choice = choose_model(noisy)
    assert choice.model == "kpn-burst3" and choice.magnitude_floor is None and "masked background" in choice.reason
    background = masked_background(noisy.array)
    assert background.sum() > 0.99 * (~mask).sum()  # all but the odd pixel touching the head only diagonally
    denoiser = Denoiser("auto")
    result = denoiser.denoise(noisy).array
    assert "masked background" in denoiser.last_report.choice and denoiser.last_report.refined == 1.0
    assert np.all(result[background] == 0) and result.dtype == noisy.array.dtype
    head, data_range = truth > 0.15 * truth.max(), float(truth.max())
    rician = Denoiser("kpn-small-rician-mr").denoise(noisy).array

    def gain(output: np.ndarray) -> float:
        return psnr(truth[head], output[head].astype(np.float64), data_range) - psnr(
            truth[head], masked_input[head].astype(np.float64), data_range
        )

    assert gain(result) > gain(rician) + 2.0, (gain(result), gain(rician))


def test_nifti_modality_from_its_bids_sidecar_or_bids_name(tmp_path, mr_nifti):
    """Research MR is mostly NIfTI, which has no Modality tag: dcm2niix copies the DICOM tag into a JSON sidecar
    beside the file (BIDS), and BIDS names MR images by contrast (``_T1w``, ``_bold``, ``_dwi``). Without either (and
    without a noise floor in its air: masked) the head MR is ``other`` (the general model); with one, MR and its model,
    in a 4D series' frames too."""
    import shutil

    import nibabel as nib

    from meddenoiselib.io import read_series

    plain = tmp_path / "head.nii.gz"
    source = nib.load(mr_nifti)
    head = np.asarray(source.dataobj)
    nib.save(nib.Nifti1Image(np.where(head < 30, 0, head).astype(head.dtype), source.affine), str(plain))
    assert detect_modality(read_volume(plain)).modality == Modality.OTHER
    sidecar = tmp_path / "scan.nii.gz"
    shutil.copy(mr_nifti, sidecar)
    (tmp_path / "scan.json").write_text(json.dumps({"Modality": "MR", "MagneticFieldStrength": 3}))
    guess = detect_modality(read_volume(sidecar), "ct")  # the file's own tag wins over a contradicting hint
    assert guess.modality == Modality.MR and "scan.json gives Modality MR" in guess.reason
    named = tmp_path / "sub-01_ses-1_T1w.nii.gz"
    shutil.copy(mr_nifti, named)
    guess = detect_modality(read_volume(named))
    assert guess.modality == Modality.MR and "_T1w" in guess.reason
    assert detect_modality(read_volume(named), "us").modality == Modality.US  # a name is weaker than the user
    (tmp_path / "broken.nii.gz").write_bytes(plain.read_bytes())
    (tmp_path / "broken.json").write_text("[not a sidecar")
    assert detect_modality(read_volume(tmp_path / "broken.nii.gz")).modality == Modality.OTHER
    # a 4D BIDS run: every frame is MR, and the CLI's auto picks an MR model for it
    volume = read_volume(mr_nifti)
    frames = np.stack([volume.array, volume.array], axis=-1).transpose(2, 1, 0, 3)
    bold = tmp_path / "sub-01_task-rest_bold.nii.gz"
    nib.save(nib.Nifti1Image(frames, np.diag([4.0, 4.0, 5.0, 1.0])), str(bold))
    assert detect_modality(read_series(bold).frame(1)).modality == Modality.MR
    report = tmp_path / "bold.json"
    assert main(["denoise", str(bold), str(tmp_path / "out.nii.gz"), "--report", str(report), "--quiet"]) == 0
    choice = json.loads(report.read_text())
    assert choice["modality"] == "mr" and "_bold" in choice["model_choice"], choice["model_choice"]


def test_a_diffusion_mr_is_mr_by_its_b_values_file_or_its_nrrd_header(tmp_path, mr_nifti):
    """A diffusion series masked to the brain (as dwi2mask / bet leave it) has no noise floor, and at 2-2.5 mm no
    fine voxels, to tell it by; the FSL b-values file beside a NIfTI (``dwi.bval``, as dcm2niix writes it) and the
    ``DWMRI`` keys of a NRRD (as 3D Slicer writes a DWI) say it is MR. On a held-out masked DWI (the MNI template at
    2 mm, b = 0 and 1000, Rician 4 %) the MR path gains +4.1 / +3.8 dB (b = 0 / 1000) against +2.4 / +2.8 for the
    general model it got before."""
    import nibabel as nib

    from meddenoiselib.io import read_series

    head = read_volume(mr_nifti).array.astype(np.float64)
    brain = brain_mask(head)
    frames = np.stack([head, head * 0.45, head * 0.4], axis=-1).transpose(2, 1, 0, 3)  # b = 0, 1000, 1000
    frames = np.where(brain.transpose(2, 1, 0)[..., None], np.rint(frames), 0).astype(np.int16)
    dwi = tmp_path / "dwi.nii.gz"
    nib.save(nib.Nifti1Image(frames, np.diag([2.5, 2.5, 2.5, 1.0])), str(dwi))
    assert detect_modality(read_series(dwi).frame(1)).modality == Modality.OTHER  # masked, 2.5 mm: nothing to tell
    assert read_series(dwi).frame_label == "time"
    (tmp_path / "dwi.bval").write_text("0 1000 1000\n")
    series = read_series(dwi)
    guess = detect_modality(series.frame(1))
    assert guess.modality == Modality.MR and "dwi.bval" in guess.reason and "diffusion" in guess.reason
    assert series.frame_label == "gradient" and series.frame_values == ()  # not times
    assert modality_from_file(dwi).modality == Modality.MR  # what the Slicer module passes on as the hint
    assert detect_modality(series.frame(0), "us").modality == Modality.US  # a file name's hint is weaker than the user
    report = tmp_path / "dwi.json"
    assert main(["denoise", str(dwi), str(tmp_path / "out.nii.gz"), "--report", str(report), "--quiet"]) == 0
    choice = json.loads(report.read_text())
    assert choice["modality"] == "mr" and "dwi.bval" in choice["model_choice"], choice["model_choice"]
    out = np.asarray(nib.load(str(tmp_path / "out.nii.gz")).dataobj)
    # the mask given back as it was, its jagged edge included (0.6 % of it came back non-zero before the masked
    # background took in the pixels between its 2x2 patches and the brain; now a few pixels of pockets that small)
    outside = out[~brain.transpose(2, 1, 0)]
    assert np.count_nonzero(outside) <= 1e-4 * outside.size

    # 3D Slicer's DWI: gradients as the first (list) axis of a NRRD, with DWMRI key/values
    sizes = frames.shape[3], *frames.shape[:3]
    header = (
        "NRRD0005\ntype: short\ndimension: 4\nspace: left-posterior-superior\n"
        f"sizes: {' '.join(map(str, sizes))}\nspace directions: none (2.5,0,0) (0,2.5,0) (0,0,2.5)\n"
        "kinds: list domain domain domain\nendian: little\nencoding: raw\nspace origin: (0,0,0)\n"
        "modality:=DWMRI\nDWMRI_b-value:=1000\nDWMRI_gradient_0000:= 0 0 0\nDWMRI_gradient_0001:= 1 0 0\n"
        "DWMRI_gradient_0002:= 0 1 0\n\n"
    )
    nrrd = tmp_path / "dwi.nrrd"
    nrrd.write_bytes(header.encode() + np.ascontiguousarray(frames.transpose(3, 0, 1, 2)).astype("<i2").tobytes("F"))
    slicer_dwi = read_series(nrrd)
    assert slicer_dwi.num_frames == 3 and slicer_dwi.frame_label == "gradient"
    guess = detect_modality(slicer_dwi.frame(2), "ct")  # the header's own word wins over a contradicting hint
    assert guess.modality == Modality.MR and "DWMRI" in guess.reason
    plain = tmp_path / "plain.nrrd"
    plain.write_bytes(header.split("modality:=")[0].encode() + b"\n" + nrrd.read_bytes()[len(header) :])
    assert detect_modality(read_series(plain).frame(2)).modality == Modality.OTHER


def test_a_pet_cropped_to_the_body_is_not_read_as_mr(tmp_path, mr_nifti, ct_series_dir):
    """A PET's darkest tiles, once it is cropped to the body, are its lungs: activity plus smooth noise whose
    median / MAD fits a multi-coil magnitude floor as well as an MR's air does. Read as MR, `auto` removed that
    "floor" and took the low-activity regions to ~0 Bq/ml. Air surrounds an object, so a floor must lie on the
    image's edge; the lungs do not. A BIDS PET name is not MR either, whatever its background."""
    import shutil

    pet_path = DATA / "pet_chest_phantom_crop.nii.gz"  # simulated (scripts/make_pet_phantom.py)
    pet = read_volume(pet_path)
    floor = estimate_magnitude_floor(pet.array)
    assert floor is not None and floor.coils > 1  # its lungs fit a floor: the edge rule is what keeps it from MR
    guess = detect_modality(pet)
    assert guess.modality == Modality.OTHER, guess.reason
    out, report = tmp_path / "pet_out.nii.gz", tmp_path / "pet.json"
    assert main(["denoise", str(pet_path), str(out), "--report", str(report), "--quiet"]) == 0
    assert json.loads(report.read_text())["modality"] == "other"
    low = pet.array < np.percentile(pet.array, 25)  # lungs and the body's edge: 190 Bq/ml on average
    kept = read_volume(out).array[low].mean() / pet.array[low].mean()
    assert 0.9 < kept < 1.1, kept  # read as MR: 6 / 188 Bq/ml
    named = tmp_path / "sub-01_trc-FDG_pet.nii.gz"  # a BIDS PET name wins over an MR-like floor
    shutil.copy(mr_nifti, named)
    guess = detect_modality(read_volume(named))
    assert guess.modality == Modality.OTHER and "_pet, a PET image" in guess.reason
    # what a front end that hands over a copy of the voxels (the Slicer module) passes as the hint
    assert modality_from_file(named).modality == Modality.OTHER
    assert modality_from_file(tmp_path / "sub-01_dwi.nii.gz").modality == Modality.MR  # needs no file
    assert modality_from_file(pet_path) is None
    assert modality_from_file(sorted(ct_series_dir.glob("*.dcm"))[0]).reason == "DICOM Modality is CT"  # its header
    (tmp_path / "broken.dcm").write_bytes(b"not DICOM")
    assert modality_from_file(tmp_path / "broken.dcm") is None  # reading it names the problem, not the guess


def test_auto_gives_the_black_around_an_ultrasound_sector_back_exactly(us_png):
    """Speckle multiplies the echo, so the black around the sector stays exactly black in a scan: `auto` hands it back
    as it was instead of the model's near-black there, and denoises the sector as before (the test frame: 13 % of
    it outside the sector; six held-out HC18 frames at speckle 0.2: +0.00 to +0.06 dB over kpn-us alone)."""
    from meddenoiselib.transforms.background import masked_background

    clean = read_volume(us_png)
    noisy = simulate_volume(clean, parse_noise_spec("speckle:0.2"), seed=5)
    black = masked_background(noisy.array)
    assert black is not None and 0.05 < black.mean() < 0.5
    denoiser = Denoiser("auto", modality="us")
    result = denoiser.denoise(noisy).array
    assert "masked background" in denoiser.last_report.choice
    assert np.array_equal(result[black], noisy.array[black])
    plain = Denoiser(denoiser.last_report.method).denoise(noisy).array
    assert np.count_nonzero(plain[black]) > 0  # the model alone puts values there
    truth = clean.array.astype(np.float64)
    assert psnr(truth, result.astype(np.float64), 255.0) >= psnr(truth, plain.astype(np.float64), 255.0)
    assert np.array_equal(result[~black], plain[~black])


def test_metaimage_modality_field_picks_the_model_and_channels_stay_apart(tmp_path, mr_nifti, ct_series_dir):
    """MetaImage stores the modality in its own header field (``Modality = MET_MOD_MR``), which SimpleITK and 3D
    Slicer write; it counts like the DICOM tag. A 2-channel MetaImage (was refused: "2-component pixels are not
    supported") is denoised channel by channel, its 4 channels are not taken for RGBA."""
    import SimpleITK as sitk

    head = sitk.ReadImage(str(mr_nifti))

    def with_modality(name: str, value: str):
        sitk.WriteImage(head, str(tmp_path / name))  # ITK's writer leaves the field out: add it as other tools do
        data = (
            (tmp_path / name).read_bytes().replace(b"ElementDataFile", f"Modality = {value}\nElementDataFile".encode())
        )
        (tmp_path / name).write_bytes(data)
        return read_volume(tmp_path / name)

    guess = detect_modality(with_modality("head.mha", "MET_MOD_MR"), "ct")
    assert guess.modality == Modality.MR and guess.reason == "MetaImage Modality is MET_MOD_MR"
    # MET_MOD_OTHER tells nothing: the hint decides
    assert detect_modality(with_modality("other.mha", "MET_MOD_OTHER"), "ct").modality == Modality.CT
    # written back (SimpleITK's writer leaves it out), into an attached or a detached header, data intact
    for name in ("out.mha", "out.mhd"):
        source = read_volume(tmp_path / "head.mha")
        back = read_volume(write_volume(source, tmp_path / name))
        assert detect_modality(back).reason == "MetaImage Modality is MET_MOD_MR"
        np.testing.assert_array_equal(back.array, source.array)
    # from a DICOM series' Modality tag too
    assert detect_modality(read_volume(write_volume(read_volume(ct_series_dir), tmp_path / "ct.mha"))).reason == (
        "MetaImage Modality is MET_MOD_CT"
    )

    values = sitk.GetArrayFromImage(head).astype(np.float32)
    for count in (2, 4):
        channels = np.stack([values * (k + 1) for k in range(count)], axis=-1)
        sitk.WriteImage(sitk.GetImageFromArray(channels, isVector=True), str(tmp_path / f"c{count}.mha"))
        volume = read_volume(tmp_path / f"c{count}.mha")
        assert volume.num_components == count
        out = Denoiser("median", device="cpu").denoise(volume, sigma=20 / 255).array
        single = Denoiser("median", device="cpu").denoise(volume.with_array(channels[..., 1]), sigma=20 / 255).array
        np.testing.assert_allclose(out[..., 1], single, rtol=1e-6)  # each channel as if alone


def test_a_small_mr_slice_gets_its_floor_read_and_removed(mr_png, tmp_path):
    """A single MR slice of 128 x 128 (the test data's brain reduced 2x, an EPI / DWI matrix) with a Rician floor of
    3 % of its 99th percentile. Its 16-px grid had too few tiles for a background, so ``auto`` fell back to the Rician
    model: 34.43 dB over the tissue, where the noisy slice has 32.06. The floor is now read on 8-px tiles, and the
    slice gets the burst model with its refinement and the floor's removal: 37.18 dB. A floor read on finer tiles is
    no evidence of MR in a file without a modality (the guess keeps to its 16-px grid): the same slice as an untagged
    NIfTI stays ``other``."""
    image = read_volume(mr_png).array[0].astype(np.float64)
    reduced = image.reshape(128, 2, 128, 2).mean(axis=(1, 3))
    signal = np.rint(np.where(reduced > 8, reduced, 0.0) * 16.0)[None].astype(np.uint16)
    clean = Volume(signal, spacing=(2.0, 2.0, 5.0), metadata={"0008|0060": "MR"})
    noisy = simulate_volume(clean, parse_noise_spec("rician:3%"), seed=5)
    choice = choose_model(noisy)
    assert choice.model == "kpn-burst3" and choice.magnitude_floor is not None
    assert choice.magnitude_floor.tile == 8 and choice.magnitude_floor.coils == 1
    truth = clean.array.astype(np.float64)
    inside, peak = truth > 0.15 * truth.max(), float(truth.max())

    def score(result: Volume) -> float:
        return psnr(truth[inside], result.array.astype(np.float64)[inside], peak)

    auto = score(Denoiser(device="cpu").denoise(noisy))
    rician = score(Denoiser("kpn-small-rician-mr", device="cpu").denoise(noisy))
    assert auto > score(noisy) + 4.0 and auto > rician + 2.0, (score(noisy), auto, rician)
    untagged = tmp_path / "slice.nii.gz"
    write_volume(Volume(noisy.array, spacing=noisy.spacing), untagged)
    assert detect_modality(read_volume(untagged)).modality == Modality.OTHER


def test_auto_keeps_a_masked_background_of_a_volume_of_unknown_modality(mr_nifti):
    """A skull-stripped MR saved as NIfTI without a modality has no noise floor to tell it by: ``auto`` takes it as
    OTHER and runs the general model, which smeared tissue values across the mask into the zeros (up to 13 % of the
    99th percentile on MR_Gd). The masked background is now given back exactly for such volumes too; photon-count
    zeros (a low-count background, 60 % of its pixels 0) are not taken for a mask."""

    head = read_volume(mr_nifti).array.astype(np.float32)
    inside = brain_mask(head)
    stripped = Volume(np.where(inside, head, 0).astype(np.int16), spacing=(4.0, 4.0, 5.0))
    choice = choose_model(stripped)
    assert choice.modality == Modality.OTHER and choice.model == "kpn-general" and "masked background" in choice.reason
    denoiser = Denoiser("auto")
    result = denoiser.denoise(stripped).array
    outside = ~inside
    # all but the odd pixel touching the head only diagonally (as for MR, test above)
    assert np.count_nonzero(result[outside]) <= 0.01 * outside.sum(), np.count_nonzero(result[outside])
    assert "masked background" in denoiser.last_report.choice
    general = Denoiser("kpn-general").denoise(stripped).array  # the same model without the mask: values leak
    assert np.count_nonzero(general[outside]) > 0.01 * outside.sum()
    assert np.abs(result[inside].astype(float) - general[inside]).mean() < 0.05 * float(head[inside].std())

    counts = np.random.default_rng(0).poisson(np.where(inside, 40.0, 0.5)).astype(np.uint16)
    assert (counts[outside] == 0).mean() > 0.55  # low counts: most background pixels are exactly 0
    assert choose_model(Volume(counts, spacing=(4.0, 4.0, 5.0))).masked is None
