"""Metal in low-dose CT: the tissue next to an implant, with and without ``auto`` leaving the metal out.

    python benchmarks/metal.py [--work WORK] [--out docs/benchmarks_metal.md]

Held-out CT (the real-noise benchmark's references, ``REAL_NOISE_CT`` of ``scripts/data_split.py``, its default
slices): into each clean series a metal rod is inserted, 3000 HU, 5 mm across (the size of a pedicle screw's shaft or
a dental post), through every slice, in the soft tissue farthest from anything else (the deepest point of the
-100..150 HU region of the middle slice; found by rule, not chosen by hand). Noise: the real-noise benchmark's
setting A (projection domain: Poisson + electronic noise on simulated line integrals, FBP with the ``hamming``
kernel, 1000 views, electronic noise 10) at the dose that gives the metal-free series ~25 HU over the body, so the
rod adds what metal adds at the same dose: photon starvation streaks. The noisy series is written as DICOM, as the
real-noise benchmark writes it, and denoised through the CLI as a user runs it: default flags (``auto``, which
leaves the metal out) and ``--metal off`` (the metal denoised with the rest, as before this option); and in memory,
``Denoiser("auto")`` on the simulated float volume (no file round trip), with and without ``metal_hu``.

Metrics against the clean series with the rod, in HU: RMS error and mean error (bias) of the tissue 0.5-1.5 mm and
1.5-5 mm from the metal, and PSNR in the soft-tissue window W400/L40 over the body without the metal; whether the
metal's voxels kept their values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from meddenoiselib.evaluation.physical import SOFT_TISSUE_WINDOW, window_psnr  # noqa: E402
from meddenoiselib.inference import Denoiser  # noqa: E402
from meddenoiselib.io import read_volume, write_volume  # noqa: E402
from meddenoiselib.transforms.metal import METAL_HU as METAL_THRESHOLD  # noqa: E402
from meddenoiselib.transforms.noise import CTScanner, parse_noise_spec, simulate_volume  # noqa: E402
from quality import cpu_name  # noqa: E402
from real_noise import CT_SETTINGS, ct_cases, dose_for_body_noise, file_values  # noqa: E402

METAL_HU = 3000.0
ROD_MM = 5.0
RINGS_MM = ((0.5, 1.5), (1.5, 5.0))
TARGET_HU = 25


def rod_centre(clean: np.ndarray) -> tuple[int, int]:
    """The deepest point of the soft tissue (-100..150 HU) of the middle slice."""
    middle = clean[clean.shape[0] // 2]
    soft = ndimage.binary_opening((middle > -100) & (middle < 150), iterations=2)
    depth = ndimage.distance_transform_edt(soft)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(y), int(x)


def with_rod(volume, pixel_mm: float):
    """``volume`` with the rod through every slice, its boolean region and its centre."""
    clean = volume.array.astype(np.float32)
    cy, cx = rod_centre(clean)
    y, x = np.mgrid[: clean.shape[1], : clean.shape[2]]
    disc = (y - cy) ** 2 + (x - cx) ** 2 <= (ROD_MM / 2 / pixel_mm) ** 2
    metal = np.broadcast_to(disc, clean.shape)
    return volume.with_array(np.where(metal, np.float32(METAL_HU), clean)), np.ascontiguousarray(metal), (cy, cx)


def measure(result: np.ndarray, clean: np.ndarray, metal: np.ndarray, body: np.ndarray, pixel_mm: float) -> dict:
    distance = ndimage.distance_transform_edt(~metal[0]) * pixel_mm
    values = {}
    error = result.astype(np.float64) - clean
    for low, high in RINGS_MM:
        ring = np.broadcast_to((distance > low) & (distance <= high), clean.shape)
        values[f"rms {low:g}-{high:g} mm"] = float(np.sqrt(np.mean(error[ring] ** 2)))
        values[f"bias {low:g}-{high:g} mm"] = float(error[ring].mean())
    region = body & ~metal
    values["W400 PSNR"] = window_psnr(clean, result.astype(np.float32), region, SOFT_TISSUE_WINDOW)
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="metal-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "MedDenoiseLib"))
    _, kernel, views, electronic, _ = CT_SETTINGS[0]
    scanner = CTScanner(views=views, kernel=kernel, electronic_noise=electronic)
    rows = []
    for index, case in enumerate(ct_cases(work, quick=False, everything=False)):
        pixel = case.extra["pixel_mm"]
        dose = dose_for_body_noise(case, scanner, TARGET_HU)  # the metal-free series' dose
        rodded, metal, centre = with_rod(case.volume, pixel)
        spec = parse_noise_spec(f"ct-lowdose:{dose:.5g},kernel={kernel},views={views},electronic={electronic:g}")
        simulated = simulate_volume(rodded, spec, seed=args.seed + 100 * index)
        noisy = file_values(simulated, case.volume)
        folder = work / "noisy" / f"ct-{case.name}"
        folder.parent.mkdir(parents=True, exist_ok=True)
        (work / "out").mkdir(exist_ok=True)
        write_volume(noisy, folder, inputs=(case.folder,), overwrite=True, derivation="metal rod + low-dose noise")
        clean = rodded.array.astype(np.float64)
        body = case.extra["body"]
        entries = {"noisy": read_volume(folder).array}
        for label, flags in (("auto (default)", []), ("auto --metal off", ["--metal", "off"])):
            out = work / "out" / f"{case.name}-{'off' if flags else 'on'}.nrrd"
            report = out.with_suffix(".json")
            command = [sys.executable, "-m", "meddenoiselib", "denoise", str(folder), str(out), "--overwrite"]
            command += [*flags, "--report", str(report), "--no-progress", "-q"]
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True)
            seconds = time.perf_counter() - start
            entries[label] = read_volume(out).array
            left_out = json.loads(report.read_text()).get("metal_voxels_left_out", 0)
            print(f"{case.name:14s} {label:18s} {seconds:6.1f} s, metal voxels left out {left_out}", flush=True)
        for label, metal_hu in (("in memory: auto", METAL_THRESHOLD), ("in memory: metal_hu=None", None)):
            entries[label] = Denoiser("auto", modality="ct", metal_hu=metal_hu).denoise(simulated).array
        for label, result in entries.items():
            row = {"series": case.name, "method": label, "rod at": f"({centre[0]}, {centre[1]})"}
            row.update(measure(result, clean, metal, body, pixel))
            source = simulated.array if label.startswith("in memory") else entries["noisy"]  # what each run read
            row["metal kept"] = bool(np.array_equal(result[metal], source[metal]))
            rows.append(row)
    keys = ["series", "method", *[k for k in rows[0] if k not in ("series", "method", "rod at")], "rod at"]
    lines = [
        f"Measured with `python benchmarks/metal.py` on {cpu_name()} ({platform.system()}), "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    for row in rows:
        cells = [f"{row[k]:.2f}" if isinstance(row[k], float) else str(row[k]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    for label in ("noisy", "auto (default)", "auto --metal off", "in memory: auto", "in memory: metal_hu=None"):
        chosen = [row for row in rows if row["method"] == label]
        means = {k: float(np.mean([row[k] for row in chosen])) for k in keys if isinstance(chosen[0][k], float)}
        lines.append(f"| mean | {label} | " + " | ".join(f"{means[k]:.2f}" for k in means) + " | | |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
