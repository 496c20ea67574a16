"""One command for a lent GPU: train every `auto` model, check CUDA against the CPU, time a 512x512x300 CT.

Prepare here (no GPU needed), then run there with the device tool:

    python scripts/gpu/pack_training_data.py                  # .gpu/pack.npz + .gpu/wheels (ignored by git)
    # device run, carry [".gpu"], timeout_s 600:
    PYTHONUNBUFFERED=1 python3 scripts/gpu/oneshot.py --out $OUT --seconds 520

The recipes train side by side, one process each, until ``--seconds`` less the time kept for the checks; then each
check runs while time is left. What comes back in $OUT (both rewritten after every stage, so a run cut off still
returns what it finished): `gpu_models.tar.gz` (runs/<model>/model.safetensors, model.json, log.csv, child.log:
install with `tar xzf ... && python scripts/train_shipped.py NAME --install`) and `report.json` (per model: steps,
wall time, validation PSNR; CUDA-vs-CPU differences; 512x512x300 CT times and peak GPU memory).

The same script runs on the CPU with `--device cpu --seconds 60` as a dry run (its training is tested that way).
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
#: what a lent GPU trains, side by side, in order of importance; pack_training_data.py packs their images. Since
#: 2026-12-06 the CT candidates only (MR, ultrasound and the general model pass their lines on the CPU-trained
#: weights; the CT model's line against BM3D with the oracle PSD does not): the shipped grain-trained CT model
#: continued at batch 32 (`kpn-ct-burst3-grain-cont`), grown by wide coarse kernels (`kpn-ct-msw-burst3`: level
#: after 3000 CPU steps, "a longer run would tell"), continued with white noise in a third of the samples
#: (`kpn-ct-burst3-white`: level on white noise after 2000 CPU steps), and the larger 5-slice model from scratch.
#: The four share one set of CT images (~14 MiB packed), far under the 64 MiB a device call carries. Not
#: kpn-general: its images add ~19 MiB; `--recipes kpn-mr kpn-us` after packing them trains those instead.
GPU_RECIPES = ("kpn-ct-burst3-grain-cont", "kpn-ct-msw-burst3", "kpn-ct-burst3-white", "kpn-ct-burst5")
#: per-recipe settings on CUDA beyond the recipe's own: a quarter of the CPU fine-tune's learning rate. (Every CT
#: recipe also keeps its float32 there, as on the CPU: the shipped CT model fell ~5 dB and recovered slowly whenever
#: a fine-tune was jolted, 2026-12-02.)
GPU_OPTIONS = {"kpn-ct-burst3-ft": {"lr": 5e-5}}
#: seconds kept after training for the CUDA checks and the 512x512x300 CT timings
EVALUATION_SECONDS = 150


def prepare_environment(wheels: Path) -> None:
    """Make meddenoiselib importable on the GPU image: wheels for what it lacks, placeholders for file readers the
    pack makes unnecessary (SimpleITK, pydicom, nibabel are imported by the I/O code but not used here)."""
    sys.path.insert(0, str(ROOT / "MedDenoiseLib"))
    sys.path.insert(0, str(ROOT / "scripts"))
    site = Path("/tmp/site")
    if (site / "monai").is_dir():  # installed by the parent process of a side-by-side training
        sys.path.insert(0, str(site))
    try:
        import monai  # noqa: F401
    except ImportError:
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


def train_recipe(
    name: str,
    pack: Path,
    work: Path,
    device: str,
    seconds: float = 0.0,
    batch_size: int = 32,
    deadline: float | None = None,
    threads: int | None = None,
) -> dict:
    """Train one recipe from the pack for ``seconds`` of training steps (0: no limit) or until the wall-clock
    ``deadline`` (a ``time.time()`` value), whichever ends first: the trainer fits its step count to the time left
    from its pace."""
    from meddenoiselib.training import TrainConfig
    from meddenoiselib.training.trainer import Trainer
    from train_shipped import RECIPES, recipe_options

    options = recipe_options(RECIPES[name])
    noise = str(options.pop("noise", "gaussian:0-50")).split()
    val_levels = options.pop("val_levels", None)
    options.pop("cache_dir", None)
    # a recipe's float32 (the CT recipes, fine-tuning float32 models) holds on CUDA too; the others take CUDA's fp16
    # autocast, which runs the U-Net while a KPN's kernel heads stay float32 anyway. On the CPU dry run: the default
    fp32 = options.pop("precision", None) == "fp32" and device == "cuda"
    gpu = dict(GPU_OPTIONS.get(name, {})) if device == "cuda" else {}
    config = TrainConfig(
        inputs=[f"{pack}:{name}:train"],
        val_inputs=[f"{pack}:{name}:val"],
        output=str(work / name),
        name=name,
        noise=noise,
        device=device,
        precision="fp32" if fp32 else "auto",
        threads=threads or min(os.cpu_count() or 1, 8),
        val_every=500,
        checkpoint_every=10**9,
        time_budget=seconds,
        # each recipe its own cache: recipes train side by side in separate processes
        cache_dir=str(work / "cache" / name),
        **{k: v for k, v in options.items() if k != "batch_size"},
    )
    for key, value in gpu.items():
        setattr(config, key, value)
    config.batch_size = batch_size
    config.steps = 200_000  # the time budget decides
    if val_levels:
        config.val_sigmas = [float(v) for v in str(val_levels).split(",")]
    if deadline is not None:
        # loading the pack and computing CT noise maps take an unknown share of the wall clock: train until the
        # deadline, not for a fixed time after the load
        config.deadline = deadline
    start = time.perf_counter()
    trainer = Trainer(config, show_progress=False)
    path = trainer.run()
    card = json.loads(path.with_suffix(".json").read_text())
    return {
        "weights": str(path),
        "seconds": round(time.perf_counter() - start, 1),
        "steps": card["training"]["steps"],
        "validation": card["validation"],
    }


def train_in_parallel(recipes: list[str], args: argparse.Namespace, work: Path, deadline: float) -> dict:
    """Each recipe in its own process, all sharing the GPU until ``deadline``: these KPNs are small, so one
    training leaves most of an H200 idle while it samples patches on the CPU."""
    threads = max((os.cpu_count() or 2) // len(recipes), 1)
    children = {}
    for recipe in recipes:
        (work / recipe).mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            recipe,
            "--out",
            str(Path(args.out)),
            "--work",
            str(work),
            "--pack",
            args.pack,
            "--wheels",
            args.wheels,
            "--device",
            args.device,
            "--batch-size",
            str(args.batch_size),
            "--deadline",
            str(deadline),
            "--threads",
            str(threads),
        ]
        environment = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        log = open(work / recipe / "child.log", "w")  # noqa: SIM115 - closed when the child ends
        children[recipe] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment), log)
    results = {}
    for recipe, (process, log) in children.items():
        try:
            process.wait(timeout=max(deadline - time.time(), 0) + 90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        result_file = work / recipe / "result.json"
        if result_file.is_file():
            results[recipe] = json.loads(result_file.read_text())
        else:
            tail = (work / recipe / "child.log").read_text()[-1500:]
            results[recipe] = {"error": f"exit {process.returncode}", "log_tail": tail}
        print(f"== {recipe}: {json.dumps(results[recipe])[:600]}", flush=True)
    return results


def slab(volume, start: int, stop: int):
    """Slices ``start:stop`` of a Volume as a Volume of their own (same spacing and metadata)."""
    from meddenoiselib.io.volume import Volume

    return Volume(volume.array[start:stop].copy(), spacing=volume.spacing, metadata=volume.metadata)


def cuda_vs_cpu(weights: Path, pack: Path, recipe: str) -> dict:
    """Max |CUDA - CPU| (fp32 both, and CUDA's default precision) on the recipe's first validation volume."""
    import numpy as np

    from meddenoiselib.inference import Denoiser
    from meddenoiselib.training.pack import pack_volumes

    _, volume = next(iter(pack_volumes(f"{pack}:{recipe}:val")))
    if volume.shape[0] > 3:
        volume = slab(volume, 0, 3)
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


def ct_volume(pack: Path):
    """A 512x512x300 int16 CT: the packed validation chest placed in a 512 canvas of air, repeated."""
    import numpy as np

    from meddenoiselib.io.volume import Volume
    from meddenoiselib.training.pack import pack_volumes

    _, chest = next(iter(pack_volumes(f"{pack}:kpn-ct-burst5:val")))
    canvas = np.full((chest.shape[0], 512, 512), -1024, np.int16)
    h, w = min(chest.shape[1], 512), min(chest.shape[2], 512)
    canvas[:, (512 - h) // 2 : (512 - h) // 2 + h, (512 - w) // 2 : (512 - w) // 2 + w] = chest.array[:, :h, :w]
    return Volume(np.resize(canvas, (300, 512, 512)), spacing=(0.98, 0.98, 2.0), metadata={"0008|0060": "CT"})


def time_denoiser(volume, device: str = "cuda", **options) -> dict:
    """Wall time of ``Denoiser(device=device, **options).denoise(volume)``, its peak GPU memory on CUDA (None on the
    CPU), and what the denoiser reported doing (model, views, refinement)."""
    import torch

    from meddenoiselib.inference import Denoiser

    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    denoiser = Denoiser(device=device, **options)
    start = time.perf_counter()
    denoiser.denoise(volume)
    if cuda:
        torch.cuda.synchronize()
    report = denoiser.last_report
    return {
        "slices": int(volume.shape[0]),
        "seconds": round(time.perf_counter() - start, 2),
        "peak_gpu_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
        "method": report.method,
        "choice": report.choice,
        "views": report.ensemble,
        "refined": report.refined,
        "refine_detail": report.refine_detail,
    }


def refinement_cuda_vs_cpu(volume, device: str = "cuda") -> dict:
    """The shipped CT model with its refinement forced on, CUDA against the CPU, on 4 middle slices (HU)."""
    import numpy as np

    from meddenoiselib.inference import Denoiser

    middle = volume.array.shape[0] // 2
    part = slab(volume, middle - 2, middle + 2)
    on_gpu = Denoiser("kpn-ct-burst3", device=device, refine="on", precision="fp32", ensemble=1).denoise(part).array
    on_cpu = Denoiser("kpn-ct-burst3", device="cpu", refine="on", precision="fp32", ensemble=1).denoise(part).array
    difference = np.abs(on_gpu.astype(np.float32) - on_cpu.astype(np.float32))
    return {"max": float(difference.max()), "mean": float(difference.mean())}


class Stages:
    """Runs named checks while time is left, recording each result (or its error) and saving after each."""

    def __init__(self, report: dict, save, end: float) -> None:
        self.report, self.save, self.end = report, save, end

    def run(self, key: str, seconds_needed: float, check, *args, **kwargs) -> None:
        left = self.end - time.time()
        if left < seconds_needed:
            self.report["skipped"][key] = f"{left:.0f} s left, {seconds_needed:.0f} s needed"
        else:
            start = time.perf_counter()
            try:
                self.report["checks"][key] = check(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - one failed check must not cost the others' results
                self.report["checks"][key] = {"error": f"{type(error).__name__}: {error}"}
            print(f"== {key} ({time.perf_counter() - start:.0f} s): {self.report['checks'][key]}", flush=True)
        self.save()


def save_results(out: Path, work: Path, report: dict, recipes: list[str]) -> None:
    """``report.json`` and ``gpu_models.tar.gz`` (rewritten after every stage: a run cut off by its time limit still
    returns what it finished)."""
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    partial = out / "gpu_models.tar.gz.partial"
    with tarfile.open(partial, "w:gz") as archive:
        for recipe in recipes:
            for name in ("model.safetensors", "model.json", "log.csv", "config.json", "child.log"):
                path = work / recipe / name
                if path.is_file():
                    archive.add(path, arcname=f"runs/{recipe}/{name}")
    partial.replace(out / "gpu_models.tar.gz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu-out"))
    parser.add_argument("--pack", default=str(ROOT / ".gpu" / "pack.npz"))
    parser.add_argument("--wheels", default=str(ROOT / ".gpu" / "wheels"))
    parser.add_argument(
        "--work",
        help="training runs and caches (default: <out>/work); only the report and the archive need to be under --out",
    )
    parser.add_argument("--seconds", type=float, default=520, help="wall-clock seconds for everything")
    parser.add_argument("--recipes", nargs="+", default=list(GPU_RECIPES))
    parser.add_argument(
        "--check-seconds",
        type=float,
        default=EVALUATION_SECONDS,
        help="seconds kept after training for the CUDA checks and timings (each runs only while time is left)",
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    started = time.time()
    prepare_environment(Path(args.wheels))
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "work"
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    if args.child:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(relativeCreated)8.0f ms %(name)s: %(message)s")
        result = train_recipe(
            args.child,
            Path(args.pack),
            work,
            args.device,
            batch_size=args.batch_size,
            deadline=args.deadline,
            threads=args.threads,
        )
        (work / args.child / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        return 0

    import torch

    report = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "models": {},
        "checks": {},
        "skipped": {},
    }
    end = started + args.seconds
    deadline = end - args.check_seconds if args.device == "cuda" else end

    def save() -> None:
        report["wall_seconds"] = round(time.time() - started, 1)
        save_results(out, work, report, args.recipes)

    report["models"] = train_in_parallel(args.recipes, args, work, deadline)
    save()
    if args.device != "cuda":
        return 0
    stages = Stages(report, save, end)
    pack = Path(args.pack)
    for recipe in args.recipes:
        weights = report["models"][recipe].get("weights")
        if weights:
            stages.run(f"cuda_vs_cpu {recipe}", 10, cuda_vs_cpu, Path(weights), pack, recipe)
    try:
        volume = ct_volume(pack)
    except Exception as error:  # noqa: BLE001
        report["checks"]["ct_volume"] = {"error": f"{type(error).__name__}: {error}"}
        save()
        return 1
    # what a user gets by default on a GPU: auto picks the CT model and refines the whole volume (the full search)
    stages.run("ct_512x512x300 auto", 40, time_denoiser, volume)
    stages.run("ct_512x512x300 auto fp32", 40, time_denoiser, volume, precision="fp32")
    weights = report["models"].get("kpn-ct-burst5", {}).get("weights")
    if weights:
        stages.run("ct_512x512x300 kpn-ct-burst5", 40, time_denoiser, volume, weights=Path(weights))
    stages.run("refinement cuda_vs_cpu (4 slices, HU)", 30, refinement_cuda_vs_cpu, volume)
    # the refinement over 60 slices (x5: the whole CT): the time CUDA_VOLUME_MAX_PIXELS, auto's GPU limit, rests on
    part = slab(volume, 0, 60)
    stages.run("ct_512x512x60 kpn-ct-burst3 refine on", 30, time_denoiser, part, method="kpn-ct-burst3", refine="on")
    print(json.dumps({k: v for k, v in report.items() if k != "models"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
