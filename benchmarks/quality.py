"""Quality and speed benchmark of every shipped model against the classical baselines.

    python benchmarks/quality.py                      # all methods, sigma 15/25/50 -> docs/benchmarks.md + PNG
    python benchmarks/quality.py --methods median,kpn-small --sigmas 25 --output /tmp/bench
    python benchmarks/quality.py --methods kpn-small,kpn-small@8     # NAME@N: with an N-view self-ensemble

References: the held-out files of ../shared/data listed in scripts/data_split.py (BENCHMARK), one 2D slice
each, RGB as luminance, min-max normalized to [0, 1]. Gaussian noise with sigma on the 0-255 scale, seeded
per image and sigma (MONAI RandGaussianNoise). Baselines get the true sigma; networks are blind. PSNR with
data range 1; SSIM with the 11x11 Gaussian window (MONAI). Timing: wall time per 512x512 slice on this machine,
median of repeated runs, all threads. The IRUNet protocol runs the histology clean/noisy pairs shipped with
IRUNet through every method, per RGB channel, with PSNR on RGB and SSIM on luminance as IRUNet's code does.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from data_split import benchmark_references, irunet_pairs  # noqa: E402
from meddenoiselib.baselines import bm3d_available  # noqa: E402
from meddenoiselib.evaluation import comparison_figure, evaluate, psnr, ssim  # noqa: E402
from meddenoiselib.evaluation.compare import add_noise  # noqa: E402
from meddenoiselib.inference import Denoiser, default_model_name  # noqa: E402
from meddenoiselib.io import read_volume  # noqa: E402
from meddenoiselib.transforms import estimate_sigma, fit_scaling  # noqa: E402
from meddenoiselib.weights import list_shipped_weights, load_model_card  # noqa: E402

IRUNET_PUBLISHED = {10: (42.20, 0.9977), 25: (39.64, 0.9925), 50: (33.31, 0.9655)}


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or the platform's processor name where that is not available."""
    try:
        return next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def load_references() -> list[tuple[str, str, np.ndarray]]:
    """(modality, name, clean 2D image in [0, 1]) for every benchmark reference."""
    references = []
    for modality, path, index in benchmark_references():
        volume = read_volume(path)
        array = volume.array.astype(np.float32)
        if volume.num_components > 1:
            array = array[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        image = array[index if index is not None else 0]
        name = path.name + (f"[{index}]" if index is not None else "")
        references.append((modality, name, fit_scaling(image, "minmax").apply(image)))
    return references


def load_burst_references() -> list[tuple[str, str, np.ndarray]]:
    """(modality, name, clean (3, Y, X) stack in [0, 1]) for every CT and MR reference with its two neighbours.

    The stack is scaled with the centre slice's min-max, so its centre equals the 2D reference. Neighbours are held
    out too (``scripts/data_split.py`` holds out whole slice ranges).
    """
    stacks = []
    for modality, path, index in benchmark_references():
        if modality not in ("CT", "MR"):
            continue
        if index is not None:
            stack = read_volume(path).array[index - 1 : index + 2].astype(np.float32)
        else:  # one DICOM file per slice; neighbours are the files either side in name order
            files = sorted(path.parent.glob("*.dcm"))
            k = files.index(path)
            stack = np.concatenate([read_volume(f).array for f in files[k - 1 : k + 2]]).astype(np.float32)
        name = path.name + (f"[{index}]" if index is not None else "")
        stacks.append((modality, name, fit_scaling(stack[1], "minmax").apply(stack)))
    return stacks


def burst_protocol(denoisers: dict[str, Denoiser], sigmas: list[float], seed: int) -> list[dict]:
    """Centre-slice PSNR/SSIM when each method sees a 3-slice stack with independent noise per slice.

    Burst models get the whole noisy stack; single-slice methods get only its noisy centre slice.
    """
    rows = []
    for i, (_modality, name, stack) in enumerate(load_burst_references()):
        clean = stack[1]
        for j, sigma in enumerate(sigmas):
            noisy = add_noise(stack, sigma, seed + 500 + 1000 * i + j)
            rows.append(
                {
                    "image": name,
                    "sigma255": sigma,
                    "method": "noisy",
                    "psnr": psnr(clean, noisy[1]),
                    "ssim": ssim(clean, noisy[1]),
                }
            )
            for method, denoiser in denoisers.items():
                if denoiser.burst > 1:
                    out = denoiser.denoise_array(noisy, sigma=sigma / 255)[1]
                else:
                    out = denoiser.denoise_array(noisy[1], sigma=sigma / 255)
                rows.append(
                    {
                        "image": name,
                        "sigma255": sigma,
                        "method": method,
                        "psnr": psnr(clean, out),
                        "ssim": ssim(clean, out),
                    }
                )
                print(f"  burst {name:30s} sigma {sigma:4g} {method:16s} {rows[-1]['psnr']:6.2f} dB", flush=True)
    return rows


def make_denoiser(method: str) -> Denoiser:
    """``NAME`` or ``NAME@N`` (a network with an N-view self-ensemble), on the CPU."""
    name, _, views = method.partition("@")
    return Denoiser(name, device="cpu", ensemble=int(views) if views else 1)


def time_per_slice(denoiser: Denoiser, image: np.ndarray, sigma: float, repeats: int) -> float:
    denoiser.denoise_array(image, sigma=sigma)  # warm-up (weights, threads, caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        denoiser.denoise_array(image, sigma=sigma)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def irunet_protocol(denoisers: dict[str, Denoiser]) -> list[dict]:
    rows = []
    for name, clean_path, noisy_path, sigma in irunet_pairs():
        clean = read_volume(clean_path).array[0].astype(np.float32) / 255.0
        noisy = read_volume(noisy_path).array[0].astype(np.float32) / 255.0
        gray = lambda rgb: rgb @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)  # noqa: E731 skimage rgb2gray
        # the wavelet noise estimate of the "clean" reference itself (0-255 scale): a clean image gives ~1-2
        reference_noise = float(np.mean([estimate_sigma(clean[..., c]) for c in range(3)])) * 255
        rows.append(
            {
                "pair": name,
                "sigma255": sigma,
                "method": "noisy",
                "psnr": psnr(clean, noisy),
                "ssim": ssim(gray(clean), gray(noisy)),
                "reference_noise": reference_noise,
            }
        )
        for method, denoiser in denoisers.items():
            out = np.stack([denoiser.denoise_array(noisy[..., c], sigma=sigma / 255.0) for c in range(3)], axis=-1)
            out = np.clip(out, 0, 1)
            rows.append(
                {
                    "pair": name,
                    "sigma255": sigma,
                    "method": method,
                    "psnr": psnr(clean, out),
                    "ssim": ssim(gray(clean), gray(out)),
                }
            )
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def shipped_models_table(models: list[str]) -> str:
    """Markdown table of the models' cards; steps and wall time summed over every run a model was fine-tuned from."""
    rows = []
    for model in models:
        card = load_model_card(model)
        steps, seconds, stage = 0, 0.0, card["training"]
        while stage:  # each fine-tuning run keeps the card of the run it started from
            steps += stage["steps"]
            seconds += stage.get("wall_time_s", 0)
            stage = stage.get("base_training")
        rows.append(
            [
                model,
                card["architecture"]["network"],
                f"{card['architecture']['parameters']:,}",
                card["training"]["mode"],
                f"{steps:,}",
                f"{seconds / 60:.0f} min",
                card["training"]["hardware"],
            ]
        )
    return markdown_table(["model", "network", "parameters", "training", "steps", "wall time", "hardware"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", help="comma-separated; default: baselines + every shipped model")
    parser.add_argument("--sigmas", default="15,25,50")
    parser.add_argument("--output", default=str(ROOT / "docs"))
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats for fast methods")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    baselines = ["median", "nlm", "diffusion"] + (["bm3d"] if bm3d_available() else [])
    models = list_shipped_weights()
    # the default model once more with the 8-view geometric self-ensemble (Denoiser(ensemble=8))
    methods = args.methods.split(",") if args.methods else baselines + models + [f"{default_model_name()}@8"]
    models = [m for m in models if m in methods]
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    references = load_references()
    modality_of = {name: modality for modality, name, _ in references}
    denoisers = {m: make_denoiser(m) for m in methods}
    print(f"{len(references)} references, methods: {', '.join(methods)}", flush=True)

    def progress(row) -> None:
        print(
            f"  {row.image:40s} sigma {row.sigma255:4g} {row.method:16s} {row.psnr:6.2f} dB {row.ssim:.4f} "
            f"{row.seconds:6.2f}s",
            flush=True,
        )

    rows = evaluate(
        [(name, clean) for _, name, clean in references],
        methods,
        sigmas,
        seed=args.seed,
        denoiser_factory=lambda m: denoisers[m],
        on_result=progress,
    )
    with open(output / "benchmark_results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["modality", "image", "sigma255", "method", "psnr", "ssim", "seconds"])
        for r in rows:
            writer.writerow(
                [
                    modality_of[r.image],
                    r.image,
                    r.sigma255,
                    r.method,
                    f"{r.psnr:.4f}",
                    f"{r.ssim:.5f}",
                    f"{r.seconds:.4f}",
                ]
            )

    all_methods = ["noisy"] + methods
    modalities = list(dict.fromkeys(modality_of.values()))

    def mean(metric: str, method: str, sigma: float, modality: str | None = None) -> float:
        values = [
            getattr(r, metric)
            for r in rows
            if r.method == method and r.sigma255 == sigma and (modality is None or modality_of[r.image] == modality)
        ]
        return float(np.mean(values))

    # speed on a real 512x512 CT slice
    ct_slice = next(clean for modality, name, clean in references if clean.shape == (512, 512))
    noisy_slice = add_noise(ct_slice, 25.0, 1)
    speed = {}
    for method in methods:
        repeats = 1 if method in ("bm3d", "nlm") else args.repeats
        speed[method] = time_per_slice(denoisers[method], noisy_slice, 25 / 255, repeats)
        print(f"  speed {method:16s} {speed[method]:.3f} s per 512x512 slice", flush=True)

    irunet_rows = irunet_protocol(denoisers)
    burst_methods = [m for m in methods if denoisers[m].burst > 1]
    burst_rows = []
    if burst_methods:
        compared = [m for m in ("nlm", "bm3d") if m in methods] + [m for m in models if m not in burst_methods]
        burst_rows = burst_protocol({m: denoisers[m] for m in compared + burst_methods}, sigmas, args.seed)

    # figure: one CT and one ultrasound reference at sigma 25
    figure_methods = [m for m in ("median", "nlm", "bm3d") if m in methods]
    best = max(models, key=lambda m: mean("psnr", m, 25.0)) if models else None
    if best:
        figure_methods.append(best)
    panels = []
    for wanted in ("CT", "US"):
        modality, name, clean = next(r for r in references if r[0] == wanted)
        noisy = add_noise(clean, 25.0, 7)
        panels.append((f"{wanted} noisy σ=25", noisy))
        for method in figure_methods:
            panels.append((f"{method}", denoisers[method].denoise_array(noisy, sigma=25 / 255)))
        panels.append((f"{wanted} clean", clean))
    h = 200
    crop = (slice(150, 150 + h), slice(160, 160 + h))
    comparison_figure(
        panels,
        output / "benchmark_quality.png",
        crop=crop,
        columns=len(figure_methods) + 2,
        title="Held-out images, Gaussian sigma 25 (0-255 scale), same crop",
    )

    # markdown
    cpu = cpu_name()
    import os

    import torch

    lines = [
        "# Benchmarks",
        "",
        f"Measured with `python benchmarks/quality.py` on {cpu}, {os.cpu_count()} cores, torch "
        f"{torch.__version__} ({time.strftime('%Y-%m-%d')}). Networks run blind (no sigma), in bfloat16 "
        "autocast where the CPU supports it; baselines are given the true sigma.",
        "",
        "References (held out from all training; see `scripts/data_split.py`): "
        + ", ".join(f"{m} `{n}`" for m, n, _ in references)
        + ".",
        "",
        "## Mean PSNR (dB) / SSIM over all references",
        "",
    ]
    header = ["method"] + [f"σ={s:g}" for s in sigmas]
    body = [[m] + [f"{mean('psnr', m, s):.2f} / {mean('ssim', m, s):.4f}" for s in sigmas] for m in all_methods]
    lines.append(markdown_table(header, body))
    lines += ["## Mean PSNR (dB) per modality", ""]
    header = ["method"] + [f"{mod} σ={s:g}" for mod in modalities for s in sigmas]
    body = [[m] + [f"{mean('psnr', m, s, mod):.2f}" for mod in modalities for s in sigmas] for m in all_methods]
    lines.append(markdown_table(header, body))
    lines += ["## Seconds per 512×512 slice (this CPU)", ""]
    body = [[m, f"{speed[m]:.3f}", f"{speed['bm3d'] / speed[m]:.1f}×" if "bm3d" in speed else "–"] for m in methods]
    lines.append(markdown_table(["method", "seconds", "faster than BM3D"], body))
    lines += [
        "## IRUNet protocol: IRUNet's histology clean/noisy pairs",
        "",
        "The two pairs committed in the IRUNet repository (96×96 RGB H&E patches; noisy = clean + one fixed "
        "seeded Gaussian field, sigma 25 and 50). Every method runs per RGB channel; PSNR on RGB, SSIM on "
        "luminance, as IRUNet's `averageTester.py`. IRUNet's published means are on its 57,458-tile test set "
        "with the same fixed noise field seen in training (networks.md, gotcha 1), so they are inflated and not "
        "comparable one to one; our models never saw histology or that noise field.",
        "",
        'Read these rows with care: the "clean" references are themselves noisy. The wavelet noise '
        "estimate (the library's `estimate_sigma`) of each clean reference is "
        + ", ".join(f"{r['reference_noise']:.1f} for `{r['pair']}`" for r in irunet_rows if "reference_noise" in r)
        + " on the 0-255 scale (a clean image, e.g. the `ihc.png` reference, gives about 2). A method that "
        "removes noise therefore moves away from the reference, and PSNR against it can fall below the "
        "noisy input's.",
        "",
    ]
    body = []
    for r in irunet_rows:
        published = IRUNET_PUBLISHED.get(r["sigma255"]) if r["method"] == "noisy" else None
        body.append(
            [
                r["pair"],
                f"{r['sigma255']}",
                r["method"],
                f"{r['psnr']:.2f}",
                f"{r['ssim']:.4f}",
                f"{published[0]:.2f} / {published[1]:.4f}" if published else "",
            ]
        )
    lines.append(markdown_table(["pair", "σ", "method", "PSNR", "SSIM", "IRUNet published (test set mean)"], body))
    if burst_rows:
        lines += [
            "",
            "## Burst models: 3 adjacent slices of the held-out CT and MR references",
            "",
            "Each reference slice with its two neighbours (also held out), independent Gaussian noise per slice. "
            "Burst models see the noisy 3-slice stack; every other method sees only the noisy centre slice. "
            "Mean centre-slice PSNR (dB) / SSIM.",
            "",
        ]
        burst_methods_all = list(dict.fromkeys(r["method"] for r in burst_rows))
        body = []
        for m in burst_methods_all:
            cells = []
            for s in sigmas:
                sel = [r for r in burst_rows if r["method"] == m and r["sigma255"] == s]
                cells.append(f"{np.mean([r['psnr'] for r in sel]):.2f} / {np.mean([r['ssim'] for r in sel]):.4f}")
            body.append([m] + cells)
        lines.append(markdown_table(["method"] + [f"σ={s:g}" for s in sigmas], body))
    lines += ["", "![held-out images at sigma 25](benchmark_quality.png)", ""]
    if models:
        lines += ["## Shipped models", "", shipped_models_table(models)]
    (output / "benchmarks.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {output / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
