"""A skull-stripped MR as a NIfTI file without a modality, through the CLI with default flags.

    python benchmarks/masked_mr_untagged.py --template PATH   # -> docs/benchmarks_masked_mr_untagged.md

Why: neuroimaging pipelines hand over skull-stripped or brain-masked MR as NIfTI (``*_brain.nii.gz``), with no
DICOM Modality, no sidecar and no noise floor in the air, which a mask set to 0. ``auto`` guesses MR for such a
volume file from its voxels (``io/modality.py``, ``_masked_mr_reason``: pixels up to 1.5 mm, never negative, masked
to 0 around the object); until 2026-12-06 it took it for OTHER and ran the general model, unrefined.

The volume: the MNI ICBM152 2009a T1 template's central slab (``real_mr.py``'s ``TEMPLATE_SLICES`` x
``TEMPLATE_GAIN``, 1 mm; held out: in no training, validation or tuning set), whose background is exactly 0. Noise:
``real_noise.py``'s MR levels (Rician 3 % / 6 % of the 99th percentile, non-central chi with 8 coils at 3 %), rounded
to the file's integers and masked to 0 where the template is 0, as the skull-stripping left it. Each noisy volume is
written as a NIfTI file without a sidecar and given to ``python -m meddenoiselib denoise IN OUT`` with default flags
(``auto``), to ``--model kpn-general`` (what ``auto`` ran before) and to ``--model bm3d`` (``--sigma auto``, where the
optional ``bm3d`` package is installed). PSNR and SSIM over the head (the template above 10 % of its 99th
percentile, filled; data range = its maximum), as ``real_mr.py`` scores them.

The template comes with nilearn's wheel (``pip download nilearn --no-deps``, unzip,
``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``); it is read from that path, never copied
into the repository. An average of 152 scans is smoother than one scan, which flatters strong smoothing; the masked
real MR slices of docs/benchmarks_real_mr_masked.md are single 2D slices, which this guess leaves alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "MedDenoiseLib"))
from meddenoiselib.evaluation.physical import head_mask, masked_psnr, masked_ssim  # noqa: E402
from meddenoiselib.io import Volume, read_volume, write_volume  # noqa: E402
from meddenoiselib.transforms.noise import parse_noise_spec, simulate_volume  # noqa: E402
from quality import cpu_name  # noqa: E402
from real_mr import TEMPLATE_GAIN, TEMPLATE_SLICES  # noqa: E402
from real_noise import MR_NOISE, cli_env, safe_name, table  # noqa: E402

METHODS = ("auto", "kpn-general", "bm3d")


def template_slab(path: Path) -> np.ndarray:
    """``(Z, Y, X)`` uint16: the template's central axial slices x ``TEMPLATE_GAIN``, as ``real_mr.py`` writes them."""
    import nibabel as nib

    image = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(image.dataobj, dtype=np.float64)[:, :, list(TEMPLATE_SLICES)]
    return np.rint(np.transpose(data, (2, 1, 0))[:, ::-1, :] * TEMPLATE_GAIN).astype(np.uint16)


def noisy_files(clean: np.ndarray, work: Path, seed: int) -> dict[str, Path]:
    """One masked noisy NIfTI per level of ``MR_NOISE`` (no sidecar, no modality anywhere)."""
    files = {}
    volume = Volume(clean, spacing=(1.0, 1.0, 1.0))
    for index, spec in enumerate(MR_NOISE):
        noisy = simulate_volume(volume, parse_noise_spec(spec), seed=seed + index, float_output=True).array
        values = np.where(clean == 0, 0, np.clip(np.rint(noisy), 0, np.iinfo(np.uint16).max)).astype(np.uint16)
        path = work / f"noisy_{safe_name(spec)}.nii.gz"
        write_volume(Volume(values, spacing=(1.0, 1.0, 1.0)), path, overwrite=True)
        files[spec] = path
    return files


def run(method: str, source: Path, work: Path, env: dict) -> tuple[Path, str, float]:
    """The CLI on ``source``: ``auto`` with default flags, other methods by ``--model``; (output, model, seconds)."""
    stem = source.name.removesuffix(".nii.gz")
    output, report = work / f"{method}_{stem}.nii.gz", work / f"{method}_{stem}.json"
    command = [sys.executable, "-m", "meddenoiselib", "denoise", str(source), str(output), "--quiet", "--overwrite"]
    command += ["--report", str(report)] + ([] if method == "auto" else ["--model", method])
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    seconds = time.perf_counter() - start
    info = json.loads(report.read_text())
    return output, info.get("model_choice") or info.get("method", method), seconds


def methods_to_run(text: str) -> list[str]:
    """The comma-separated methods of ``--methods``, without ``bm3d`` where its optional package is missing."""
    from meddenoiselib.baselines import bm3d_available

    return [m for m in text.split(",") if m and (m != "bm3d" or bm3d_available())]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, required=True, help="the MNI ICBM152 2009a T1 template")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks_masked_mr_untagged.md")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seed", type=int, default=500)
    args = parser.parse_args()
    methods = methods_to_run(args.methods)
    clean = template_slab(args.template)
    head = head_mask(clean)
    top = float(clean.max())
    env = cli_env()
    rows, choices, seconds = {}, {}, {m: 0.0 for m in methods}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for spec, path in noisy_files(clean, work, args.seed).items():
            noisy = read_volume(path).array.astype(np.float32)
            rows[spec] = {"noisy": (masked_psnr(clean, noisy, head, top), masked_ssim(clean, noisy, head, top))}
            for method in methods:
                output, choice, wall = run(method, path, work, env)
                result = read_volume(output).array.astype(np.float32)
                rows[spec][method] = (masked_psnr(clean, result, head, top), masked_ssim(clean, result, head, top))
                choices.setdefault(method, choice)
                seconds[method] += wall
                print(f"{spec:22s} {method:12s} {rows[spec][method][0]:.2f} dB ({wall:.1f} s)", flush=True)
    header = ["method"] + [f"`{spec}` PSNR (gain) / SSIM" for spec in MR_NOISE] + ["CLI s / volume"]
    body = []
    for method in ["noisy", *methods]:
        cells = [method]
        for spec in MR_NOISE:
            value, ssim = rows[spec][method]
            gain = value - rows[spec]["noisy"][0]
            cells.append(f"{value:.2f} ({gain:+.2f}) / {ssim:.3f}")
        cells.append("–" if method == "noisy" else f"{seconds[method] / len(MR_NOISE):.1f}")
        body.append(cells)
    lines = [
        "# A skull-stripped MR as NIfTI without a modality (through the CLI)",
        "",
        f"Generated by `python benchmarks/masked_mr_untagged.py --template PATH` on {cpu_name()}; the protocol is "
        "in the script's docstring. The MNI T1 template's central 24 slices (1 mm, held out), its background "
        "exactly 0 and the noisy volumes masked to 0 there, each a NIfTI file without a sidecar; PSNR / SSIM over the "
        "head. `kpn-general` is what `auto` ran on such a file until 2026-12-06 (OTHER, unrefined).",
        "",
        *table(header, body),
        "",
        "What each method ran (the report's `model_choice`):",
        "",
        *[f"- `{method}`: {choices[method]}" for method in methods],
        "",
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
