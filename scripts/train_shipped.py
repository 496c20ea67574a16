"""Train (or resume) one of the shipped models with its recipe, through the real CLI, and install it.

    python scripts/train_shipped.py kpn-small                # trains into runs/kpn-small
    python scripts/train_shipped.py kpn-small --resume        # continues from runs/kpn-small/checkpoint.pt
    python scripts/train_shipped.py kpn-small --install       # copies the result into the package weights

Every recipe trains on the training split of ../shared/data (scripts/data_split.py) and validates on the
held-out files. The exact command is printed before it runs, so each model card can be reproduced.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_split import DATA_ROOT, train_files, validation_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "MedDenoiseLib" / "meddenoiselib" / "weights"

BLIND = "2D single-channel denoiser for blind Gaussian noise, sigma 0-50 on the 0-255 scale of the normalized image"

CT_NOISE = "ct-lowdose:5HU-100HU,kernel=ramp|shepp-logan|cosine|hann,views=540|1080,electronic=2|15"
CT_DESCRIPTION = (
    "2.5D CT denoiser in HU: %d adjacent slices in, centre slice out; trained on projection-domain and "
    "NPS-shaped low-dose CT noise, body noise 5-100 HU, kernels ramp/shepp-logan/cosine/hann"
)

RECIPES: dict[str, dict] = {
    "dncnn-small": dict(network="dncnn-small", patch=64, batch_size=16, steps=8000, lr=1e-3, description=BLIND),
    "kpn-small": dict(network="kpn-small", patch=96, batch_size=8, steps=20000, lr=5e-4, description=BLIND),
    "kpn-medium": dict(network="kpn-medium", patch=96, batch_size=8, steps=12000, lr=5e-4, description=BLIND),
    "irunet-32": dict(network="irunet-32", patch=96, batch_size=8, steps=15000, lr=1e-3, description=BLIND),
    "irunet-48": dict(network="irunet-48", patch=96, batch_size=8, steps=15000, lr=1e-3, description=BLIND),
    "dran-small": dict(network="dran-small", patch=64, batch_size=16, steps=2500, lr=1e-3, description=BLIND),
    "rdn-small": dict(network="rdn-small", patch=64, batch_size=16, steps=2000, lr=5e-4, description=BLIND),
    "conv-dae-skip": dict(network="conv-dae-skip", patch=64, batch_size=16, steps=3500, lr=1e-3, description=BLIND),
    "kpn-burst3": dict(
        network="kpn-burst3",
        patch=96,
        batch_size=8,
        steps=6000,
        lr=5e-4,
        burst=True,
        description=BLIND + "; 3 adjacent slices in, centre slice out",
    ),
    # continues kpn-small (20000 steps) with a fresh, lower cosine cycle; installed over kpn-small
    "kpn-small-ft": dict(
        network="kpn-small",
        init="kpn-small",
        patch=96,
        batch_size=8,
        steps=10000,
        lr=2e-4,
        install_as="kpn-small",
        description=BLIND,
    ),
    # continues kpn-small with a share of samples on the noisy file's min-max scale, the scale the CLI gives it
    # (docs/benchmarks_gaussian_cli.md: -0.5 dB on the user's path); installed over kpn-small when it measures better
    "kpn-small-filerange": dict(
        network="kpn-small",
        init="kpn-small",
        patch=96,
        batch_size=8,
        steps=4000,
        lr=1e-4,
        noisy_range_fraction=0.7,
        install_as="kpn-small",
        description=BLIND + "; 70 % of samples scaled by the noisy image's min-max, as the CLI scales a file",
    ),
    "kpn-small-n2v": dict(
        network="kpn-small",
        patch=96,
        batch_size=8,
        steps=6000,
        lr=5e-4,
        mode="self-supervised",
        simulate_noise=25.0,
        loss="mse",
        description="Self-supervised (Noise2Void-style blind-spot) "
        "2D denoiser trained on noisy images only (Gaussian sigma 25 on the 0-255 scale)",
    ),
    "kpn-small-rician-mr": dict(
        network="kpn-small",
        patch=96,
        batch_size=8,
        steps=5000,
        lr=5e-4,
        noise="rician",
        val_levels="15,25,50",
        modality="mr/",
        description="2D denoiser for magnitude MR with Rician noise, sigma 0-50 on the 0-255 scale, trained on MR only",
    ),
    "kpn-small-speckle-us": dict(
        network="kpn-small",
        patch=96,
        batch_size=8,
        steps=5000,
        lr=5e-4,
        noise="speckle",
        noise_range="0.05,0.5",
        val_levels="0.1,0.2,0.4",
        modality="us/",
        description="2D ultrasound despeckling: multiplicative speckle, relative sigma "
        "0.05-0.5, trained on B-mode ultrasound only",
    ),
    # the general model (X-ray, microscopy, anything without a modality model): blind Gaussian and Poisson-Gaussian
    # noise, half of the noisy samples stored as 8-bit files would be (clipped, rounded), all training modalities
    "kpn-general": dict(
        network="kpn-medium-bias",
        patch=96,
        batch_size=8,
        steps=20000,
        lr=5e-4,
        noise="gaussian:0-55 poisson-gaussian:10-1000,1",
        store_8bit_fraction=0.5,
        description="2D blind denoiser for any modality without a dedicated model (X-ray, "
        "microscopy, photographs of slides): Gaussian sigma 0-55 on the 0-255 scale and "
        "Poisson-Gaussian noise, trained also on 8-bit clipped noisy inputs",
    ),
    # MR: magnitude noise of one coil (Rician) and of 4 or 8 coils (non-central chi), whose background floor the
    # model must remove; MR only. A first run (2026-11-30: init kpn-small-rician-mr, per-coil sigma 0-40 for all
    # coil counts, 639 steps) diverged to val PSNR 27.8 / 15.3 / 17.7 dB: per-coil sigma 40 with 8 coils puts the
    # floor near 4 sigma (~0.6 of the image range). Now the per-coil range shrinks with the coil count (the floor
    # stays below ~0.25 of the range) and training starts from the strong Gaussian kpn-small, which already
    # denoises MR well but keeps the floor. Shipped 2026-12-01 (2428 steps, best val 35.45 / 32.70 / 31.43 dB): on
    # the real-noise benchmark it gains +5.75 dB at 8 coils (bias 1.0 sigma; the Rician model +2.58, 3.4 sigma)
    # but +3.38 / +5.79 at Rician 3 % / 6 % (the Rician model +4.41 / +6.72), so auto gives it multi-coil MR only.
    # Retrained on 2026-12-04 by the GPU one-shot script on an H200 (batch 32, fp16, 2662 steps in 284 s, best val
    # 36.50 / 33.13 / 31.37 dB at step 1000, falling after it): on the real-noise benchmark's held-out brain, the model
    # alone in memory, +4.22 / +6.73 dB at Rician 3 % / 6 % (this model +3.21 / +5.91) but +2.85 at 8 coils (+3.19),
    # the one case auto gives it: not installed.
    "kpn-mr": dict(
        network="kpn-small",
        init="kpn-small",
        patch=96,
        batch_size=8,
        steps=3000,
        lr=2e-4,
        noise="rician:0-40 noncentral-chi:0-15,4 noncentral-chi:0-10,8",
        val_levels="10,20,30",
        modality="mr/",
        description="2D denoiser for magnitude MR: Rician (1 coil, sigma 0-40) and "
        "non-central chi (4 coils sigma 0-15, 8 coils sigma 0-10 per coil) noise, on the 0-255 scale of "
        "the min-max normalized image; trained on MR only. Where the air is empty it leaves the noise floor there "
        "(held-out MNI T1 volume: background bias 1.25 sigma at Rician 3 %, 3.9 at 8 coils); auto removes the "
        "floor after the burst model instead",
    ),
    # 2.5D MR: the Gaussian burst model (which already gains +7.0 dB on Rician 3 % MR but keeps the magnitude bias)
    # fine-tuned on MR volumes with the same magnitude noise as kpn-mr; half its stacks are real adjacent slices,
    # half one slice repeated, so it also takes a lone 2D slice. Tried 2026-12-01 (2418 steps, 4139 s on one thread,
    # best val 34.39 / 32.45 / 31.13 dB): on the real-noise MR it gained +4.49 / +5.25 / +5.16 dB (Rician 3 % / 6 %,
    # nc-chi 8 coils; bias -0.38 / -0.20 / +0.89 sigma), below the Gaussian kpn-burst3 it started from at Rician 3 %
    # (+7.03, bias +0.82 sigma): not shipped
    "kpn-mr-burst3": dict(
        network="kpn-burst3",
        init="kpn-burst3",
        patch=96,
        batch_size=8,
        steps=3000,
        lr=2e-4,
        burst=True,
        noise="rician:0-40 noncentral-chi:0-15,4 noncentral-chi:0-10,8",
        val_levels="10,20,30",
        modality="mr/",
        description="2.5D denoiser for magnitude MR: 3 adjacent slices in, centre slice out; Rician (1 coil, "
        "sigma 0-40) and non-central chi (4 coils sigma 0-15, 8 coils sigma 0-10 per coil) noise on the 0-255 "
        "scale of the min-max normalized image, removing the magnitude noise floor; trained on MR only",
    ),
    # ultrasound: the project's one speckle definition (multiplicative Gamma), fine-tuned from the speckle model
    # that was trained on Gaussian-multiplicative speckle. Retrained on 2026-12-04 by the GPU one-shot script on an
    # H200 (scripts/gpu/oneshot.py: batch 32, fp16 autocast, 2051 steps in 291 s, best val 42.55 / 38.75 / 34.63 dB
    # at 0.1 / 0.2 / 0.4 against the CPU run's 42.37 / 38.59 / 34.45) and installed: on the real-noise benchmark's
    # 5 held-out ultrasound images, in memory, +0.10 / +0.11 / +0.22 dB over the CPU-trained model, better on all 15.
    "kpn-us": dict(
        network="kpn-small",
        init="kpn-small-speckle-us",
        patch=96,
        batch_size=8,
        steps=3000,
        lr=2e-4,
        noise="speckle:0.05-0.5",
        val_levels="0.1,0.2,0.4",
        modality="us/",
        description="2D ultrasound despeckling: multiplicative Gamma(L, 1/L) speckle, relative sigma "
        "0.05-0.5 (L = 1/sigma^2 looks), trained on B-mode ultrasound only",
    ),
    # CT: realistic low-dose noise in HU (body noise 5-100 HU, several kernels, views and electronic noise), fixed
    # HU map -1024..1024 HU -> 0..1 (air at 0 as in the min-max images the burst model was first trained on: a
    # KPN's output is its kernels times the input, so a kernel sum slightly off 1 costs nothing in air at 0 but
    # ~100 HU in air at -2.6, which W400/L40 gives; a first run on W400/L40 ended worse than the noisy input),
    # adjacent slices as a burst. Hamming is held out of training so the benchmark sees an unseen kernel.
    # kpn-ct-burst3 fine-tunes the shipped Gaussian burst model (CPU-sized: features transfer, a fresh start does
    # not converge in a CPU session); kpn-ct-burst5 is the larger model for the GPU one-shot script.
    **{
        name: dict(
            network=network,
            patch=96,
            batch_size=8,
            steps=steps,
            lr=lr,
            burst=True,
            modality="ct/",
            cache_dir=str(Path(__file__).resolve().parents[1] / ".cache" / "ct_terms"),
            scaling="ct_window",
            window="0,2048",
            noise=CT_NOISE,
            val_levels="10,25,60",
            # neighbours 2 and 3 slices away too: the 2 mm chest series then also teaches 4-6 mm spacing, where a
            # model that trusts its neighbours leaves noise near bone (head-ge at 7.4 mm, 2026-12-01: 5-30 px
            # inside the skull the burst left 9.4 HU RMSE where the lone slice left 7.3)
            slice_strides="1,2,3",
            # float32 even on CPUs with native bf16. On an AVX-512 BF16 CPU (2026-12-02) a bf16 run from the shipped
            # model with the kernel heads in bf16 stayed at val ~40 dB for 1500 steps (start 46.5; gain on held-out
            # head / phantom series at ~25 HU 8.7 / 13.6 -> 1.2 / 5.3 dB); in float32 the same recipe also fell at
            # first (41.6 dB at step 500, the learning rate's jolt) but was back at 45.5 dB by step 1000. bf16 with
            # the float32 kernel heads was not run long enough to tell
            precision="fp32",
            pre_denoise=("chest",),
            description=CT_DESCRIPTION % frames,
            **({"init": init} if init else {}),
        )
        for name, network, init, frames, steps, lr in (
            ("kpn-ct-burst3", "kpn-burst3", "kpn-burst3", 3, 12000, 2e-4),
            ("kpn-ct-burst5", "kpn-medium-burst5", "", 5, 12000, 5e-4),
        )
    },
}
# continues the kpn-ct-burst3 of 2026-11-30 (1040 steps from kpn-burst3 toward the noisy chest reference) with the
# chest reference pre-denoised; installed over kpn-ct-burst3 on 2026-12-01 (1396 steps, 2336 s on one thread, val
# 48.47 / 45.29 / 40.76 dB at 10 / 25 / 60 HU against the pre-denoised chest and the head); run again from that model
# on 2026-12-01 with CT padding filled in the training images (1384 steps in 2376 s, two threads shared with a
# benchmark; val 49.62 / 45.90 / 40.86 dB) and installed over kpn-ct-burst3; run once more from that model on
# 2026-12-01 (3492 steps in 2745 s, val 50.08 / 46.40 / 41.66 dB, last = best) and installed over kpn-ct-burst3; run
# once more from that model on 2026-12-01 with slice strides 1-3 (4379 steps in 3180 s, val 50.70 / 46.71 / 42.08 dB,
# last = best) and installed over kpn-ct-burst3
RECIPES["kpn-ct-burst3-ft"] = {**RECIPES["kpn-ct-burst3"], "init": "kpn-ct-burst3", "install_as": "kpn-ct-burst3"}
# the shipped kpn-ct-burst3 grown into a two-scale KPN (a second, half-resolution kernel scale whose conv starts at
# zero, so training starts from the shipped model's output): on head-ge at 7.4 mm its deficit against BM3D sits
# within ~15 mm of bone, where 5x5 kernels over 3 slices leave correlated noise once the neighbours stop helping.
# Run on 2026-12-01 (3426 steps in 2715 s, best val 50.66 / 46.71 / 42.15 dB at step 3000, about level with the
# one-scale model's 50.70 / 46.71 / 42.08) and installed over kpn-ct-burst3: on the benchmark's held-out noisy series
# (one view) +6.26 -> +6.44 dB at ~25 HU, +10.60 -> +10.74 at ~60 HU. kpn-ct-burst3-ft now continues this network;
# its first run on it (2014 steps, 1653 s) ended at val 46.37 dB, below the 46.51 it started from: not installed.
# On one H200 GPU (2026-12-04, oneshot.py, fp32, batch 32, lr 5e-5): 1201 steps in ~225 s, val 50.44 / 46.42 / 42.10
# dB; on the real-noise benchmark's held-out series (model alone) +6.29 dB at ~25 HU (shipped +6.51), +11.04 at ~60 HU
# (shipped +10.96): not installed. Again with the faster sampler: 3538 steps in ~320 s, val 50.56 / 46.49 / 42.21 dB,
# held-out +6.36 / +11.16 dB (better on every volume, -1.1 dB on the lone lumbar-spine slice): not installed.
# the shipped model continued on noise whose grain is 1-3 pixels wide in the fast-model half of the samples
# (`grain`, CTScanner): the one-pixel detector of the simulator made every training noise equally fine, while a
# 0.25-0.3 mm targeted reconstruction (lumbar spine, skull base) has noise 2-3 pixels wide, which the shipped model
# takes for anatomy (held-out lumbar-spine at ~25 HU of 2-pixel grain: +1.0 dB, BM3D +4.3; 1-pixel grain +6.8).
# Run on 2026-12-04 on a 2-core AVX-512 BF16 EPYC in float32 (3438 steps in 3995 s, part of it shared with a
# benchmark; val at grain 1 50.05 / 46.45 / 41.91 dB at 10 / 25 / 60 HU against the starting model's 50.66 / 46.71 /
# 42.15) and installed over kpn-ct-burst3: on training-split series through Denoiser("auto") at ~25 HU (ramp kernel)
# grain 1 / 2 / 3 +8.19 / +5.70 / +1.42 -> +8.14 / +6.11 / +4.47 dB; hann kernel grain 1 / 2 +5.68 / +0.81 -> +5.88 /
# +2.68 (held out: docs/benchmarks_ct_grain.md).
RECIPES["kpn-ct-burst3-grain"] = {
    **RECIPES["kpn-ct-burst3-ft"],
    "noise": CT_NOISE + ",grain=1|3",
    "description": CT_DESCRIPTION % 3
    + "; noise grain 1-3 pixels (the scanner resolving up to 3 pixels, as on small fields of view)",
    # half the from-scratch rate: at 2e-4 the fine-tunes fell ~5 dB at the end of the warm-up before recovering
    "lr": 1e-4,
}
# the grain-trained model continued with a validation at grain 3 beside the grain-1 levels (the trainer validates a
# range's coarsest grain too, so the best step is no longer chosen on fine noise alone) and half its learning rate.
# Run on 2026-12-04 on a 2-core AVX-512 BF16 EPYC in float32, sharing the cores with benchmarks (3516 steps in 4604 s,
# stopped there with the learning rate at ~1e-6): val 49.97 / 46.36 / 41.89 dB at 10 / 25 / 60 HU and 42.20 dB at
# 25 HU grain 3, against the starting model's 50.05 / 46.44 / 41.91 and 42.13 (the mean fluctuated 44.5-45.2 over
# the run, the start's 45.13): level, not installed. More steps of this 5x5-kernel network do not close the grain-3
# gap; a wider support (a coarser kernel scale) is the next candidate.
RECIPES["kpn-ct-burst3-grain-cont"] = {**RECIPES["kpn-ct-burst3-grain"], "lr": 5e-5}
# the shipped model continued with white noise in HU in a third of the samples (5-100 HU; the 0-255 scale of the
# 0..2048 HU training map), beside the grain-1-3 projection noise: on held-out CT with white 25 HU noise the network
# alone gained +7.77 dB and the Gaussian burst model refined +8.63 (2026-12-06), so the CT model had never learned
# noise without the ramp filter's texture (a simulator other than a CT projection one, or a scanner's post-filtered
# images). The grain-trained recipe's low learning rate, so that the projection noise it learned is not jolted away.
# Run on 2026-12-06 on a 2-core AMD EPYC in float32 and stopped after 2250 steps (~0.5 s/step; best val, step 1500,
# 49.93 / 46.44 / 42.05 dB at 10 / 25 / 60 HU and 41.93 at 25 HU grain 3, against the starting model's 50.05 / 46.44 /
# 41.91 / 42.13): that step on the real-noise benchmark's six held-out CT series, network alone in memory, white 25 HU
# +7.77 -> +7.73 dB, setting A 25 HU (projection noise, hamming kernel) +6.56 -> +6.22: not installed. A 5x5-kernel
# network learns little of white noise in 2000 CPU steps; the GPU one-shot script trains it longer (GPU_RECIPES).
RECIPES["kpn-ct-burst3-white"] = {
    **RECIPES["kpn-ct-burst3-grain-cont"],
    "noise": f"{CT_NOISE},grain=1|3 {CT_NOISE},grain=1|3 gaussian:0.6-12.5",
    "description": RECIPES["kpn-ct-burst3-grain"]["description"] + "; white noise 5-100 HU in a third of the samples",
}
# the grain-trained model grown by wide coarse kernels (taps 2 coarse pixels apart: an 18-pixel support where the two
# scales reach 10), for noise 2-3 pixels wide, where the continued run above stayed level (grain 3 ~4.3 dB below
# grain 1 on the validation slices); the new conv starts at zero, so training starts from the shipped model's output.
# Run on 2026-12-04 on a 2-core AVX-512 BF16 EPYC in float32, part of it sharing the cores with the CI (3060 steps in
# 3234 s of steps; val fell to 41.3-44.7 in the learning rate's jolt, then at the last step 50.07 / 46.45 / 41.97 dB
# at 10 / 25 / 60 HU and 42.16 at 25 HU grain 3, against the shipped model's 50.05 / 46.44 / 41.91 / 42.13): level,
# not installed. The wider support found no use in 3000 CPU steps; a longer (GPU) run would tell
RECIPES["kpn-ct-msw-burst3"] = {
    **RECIPES["kpn-ct-burst3-grain"],
    "network": "kpn-msw-burst3",
    "init": "kpn-ct-burst3",
    "grow": "kpn-msw-burst3",
    "install_as": "kpn-ct-burst3",
}
RECIPES["kpn-ct-ms-burst3"] = {
    **RECIPES["kpn-ct-burst3"],
    "network": "kpn-ms-burst3",
    "init": "kpn-ct-burst3",
    "grow": "kpn-ms-burst3",
    "install_as": "kpn-ct-burst3",
}

# the shipped two-scale kpn-ct-burst3 grown once more, by full-resolution kernels with taps 2 pixels apart (zero at
# the start, so training starts from the shipped model's output): within 5 px of bone in the 7.4 mm head the model
# leaves 13.4 HU against BM3D's 9.1, where the coarse scale's 2x2 averages mix in bone and a 5x5 window holds too few
# brain pixels (docs/benchmarks_real_noise.md). Run on 2026-12-02 in float32 (2427 steps in 1063 s; val 46.51 ->
# 41.60 at step 500, the learning rate's jolt, -> 50.40 / 46.61 / 42.27 dB at 10 / 25 / 60 HU at the last step, the
# shipped model's 50.66 / 46.71 / 42.15): on the benchmark's held-out A 25 HU series, in memory, +6.44 dB mean gain
# against the shipped model's +6.55 (head-ge 8.42 vs 8.75): not installed.
RECIPES["kpn-ct-msd-burst3"] = {
    **RECIPES["kpn-ct-ms-burst3"],
    "network": "kpn-msd-burst3",
    "grow": "kpn-msd-burst3",
}

# the shipped two-scale kpn-ct-burst3 grown by a full-resolution head: its kernels come from half-resolution
# features upsampled bilinearly, so they cannot change at an edge between two half-resolution positions, and within
# 5 px of bone in the 7.4 mm head the model leaves 13.4 HU against BM3D's 9.1 (docs/benchmarks_real_noise.md). The
# head gates every tap of every pixel's kernels from the first encoder block's full-resolution features; it starts
# with no effect, so training starts from the shipped model's output. A quarter of the earlier CT fine-tunes'
# learning rate, whose 2e-4 cost ~5 dB of validation PSNR in the first 500 steps before they recovered. Run on
# 2026-12-02 in float32
# (2500 steps in 2008 s, val 46.41 -> 46.21 at step 500 -> 50.52 / 46.65 / 42.27 dB at 10 / 25 / 60 HU at the last
# step, the shipped model's 50.66 / 46.71 / 42.15): on the benchmark's held-out A 25 HU series, in memory on the same
# machine, +6.36 dB mean gain against the shipped model's +6.55 (head-ge 8.64 vs 8.75, lumbar-spine 5.65 vs 6.47):
# not installed.
RECIPES["kpn-ct-msf-burst3"] = {
    **RECIPES["kpn-ct-ms-burst3"],
    "network": "kpn-msf-burst3",
    "grow": "kpn-msf-burst3",
    "lr": 5e-5,
    "steps": 2500,
}

# kpn-small grown into a two-scale KPN (half-resolution kernels whose conv starts at zero) and trained on the
# user's path like kpn-small-filerange: against BM3D through the CLI the default is short at sigma 15 / 25 on MR
# and US, whose flat regions a 5x5 support averages over too few pixels. Run on 2026-12-02 (5765 steps in 2532 s,
# val on the user's path 33.78 at step 500 -> 34.27 dB at the last step) and installed over kpn-small: through
# the CLI 37.12 / 34.70 / 31.17 -> 37.22 / 34.82 / 31.32 dB at sigma 15 / 25 / 50 (docs/benchmarks_gaussian_cli.md)
RECIPES["kpn-small-ms"] = {
    **RECIPES["kpn-small-filerange"],
    "network": "kpn-ms-small",
    "grow": "kpn-ms-small",
    "steps": 6000,
}

# the CPU-sized general model: the shipped two-scale kpn-small continued on the general recipe's noise (blind
# Gaussian and Poisson-Gaussian, some noisy samples stored as 8-bit files would be) on the user's path (70 % of
# samples on the noisy file's min-max scale, as the CLI scales a file). The GPU one-shot script trains the larger
# kpn-general recipe; this one fits a CPU session. Run on 2026-12-02 (9000 steps in 3813 s, best val 36.95 / 34.60 /
# 31.10 dB at step 4500, kpn-small's 37.03 / 34.65 / 31.12): through the CLI level with kpn-small on Poisson-Gaussian
# noise (34.08 / 37.27 / 39.91 vs 34.06 / 37.26 / 39.99 dB at 30 / 100 / 300 counts, docs/benchmarks_poisson_cli.md)
# and below it on the Gaussian protocol (37.07 / 34.71 / 31.30 vs 37.22 / 34.81 / 31.32): not installed.
RECIPES["kpn-general-cpu"] = {
    **RECIPES["kpn-general"],
    "network": "kpn-ms-small",
    "init": "kpn-small",
    "steps": 9000,
    "lr": 1e-4,
    "noisy_range_fraction": 0.7,
    "store_8bit_fraction": 0.3,
    "install_as": "kpn-general",
}

# kpn-small continued with half of its samples at sigma 0-25: through the CLI the default is 0.44 dB below BM3D at
# sigma 15 and 0.44 dB above it at sigma 50 (docs/benchmarks_gaussian_cli.md), so low noise gets the larger share.
# Run on 2026-12-02 (9000 steps in 2289 s, best val 37.11 / 34.72 / 31.16 dB at step 8500, kpn-small's 37.03 / 34.65
# / 31.12); through the CLI on the 14 held-out references (default flags, --weights) 37.32 / 34.90 / 31.38 dB at sigma
# 15 / 25 / 50, kpn-small's 37.22 / 34.81 / 31.32. Those weights were lost with the session's ignored run folder;
# run again in a later session (9000 steps in 1307 s, best val 37.11 / 34.71 / 31.16 dB at step 8500; through the CLI
# 37.32 / 34.89 / 31.38) and installed as kpn-general, the model `auto` gives files without a modality, X-ray and
# microscopy (kpn-small stays as it was, so the real-noise benchmark's kpn-small rows still hold); then continued by
# kpn-general-filerange.
#: the general model's card description; ``share``: the percentage of samples on the noisy file's min-max scale
GENERAL_DESCRIPTION = (
    "2D single-channel blind denoiser for modalities without a dedicated model (X-ray, microscopy, other): Gaussian "
    "noise sigma 0-50 on the 0-255 scale of the normalized image, half of the samples at sigma 0-25; {share} % of "
    "samples scaled by the noisy image's min-max, as the CLI scales a file"
)
RECIPES["kpn-small-low-sigma"] = {
    **{k: v for k, v in RECIPES["kpn-small-ms"].items() if k != "grow"},  # already two-scale
    "steps": 9000,
    "noise": "gaussian:0-50 gaussian:0-25",
    "description": GENERAL_DESCRIPTION.format(share=70),
    "install_as": "kpn-general",
}

# the shipped kpn-general continued with 90 % of its samples on the noisy file's min-max scale: every user path (CLI,
# Slicer, bundle) scales a file by its noisy range, and through the CLI kpn-general is 0.13-0.19 dB below its own 8
# views in memory (docs/benchmarks_gaussian_cli.md), where the clean range is handed over. Run on 2026-12-02 (9000
# steps in 1335 s, val 37.14 / 34.75 / 31.22 dB at the last step = best, from 37.11 / 34.71 / 31.16) and installed
# over kpn-general: through the CLI 37.32 / 34.89 / 31.38 -> 37.41 / 34.97 / 31.46 dB at sigma 15 / 25 / 50.
RECIPES["kpn-general-filerange"] = {
    **RECIPES["kpn-small-low-sigma"],
    "init": "kpn-general",
    "noisy_range_fraction": 0.9,
    "description": GENERAL_DESCRIPTION.format(share=90),
}

# kpn-general continued with an MSE loss (every recipe above trains on L1): PSNR is an MSE score, and an L1-trained
# network switched to L2 for its last steps is the usual way to gain the last ~0.1 dB of PSNR (the Gaussian protocol
# through the CLI is 0.25 dB below BM3D at sigma 15). Run on 2026-12-02 on an AVX-512 BF16 CPU (6000 steps in 913 s,
# val 37.14 / 34.75 / 31.22 -> 37.19 / 34.78 / 31.24 dB): through the CLI 37.50 / 35.03 / 31.46 dB at sigma 15 / 25 /
# 50 (kpn-general 37.41 / 34.97 / 31.46), but it was trained with the KPN's kernels in bf16, before they were kept in
# float32 under autocast; with the float32 kernels every inference now uses it scored 37.46 / 34.98 / 31.41 dB, level
# with kpn-general (trained in float32): not installed. Run again with the float32 kernel heads (6000 steps in 849 s,
# the same validation numbers) and installed over kpn-general: through the CLI on the same machine 37.38 / 34.93 /
# 31.41 -> 37.50 / 35.03 / 31.46 dB at sigma 15 / 25 / 50, Poisson-Gaussian 34.21 / 37.44 / 40.22 dB.
RECIPES["kpn-general-mse"] = {
    **RECIPES["kpn-general-filerange"],
    "steps": 6000,
    "lr": 5e-5,
    "loss": "mse",
    "install_as": "kpn-general",
}

# the shipped kpn-general grown by the full-resolution head that gates its upsampled kernels per pixel (see
# kpn-ct-msf-burst3): through the CLI the general model is 0.16 dB below BM3D at sigma 15, most on brain MR (-0.53)
# and ultrasound, where edges and fine texture are what a smooth kernel field blurs. Run on 2026-12-02 (an AVX-512
# BF16 CPU): with lr 1e-4 and 8000 planned steps the validation fell from 34.40 to 34.32 dB (mean of sigma 15 / 25 /
# 50) by step 824 and the run was stopped; with lr 3e-5 (3000 steps in 587 s) it climbed back to 34.40 (37.20 /
# 34.78 / 31.23 dB, kpn-general's 37.19 / 34.78 / 31.24): no gain, not installed.
RECIPES["kpn-general-msf"] = {
    **RECIPES["kpn-general-mse"],
    "network": "kpn-msf-small",
    "init": "kpn-general",
    "grow": "kpn-msf-small",
    "steps": 3000,
    "lr": 3e-5,
}

# the shipped kpn-general grown by full-resolution kernels with taps 2 pixels apart (a 9x9 support): on the 14
# held-out Gaussian references at sigma 15 the general model's error is below BM3D's in flat regions and above it at
# edges (the top 10 % of the clean image's gradient) on brain MR and ultrasound (benchmarks/error_by_region.py,
# docs/benchmarks_error_by_region.md), where BM3D averages along an edge over far more pixels than a 5x5 kernel
# holds. Run on 2026-12-03 (an AVX-512 BF16 CPU; 3000 steps in 471 s): val 34.40 -> 34.35 at step 500 (mean of sigma
# 15 / 25 / 50), back to 37.20 / 34.78 / 31.23 dB at the last step (kpn-general 37.19 / 34.78 / 31.24); in memory
# on the benchmark's references (8 views) 37.65 / 35.12 dB at sigma 15 / 25 against 37.63 / 35.09, its edge error
# 2.05 against 2.06 (0-255 scale): the wider support is not what the edges lack. Not installed.
RECIPES["kpn-general-msd"] = {
    **RECIPES["kpn-general-mse"],
    "network": "kpn-msd-small",
    "init": "kpn-general",
    "grow": "kpn-msd-small",
    "steps": 3000,
    "lr": 3e-5,
}

# kpn-general-mse continued at a lower learning rate (the last MSE run still gained on validation at its end). Run on
# 2026-12-03 (an AVX-512 BF16 CPU; 6000 steps in 1105 s): val 34.34 at step 500 (mean of sigma 15 / 25 / 50, from
# 34.40), 37.195 / 34.784 / 31.242 dB at the last step against kpn-general's 37.19 / 34.78 / 31.24: the small
# general model is at its plateau on this data; not installed.
RECIPES["kpn-general-mse2"] = {**RECIPES["kpn-general-mse"], "lr": 3e-5}

_BURST_GROUPS = {"chest": "chest_ct", "head": "ct_ge_head", "phantom": "philips_head_phantom"}
#: where pre-denoised copies of staged series live (``<series>`` for training, ``<series>_val`` for validation)
_CLEAN = ROOT / ".cache" / "ct_clean"
PRE_DENOISED_NOTE = " (reference pre-denoised with BM3D, noise PSD estimated from the series)"


def _pre_denoised(folder: Path) -> Path:
    """A BM3D copy of a staged CT series (``.cache/burst_train/<series>`` or ``burst_val/<series>``), made once
    through the CLI with ``--sigma auto`` (noise PSD estimated from the series).

    Why: a network learns toward its reference. The 2 mm chest series carries ~27 HU of its own noise, so with it
    as the reference a network learns to keep noise of that size (kpn-ct-burst3 of 2026-11-30 gained +3 dB at
    25 HU on quiet held-out heads where NLM gains +9). BM3D with the series' own PSD removes most of that noise;
    what it blurs is finer than the noise it removes at these doses."""
    out = _CLEAN / (folder.name + ("_val" if folder.parent.name == "burst_val" else ""))
    if not out.is_dir():
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)  # a fresh checkout has no .cache yet
        print(f"pre-denoising {folder} with BM3D into {out} (once; ~11 s per 512x512 slice)", flush=True)
        subprocess.check_call(
            [
                sys.executable,
                "-m",
                "meddenoiselib",
                "denoise",
                str(folder),
                str(partial),
                "--model",
                "bm3d",
                "--sigma",
                "auto",
                "--quiet",
            ]
        )
        partial.rename(out)
    return out


def _burst_inputs(cache: Path, files: list[Path]) -> list[Path]:
    """Inputs for burst models: the contiguous slices of each CT series among ``files`` as one series folder
    (symbolic links under ``cache/<series>``), the other files as they are."""
    inputs = []
    for name, key in _BURST_GROUPS.items():
        members = [f for f in files if key in str(f)]
        if not members:
            continue
        folder = cache / name
        folder.mkdir(parents=True, exist_ok=True)
        for f in members:
            link = folder / f.name
            if not link.exists():
                link.symlink_to(f)
        inputs.append(folder)
    singles = [f for f in files if not any(key in str(f) for key in _BURST_GROUPS.values())]
    return inputs + singles


def _unstage(entries: list[str]) -> list[str]:
    """Card data entries with each staged burst folder (``burst_train/<series>``, ``burst_val/<series>``) replaced
    by its source files."""
    unstaged = []
    for entry in entries:
        folder = ROOT / ".cache" / entry
        stage, _, series = entry.partition("/")
        if stage in ("burst_train", "burst_val") and series in _BURST_GROUPS:
            source = train_files() + validation_files()
            unstaged += [
                f"{f.parent.name}/{f.name}"
                for f in source
                if _BURST_GROUPS[series] in str(f) and (f.parent / f.name).name in _staged(folder)
            ]
        elif stage == "ct_clean" and series.removesuffix("_val") in _BURST_GROUPS:
            staged = ROOT / ".cache" / ("burst_val" if series.endswith("_val") else "burst_train")
            unstaged += [e + PRE_DENOISED_NOTE for e in _unstage([f"{staged.name}/{series.removesuffix('_val')}"])]
        elif folder.is_dir():
            raise ValueError(f"card entry {entry!r} is a staging folder without a known source")
        else:
            unstaged.append(entry)
    return unstaged


def _staged(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def recipe_inputs(recipe: dict) -> tuple[list[Path], list[Path]]:
    """The training and validation inputs of a recipe: its modality's files, CT series staged as folders for burst
    models (each contiguous series one input)."""
    inputs, validation = train_files(), validation_files()
    modality = recipe.get("modality", "")
    if modality:
        inputs = [p for p in inputs if f"/{modality}" in str(p)]
        validation = [p for p in validation if f"/{modality}" in str(p)]
    if recipe.get("burst", False):
        inputs = _burst_inputs(ROOT / ".cache" / "burst_train", inputs)
        validation = _burst_inputs(ROOT / ".cache" / "burst_val", validation)
    clean = set(recipe.get("pre_denoise", ()))
    inputs = [_pre_denoised(p) if p.name in clean and p.is_dir() else p for p in inputs]
    validation = [_pre_denoised(p) if p.name in clean and p.is_dir() else p for p in validation]
    return inputs, validation


def recipe_options(recipe: dict) -> dict:
    """The recipe's ``train`` options (everything but how its inputs are chosen)."""
    return {k: v for k, v in recipe.items() if k not in ("install_as", "burst", "modality", "pre_denoise")}


def command(
    name: str, recipe: dict, output: Path, steps: int | None, threads: int, resume: bool, time_budget: float = 0.0
) -> list[str]:
    inputs, validation = recipe_inputs(recipe)
    recipe = recipe_options(recipe)
    args = [
        sys.executable,
        "-m",
        "meddenoiselib",
        "train",
        *map(str, inputs),
        "--val-inputs",
        *map(str, validation),
        "--output",
        str(output),
        "--name",
        name,
        "--threads",
        str(threads),
        "--val-every",
        "500",
        "--checkpoint-every",
        "250",
        "--no-progress",
    ]
    if steps:
        recipe["steps"] = steps
    if time_budget:
        recipe["time_budget"] = time_budget
    for key, value in recipe.items():
        # several noise models are separate arguments
        args += [f"--{key.replace('_', '-')}", *(str(value).split() if key == "noise" else [str(value)])]
    if resume:
        args.append("--resume")
    return args


def install(name: str, output: Path, snapshot: bool = False) -> None:
    if snapshot:
        # the best weights so far of a run that may still be going
        from meddenoiselib.training import export_checkpoint

        export_checkpoint(output, output / "model.safetensors")
    card = json.loads((output / "model.json").read_text())
    base = card["training"].get("init")
    name = RECIPES.get(name, {}).get("install_as", name)
    if base and (WEIGHTS / f"{base}.json").is_file():
        # fine-tuned from a shipped model: keep how that model was trained, so the card tells the whole story
        base_card = json.loads((WEIGHTS / f"{base}.json").read_text())
        card["training"]["base_training"] = base_card["training"]
        card["training"]["base_validation"] = base_card["validation"]
    card["name"] = name
    card["training"]["data"] = _unstage(card["training"].get("data", []))
    card["training"]["validation_data"] = _unstage(card["training"].get("validation_data", []))
    card["training"]["data_root"] = "../shared/data (see scripts/data_split.py for the split)"
    shutil.copy(output / "model.safetensors", WEIGHTS / f"{name}.safetensors")
    (WEIGHTS / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"installed {WEIGHTS / name}.safetensors (val PSNR {card['validation'].get('psnr')})")
    # the MONAI bundle ships plain state_dicts made from these weights: keep them in step
    subprocess.check_call([sys.executable, str(ROOT / "scripts" / "export_bundle_weights.py")])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--steps", type=int, help="override the recipe's step count")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time-budget", type=float, default=0.0, help="seconds; fits the step count to it")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--install", action="store_true", help="only copy runs/NAME into the package weights")
    parser.add_argument("--snapshot", action="store_true", help="with --install: export the run's checkpoint first")
    args = parser.parse_args()
    output = ROOT / "runs" / args.name
    if args.install:
        install(args.name, output, snapshot=args.snapshot)
        return 0
    if not DATA_ROOT.is_dir():
        parser.error(f"training data not found at {DATA_ROOT} (set MEDDENOISE_DATA)")
    cmd = command(args.name, RECIPES[args.name], output, args.steps, args.threads, args.resume, args.time_budget)
    print(shlex.join(cmd), flush=True)
    return subprocess.call(cmd, env=dict(os.environ, PYTHONUNBUFFERED="1"))


if __name__ == "__main__":
    sys.exit(main())
