"""Enhanced (multi-frame) MR DICOM of a diffusion run through the CLI with default flags, in three layouts.

    python benchmarks/enhanced_dicom.py --template PATH   # -> docs/benchmarks_enhanced_dicom.md

Why: Philips and Siemens XA scanners write 4D MR (diffusion, fMRI, multi-echo) as enhanced DICOM: one multi-frame
file holding every frame of the run, in whatever order the scanner chose (volume after volume, or every volume of
one slice, then the next slice), or one multi-frame file per volume. Until 2026-12-06 the library read a file's
frames in the order it holds them and denoised them as the slices of one volume (a burst model's neighbours were
the other volumes at the same position when the file goes slice by slice), and refused a series of multi-frame
files. Since then the frames are grouped by position (``SourceInfo.frame_order``) and denoised as the 4D series
they are, the kind of frame read from the per-frame functional groups (MR diffusion, echo, temporal position).

The series: masked_dwi.py's frames of the MNI ICBM152 2009a T1 template (held out; 24 slices of 2 mm, 98 x 116,
unmasked), two b = 0 and six b = 1000 frames with the b = 0 frames interleaved (b1000 x 3, b0, b1000 x 3, b0),
Rician noise of 4 % of 1000, uint16, written as an Enhanced MR Image: one file volume-major, one file
position-major, and one file per volume. Methods: ``auto`` through the CLI, default flags; ``auto (as before)``: the
library in memory on the one-file layouts read without the grouping (``repeated_frames`` 1, no ``frame_order``: what
the reader gave before). Scores over the head, as mosaic_dicom.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "MedDenoiseLib"))
from masked_dwi import SCALE, b0_image, diffusion_series, magnitude_noise  # noqa: E402
from mosaic_dicom import DWI_ORDER, PIXEL_MM, run_cli, score  # noqa: E402
from quality import cpu_name  # noqa: E402
from real_noise import cli_env, table  # noqa: E402


def write_enhanced(path: Path, frames: np.ndarray, pairs, b_values, series_uid: str, instance: int = 1) -> None:
    """An Enhanced MR Image file holding ``frames[f, p]`` (``(F, P, Y, X)`` uint16) for each ``(f, p)`` of ``pairs``,
    with per-frame positions, temporal indices and b-values."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    def item(**values) -> Dataset:
        ds = Dataset()
        for name, value in values.items():
            setattr(ds, name, Sequence([value]) if isinstance(value, Dataset) else value)
        return ds

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", series_uid
    ds.Modality, ds.PatientID, ds.InstanceNumber = "MR", "mni", instance
    ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
    measures = item(PixelSpacing=[PIXEL_MM, PIXEL_MM], SliceThickness=PIXEL_MM)
    ds.SharedFunctionalGroupsSequence = Sequence(
        [
            item(
                PixelMeasuresSequence=measures,
                PlaneOrientationSequence=item(ImageOrientationPatient=[1, 0, 0, 0, 1, 0]),
            )
        ]
    )
    ds.PerFrameFunctionalGroupsSequence = Sequence(
        [
            item(
                PlanePositionSequence=item(ImagePositionPatient=[0.0, 0.0, PIXEL_MM * p]),
                FrameContentSequence=item(InStackPositionNumber=p + 1, TemporalPositionIndex=f + 1),
                MRDiffusionSequence=item(DiffusionBValue=float(b_values[f])),
            )
            for f, p in pairs
        ]
    )
    ds.NumberOfFrames = len(pairs)
    ds.Rows, ds.Columns = frames.shape[2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(np.stack([frames[f, p] for f, p in pairs]), dtype=np.uint16).tobytes()
    pydicom.dcmwrite(str(path), ds, enforce_file_format=True)


def main() -> int:
    from pydicom.uid import generate_uid

    from meddenoiselib.inference import Denoiser
    from meddenoiselib.io import read_series, read_volume
    from meddenoiselib.io.series import series_of_repeated_frames

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, required=True, help="the MNI ICBM152 2009a T1 template")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks_enhanced_dicom.md")
    parser.add_argument("--seed", type=int, default=600)
    args = parser.parse_args()
    b0 = b0_image(args.template)
    top, head = float(b0.max()), (b0 > 0).transpose(2, 1, 0)
    dwi, b_values, _ = diffusion_series(b0, args.seed)
    clean = np.moveaxis(dwi[..., list(DWI_ORDER)], -1, 0).transpose(0, 3, 2, 1)  # (F, Z, Y, X)
    b_values = [b_values[k] for k in DWI_ORDER]
    groups = {"b=0": [f for f, b in enumerate(b_values) if b == 0], "b=1000": [f for f, b in enumerate(b_values) if b]}
    sigma = 0.04 * SCALE
    noisy = np.clip(np.rint(magnitude_noise(clean, sigma, 1, args.seed + 1)), 0, 65535).astype(np.uint16)
    count, positions = clean.shape[:2]
    layouts = {
        "one file, volume after volume": [(f, p) for f in range(count) for p in range(positions)],
        "one file, slice after slice": [(f, p) for p in range(positions) for f in range(count)],
        "one file per volume": None,
    }
    rows = {"noisy": score(clean, noisy.astype(np.float64), head, groups, sigma, top)}
    env, seconds = cli_env(), {}
    with tempfile.TemporaryDirectory() as folder:
        for index, (layout, pairs) in enumerate(layouts.items()):
            work = Path(folder) / f"layout{index}"
            work.mkdir()
            uid = generate_uid()
            if pairs is None:
                source = work / "volumes"
                source.mkdir()
                for f in range(count):
                    one = [(0, p) for p in range(positions)]
                    write_enhanced(
                        source / f"{generate_uid()}.dcm", noisy[f : f + 1], one, b_values[f : f + 1], uid, f + 1
                    )
                output = work / "out"
            else:
                source, output = work / "dwi.dcm", work / "out.dcm"
                write_enhanced(source, noisy, pairs, b_values, uid)
                volume = read_volume(source)
                flat = dataclasses.replace(volume.source, repeated_frames=1, frame_order=())
                start = time.perf_counter()
                before = Denoiser("auto").denoise(dataclasses.replace(volume, source=flat))
                seconds[f"{layout}: auto (as before)"] = time.perf_counter() - start
                result = series_of_repeated_frames(volume.with_array(before.array)).array.astype(np.float64)
                rows[f"{layout}: auto (as before)"] = score(clean, result, head, groups, sigma, top)
            seconds[f"{layout}: auto"] = run_cli(source, output, env)
            written = read_volume(output)
            result = series_of_repeated_frames(written).array.astype(np.float64)
            rows[f"{layout}: auto"] = score(clean, result, head, groups, sigma, top)
            # the same input named into a 4D NIfTI (refused until 2026-12-07), with the .bval written beside it
            nifti = f"{layout}: auto -> 4D NIfTI"
            seconds[nifti] = run_cli(source, work / "out.nii.gz", env)
            result = read_series(work / "out.nii.gz").array.astype(np.float64)
            rows[nifti] = score(clean, result, head, groups, sigma, top)
            bval = (work / "out.bval").read_text().split()
            assert [float(b) for b in bval] == list(b_values), bval
            for name in (f"{layout}: auto (as before)", f"{layout}: auto", nifti):
                if name in rows:
                    cells = " / ".join(f"{v:.2f}" for v in rows[name][:-1])
                    print(f"{name:45s} {cells} dB, air {rows[name][-1]:+.3f} σ ({seconds[name]:.1f} s)")
    base = rows["noisy"]
    body = []
    for name, values in rows.items():
        psnr = " / ".join(f"{v:.2f} ({v - n:+.2f})" for v, n in zip(values[:-1], base[:-1], strict=True))
        body.append([name, f"{psnr}", f"{values[-1]:+.2f} σ", "–" if name == "noisy" else f"{seconds[name]:.1f}"])
    lines = [
        "# Enhanced (multi-frame) MR DICOM of a diffusion run: three layouts through the CLI",
        "",
        f"Generated by `python benchmarks/enhanced_dicom.py --template PATH` on {cpu_name()}; the protocol is in the "
        "script's docstring. The MNI T1 template's diffusion frames (24 slices of 2 mm, 98 x 116, b = 0 frames "
        "interleaved), Rician 4 %, as an Enhanced MR Image. PSNR over the head (data range: the clean b = 0 "
        "maximum); air: the result's mean around the head in units of sigma. `auto (as before)`: the library on the "
        "file read as the reader gave it until 2026-12-06 (its frames as the slices of one volume), in memory; a "
        "series of one file per volume was refused then. Seconds: the CLI's include the process start.",
        "",
        *table(["input / method", "b=0 / b=1000 PSNR (gain)", "air", "s"], body),
        "",
    ]
    args.output.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
