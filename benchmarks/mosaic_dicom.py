"""Siemens mosaic DICOM (diffusion and fMRI, one file per volume, slices tiled) through the CLI with default flags.

    python benchmarks/mosaic_dicom.py --template PATH   # -> docs/benchmarks_mosaic_dicom.md

Why: Siemens scanners, in most research MR, export EPI series (fMRI, diffusion, perfusion) as mosaics: each file one
whole volume, its slices side by side in a grid of tiles. Denoised as the images they are, a mosaic's slices are
never each other's neighbours (a burst model read the same mosaic of the other volumes as its burst, which for a
diffusion series are other gradients), the tile edges and empty tiles sit in the middle of the image, and the Rician
floor the library removes on MR was measured on that. Since 2026-12-06 the reader recognises a mosaic (``ImageType``
``MOSAIC`` and the private NumberOfImagesInMosaic) and the library denoises its tiles as the slices of one volume
per file (``io/mosaic.py``), writing mosaics back.

The series (simulated, held out): masked_dwi.py's frames of the MNI ICBM152 2009a T1 template (in no training,
validation or tuning set): 24 axial slices of 2 mm, 98 x 116 voxels, the 99th percentile at 1000, unmasked (a
scanner's images have air around the head). Diffusion: two b = 0 and six b = 1000 frames, the b = 0 frames
interleaved as scanners write them (b1000 x 3, b0, b1000 x 3, b0). fMRI: eight frames of the b = 0 image each scaled
by 1 + 1 % x N(0, 1) (a global signal drift; no activation). Noise: Rician 4 % and 8 % of 1000 and non-central chi
with 8 coils at 3 %, rounded to 12-bit integers, each frame written as a mosaic of 5 x 5 tiles (580 x 490, the last
tile empty) with a Siemens header (``ImageType ... MOSAIC``, ``(0019,xx0A)`` NumberOfImagesInMosaic, ``(0019,xx0C)``
B_value for the diffusion series), all at the mosaic's one ImagePositionPatient, 2 mm pixels and slices.

Methods: ``auto`` through the CLI with default flags (``python -m meddenoiselib denoise FOLDER OUT``), the output
mosaics read back and untiled; ``auto (as images)``: the library on the same files as the reader gave them before
(the mosaics as images, ``SourceInfo.mosaic`` None: what the CLI ran until this change), in memory; ``auto (4D
NIfTI)``: the diffusion frames as ``dwi.nii.gz`` with ``dwi.bval`` / ``dwi.bvec`` through the CLI (what dcm2niix
would have given the user: the reference the mosaic path should equal); ``bm3d`` through the CLI (``--model bm3d``,
``--sigma auto``, where the optional package is installed) on the mosaic folder. Scores over the head (template >
0): PSNR with the data range of the clean b = 0 maximum, averaged over the b = 0 and the b = 1000 frames (diffusion)
or over all frames (fMRI), and the mean of the result in the air around the head in units of sigma (the noisy
floor: ~1.25 sigma at one coil, ~3.4 sigma at 8 coils; the clean air is 0).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "MedDenoiseLib"))
from masked_dwi import SCALE, b0_image, diffusion_series, magnitude_noise, write_dwi  # noqa: E402
from masked_mr_untagged import methods_to_run  # noqa: E402
from quality import cpu_name  # noqa: E402
from real_noise import cli_env, table  # noqa: E402

METHODS = ("auto", "auto (as images)", "auto (4D NIfTI)", "bm3d")
#: (name, sigma as a share of the b = 0 image's 99th percentile, coils)
LEVELS = (("Rician 4 %", 0.04, 1), ("Rician 8 %", 0.08, 1), ("8 coils, 3 %", 0.03, 8))
#: the acquisition order of masked_dwi.py's frames (two b = 0, then six b = 1000): b = 0 interleaved
DWI_ORDER = (2, 3, 4, 0, 5, 6, 7, 1)
PIXEL_MM = 2.0


def write_mosaics(folder: Path, frames: np.ndarray, b_values: list[float] | None) -> None:
    """``frames`` ``(F, Z, Y, X)`` -> one Siemens mosaic file per frame in ``folder`` (12-bit, 2 mm)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    count, slices, rows, columns = frames.shape
    grid = math.ceil(math.sqrt(slices))
    study, series = generate_uid(), generate_uid()
    for f in range(count):
        mosaic = np.zeros((grid * rows, grid * columns), np.uint16)
        for k in range(slices):
            mosaic[k // grid * rows : (k // grid + 1) * rows, k % grid * columns : (k % grid + 1) * columns] = frames[
                f, k
            ]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.Modality, ds.Manufacturer, ds.PatientName, ds.PatientID = "MR", "SIEMENS", "MNI^Mosaic", "mni"
        kind = "DIFFUSION" if b_values is not None else "M"
        ds.ImageType = ["ORIGINAL", "PRIMARY", kind, "NONE", "ND", "MOSAIC"]
        ds.InstanceNumber = f + 1
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0.0, 0.0, 0.0]
        ds.PixelSpacing, ds.SliceThickness, ds.SpacingBetweenSlices = [PIXEL_MM, PIXEL_MM], PIXEL_MM, PIXEL_MM
        block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
        block.add_new(0x0A, "US", slices)  # NumberOfImagesInMosaic
        if b_values is not None:
            block.add_new(0x0C, "IS", str(int(b_values[f])))  # B_value
        ds.Rows, ds.Columns = mosaic.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = mosaic.tobytes()
        pydicom.dcmwrite(str(folder / f"{ds.SOPInstanceUID}.dcm"), ds, enforce_file_format=True)


def frames_of_mosaics(volume) -> np.ndarray:
    """A read mosaic folder (or its output) -> ``(F, Z, Y, X)`` frames in InstanceNumber order."""
    from meddenoiselib.io.series import frames_of_slices

    return frames_of_slices(volume, volume.array).astype(np.float64)


def run_cli(source: Path, output: Path, env: dict, model: str | None = None) -> float:
    """``python -m meddenoiselib denoise source output`` (default flags, or ``--model``); seconds."""
    command = [sys.executable, "-m", "meddenoiselib", "denoise", str(source), str(output), "--quiet"]
    command += [] if model is None else ["--model", model]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env)
    return time.perf_counter() - start


def score(clean: np.ndarray, result: np.ndarray, head: np.ndarray, groups: dict, sigma: float, top: float) -> list:
    """Per group of frames (``(F, Z, Y, X)`` arrays): mean PSNR over the head; then the mean in the air / sigma."""
    cells = []
    for frames in groups.values():
        psnr = [10 * np.log10(top**2 / np.mean((clean[f][head] - result[f][head]) ** 2)) for f in frames]
        cells.append(float(np.mean(psnr)))
    air = np.broadcast_to(~head, result.shape)
    cells.append(float(result[air].mean() / sigma))
    return cells


def main() -> int:
    from meddenoiselib.inference import Denoiser
    from meddenoiselib.io import read_series, read_volume

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, required=True, help="the MNI ICBM152 2009a T1 template")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks_mosaic_dicom.md")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seed", type=int, default=600)
    args = parser.parse_args()
    methods = [m for m in METHODS if m in methods_to_run(args.methods)]  # in the table's order
    b0 = b0_image(args.template)  # (X, Y, Z)
    top = float(b0.max())
    head = (b0 > 0).transpose(2, 1, 0)  # (Z, Y, X)
    dwi, b_values, vectors = diffusion_series(b0, args.seed)
    drift = 1 + 0.01 * np.random.default_rng(args.seed).standard_normal(8)
    kinds = {
        "diffusion": (dwi[..., list(DWI_ORDER)], [b_values[k] for k in DWI_ORDER], vectors[:, list(DWI_ORDER)]),
        "fMRI": (np.stack([b0 * d for d in drift], axis=-1), None, None),
    }
    env = cli_env()
    pages = []
    with tempfile.TemporaryDirectory() as folder:
        for kind, (clean_xyzf, bvals, bvecs) in kinds.items():
            clean = np.moveaxis(clean_xyzf, -1, 0).transpose(0, 3, 2, 1)  # (F, Z, Y, X)
            if bvals is None:
                groups = {"all frames": list(range(clean.shape[0]))}
                kind_methods = [m for m in methods if m != "auto (4D NIfTI)"]
            else:
                groups = {
                    "b=0": [f for f, b in enumerate(bvals) if b == 0],
                    "b=1000": [f for f, b in enumerate(bvals) if b > 0],
                }
                kind_methods = methods
            rows, seconds = {}, {m: 0.0 for m in kind_methods}
            for index, (level, share, coils) in enumerate(LEVELS):
                sigma = share * SCALE
                noisy = np.clip(np.rint(magnitude_noise(clean, sigma, coils, args.seed + 1 + index)), 0, 4095)
                work = Path(folder) / f"{kind}{index}"
                write_mosaics(work / "mosaics", noisy.astype(np.uint16), bvals)
                rows[level] = {"noisy": score(clean, noisy, head, groups, sigma, top)}
                for method in kind_methods:
                    start = time.perf_counter()
                    if method == "auto":
                        seconds[method] += run_cli(work / "mosaics", work / "auto", env)
                        result = frames_of_mosaics(read_volume(work / "auto"))
                    elif method == "bm3d":
                        seconds[method] += run_cli(work / "mosaics", work / "bm3d", env, "bm3d")
                        result = frames_of_mosaics(read_volume(work / "bm3d"))
                    elif method == "auto (as images)":
                        volume = read_volume(work / "mosaics")
                        before = dataclasses.replace(
                            volume.source, mosaic=None, repeated_frame_label="repeat"
                        )  # what the reader gave before: the mosaics as the images at one position
                        denoised = Denoiser("auto").denoise(dataclasses.replace(volume, source=before))
                        result = frames_of_mosaics(volume.with_array(denoised.array))
                        seconds[method] += time.perf_counter() - start
                    else:  # the same frames as a 4D NIfTI with its gradient table
                        path = write_dwi(np.moveaxis(noisy.transpose(0, 3, 2, 1), 0, -1), bvals, bvecs, work / "nii")
                        seconds[method] += run_cli(path, work / "nii" / "out.nii.gz", env)
                        result = read_series(work / "nii" / "out.nii.gz").array.astype(np.float64)
                    rows[level][method] = score(clean, result, head, groups, sigma, top)
                    cells = " / ".join(f"{v:.2f}" for v in rows[level][method][:-1])
                    print(f"{kind} {level:13s} {method:17s} {cells} dB, air {rows[level][method][-1]:+.3f} σ")
            header = (
                ["method"]
                + [f"{level}: {' / '.join(groups)} PSNR (gain), air" for level, _, _ in LEVELS]
                + ["s / series"]
            )
            body = []
            for method in ["noisy", *kind_methods]:
                cells = [method]
                for level, _, _ in LEVELS:
                    values, base = rows[level][method], rows[level]["noisy"]
                    psnr = " / ".join(f"{v:.2f} ({v - n:+.2f})" for v, n in zip(values[:-1], base[:-1], strict=True))
                    cells.append(f"{psnr}, {values[-1]:+.2f} σ")
                cells.append("–" if method == "noisy" else f"{seconds[method] / len(LEVELS):.1f}")
                body.append(cells)
            pages += [f"## {kind}", "", *table(header, body), ""]
    lines = [
        "# Siemens mosaic DICOM: diffusion and fMRI series through the CLI",
        "",
        f"Generated by `python benchmarks/mosaic_dicom.py --template PATH` on {cpu_name()}; the protocol is in the "
        "script's docstring. The MNI T1 template's 24 slices of 2 mm (98 x 116) as Siemens mosaics (5 x 5 tiles, one "
        "file per frame), unmasked. PSNR over the head (data range: the clean b = 0 maximum); air: the result's "
        "mean around the head in units of the noise sigma (clean: 0). `auto (as images)` is what the CLI ran on "
        "such files until 2026-12-06 (each mosaic one image), computed in memory on the same files.",
        "",
        *pages,
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
