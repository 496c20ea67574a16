"""Benchmark of the noise-model-specific models: Rician noise on MR, multiplicative speckle on ultrasound.

    python benchmarks/noise_models.py                       # -> docs/benchmarks_noise_models.md
    python benchmarks/noise_models.py --output /tmp/bench --max-references 2

References are the held-out files of ../shared/data (scripts/data_split.py): the MR benchmark slices of
``brain.tiff`` for Rician noise (sigma 15/25/50 on the 0-255 scale of the min-max normalized image, MONAI
RandRicianNoise) and the 10 held-out HC18 ultrasound images for speckle (``y = x * (1 + s * n)``, relative
s = 0.1/0.2/0.4). Each image and level gets its own seed. Compared: the noisy input, median, non-local means and
BM3D (Rician: given the true sigma; speckle: sigma estimated from the noisy image, since speckle has no single
additive sigma), the Gaussian default model ``kpn-small`` and the model trained for that noise. PSNR with data
range 1, SSIM with the 11x11 Gaussian window (MONAI).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from data_split import DATA_ROOT, validation_files  # noqa: E402
from meddenoiselib.baselines import bm3d_available  # noqa: E402
from meddenoiselib.evaluation import psnr, ssim  # noqa: E402
from meddenoiselib.inference import Denoiser  # noqa: E402
from meddenoiselib.io import read_volume  # noqa: E402
from meddenoiselib.transforms import fit_scaling, make_noise_transform  # noqa: E402
from meddenoiselib.weights import list_shipped_weights  # noqa: E402
from quality import cpu_name, load_references  # noqa: E402


def ultrasound_references() -> list[tuple[str, np.ndarray]]:
    """(name, clean image in [0, 1]) for each held-out ultrasound file."""
    references = []
    for path in validation_files():
        if "/us/" not in str(path):
            continue
        image = read_volume(path).array[0].astype(np.float32)
        references.append((path.name, fit_scaling(image, "minmax").apply(image)))
    return references


def mr_references() -> list[tuple[str, np.ndarray]]:
    return [(name, image) for modality, name, image in load_references() if modality == "MR"]


CASES = {
    # name: (reference loader, noise kind, levels, specialised model, baselines get the true sigma)
    "Rician MR": (mr_references, "rician", (15.0, 25.0, 50.0), "kpn-small-rician-mr", True),
    "Speckle ultrasound": (ultrasound_references, "speckle", (0.1, 0.2, 0.4), "kpn-small-speckle-us", False),
}


def run_case(title: str, references, kind: str, levels, model: str, sigma_known: bool, seed: int) -> list[dict]:
    methods = ["median", "nlm"] + (["bm3d"] if bm3d_available() else []) + ["kpn-small"]
    methods += [model] if model in list_shipped_weights() else []
    denoisers = {m: Denoiser(m, device="cpu") for m in methods}
    rows = []
    for level in levels:
        for i, (name, clean) in enumerate(references):
            transform = make_noise_transform(kind, level)
            transform.set_random_state(seed + 1000 * i + int(level * 100))
            noisy = np.asarray(transform(clean[None]), dtype=np.float32)[0]
            outputs = {"noisy": noisy}
            sigma = level / 255.0 if sigma_known else "auto"
            for method, denoiser in denoisers.items():
                outputs[method] = denoiser.denoise_array(noisy, sigma=sigma if denoiser.needs_sigma else None)
            for method, output in outputs.items():
                rows.append(
                    dict(
                        case=title,
                        level=level,
                        image=name,
                        method=method,
                        psnr=psnr(clean, output),
                        ssim=ssim(clean, output),
                    )
                )
            print(
                f"{title:20s} {level:5g} {name:24s} "
                + " ".join(f"{r['method']}={r['psnr']:.2f}" for r in rows[-len(outputs) :]),
                flush=True,
            )
    return rows


def markdown(rows: list[dict]) -> str:
    import torch

    lines = [
        "# Noise-model benchmark: Rician MR and speckle ultrasound",
        "",
        f"Measured with `python benchmarks/noise_models.py` on {cpu_name()}, {os.cpu_count()} cores, torch "
        f"{torch.__version__} ({time.strftime('%Y-%m-%d')}); the protocol is in the script's docstring. "
        "Mean PSNR (dB) / SSIM over the references.",
        "",
    ]
    for case in dict.fromkeys(r["case"] for r in rows):
        case_rows = [r for r in rows if r["case"] == case]
        levels = list(dict.fromkeys(r["level"] for r in case_rows))
        images = list(dict.fromkeys(r["image"] for r in case_rows))
        unit = "sigma (0-255)" if "Rician" in case else "relative sigma"
        lines += [
            f"## {case} ({len(images)} held-out images: {', '.join(images)})",
            "",
            "| method | " + " | ".join(f"{unit} {level:g}" for level in levels) + " |",
            "|---|" + "---|" * len(levels),
        ]
        for method in dict.fromkeys(r["method"] for r in case_rows):
            cells = []
            for level in levels:
                sel = [r for r in case_rows if r["method"] == method and r["level"] == level]
                cells.append(f"{np.mean([r['psnr'] for r in sel]):.2f} / {np.mean([r['ssim'] for r in sel]):.4f}")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(ROOT / "docs"))
    parser.add_argument("--max-references", type=int, default=None, help="fewer images per case (quick checks)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    if not DATA_ROOT.is_dir():
        parser.error(f"benchmark data not found at {DATA_ROOT} (set MEDDENOISE_DATA)")
    rows = []
    for title, (load, kind, levels, model, sigma_known) in CASES.items():
        references = load()[: args.max_references]
        rows += run_case(title, references, kind, levels, model, sigma_known, args.seed)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    target = output / "benchmarks_noise_models.md"
    target.write_text(markdown(rows) + "\n")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
