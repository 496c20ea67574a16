"""A masked diffusion-weighted MR as a 4D NIfTI with its b-values file, through the CLI with default flags.

    python benchmarks/masked_dwi.py --template PATH   # -> docs/benchmarks_masked_dwi.md

Why: diffusion series reach a denoiser as 4D NIfTI from dcm2niix, FSL or MRtrix, with the FSL ``.bval`` / ``.bvec``
files beside them, often already masked to the brain (``bet``, ``dwi2mask``) and at 2-2.5 mm. Such a file has no
DICOM Modality, no noise floor in its air (the mask set it to 0) and no fine voxels for the masked-MR guess, so
``auto`` took it for OTHER and ran the general model; since 2026-12-06 the b-values file beside it makes it MR
(``io/modality.py``, ``_diffusion_table_modality``), and it gets the burst model with its refinement, the masked
background kept.

The series (simulated, held out): the MNI ICBM152 2009a T1 template (in no training, validation or tuning set),
axial slices 40-87 block-averaged to 2 mm (24 slices), scaled so its 99th percentile is 1000, as the b = 0 image,
twice; six b = 1000 s/mm^2 frames in seeded directions, S = S0 exp(-b D) with D = 3.0e-3 mm^2/s where the T1 is dark
inside the head (CSF), 0.8e-3 in grey matter and 0.7e-3 x (0.6 + 0.8 |g_x|) in white matter (a left-right fibre
direction: the frames differ). Noise: Rician 4 % and 8 % of 1000 (b = 0 SNR 25 / 12.5), non-central chi with 8 coils
at 3 %; rounded to uint16 and masked to 0 where the template is 0, as a brain mask leaves it. Written as
``dwi.nii.gz`` with ``dwi.bval`` and ``dwi.bvec`` beside it and given to ``python -m meddenoiselib denoise IN OUT``
with default flags (``auto``), to ``--model kpn-general`` (what ``auto`` ran before) and to ``--model bm3d --sigma
auto`` (its default; frame by frame, where the optional ``bm3d`` package is installed), each through
``masked_mr_untagged.py``'s CLI runner.

Scores inside the mask: PSNR (data range: the clean b = 0 maximum) averaged over the b = 0 frames and over the
b = 1000 frames, and the mean error of the b = 1000 frames in units of the noise sigma (a magnitude image's noise
floor biases dim voxels upwards: CSF at b = 1000 holds ~5 % of its b = 0 signal, under the floor). The template is an
average of 152 scans, smoother than one scan, which flatters strong smoothing; the diffusion contrast is a crude
model (no fibre orientation map), enough to give the frames different signal levels.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "MedDenoiseLib"))
from masked_mr_untagged import methods_to_run, run  # noqa: E402
from quality import cpu_name  # noqa: E402
from real_noise import cli_env, table  # noqa: E402

METHODS = ("auto", "kpn-general", "bm3d")
#: (name, sigma as a share of the b = 0 image's 99th percentile, coils)
LEVELS = (("Rician 4 %", 0.04, 1), ("Rician 8 %", 0.08, 1), ("8 coils, 3 %", 0.03, 8))
B_VALUE = 1000.0
SLICES = slice(40, 88)
SCALE = 1000.0


def b0_image(template: Path) -> np.ndarray:
    """``(X, Y, Z)`` float64: the template's slab block-averaged to 2 mm, its 99th percentile at :data:`SCALE`."""
    import nibabel as nib

    data = np.asarray(nib.as_closest_canonical(nib.load(template)).dataobj, dtype=np.float64)[:, :, SLICES]
    x, y, z = (n // 2 * 2 for n in data.shape)
    data = data[:x, :y, :z].reshape(x // 2, 2, y // 2, 2, z // 2, 2).mean(axis=(1, 3, 5))
    return data / np.percentile(data, 99) * SCALE


def diffusion_series(b0: np.ndarray, seed: int) -> tuple[np.ndarray, list[float], np.ndarray]:
    """``(X, Y, Z, 8)`` clean frames (two b = 0, six b = 1000), their b-values and ``(3, 8)`` gradient directions."""
    directions = np.random.default_rng(seed).normal(size=(6, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    csf = (b0 > 1) & (b0 < 0.3 * SCALE)
    white = b0 > 0.7 * SCALE
    frames, b_values = [b0, b0], [0.0, 0.0]
    for g in directions:
        diffusivity = np.where(csf, 3.0e-3, np.where(white, 0.7e-3 * (0.6 + 0.8 * abs(g[0])), 0.8e-3))
        frames.append(b0 * np.exp(-B_VALUE * diffusivity))
        b_values.append(B_VALUE)
    vectors = np.zeros((3, len(b_values)))
    vectors[:, 2:] = directions.T
    return np.stack(frames, axis=-1), b_values, vectors


def magnitude_noise(clean: np.ndarray, sigma: float, coils: int, seed: int) -> np.ndarray:
    """Rician (one coil) or non-central chi (``coils``, root sum of squares) magnitude of ``clean``."""
    rng = np.random.default_rng(seed)
    power = (clean + rng.normal(0, sigma, clean.shape)) ** 2 + rng.normal(0, sigma, clean.shape) ** 2
    for _ in range(2 * coils - 2):
        power += rng.normal(0, sigma, clean.shape) ** 2
    return np.sqrt(power)


def write_dwi(noisy: np.ndarray, b_values: list[float], vectors: np.ndarray, folder: Path, floats=False) -> Path:
    """``folder/dwi.nii.gz`` (uint16, or float32 with ``floats``; 2 mm) with ``dwi.bval`` and ``dwi.bvec``."""
    import nibabel as nib

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dwi.nii.gz"
    voxels = noisy.astype(np.float32 if floats else np.uint16)
    nib.save(nib.Nifti1Image(voxels, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))
    (folder / "dwi.bval").write_text(" ".join(f"{b:g}" for b in b_values) + "\n")
    (folder / "dwi.bvec").write_text("\n".join(" ".join(f"{v:.6f}" for v in row) for row in vectors) + "\n")
    return path


def scores(clean: np.ndarray, result: np.ndarray, inside: np.ndarray, sigma: float) -> tuple[float, float, float]:
    """(PSNR of the b = 0 frames, PSNR of the b = 1000 frames, mean error of the b = 1000 frames / sigma)."""
    top = float(clean[..., 0].max())

    def psnr(k: int) -> float:
        return float(10 * np.log10(top**2 / np.mean((clean[..., k][inside] - result[..., k][inside]) ** 2)))

    error = (result[..., 2:] - clean[..., 2:])[inside]
    return float(np.mean([psnr(0), psnr(1)])), float(np.mean([psnr(k) for k in range(2, 8)])), error.mean() / sigma


def main() -> int:
    import nibabel as nib

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, required=True, help="the MNI ICBM152 2009a T1 template")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks_masked_dwi.md")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seed", type=int, default=600)
    parser.add_argument(
        "--nan",
        action="store_true",
        help="mask with NaN in a float32 file instead of 0 in uint16 (the page is not written)",
    )
    args = parser.parse_args()
    methods = methods_to_run(args.methods)
    b0 = b0_image(args.template)
    inside = b0 > 0
    clean, b_values, vectors = diffusion_series(b0, args.seed)
    env = cli_env()
    rows, choices, seconds = {}, {}, {m: 0.0 for m in methods}
    with tempfile.TemporaryDirectory() as folder:
        for index, (level, share, coils) in enumerate(LEVELS):
            sigma = share * SCALE
            noisy = np.rint(magnitude_noise(clean, sigma, coils, args.seed + 1 + index))
            rows[level] = {"noisy": scores(clean, noisy, inside, sigma)}  # inside the mask only
            noisy[~inside] = np.nan if args.nan else 0  # the brain mask's background
            work = Path(folder) / f"level{index}"
            path = write_dwi(np.clip(noisy, 0, np.iinfo(np.uint16).max), b_values, vectors, work, args.nan)
            for method in methods:
                output, choice, wall = run(method, path, work, env)
                result = np.asarray(nib.load(str(output)).dataobj, dtype=np.float64)
                if args.nan:
                    print(f"  NaN exactly outside the mask: {bool(np.array_equal(np.isnan(result[..., 0]), ~inside))}")
                    result = np.nan_to_num(result)
                rows[level][method] = scores(clean, result, inside, sigma)
                choices.setdefault(method, choice)
                seconds[method] += wall
                b0_psnr, dw_psnr, bias = rows[level][method]
                print(f"{level:14s} {method:12s} {b0_psnr:.2f} / {dw_psnr:.2f} dB, bias {bias:+.3f} ({wall:.1f} s)")
    header = ["method"] + [f"{level}: b=0 / b=1000 PSNR (gain), bias" for level, _, _ in LEVELS] + ["CLI s / series"]
    body = []
    for method in ["noisy", *methods]:
        cells = [method]
        for level, _, _ in LEVELS:
            b0_psnr, dw_psnr, bias = rows[level][method]
            n0, n1, _ = rows[level]["noisy"]
            cells.append(f"{b0_psnr:.2f} ({b0_psnr - n0:+.2f}) / {dw_psnr:.2f} ({dw_psnr - n1:+.2f}), {bias:+.2f} σ")
        cells.append("–" if method == "noisy" else f"{seconds[method] / len(LEVELS):.1f}")
        body.append(cells)
    shape = "x".join(str(n) for n in clean.shape[:3][::-1])
    lines = [
        "# A masked diffusion MR as 4D NIfTI with its b-values file (through the CLI)",
        "",
        f"Generated by `python benchmarks/masked_dwi.py --template PATH` on {cpu_name()}; the protocol is in the "
        f"script's docstring. A simulated diffusion series from the MNI T1 template (held out): {shape} voxels of "
        "2 mm, two b = 0 and six b = 1000 frames, masked to 0 outside the head, as `dwi.nii.gz` with `dwi.bval` and "
        "`dwi.bvec` beside it. PSNR inside the mask, averaged over the b = 0 and over the b = 1000 frames; bias: the "
        "b = 1000 frames' mean error inside the mask in units of the noise sigma. `kpn-general` is what `auto` ran on "
        "such a file until 2026-12-06 (OTHER: no modality, no floor, voxels too coarse for the masked-MR guess).",
        "",
        *table(header, body),
        "",
        "What each method ran (the report's `model_choice`):",
        "",
        *[f"- `{method}`: {choices[method]}" for method in methods],
        "",
    ]
    if not args.nan:
        args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
