"""Pack the training and validation images of the GPU-trained recipes into one file that can travel to a lent GPU.

    python scripts/gpu/pack_training_data.py            # -> .gpu/pack.npz (ignored by git), and .gpu/wheels

The GPU machine receives only the repository plus carried ignored folders (64 MiB in all) and has no package
index: the pack holds the images (see meddenoiselib.training.pack), and the wheels the packages its image lacks
(MONAI; SimpleITK is not needed there, the pack replaces the file readers).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from oneshot import GPU_RECIPES  # noqa: E402  (the recipes the one-shot run trains)

from train_shipped import RECIPES, _burst_inputs, recipe_inputs  # noqa: E402
from train_shipped import ROOT as REPO  # noqa: E402

#: packages the GPU image lacks, as wheels for its Python 3.12 (names and versions as installed here)
WHEELS = ("monai==1.6.1",)


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def build_pack(target: Path, recipes: tuple[str, ...]) -> Path:
    from meddenoiselib.io import read_volume
    from meddenoiselib.training.pack import write_pack

    volumes, index = {}, {}
    for recipe in recipes:
        train, validation = recipe_inputs(RECIPES[recipe])
        # 2D recipes see the CT series as volumes too (they sample slices), so each CT slice is packed once
        train = _burst_inputs(REPO / ".cache" / "burst_train", train)
        validation = _burst_inputs(REPO / ".cache" / "burst_val", validation)
        index[recipe] = {"train": [_name(p) for p in train], "val": [_name(p) for p in validation]}
        for path in [*train, *validation]:
            if _name(path) not in volumes:
                volume = read_volume(path)
                if volume.array.dtype == np.float64:  # float32 is what training computes in: half the bytes
                    volume = volume.with_array(volume.array.astype(np.float32))
                volumes[_name(path)] = volume
    return write_pack(target, volumes, index)


def download_wheels(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [arg for n in ("2_28", "2_27", "2_17") for arg in ("--platform", f"manylinux_{n}_x86_64")]
    subprocess.check_call(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *platforms,
            "--platform",
            "any",
            "-d",
            str(folder),
            *WHEELS,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(ROOT / ".gpu"), help="folder to write (.gpu)")
    parser.add_argument("--recipes", nargs="+", default=list(GPU_RECIPES), choices=sorted(RECIPES))
    parser.add_argument("--no-wheels", action="store_true", help="skip downloading wheels")
    args = parser.parse_args()
    output = Path(args.output)
    pack = build_pack(output / "pack.npz", tuple(args.recipes))
    print(f"wrote {pack} ({pack.stat().st_size / 2**20:.1f} MiB)")
    if not args.no_wheels:
        download_wheels(output / "wheels")
    total = sum(f.stat().st_size for f in output.rglob("*") if f.is_file())
    print(f"{output}: {total / 2**20:.1f} MiB to carry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
