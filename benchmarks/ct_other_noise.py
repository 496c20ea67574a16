"""CT noise of other textures than the simulator the CT model trained on: white and Gaussian-correlated noise in HU.

    python benchmarks/ct_other_noise.py --work WORK [--output docs/benchmarks_ct_other_noise.md]

Why: every CT number of docs/benchmarks_real_noise.md comes from this library's own low-dose simulator (projection
noise through filtered back-projection), the noise `kpn-ct-burst3` was trained on. Another simulator, or a scanner
whose noise texture differs, is what "don't tune to one simulator" asks about. This script inserts two simpler noise
models into the same held-out CT series (``real_noise.ct_cases``: the same files and subset) and scores the user's
path on them:

- ``white``: independent Gaussian noise per voxel;
- ``gauss-F``: white noise filtered in-plane by a Gaussian of ``F`` pixels (noise ``~2.4 F`` pixels wide, coarser than
  the projection noise at grain 1-2; ``F`` = 1.5 is about the grain-3 noise of docs/benchmarks_ct_grain.md).

each scaled to ``--hu`` HU of standard deviation inside the body (seeded per series and texture), added to the clean
HU, rounded to the series' integer type and written as a derived DICOM series. Methods: ``auto`` and ``bm3d``
(``--sigma auto``: its noise PSD estimated from the file) through the CLI with default flags, files in and out; BM3D
given the inserted noise's PSD in-process (``real_noise.bm3d_oracle``). Metrics as on the real-noise page: PSNR in
W400/L40 over the body, gain over the noisy file, air-skin edge width over the clean image's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_noise as rn  # noqa: E402
from meddenoiselib.io import read_volume  # noqa: E402

TEXTURES = ("white", "gauss-0.8", "gauss-1.5")
CLI_METHODS = ("auto", "bm3d")
ORACLE = "bm3d (oracle PSD)"


def texture_noise(shape: tuple[int, ...], texture: str, body: np.ndarray, hu: float, seed: int) -> np.ndarray:
    """Noise of ``texture`` (``white`` or ``gauss-F``), ``(Z, Y, X)`` float32 HU, std ``hu`` inside ``body``."""
    noise = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    if texture != "white":
        width = float(texture.split("-", 1)[1])
        noise = np.stack([ndimage.gaussian_filter(s, width, mode="wrap") for s in noise])
    return noise * np.float32(hu / noise[body].std())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="folder for the noisy series and outputs")
    parser.add_argument("--hu", type=float, default=25.0, help="noise std in the body, HU (25)")
    parser.add_argument("--textures", default=",".join(TEXTURES))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--output", type=Path, help="write the tables to this markdown file")
    args = parser.parse_args()
    textures = [t.strip() for t in args.textures.split(",") if t.strip()]
    for texture in textures:
        if texture != "white" and not texture.startswith("gauss-"):
            parser.error(f"unknown texture {texture!r}: white or gauss-F")
    started = time.perf_counter()
    cases = rn.ct_cases(args.work, quick=False, everything=False)
    env = rn.cli_env()
    rows: list[dict] = []
    for t, texture in enumerate(textures):
        group = f"{texture}-{args.hu:g}HU"
        items = []
        for c, case in enumerate(cases):
            seed = args.seed + 100 * t + c
            item = rn.Item(case, f"{texture}:{args.hu:g}HU", f"{texture} {args.hu:g} HU", seed, group)
            target = args.work / "noisy" / group / item.name
            if not target.exists():
                noise = texture_noise(case.clean.shape, texture, case.extra["body"], args.hu, item.seed)
                noisy = case.volume.with_array(case.clean + noise)
                rn.write_noisy_series(noisy, item, target, f" {texture} noise", f"Simulated {texture} noise")
            items.append(item)
        # each noisy file read and scored once: every method's gain is over it
        noisy = {item.name: read_volume(args.work / "noisy" / group / item.name).array for item in items}
        before = {item.name: rn.metrics(item, noisy[item.name])["psnr"] for item in items}
        for method in CLI_METHODS:
            summary = rn.run_cli(method, group, items, args.work, env)
            for item in items:
                result = read_volume(args.work / "out" / group / method / item.name).array
                scored = score(item, result, before[item.name])
                rows.append({"texture": group, "case": item.case.name, "method": method, **scored})
            print(f"  {group} {method}: {summary['wall_s']:.0f} s through the CLI", flush=True)
        for item in items:
            clean = item.case.clean.astype(np.float64)
            result = rn.bm3d_oracle(noisy[item.name].astype(np.float64), clean, item.case.extra["body"])
            scored = score(item, result, before[item.name])
            rows.append({"texture": group, "case": item.case.name, "method": ORACLE, **scored})
    lines = report(rows, cases, textures, args)
    lines.append(f"Run time: {time.perf_counter() - started:.0f} s.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


def score(item: rn.Item, result: np.ndarray, noisy_psnr: float) -> dict:
    """The real-noise page's CT metrics of ``result`` for one series: gain over the noisy file's PSNR, edge ratio."""
    measured = rn.metrics(item, result)
    return {"gain": measured["psnr"] - noisy_psnr, "edge": measured.get("edge_ratio"), "noisy": noisy_psnr}


def report(rows: list[dict], cases: list, textures: list[str], args) -> list[str]:
    methods = list(CLI_METHODS) + [ORACLE]
    groups = [f"{t}-{args.hu:g}HU" for t in textures]
    lines = [
        f"Mean PSNR gain in W400 over the body (dB), {len(cases)} held-out CT series, {args.hu:g} HU of noise; "
        "worst edge width / clean in brackets.",
        "",
        "| noise | noisy PSNR | " + " | ".join(methods) + " | auto - bm3d | auto - oracle |",
        "|---|---|" + "---|" * (len(methods) + 2),
    ]
    for group in groups:
        mean = {m: np.mean([r["gain"] for r in rows if r["texture"] == group and r["method"] == m]) for m in methods}
        worst = {
            m: max((r["edge"] for r in rows if r["texture"] == group and r["method"] == m and r["edge"]), default=0)
            for m in methods
        }
        noisy = np.mean([r["noisy"] for r in rows if r["texture"] == group and r["method"] == "auto"])
        cells = [f"{mean[m]:+.2f} ({worst[m]:.3f})" for m in methods]
        lines.append(
            f"| {group} | {noisy:.2f} | " + " | ".join(cells) + f" | {mean['auto'] - mean['bm3d']:+.2f} | "
            f"{mean['auto'] - mean[ORACLE]:+.2f} |"
        )
    lines += ["", "Per series (gain, dB):", "", "| noise | series | " + " | ".join(methods) + " |"]
    lines.append("|---|---|" + "---|" * len(methods))
    for group in groups:
        for case in cases:
            gains = {r["method"]: r["gain"] for r in rows if r["texture"] == group and r["case"] == case.name}
            lines.append(f"| {group} | {case.name} | " + " | ".join(f"{gains[m]:+.2f}" for m in methods) + " |")
    return lines + [""]


if __name__ == "__main__":
    raise SystemExit(main())
