"""Magnitude-MR noise on real MR images that no model was trained or tuned on, through the CLI.

    python benchmarks/real_mr.py                      # -> docs/benchmarks_real_mr.md + .csv
    python benchmarks/real_mr.py --methods auto,bm3d --output /tmp/mr --work /tmp/mr-work

Why a second MR benchmark: the MR volume of ``benchmarks/real_noise.py`` (``mr/skimage_brain/brain.tiff``) looks
like a CT head (bright skull ring, head holder; very likely the UNC archive's CThead), so its MR rows test the
Rician noise and the bias correction on CT-like anatomy. Every other MR volume in the data folder trains the MR
models. The references here are in no list of ``scripts/data_split.py`` but ``REAL_MR``: real MR contrasts,
unseen by every model and by every choice made on training data:

- ``t1-coronal``: dipy's normalized T1 coronal slice (skull-stripped brain, exact zero outside; BSD licence),
  written as uint16 (x 4095);
- ``lgg{1,2}-{a,b,c}``: the three MR sequences that MID-DRAN's two sample images stack as RGB channels (axial
  head, skull base; uint8). That repository has no licence file: the images are read from the data folder for
  this evaluation only and never copied into the repository.

Each reference is one 2D slice, written as a 1-slice DICOM series with Modality MR (the fixture writer of
``real_noise.py``), so ``auto`` sees the tag as in a scanner's file. Noise, metrics and methods are those of
``real_noise.py`` for MR: ``rician:3%``, ``rician:6%`` (sigma = 3 / 6 % of the 99th percentile) and
``noncentral-chi:3%,8``; PSNR (data range = the clean image's maximum) and SSIM over the head, background bias (mean
of result - clean outside the dilated head) in units of sigma; the CLI with default flags for ``auto``, the shipped
MR models and NLM / BM3D with ``--sigma auto``; BM3D with the oracle noise PSD in-process.

``--masked``: the same noisy series set to 0 outside the dilated head (where the bias is measured otherwise), as
skull-stripping or a scanner's background mask leaves a scan: no noise floor to read there. Written to
``benchmarks_real_mr_masked.md`` / ``.csv``; the background bias is then that of the mask, not of a method.

``--reduce N``: the same 2D slices averaged over N x N pixels before the noise (a coarse matrix of the same anatomy:
128 x 128 for N = 2, as an EPI or DWI slice), pixel spacing N x 1 mm; written to ``benchmarks_real_mr_reduced<N>.md``
/ ``.csv``. A single slice this small has too few 16-px tiles to read its noise floor from (see ``FLOOR_TILES`` in
``transforms/magnitude.py``).

``--template PATH``: instead of the 2D slices, one MR *volume* whose background is exactly 0, so that the bias
measures the method and not the reference's own noise floor: the MNI ICBM 2009a symmetric T1 template as nilearn
ships it (``nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz``: an average of 152 real T1
scans registered to one another, brain only, 1 mm, uint8; permissive McConnell Brain Imaging Centre licence; get
it with ``pip download nilearn --no-deps`` and unzip the wheel). Its central ``TEMPLATE_SLICES`` axial slices
(through the ventricles) x 16 are written as an MR DICOM series of 1 mm slices; the noise, methods and metrics are
those above. No model was trained or tuned on it. Written to ``benchmarks_real_mr_template.md`` / ``.csv``. An
average of many scans is smoother than one scan, so its PSNR gains flatter every method; the bias is what it is
for. ``--thick N`` with it: each N adjacent 1 mm slices of ``TEMPLATE_THICK_SLICES`` averaged into one N mm slice,
as a thick-slice acquisition integrates them (``benchmarks_real_mr_template_thickN.md``).

``--scale F``: the references' stored values multiplied by F and rounded before the noise (the 2D slices, or the
template with ``--template``): a scan stored with fewer grey levels, whose noise floor (sigma 3 % of the 99th
percentile) is then a few grey levels: ~2.4 on the uint8 glioma slices at F = 0.4, ~2.5 on the uint8 template at
F = 1/16 (its stored values). Written to ``benchmarks_real_mr_scaled<F>.md`` (``..._template_scaled<F>.md``).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from data_split import DATA_ROOT, REAL_MR  # noqa: E402
from meddenoiselib.io import read_volume  # noqa: E402
from quality import cpu_name  # noqa: E402
from real_noise import (  # noqa: E402
    MR_NOISE,
    MR_SPACING,
    ORACLE,
    Case,
    Item,
    bm3d_oracle,
    cli_env,
    fmt,
    metrics,
    mr_case,
    run_cli,
    simulate_items,
    table,
    write_fixture_series,
    write_noisy_series,
)

DEFAULT_METHODS = ("auto", "kpn-mr", "kpn-small-rician-mr", "nlm", "bm3d")
#: the acceptance of issue 13 for MR (rician 3 %): PSNR gain over the head, |background bias| / sigma
TARGET_GAIN_DB, TARGET_BIAS = 5.0, 0.10


def reference_frames(source: str, channel: int | None) -> np.ndarray:
    """``(1, Y, X)`` uint16 frame of one reference: a float image in [0, 1] x 4095, an integer image as stored."""
    path = DATA_ROOT / source
    if path.suffix == ".npy":
        image = np.load(path)
        if image.dtype.kind == "f":
            image = np.rint(np.clip(image, 0.0, 1.0) * 4095.0)
    else:
        image = read_volume(path).array  # (1, Y, X, 3) for RGB
        image = image[0, ..., channel] if channel is not None else image[0]
    return np.asarray(image, dtype=np.uint16)[None]


#: the template's axial slices used (z index in the file, 1 mm apart): the ventricles and the basal ganglia
TEMPLATE_SLICES = range(66, 90)
#: the template is uint8; x 16 keeps the simulated noise from being rounded to a few levels (as MR_Gd's uint8 x 16)
TEMPLATE_GAIN = 16


#: ``--thick``: the 60 mm slab averaged into thick slices (12 of 5 mm for ``--thick 5``)
TEMPLATE_THICK_SLICES = range(48, 108)


def scale_name(scale: float) -> str:
    """The suffix of a reference's name and of the output files for ``--scale`` (none for 1)."""
    return "" if scale == 1 else f"-x{scale:.4g}".replace(".", "p")


def template_frames(path: Path, slices) -> np.ndarray:
    """The MNI T1 template's axial ``slices`` (z indices in the file) x :data:`TEMPLATE_GAIN`, float64 ``(Z, Y, X)``
    with rows from anterior to posterior, as a DICOM axial slice is shown."""
    import nibabel as nib

    image = nib.as_closest_canonical(nib.load(path))  # RAS: x right, y anterior, z superior
    data = np.asarray(image.dataobj, dtype=np.float64)[:, :, list(slices)]
    return np.transpose(data, (2, 1, 0))[:, ::-1, :] * TEMPLATE_GAIN


def template_case(work: Path, path: Path, thick: int = 1, scale: float = 1.0) -> Case:
    """The MNI T1 template's central slab as an MR DICOM series of 1 mm slices, or of ``thick`` mm slices each the
    mean of ``thick`` adjacent 1 mm slices (see the module docstring), its values x ``scale``."""
    name = ("mni152-t1" if thick == 1 else f"mni152-t1-{thick}mm") + scale_name(scale)
    folder = work / "clean" / f"mr-{name}"
    if not folder.exists():
        frames = template_frames(path, TEMPLATE_SLICES if thick == 1 else TEMPLATE_THICK_SLICES) * scale
        frames = frames[: len(frames) // thick * thick].reshape(-1, thick, *frames.shape[1:]).mean(axis=1)
        spacing = (1.0, 1.0, float(thick))
        description = "MNI ICBM152 2009a T1 template" + (f" {thick} mm" if thick > 1 else "") + " (fixture)"
        write_fixture_series(np.rint(frames).astype(np.uint16), folder, "MR", spacing, description)
    return mr_case(name, folder)


def reduced_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """``(1, Y, X)`` frames averaged over ``factor`` x ``factor`` pixels (``--reduce``: a coarser acquisition of the
    same anatomy, as an EPI or DWI matrix), rounded to the integers they were."""
    if factor == 1:
        return frames
    z, y, x = frames.shape
    y, x = y // factor * factor, x // factor * factor
    cells = frames[:, :y, :x].astype(np.float64).reshape(z, y // factor, factor, x // factor, factor)
    return np.rint(cells.mean(axis=(2, 4))).astype(frames.dtype)


def cases(work: Path, reduce: int = 1, scale: float = 1.0) -> list[Case]:
    out = []
    for name, source, channel in REAL_MR:
        name = (name if reduce == 1 else f"{name}-{reduce}x") + scale_name(scale)
        folder = work / "clean" / f"mr-{name}"
        if not folder.exists():
            frames = reduced_frames(reference_frames(source, channel), reduce)
            if scale != 1:
                frames = np.rint(frames * scale).astype(frames.dtype)
            spacing = (MR_SPACING[0] * reduce, MR_SPACING[1] * reduce, MR_SPACING[2])
            write_fixture_series(frames, folder, "MR", spacing, f"{name} (fixture)")
        out.append(mr_case(name, folder))
    return out


def items_of(all_cases: list[Case], seed: int, group: str = "main") -> list[Item]:
    return [
        Item(case, spec, spec, seed + 1000 * i + j, group)
        for i, case in enumerate(all_cases)
        for j, spec in enumerate(MR_NOISE)
    ]


def mask_items(items: list[Item], work: Path) -> None:
    """Write each simulated noisy series (``items`` of group "main", already simulated) again under group "masked",
    0 outside the dilated head: a masked scan."""
    for item in items:
        target = work / "noisy" / "masked" / item.name
        array_file = work / "float" / f"{item.name}.npy"
        if target.exists() and target.stat().st_mtime >= array_file.stat().st_mtime:
            continue
        noisy = np.load(array_file)
        noisy[item.case.extra["background"]] = 0
        derivation = f"Simulated noise {item.spec}, masked outside the head"
        write_noisy_series(item.case.volume.with_array(noisy), item, target, " masked noise", derivation)


def score(all_items: list[Item], methods: list[str], work: Path, oracle: bool) -> list[dict]:
    rows = []
    for item in all_items:
        noisy = read_volume(work / "noisy" / item.group / item.name).array.astype(np.float32)
        outputs = {"noisy": noisy}
        for method in methods:
            outputs[method] = read_volume(work / "out" / item.group / method / item.name).array.astype(np.float32)
        if oracle:
            outputs[ORACLE] = bm3d_oracle(noisy, item.case.clean, item.case.extra["head"])
        for method, result in outputs.items():
            rows.append({"case": item.case.name, "level": item.level, "method": method, **metrics(item, result)})
        print(f"  scored {item.name}", flush=True)
    return rows


def report(rows: list[dict], methods: list[str], masked: bool = False) -> list[str]:
    levels = list(dict.fromkeys(r["level"] for r in rows))
    names = list(dict.fromkeys(r["case"] for r in rows))
    order = ["noisy", *methods, ORACLE]
    order = [m for m in order if any(r["method"] == m for r in rows)]

    def mean(method: str, level: str, key: str) -> float:
        return float(np.mean([r[key] for r in rows if r["method"] == method and r["level"] == level]))

    lines = ["## Mean over the references", ""]
    body = []
    for method in order:
        cells = [method]
        for level in levels:
            gain = mean(method, level, "psnr") - mean("noisy", level, "psnr")
            cells += [fmt(mean(method, level, "psnr")), f"{gain:+.2f}", fmt(mean(method, level, "ssim"), 3)]
            cells.append(fmt(mean(method, level, "bias_sigma")))
        body.append(cells)
    header = ["method"]
    for level in levels:
        header += [f"`{level}` PSNR", "gain", "SSIM", "bias / σ"]
    lines += table(header, body)
    lines += ["## PSNR gain over the noisy input per reference (dB)", ""]
    for level in levels:
        lines += [f"### `{level}`", ""]
        body = []
        for method in order[1:]:
            cells = [method]
            for name in names:
                pick = {r["method"]: r for r in rows if r["case"] == name and r["level"] == level}
                cells.append(f"{pick[method]['psnr'] - pick['noisy']['psnr']:+.2f}")
            body.append(cells)
        lines += table(["method", *names], body)
    if "auto" in order and not masked:
        gain = mean("auto", "rician:3%", "psnr") - mean("noisy", "rician:3%", "psnr")
        bias = mean("auto", "rician:3%", "bias_sigma")
        verdict = "pass" if gain >= TARGET_GAIN_DB and abs(bias) <= TARGET_BIAS else "fail"
        lines += [
            "## Issue 13's MR acceptance on these references (`auto`, CLI, rician 3 %)",
            "",
            f"PSNR gain over the head **{gain:+.2f} dB** (target >= +{TARGET_GAIN_DB:g}); background bias "
            f"**{bias:.3f} σ** (target <= {TARGET_BIAS:.2f}): **{verdict}**.",
            "",
        ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="CLI methods (auto, models, nlm, bm3d)")
    parser.add_argument("--no-oracle", action="store_true", help="skip BM3D with the oracle PSD")
    parser.add_argument("--output", default=str(ROOT / "docs"), help="folder for benchmarks_real_mr.md/.csv")
    parser.add_argument(
        "--work", help="keep (and reuse) fixtures, noisy series and outputs here (default: a temporary folder, removed)"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--template",
        metavar="PATH",
        help="the MNI ICBM152 2009a T1 template (nilearn's .nii.gz): one 3D MR volume with an empty background "
        "instead of the 2D slices -> benchmarks_real_mr_template.md/.csv",
    )
    parser.add_argument(
        "--thick",
        type=int,
        default=1,
        metavar="N",
        help="with --template: N mm slices, each the mean of N adjacent 1 mm slices (a thick-slice acquisition)",
    )
    parser.add_argument(
        "--reduce",
        type=int,
        default=1,
        metavar="N",
        help="the 2D slices averaged over N x N pixels (a coarse matrix, e.g. 128 x 128 for N = 2) -> "
        "benchmarks_real_mr_reduced<N>.md/.csv",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="F",
        help="the references' values x F (rounded) before the noise: a noise floor of a few grey levels -> "
        "benchmarks_real_mr[_template]_scaled<F>.md/.csv",
    )
    parser.add_argument(
        "--masked",
        action="store_true",
        help="the noisy series masked to 0 outside the dilated head -> benchmarks_real_mr_masked.md/.csv (no oracle)",
    )
    args = parser.parse_args()
    if args.thick < 1 or (args.thick > 1 and not args.template):
        parser.error("--thick N (N >= 1) applies to --template")
    if args.reduce < 1 or (args.reduce > 1 and (args.template or args.masked)):
        parser.error("--reduce N (N >= 1) applies to the 2D slices, without --template or --masked")
    if not args.scale > 0 or (args.scale != 1 and (args.masked or args.reduce > 1 or args.thick > 1)):
        parser.error("--scale F (F > 0) applies to the 2D slices or the 1 mm template, without --masked or --reduce")
    if args.template and args.masked:
        parser.error("--template and --masked measure different things; give one")
    if args.template and not Path(args.template).is_file():
        parser.error(f"--template {args.template}: no such file")
    if not DATA_ROOT.is_dir() and not args.template:
        parser.error(f"benchmark data not found at {DATA_ROOT} (set MEDDENOISE_DATA)")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="real_mr_"))
    try:
        return run(args, work)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> int:
    from meddenoiselib.baselines import bm3d_available

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    methods = [m for m in args.methods.split(",") if m]
    env = cli_env()
    all_cases = (
        [template_case(work, Path(args.template), args.thick, args.scale)]
        if args.template
        else cases(work, args.reduce, args.scale)
    )
    all_items = items_of(all_cases, args.seed)
    simulate_items(all_items, work)
    template_suffix = "_template" + (f"_thick{args.thick}" if args.thick > 1 else "")
    group, suffix = ("masked", "_masked") if args.masked else ("main", template_suffix if args.template else "")
    if args.reduce > 1:
        suffix = f"_reduced{args.reduce}"
    if args.scale != 1:
        suffix += f"_scaled{args.scale:.4g}"
    if args.masked:
        mask_items(all_items, work)
        all_items = items_of(all_cases, args.seed, group)
    walls = {m: run_cli(m, group, all_items, work, env) for m in methods}
    rows = score(all_items, methods, work, not args.no_oracle and not args.masked and bm3d_available())
    with open(output / f"benchmark_real_mr{suffix}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    title = "Magnitude-MR noise on real, unseen MR images" + (", masked outside the head" if args.masked else "")
    if args.reduce > 1:
        title += f", reduced {args.reduce}x in-plane ({args.reduce} x {args.reduce} pixels averaged)"
    if args.template:
        slices = f", {args.thick} mm slices" if args.thick > 1 else ""
        title = f"Magnitude-MR noise on an unseen 3D MR volume with an empty background (the MNI T1 template{slices})"
    if args.scale != 1:
        title += f", stored values x {args.scale:.4g} (a noise floor of a few grey levels)"
    lines = [
        f"# {title} (through the CLI)",
        "",
        f"Measured with `python benchmarks/real_mr.py` on {cpu_name()}; the protocol is in the script's docstring. "
        f"{len(all_cases)} reference{'s' if len(all_cases) > 1 else ''} ({', '.join(c.name for c in all_cases)}), "
        + (f"{all_cases[0].slices} slices of {args.thick} mm, " if args.template else "one 2D slice each, ")
        + "none of them in any training, validation or tuning set. CLI wall time for all "
        f"{len(all_items)} noisy series: " + ", ".join(f"{m} {w['wall_s']:.0f} s" for m, w in walls.items()) + ".",
        "",
    ]
    if args.masked:
        lines += [
            "The noisy series are set to 0 outside the head dilated by 5 pixels (`--masked`), as skull-stripping or a "
            "scanner's background mask leaves a scan; the background bias below is therefore the mask's (the clean "
            "reference's air is not 0), not a method's.",
            "",
        ]
    tables = report(rows, methods, args.masked)
    (output / f"benchmarks_real_mr{suffix}.md").write_text("\n".join(lines + tables))
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
