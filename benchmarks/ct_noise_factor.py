"""How the CT refinement's noise factor was chosen: a sweep on *training-split* CT series only.

    python benchmarks/ct_noise_factor.py                          # the refinement of short volumes, x1 / 1.5 / 2 / 3
    python benchmarks/ct_noise_factor.py --tiers "medium refinement, 4 views;cheapest refinement" --factors 1,2

The collaborative Wiener stage that ``auto`` runs on CT takes ``CT_NOISE_FACTOR`` times the noise spectrum it measures
in flat body tissue (``meddenoiselib/inference/collaborative_wiener.py``). This script scores ``Denoiser("auto")``
with each factor on 4 training-split volumes of 3 slices (chest 045-047 and 061-063, GE head 05-07 and 16-18; never
the held-out series of ``scripts/data_split.py``) at three scanner settings (25 HU ramp, 25 HU cosine with noise of
grain 2, 60 HU shepp-logan; projection-domain noise, ``ct-lowdose:NHU``), W400/L40 PSNR gain over the body, and prints
each case and the mean per tier and factor. ``--tiers`` forces the refinements of longer volumes on these short
ones, as ``ct_volume_refinement.py`` does (``short`` is the default tier of up to 8 slices). The noisy volumes are
cached in ``--work``. Results (2026-12-05): docs/benchmarks_real_noise.md, stop 51.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from meddenoiselib.inference import Denoiser, collaborative_wiener
from meddenoiselib.io import read_volume
from meddenoiselib.transforms import simulate_volume
from meddenoiselib.transforms.noise import parse_noise_spec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ct_volume_refinement import FORCED_TIER, forced  # noqa: E402
from meddenoiselib.evaluation.physical import body_mask, window_psnr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from data_split import DATA_ROOT, TRAIN  # noqa: E402

CASES = {
    "chest 061-063": [f"ct/itkelastix_chest_ct_series00/00-slice{i:03d}.dcm" for i in (61, 62, 63)],
    "head 16-18": [f"ct/dcm_qa_ct_ge_head/{i:02d}.dcm" for i in (16, 17, 18)],
    "chest 045-047": [f"ct/itkelastix_chest_ct_series00/00-slice{i:03d}.dcm" for i in (45, 46, 47)],
    "head 05-07": [f"ct/dcm_qa_ct_ge_head/{i:02d}.dcm" for i in (5, 6, 7)],
}
SETTINGS = (
    "ct-lowdose:25HU,kernel=ramp,views=720,electronic=5",
    "ct-lowdose:25HU,kernel=cosine,views=900,electronic=10,grain=2",
    "ct-lowdose:60HU,kernel=shepp-logan,views=720,electronic=10",
)


def with_factor(refinement, factor: float, share: float | None = None):
    """``refinement`` and every ``larger`` tier after it with ``noise_factor=factor`` (and ``share``, unless None)."""
    if refinement is None:
        return None
    return dataclasses.replace(
        refinement,
        noise_factor=factor,
        share=refinement.share if share is None else share,
        larger=with_factor(refinement.larger, factor, share),
    )


def _share_label(share: float | None) -> str:
    return "" if share is None else f" share {share:g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factors", default="1,1.5,2,3")
    parser.add_argument("--shares", default="", help="shares of the filtered image, e.g. 0.6,1 (default: each tier's)")
    parser.add_argument("--tiers", default="short", help=f"';'-separated: short, {', '.join(FORCED_TIER)}")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ct_noise_factor")
    args = parser.parse_args()
    factors = [float(f) for f in args.factors.split(",")]
    shares = [float(f) for f in args.shares.split(",") if f.strip()] or [None]
    tiers = [t.strip() for t in args.tiers.split(";") if t.strip()]
    unknown = [t for t in tiers if t != "short" and t not in FORCED_TIER]
    if unknown:
        parser.error(f"unknown tier(s): {', '.join(unknown)}")
    held_out = [f for files in CASES.values() for f in files if f not in TRAIN]
    if held_out:  # the factor is chosen on training data only
        parser.error(f"not in the training split: {', '.join(held_out)}")
    args.work.mkdir(parents=True, exist_ok=True)
    shipped = collaborative_wiener.REFINED_MODELS["kpn-ct-burst3"]
    gains: dict[tuple[str, float, float | None], list[float]] = {}
    try:
        for name, files in CASES.items():
            with tempfile.TemporaryDirectory() as folder:
                for f in files:
                    os.symlink(DATA_ROOT / f, Path(folder) / Path(f).name)
                clean = read_volume(folder)
            reference = clean.array.astype(np.float32)
            body = body_mask(reference)
            for index, spec in enumerate(SETTINGS):
                cached = args.work / f"{name.replace(' ', '_')}_{index}.npy"
                if cached.exists():
                    noisy = clean.with_array(np.load(cached))
                else:
                    noisy = simulate_volume(clean, parse_noise_spec(spec), seed=11 + index, float_output=True)
                    np.save(cached, noisy.array)
                before = window_psnr(reference, noisy.array, body, (40, 400))
                cells = []
                for tier in tiers:
                    for factor in factors:
                        for share in shares:
                            chain = with_factor(shipped, factor, share)
                            collaborative_wiener.REFINED_MODELS["kpn-ct-burst3"] = (
                                chain if tier == "short" else forced(chain, FORCED_TIER[tier])
                            )
                            result = Denoiser("auto").denoise(noisy).array
                            gain = window_psnr(reference, result, body, (40, 400)) - before
                            gains.setdefault((tier, factor, share), []).append(gain)
                            cells.append(f"{tier} x{factor:g}{_share_label(share)} {gain:+.2f}")
                print(f"{name:14s} {spec:62s} " + " | ".join(cells), flush=True)
    finally:
        collaborative_wiener.REFINED_MODELS["kpn-ct-burst3"] = shipped
    for (tier, factor, share), values in gains.items():
        print(f"mean {tier} x{factor:g}{_share_label(share)}: {np.mean(values):+.3f} dB over {len(values)} cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
