"""Peak memory and time of denoising a 512x512x300 int16 CT volume through the CLI.

    python benchmarks/memory.py [--model auto] [--slices 300] [--padding] [--metal]

Builds the volume from the bundled real CT slices (repeated along z, each with fresh Gaussian noise of 15 HU so
no two slices are identical), writes it as NIfTI, runs the CLI's `denoise` in a child process and
reports the child's peak resident memory and wall time. The NIfTI has no Modality tag: ``auto`` (the default)
recognizes CT from its HU values, as it would for a user's NIfTI. The issue's bounds: 4 min and 3 GB.

The peak is the child's own high-water mark (VmHWM of /proc/self/status, read by the child as the CLI returns).
getrusage(RUSAGE_CHILDREN) would also count this process's memory, which the child inherits until it execs: it
reported 4.5 GB for a run whose own peak was 2.5 GB (/usr/bin/time -v).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from meddenoiselib.demo import sample_path
from meddenoiselib.io import Volume, read_volume, write_volume

# `python -m meddenoiselib ARGS`, then the process's own peak RSS (kB) written to the file named first
_CHILD = """
import sys
from meddenoiselib.cli import main
code = main(sys.argv[2:])
status = open("/proc/self/status").read()
kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
open(sys.argv[1], "w").write(kb)
sys.exit(code)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="auto")
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument(
        "--refine",
        choices=["auto", "on", "off"],
        default="auto",
        help="the CLI's --refine (default auto, as a user runs it; off times the network alone)",
    )
    parser.add_argument(
        "--padding",
        action="store_true",
        help="store -3024 HU outside the 512-pixel reconstruction circle, as GE and Canon scanners do (the "
        "Denoiser then fills and restores it: the costlier case)",
    )
    parser.add_argument(
        "--metal",
        action="store_true",
        help="a 3000 HU rod 5 mm across through every slice, in soft tissue (auto then leaves it out: the filled copy "
        "the network runs on is the costlier case)",
    )
    args = parser.parse_args()
    ct = read_volume(sample_path("ct_chest"))
    rng = np.random.default_rng(0)
    slices = [
        np.clip(ct.array[k % ct.shape[0]] + rng.normal(0, 15, ct.shape[1:]), -1024, 3071).astype(np.int16)
        for k in range(args.slices)
    ]
    stack = np.stack(slices)
    if args.padding:
        half = stack.shape[1] / 2
        y, x = np.mgrid[: stack.shape[1], : stack.shape[2]] + 0.5 - half
        stack[:, y**2 + x**2 > half**2] = -3024
    if args.metal:
        y, x = np.mgrid[: stack.shape[1], : stack.shape[2]]
        stack[:, (y - 200) ** 2 + (x - 320) ** 2 <= (2.5 / ct.spacing[0]) ** 2] = 3000
    volume = Volume(stack, spacing=ct.spacing, origin=ct.origin, direction=ct.direction)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "big.nii.gz"
        write_volume(volume, source)
        size_mb = volume.array.nbytes / 2**20
        start = time.perf_counter()
        peak_file = Path(folder) / "peak.txt"
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(peak_file),
                "denoise",
                str(source),
                str(Path(folder) / "out.nii.gz"),
                "--model",
                args.model,
                "--refine",
                args.refine,
                "--no-progress",
                "--report",
                str(Path(folder) / "report.json"),
            ],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - start
        if result.returncode != 0:
            print(result.stderr)
            return 1
        peak_mb = int(peak_file.read_text()) / 1024
        out = read_volume(Path(folder) / "out.nii.gz")
        report = json.loads((Path(folder) / "report.json").read_text())
    padding = ", -3024 HU padding outside the circle" if args.padding else ""
    padding += f", a metal rod ({report.get('metal_voxels_left_out', 0)} voxels left out)" if args.metal else ""
    share = report.get("collaborative_wiener_share")
    refined = f"refined {share:.0%}: {report['collaborative_wiener']}" if share else "not refined"
    print(
        f"volume {'x'.join(map(str, volume.shape))} int16 ({size_mb:.0f} MB{padding}), model {args.model} "
        f"({report['method']}, {refined}): "
        f"peak RSS {peak_mb:.0f} MB, {seconds:.1f} s wall ({seconds / args.slices:.3f} s/slice), "
        f"output {out.array.dtype} {'x'.join(map(str, out.shape))}, geometry kept: {out.same_geometry(volume, 1e-4)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
