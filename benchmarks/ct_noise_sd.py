"""BM3D on CT given the noise SD in HU (``--noise-sd``): with the scan's noise texture (the default) or as a white
level, against ``--sigma auto`` (the estimated spectrum).

    python benchmarks/ct_noise_sd.py [--out docs/benchmarks_noise_sd.md]

Held-out CT only (``scripts/data_split.py``): the GE head slices 23-28 (a quiet reference, ~4 HU of its own noise)
and the chest slices 090-095 (~28 HU of its own, which the score counts as error), with simulated low-dose noise
(``ct-lowdose:25HU`` / ``60HU``, the library's fast model). The SD given is 0.8 / 1.0 / 1.25 x the SD of the
inserted noise in the body. W400/L40 PSNR over the body (clean > -500 HU). Needs the optional ``bm3d`` package.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.transforms import NoiseSD, simulate_volume
from meddenoiselib.transforms.noise import parse_noise_spec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from meddenoiselib.evaluation.physical import body_mask, window_psnr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from data_split import DATA_ROOT  # noqa: E402

CASES = {
    "head-ge 23-28": [DATA_ROOT / "ct" / "dcm_qa_ct_ge_head" / f"{i:02d}.dcm" for i in range(23, 29)],
    "chest 090-095": [
        DATA_ROOT / "ct" / "itkelastix_chest_ct_series00" / f"00-slice{i:03d}.dcm" for i in range(90, 96)
    ],
}
SPECS = ("ct-lowdose:25HU", "ct-lowdose:60HU")
FACTORS = (0.8, 1.0, 1.25)


def _read(files: list[Path]):
    with tempfile.TemporaryDirectory() as folder:
        for path in files:
            shutil.copy(path, folder)
        return read_volume(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the table as Markdown here")
    args = parser.parse_args()
    bm3d = Denoiser("bm3d")
    white = Denoiser("bm3d")
    white._given_level = lambda sigma, scaling, normalized, body: sigma.normalized(scaling)  # the white level
    rows = []
    for case, files in CASES.items():
        clean = _read(files)
        body = body_mask(clean.array.astype(np.float64))
        for spec in SPECS:
            noisy = simulate_volume(clean, parse_noise_spec(spec), seed=3)
            inserted = float(np.std((noisy.array.astype(np.float64) - clean.array)[body]))

            def score(result, clean=clean, body=body):
                return window_psnr(clean.array.astype(np.float64), result.array.astype(np.float64), body)

            start = time.perf_counter()
            row = {
                "case": case,
                "noise": spec,
                "sd": inserted,
                "noisy": score(noisy),
                "auto": score(bm3d.denoise(noisy)),
            }
            for factor in FACTORS:
                row[f"texture {factor}"] = score(bm3d.denoise(noisy, NoiseSD(inserted * factor)))
                row[f"white {factor}"] = score(white.denoise(noisy, NoiseSD(inserted * factor)))
            rows.append(row)
            print(case, spec, {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()},
                  f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip
    header = ["case", "noise", "inserted SD (HU)", "noisy", "sigma auto"]
    header += [f"SD x{f} texture" for f in FACTORS] + [f"SD x{f} white" for f in FACTORS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        values = [row["case"], row["noise"], f"{row['sd']:.1f}", f"{row['noisy']:.2f}", f"{row['auto']:.2f}"]
        values += [f"{row[f'texture {f}']:.2f}" for f in FACTORS] + [f"{row[f'white {f}']:.2f}" for f in FACTORS]
        lines.append("| " + " | ".join(values) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
