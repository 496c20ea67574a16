"""``evaluate --noise``: realistic noise on clean references, scored in the image's units, equal to the user's path
(noisy file -> ``denoise`` -> scores) and refusing what the scores cannot apply to before anything runs."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from meddenoiselib.cli import main
from meddenoiselib.evaluation.physical import SOFT_TISSUE_WINDOW
from meddenoiselib.evaluation.realistic import load_volume_references
from meddenoiselib.io import read_volume, write_volume
from meddenoiselib.transforms import parse_noise_spec, simulate_volume


def _rows(folder) -> dict[str, dict]:
    with open(folder / "results.csv", newline="") as handle:
        return {row["method"]: row for row in csv.DictReader(handle)}


def test_ct_scores_in_hu_equal_the_users_path_through_files(tmp_path, ct_series_dir):
    """Low-dose CT noise of ~60 HU on the central slice of the real chest series: the noisy row reads the inserted
    noise in HU, the median filter gains but blurs the skin's edge, and its PSNR in W400/L40 over the body equals
    what the user gets by writing the same noisy slice to a file, denoising it with the CLI and scoring the file by
    hand."""
    out = tmp_path / "evaluation"
    assert main(["evaluate", str(ct_series_dir), "--noise", "ct-lowdose:60HU", "--methods", "median"]
                + ["--max-slices", "1", "-o", str(out), "-q"]) == 0  # fmt: skip
    rows = _rows(out)
    noisy, median = rows["noisy"], rows["median"]
    assert noisy["region"] == "body, W400/L40" and noisy["units"] == "HU" and noisy["image"] == "ct_chest[1:2]"
    assert 55.0 < float(noisy["noise_left"]) < 95.0  # ~60 HU inserted on top of the scan's own noise
    assert float(median["psnr"]) > float(noisy["psnr"]) + 3.0
    assert float(median["noise_left"]) < 0.9 * float(noisy["noise_left"])
    assert noisy["bias_sigma"] == "" and (out / "comparison.png").stat().st_size > 1000
    # the air-skin edge: noise alone leaves its width (1.0 = the clean one's); the median widens it
    assert float(noisy["edge_ratio"]) == pytest.approx(1.0, abs=0.05) and float(median["edge_ratio"]) > 1.1

    # the user's path: the same noisy slice as a file, the CLI's median, scored by hand
    ((_, clean),) = load_volume_references([ct_series_dir], max_slices=1)
    noisy_file, result_file = tmp_path / "noisy.nii.gz", tmp_path / "median.nii.gz"
    write_volume(simulate_volume(clean, parse_noise_spec("ct-lowdose:60HU"), seed=0), noisy_file)
    assert main(["denoise", str(noisy_file), str(result_file), "--model", "median", "-q"]) == 0
    hu, result = clean.array.astype(np.float64), read_volume(result_file).array.astype(np.float64)
    low, high = SOFT_TISSUE_WINDOW
    body = hu > -500
    error = np.clip(result, low, high)[body] - np.clip(hu, low, high)[body]
    by_hand = 20 * np.log10((high - low) / np.sqrt(np.mean(error**2)))
    assert float(median["psnr"]) == pytest.approx(by_hand, abs=0.01)


def test_magnitude_mr_reports_the_rician_floor_and_its_removal(tmp_path, mr_png):
    """Rician noise of 6 % on the brain slice (a PNG: the modality is given): the noisy background sits about one
    sigma above the clean one, ``auto`` picks an MR model, gains over the head and removes most of that bias."""
    out = tmp_path / "mr"
    assert main(["evaluate", str(mr_png), "--noise", "rician:6%", "--methods", "auto", "--modality", "mr"]
                + ["-o", str(out), "-q"]) == 0  # fmt: skip
    rows = _rows(out)
    noisy, auto = rows["noisy"], rows["auto"]
    assert noisy["region"] == "head" and auto["model"] != "auto"
    assert 0.8 < float(noisy["bias_sigma"]) < 1.3  # the Rician floor: ~1.25 sigma in pure air
    assert abs(float(auto["bias_sigma"])) < 0.5 * float(noisy["bias_sigma"])
    assert float(auto["psnr"]) > float(noisy["psnr"]) + 5.0
    table = (out / "summary.md").read_text()
    assert "### rician:6% (1 reference(s); scored over the head, image units)" in table


def test_refusals_come_before_anything_runs(tmp_path, mr_nifti, ct_series_dir, capsys):
    """CT noise on an MR volume is refused naming the file, even after a noise model that applies (exit 1, no
    method ran, no output folder left); --sigma beside --noise is a usage error (exit 2)."""
    out = tmp_path / "never"
    code = main(["evaluate", str(mr_nifti), "--noise", "rician:3%", "--noise", "ct-lowdose:25HU", "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and not out.exists() and "PSNR" not in captured.err
    assert captured.err.strip().splitlines()[-1] == (
        "error: aniso_vox.nii.gz[10:13]: ct-lowdose noise needs CT in HU, with air near -1000; this reference's "
        "minimum is 0"
    )
    code = main(["evaluate", str(ct_series_dir), "--noise", "ct-lowdose:25HU", "--sigma", "25", "-o", str(out)])
    assert code == 2 and "not --sigma and --noise" in capsys.readouterr().err and not out.exists()


def test_a_real_noisy_scan_beside_its_reference_is_scored_as_simulated_noise_is(tmp_path, ct_series_dir, capsys):
    """``--noisy``: a low-dose scan beside its reference (here the chest series and a copy with ~40 HU of simulated
    low-dose noise, both NIfTI without a Modality tag: ``--modality ct``) gives the rows ``--noise`` gives for the
    same noise; a scan off its reference's grid is refused by name."""
    from meddenoiselib.io import Volume

    series = read_volume(ct_series_dir)
    reference, noisy = tmp_path / "full_dose.nii.gz", tmp_path / "low_dose.nii.gz"
    write_volume(Volume(series.array, series.spacing, series.origin, series.direction), reference)
    clean = read_volume(reference)
    write_volume(simulate_volume(clean, parse_noise_spec("ct-lowdose:40HU"), seed=0), noisy)
    paired, simulated = tmp_path / "paired", tmp_path / "simulated"
    common = ["--methods", "median", "--max-slices", "4", "-q"]
    assert (
        main(["evaluate", str(reference), "--noisy", str(noisy), "--modality", "ct", "-o", str(paired), *common]) == 0
    )
    assert main(["evaluate", str(ct_series_dir), "--noise", "ct-lowdose:40HU", "-o", str(simulated), *common]) == 0
    rows, expected = _rows(paired), _rows(simulated)
    assert rows["noisy"]["noise"] == "paired: low_dose.nii.gz" and rows["noisy"]["units"] == "HU"
    for method in ("noisy", "median"):
        for score in ("psnr", "ssim", "rmse", "noise_left", "edge_ratio"):
            assert float(rows[method][score]) == pytest.approx(float(expected[method][score]), abs=1e-3), score

    shifted = tmp_path / "shifted.nii.gz"
    moved = read_volume(noisy)
    write_volume(Volume(moved.array, moved.spacing, tuple(np.add(moved.origin, (5.0, 0, 0))), moved.direction), shifted)
    code = main(
        ["evaluate", str(reference), "--noisy", str(shifted), "--modality", "ct", "-o", str(tmp_path / "x"), *common]
    )
    assert code == 1 and "shifted.nii.gz: not on the grid of its reference full_dose.nii.gz: its origin" in (
        capsys.readouterr().err
    )
