"""4D CT through the CLI: each frame refined (the default since 2026-12-06) against the network alone.

    python benchmarks/ct_series_4d.py --work WORK [--frames 4] [--hu 25,60]

Why: a 4D CT (a perfusion run, the phases of a cardiac or respiratory 4D CT) went through the CT network alone until
2026-12-06; now ``auto`` refines each frame as it refines a volume, the block search chosen by the whole series'
size. The choice was measured on training-split CT (``inference/collaborative_wiener.py``, comment on the CT tiers);
this script measures it on the held-out CT series of the real-noise benchmark (``real_noise.ct_cases``: the same
files and subset), through the CLI with default flags: each series becomes ``--frames`` frames shifted in-plane as in
breathing (sub-pixel to ~2 px, linear interpolation; the shifted clean frames are the references), low-dose noise of
``--hu`` HU in the body drawn per frame (projection model, setting A of the real-noise page: the unseen hamming
kernel, 1000 views, electronic noise 10), written as a 4D NIfTI (integer HU) that ``auto`` takes as CT from its
values. ``denoise in.nii.gz out.nii.gz`` against ``--refine off``; PSNR in W400/L40 over the body, mean over the
frames, gain over the noisy file; seconds through the CLI (the process, start-up included).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_noise as rn  # noqa: E402
from meddenoiselib.evaluation.physical import body_mask, window_psnr  # noqa: E402
from meddenoiselib.io import VolumeSeries, read_series, write_series  # noqa: E402
from meddenoiselib.transforms import simulate_volume  # noqa: E402
from meddenoiselib.transforms.noise import parse_noise_spec  # noqa: E402

SETTING_A = "kernel=hamming,views=1000,electronic=10"
VARIANTS = {"auto (refined)": [], "--refine off": ["--refine", "off"]}


def shifted(volume: np.ndarray, frame: int) -> np.ndarray:
    """Frame ``frame`` of the breathing motion: the volume moved in-plane by (1.5 sin t, 0.5 t) px."""
    return ndimage.shift(volume, (0, 1.5 * np.sin(frame), 0.5 * frame), order=1, mode="nearest")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--hu", default="25,60", help="noise levels in the body, HU (25,60)")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    env = rn.cli_env()
    cases = rn.ct_cases(args.work, quick=False, everything=False)
    print("| series | frames x slices | noise | noisy | " + " | ".join(VARIANTS) + " | refined - alone |")
    print("|---|---|---|---|" + "---|" * (len(VARIANTS) + 1))
    means: dict[tuple[str, str], list[float]] = {}
    for c, case in enumerate(cases):
        clean = [shifted(case.clean, t) for t in range(args.frames)]
        bodies = [body_mask(f) for f in clean]
        for h, hu in enumerate(float(v) for v in args.hu.split(",")):
            folder = args.work / "series4d" / f"{case.name}_{hu:g}HU"
            folder.mkdir(parents=True, exist_ok=True)
            noisy_file = folder / "noisy.nii.gz"
            spec = parse_noise_spec(f"ct-lowdose:{hu:g}HU,{SETTING_A}")
            if not noisy_file.exists():
                frames = [
                    simulate_volume(case.volume.with_array(f), spec, seed=args.seed + 1000 * c + 100 * h + t).array
                    for t, f in enumerate(clean)
                ]
                volume = case.volume
                series = VolumeSeries(
                    np.rint(np.stack(frames)).astype(np.int16), volume.spacing, volume.origin, volume.direction, "time"
                )
                write_series(series, noisy_file)
            noisy = read_series(noisy_file).array.astype(np.float32)
            before = np.mean([window_psnr(r, n, b) for r, n, b in zip(clean, noisy, bodies, strict=True)])
            cells = []
            for name, flags in VARIANTS.items():
                out = folder / f"{name.split()[0].strip('-')}.nii.gz"
                command = [sys.executable, "-m", "meddenoiselib", "denoise", str(noisy_file), str(out), "--quiet"]
                start = time.perf_counter()
                subprocess.run(command + ["--overwrite"] + flags, check=True, env=env)
                seconds = time.perf_counter() - start
                result = read_series(out).array.astype(np.float32)
                gain = np.mean([window_psnr(r, o, b) for r, o, b in zip(clean, result, bodies, strict=True)]) - before
                means.setdefault((name, f"{hu:g} HU"), []).append(gain)
                cells.append((gain, seconds))
            size = f"{args.frames} x {case.clean.shape[0]}"
            row = " | ".join(f"{g:+.2f} ({s:.0f} s)" for g, s in cells)
            print(f"| {case.name} | {size} | {hu:g} HU | {before:.2f} | {row} | {cells[0][0] - cells[1][0]:+.2f} |")
            sys.stdout.flush()
    for (name, level), gains in means.items():
        print(f"mean {level} {name}: {np.mean(gains):+.2f} dB over {len(gains)} series")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
