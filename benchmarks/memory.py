"""Peak memory and time of denoising a 512x512x300 int16 CT volume through the CLI.

    python benchmarks/memory.py [--model auto] [--slices 300]

Builds the volume from the bundled real CT slices (repeated along z, each with fresh Gaussian noise of 15 HU so
no two slices are identical), writes it as NIfTI, runs `python -m meddenoiselib denoise` in a child process and
reports the child's peak resident memory (ru_maxrss) and wall time. The NIfTI has no Modality tag: ``auto`` (the
default) recognizes CT from its HU values, as it would for a user's NIfTI. The issue's bounds: 4 min and 3 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from meddenoiselib.demo import sample_path
from meddenoiselib.io import Volume, read_volume, write_volume


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="auto")
    parser.add_argument("--slices", type=int, default=300)
    args = parser.parse_args()
    ct = read_volume(sample_path("ct_chest"))
    rng = np.random.default_rng(0)
    slices = [
        np.clip(ct.array[k % ct.shape[0]] + rng.normal(0, 15, ct.shape[1:]), -1024, 3071).astype(np.int16)
        for k in range(args.slices)
    ]
    volume = Volume(np.stack(slices), spacing=ct.spacing, origin=ct.origin, direction=ct.direction)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "big.nii.gz"
        write_volume(volume, source)
        size_mb = volume.array.nbytes / 2**20
        start = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "meddenoiselib",
                "denoise",
                str(source),
                str(Path(folder) / "out.nii.gz"),
                "--model",
                args.model,
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
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out = read_volume(Path(folder) / "out.nii.gz")
        used = json.loads((Path(folder) / "report.json").read_text())["method"]
    print(
        f"volume {'x'.join(map(str, volume.shape))} int16 ({size_mb:.0f} MB), model {args.model} ({used}): "
        f"peak RSS {peak_mb:.0f} MB, {seconds:.1f} s wall ({seconds / args.slices:.3f} s/slice), "
        f"output {out.array.dtype} {'x'.join(map(str, out.shape))}, geometry kept: {out.same_geometry(volume, 1e-4)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
