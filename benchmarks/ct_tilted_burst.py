"""A burst model's adjacent slices on a tilted gantry, aligned (``neighbour_shift``) or as stored.

    python benchmarks/ct_tilted_burst.py [auto|off]      # the refinement as auto runs it, or the network alone
    python benchmarks/ct_tilted_burst.py auto --held-out # the real-noise benchmark's held-out head-ge (slices 23-28)

GE's head CT of the data folder (18.5 degree tilt; 4.22 mm slices 01-14, 7.38 mm 15-28: 2.74 and 4.80 rows of shift
per slice), simulated low-dose noise, ``Denoiser("auto")`` on the sheared volume with its adjacent slices moved onto
the centre pixel's normal (the default since stop 64) and as stored; W400/L40 PSNR gain over the body. Results:
docs/benchmarks_real_noise.md ("Tilted gantry: the burst's adjacent slices").
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import meddenoiselib.inference.denoiser as dn
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.transforms import simulate_volume
from meddenoiselib.transforms.noise import parse_noise_spec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from meddenoiselib.evaluation.physical import body_mask, window_psnr  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from data_split import DATA_ROOT  # noqa: E402

D = DATA_ROOT / "ct" / "dcm_qa_ct_ge_head"
HELD_OUT = "--held-out" in sys.argv
if HELD_OUT:
    sys.argv.remove("--held-out")
    CASES = {"head-ge 23-28 (held out, 7.38 mm)": range(23, 29)}
    SETTINGS = (  # the real-noise benchmark's setting A
        "ct-lowdose:25HU,kernel=hamming,views=1000,electronic=10",
        "ct-lowdose:60HU,kernel=hamming,views=1000,electronic=10",
    )
else:  # training slices
    CASES = {"head 05-11 (4.22 mm)": range(5, 12), "head 16-22 (7.38 mm)": range(16, 23)}
    SETTINGS = (
        "ct-lowdose:25HU,kernel=ramp,views=720,electronic=5",
        "ct-lowdose:60HU,kernel=shepp-logan,views=720,electronic=10",
    )
aligned = dn.neighbour_shift
refine = sys.argv[1] if len(sys.argv) > 1 else "auto"
for name, idx in CASES.items():
    with tempfile.TemporaryDirectory() as folder:
        for i in idx:
            os.symlink(D / f"{i:02d}.dcm", Path(folder) / f"{i:02d}.dcm")
        clean = read_volume(folder)
    ref = clean.array.astype(np.float32)
    body = body_mask(ref)
    print(name, clean.shape, "shift", aligned(clean.spacing, clean.direction))
    for j, spec in enumerate(SETTINGS):
        noisy = simulate_volume(clean, parse_noise_spec(spec), seed=21 + j, float_output=True)
        before = window_psnr(ref, noisy.array, body, (40, 400))
        out = {}
        for label, fn in (("as stored", lambda s, d: None), ("aligned", aligned)):
            dn.neighbour_shift = fn
            res = Denoiser("auto", refine=refine).denoise(noisy).array
            out[label] = window_psnr(ref, res, body, (40, 400)) - before
        dn.neighbour_shift = aligned
        gains = f"gain as stored {out['as stored']:+.2f}  aligned {out['aligned']:+.2f}"
        print(f"  {spec[:40]:40s} noisy {before:.2f}  {gains}", flush=True)
