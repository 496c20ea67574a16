"""How well a preview predicts the full run: ``Denoiser.preview`` against ``Denoiser.denoise``, slice by slice.

    python benchmarks/preview.py [--out docs/preview.md]

CT: the 64-slice chest series of the data folder (``ct/itkelastix_chest_ct_series00``, 512x512, 2 mm; training
split: this measures how closely the preview predicts, not denoising quality) with simulated low-dose noise
(``ct-lowdose:25HU,method=fast``, seed 0), as volumes of 4, 8, 40 and 64 central slices and, mirrored end to end,
128 and 300 slices: the lengths that select each tier of the CT model's refinement on a CPU (up to 8 slices BM3D's
search from 8 views of the network; up to 64 a middle search from 4 views; up to 128 the same from one view; longer
ones the cheapest search). MR, with Rician noise of 3 % of the 99th percentile, ``auto`` told it is MR (the noise
floor's removal is fitted on the whole volume): the bundled head MR (24 x 58 x 58, 4 x 4 x 5 mm: the Rician model),
and 40 central slices of ``mr/niivue_mr_gd/MR_Gd.nii.gz`` (1 mm: the burst model with its collaborative Wiener
refinement, blocks matched on 3 slices).

For each volume: the full run's time; at the first, second, middle and last slice the preview's time and its
difference from the full run's slice (largest and RMS, in HU for CT), beside the RMS of what the full run removed
there (the noise the preview must predict). Then the time of ``denoise --preview-slice`` through the CLI on the
300-slice CT (reading the file included), as the Slicer module's child process runs it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from meddenoiselib.demo import sample_path
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import Volume, read_volume, write_volume
from meddenoiselib.transforms.noise import parse_noise_spec, simulate_volume

DATA = Path(os.environ.get("MEDDENOISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CT_SERIES = DATA / "ct" / "itkelastix_chest_ct_series00"
MR_GD = DATA / "mr" / "niivue_mr_gd" / "MR_Gd.nii.gz"


def mirrored(volume: Volume, count: int) -> Volume:
    """``volume`` continued to ``count`` slices by repeating it forwards and backwards (neighbours stay neighbours)."""
    order = np.concatenate([np.arange(volume.shape[0]), np.arange(volume.shape[0])[::-1]])
    index = np.resize(order, count)
    return Volume(volume.array[index], volume.spacing, volume.origin, volume.direction)


def compare(name: str, volume: Volume, denoiser: Denoiser, unit: str) -> list[str]:
    """Table rows: the full run, then the preview at 4 slices against it."""
    start = time.perf_counter()
    full = denoiser.denoise(volume).array.astype(np.float32)
    seconds = time.perf_counter() - start
    report = denoiser.last_report
    axis = denoiser.slice_axis_for(volume)
    count = volume.shape[axis]
    rows = []
    for index in sorted({0, 1, count // 2, count - 1}):
        start = time.perf_counter()
        preview = denoiser.preview(volume, index).array.astype(np.float32)
        preview_seconds = time.perf_counter() - start
        expected = np.take(full, [index], axis=axis)
        difference = preview - expected
        removed = expected - np.take(volume.array, [index], axis=axis).astype(np.float32)
        rows.append(
            f"| {name} | {count} | {report.ensemble} / {report.refined:.1f} | {seconds:.1f} | {index} | "
            f"{preview_seconds:.1f} | {np.abs(difference).max():.0f} | {np.sqrt(np.mean(difference**2)):.2f} | "
            f"{np.sqrt(np.mean(removed**2)):.1f} | {unit} |"
        )
        print(rows[-1], flush=True)
    return rows


def cli_seconds(volume: Volume, index: int) -> float:
    """Wall time of ``python -m meddenoiselib denoise IN OUT --preview-slice index`` on ``volume`` as NIfTI."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "ct.nii.gz"
        write_volume(volume, source)
        start = time.perf_counter()
        command = [sys.executable, "-m", "meddenoiselib", "denoise", str(source), str(Path(folder) / "slice.nii.gz")]
        subprocess.run([*command, "--preview-slice", str(index), "-q"], check=True)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the tables to this Markdown file")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    clean = read_volume(CT_SERIES)
    noisy = simulate_volume(clean, parse_noise_spec("ct-lowdose:25HU,method=fast"), seed=0)
    ct = Volume(noisy.array, noisy.spacing, noisy.origin, noisy.direction)  # no Modality tag: auto finds HU
    denoiser = Denoiser("auto")
    rows = []
    for count in (4, 8, 40, 64):
        rows += compare("chest CT", ct.slab(0, 32 - count // 2, 32 - count // 2 + count), denoiser, "HU")
    for count in (128, 300):
        rows += compare("chest CT, mirrored", mirrored(ct, count), denoiser, "HU")

    rician = parse_noise_spec("rician:3%")
    head = read_volume(sample_path("mr_head"))
    rows += compare("head MR", simulate_volume(head, rician, seed=0), Denoiser("auto", modality="mr"), "grey levels")
    fine = read_volume(MR_GD).slab(0, 52, 92)
    rows += compare("MR_Gd", simulate_volume(fine, rician, seed=0), Denoiser("auto", modality="mr"), "grey levels")

    cli = cli_seconds(mirrored(ct, 300), 150)
    lines = [
        "| volume | slices | views / refined share | full run (s) | slice | preview (s) | largest difference | "
        "RMS difference | RMS removed by the full run | unit |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"`denoise --preview-slice 150` through the CLI on the 300-slice CT (NIfTI, read included): {cli:.1f} s.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
