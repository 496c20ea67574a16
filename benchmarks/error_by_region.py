"""Where a denoiser's error lies: flat regions, textured regions or edges, next to BM3D, on the Gaussian protocol.

    python benchmarks/error_by_region.py                                  # -> docs/benchmarks_error_by_region.md
    python benchmarks/error_by_region.py --methods kpn-general@8,bm3d --sigmas 15 --output /tmp/region.md
    python benchmarks/error_by_region.py --weights runs/kpn-general-msd/model.safetensors ...
        # a candidate's weights for the network of --methods (labelled with the weights' card name)

Same references, scaling and noisy images as ``benchmarks/quality.py`` (the held-out slices of
``scripts/data_split.py``, min-max scaled to [0, 1]; Gaussian noise seeded per image and sigma exactly as there,
for sigma 15 / 25 / 50). Networks are blind and run in memory (``NAME@N``: an N-view self-ensemble; the CLI gives a
2D file 8 views); BM3D gets the true sigma, as in quality.py's in-memory table.

Regions come from the **clean** image's gradient magnitude (Sobel of the image smoothed with a Gaussian of sigma 1
pixel): ``flat`` is the lower half of the pixels, ``texture`` the next 40 %, ``edges`` the top 10 %. For each
method and region the table gives the region's share of the image's mean squared error as an RMSE on the 0-255
scale, ``sqrt(sum over the region of err^2 / all pixels) * 255``, so the three add up in quadrature to the image's
RMSE and the column that is largest is where the PSNR is lost.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from meddenoiselib.evaluation import psnr  # noqa: E402
from meddenoiselib.evaluation.compare import add_noise  # noqa: E402
from meddenoiselib.inference import Denoiser  # noqa: E402
from meddenoiselib.transforms import sigma_from_255  # noqa: E402
from quality import cpu_name, load_references  # noqa: E402

#: quality.py's noise levels, in the order its seeds use (image i at level index j: seed + 1000 i + j)
QUALITY_SIGMAS = (15.0, 25.0, 50.0)
QUALITY_SEED = 2026
REGIONS = ("flat", "texture", "edges")


def region_masks(clean: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks of ``clean`` (2D, [0, 1]) split by gradient magnitude: lower 50 %, next 40 %, top 10 %."""
    smooth = ndimage.gaussian_filter(clean.astype(np.float64), 1.0)
    gradient = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
    low, high = np.quantile(gradient, [0.5, 0.9])
    return {"flat": gradient <= low, "texture": (gradient > low) & (gradient <= high), "edges": gradient > high}


def region_rmse(clean: np.ndarray, denoised: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Each region's part of the image's RMSE, on the 0-255 scale (they add up in quadrature to the RMSE)."""
    squared = (denoised.astype(np.float64) - clean) ** 2
    return {region: float(np.sqrt(squared[mask].sum() / clean.size) * 255) for region, mask in masks.items()}


def make_method(spec: str, weights: str | None) -> tuple[str, Denoiser]:
    """``NAME``, ``NAME@N`` (network with N views) or a baseline name -> (label, denoiser)."""
    name, _, views = spec.partition("@")
    if name in ("bm3d", "nlm", "median"):
        return name, Denoiser(name, device="cpu")
    denoiser = Denoiser(name, device="cpu", ensemble=int(views) if views else 1, weights=weights)
    label = denoiser.method if weights else name
    return label + (f"@{views}" if views else ""), denoiser


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="kpn-general@8,bm3d", help="comma-separated (default: %(default)s)")
    parser.add_argument(
        "--sigmas", default="15,25", help="sigma on the 0-255 scale, of 15/25/50 (default: %(default)s)"
    )
    parser.add_argument("--weights", help="weights (.safetensors with its card) for the network of --methods")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks_error_by_region.md")
    args = parser.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    unknown = [s for s in sigmas if s not in QUALITY_SIGMAS]
    if unknown:
        parser.error(f"--sigmas must be among {QUALITY_SIGMAS} (quality.py's seeds), got {unknown}")
    methods = dict(make_method(m.strip(), args.weights) for m in args.methods.split(",") if m.strip())
    references = load_references()

    # rows[(modality, sigma, method)] -> list of (psnr, {region: rmse}) per image
    rows: dict[tuple[str, float, str], list[tuple[float, dict[str, float]]]] = {}
    for i, (modality, name, clean) in enumerate(references):
        masks = region_masks(clean)
        for sigma in sigmas:
            noisy = add_noise(clean, sigma, QUALITY_SEED + 1000 * i + QUALITY_SIGMAS.index(sigma))
            for label, denoiser in methods.items():
                out = denoiser.denoise_array(noisy, sigma=sigma_from_255(sigma))
                score = (psnr(clean, out), region_rmse(clean, out, masks))
                rows.setdefault((modality, sigma, label), []).append(score)
                rows.setdefault(("all", sigma, label), []).append(score)
                parts = "  ".join(f"{r} {score[1][r]:5.2f}" for r in REGIONS)
                print(f"{name[:28]:28s} sigma {sigma:4g} {label:24s} {score[0]:6.2f} dB  {parts}", flush=True)

    modalities = ["all"] + list(dict.fromkeys(m for m, _, _ in references))
    lines = [
        "# Where the error lies: flat regions, texture, edges (Gaussian protocol, in memory)",
        "",
        f"Measured with `python benchmarks/{Path(__file__).name} --methods {args.methods} --sigmas {args.sigmas}"
        + (f" --weights {args.weights}" if args.weights else "")
        + f"` on {cpu_name()}; the protocol is in the script's docstring. Each cell: the region's part of the RMSE "
        "on the 0-255 scale (mean over the modality's images; the three parts add up in quadrature to the RMSE), "
        "then the mean PSNR in dB.",
        "",
    ]
    for sigma in sigmas:
        lines += [
            f"## σ = {sigma:g}",
            "",
            "| modality | method | flat | texture | edges | PSNR |",
            "|---|---|---|---|---|---|",
        ]
        for modality in modalities:
            for label in methods:
                scores = rows.get((modality, sigma, label), [])
                if not scores:
                    continue
                parts = [np.mean([s[1][r] for s in scores]) for r in REGIONS]
                mean_psnr = np.mean([s[0] for s in scores])
                lines.append(
                    f"| {modality} | {label} | " + " | ".join(f"{p:.2f}" for p in parts) + f" | {mean_psnr:.2f} |"
                )
        lines.append("")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_name(args.output.name + ".partial")
    partial.write_text("\n".join(lines))
    partial.replace(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
