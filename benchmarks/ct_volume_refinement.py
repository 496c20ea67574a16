"""What whole CT volumes get from ``auto`` on a CPU, on the held-out series of the real-noise benchmark, in memory.

    python benchmarks/real_noise.py --work WORK ...           # simulates the noisy series (once)
    python benchmarks/ct_volume_refinement.py --work WORK     # -> a markdown table on stdout

On a CPU ``auto`` refines a CT volume of up to 8 slices of 512x512 with BM3D's block search and an 8-view pilot, one
of up to 64 slices with ``CT_MEDIUM_VOLUME_SEARCH`` and a 4-view pilot, up to 128 with the same search from one view,
and a larger one (up to 1024 slices) with the cheapest ``CT_VOLUME_SEARCH`` from one view, for time (docs/memory.md);
on a CUDA device BM3D's search from a 4-view pilot up to 1024 slices. The real-noise benchmark's CT series have 1-5
slices, so its rows only show the first. This script scores, on the same noisy float volumes that benchmark wrote to
``WORK/float`` and its clean series in ``WORK/clean``, with its metrics (W400/L40 PSNR over the body, gain over the
noisy input):

- ``network alone``: ``Denoiser("auto", refine="off")`` (what volumes above 32 slices got before 2026-12-04; one
  view on volumes, 8 on single slices),
- ``cheapest refinement``: ``Denoiser("auto")`` with the limits of the refinements before it lowered to 1 pixel, so
  that every series takes the refinement a whole CT volume of more than 128 slices gets,
- ``medium refinement, 4 views``: the same for the refinement of volumes of 9-64 slices (the middle search, the
  network's 4 views as its pilot),
- ``BM3D's search, 4 views``: the same for the refinement a CUDA device gives volumes of up to 1024 slices (what
  CT volumes of up to 32 slices got on a CPU until 2026-12-05; single slices keep their 8 views),
- ``medium refinement``: the same for volumes of 65-128 slices (the middle search, one view),
- ``default``: ``Denoiser("auto")`` as it runs on these small series (the benchmark's ``auto (in-memory)`` rows).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from meddenoiselib.inference import Denoiser, collaborative_wiener
from meddenoiselib.io import read_volume

sys.path.insert(0, str(Path(__file__).resolve().parent))
from meddenoiselib.evaluation.physical import body_mask, window_psnr  # noqa: E402

VARIANTS = (
    "network alone",
    "cheapest refinement",
    "medium refinement",
    "medium refinement, 4 views",
    "BM3D's search, 4 views",
    "default",
)
#: the variants that force one of the CT model's refinements: how many refinements of its chain are skipped
FORCED_TIER = {
    "BM3D's search, 4 views": 1,
    "medium refinement, 4 views": 2,
    "medium refinement": 3,
    "cheapest refinement": 4,
}


def forced(refinement: collaborative_wiener.Refinement, skipped: int) -> collaborative_wiener.Refinement:
    """``refinement`` with the limits of its first ``skipped`` tiers (itself, then its ``larger`` ones) at 1 pixel,
    and the next one taking any volume of up to 1024 slices of 512x512 (the CUDA tier takes none on a CPU)."""
    if skipped == 0:
        return dataclasses.replace(refinement, max_pixels=collaborative_wiener.LARGE_VOLUME_MAX_PIXELS)
    return dataclasses.replace(
        refinement, max_pixels=1, cuda_max_pixels=1, larger=forced(refinement.larger, skipped - 1)
    )


def denoise(variant: str, noisy):
    """``noisy`` (a float CT Volume in HU) denoised as ``variant`` says."""
    if variant == "network alone":
        return Denoiser("auto", refine="off").denoise(noisy)
    if variant == "default":
        return Denoiser("auto").denoise(noisy)
    refinements = collaborative_wiener.REFINED_MODELS
    full = refinements["kpn-ct-burst3"]
    refinements["kpn-ct-burst3"] = forced(full, FORCED_TIER[variant])
    try:
        return Denoiser("auto").denoise(noisy)
    finally:
        refinements["kpn-ct-burst3"] = full


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="the --work folder of an earlier benchmarks/real_noise.py run")
    parser.add_argument(
        "--variant", action="append", choices=VARIANTS, help="run only this one (repeatable; default: all)"
    )
    args = parser.parse_args()
    variants = VARIANTS if args.variant is None else tuple(args.variant)
    work = Path(args.work)
    noisy_files = sorted((work / "float").glob("ct-*__*.npy"))
    if not noisy_files:
        parser.error(f"no CT noisy volumes in {work / 'float'}: run benchmarks/real_noise.py --work {work} first")
    gains: dict[str, dict[str, list[float]]] = {}
    for path in noisy_files:
        series, level = path.stem.split("__")
        clean = read_volume(work / "clean" / series)
        reference = clean.array.astype(np.float32)
        body = body_mask(reference)
        noisy = clean.with_array(np.load(path))
        before = window_psnr(reference, noisy.array.astype(np.float32), body)
        row = []
        for variant in variants:
            result = denoise(variant, noisy).array.astype(np.float32)
            gain = window_psnr(reference, result, body) - before
            gains.setdefault(level, {}).setdefault(variant, []).append(gain)
            row.append(f"{gain:+.2f}")
        print(f"{series} {level}: " + " / ".join(row), file=sys.stderr, flush=True)
    levels = sorted(gains)
    print("| W400 gain (dB), mean over series | " + " | ".join(levels) + " |")
    print("|---|" + "---|" * len(levels))
    for variant in variants:
        cells = [f"{np.mean(gains[level][variant]):+.2f}" for level in levels]
        print(f"| {variant} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
