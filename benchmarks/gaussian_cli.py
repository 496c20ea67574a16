"""The Gaussian protocol through the user's path (files in, CLI with default flags, files out), side by side with
the in-memory path that ``benchmarks/quality.py`` measures; with ``--noise poisson-gaussian`` the same references
with Poisson-Gaussian noise (X-ray / microscopy photon counts), the noise the general model is for.

    python benchmarks/gaussian_cli.py                               # -> docs/benchmarks_gaussian_cli.md + .csv
    python benchmarks/gaussian_cli.py --noise poisson-gaussian      # -> docs/benchmarks_poisson_cli.md + .csv
    python benchmarks/gaussian_cli.py --methods auto,bm3d --sigmas 25 --output /tmp/g
    python benchmarks/gaussian_cli.py --work W --reuse-only --no-in-memory --memory-from docs/benchmark_results.csv
        # the tables from the CLI outputs earlier runs left in W, in-memory columns from quality.py's results
    python benchmarks/gaussian_cli.py --methods auto,kpn-general --rows-from docs/benchmark_gaussian_cli.csv ...
        # rerun only what changed; every other method's rows come from the earlier run's CSV

References: the held-out 2D slices of ``scripts/data_split.py`` (BENCHMARK), min-max scaled to [0, 1] as in
``quality.py``; Gaussian noise of sigma/255, seeded exactly as ``quality.py`` seeds it (same noisy images).
Poisson-Gaussian: ``poisson-gaussian:PEAK,1`` of the library's noise models (PEAK photon counts at intensity 1,
1 count of Gaussian read noise, divided back by PEAK), so the noise std at intensity x is sqrt(x / PEAK + 1 /
PEAK^2); the levels are PEAK (default 30, 100, 300: a std of about 47, 26 and 15 on the 0-255 scale at intensity 1,
33, 18 and 10 at mid-grey). No "true sigma" exists for signal-dependent noise, so BM3D and NLM run with the sigma
they estimate, as a user would run them.

- **CLI**: each noisy image is written as a float32 NIfTI (no modality tag, so ``auto`` picks the model for
  "other"), and every method runs as ``python -m meddenoiselib denoise NOISY_DIR OUT_DIR [--model M]``, one call
  per method and sigma, default flags: networks blind, baselines with ``--sigma auto`` (the noise estimated from
  the file). BM3D also runs with the true ``--sigma`` (``bm3d (true sigma)``), as the in-memory protocol gives it.
- **In memory** (networks): ``Denoiser(M).denoise_array(noisy)`` on the same noisy array, as docs/benchmarks.md
  runs them (the baselines' in-memory numbers, given the true sigma, are there).

The paths differ in what the network sees: the CLI fits its min-max map to the *noisy file* (noise tails
included), the in-memory protocol hands over an image already scaled by the *clean* image's min-max, the scale
the networks were trained on. PSNR with data range 1 on the clean [0, 1] scale; SSIM with MONAI's 11x11 window.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from library_fingerprint import made_by_this_library, mark_made_by_this_library  # noqa: E402
from meddenoiselib.baselines import bm3d_available  # noqa: E402
from meddenoiselib.evaluation import psnr, ssim  # noqa: E402
from meddenoiselib.inference import Denoiser  # noqa: E402
from meddenoiselib.inference.auto import choose_model  # noqa: E402
from meddenoiselib.io import Volume, read_volume, write_volume  # noqa: E402
from meddenoiselib.transforms import sigma_from_255  # noqa: E402
from meddenoiselib.transforms.noise import make_noise_transform  # noqa: E402
from quality import load_references  # noqa: E402

GAUSSIAN_MODELS = (
    "kpn-general",
    "kpn-small",
    "dncnn-small",
    "dran-small",
    "irunet-32",
    "rdn-small",
    "conv-dae-skip",
    "kpn-burst3",
)
BASELINES = ("nlm", "bm3d")
TRUE_SIGMA = "bm3d (true sigma)"
#: every method the benchmark knows, in the order of its tables (and of a default run)
METHOD_ORDER = ("auto", *GAUSSIAN_MODELS, "nlm", "bm3d", TRUE_SIGMA)


@dataclass(frozen=True)
class NoiseProtocol:
    """One noise model of the benchmark: how its levels are named, where its files go and how noise is drawn."""

    name: str  #: ``--noise`` value
    title: str  #: for the report's heading
    symbol: str  #: the level's name in table headers ("σ", "peak")
    folder_prefix: str  #: ``work/noisy/<prefix><level>``
    csv_level: str  #: the level's column in the CSV
    stem: str  #: ``docs/benchmarks_<stem>.md`` and ``docs/benchmark_<stem>.csv``
    default_levels: str
    spec: str  #: the library's noise spec with ``{level}`` for the level

    def draw(self, clean: np.ndarray, level: float, seed: int) -> np.ndarray:
        """``clean`` (2D, [0, 1]) with this protocol's noise at ``level``, seeded; float32, unclipped.

        For Gaussian noise this is ``evaluation.compare.add_noise``'s draw (quality.py's): the same noisy images."""
        transform = make_noise_transform(self.spec.format(level=f"{level:g}"))
        transform.set_random_state(seed)
        return np.asarray(transform(clean[np.newaxis]), dtype=np.float32)[0]


PROTOCOLS = {
    "gaussian": NoiseProtocol(
        "gaussian", "Gaussian protocol", "σ", "s", "sigma255", "gaussian_cli", "15,25,50", "gaussian:{level}"
    ),
    "poisson-gaussian": NoiseProtocol(
        "poisson-gaussian",
        "Poisson-Gaussian noise",
        "peak",
        "p",
        "peak",
        "poisson_cli",
        "30,100,300",
        "poisson-gaussian:{level},1",
    ),
}
GAUSSIAN = PROTOCOLS["gaussian"]


def case_name(index: int, name: str) -> str:
    stem = "".join(c if c.isalnum() else "_" for c in name)
    return f"{index:02d}_{stem}"


def write_noisy(
    references, sigmas: list[float], seed: int, work: Path, protocol: NoiseProtocol = GAUSSIAN
) -> dict[float, dict[str, np.ndarray]]:
    """The noisy images as NIfTI files under ``work/noisy/<prefix><level>/``; returns ``{level: {case: noisy}}``."""
    noisy_by_sigma: dict[float, dict[str, np.ndarray]] = {s: {} for s in sigmas}
    for i, (_, name, clean) in enumerate(references):
        for j, sigma in enumerate(sigmas):
            case = case_name(i, name)
            folder = work / "noisy" / f"{protocol.folder_prefix}{sigma:g}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{case}.nii.gz"
            if path.exists():
                # the file the CLI reads: its noise was drawn with the seed of its sigma's place in the --sigmas
                # of the run that wrote it, which a rerun with other --sigmas would not reproduce
                noisy_by_sigma[sigma][case] = read_volume(path).array[0].astype(np.float32)
                continue
            noisy = protocol.draw(clean, sigma, seed + 1000 * i + j)  # quality.py's seeds: the same noisy images
            write_volume(Volume(noisy[None].astype(np.float32)), path, compress=True)
            noisy_by_sigma[sigma][case] = noisy
    return noisy_by_sigma


def run_cli(
    method: str, sigma: float, work: Path, reuse_only: bool = False, protocol: NoiseProtocol = GAUSSIAN
) -> tuple[Path | None, float]:
    """One CLI call for every noisy file at level ``sigma``; returns the output folder and the wall time.

    With ``reuse_only`` nothing runs: the folder an earlier run left under ``work`` is returned, or None.
    """
    level = f"{protocol.folder_prefix}{sigma:g}"
    out = work / "out" / method.replace(" ", "_").replace("(", "").replace(")", "") / level
    if out.is_dir() and (reuse_only or made_by_this_library(out)):
        return out, float("nan")  # reused from an earlier run with the same --work (and library, unless reuse_only)
    if reuse_only:
        return None, float("nan")
    shutil.rmtree(out, ignore_errors=True)  # written by another version of the library: stale
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "meddenoiselib", "denoise", str(work / "noisy" / level), str(out), "--quiet"]
    if method == TRUE_SIGMA:
        args += ["--model", "bm3d", "--sigma", f"{sigma:g}"]
    elif method != "auto":
        args += ["--model", method]
    start = time.perf_counter()
    subprocess.run(args, check=True)
    mark_made_by_this_library(out)
    return out, time.perf_counter() - start


def in_memory(method: str, noisy: np.ndarray, sigma: float, protocol: NoiseProtocol = GAUSSIAN) -> np.ndarray:
    """``method`` on the noisy array without files: blind networks; Gaussian baselines get the true sigma."""
    if protocol is not GAUSSIAN:
        return Denoiser(method, device="cpu").denoise_array(noisy, sigma="auto")
    if method == TRUE_SIGMA:
        return Denoiser("bm3d", device="cpu").denoise_array(noisy, sigma=sigma_from_255(sigma))
    denoiser = Denoiser(method, device="cpu")
    return denoiser.denoise_array(noisy, sigma=sigma_from_255(sigma) if method in BASELINES else "auto")


def default_methods(protocol: NoiseProtocol) -> list[str]:
    """``METHOD_ORDER`` less what this installation or ``protocol`` cannot run (unshipped models, BM3D without its
    extra, the true sigma of signal-dependent noise)."""
    from meddenoiselib.weights import list_shipped_weights

    shipped = set(list_shipped_weights())
    unavailable = {m for m in GAUSSIAN_MODELS if m not in shipped}
    if not bm3d_available():
        unavailable |= {"bm3d", TRUE_SIGMA}
    if protocol is not GAUSSIAN:
        unavailable.add(TRUE_SIGMA)
    return [m for m in METHOD_ORDER if m not in unavailable]


def model_for_files_without_modality() -> str:
    """What ``auto`` runs on the benchmark's files (no modality tag)."""
    return choose_model(Volume(np.zeros((1, 8, 8), np.float32))).model


def memory_rows_from_quality(path: Path, methods: list[str], auto_model: str) -> list[dict]:
    """``benchmarks/quality.py``'s in-memory results (its CSV) as this script's "in memory" rows.

    quality.py draws the same noisy images. A network runs there with one view, so ``auto`` takes the default
    model's 8-view row (``NAME@8``), the views the CLI gives a 2D image; its classical filters get the true sigma.
    """
    names = {(f"{auto_model}@8" if m == "auto" else m): m for m in methods}
    with open(path, newline="") as handle:
        return [
            dict(
                image=r["image"],
                modality=r["modality"],
                level=float(r["sigma255"]),
                method=names[r["method"]],
                path="in memory",
                psnr=float(r["psnr"]),
                ssim=float(r["ssim"]),
            )
            for r in csv.DictReader(handle)
            if r["method"] in names
        ]


class EarlierRunMismatch(ValueError):
    """The earlier run's CSV was not made on the noisy images this run draws."""


def rows_from_earlier_run(path: Path, protocol: NoiseProtocol, noisy_rows: list[dict], rerun: set[str]) -> list[dict]:
    """The rows of every method but ``rerun`` (and the noisy input) from an earlier run's CSV
    (``benchmark_<stem>.csv``), at the levels of ``noisy_rows``.

    Reusing them is only sound on the same noisy images, so the earlier run's ``noisy`` rows must equal this run's
    (``noisy_rows``: same references, seed and levels) to 1e-4 dB; otherwise :class:`EarlierRunMismatch`.
    """
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if protocol.csv_level not in (reader.fieldnames or []):
            raise EarlierRunMismatch(f"{path}: no '{protocol.csv_level}' column: not a run of the {protocol.title}")
        earlier = [
            dict(
                image=r["image"],
                modality=r["modality"],
                level=float(r[protocol.csv_level]),
                method=r["method"],
                path=r["path"],
                psnr=float(r["psnr"]),
                ssim=float(r["ssim"]),
            )
            for r in reader
        ]
    before = {(r["image"], r["level"]): r["psnr"] for r in earlier if r["method"] == "noisy"}
    for row in noisy_rows:
        old = before.get((row["image"], row["level"]))
        if old is None or abs(old - row["psnr"]) > 1e-4:
            raise EarlierRunMismatch(
                f"{path}: its noisy {row['image']} at {protocol.symbol} {row['level']:g} is "
                f"{'missing' if old is None else f'{old:.4f} dB'}, this run's is {row['psnr']:.4f} dB: "
                "not the same noisy images (other references, seed or levels)"
            )
    levels = {row["level"] for row in noisy_rows}
    return [r for r in earlier if r["method"] not in {"noisy", *rerun} and r["level"] in levels]


def score(image: str, modality: str, sigma: float, method: str, path: str, clean, result) -> dict:
    """One result row at noise level ``sigma`` (σ on the 0-255 scale or peak counts): PSNR (data range 1) and SSIM
    against the clean reference."""
    return dict(
        image=image,
        modality=modality,
        level=sigma,
        method=method,
        path=path,
        psnr=psnr(clean, result),
        ssim=ssim(clean, result),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--methods", help="comma-separated (default: auto, the Gaussian models, nlm, bm3d and bm3d with the true sigma)"
    )
    parser.add_argument("--noise", choices=sorted(PROTOCOLS), default="gaussian")
    parser.add_argument(
        "--sigmas",
        "--levels",
        dest="levels",
        help="noise levels: sigma on the 0-255 scale (gaussian, default 15,25,50) or peak counts (poisson-gaussian, "
        "default 30,100,300)",
    )
    parser.add_argument("--output", default=str(ROOT / "docs"))
    parser.add_argument(
        "--work",
        help="keep noisy files and CLI outputs here and reuse them on reruns (outputs only while the library's code "
        "and weights are unchanged: benchmarks/library_fingerprint.py)",
    )
    parser.add_argument("--no-in-memory", action="store_true", help="only the CLI path")
    parser.add_argument(
        "--memory-from",
        metavar="CSV",
        help="with --no-in-memory: take the in-memory columns from quality.py's results (docs/benchmark_results.csv)",
    )
    parser.add_argument(
        "--reuse-only",
        action="store_true",
        help="run no CLI call: score the outputs earlier runs left under --work (and, for them, the in-memory "
        "path); a method and sigma without outputs shows as '–'",
    )
    parser.add_argument(
        "--rows-from",
        metavar="CSV",
        help="an earlier run's CSV (docs/benchmark_<stem>.csv): the methods it has and --methods does not keep "
        "their rows (checked to be on the same noisy images); with --memory-from, their CLI rows only",
    )
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    protocol = PROTOCOLS[args.noise]
    sigmas = [float(s) for s in (args.levels or protocol.default_levels).split(",")]
    methods = args.methods.split(",") if args.methods else default_methods(protocol)
    if TRUE_SIGMA in methods and protocol is not GAUSSIAN:
        parser.error(f"'{TRUE_SIGMA}' needs Gaussian noise: signal-dependent noise has no single sigma")
    if args.memory_from and protocol is not GAUSSIAN:
        parser.error("--memory-from reads quality.py's results, which are Gaussian only")
    if args.reuse_only and not args.work:
        parser.error("--reuse-only needs the --work folder of an earlier run")
    if args.memory_from and not args.no_in_memory:
        parser.error("--memory-from replaces the in-memory run: give --no-in-memory too")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gaussian_cli_"))
    references = load_references()
    noisy_by_sigma = write_noisy(references, sigmas, args.seed, work, protocol)
    cases = {case_name(i, name): (modality, name, clean) for i, (modality, name, clean) in enumerate(references)}

    rows = []
    for sigma in sigmas:
        for case, (modality, name, clean) in cases.items():
            noisy = noisy_by_sigma[sigma][case]
            rows.append(score(name, modality, sigma, "noisy", "-", clean, noisy))
    earlier, table_methods = [], list(methods)
    if args.rows_from:  # checked before any CLI call: a CSV of other noisy images stops the run at once
        noisy_rows = [r for r in rows if r["method"] == "noisy"]
        try:
            earlier = rows_from_earlier_run(Path(args.rows_from), protocol, noisy_rows, rerun=set(methods))
        except (EarlierRunMismatch, OSError) as error:
            parser.error(str(error))
        table_methods = sorted(
            {*methods, *(r["method"] for r in earlier)},
            key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m),
        )
    for method in methods:
        for sigma in sigmas:
            out, seconds = run_cli(method, sigma, work, args.reuse_only, protocol)
            if out is None:
                continue
            for case, (modality, name, clean) in cases.items():
                result = read_volume(out / f"{case}.nii.gz").array[0].astype(np.float32)
                rows.append(score(name, modality, sigma, method, "CLI", clean, result))
                if not args.no_in_memory and method not in (*BASELINES, TRUE_SIGMA):
                    result = in_memory(method, noisy_by_sigma[sigma][case], sigma, protocol)
                    rows.append(score(name, modality, sigma, method, "in memory", clean, result))
            mean = np.mean(
                [r["psnr"] for r in rows if r["method"] == method and r["level"] == sigma and r["path"] == "CLI"]
            )
            print(
                f"{method:20s} {protocol.symbol} {sigma:4g}: CLI mean PSNR {mean:6.2f} dB ({seconds:.0f} s)", flush=True
            )
    rows += [r for r in earlier if not (args.memory_from and r["path"] == "in memory")]
    note = ""
    if args.memory_from:
        auto_model = model_for_files_without_modality()
        rows += memory_rows_from_quality(Path(args.memory_from), table_methods, auto_model)
        note = (
            f"In-memory columns: `benchmarks/quality.py`'s results ({Path(args.memory_from).name}, the same noisy "
            f"images): one view per network, `auto` = `{auto_model}@8` (the 8 views the CLI gives a 2D image); "
            "nlm and bm3d given the true σ there, σ estimated from the file through the CLI."
        )
    write_outputs(rows, table_methods, sigmas, Path(args.output), note, protocol)
    return 0


def _mean(rows, **where) -> float:
    values = [r["psnr"] for r in rows if all(r[k] == v for k, v in where.items())]
    return float(np.mean(values)) if values else float("nan")


def _cell(value: float, spec: str = ".2f") -> str:
    """A table cell: ``value`` formatted with ``spec``, or "–" where nothing was measured (NaN)."""
    return "–" if value != value else format(value, spec)


def write_outputs(
    rows: list[dict],
    methods: list[str],
    sigmas: list[float],
    output: Path,
    note: str = "",
    protocol: NoiseProtocol = GAUSSIAN,
) -> None:
    """The report (``benchmarks_<stem>.md``) and every row (``benchmark_<stem>.csv``) under ``output``."""
    output.mkdir(parents=True, exist_ok=True)
    with open(output / f"benchmark_{protocol.stem}.csv", "w", newline="") as f:
        renamed = [{(protocol.csv_level if k == "level" else k): v for k, v in r.items()} for r in rows]
        writer = csv.DictWriter(f, fieldnames=list(renamed[0]))
        writer.writeheader()
        writer.writerows(renamed)
    auto_model = model_for_files_without_modality()
    command = "python benchmarks/gaussian_cli.py" + ("" if protocol is GAUSSIAN else f" --noise {protocol.name}")
    in_memory_run = any(r["path"] == "in memory" for r in rows)
    lines = [
        f"# {protocol.title}: the user's path (CLI)" + (" next to the in-memory path" if in_memory_run else ""),
        "",
        f"Measured with `{command}` ({time.strftime('%Y-%m-%d')}); the protocol is in "
        "the script's docstring. Same references "
        + ("and noisy images " if protocol is GAUSSIAN else "")
        + "as docs/benchmarks.md (14 held-out 2D "
        f"slices). `auto` on a file without a modality runs `{auto_model}`." + (f" {note}" if note else ""),
        "",
        "## Mean PSNR (dB) over all references",
        "",
    ]
    columns = ("CLI", "in memory", "CLI − memory") if in_memory_run else ("CLI",)
    lines += [
        "| method | " + " | ".join(f"{protocol.symbol}={s:g} {c}" for s in sigmas for c in columns) + " |",
        "|---" * (1 + len(columns) * len(sigmas)) + "|",
    ]
    noisy = [_mean(rows, method="noisy", level=s) for s in sigmas]
    lines.append(
        "| noisy | " + " | ".join(" | ".join([_cell(v), _cell(v), "0.00"][: len(columns)]) for v in noisy) + " |"
    )
    for method in methods:
        cells = []
        for s in sigmas:
            cli, mem = (
                _mean(rows, method=method, level=s, path="CLI"),
                _mean(rows, method=method, level=s, path="in memory"),
            )
            if not in_memory_run:
                cells.append(_cell(cli))
            else:
                cells.append(f"{_cell(cli)} | {_cell(mem)} | {_cell(cli - mem, '+.2f')}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    modalities = list(dict.fromkeys(r["modality"] for r in rows))
    lines += [
        "",
        "## Mean PSNR (dB) per modality, CLI path",
        "",
        "| method | " + " | ".join(f"{m} {protocol.symbol}={s:g}" for m in modalities for s in sigmas) + " |",
        "|---" * (1 + len(modalities) * len(sigmas)) + "|",
    ]
    for method in ["noisy", *methods]:
        path = {} if method == "noisy" else {"path": "CLI"}
        lines.append(
            f"| {method} | "
            + " | ".join(
                _cell(_mean(rows, method=method, level=s, modality=m, **path)) for m in modalities for s in sigmas
            )
            + " |"
        )
    report = output / f"benchmarks_{protocol.stem}.md"
    report.write_text("\n".join(lines) + "\n")
    print(f"wrote {report} and {output / f'benchmark_{protocol.stem}.csv'}")


if __name__ == "__main__":
    sys.exit(main())
