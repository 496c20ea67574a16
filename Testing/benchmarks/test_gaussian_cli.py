"""The Gaussian CLI benchmark (benchmarks/gaussian_cli.py) scores the in-memory path on the very noisy image the
CLI read, also when a rerun over the same work folder asks for other noise levels."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from gaussian_cli import (  # noqa: E402
    PROTOCOLS,
    EarlierRunMismatch,
    memory_rows_from_quality,
    rows_from_earlier_run,
    run_cli,
    write_noisy,
    write_outputs,
)
from meddenoiselib.evaluation.compare import add_noise  # noqa: E402
from meddenoiselib.io import read_volume  # noqa: E402

CLEAN = np.linspace(0.0, 1.0, 48 * 40, dtype=np.float32).reshape(48, 40)
REFERENCES = [("CT", "slice.dcm", CLEAN), ("MR", "brain.tiff[3]", CLEAN[::-1].copy())]


def test_rerun_with_other_sigmas_reads_the_files_the_cli_reads(tmp_path):
    first = write_noisy(REFERENCES, [15.0, 25.0], seed=2026, work=tmp_path)
    # sigma 25 is now first in the list: drawing afresh would use the seed of sigma 15's place
    again = write_noisy(REFERENCES, [25.0], seed=2026, work=tmp_path)
    for case, noisy in first[25.0].items():
        on_disk = read_volume(tmp_path / "noisy" / "s25" / f"{case}.nii.gz").array[0]
        np.testing.assert_array_equal(again[25.0][case], on_disk)
        np.testing.assert_allclose(again[25.0][case], noisy, atol=1e-6)
        # and the noise is the requested one: sigma 25 on the 0-255 scale of the [0, 1] image
        clean = REFERENCES[int(case[:2])][2]
        assert abs(float(np.std(noisy - clean)) * 255 - 25) < 2.0
        # quality.py's draw (evaluation.compare.add_noise), sigma 25 second in the first run's list
        np.testing.assert_array_equal(noisy, add_noise(clean, 25.0, 2026 + 1000 * int(case[:2]) + 1))
    assert not np.allclose(first[15.0]["00_slice_dcm"], first[25.0]["00_slice_dcm"])


def test_reuse_only_runs_nothing_and_finds_earlier_outputs(tmp_path):
    out, seconds = run_cli("dncnn-small", 25.0, tmp_path, reuse_only=True)
    assert out is None and seconds != seconds
    assert not (tmp_path / "out").exists()
    earlier = tmp_path / "out" / "bm3d_true_sigma" / "s25"
    earlier.mkdir(parents=True)
    out, _ = run_cli("bm3d (true sigma)", 25.0, tmp_path, reuse_only=True)
    assert out == earlier


def test_table_without_an_in_memory_run_has_cli_columns_only(tmp_path):
    rows = [
        dict(image="a", modality="CT", level=s, method=m, path=p, psnr=v, ssim=0.5)
        for s, m, p, v in [(25.0, "noisy", "-", 20.0), (25.0, "nlm", "CLI", 32.5), (25.0, "auto", "CLI", 34.75)]
    ]
    write_outputs(rows, ["auto", "nlm", "kpn-burst3"], [15.0, 25.0], tmp_path)
    text = (tmp_path / "benchmarks_gaussian_cli.md").read_text()
    assert "| method | σ=15 CLI | σ=25 CLI |" in text and "in memory |" not in text
    assert "| auto | – | 34.75 |" in text and "| kpn-burst3 | – | – |" in text
    assert "| noisy | – | 20.00 |" in text


def test_in_memory_columns_from_quality_results(tmp_path):
    results = tmp_path / "benchmark_results.csv"
    results.write_text(
        "modality,image,sigma255,method,psnr,ssim,seconds\n"
        "CT,a.dcm,25.0,kpn-small,34.5,0.9,0.6\n"
        "CT,a.dcm,25.0,kpn-small@8,34.75,0.91,2.9\n"
        "CT,a.dcm,25.0,nlm,32.5,0.8,0.5\n"
        "CT,a.dcm,25.0,median,29.0,0.6,0.1\n"
    )
    rows = memory_rows_from_quality(results, ["auto", "nlm", "irunet-32"], "kpn-small")
    # auto is the default model with the CLI's 8 views; a method quality.py did not run gets no row
    assert {(r["method"], r["psnr"]) for r in rows} == {("auto", 34.75), ("nlm", 32.5)}
    assert all(r["path"] == "in memory" and r["level"] == 25.0 and r["modality"] == "CT" for r in rows)


def test_a_method_on_one_path_only_shows_dashes_on_the_other(tmp_path):
    rows = [
        dict(image="a", modality="CT", level=25.0, method=m, path=p, psnr=v, ssim=0.5)
        for m, p, v in [
            ("noisy", "-", 20.0),
            ("auto", "CLI", 34.75),
            ("auto", "in memory", 35.0),
            ("kpn-small", "in memory", 34.5),
        ]
    ]
    write_outputs(rows, ["auto", "kpn-small"], [25.0], tmp_path)
    text = (tmp_path / "benchmarks_gaussian_cli.md").read_text()
    assert "| auto | 34.75 | 35.00 | -0.25 |" in text
    assert "| kpn-small | – | 34.50 | – |" in text


def test_poisson_gaussian_levels_are_photon_counts_with_their_own_files_and_columns(tmp_path):
    protocol = PROTOCOLS["poisson-gaussian"]
    noisy = write_noisy(REFERENCES, [30.0, 300.0], seed=2026, work=tmp_path, protocol=protocol)
    assert (tmp_path / "noisy" / "p30" / "00_slice_dcm.nii.gz").exists()
    assert not (tmp_path / "noisy" / "s30").exists()
    bright = CLEAN > 0.8
    for peak in (30.0, 300.0):
        residual = noisy[peak]["00_slice_dcm"] - CLEAN
        # signal-dependent: std sqrt(x / peak + 1 / peak^2) at intensity x, ~0.17 / 0.055 in the bright part
        expected = float(np.sqrt(np.mean(CLEAN[bright]) / peak + 1 / peak**2))
        assert abs(float(np.std(residual[bright])) / expected - 1) < 0.15
        dark = CLEAN < 0.05
        assert float(np.std(residual[dark])) < 0.5 * float(np.std(residual[bright]))
    out, _ = run_cli("nlm", 30.0, tmp_path, reuse_only=True, protocol=protocol)
    assert out is None
    rows = [
        dict(image="a", modality="X-ray", level=100.0, method=m, path="CLI" if m != "noisy" else "-", psnr=v, ssim=0.5)
        for m, v in [("noisy", 26.0), ("auto", 36.5)]
    ]
    write_outputs(rows, ["auto"], [100.0], tmp_path, protocol=protocol)
    text = (tmp_path / "benchmarks_poisson_cli.md").read_text()
    assert text.startswith("# Poisson-Gaussian noise: the user's path (CLI)\n") and "| method | peak=100 CLI |" in text
    assert "| auto | 36.50 |" in text
    header = (tmp_path / "benchmark_poisson_cli.csv").read_text().splitlines()[0]
    assert header.split(",")[:3] == ["image", "modality", "peak"]


def test_rows_of_an_earlier_run_are_reused_only_on_the_same_noisy_images(tmp_path):
    def row(method, level, psnr, path="CLI", image="a"):
        return dict(image=image, modality="CT", level=level, method=method, path=path, psnr=psnr, ssim=0.5)

    earlier = [
        row("noisy", 15.0, 24.6, "-"),
        row("noisy", 25.0, 20.2, "-"),
        row("auto", 25.0, 34.8),
        row("auto", 25.0, 35.0, "in memory"),
        row("nlm", 15.0, 35.6),
        row("nlm", 25.0, 32.5),
    ]
    write_outputs(earlier, ["auto", "nlm"], [15.0, 25.0], tmp_path)
    csv_path = tmp_path / "benchmark_gaussian_cli.csv"
    protocol = PROTOCOLS["gaussian"]
    # a rerun of auto at sigma 25 alone keeps nlm's sigma 25 row and drops every auto row (it is rerun)
    kept = rows_from_earlier_run(csv_path, protocol, [row("noisy", 25.0, 20.2, "-")], rerun={"auto"})
    assert [(r["method"], r["level"], r["psnr"]) for r in kept] == [("nlm", 25.0, 32.5)]
    # other noisy images (another seed), or a level the earlier run did not have: nothing is reused
    for noisy in (row("noisy", 25.0, 20.3, "-"), row("noisy", 50.0, 14.1, "-"), row("noisy", 25.0, 20.2, "-", "b")):
        with pytest.raises(EarlierRunMismatch, match="benchmark_gaussian_cli.csv: its noisy"):
            rows_from_earlier_run(csv_path, protocol, [noisy], rerun={"auto"})
    # the CSV of the other noise protocol has no sigma column
    with pytest.raises(EarlierRunMismatch, match="no 'peak' column: not a run of the Poisson-Gaussian noise"):
        rows_from_earlier_run(csv_path, PROTOCOLS["poisson-gaussian"], [row("noisy", 25.0, 20.2, "-")], set())
