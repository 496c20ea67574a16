"""``magnitude_floor`` and ``coils``: the Rician / non-central chi floor of magnitude MR removed with any method
(``remove``), kept with ``auto`` (``keep``), read for a given coil count; on the CLI ``--magnitude-floor`` and
``--coils``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from meddenoiselib import MedDenoiseError
from meddenoiselib.cli import main
from meddenoiselib.evaluation.physical import head_mask, masked_psnr
from meddenoiselib.evaluation.realistic import noise_sigma_in_units
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume, write_volume
from meddenoiselib.transforms import parse_noise_spec, simulate_volume


@pytest.fixture(scope="module")
def brain(mr_png):
    """``(clean volume with empty air, head, background)``: the test data's brain slice, its air set to 0 outside
    the head (the file's own air holds dim values that no floor removal can give back), background = outside the
    head dilated by 5 pixels."""
    volume = read_volume(mr_png)
    clean = volume.array.astype(np.float32)
    head = head_mask(clean)
    clean = np.where(ndimage.binary_dilation(head[0], iterations=3)[None], clean, 0).astype(np.float32)
    background = ~np.stack([ndimage.binary_dilation(h, iterations=5) for h in head])
    return volume.with_array(clean), head, background


def _noisy(brain, spec_text, seed=1):
    clean, _, _ = brain
    spec = parse_noise_spec(spec_text)
    return simulate_volume(clean, spec, seed=seed, float_output=True), noise_sigma_in_units(clean.array, spec)


def _scores(brain, result, sigma):
    clean, head, background = brain
    psnr = masked_psnr(clean.array, result, head, float(clean.array.max()))
    return psnr, float(np.mean((np.asarray(result, np.float64) - clean.array)[background])) / sigma


def test_remove_takes_the_rician_floor_out_of_nlm(brain):
    """Rician 6 %: NLM named explicitly keeps the floor (air ~1.25 sigma up) unless asked; with ``remove`` the
    background is unbiased and the head's PSNR unchanged; the report says what was removed (BM3D, an optional
    extra: docs/benchmarks_magnitude_floor.md)."""
    noisy, sigma = _noisy(brain, "rician:6%")
    kept = Denoiser("nlm", modality="mr").denoise(noisy).array
    psnr_kept, bias_kept = _scores(brain, kept, sigma)
    assert bias_kept > 1.1
    denoiser = Denoiser("nlm", modality="mr", magnitude_floor="remove")
    removed = denoiser.denoise(noisy).array
    psnr_removed, bias_removed = _scores(brain, removed, sigma)
    assert abs(bias_removed) < 0.1 and psnr_removed > psnr_kept - 0.2
    assert denoiser.last_report.choice.endswith(
        "then its magnitude noise floor removed (sigma 10.68, 1 coil, from the background)"
    )
    assert denoiser.last_report.floor_sigma == pytest.approx(sigma, rel=0.05)
    assert removed.dtype == noisy.array.dtype


def test_eight_coils_floor_removed_with_the_count_read_or_given(brain):
    """Non-central chi of 8 coils: the floor is ~3.9 sigma high; NLM with ``remove`` reads 8 coils from the air
    (+6 dB over the head), and ``coils=8`` gives the same; ``coils=1`` (wrong) leaves the head 0.5 dB worse."""
    noisy, sigma = _noisy(brain, "noncentral-chi:4%,8")
    psnr_kept, bias_kept = _scores(brain, Denoiser("nlm", modality="mr").denoise(noisy).array, sigma)
    assert bias_kept > 3.5
    read = Denoiser("nlm", modality="mr", magnitude_floor="remove")
    psnr_read, bias_read = _scores(brain, read.denoise(noisy).array, sigma)
    assert "8 coils, from the background" in read.last_report.choice
    assert psnr_read > psnr_kept + 5.0 and abs(bias_read) < 0.1
    given = Denoiser("nlm", modality="mr", magnitude_floor="remove", coils=8)
    np.testing.assert_array_equal(given.denoise(noisy).array, read.denoise(noisy).array)
    assert "8 coils as given" in given.last_report.choice
    wrong = Denoiser("nlm", modality="mr", magnitude_floor="remove", coils=1).denoise(noisy).array
    assert _scores(brain, wrong, sigma)[0] < psnr_read - 0.5


def test_keep_leaves_the_floor_with_auto_and_the_dtype(brain):
    """``auto`` removes the floor by default; ``keep`` gives the magnitude's mean back (same model, floor in the
    air), in the input's integer type, and the report says it was kept."""
    noisy, sigma = _noisy(brain, "rician:6%")
    as_int = noisy.with_array(np.rint(noisy.array).astype(np.uint16))
    removed = Denoiser("auto", modality="mr").denoise(as_int).array
    keeper = Denoiser("auto", modality="mr", magnitude_floor="keep")
    kept = keeper.denoise(as_int).array
    assert kept.dtype == np.uint16
    assert abs(_scores(brain, removed, sigma)[1]) < 0.1 and _scores(brain, kept, sigma)[1] > 1.1
    assert "its magnitude noise floor kept as asked (sigma" in keeper.last_report.choice
    assert keeper.last_report.floor_sigma is None


def test_refusals(brain, ct_crop):
    """``remove`` with a named method on a CT (negative values) or on an image whose air was set to 0 is refused
    naming the problem; bad option values are refused."""
    ct = brain[0].with_array(np.pad(ct_crop * 1400.0 - 1000.0, 64, mode="reflect")[None].astype(np.float32))
    with pytest.raises(MedDenoiseError, match="needs a magnitude image"):
        Denoiser("nlm", magnitude_floor="remove").denoise(ct)
    with pytest.raises(MedDenoiseError, match="no magnitude noise floor was found in its air"):
        Denoiser("nlm", modality="mr", magnitude_floor="remove").denoise(brain[0])  # clean: air exactly 0
    with pytest.raises(MedDenoiseError, match="magnitude_floor must be one of auto, remove, keep"):
        Denoiser("nlm", magnitude_floor="yes")
    with pytest.raises(MedDenoiseError, match="coils must be a whole number from 1 to 64"):
        Denoiser("nlm", coils=0)


def test_cli_magnitude_floor_and_coils_equal_the_library(brain, tmp_path):
    """``denoise --model nlm --magnitude-floor remove --coils 1`` on a file equals the library and records the
    removal in the report."""
    noisy, _ = _noisy(brain, "rician:6%")
    source, output, report = tmp_path / "noisy.nii.gz", tmp_path / "out.nii.gz", tmp_path / "report.json"
    write_volume(noisy, source)
    code = main(["denoise", str(source), str(output), "--model", "nlm", "--modality", "mr", "--magnitude-floor",
                 "remove", "--coils", "1", "--report", str(report), "-q"])  # fmt: skip
    assert code == 0
    expected = Denoiser("nlm", modality="mr", magnitude_floor="remove", coils=1).denoise(read_volume(source))
    np.testing.assert_allclose(read_volume(output).array, expected.array, rtol=0, atol=1e-4)
    assert "magnitude noise floor removed (sigma" in json.loads(report.read_text())["model_choice"]
