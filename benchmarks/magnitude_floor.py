"""The magnitude MR noise floor removed with any method (``--magnitude-floor remove``), through ``evaluate --noise``.

Held-out references only (scripts/data_split.py): the MNI ICBM152 2009a T1 template (``--template``; an average of
152 scans whose air is exactly 0, so the background bias is the method's own) and the 7 real MR slices of
``REAL_MR`` (one T1 and the three sequences of two glioma images, whose air holds the scanner's own floor, which no
removal can give back: their bias reads negative by that floor). Each with Rician noise of 3 % and 6 % of the 99th
percentile and non-central chi of 8 coils at 3 %, through the CLI's ``evaluate`` (in memory, as ``denoise`` runs
with default flags), for NLM and BM3D with the floor left (``auto``: a named method keeps it) and removed
(``remove``), and ``auto`` beside them.

    MEDDENOISE_DATA=/path/to/data python benchmarks/magnitude_floor.py --template mni_t1.nii.gz

Writes docs/benchmarks_magnitude_floor.md and docs/benchmarks_magnitude_floor.csv.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from data_split import DATA_ROOT, REAL_MR  # noqa: E402
from evaluate_cli import run_evaluate  # noqa: E402
from meddenoiselib.io import Volume, read_volume, write_volume  # noqa: E402
from quality import cpu_name  # noqa: E402

NOISES = ("rician:3%", "rician:6%", "noncentral-chi:3%,8")
RUNS = (("nlm,bm3d", "auto"), ("nlm,bm3d", "remove"), ("auto", "auto"))


def real_slices(folder: Path) -> Path:
    """The REAL_MR slices as single-channel NIfTI files in ``folder`` (1 mm pixels: only their values matter)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, path, channel in REAL_MR:
        array = np.asarray(read_volume(DATA_ROOT / path).array, dtype=np.float32)
        if channel is not None:
            array = array[..., channel]
        write_volume(Volume(array.reshape(1, *array.shape[-2:])), folder / f"{name}.nii.gz", overwrite=True)
    return folder


def evaluate(references: list[Path], methods: str, floor: str, out: Path) -> list[dict]:
    run_evaluate(references, NOISES, out, "--methods", methods, "--modality", "mr", "--magnitude-floor", floor)
    with open(out / "results.csv", newline="") as handle:
        return [dict(row, floor=floor) for row in csv.DictReader(handle)]


def mean(rows: list[dict], key: str) -> float | None:
    values = [float(r[key]) for r in rows if r[key] not in ("", None)]
    return float(np.mean(values)) if values else None


def table(rows: list[dict], group: str) -> list[str]:
    lines = [
        "| method | floor | " + " | ".join(f"{n}: gain (dB) / bias (σ)" for n in NOISES) + " |",
        "|---|---|" + "---|" * len(NOISES),
    ]
    picked = [r for r in rows if r["group"] == group]
    seen = []
    for r in picked:
        key = (r["method"], r["floor"] if r["method"] != "noisy" else "–")
        if key not in seen:
            seen.append(key)
    for method, floor in seen:
        cells = []
        for noise in NOISES:
            mine = [r for r in picked if r["method"] == method and r["noise"] == noise]
            mine = mine if method == "noisy" else [r for r in mine if r["floor"] == floor]
            noisy = [r for r in picked if r["method"] == "noisy" and r["noise"] == noise and r["floor"] == "auto"]
            images = {r["image"] for r in mine}
            noisy = [r for r in noisy if r["image"] in images][: len(mine)]
            gain = None if method == "noisy" else mean(mine, "psnr") - mean(noisy, "psnr")
            bias = mean(mine, "bias_sigma")
            cells.append(f"{'–' if gain is None else f'{gain:+.2f}'} / {'–' if bias is None else f'{bias:+.3f}'}")
        models = sorted({r["model"] for r in picked if r["method"] == "auto"})
        name = method if method != "auto" else f"auto ({', '.join(models)})"
        lines.append(f"| {name} | {floor} | " + " | ".join(cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", required=True, help="the MNI ICBM152 2009a T1 template (NIfTI)")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks_magnitude_floor.md"))
    args = parser.parse_args()
    started = time.time()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="magnitude-floor-") as work:
        work = Path(work)
        groups = {"template": [Path(args.template)], "real": sorted(real_slices(work / "real").glob("*.nii.gz"))}
        for group, references in groups.items():
            for methods, floor in RUNS:
                for row in evaluate(references, methods, floor, work / f"{group}-{methods}-{floor}"):
                    rows.append(dict(row, group=group))
    output = Path(args.output)
    with open(output.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Magnitude MR: the noise floor removed with any method",
        "",
        f"`python benchmarks/magnitude_floor.py --template {Path(args.template).name}` on {cpu_name()}, "
        f"{time.time() - started:.0f} s. Through `python -m meddenoiselib evaluate REFS --noise ... --modality mr "
        "--methods M --magnitude-floor auto|remove` (held-out references only; scores over the head, bias = mean of "
        "result - clean outside the head dilated by 5 pixels, in units of the noise sigma).",
        "",
        "## MNI ICBM152 2009a T1 template, 3 central slices (air exactly 0)",
        "",
        *table(rows, "template"),
        "",
        f"## {len(REAL_MR)} real MR slices (their air holds the scanner's own floor: removal reads negative there)",
        "",
        *table(rows, "real"),
        "",
    ]
    output.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
