"""The real-noise benchmark's ``--rows-from``: a partial rerun keeps every other method's rows of an earlier run,
only on the same noisy series."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from real_noise import EarlierRunMismatch, merge_earlier_rows, write_csv  # noqa: E402

SPEC = "ct-lowdose:0.12264,kernel=hamming,views=1000,electronic=10"


def _row(case: str, method: str, psnr: float, rmse: float, path: str = "cli", used: str = "") -> dict:
    return dict(
        modality="CT",
        case=case,
        level="A 25 HU",
        noise=SPEC,
        seed=2026,
        slices=3,
        method=method,
        path=path,
        model_used=used,
        rmse=rmse,
        psnr=psnr,
        ssim=0.75,
        noise_std=rmse,
        edge_ratio=1.0,
        seconds=2.0,
        own_noise=3.9,
    )


def _earlier(tmp_path: Path) -> Path:
    rows = []
    for case, noisy_psnr in (("head-ge", 25.77), ("water-phantom", 24.08)):
        rows += [
            _row(case, "noisy", noisy_psnr, 25.2, path=""),
            _row(case, "auto", 34.46, 9.0, used="kpn-ct-burst3"),
            _row(case, "kpn-ct-burst3", 34.46, 9.0),
            _row(case, "nlm", 34.63, 8.8),
            _row(case, "bm3d", 37.15, 6.6),
            _row(case, "auto (in-memory)", 34.40, 9.1, path="in-memory", used="kpn-ct-burst3"),
        ]
    path = tmp_path / "benchmark_real_noise.csv"
    write_csv(rows, path)
    return path


def test_a_partial_rerun_keeps_the_other_methods_in_their_order(tmp_path):
    earlier = _earlier(tmp_path)
    now = [
        _row("head-ge", "noisy", 25.77, 25.2, path=""),
        _row("head-ge", "auto", 35.10, 8.4, used="kpn-ct-burst3"),
        _row("head-ge", "kpn-ct-burst3", 35.10, 8.4),
        _row("head-ge", "kpn-new", 35.20, 8.3),
    ]
    merged = merge_earlier_rows(earlier, now)
    # only the series this run has; the earlier run's method order, the new method last
    assert [r["method"] for r in merged] == ["noisy", "auto", "kpn-ct-burst3", "nlm", "bm3d", "kpn-new"]
    assert {r["case"] for r in merged} == {"head-ge"}
    by_method = {r["method"]: r for r in merged}
    assert by_method["auto"]["psnr"] == 35.10  # rerun: this run's number, not the CSV's 34.46
    assert by_method["bm3d"]["psnr"] == pytest.approx(37.15) and by_method["bm3d"]["rmse"] == pytest.approx(6.6)
    assert by_method["bm3d"]["own_noise"] == 3.9 and by_method["bm3d"]["seed"] == 2026  # from this run's noisy row
    # auto ran again through the CLI: its earlier in-memory rows went with it (stale), not carried over
    assert "auto (in-memory)" not in by_method


def test_other_noisy_series_are_refused(tmp_path):
    earlier = _earlier(tmp_path)
    with pytest.raises(
        EarlierRunMismatch, match="its noisy CT / head-ge / A 25 HU is PSNR 25.77 dB.*this run's is PSNR 25.8"
    ):
        merge_earlier_rows(earlier, [_row("head-ge", "noisy", 25.80, 25.1, path="")])
    with pytest.raises(EarlierRunMismatch, match="skull-base / A 25 HU is missing"):
        merge_earlier_rows(earlier, [_row("skull-base", "noisy", 24.47, 25.0, path="")])


def test_the_same_seed_from_another_cpu_is_merged_with_a_warning(tmp_path, capsys):
    # the chest-2mm A 10 HU series read 32.386 dB in the CSV and 32.392 dB on an AVX-512 machine
    earlier = _earlier(tmp_path)
    merged = merge_earlier_rows(
        earlier, [_row("head-ge", "noisy", 25.776, 25.19, path=""), _row("head-ge", "auto", 35.1, 8.4)]
    )
    assert [r["method"] for r in merged] == ["noisy", "auto", "kpn-ct-burst3", "nlm", "bm3d"]
    assert "noisy CT / head-ge / A 25 HU is PSNR 25.77 dB there, 25.776 dB here" in capsys.readouterr().err
    # other noise settings are another series, however close the PSNR
    other = _row("head-ge", "noisy", 25.77, 25.2, path="")
    other["noise"] = SPEC.replace("views=1000", "views=500")
    with pytest.raises(EarlierRunMismatch, match="not the same noisy series"):
        merge_earlier_rows(earlier, [other])
