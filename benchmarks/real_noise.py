"""Real-noise benchmark: scanner-like noise on held-out CT, MR and ultrasound, graded in physical units.

    python benchmarks/real_noise.py                    # full run -> docs/benchmarks_real_noise.md, CSV, PNG
    python benchmarks/real_noise.py --quick            # 2 CT slices, 2 MR slices, 1 US image, one level each
    python benchmarks/real_noise.py --models kpn-small,kpn-burst3 --baselines bm3d --output /tmp/bench
    python benchmarks/real_noise.py --work /tmp/rn     # keep (and reuse) the simulated and denoised series
    python benchmarks/real_noise.py --models kpn-ct-burst3 --baselines "" --no-oracle --in-memory auto \
        --rows-from docs/benchmark_real_noise.csv      # rerun what changed, every other method's rows from the CSV

The user's path first: every method runs as a user runs it, files in and files out, through the command line with
its default flags (``python -m meddenoiselib denoise NOISY OUT [--model NAME]``; baselines estimate sigma, which
for CT gives BM3D the estimated noise PSD), on DICOM series, so ``--model auto`` (the default) sees the DICOM
Modality tag as it would in a scanner's file. One command per method denoises every noisy series of the run
(a folder of series folders); ``--report {name}.json`` records the time and, for ``auto``, the model it chose.

Data (held out from all training, ``scripts/data_split.py``): the CT series and slices of ``REAL_NOISE_CT`` as
DICOM: by default chest 2 mm slices 094-098 and GE head 24-26 of the held-out ranges (``--all``: chest 090-101,
head 23-28), the water phantom and the three single fo-dicom slices; the 10 slices of
``mr/skimage_brain/brain.tiff``; the first 5 (``--all``: 10) held-out HC18 ultrasound images, central 512x512
region. MR and ultrasound have no DICOM here: :func:`write_fixture_series` (this benchmark's test fixture) writes
them as DICOM series with Modality MR / US.

Noise (``meddenoiselib.transforms.simulate_volume``, the code behind ``simulate``, seeded per series and level;
the noisy series is written as ``simulate`` writes it: the file's integer type, clipped to its stored range, and
checked against ``simulate`` itself on one series per run):

- CT, in HU, projection domain (Poisson + electronic noise, FBP), at the dose that gives ~10, ~25 and ~60 HU RMS
  of inserted noise over the body of each volume (:func:`dose_for_body_noise`), with scanners that differ from
  training (training: kernels ramp/shepp-logan/cosine/hann, 540-1080 views, electronic noise 2-15, mostly the
  fast image-domain model): setting A, the unseen ``hamming`` kernel, 1000 views, electronic noise 10, at all
  three levels, every method; setting B, ``shepp-logan``, 1000 views, electronic 10, at ~25 HU, for the networks
  and the oracle BM3D (a check of how much the result depends on the kernel). The scan's own noise stays in the
  reference (noise is inserted on top of it).
- MR: ``rician:3%`` and ``rician:6%`` (sigma = 3 / 6 % of the 99th percentile) and ``noncentral-chi:3%,8``.
- Ultrasound: ``speckle:0.1``, ``0.2``, ``0.4`` (multiplicative Gamma speckle, relative sigma).

Methods: ``auto`` (no flags), every shipped model (``models --json``), NLM and BM3D with ``--sigma auto``, the
noisy input, and for CT and MR BM3D with the ORACLE noise PSD (in-process, per slice: ``bm3d_denoise(image, sigma,
psd)`` on the percentile-normalized scale the BM3D baseline runs on, the PSD measured from the inserted noise
inside the evaluation region and averaged over the volume's slices). The default and a few models also run in
memory (``Denoiser(name).denoise(volume)`` on the simulated float volume, no file round trip), next to the CLI rows.

Metrics (:mod:`meddenoiselib.evaluation.physical`): CT body RMSE in HU (body = clean > -500 HU), PSNR and SSIM in the
soft-tissue window W400/L40 over the body, the noise left in the body (std of result - clean), the noise std in
the water phantom's central 40 mm disc, and the 10-90 % width of the air-skin edge relative to the clean image's.
MR: PSNR (data range = the clean volume's maximum) and SSIM over the head, background bias (mean of result - clean
outside the dilated head) in units of sigma. Ultrasound: PSNR/SSIM with data range 255 over the image.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from data_split import DATA_ROOT, REAL_NOISE_CT, validation_files  # noqa: E402
from library_fingerprint import made_by_this_library, mark_made_by_this_library  # noqa: E402
from meddenoiselib.evaluation.physical import (  # noqa: E402
    SOFT_TISSUE_WINDOW,
    body_mask,
    edge_levels,
    edge_sampler,
    edge_width_mm,
    head_mask,
    masked_psnr,
    masked_ssim,
    phantom_roi,
    rmse,
    window_psnr,
    window_ssim,
)
from meddenoiselib.evaluation.realistic import noise_sigma_in_units  # noqa: E402
from meddenoiselib.io import Volume, read_volume, write_volume  # noqa: E402
from meddenoiselib.transforms import fit_scaling  # noqa: E402
from meddenoiselib.transforms.estimate import estimate_noise  # noqa: E402
from meddenoiselib.transforms.noise import CTScanner, parse_noise_spec, simulate_volume  # noqa: E402
from quality import cpu_name  # noqa: E402

#: CT scanner settings of the evaluation: (label, kernel, views, electronic noise, target body noise levels in HU)
CT_SETTINGS = (
    ("A", "hamming", 1000, 10.0, (10, 25, 60)),
    ("B", "shepp-logan", 1000, 10.0, (25,)),
)
MR_NOISE = ("rician:3%", "rician:6%", "noncentral-chi:3%,8")
US_NOISE = ("speckle:0.1", "speckle:0.2", "speckle:0.4")
#: MR fixture geometry (brain.tiff has none): nominal 1 mm pixels, 2 mm slices
MR_SPACING = (1.0, 1.0, 2.0)
IN_MEMORY = ("auto", "kpn-small", "kpn-burst3")
#: the default run's share of the held-out CT volumes (contiguous, central) and ultrasound images; --all: everything
CT_SUBSET = {"chest-2mm": ("094", "095", "096", "097", "098"), "head-ge": ("24", "25", "26")}
US_SUBSET = 5
#: ultrasound images are cropped to their central 512x512 region (one sliding window for every network)
US_CROP = 512
#: BM3D with the oracle PSD: CT and MR (speckle is multiplicative; no stationary PSD describes it)
ORACLE_MODALITIES = ("CT", "MR")
ORACLE = "bm3d (oracle PSD)"


# ------------------------------------------------------------------------------------------------ fixtures
def write_fixture_series(
    frames: np.ndarray, folder: Path, modality: str, spacing: tuple[float, float, float], description: str
) -> None:
    """THE BENCHMARK'S TEST FIXTURE: write ``(Z, Y, X)`` unsigned integer frames as a DICOM series.

    MR and ultrasound have no DICOM in the data folder; this writes them as a scanner would hand them over, one
    file per slice with Modality, geometry and deterministic UIDs, so that the CLI reads a DICOM series with a
    Modality tag. The pixel values are the source file's, unchanged (no rescale).
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = {"MR": "1.2.840.10008.5.1.4.1.1.4", "US": "1.2.840.10008.5.1.4.1.1.6.1"}[modality]
    frames = np.asarray(frames)
    if frames.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"fixture frames must be uint8 or uint16, got {frames.dtype}")
    bits = 8 * frames.dtype.itemsize
    study, series, frame_of_reference = (
        generate_uid(entropy_srcs=[description, part]) for part in ("study", "series", "frame")
    )
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames):
        sop_instance = generate_uid(entropy_srcs=[description, str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_instance
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"{k + 1:03d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_reference
        ds.Modality = modality
        ds.PatientName, ds.PatientID = "BENCHMARK^FIXTURE", "meddenoise-benchmark"
        ds.StudyDate = ds.SeriesDate = "20260101"
        ds.SeriesDescription = description
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.ImagePositionPatient = [0.0, 0.0, k * spacing[2]]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.SliceThickness = spacing[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = frame.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
        ds.PixelData = np.ascontiguousarray(frame).tobytes()
        ds.save_as(str(path), enforce_file_format=True)


# ------------------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    """One held-out clean series: its DICOM folder, the volume (physical units), and evaluation masks."""

    name: str
    modality: str  # "CT", "MR", "US"
    folder: Path
    volume: Volume
    extra: dict = field(default_factory=dict)

    @property
    def clean(self) -> np.ndarray:
        return self.volume.array.astype(np.float32)

    @property
    def slices(self) -> int:
        return self.volume.shape[0]


def safe_name(level: str) -> str:
    """A level label as a file name without dots (``--report {name}`` strips what looks like a suffix)."""
    return level.replace(" ", "").replace("%", "pct").replace(":", "-").replace(",", "-").replace(".", "p")


@dataclass
class Item:
    """One noisy series: a case at one noise level (and CT scanner setting)."""

    case: Case
    spec: str  # noise specification, as given to simulate
    level: str  # table label, e.g. "A 25 HU", "rician:3%"
    seed: int
    group: str = "main"  # "main": every method; "kernel" (CT setting B): auto, shipped models, oracle BM3D

    @property
    def name(self) -> str:
        return f"{self.case.modality.lower()}-{self.case.name}__{safe_name(self.level)}"


def ct_cases(work: Path, quick: bool, everything: bool) -> list[Case]:
    cases = []
    for name, files, _ in REAL_NOISE_CT:
        if quick:
            if name != "chest-2mm":
                continue
            files = [f for f in files if f.endswith(("095.dcm", "096.dcm"))]
        elif not everything and name in CT_SUBSET:
            files = [f for f in files if Path(f).stem.endswith(CT_SUBSET[name])]
        folder = work / "clean" / f"ct-{name}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in files:
            link = folder / Path(f).name
            if not link.exists():
                link.symlink_to(DATA_ROOT / f)
        volume = read_volume(folder)
        clean = volume.array.astype(np.float32)
        pixel = float(np.sqrt(volume.spacing[0] * volume.spacing[1]))
        sampler = edge_sampler(clean, pixel)
        body = body_mask(clean)
        extra = {
            "body": body,
            "pixel_mm": pixel,
            "edges": sampler,
            "own_noise": float(estimate_noise(clean, mask=body).sigma),
        }
        if sampler.count:
            profile = sampler.mean_profile(clean)
            extra["edge_levels"] = edge_levels(sampler.t_mm, profile)
            extra["edge_clean_mm"] = edge_width_mm(sampler.t_mm, profile, extra["edge_levels"])
        if name == "water-phantom":
            extra["roi"] = np.stack([phantom_roi(s, pixel) for s in clean])
        cases.append(Case(name, "CT", folder, volume, extra))
    return cases


def mr_cases(work: Path, quick: bool, everything: bool) -> list[Case]:
    source = DATA_ROOT / "mr" / "skimage_brain" / "brain.tiff"
    frames = read_volume(source).array
    frames = frames[4:6] if quick else frames
    folder = work / "clean" / "mr-brain"
    if not folder.exists():
        write_fixture_series(frames.astype(np.uint16), folder, "MR", MR_SPACING, "skimage brain.tiff (fixture)")
    return [mr_case("brain", folder)]


def mr_case(name: str, folder: Path) -> Case:
    """An MR case from its fixture series: the head (evaluation region), the background outside the head dilated
    by 5 pixels (where the bias is measured) and the clean volume's maximum (PSNR's data range)."""
    from scipy import ndimage

    volume = read_volume(folder)
    clean = volume.array.astype(np.float32)
    head = head_mask(clean)
    dilated = np.stack([ndimage.binary_dilation(h, iterations=5) for h in head])
    return Case(name, "MR", folder, volume, {"head": head, "background": ~dilated, "data_range": float(clean.max())})


def us_cases(work: Path, quick: bool, everything: bool) -> list[Case]:
    sizes = {}
    with open(DATA_ROOT / "us" / "hc18_train" / "pixel_size_and_HC.csv") as handle:
        for row in csv.DictReader(handle):
            sizes[row["filename"]] = float(row["pixel size(mm)"])
    files = [p for p in validation_files() if "/us/" in str(p)]
    files = files[:1] if quick else files if everything else files[:US_SUBSET]
    cases = []
    for path in files:
        folder = work / "clean" / f"us-{path.stem}"
        if not folder.exists():
            image = read_volume(path).array  # (1, Y, X) uint8
            y, x = (max(0, (n - US_CROP) // 2) for n in image.shape[1:])
            image = image[:, y : y + US_CROP, x : x + US_CROP]
            pixel = sizes.get(path.name, 0.1)
            write_fixture_series(
                image.astype(np.uint8), folder, "US", (pixel, pixel, 1.0), f"HC18 {path.name} (fixture)"
            )
        cases.append(Case(path.stem, "US", folder, read_volume(folder)))
    return cases


def dose_for_body_noise(case: Case, scanner, target_hu: float) -> float:
    """The dose at which the inserted noise has ``target_hu`` RMS over the body of the whole volume.

    From the library's per-pixel noise variance model (``ct_noise_variance_terms``; quantum term / dose plus
    electronic term / dose²), which matches the projection-domain noise locally. ``ct-lowdose:NHU`` sets the median
    of the quantum term over one slice instead, which leaves out the electronic noise and the streaks, so the body
    noise it gives is well above N at low doses.
    """
    import torch

    from meddenoiselib.transforms.noise import ct_noise_variance_terms

    key = (scanner, float(target_hu))
    cache = case.extra.setdefault("doses", {})
    if key not in cache:
        terms = ct_noise_variance_terms(torch.from_numpy(case.clean), case.extra["pixel_mm"], scanner).numpy()
        body = case.extra["body"]
        quantum = float(terms[:, 0][body].mean())
        electronic = scanner.electronic_noise**2 * float(terms[:, 1][body].mean())
        # quantum·u + electronic·u² = target² with u = 1 / dose
        u = (
            target_hu**2 / quantum
            if electronic <= 0
            else (-quantum + np.sqrt(quantum**2 + 4 * electronic * target_hu**2)) / (2 * electronic)
        )
        cache[key] = float(1.0 / u)
    return cache[key]


def build_items(cases: list[Case], seed: int, quick: bool) -> list[Item]:
    items = []
    for index, case in enumerate(cases):
        base = seed + 1000 * index
        if case.modality == "CT":
            for s, (label, kernel, views, electronic, levels) in enumerate(CT_SETTINGS):
                scanner = CTScanner(views=views, kernel=kernel, electronic_noise=electronic)
                for j, hu in enumerate(levels):
                    if quick and hu != 25:
                        continue
                    dose = dose_for_body_noise(case, scanner, hu)
                    spec = f"ct-lowdose:{dose:.5g},kernel={kernel},views={views},electronic={electronic:g}"
                    items.append(
                        Item(case, spec, f"{label} {hu} HU", base + 100 * s + j, "main" if label == "A" else "kernel")
                    )
        else:
            specs = MR_NOISE if case.modality == "MR" else US_NOISE
            for j, spec in enumerate(specs):
                if quick and j != (0 if case.modality == "MR" else 1):
                    continue
                items.append(Item(case, spec, spec, base + j))
    return items


# ----------------------------------------------------------------------------------------------- simulate
def file_values(noisy_float: Volume, clean: Volume) -> Volume:
    """What ``simulate`` writes without ``--float``: rounded to the input's integer type (the DICOM writer then
    clips to the stored range). Same arithmetic as ``IntensityScaling.invert`` to that dtype."""
    dtype = clean.array.dtype
    values = np.rint(noisy_float.array.astype(np.float64 if dtype.itemsize > 2 else np.float32))
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.clip(values, info.min, info.max)
    return noisy_float.with_array(values.astype(dtype))


def write_noisy_series(noisy: Volume, item: Item, target: Path, description: str, derivation: str) -> None:
    """Write ``noisy`` to ``target`` (replacing it) as the file a user would denoise: ``item``'s reference format,
    values and geometry, a derived series of it."""
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_volume(
        file_values(noisy, item.case.volume),
        target,
        inputs=(item.case.folder,),
        description_suffix=description,
        derivation=derivation,
    )


def simulate_items(items: list[Item], work: Path) -> dict[str, float]:
    """Simulate every item once (float volume kept as .npy for the in-memory path, the file as DICOM)."""
    seconds = {}
    for item in items:
        target, array_file = work / "noisy" / item.group / item.name, work / "float" / f"{item.name}.npy"
        stamp = array_file.with_suffix(".json")
        key = {"spec": item.spec, "seed": item.seed, "shape": list(item.case.volume.shape)}
        if not stamp.exists() or json.loads(stamp.read_text()) != key:  # not simulated, or with other settings
            array_file.unlink(missing_ok=True)
            shutil.rmtree(target, ignore_errors=True)
        if target.exists() and array_file.exists():
            continue
        start = time.perf_counter()
        spec = parse_noise_spec(item.spec)
        if array_file.exists():  # simulated in an earlier, interrupted run
            noisy = item.case.volume.with_array(np.load(array_file))
        else:
            noisy = simulate_volume(item.case.volume, spec, seed=item.seed, float_output=True)
            array_file.parent.mkdir(parents=True, exist_ok=True)
            np.save(array_file, noisy.array.astype(np.float32))
            stamp.write_text(json.dumps(key))
        write_noisy_series(noisy, item, target, f" {spec.kind.value} noise", f"Simulated noise {spec}")
        seconds[item.name] = time.perf_counter() - start
        print(f"  simulated {item.name:45s} {seconds[item.name]:6.1f} s", flush=True)
    return seconds


def check_simulate_cli(item: Item, work: Path, env: dict) -> str:
    """Run ``simulate`` on one item and check it writes exactly the series the benchmark wrote."""
    target = work / "simulate-check" / item.name
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "meddenoiselib",
        "simulate",
        str(item.case.folder),
        str(target),
        "--noise",
        item.spec,
        "--seed",
        str(item.seed),
        "--no-progress",
        "--quiet",
    ]
    subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    same = np.array_equal(read_volume(target).array, read_volume(work / "noisy" / item.group / item.name).array)
    shutil.rmtree(target)
    if not same:
        raise RuntimeError(f"`simulate` wrote different voxels than the benchmark for {item.name}")
    return " ".join(command[1:]).replace(str(work), "WORK")


# ----------------------------------------------------------------------------------------------- the CLI
def cli_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "MedDenoiseLib")] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    return env


def shipped_models(env: dict) -> list[str]:
    """Shipped models as the CLI lists them (``models --json``)."""
    out = subprocess.run(
        [sys.executable, "-m", "meddenoiselib", "models", "--json"], check=True, env=env, capture_output=True, text=True
    ).stdout
    return [e["name"] for e in json.loads(out) if e["kind"] == "network" and e["weights"]]


def newer(output: Path, source: Path) -> bool:
    """``output`` exists and was written after ``source`` (reuse in a --work folder)."""
    return output.exists() and source.exists() and output.stat().st_mtime >= source.stat().st_mtime


def run_cli(method: str, group: str, items: list[Item], work: Path, env: dict) -> dict:
    """``denoise NOISY OUT [--model M]`` over every noisy series of a group at once; per-series reports; wall time."""
    out, reports = work / "out" / group / method, work / "reports" / group / method
    done = made_by_this_library(out) and all(
        newer(reports / f"{i.name}.json", work / "noisy" / group / i.name) for i in items
    )
    summary_file = work / "reports" / group / f"{method}.wall.json"
    if done and summary_file.exists():
        return json.loads(summary_file.read_text())
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(reports, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    reports.mkdir(parents=True)
    command = [sys.executable, "-m", "meddenoiselib", "denoise", str(work / "noisy" / group), str(out)]
    command += [] if method == "auto" else ["--model", method]
    command += ["--report", str(reports / "{name}.json"), "--no-progress"]
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (work / "reports" / group / f"{method}.log").write_text(result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    summary = {"wall_s": wall, "series": len(items), "command": " ".join(command[1:]).replace(str(work), "WORK")}
    summary_file.write_text(json.dumps(summary))
    mark_made_by_this_library(out)
    print(f"  CLI {method:22s} {wall:7.1f} s for {len(items)} series ({group})", flush=True)
    return summary


# --------------------------------------------------------------------------------------------- baselines
def oracle_psd(noise: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``E|FFT2(noise)|²`` on the slice grid (bm3d's convention), from the noise inside ``mask`` averaged over
    slices and scaled to the noise power inside the mask; lightly smoothed across frequencies."""
    from scipy import ndimage

    power, inside = np.zeros(noise.shape[-2:]), 0.0
    for n, m in zip(noise, mask, strict=True):
        if m.any():
            power += np.abs(np.fft.fft2(np.where(m, n, 0.0))) ** 2
            inside += float(m.mean())
    power /= max(inside, 1e-12)
    return ndimage.gaussian_filter(power, 1.0, mode="wrap")


def bm3d_oracle(noisy_file: np.ndarray, clean: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """BM3D per slice with the noise PSD measured from the inserted noise, on the baseline's normalized scale
    (percentile scaling of the noisy volume, as ``Denoiser`` does for baselines), clipped to the input's range."""
    from meddenoiselib.baselines.bm3d import bm3d_denoise

    scaling = fit_scaling(noisy_file, "percentile")
    normalized = scaling.apply(noisy_file)
    noise = (noisy_file.astype(np.float64) - clean) / scaling.scale
    psd = oracle_psd(noise, mask)
    sigma = float(np.sqrt(psd.mean() / psd.size))
    out = np.stack([bm3d_denoise(s, sigma, psd=psd) for s in normalized])
    np.clip(out, normalized.min(), normalized.max(), out=out)
    return scaling.invert(out, dtype="float32")


# ----------------------------------------------------------------------------------------------- metrics
def metrics(item: Item, result: np.ndarray) -> dict:
    case, clean = item.case, item.case.clean
    result = np.asarray(result, dtype=np.float32)
    if result.shape != clean.shape:
        raise ValueError(f"{item.name}: result shape {result.shape} != clean {clean.shape}")
    x = case.extra
    if case.modality == "CT":
        body = x["body"]
        row = {
            "rmse": rmse(clean, result, body),
            "psnr": window_psnr(clean, result, body),
            "ssim": window_ssim(clean, result, body),
            "noise_std": float(np.std((result - clean)[body], dtype=np.float64)),
        }
        if "roi" in x:
            row["roi_std"] = float(
                np.mean([np.std(r[m], dtype=np.float64) for r, m in zip(result, x["roi"], strict=True)])
            )
        if x["edges"].count:
            profile = x["edges"].mean_profile(result)
            row["edge_mm"] = edge_width_mm(x["edges"].t_mm, profile, x["edge_levels"])
            row["edge_ratio"] = row["edge_mm"] / x["edge_clean_mm"]
        return row
    if case.modality == "MR":
        head = x["head"]
        return {
            "rmse": rmse(clean, result, head),
            "psnr": masked_psnr(clean, result, head, x["data_range"]),
            "ssim": masked_ssim(clean, result, head, x["data_range"]),
            "bias_sigma": float(np.mean((result - clean)[x["background"]], dtype=np.float64)) / item_sigma(item),
        }
    return {
        "rmse": rmse(clean, result),
        "psnr": masked_psnr(clean, result, None, 255.0),
        "ssim": masked_ssim(clean, result, None, 255.0),
    }


def item_sigma(item: Item) -> float:
    """MR: the noise sigma in the image's units, as ``simulate`` resolves ``rician:3%`` (percentile scaling)."""
    return sigma_in_units(item.case.volume.array, item.spec)


def sigma_in_units(clean: np.ndarray, spec: str) -> float:
    """The sigma of noise ``spec`` (``rician:3%``...) in ``clean``'s units, as ``simulate`` resolves it."""
    return noise_sigma_in_units(clean, parse_noise_spec(spec))


def display(image: np.ndarray, modality: str, low: float, high: float) -> np.ndarray:
    """A 2D slice mapped to [0, 1] for the figure: CT in the soft-tissue window, its central 256x256 region."""
    image = np.asarray(image, dtype=np.float32)
    if modality == "CT":
        low, high = SOFT_TISSUE_WINDOW
        y, x = (max(0, (n - 256) // 2) for n in image.shape)
        image = image[y : y + 256, x : x + 256]
    return np.clip((image - low) / (high - low), 0, 1)


# ------------------------------------------------------------------------------------------------- report
def fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}"


def table(header: list[str], body: list[list[str]]) -> list[str]:
    return (
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        + ["| " + " | ".join(r) + " |" for r in body]
        + [""]
    )


def mean_of(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
    return float(np.mean(values)) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 CT slices at 25 HU (setting A), 2 MR slices at rician:3%%, 1 US image at speckle:0.2 (development)",
    )
    parser.add_argument("--models", help="comma-separated shipped models to run (default: every shipped model)")
    parser.add_argument("--baselines", default="nlm,bm3d", help="CLI baselines with --sigma auto (nlm,bm3d)")
    parser.add_argument("--no-oracle", action="store_true", help="skip BM3D with the oracle PSD")
    parser.add_argument(
        "--in-memory",
        default=",".join(IN_MEMORY),
        help=f"methods also run in memory with Denoiser(...).denoise(volume) ({','.join(IN_MEMORY)})",
    )
    parser.add_argument("--output", help="folder for the .md/.csv/.png (default docs/; --quick: a temp folder)")
    parser.add_argument(
        "--work",
        help="keep the fixtures, noisy series and outputs here and reuse them on reruns (CLI outputs only while the "
        "library's code and weights are unchanged; default: a temporary folder, removed at the end)",
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="every held-out CT slice and ultrasound image (default: "
        "chest slices 094-098, head 24-26 and 5 ultrasound images, to fit a few hours on 2 cores)",
    )
    parser.add_argument("--no-kernel-check", action="store_true", help="skip CT setting B (the second kernel)")
    parser.add_argument(
        "--modalities",
        default="CT,MR,US",
        help="comma-separated modalities whose series to run (CT,MR,US); a partial run writes a partial page, whose "
        "rows are then spliced into the full one",
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--rows-from",
        help="an earlier run's CSV: the rows of every method this run does not run come from it (refused unless its "
        "noisy series score as this run's within 0.02 dB, i.e. the same series, seed and levels)",
    )
    args = parser.parse_args()
    if not DATA_ROOT.is_dir():
        parser.error(f"benchmark data not found at {DATA_ROOT} (set MEDDENOISE_DATA)")
    started, load_start = time.perf_counter(), os.getloadavg()
    output = (
        Path(args.output)
        if args.output
        else (Path(tempfile.gettempdir()) / "real_noise_quick" if args.quick else ROOT / "docs")
    )
    output.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="real_noise_"))
    work.mkdir(parents=True, exist_ok=True)
    env = cli_env()
    try:
        return run(args, work, output, env, started, load_start)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path, output: Path, env: dict, started: float, load_start) -> int:
    import torch

    from meddenoiselib.baselines import bm3d_available
    from meddenoiselib.inference import Denoiser

    shipped = shipped_models(env)
    models = shipped if not args.models else [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in shipped]
    if unknown:
        raise SystemExit(f"--models: not shipped: {', '.join(unknown)} (shipped: {', '.join(shipped)})")
    baselines = [b for b in args.baselines.split(",") if b]
    cli_methods = ["auto"] + models + baselines
    in_memory = [m for m in args.in_memory.split(",") if m in cli_methods]  # compared with their CLI rows
    oracle = not args.no_oracle and bm3d_available()

    print("preparing the held-out series", flush=True)
    everything = args.all
    wanted = {m.strip().upper() for m in args.modalities.split(",") if m.strip()}
    if not wanted or wanted - {"CT", "MR", "US"}:
        raise SystemExit(f"--modalities {args.modalities}: give some of CT, MR, US")
    makers = {"CT": ct_cases, "MR": mr_cases, "US": us_cases}
    cases = [
        case for modality, make in makers.items() if modality in wanted for case in make(work, args.quick, everything)
    ]
    items = build_items(cases, args.seed, args.quick)
    if args.no_kernel_check:
        items = [i for i in items if i.group != "kernel"]
    print(f"{len(cases)} clean series, {len(items)} noisy series; CLI methods: {', '.join(cli_methods)}", flush=True)
    sim_start = time.perf_counter()
    simulate_items(items, work)
    sim_seconds = time.perf_counter() - sim_start
    # `simulate` must write exactly what the benchmark wrote: checked on the first MR series (cheap), and on the
    # CT series too in --quick runs
    checks = [i for i in items if i.case.modality == "MR"][:1] + (
        [i for i in items if i.case.modality == "CT"][:1] if args.quick else []
    )
    simulate_check = [check_simulate_cli(i, work, env) for i in checks]

    groups = {g: [i for i in items if i.group == g] for g in dict.fromkeys(i.group for i in items)}
    # CT setting B (the second kernel) is a generalization check of the networks: no CLI baselines there
    methods_of = {"main": cli_methods, "kernel": ["auto"] + models}
    walls = {(m, g): run_cli(m, g, group_items, work, env) for g, group_items in groups.items() for m in methods_of[g]}

    rows: list[dict] = []
    figure_items = {
        next((i.name for i in items if i.case.name == "chest-2mm" and i.level.endswith(" 25 HU")), None),
        next((i.name for i in items if i.spec == "rician:3%"), None),
        next((i.name for i in items if i.spec == "speckle:0.2"), None),
    }
    panels: dict[str, dict[str, np.ndarray]] = {}
    memory_denoisers = {m: Denoiser(m, device="cpu") for m in in_memory}
    disagreement: list[dict] = []
    for item in items:
        case = item.case
        clean = case.clean
        noisy_volume = read_volume(work / "noisy" / item.group / item.name)
        noisy = noisy_volume.array.astype(np.float32)
        noisy_float = np.load(work / "float" / f"{item.name}.npy")
        base = {
            "case": case.name,
            "modality": case.modality,
            "level": item.level,
            "noise": item.spec,
            "seed": item.seed,
            "slices": case.slices,
            "own_noise": case.extra.get("own_noise"),
        }
        outputs: dict[str, np.ndarray] = {"noisy": noisy}
        timing: dict[str, tuple[str, float | None, str]] = {"noisy": ("", None, "")}
        for method in methods_of[item.group]:
            report = json.loads((work / "reports" / item.group / method / f"{item.name}.json").read_text())
            outputs[method] = read_volume(work / "out" / item.group / method / item.name).array.astype(np.float32)
            timing[method] = ("cli", report.get("seconds"), report.get("method", method))
        if oracle and case.modality in ORACLE_MODALITIES:
            cache = work / "oracle" / f"{item.name}.npy"
            if newer(cache.with_suffix(".json"), work / "noisy" / item.group / item.name):
                outputs[ORACLE], seconds = np.load(cache), None
                seconds = json.loads(cache.with_suffix(".json").read_text())["seconds"]
            else:
                mask = case.extra["body"] if case.modality == "CT" else case.extra["head"]
                start = time.perf_counter()
                outputs[ORACLE] = bm3d_oracle(noisy, clean, mask)
                seconds = time.perf_counter() - start
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, outputs[ORACLE])
                cache.with_suffix(".json").write_text(json.dumps({"seconds": seconds}))
            timing[ORACLE] = ("in-process", seconds, "bm3d")
        float_volume = case.volume.with_array(noisy_float)
        for method, denoiser in memory_denoisers.items():
            start = time.perf_counter()
            result = denoiser.denoise(float_volume).array.astype(np.float32)
            seconds = time.perf_counter() - start
            key = f"{method} (in-memory)"
            outputs[key] = result
            report = denoiser.last_report
            timing[key] = ("in-memory", seconds, report.method if report else method)
            disagreement.append(
                {
                    **base,
                    "method": method,
                    "mean_abs_diff": float(np.mean(np.abs(result - outputs[method]))),
                    "input_changed": float(np.mean(np.abs(noisy_float - noisy) > 0.5 + 1e-3)),
                    "float_min": float(noisy_float.min()),
                    "float_max": float(noisy_float.max()),
                    "file_min": float(noisy.min()),
                    "file_max": float(noisy.max()),
                }
            )
        for method, result in outputs.items():
            path, seconds, used = timing[method]
            row = {**base, "method": method, "path": path, "model_used": used, "seconds": seconds}
            row.update(metrics(item, result))
            rows.append(row)
        line = " ".join(f"{r['method'].split(' ')[0][:10]}={r['psnr']:.2f}" for r in rows[-len(outputs) :])
        print(f"  {item.name:45s} {line}", flush=True)
        if item.name in figure_items:
            k = clean.shape[0] // 2
            low, high = float(np.percentile(clean, 0.5)), float(np.percentile(clean, 99.5))
            panels[item.name] = {"clean": display(clean[k], case.modality, low, high)}
            panels[item.name].update({m: display(o[k], case.modality, low, high) for m, o in outputs.items()})

    if args.rows_from:
        rows = merge_earlier_rows(Path(args.rows_from), rows)
    write_csv(rows, output / "benchmark_real_noise.csv")
    figure = output / "benchmark_real_noise.png"
    write_figure(panels, rows, figure)
    machine = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "wall_s": time.perf_counter() - started,
        "simulate_s": sim_seconds,
    }
    text = markdown(args, rows, disagreement, walls, machine, items, cases, simulate_check)
    target = output / "benchmarks_real_noise.md"
    target.write_text(text)
    print(f"wrote {target}, {output / 'benchmark_real_noise.csv'}, {figure}")
    return 0


class EarlierRunMismatch(SystemExit):
    """``--rows-from`` names a CSV whose noisy series are not this run's."""


#: how far (dB) a noisy series' PSNR may be from the earlier run's and still count as the same series
NOISY_PSNR_TOLERANCE_DB = 0.02

#: the CSV's text columns; every other column is a number (empty: none)
TEXT_COLUMNS = ("modality", "case", "level", "noise", "method", "path", "model_used")


def merge_earlier_rows(path: Path, rows: list[dict]) -> list[dict]:
    """``rows`` with the rows of every method they lack taken from an earlier run's CSV, for the series and levels
    of ``rows``, each series' methods in the earlier run's order (this run's new methods after them). The earlier
    in-memory rows of a method this run ran through the CLI are dropped (stale with it).

    Sound only on the same noisy series: each ``noisy`` row of ``rows`` must have an earlier twin with the same noise
    settings whose PSNR is within :data:`NOISY_PSNR_TOLERANCE_DB` (the same seed simulated on another CPU: the
    projection-domain CT simulation's float sums differ in the last bits, and Poisson counts near a rounding edge
    follow them; 0.006 dB measured between an AVX2 and an AVX-512 machine); otherwise :class:`EarlierRunMismatch`,
    before anything is written. A series that is near but not equal is named on stderr. The reused rows take the
    series' fields the CSV lacks (the reference's own noise) from this run's noisy row.
    """
    with open(path, newline="") as handle:
        earlier = list(csv.DictReader(handle))
    if not earlier or "method" not in earlier[0]:
        raise EarlierRunMismatch(f"--rows-from {path}: not a CSV of this benchmark (no 'method' column)")

    def key(r: dict) -> tuple:
        return r["modality"], r["case"], r["level"]

    noisy_now = {key(r): r for r in rows if r["method"] == "noisy"}
    noisy_before = {key(r): r for r in earlier if r["method"] == "noisy"}
    for k, now in noisy_now.items():
        before = noisy_before.get(k)
        same_series = (
            before is not None
            and csv_cell(now.get("noise")) == before["noise"]
            and abs(float(now["psnr"]) - float(before["psnr"])) <= NOISY_PSNR_TOLERANCE_DB
        )
        if not same_series:
            found = "missing" if before is None else f"PSNR {before['psnr']} dB, RMSE {before['rmse']}"
            raise EarlierRunMismatch(
                f"--rows-from {path}: its noisy {' / '.join(k)} is {found}, this run's is PSNR "
                f"{csv_cell(now['psnr'])} dB, RMSE {csv_cell(now['rmse'])}: not the same noisy series (other data, "
                "seed, levels or noise settings)"
            )
        if any(csv_cell(now.get(c)) != before[c] for c in ("rmse", "psnr")):
            print(
                f"--rows-from {path}: noisy {' / '.join(k)} is PSNR {before['psnr']} dB there, "
                f"{csv_cell(now['psnr'])} dB here (within {NOISY_PSNR_TOLERANCE_DB} dB: the same seed on another "
                "CPU); its reused rows were measured on the earlier noisy series",
                file=sys.stderr,
            )
    methods_now = {r["method"] for r in rows}
    # a method rerun through the CLI is a changed method: its earlier in-memory rows are stale too
    methods_now |= {f"{m} (in-memory)" for m in set(methods_now)}
    merged: list[dict] = []
    for k, noisy in noisy_now.items():
        mine = {r["method"]: r for r in rows if key(r) == k}
        for old in (r for r in earlier if key(r) == k):
            if old["method"] in methods_now:
                if old["method"] in mine:
                    merged.append(mine.pop(old["method"]))
                continue
            reused = {c: (v if c in TEXT_COLUMNS else (float(v) if v != "" else None)) for c, v in old.items()}
            reused["seed"], reused["slices"] = noisy["seed"], noisy["slices"]
            reused["own_noise"] = noisy.get("own_noise")
            merged.append(reused)
        merged += mine.values()
    return merged


COLUMNS = [
    "modality",
    "case",
    "level",
    "noise",
    "seed",
    "slices",
    "method",
    "path",
    "model_used",
    "rmse",
    "psnr",
    "ssim",
    "noise_std",
    "roi_std",
    "edge_mm",
    "edge_ratio",
    "bias_sigma",
    "seconds",
]


def csv_cell(value) -> str:
    """A value as the CSV holds it: floats to 5 significant digits, None empty."""
    return "" if value is None else f"{value:.5g}" if isinstance(value, float) else str(value)


def write_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for r in rows:
            values = [r.get(c) for c in COLUMNS]
            writer.writerow([csv_cell(v) for v in values])


def write_figure(panels: dict, rows: list[dict], path: Path) -> None:
    from meddenoiselib.evaluation import comparison_figure

    entries = []
    for name, images in panels.items():
        sel = [
            r
            for r in rows
            if f"{r['modality'].lower()}-{r['case']}" == name.split("__")[0] and name.endswith(safe_name(r["level"]))
        ]
        score = {r["method"]: r["psnr"] for r in sel}
        networks = [m for m in score if m not in ("noisy", "auto", "nlm", "bm3d", ORACLE) and "(" not in m]
        best = max(networks, key=lambda m: score[m]) if networks else None
        shown = ["noisy", "auto", "bm3d", ORACLE if ORACLE in images else "nlm"] + ([best] if best else [])
        for method in shown:
            if method in images:
                entries.append((f"{name.split('__')[0]} {method}: {score[method]:.1f} dB", images[method]))
        entries.append((f"{name.split('__')[0]} clean", images["clean"]))
    if not entries:
        return
    columns = max(1, len(entries) // max(1, len(panels)))
    comparison_figure(
        entries,
        path,
        columns=columns,
        title="Held-out scans with simulated scanner noise (CT in W400/L40); PSNR as in the tables",
    )


def select(rows: list[dict], **where) -> list[dict]:
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def gain(rows: list[dict], method: str, **where) -> float | None:
    """Mean over series of (PSNR of ``method`` - PSNR of the noisy input)."""
    noisy = {(r["case"], r["level"]): r["psnr"] for r in select(rows, method="noisy", **where)}
    values = [r["psnr"] - noisy[(r["case"], r["level"])] for r in select(rows, method=method, **where)]
    return float(np.mean(values)) if values else None


def methods_in(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["method"] for r in rows))


def used_models(rows: list[dict], method: str) -> str:
    used = sorted({r["model_used"] for r in rows if r["method"] == method and r["model_used"]})
    return ", ".join(used) if method.startswith("auto") or method == ORACLE else ""


def per_slice(rows: list[dict], method: str) -> float | None:
    sel = [r for r in rows if r["method"] == method and r.get("seconds") is not None]
    slices = sum(r["slices"] for r in sel)
    return sum(r["seconds"] for r in sel) / slices if slices else None


def level_table(rows: list[dict], modality: str) -> list[str]:
    """One table per level: mean over the series of each metric, per method."""
    out = []
    for level in dict.fromkeys(r["level"] for r in rows if r["modality"] == modality):
        sel = select(rows, modality=modality, level=level)
        cases = list(dict.fromkeys(r["case"] for r in sel))
        noisy = select(sel, method="noisy")
        if modality == "CT":
            title = (
                f"### CT, setting {level.split()[0]}, target {' '.join(level.split()[1:])}: measured noise in the "
                f"body {fmt(mean_of(noisy, 'noise_std'), 1)} HU (mean over {len(cases)} series)"
            )
            header = [
                "method",
                "model used",
                "body RMSE (HU)",
                "PSNR W400 (dB)",
                "gain (dB)",
                "SSIM W400",
                "noise left in body (HU)",
                "edge width / clean",
                "water ROI std (HU)",
                "s / slice",
            ]
        elif modality == "MR":
            title = f"### MR `{level}` ({len(cases)} volume, {sum(r['slices'] for r in noisy)} slices)"
            header = [
                "method",
                "model used",
                "PSNR head (dB)",
                "gain (dB)",
                "SSIM head",
                "RMSE head",
                "background bias (σ)",
                "s / slice",
            ]
        else:
            title = f"### Ultrasound `{level}` ({len(cases)} images)"
            header = ["method", "model used", "PSNR (dB)", "gain (dB)", "SSIM", "s / image"]
        body = []
        for method in methods_in(sel):
            m = select(sel, method=method)
            g = gain(sel, method)
            cells = [method, used_models(m, method)]
            if modality == "CT":
                cells += [
                    fmt(mean_of(m, "rmse"), 1),
                    fmt(mean_of(m, "psnr")),
                    fmt(g),
                    fmt(mean_of(m, "ssim"), 4),
                    fmt(mean_of(m, "noise_std"), 1),
                    fmt(mean_of(m, "edge_ratio"), 3),
                    fmt(mean_of(m, "roi_std"), 1),
                    fmt(per_slice(m, method)),
                ]
            elif modality == "MR":
                cells += [
                    fmt(mean_of(m, "psnr")),
                    fmt(g),
                    fmt(mean_of(m, "ssim"), 4),
                    fmt(mean_of(m, "rmse"), 2),
                    fmt(mean_of(m, "bias_sigma"), 3),
                    fmt(per_slice(m, method)),
                ]
            else:
                cells += [fmt(mean_of(m, "psnr")), fmt(g), fmt(mean_of(m, "ssim"), 4), fmt(per_slice(m, method))]
            body.append(cells)
        out += [title, ""] + table(header, body)
    return out


def per_series_table(rows: list[dict], level: str) -> list[str]:
    """CT at one level, per series: the noisy input's PSNR and the gains of the default, the best shipped model
    (over all CT series of the level), the baselines and the oracle BM3D."""
    sel = select(rows, modality="CT", level=level)
    if not sel:
        return []
    networks = [m for m in methods_in(sel) if m not in ("noisy", "auto", "nlm", "bm3d", ORACLE) and "(" not in m]
    best = max(networks, key=lambda m: gain(sel, m)) if networks else None
    shown = ["auto"] + ([best] if best else []) + [m for m in ("nlm", "bm3d", ORACLE) if select(sel, method=m)]
    body = []
    for case in dict.fromkeys(r["case"] for r in sel):
        c = select(sel, case=case)
        noisy = select(c, method="noisy")[0]
        body.append(
            [
                case,
                fmt(noisy.get("own_noise"), 1),
                fmt(noisy["noise_std"], 1),
                fmt(ceiling_gain(noisy.get("own_noise"), noisy["noise_std"]), 1),
                fmt(noisy["psnr"]),
            ]
            + [fmt(gain(c, m)) for m in shown]
            + [fmt(mean_of(select(c, method="auto"), "edge_ratio"), 3)]
        )
    header = (
        ["series", "reference's own noise (HU)", "inserted noise (HU)", "ceiling (dB)", "noisy PSNR"]
        + [f"gain {m}" for m in shown]
        + ["edge ratio auto"]
    )
    return [f"### CT {level}, per series", ""] + table(header, body)


def ceiling_gain(own: float | None, inserted: float | None) -> float | None:
    """The PSNR gain of the best possible estimate when the reference carries noise of its own.

    The reference is a real scan with noise ``own`` (HU); the inserted noise ``inserted`` has the same kind of
    spectrum, so no denoiser can tell them apart: the least-squares estimate of ``reference`` from ``reference +
    inserted`` leaves an error of ``own * inserted / sqrt(own² + inserted²)``, a gain of
    ``10 log10(1 + inserted² / own²)`` dB over the noisy input (Gaussian noise of equal spectra: an approximate bound).
    """
    if not own or not inserted:
        return None
    return float(10 * np.log10(1 + (inserted / own) ** 2))


#: the acceptance is also graded on the series whose own noise is below this share of the inserted noise
#: (their ceiling is above 10 log10(1 + 1/0.4²) = 8.6 dB, so the target gains are reachable)
LOW_NOISE_REFERENCE = 0.4


def low_noise_cases(rows: list[dict], level: str) -> list[str]:
    """CT series at ``level`` whose reference is quiet enough for the acceptance targets to be reachable."""
    return [
        r["case"]
        for r in select(rows, modality="CT", level=level, method="noisy")
        if r.get("own_noise") is not None and r["own_noise"] < LOW_NOISE_REFERENCE * r["noise_std"]
    ]


def room_above_oracle(rows: list[dict], level: str) -> float | None:
    """Mean over the CT series at ``level`` in ``rows`` of (ceiling gain - the gain of BM3D with the oracle PSD), dB:
    how far above that BM3D any method can get by the ceiling estimate (:func:`ceiling_gain`); None without the
    references' own noise."""
    noisy = {r["case"]: r for r in select(rows, modality="CT", level=level, method="noisy")}
    room = []
    for r in select(rows, modality="CT", level=level, method=ORACLE):
        reference = noisy.get(r["case"])
        ceiling = None if reference is None else ceiling_gain(reference.get("own_noise"), reference["noise_std"])
        if ceiling is not None:
            room.append(ceiling - (r["psnr"] - reference["psnr"]))
    return float(np.mean(room)) if room else None


def summary_table(rows: list[dict]) -> list[str]:
    columns = [(r["modality"], r["level"]) for r in rows if r["method"] == "noisy"]
    columns = list(dict.fromkeys(columns))
    header = ["method"] + [f"{mod} {lvl}" for mod, lvl in columns]
    body = []
    for method in methods_in(rows):
        if method == "noisy":
            cells = [
                fmt(mean_of(select(rows, method="noisy", modality=mod, level=lvl), "psnr")) for mod, lvl in columns
            ]
        else:
            cells = [fmt(gain(rows, method, modality=mod, level=lvl)) for mod, lvl in columns]
        body.append([method] + cells)
    return table(header, body)


def acceptance(rows: list[dict]) -> list[str]:
    """Issue 13's acceptance numbers for the default (``auto``, CLI, no flags)."""
    body = []

    def add(criterion: str, target: str, value: float | None, ok: bool | None, unit: str = "") -> None:
        verdict = "–" if ok is None else ("pass" if ok else "**fail**")
        body.append(
            [
                criterion,
                target,
                "–" if value is None else f"{value:+.2f}{unit}" if unit == " dB" else f"{value:.3f}{unit}",
                verdict,
            ]
        )

    for setting in ("A", "B"):
        for hu, need in ((25, 7.0), (60, 10.0)):
            level = f"{setting} {hu} HU"
            if not select(rows, modality="CT", level=level):
                continue
            quiet = low_noise_cases(rows, level)
            subsets = [("all series", rows)]
            if quiet:
                subsets.append(
                    (
                        f"quiet references: {', '.join(quiet)}",
                        [r for r in rows if r["case"] in quiet or r["modality"] != "CT"],
                    )
                )
            for label, sub in subsets:
                g = gain(sub, "auto", modality="CT", level=level)
                add(
                    f"CT ~{hu} HU (setting {setting}, {label}): PSNR gain in W400",
                    f">= +{need:g} dB",
                    g,
                    None if g is None else g >= need,
                    " dB",
                )
                auto = mean_of(select(sub, modality="CT", level=level, method="auto"), "psnr")
                oracle = mean_of(select(sub, modality="CT", level=level, method=ORACLE), "psnr")
                if auto is not None and oracle is not None:
                    add(
                        f"CT ~{hu} HU (setting {setting}, {label}): above BM3D with the oracle PSD",
                        ">= +2 dB",
                        auto - oracle,
                        auto - oracle >= 2.0,
                        " dB",
                    )
                    # the target's reach: a reference's own noise caps every method's gain (ceiling_gain)
                    room = room_above_oracle(sub, level)
                    if room is not None:
                        add(
                            f"CT ~{hu} HU (setting {setting}, {label}): room between BM3D with the oracle PSD and "
                            "the ceiling the references' own noise sets (mean of ceiling - its gain; approximate)",
                            "–",
                            room,
                            None,
                            " dB",
                        )
    ratios = [
        (r["level"], r["case"], r["edge_ratio"])
        for r in select(rows, modality="CT", method="auto")
        if r.get("edge_ratio") is not None and np.isfinite(r["edge_ratio"])
    ]
    if ratios:
        levels = list(dict.fromkeys(level for level, _, _ in ratios))
        for level in levels:
            values = [v for lv, _, v in ratios if lv == level]
            mean = float(np.mean(values))
            add(
                f"CT {level}: edge width / clean (mean over series; worst {max(values, key=lambda v: abs(v - 1)):.3f})",
                "within 10 %",
                mean,
                abs(mean - 1) <= 0.10,
            )
    mr = select(rows, modality="MR", level="rician:3%")
    if mr:
        g = gain(rows, "auto", modality="MR", level="rician:3%")
        add("MR rician 3 %: PSNR gain over the head", ">= +5 dB", g, None if g is None else g >= 5.0, " dB")
        bias = mean_of(select(mr, method="auto"), "bias_sigma")
        add("MR rician 3 %: background bias / sigma", "<= 0.10", bias, None if bias is None else abs(bias) <= 0.10)
    for level in dict.fromkeys(r["level"] for r in rows if r["modality"] == "US"):
        auto = mean_of(select(rows, modality="US", level=level, method="auto"), "psnr")
        model = mean_of(select(rows, modality="US", level=level, method="kpn-small-speckle-us"), "psnr")
        if auto is not None and model is not None:
            add(
                f"US {level}: above the current speckle model (kpn-small-speckle-us)",
                "> 0 dB",
                auto - model,
                auto - model > 0,
                " dB",
            )
    return table(["criterion (default `auto`, CLI, DICOM in)", "target", "measured", "verdict"], body)


def disagreement_section(rows: list[dict], disagreement: list[dict]) -> list[str]:
    if not disagreement:
        return []
    out = [
        "## CLI (files) vs in-memory (`Denoiser(name).denoise(volume)`)",
        "",
        "Both paths start from the same simulated noise (same seed). The CLI path reads the noisy series as "
        "`simulate` wrote it (rounded to the file's integer type and clipped to its stored range), denoises it, "
        "and writes integers; the in-memory path denoises the simulated float volume and keeps floats. PSNR "
        "columns are means over the series (CT in W400 over the body, MR over the head, US over the image); "
        "|Δ output| is the mean absolute difference of the two outputs in the image's units; "
        '"input changed" is the share of noisy voxels that writing the file moved by more than 0.5.',
        "",
    ]
    header = [
        "method",
        "modality",
        "level",
        "PSNR CLI",
        "PSNR in-memory",
        "CLI - memory (dB)",
        "|Δ output|",
        "input changed",
        "noisy min/max: float",
        "noisy min/max: file",
    ]
    body = []
    for d_method in dict.fromkeys(d["method"] for d in disagreement):
        for modality, level in dict.fromkeys((d["modality"], d["level"]) for d in disagreement):
            ds = [
                d for d in disagreement if d["method"] == d_method and d["modality"] == modality and d["level"] == level
            ]
            cli = mean_of(select(rows, method=d_method, modality=modality, level=level), "psnr")
            mem = mean_of(select(rows, method=f"{d_method} (in-memory)", modality=modality, level=level), "psnr")
            body.append(
                [
                    d_method,
                    modality,
                    level,
                    fmt(cli),
                    fmt(mem),
                    fmt(None if cli is None or mem is None else cli - mem),
                    fmt(float(np.mean([d["mean_abs_diff"] for d in ds])), 3),
                    f"{100 * float(np.mean([d['input_changed'] for d in ds])):.2f} %",
                    f"{min(d['float_min'] for d in ds):.0f} / {max(d['float_max'] for d in ds):.0f}",
                    f"{min(d['file_min'] for d in ds):.0f} / {max(d['file_max'] for d in ds):.0f}",
                ]
            )
    out += table(header, body)
    return out


def timing_table(rows: list[dict], walls: dict) -> list[str]:
    body = []
    for method in methods_in(rows):
        if method == "noisy":
            continue
        sel = [r for r in rows if r["method"] == method]
        runs = [w for (m, _), w in walls.items() if m == method]
        cells = [
            method,
            f"{sum(w['wall_s'] for w in runs):.0f} ({sum(w['series'] for w in runs)} series)" if runs else "–",
        ]
        for modality in ("CT", "MR", "US"):
            cells.append(fmt(per_slice([r for r in sel if r["modality"] == modality], method)))
        body.append(cells)
    return table(["method", "CLI wall (s)", "CT s / slice", "MR s / slice", "US s / image"], body)


def findings(rows: list[dict], disagreement: list[dict]) -> list[str]:
    """Sentences computed from the numbers (no number here is typed in by hand)."""
    out = []
    ct_levels = list(dict.fromkeys(r["level"] for r in rows if r["modality"] == "CT"))
    networks = [
        m
        for m in methods_in(rows)
        if m not in ("noisy", "auto", "nlm", "bm3d", "median", "diffusion", ORACLE) and "(" not in m
    ]
    for level in ct_levels:
        sel = select(rows, modality="CT", level=level)
        noise = mean_of(select(sel, method="noisy"), "noise_std")
        parts = [
            f"- **CT {level}** (measured {fmt(noise, 1)} HU in the body): the default (`auto` -> "
            f"{used_models(select(sel, method='auto'), 'auto')}) gains {fmt(gain(sel, 'auto'))} dB in W400"
        ]
        if networks:
            best = max(networks, key=lambda m: gain(sel, m) if gain(sel, m) is not None else -1e9)
            parts.append(f"the best shipped model, `{best}`, {fmt(gain(sel, best))} dB")
        for method, label in (
            ("bm3d", "BM3D with the estimated PSD"),
            (ORACLE, "BM3D with the oracle PSD"),
            ("nlm", "NLM"),
        ):
            if select(sel, method=method):
                parts.append(f"{label} {fmt(gain(sel, method))} dB")
        ratio = mean_of(select(sel, method="auto"), "edge_ratio")
        out.append(", ".join(parts) + f"; the default's air-skin edge is {fmt(ratio, 3)}x the clean width.")
    for hu in (25,):
        a, b = f"A {hu} HU", f"B {hu} HU"
        if select(rows, level=a) and select(rows, level=b):
            out.append(
                f"- **Kernel** at ~{hu} HU: the default gains {fmt(gain(rows, 'auto', level=a))} dB with the "
                f"unseen hamming kernel (A) and {fmt(gain(rows, 'auto', level=b))} dB with shepp-logan (B); "
                f"BM3D with the oracle PSD {fmt(gain(rows, ORACLE, level=a))} / "
                f"{fmt(gain(rows, ORACLE, level=b))} dB."
            )
    blurred = sorted(
        {
            r["method"]
            for r in rows
            if r["modality"] == "CT"
            and r.get("edge_ratio") is not None
            and np.isfinite(r["edge_ratio"])
            and r["edge_ratio"] > 1.10
        }
    )
    if any(r.get("edge_ratio") is not None for r in rows):
        out.append(
            "- **Resolution**: methods whose air-skin edge is more than 10 % wider than the clean one on at "
            f"least one CT series and level: {', '.join(f'`{m}`' for m in blurred) or 'none'}."
        )
    for level in dict.fromkeys(r["level"] for r in rows if r["modality"] == "MR"):
        sel = select(rows, modality="MR", level=level)
        text = (
            f"- **MR `{level}`**: the default (`auto` -> {used_models(select(sel, method='auto'), 'auto')}) "
            f"gains {fmt(gain(sel, 'auto'))} dB over the head with a background bias of "
            f"{fmt(mean_of(select(sel, method='auto'), 'bias_sigma'), 3)} σ (noisy input "
            f"{fmt(mean_of(select(sel, method='noisy'), 'bias_sigma'), 3)} σ)"
        )
        if select(sel, method="kpn-small-rician-mr"):
            text += (
                f"; `kpn-small-rician-mr` {fmt(gain(sel, 'kpn-small-rician-mr'))} dB, bias "
                f"{fmt(mean_of(select(sel, method='kpn-small-rician-mr'), 'bias_sigma'), 3)} σ"
            )
        if select(sel, method=ORACLE):
            text += f"; BM3D with the oracle PSD {fmt(gain(sel, ORACLE))} dB"
        out.append(text + ".")
    for level in dict.fromkeys(r["level"] for r in rows if r["modality"] == "US"):
        sel = select(rows, modality="US", level=level)
        text = (
            f"- **US `{level}`**: the default (`auto` -> {used_models(select(sel, method='auto'), 'auto')}) "
            f"gains {fmt(gain(sel, 'auto'))} dB"
        )
        for method in ("kpn-small-speckle-us", "kpn-small", "bm3d"):
            if select(sel, method=method):
                text += f", `{method}` {fmt(gain(sel, method))} dB"
        out.append(text + ".")
    if disagreement:
        worst = []
        for d_method in dict.fromkeys(d["method"] for d in disagreement):
            for modality, level in dict.fromkeys((d["modality"], d["level"]) for d in disagreement):
                cli = mean_of(select(rows, method=d_method, modality=modality, level=level), "psnr")
                mem = mean_of(select(rows, method=f"{d_method} (in-memory)", modality=modality, level=level), "psnr")
                if cli is not None and mem is not None:
                    worst.append((abs(cli - mem), cli - mem, d_method, modality, level))
        if worst:
            _, delta, d_method, modality, level = max(worst)
            out.append(
                f"- **CLI vs in-memory**: the largest difference is {delta:+.2f} dB (`{d_method}`, {modality} "
                f"{level}); see the section above for where the file round trip changes the input."
            )
    return out


def markdown(args, rows, disagreement, walls, machine, items, cases, simulate_check) -> str:
    date = time.strftime("%Y-%m-%d")
    in_memory = ", ".join(f"`{m}`" for m in args.in_memory.split(",") if m)
    empty = '""'
    command = (
        "python benchmarks/real_noise.py"
        + (" --quick" if args.quick else "")
        + (f" --models {args.models}" if args.models else "")
        # a partial run names everything that decided which rows are new
        + (
            f" --baselines {args.baselines or empty} {'--no-oracle ' if args.no_oracle else ''}"
            f"--in-memory {args.in_memory or empty} --rows-from {args.rows_from}"
            if args.rows_from
            else ""
        )
    )
    lines = [
        "# Real-noise benchmark: scanner-like noise on held-out CT, MR and ultrasound",
        "",
        f"Measured with `{command}` on {machine['cpu']}, {machine['cores']} cores, {machine['threads']} torch "
        f"threads, torch {machine['torch']}, Python {machine['python']} ({date}); the whole run took "
        f"{machine['wall_s'] / 60:.0f} min ({machine['simulate_s'] / 60:.0f} min of it simulating noise). "
        f"The machine was shared with other jobs (load average {machine['load_start'][0]:.1f} at the start, "
        f"{machine['load_end'][0]:.1f} at the end), so times are upper bounds. The protocol is in the "
        "script's docstring; the essentials:",
        "",
        "- **User's path.** Noisy DICOM series in, DICOM series out, through `python -m meddenoiselib denoise` "
        "with default flags (`--model auto` unless a model is named; baselines with `--sigma auto`). MR and "
        "US have no DICOM in the data folder, so the benchmark writes them as DICOM series with Modality MR / US "
        "(its test fixture, `write_fixture_series`), as a scanner would hand them over.",
        "- **Held out.** Every series is held out from all training (`scripts/data_split.py`); the series "
        "table below lists what this run used"
        + ("" if args.all else " (a subset of the held-out CT volumes and ultrasound images, see `--all`)")
        + ". Ultrasound: the central 512x512 region.",
        "- **CT noise** is inserted in the projection domain (Poisson + electronic noise, FBP) on top of the "
        "scan's own noise, which stays in the reference. That noise bounds every method: a denoiser cannot "
        "tell it from the inserted noise, so the best possible gain is about 10 log10(1 + inserted² / own²) "
        "dB (the per-series tables list the reference's own noise, measured with the library's flat-region "
        "estimator, and this ceiling: the 2 mm chest series carries ~27 HU of its own, so at ~25 HU no method "
        "can gain more than ~3 dB there). The acceptance is therefore graded on all series and on the quiet "
        f"references (own noise below {LOW_NOISE_REFERENCE:g} of the inserted). "
        "The dose of each volume and level is set so that "
        "the inserted noise has the target RMS over the body (from the library's per-pixel noise variance "
        "model, electronic noise included; the measured value is in each table's title). Scanner settings "
        "differ from training (kernels ramp/shepp-logan/cosine/hann, 540-1080 views, electronic noise 2-15, "
        "mostly the fast image-domain model): **setting A** = unseen `hamming` kernel, 1000 views, "
        "electronic noise 10, at ~10, ~25 and ~60 HU, every method; **setting B** = `shepp-logan`, 1000 "
        "views, electronic noise 10, at ~25 HU, networks and oracle BM3D only. The scanner's padding outside "
        "the reconstruction circle (-3024 HU on the GE series, -1500 on the GE head) stays as stored, without "
        "noise, as a scanner writes it; on the lumbar spine and chest-ge slices the body meets it.",
        "- **Metrics in physical units.** CT: body = clean > -500 HU; RMSE in HU; PSNR/SSIM after clipping "
        "clean and result to W400/L40 (-160..240 HU, data range 400), over the body; noise left in the body = "
        "std(result - clean); water phantom: std of the result in the central 40 mm disc (the clean "
        "phantom's own is in the table below); resolution: 10-90 % width of the air-skin edge from profiles "
        "normal to the body outline, aligned on the clean edge and averaged, at the clean profile's HU "
        "levels, divided by the clean image's width (1.0 = no blur). MR: PSNR/SSIM over the head (data range "
        "= clean maximum), background bias = mean(result - clean) outside the dilated head, in units of "
        "sigma. US: PSNR/SSIM over the image, data range 255.",
        "- **BM3D with the oracle PSD** runs in-process (`bm3d_denoise(image, sigma, psd=...)` per slice), "
        "on the percentile-normalized scale the BM3D baseline uses, with the PSD of the inserted noise "
        "(noisy file - clean) inside the evaluation region (CT body, MR head), averaged over the volume's "
        "slices. For MR the inserted noise is not additive; the PSD is that of (noisy - clean). Not run on "
        "ultrasound: multiplicative speckle has no stationary PSD.",
        f"- **In memory**: `Denoiser(name).denoise(volume)` for {in_memory} on the simulated float volume, no "
        "file round trip; rows marked `(in-memory)`.",
        "",
    ]
    lines += ["## Series", ""]
    body = []
    for case in cases:
        x = case.extra
        noisy_levels = ", ".join(i.level for i in items if i.case is case)
        edge = (
            f"{x['edges'].count} profiles, {x['edge_clean_mm']:.2f} mm"
            if case.modality == "CT" and x["edges"].count
            else "–"
        )
        roi = ""
        if "roi" in x:
            roi_std = np.mean([np.std(c[m]) for c, m in zip(case.clean, x["roi"], strict=True)])
            roi = f"; clean phantom ROI std {roi_std:.1f} HU"
        spacing = "x".join(f"{s:.3g}" for s in case.volume.spacing)
        body.append(
            [
                case.modality,
                case.name,
                f"{case.slices} x {case.volume.shape[1]}x{case.volume.shape[2]}",
                spacing,
                edge + roi,
                noisy_levels,
            ]
        )
    lines += table(
        ["modality", "series", "slices x size", "spacing x,y,z (mm)", "clean air-skin edge (10-90 %)", "noise levels"],
        body,
    )
    lines += [
        "## Summary: PSNR gain over the noisy input (dB, mean over series)",
        "",
        "CT in W400 over the body, MR over the head, US over the image. The `noisy` row gives the noisy "
        "input's PSNR itself.",
        "",
    ]
    lines += summary_table(rows)
    lines += ["## Acceptance numbers of issue 13 (default, no flags, DICOM series in)", ""]
    lines += acceptance(rows)
    lines += ["## What this means", "", "Written from the numbers of this run:", ""] + findings(rows, disagreement)
    lines += [
        "",
        "![held-out series with simulated noise](benchmark_real_noise.png)",
        "",
        "## CT, per level",
        "",
        "Means over the CT series of the level. `gain` is PSNR in W400 minus the noisy input's. `edge width / "
        "clean` is over the series with air-skin profiles (1.0 = as sharp as the clean image; acceptance: "
        "within 10 %). `water ROI std` is the phantom only. `s / slice` is the denoising step as the report "
        "records it (CLI rows) or the call's wall time (in-memory, oracle).",
        "",
    ]
    lines += level_table(rows, "CT")
    lines += per_series_table(rows, "A 25 HU")
    lines += ["## MR", ""] + level_table(rows, "MR")
    lines += ["## Ultrasound", ""] + level_table(rows, "US")
    lines += disagreement_section(rows, disagreement)
    lines += [
        "## Run time",
        "",
        "`CLI wall` is the `denoise` calls over the folders of noisy series (one per folder: "
        "model loading, reading, writing included); per-slice times are the denoising step from `--report` "
        "(CLI), the call's wall time (in-memory and oracle rows).",
        "",
    ]
    lines += timing_table(rows, walls)
    examples = list({i.case.modality: i for i in reversed(items)}.values())[::-1]  # the first series of each
    lines += [
        "## Commands",
        "",
        "```sh",
        command,
        "# noise, e.g. (every series: the CSV's noise and seed columns; the "
        "benchmark runs the same code in-process and writes the same files):",
        *[
            f"python -m meddenoiselib simulate WORK/clean/{i.case.modality.lower()}-{i.case.name} "
            f'WORK/noisy/{i.group}/{i.name} --noise "{i.spec}" --seed {i.seed}'
            for i in examples
        ],
        "# each method, once over the folder of every noisy series (WORK = the run's temporary folder):",
    ]
    lines += [f"python {w['command']}" for w in walls.values()] + ["```", ""]
    for check in simulate_check:
        lines += [
            f"`python {check}` wrote exactly the voxels the benchmark wrote for that series (checked in this run).",
            "",
        ]
    lines += ["Per-series rows (every metric, seed and time): `docs/benchmark_real_noise.csv`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
