"""Magnitude MR whose noise varies across the image, denoised with and without its noise SD map (given, or estimated
from the image), through the CLI.

    python benchmarks/noise_sd_map.py            # -> docs/benchmarks_noise_sd_map.md + .csv
    python benchmarks/noise_sd_map.py --methods auto,nlm --work /tmp/map-work

Parallel imaging (SENSE, GRAPPA) leaves MR noise whose SD varies across the image by its g-factor, highest where
the coils see least apart; MP-PCA (MRtrix ``dwidenoise -noise``, dipy) and vendor maps give it per voxel.
``denoise --noise-sd-map FILE`` divides the image by the map, denoises noise of SD 1 and multiplies back;
``--noise-sd-map auto`` estimates the map from the image's finest detail (``transforms.estimate_noise_sd_map``).

References: the 7 real MR slices of ``benchmarks/real_mr.py`` (``REAL_MR``: dipy's T1 slice and the three sequences
of MID-DRAN's two LGG images), in no model's training or tuning, each written as a 1-slice NIfTI (``--modality mr``,
as a user gives a NIfTI's modality). Two shapes of the noise, so that no one simulator is graded:

- ``ramp``: sigma rising linearly across the image from 1 % to 8 % of its 99th percentile (a coil array on one
  side);
- ``g-factor``: sigma 2 % of the 99th percentile at the edges rising to 6 % in the centre (a Gaussian bump of
  0.3 x the image's width), as SENSE's g-factor peaks between the coils;
- ``uniform``: sigma 3 % everywhere (one level: what an estimated map must not make worse).

Rician noise of that sigma per pixel (seeded); the map given is the true sigma. ``--coils N``: the root sum of
squares of N channels instead (non-central chi, as GRAPPA with a multi-coil array gives it), the signal spread evenly
over them, sigma per channel; ``--integer``: the noisy images stored as integers, as a scanner stores magnitude MR.
Methods through the CLI with default flags, then with ``--noise-sd-map`` (the true map), then with
``--noise-sd-map auto``: ``auto`` (the MR model and its floor removal), NLM and BM3D (``--sigma auto`` without a
map). Metrics as ``real_mr.py``: PSNR and SSIM over the head (data range the clean maximum), background bias =
mean(result - clean) / sigma outside the dilated head.

``--template PATH``: the references are instead 4 axial slices (z = 66, 72, 78, 84: the ventricles and the basal
ganglia) of the MNI ICBM 2009a T1 template (see ``real_mr.py``'s ``--template``: an average of 152 scans, stored
values x 16), whose air is exactly 0 and whose tissue holds little noise of its own. The glioma slices hold noise of
1.4-1.8 % of their 99th percentile on 4 of 7 (``estimate_noise_sd_map`` over the head of the reference itself), more
than the ramp's 1 % at its low end: an estimated map reads that noise too (the map over the true sigma, median over
the head at one level: 1.08-1.23 on those four), and removing it is counted as an error against the reference.
Written to ``..._template.md`` / ``.csv`` after ``--output``'s name.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from data_split import REAL_MR  # noqa: E402
from meddenoiselib.evaluation.physical import head_mask, masked_psnr, masked_ssim  # noqa: E402
from meddenoiselib.io import read_volume, write_volume  # noqa: E402
from meddenoiselib.io.volume import Volume  # noqa: E402
from quality import cpu_name  # noqa: E402
from real_mr import reference_frames, template_frames  # noqa: E402
from real_noise import cli_env  # noqa: E402

DEFAULT_METHODS = ("auto", "nlm", "bm3d")
SHAPES = ("ramp", "g-factor", "uniform")
#: the ``map`` column: none, the true map, the map estimated from the image
MAPS = ("no", "yes", "estimated")


#: ``--template``: the template's axial slices (z index in the file) used as 2D references
TEMPLATE_REFERENCE_SLICES = (66, 72, 78, 84)


def references(template: Path | None) -> list[tuple[str, np.ndarray]]:
    """``(name, clean)`` of each reference, ``clean`` ``(1, Y, X)``: the held-out real slices, or ``template``'s
    slices (the module docstring)."""
    if template is None:
        return [(name, reference_frames(source, channel)) for name, source, channel in REAL_MR]
    frames = np.rint(template_frames(template, TEMPLATE_REFERENCE_SLICES)).astype(np.uint16)
    return [(f"mni152-z{z}", frame[None]) for z, frame in zip(TEMPLATE_REFERENCE_SLICES, frames, strict=True)]


def sigma_map(shape: tuple[int, int, int], p99: float, kind: str) -> np.ndarray:
    """The noise's sigma per pixel (see the module docstring), float32 ``shape``."""
    z, y, x = shape
    if kind == "ramp":
        profile = np.broadcast_to(0.01 + 0.07 * np.linspace(0.0, 1.0, x)[None, :], (y, x))
    elif kind == "uniform":
        profile = np.full((y, x), 0.03)
    else:
        yy, xx = np.mgrid[:y, :x]
        r2 = ((yy - (y - 1) / 2) ** 2 + (xx - (x - 1) / 2) ** 2) / (0.3 * x) ** 2
        profile = 0.02 + 0.04 * np.exp(-0.5 * r2)
    return np.broadcast_to(profile * p99, shape).astype(np.float32)


def evaluate(clean: np.ndarray, result: np.ndarray, sigma: np.ndarray) -> dict:
    from scipy import ndimage

    head = head_mask(clean)
    background = ~np.stack([ndimage.binary_dilation(h, iterations=5) for h in head])
    data_range = float(clean.max())
    return {
        "psnr": masked_psnr(clean, result, head, data_range),
        "ssim": masked_ssim(clean, result, head, data_range),
        "bias_sigma": float(np.mean(((result - clean) / sigma)[background], dtype=np.float64)),
    }


def magnitude_noise(clean: np.ndarray, sigma: np.ndarray, coils: int, rng: np.random.Generator) -> np.ndarray:
    """The magnitude of ``coils`` complex channels combined by root sum of squares, ``clean / sqrt(coils)`` in each
    channel's real part (so the noise-free magnitude is ``clean``), noise of SD ``sigma`` per channel and part."""
    if coils == 1:  # as the benchmark's first runs drew it
        return np.hypot(clean + rng.normal(size=clean.shape) * sigma, rng.normal(size=clean.shape) * sigma)
    total = np.zeros(clean.shape)
    for _ in range(coils):
        real = clean / np.sqrt(coils) + rng.normal(size=clean.shape) * sigma
        total += real**2 + (rng.normal(size=clean.shape) * sigma) ** 2
    return np.sqrt(total)


def run(method: str, noisy: Path, out: Path, noise_map: Path | str | None, env: dict) -> float:
    command = [sys.executable, "-m", "meddenoiselib", "denoise", str(noisy), str(out), "--modality", "mr", "-q"]
    command += [] if method == "auto" else ["--model", method]
    command += ["--noise-sd-map", str(noise_map)] if noise_map is not None else []
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks_noise_sd_map")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--coils", type=int, default=1, help="channels combined by root sum of squares (1: Rician)")
    parser.add_argument("--integer", action="store_true", help="store the noisy images as integers")
    parser.add_argument("--template", type=Path, default=None, help="the MNI T1 template's slices as references")
    args = parser.parse_args(argv)
    if args.template is not None:
        args.output = args.output.with_name(args.output.name + "_template")
    methods = [m for m in args.methods.split(",") if m]
    work = args.work or Path(tempfile.mkdtemp(prefix="noise-sd-map-"))
    work.mkdir(parents=True, exist_ok=True)
    env = cli_env()
    rows = []
    for name, clean in references(args.template):
        clean = clean.astype(np.float32)
        p99 = float(np.percentile(clean, 99))
        for seed, kind in enumerate(SHAPES):
            sigma = sigma_map(clean.shape, p99, kind)
            rng = np.random.default_rng(1000 + 10 * seed + len(rows))
            noisy = magnitude_noise(clean, sigma, args.coils, rng)
            noisy = np.rint(noisy) if args.integer else noisy
            stem = work / f"{name}-{kind}"
            noisy_file, sigma_file = stem.with_suffix(".noisy.nii.gz"), stem.with_suffix(".sigma.nii.gz")
            write_volume(Volume(noisy.astype(np.float32)), noisy_file, overwrite=True)
            write_volume(Volume(sigma), sigma_file, overwrite=True)
            base = {"reference": name, "noise": kind}
            rows.append({**base, "method": "noisy", "map": "", "seconds": 0.0, **evaluate(clean, noisy, sigma)})
            for method in methods:
                for given in MAPS:
                    out = stem.with_suffix(f".{method}.{given}.nii.gz")
                    noise_map = {"no": None, "yes": sigma_file, "estimated": "auto"}[given]
                    seconds = run(method, noisy_file, out, noise_map, env)
                    result = read_volume(out).array.astype(np.float32)
                    rows.append(
                        {
                            **base,
                            "method": method,
                            "map": given,
                            "seconds": seconds,
                            **evaluate(clean, result, sigma),
                        }
                    )
                    print(
                        f"{name:12s} {kind:9s} {method:5s} map={given:9s} {rows[-1]['psnr']:.2f} dB "
                        f"bias {rows[-1]['bias_sigma']:+.3f}",
                        flush=True,
                    )
    write_outputs(rows, methods, args.output, args.coils, args.integer, args.template is not None)
    return 0


def write_outputs(
    rows: list[dict], methods: list[str], output: Path, coils: int = 1, integer: bool = False, template: bool = False
) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# MR noise that varies across the image: with and without its noise SD map (`--noise-sd-map FILE` / `auto`)",
        "",
        f"Generated by `python benchmarks/noise_sd_map.py` on {cpu_name()} (see the script's docstring for the data,",
        "noise and metrics). Mean over "
        + ("4 slices of the MNI T1 template (`--template`)" if template else "the 7 held-out real MR slices")
        + "; gains over the noisy input. Noise SD map: no =",
        "none, yes = the true map (`--noise-sd-map FILE`), estimated = `--noise-sd-map auto`."
        + (f" Noise: {coils} channels combined by root sum of squares (`--coils {coils}`)." if coils > 1 else "")
        + (" Noisy images stored as integers (`--integer`)." if integer else ""),
        "",
    ]
    for kind in SHAPES:
        noisy = [r for r in rows if r["noise"] == kind and r["method"] == "noisy"]
        lines += [
            f"## `{kind}`",
            "",
            "| method | noise SD map | PSNR gain over the head (dB) | SSIM | background bias "
            "(sigma) | s per slice (CLI) |",
            "|---|---|---|---|---|---|",
        ]
        lines.append(
            f"| noisy | – | 0.00 ({np.mean([r['psnr'] for r in noisy]):.2f} dB) | "
            f"{np.mean([r['ssim'] for r in noisy]):.4f} | {np.mean([r['bias_sigma'] for r in noisy]):+.3f} | – |"
        )
        for method in methods:
            for given in MAPS:
                chosen = [r for r in rows if r["noise"] == kind and r["method"] == method and r["map"] == given]
                gain = np.mean([r["psnr"] - n["psnr"] for r, n in zip(chosen, noisy, strict=True)])
                seconds = np.mean([r["seconds"] for r in chosen])
                lines.append(
                    f"| {method} | {given} | {gain:+.2f} | {np.mean([r['ssim'] for r in chosen]):.4f} | "
                    f"{np.mean([r['bias_sigma'] for r in chosen]):+.3f} | {seconds:.1f} |"
                )
        lines.append("")
    output.with_suffix(".md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
