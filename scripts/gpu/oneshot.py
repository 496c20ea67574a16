"""One command for a lent GPU: train every `auto` model, check CUDA against the CPU, time a 512x512x300 CT.

Prepare here (no GPU needed), then run there with the device tool:

    python scripts/gpu/pack_training_data.py                  # .gpu/pack.npz + .gpu/wheels (ignored by git)
    # device run, carry [".gpu"], timeout_s 600:
    PYTHONUNBUFFERED=1 python3 scripts/gpu/oneshot.py --out $OUT --minutes 7

What comes back in $OUT: `gpu_models.tar.gz` (runs/<model>/model.safetensors, model.json, log.csv: install with
`tar xzf ... && python scripts/train_shipped.py NAME --install`) and `report.json` (per model: steps, wall time,
validation PSNR; CUDA-vs-CPU differences; the 512x512x300 CT time and peak GPU memory).

The same script runs on the CPU with `--device cpu --minutes 0.5` as a dry run (it is tested that way).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tarfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: share of the training minutes per recipe
SHARES = {"kpn-ct-burst5": 0.45, "kpn-general": 0.25, "kpn-mr": 0.15, "kpn-us": 0.15}


def prepare_environment(wheels: Path) -> None:
    """Make meddenoiselib importable on the GPU image: wheels for what it lacks, placeholders for file readers the
    pack makes unnecessary (SimpleITK, pydicom, nibabel are imported by the I/O code but not used here)."""
    sys.path.insert(0, str(ROOT / "MedDenoiseLib"))
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import monai  # noqa: F401
    except ImportError:
        site = Path("/tmp/site")
        subprocess.check_call(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--no-deps",
                "--no-compile",
                "--target",
                str(site),
                *map(str, sorted(wheels.glob("*.whl"))),
            ]
        )
        sys.path.insert(0, str(site))
    for name in ("SimpleITK", "pydicom", "nibabel", "pywt"):
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)  # never called: the pack replaces the readers


def train_recipe(name: str, pack: Path, work: Path, device: str, seconds: float, batch_size: int) -> dict:
    from meddenoiselib.training import TrainConfig, train
    from train_shipped import RECIPES, recipe_options

    options = recipe_options(RECIPES[name])
    noise = str(options.pop("noise", "gaussian:0-50")).split()
    val_levels = options.pop("val_levels", None)
    options.pop("cache_dir", None)
    # the CPU recipes' float32 (CT) guards against bf16 on CPUs; on CUDA fp16 autocast runs the U-Net while a KPN's
    # kernel heads stay float32 anyway
    options.pop("precision", None)
    config = TrainConfig(
        inputs=[f"{pack}:{name}:train"],
        val_inputs=[f"{pack}:{name}:val"],
        output=str(work / name),
        name=name,
        noise=noise,
        device=device,
        precision="auto",
        threads=min(os.cpu_count() or 1, 8),
        val_every=500,
        checkpoint_every=10**9,
        time_budget=seconds,
        cache_dir=str(work / "cache"),
        **{k: v for k, v in options.items() if k != "batch_size"},
    )
    config.batch_size = batch_size
    config.steps = 200_000  # the time budget decides
    if val_levels:
        config.val_sigmas = [float(v) for v in str(val_levels).split(",")]
    start = time.perf_counter()
    path = train(config, show_progress=False)
    card = json.loads(path.with_suffix(".json").read_text())
    return {
        "weights": str(path),
        "seconds": round(time.perf_counter() - start, 1),
        "steps": card["training"]["steps"],
        "validation": card["validation"],
    }


def cuda_vs_cpu(weights: Path, pack: Path, recipe: str) -> dict:
    """Max |CUDA - CPU| (fp32 both, and CUDA's default precision) on the recipe's first validation volume."""
    import numpy as np

    from meddenoiselib.inference import Denoiser
    from meddenoiselib.training.pack import pack_volumes

    _, volume = next(iter(pack_volumes(f"{pack}:{recipe}:val")))
    volume = volume.with_array(volume.array[: min(3, volume.shape[0])]) if volume.shape[0] > 3 else volume
    cpu = Denoiser(weights=weights, device="cpu", precision="fp32").denoise(volume).array.astype(np.float64)
    results = {}
    for precision in ("fp32", "auto"):
        cuda = Denoiser(weights=weights, device="cuda", precision=precision).denoise(volume).array
        difference = np.abs(cuda.astype(np.float64) - cpu)
        results[precision] = {
            "max_abs": float(difference.max()),
            "mean_abs": float(difference.mean()),
            "value_range": float(cpu.max() - cpu.min()),
        }
    return results


def time_ct(weights: Path, pack: Path) -> dict:
    """Denoise a 512x512x300 int16 CT (the packed validation chest placed in a 512 canvas, repeated) on CUDA."""
    import numpy as np
    import torch

    from meddenoiselib.inference import Denoiser
    from meddenoiselib.io.volume import Volume
    from meddenoiselib.training.pack import pack_volumes

    _, chest = next(iter(pack_volumes(f"{pack}:kpn-ct-burst5:val")))
    canvas = np.full((chest.shape[0], 512, 512), -1024, np.int16)
    h, w = min(chest.shape[1], 512), min(chest.shape[2], 512)
    canvas[:, (512 - h) // 2 : (512 - h) // 2 + h, (512 - w) // 2 : (512 - w) // 2 + w] = chest.array[:, :h, :w]
    volume = Volume(np.resize(canvas, (300, 512, 512)), spacing=(0.98, 0.98, 2.0), metadata={"0008|0060": "CT"})
    results = {}
    for precision in ("auto", "fp32"):
        torch.cuda.reset_peak_memory_stats()
        denoiser = Denoiser(weights=weights, device="cuda", precision=precision)
        start = time.perf_counter()
        denoiser.denoise(volume)
        torch.cuda.synchronize()
        results[precision] = {
            "seconds": round(time.perf_counter() - start, 2),
            "peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
        }
    results["kpn-ct-burst3 refined"] = time_ct_refinement(volume)
    return results


def time_ct_refinement(volume, device: str = "cuda") -> dict:
    """The shipped CT model with its collaborative Wiener refinement forced on (``refine="on"``: ``auto`` refines
    only up to 32 slices of 512x512 because of the CPU's time) over the whole 512x512x300 CT on CUDA, and the
    refinement on CUDA against the CPU on 4 slices (HU): whether ``auto`` could refine every CT on a GPU."""
    import numpy as np
    import torch

    from meddenoiselib.inference import Denoiser
    from meddenoiselib.io.volume import Volume

    cuda = device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    denoiser = Denoiser("kpn-ct-burst3", device=device, refine="on")
    start = time.perf_counter()
    denoiser.denoise(volume)
    if cuda:
        torch.cuda.synchronize()
    result = {
        "seconds": round(time.perf_counter() - start, 2),
        "peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "views": denoiser.last_report.ensemble,
        "refine_detail": denoiser.last_report.refine_detail,
    }
    middle = volume.array.shape[0] // 2
    part = Volume(volume.array[middle - 2 : middle + 2].copy(), spacing=volume.spacing, metadata=volume.metadata)
    on_gpu = Denoiser("kpn-ct-burst3", device=device, refine="on", precision="fp32").denoise(part).array
    on_cpu = Denoiser("kpn-ct-burst3", device="cpu", refine="on", precision="fp32").denoise(part).array
    difference = np.abs(on_gpu.astype(np.float32) - on_cpu.astype(np.float32))
    result["cuda_vs_cpu_hu"] = {"max": float(difference.max()), "mean": float(difference.mean())}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu-out"))
    parser.add_argument("--pack", default=str(ROOT / ".gpu" / "pack.npz"))
    parser.add_argument("--wheels", default=str(ROOT / ".gpu" / "wheels"))
    parser.add_argument("--minutes", type=float, default=7.0, help="training minutes for all models together")
    parser.add_argument("--recipes", nargs="+", default=list(SHARES))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    prepare_environment(Path(args.wheels))
    import torch

    out, work = Path(args.out), Path(args.out) / "work"
    work.mkdir(parents=True, exist_ok=True)
    report = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "models": {},
    }
    total = sum(SHARES[r] for r in args.recipes)
    for recipe in args.recipes:
        seconds = 60 * args.minutes * SHARES[recipe] / total
        print(f"== {recipe}: {seconds:.0f} s", flush=True)
        report["models"][recipe] = train_recipe(recipe, Path(args.pack), work, args.device, seconds, args.batch_size)
        print(json.dumps(report["models"][recipe]), flush=True)
    if args.device == "cuda":
        for recipe in args.recipes:
            weights = Path(report["models"][recipe]["weights"])
            report["models"][recipe]["cuda_vs_cpu"] = cuda_vs_cpu(weights, Path(args.pack), recipe)
        if "kpn-ct-burst5" in args.recipes:
            report["ct_512x512x300"] = time_ct(Path(report["models"]["kpn-ct-burst5"]["weights"]), Path(args.pack))
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    with tarfile.open(out / "gpu_models.tar.gz", "w:gz") as archive:
        for recipe in args.recipes:
            for name in ("model.safetensors", "model.json", "log.csv", "config.json"):
                path = work / recipe / name
                if path.is_file():
                    archive.add(path, arcname=f"runs/{recipe}/{name}")
    print(json.dumps({k: v for k, v in report.items() if k != "models"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
