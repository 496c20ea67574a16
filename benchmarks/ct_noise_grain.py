"""How the CT default and BM3D fare when the noise grain is coarser than one pixel.

The real-noise benchmark (``real_noise.py``) inserts CT noise through a simulated detector of one-pixel pitch, so its
noise is equally fine in pixels on every series. A scanner resolves ~0.5-0.8 mm with soft-tissue kernels: about one
pixel at a 500 mm field of view, but 2-3 pixels on the 0.25-0.3 mm pixels of a targeted reconstruction (the lumbar
spine and skull base series here), whose noise is that much coarser. This script inserts the same ~25 HU of body
noise (setting A of ``real_noise.py``: ``hamming`` kernel, 1000 views, electronic noise 10) with ``grain`` 1, 2 and 3
(``CTScanner.grain``: the noise has no power above 0.5 / grain cycles per pixel) into the held-out CT series and
scores, in W400 over the body:

- ``auto`` through the CLI (noisy DICOM series in, DICOM series out, default flags) and in memory
  (``Denoiser().denoise(volume)`` on the float volume);
- BM3D through the CLI (``--model bm3d``, ``--sigma auto``: its noise PSD estimated from the file);
- BM3D with the oracle PSD of the inserted noise (in-process, as in ``real_noise.py``);
- the width of ``auto``'s air-skin edge over the clean image's (1.0 = no blur), as in ``real_noise.py``.

Usage::

    python benchmarks/ct_noise_grain.py --work /tmp/grain [--grains 1,2,3] [--output docs/benchmarks_ct_grain.md]

The work folder keeps the noisy series and the outputs; a second run reuses them.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from meddenoiselib.transforms.noise import CTScanner  # noqa: E402
from real_noise import (  # noqa: E402
    CT_SETTINGS,
    Item,
    bm3d_oracle,
    cli_env,
    ct_cases,
    dose_for_body_noise,
    metrics,
    read_volume,
    run_cli,
    simulate_items,
    window_psnr,
)

LEVEL_HU = 25
METHODS = ("auto", "bm3d")


def grain_items(cases, grains: list[float], seed: int) -> list[Item]:
    """Setting A at ~25 HU of body noise, once per grain."""
    label, kernel, views, electronic, _ = CT_SETTINGS[0]
    items = []
    for index, case in enumerate(cases):
        for j, grain in enumerate(grains):
            scanner = CTScanner(views=views, kernel=kernel, electronic_noise=electronic, grain=grain)
            dose = dose_for_body_noise(case, scanner, LEVEL_HU)
            spec = f"ct-lowdose:{dose:.5g},kernel={kernel},views={views},electronic={electronic:g},grain={grain:g}"
            items.append(Item(case, spec, f"{label} {LEVEL_HU} HU grain {grain:g}", seed + 1000 * index + j, "grain"))
    return items


def score(item: Item, result: np.ndarray) -> float:
    return window_psnr(item.case.clean, np.asarray(result, np.float32), item.case.extra["body"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--grains", default="1,2,3")
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--output", type=Path, help="markdown page to write (default: print only)")
    parser.add_argument("--no-oracle", action="store_true")
    parser.add_argument("--no-in-memory", action="store_true", help="leave out the in-memory auto column")
    args = parser.parse_args()

    import torch

    from meddenoiselib.inference import Denoiser

    torch.set_num_threads(2)
    started = time.perf_counter()
    work = args.work
    grains = [float(g) for g in args.grains.split(",")]
    cases = ct_cases(work, quick=False, everything=False)
    items = grain_items(cases, grains, args.seed)
    simulate_items(items, work)
    env = cli_env()
    walls = {m: run_cli(m, "grain", items, work, env) for m in METHODS}
    memory = Denoiser("auto", device="cpu")
    rows = []
    for item in items:
        noisy_file = read_volume(work / "noisy" / "grain" / item.name).array.astype(np.float32)
        noisy_float = np.load(work / "float" / f"{item.name}.npy")
        row = {"case": item.case.name, "grain": item.level.split()[-1], "noisy": score(item, noisy_file)}
        for method in METHODS:
            output = read_volume(work / "out" / "grain" / method / item.name).array
            row[method] = score(item, output) - row["noisy"]
            if method == "auto" and item.case.extra["edges"].count:
                row["edge ratio auto"] = metrics(item, output)["edge_ratio"]
        if not args.no_in_memory:
            volume = item.case.volume.with_array(noisy_float)
            row["auto (in-memory)"] = score(item, memory.denoise(volume).array) - score(item, noisy_float)
        if not args.no_oracle:
            cache = work / "oracle" / f"{item.name}.npy"
            if not cache.exists():
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, bm3d_oracle(noisy_file, item.case.clean, item.case.extra["body"]))
            row["bm3d (oracle PSD)"] = score(item, np.load(cache)) - row["noisy"]
        rows.append(row)
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True)

    minutes = (time.perf_counter() - started) / 60
    columns = [c for c in ("auto", "auto (in-memory)", "bm3d", "bm3d (oracle PSD)", "edge ratio auto") if c in rows[0]]
    lines = [
        "# CT noise grain: the default and BM3D on coarser noise",
        "",
        f"Measured with `python benchmarks/ct_noise_grain.py --grains {args.grains}` on {platform.processor() or 'CPU'}"
        f" ({torch.get_num_threads()} threads), {time.strftime('%Y-%m-%d')}, in {minutes:.0f} min."
        " Protocol in the script's docstring: the held-out CT series of docs/benchmarks_real_noise.md, ~25 HU of"
        " body noise (setting A), noise grain 1 / 2 / 3 pixels; PSNR gain in W400 over the body (dB).",
        "",
        "| series | grain | noisy PSNR | "
        + " | ".join(c if c.startswith("edge") else f"gain {c}" for c in columns)
        + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for row in rows:
        gains = " | ".join(f"{row[c]:.3f}" if c.startswith("edge") else f"{row[c]:.2f}" for c in columns)
        lines.append(f"| {row['case']} | {row['grain']} | {row['noisy']:.2f} | {gains} |")
    lines += ["", "Means over the series:", "", "| grain | " + " | ".join(columns) + " |"]
    lines.append("|---|" + "---|" * len(columns))
    for grain in dict.fromkeys(r["grain"] for r in rows):
        chosen = [r for r in rows if r["grain"] == grain]
        means = [np.mean([r[c] for r in chosen]) for c in columns]
        cells = [f"{m:.3f}" if c.startswith("edge") else f"{m:+.2f}" for c, m in zip(columns, means, strict=True)]
        lines.append(f"| {grain} | " + " | ".join(cells) + " |")
    lines += ["", "CLI wall times: " + ", ".join(f"{m} {walls[m]['wall_s']:.0f} s" for m in METHODS), ""]
    text = "\n".join(lines)
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
