"""Low-dose CT on held-out series, scored in HU, through ``evaluate --noise`` (what a physicist runs on clean scans).

The six held-out CT series of the real-noise benchmark (scripts/data_split.py ``REAL_NOISE_CT``: no model trained on
them), their central 3 adjacent slices, with projection-domain low-dose noise of ~25 and ~60 HU over the body,
denoised as ``denoise`` does with default flags; PSNR/SSIM in W400/L40 over the body, RMSE and noise left in HU, the
air-skin edge's width over the clean one's. The references carry noise of their own (the 2 mm chest ~27 HU), which
bounds every method's gain there; the quiet ones are the GE head and the water phantom.

    MEDDENOISE_DATA=/path/to/data python benchmarks/evaluate_ct.py [--methods auto,nlm,bm3d]

Writes docs/benchmarks_evaluate_ct.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from data_split import DATA_ROOT, REAL_NOISE_CT  # noqa: E402
from evaluate_cli import write_evaluate_page  # noqa: E402

NOISES = ("ct-lowdose:25HU", "ct-lowdose:60HU")


def held_out_series(folder: Path) -> list[Path]:
    """Each held-out series as a folder of links to its files (a DICOM series folder, as a user has it)."""
    series = []
    for name, files, _quiet in REAL_NOISE_CT:
        target = folder / name
        target.mkdir(parents=True, exist_ok=True)
        for file in files:
            link = target / Path(file).name
            if not link.exists():
                link.symlink_to(DATA_ROOT / file)
        series.append(target)
    return series


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="auto,nlm,bm3d")
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks_evaluate_ct.md"))
    args = parser.parse_args()
    names = ", ".join(name for name, _, _ in REAL_NOISE_CT)
    text = write_evaluate_page(
        Path(args.output),
        "Low-dose CT, held out, scored in HU: `evaluate --noise`",
        f"python benchmarks/evaluate_ct.py --methods {args.methods}",
        f"`python -m meddenoiselib evaluate SERIES... --noise ct-lowdose:25HU --noise ct-lowdose:60HU --methods "
        f"{args.methods}` over the held-out series ({names}), their central 3 adjacent slices (1-2 for the shorter "
        "ones). BM3D and NLM estimate the noise, as `denoise` does by default (docs/benchmarks_real_noise.md gives "
        "BM3D the oracle noise spectrum too).",
        lambda work: held_out_series(work / "ct"),
        NOISES,
        "--methods",
        args.methods,
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
