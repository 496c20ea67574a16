"""Thick and coarse magnitude MR: the Rician / multi-coil models against the burst model with the floor's removal.

    python benchmarks/mr_voxel_size.py            # the training MR_Gd volume, 3 slab geometries x 3 noise levels
    python benchmarks/mr_voxel_size.py --masked   # the same with the noisy background set to 0

Why: until 2026-12-05 ``auto`` gave magnitude MR with a voxel edge above 3 mm the Rician model (``kpn-mr`` at several
coils) with nothing removed after it, and MR with a masked background the Rician model too. This sweep chose to run
the burst model, its refinement and the floor's removal at any voxel size (``MAGNITUDE_MR_MODELS`` in
``inference/auto.py``). It uses the **training** MR_Gd volume only: 60 slices from slice 40, scaled to 4000 at its
maximum, averaged 5 to 1 along z (1 x 1 x 5 mm), then 1 / 2 / 3 in-plane; Rician 3 % / 6 % and non-central chi 3 %
with 8 coils (seed 7); PSNR over the head (data range = the clean maximum), background bias = mean(result - clean)
outside the head dilated by 5 pixels, in sigma. The old route is reproduced by naming its model (and, masked, by
giving the masked background back as it was). The numbers this printed on 2026-12-05 are in ``inference/auto.py``'s
comment on ``MAGNITUDE_MR_MODELS`` and in that day's note on issue 13.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from data_split import DATA_ROOT, TRAIN  # noqa: E402
from meddenoiselib.evaluation.physical import head_mask, masked_psnr  # noqa: E402
from meddenoiselib.inference import Denoiser  # noqa: E402
from meddenoiselib.io import Volume, read_volume  # noqa: E402
from meddenoiselib.transforms import estimate_magnitude_floor  # noqa: E402
from meddenoiselib.transforms.noise import parse_noise_spec, simulate_volume  # noqa: E402
from real_noise import sigma_in_units  # noqa: E402

SOURCE = "mr/niivue_mr_gd/MR_Gd.nii.gz"
NOISE = ("rician:3%", "rician:6%", "noncentral-chi:3%,8")
IN_PLANE = (1, 2, 3)
THICK = 5


def slab(in_plane: int) -> Volume:
    """The training slab at ``in_plane`` x the source pixel, 5 x its slice thickness (uint16, max 4000)."""
    if SOURCE not in TRAIN:
        raise SystemExit(f"{SOURCE} is not in the training split: this sweep chooses on training data only")
    volume = read_volume(DATA_ROOT / SOURCE)
    a = volume.array.astype(np.float64)[40:100]
    a = a / a.max() * 4000.0
    a = a.reshape(-1, THICK, *a.shape[1:]).mean(axis=1)
    z, y, x = a.shape
    y, x = y // in_plane * in_plane, x // in_plane * in_plane
    a = a[:, :y, :x].reshape(z, y // in_plane, in_plane, x // in_plane, in_plane).mean(axis=(2, 4))
    sx, sy, sz = volume.spacing
    return Volume(np.rint(a).astype(np.uint16), spacing=(sx * in_plane, sy * in_plane, sz * THICK))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--masked", action="store_true", help="the noisy background set to 0 outside the head")
    args = parser.parse_args()
    from scipy import ndimage

    print("| slab (mm) | noise | noisy | old route | PSNR | bias (σ) | now (auto) | PSNR | bias (σ) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for in_plane in IN_PLANE:
        clean_volume = slab(in_plane)
        clean = clean_volume.array.astype(np.float32)
        head = head_mask(clean)
        background = ~np.stack([ndimage.binary_dilation(h, iterations=5) for h in head])
        data_range = float(clean.max())
        for spec in NOISE:
            noisy = simulate_volume(clean_volume, parse_noise_spec(spec), seed=7, float_output=True)
            values = np.clip(np.rint(noisy.array), 0, 65535)
            if args.masked:
                values[background] = 0
            noisy = noisy.with_array(values.astype(np.uint16))
            sigma = sigma_in_units(clean_volume.array, spec)
            floor = estimate_magnitude_floor(noisy.array)
            old = "kpn-mr" if floor is not None and floor.coils >= 3 else "kpn-small-rician-mr"
            before = Denoiser(old, modality="mr").denoise(noisy).array.astype(np.float32)
            if args.masked:
                before[noisy.array == 0] = 0  # the old route gave the masked background back as it was
            now = Denoiser("auto", modality="mr")
            after = now.denoise(noisy).array.astype(np.float32)
            cells = [
                "x".join(f"{s:.2g}" for s in clean_volume.spacing),
                spec,
                f"{masked_psnr(clean, noisy.array.astype(np.float32), head, data_range):.2f}",
                old,
            ]
            for result in (before, after):
                bias = float(np.mean((result - clean)[background])) / sigma
                cells += [f"{masked_psnr(clean, result, head, data_range):.2f}", f"{bias:+.3f}"]
            cells.insert(6, now.last_report.method)
            print("| " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
