"""Ultrasound speckle: the shipped model against the classical filters, SRAD among them, through ``evaluate --noise``.

The 10 held-out HC18 fetal head images (scripts/data_split.py: the last 10 of 60; no model trained on them, and
SRAD's step count was chosen on 10 of the training images), their central 512 x 512, with multiplicative speckle of
0.1 / 0.2 / 0.4 (``simulate``'s one speckle definition), denoised as ``denoise`` does with default flags.

    MEDDENOISE_DATA=/path/to/data python benchmarks/ultrasound_baselines.py [--methods auto,srad,median,nlm]

Writes docs/benchmarks_ultrasound_baselines.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from data_split import DATA_ROOT, VALIDATION  # noqa: E402
from evaluate_cli import write_evaluate_page  # noqa: E402
from meddenoiselib.io import Volume, read_volume, write_volume  # noqa: E402

NOISES = ("speckle:0.1", "speckle:0.2", "speckle:0.4")


def held_out_crops(folder: Path) -> Path:
    """The held-out ultrasound images' central 512 x 512 as PNG files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in (f for f in VALIDATION if f.startswith("us/")):
        image = read_volume(DATA_ROOT / name).array[0]
        cy, cx = image.shape[0] // 2, image.shape[1] // 2
        crop = np.ascontiguousarray(image[max(0, cy - 256) : cy + 256, max(0, cx - 256) : cx + 256])
        write_volume(Volume(crop[None]), folder / Path(name).name, overwrite=True)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="auto,srad,median,nlm")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks_ultrasound_baselines.md"))
    args = parser.parse_args()
    text = write_evaluate_page(
        Path(args.output),
        "Ultrasound speckle: the shipped model and the classical filters",
        f"python benchmarks/ultrasound_baselines.py --methods {args.methods}",
        "`python -m meddenoiselib evaluate HELD_OUT_US --noise speckle:0.1 --noise speckle:0.2 --noise speckle:0.4 "
        "--modality us` over the 10 held-out HC18 images (central 512 x 512). PSNR over the image, data range the "
        "clean image's minimum to maximum.",
        lambda work: [held_out_crops(work / "us")],
        NOISES,
        "--modality",
        "us",
        "--methods",
        args.methods,
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
