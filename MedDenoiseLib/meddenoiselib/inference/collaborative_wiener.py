"""Collaborative Wiener filtering guided by a network's output: BM3D's second stage with the network as pilot.

K. Dabov, A. Foi, V. Katkovnik, K. Egiazarian, "Image denoising by sparse 3-D transform-domain collaborative
filtering", IEEE TIP 16(8), 2007, section "Wiener filtering": blocks similar to each reference block are found on a
*pilot* estimate, the matching blocks of the noisy image are stacked, transformed (2D DCT per block, Walsh-Hadamard
across the stack), shrunk by the empirical Wiener gain ``|pilot coefficient|^2 / (|pilot coefficient|^2 + sigma^2)``,
transformed back and averaged into the image with weights ``1 / (sigma^2 * sum of gains^2)`` and a Kaiser window.
BM3D's pilot is its own hard-thresholding stage; here it is the network's output. BM3D takes one noise level; here
the noise variance is fitted per slice as a line in the intensity (:func:`estimate_noise_level`), so photon noise,
which grows with the signal (X-ray, microscopy), is filtered as strongly as it is where it is; or, for correlated
noise (CT after filtered back-projection), it is a variance per DCT coefficient (:class:`NoiseSpectrum`), as BM3D
takes a noise PSD (Mäkinen, Azzari, Foi, "Collaborative filtering of correlated noise", IEEE TIP 29, 2020).

Why: on the Gaussian protocol the general network is better than BM3D in flat regions and worse at edges (brain MR,
ultrasound; docs/benchmarks_error_by_region.md), where BM3D averages each block jointly with its matches along the
edge, which a 5x5 per-pixel kernel cannot. The Wiener stage adds exactly that, and its errors are partly independent
of the network's, so the model's output and the filtered image are averaged (share per model below, chosen on
training images; docs/benchmarks_gaussian_cli.md). On low-dose CT the 2.5D model leaves low-frequency noise that
a 5x5 kernel per slice cannot see as noise; a Wiener filter that knows the noise spectrum removes it
(docs/benchmarks_real_noise.md).

Written from the paper's description; torch only, so it runs on the Denoiser's device.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import OptionError
from ..transforms.estimate import dct_matrix
from ..transforms.noise_level import NoiseLevel, estimate_noise_level
from .allocator import freed_memory_kept

__all__ = [
    "BM3D_SEARCH",
    "REFINED_MODELS",
    "CT_NOISE_FACTOR",
    "CUDA_VOLUME_MAX_PIXELS",
    "LARGE_IMAGE_MAX_PIXELS",
    "LARGE_VOLUME_MAX_PIXELS",
    "SHORT_VOLUME_MAX_PIXELS",
    "CT_VOLUME_SEARCH",
    "MR_IMAGE_MAX_PIXELS",
    "MR_VOLUME_SEARCH",
    "BlockSearch",
    "NoiseLevel",
    "NoiseSpectrum",
    "Refinement",
    "collaborative_hard_threshold",
    "collaborative_wiener",
    "estimate_noise_level",
    "slices_noise_sigma",
    "refine_slices",
]

#: block edge (pixels) of the 2D DCT
BLOCK = 8
#: Kaiser window shape of the aggregation weights (BM3D's beta)
KAISER_BETA = 2.0
#: BM3D's hard threshold of its first stage (lambda_3D), in noise standard deviations
HARD_THRESHOLD = 2.7
#: candidate distances (references x candidates) gathered before each top-k of the block matching (memory: 4 bytes each)
MATCH_MERGE_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class BlockSearch:
    """Where similar blocks are looked for: ``radius`` pixels around each reference block (on the pilot), reference
    blocks every ``step`` pixels, ``matches`` blocks per group (a power of 2)."""

    radius: int
    step: int
    matches: int


#: BM3D's Wiener-stage settings for sigma up to 40 on the 0-255 scale, with 16 instead of 32 blocks per group
#: (faster; on the training images of :data:`REFINED_MODELS` 36.45 / 34.07 / 30.69 dB with 16, 36.44 / 34.06 /
#: 30.70 with 32); a step of 2 gained 0.005 dB at sigma 15 for 2.25x the time. ~3-5 s per 512x512 slice on 2 cores.
BM3D_SEARCH = BlockSearch(radius=19, step=3, matches=16)

#: a search ~20x cheaper, for whole CT volumes on a CPU: 9x9 px, references every 6 pixels, 8 blocks per group,
#: ~0.08 s per 512x512 slice with its 2 neighbours on 2 cores against ~1.8 s, so that a 512x512x300 CT stays within
#: ~1.3x the network's own time (~4 min on the slowest 2-core machine measured). Chosen on 16 CT volumes of the
#: *training* split (8 slices each of the chest 050-057 and 076-083, the GE head 05-12 and the Philips head phantom
#: I700-I770; training kernels ramp / cosine at 25 and 60 HU, and cosine at 25 HU with noise of grain 2; the
#: network's output with one view as the pilot; 3 adjacent slices matched; W400 PSNR gain over the body, mean, at
#: the best of shares 0.4-0.8; s per slice): network alone +5.33 dB; BM3D's search +5.84 (1.8 s); radius 7 / step 4 /
#: 16 blocks +5.82 (0.38 s); radius 5 / step 4 / 8 +5.77 (0.17 s); radius 2 / step 4 / 8 +5.73 (0.12 s); radius 4 /
#: step 5 / 8 +5.71 (0.11 s); radius 5 / step 6 / 16 +5.73 (0.15 s); **radius 4 / step 6 / 8 +5.67** (0.08 s; share
#: 0.4 / **0.5** / 0.6 / 0.7: +5.66 / **+5.67** / +5.66 / +5.62; positive on each of the 4 volumes and settings:
#: phantom +0.16, chest +0.17-0.21, head +0.81); radius 3 / step 6 / 8 +5.66 (0.07 s); radius 5 / step 5 / 4 blocks
#: +5.61 (0.08 s); radius 5 / step 4 / 8 in-plane only +5.66 (0.15 s).
CT_VOLUME_SEARCH = BlockSearch(radius=4, step=6, matches=8)

#: the search for CT volumes between the full refinement's 32 slices and :data:`MEDIUM_VOLUME_MAX_PIXELS` (a thick-slice
#: chest or abdomen, a 5 mm head: tens of slices, which the cheapest search gave ~0.15 dB less than it could afford):
#: 16 blocks within 15x15 px on 3 slices, a reference block every 4 pixels, ~0.3 s per 512x512 slice on 2 cores. The
#: same 16 training volumes and sweep as :data:`CT_VOLUME_SEARCH` (one-view pilot), share 0.4 / 0.5 / **0.6** / 0.7 /
#: 0.8: +5.72 / +5.78 / **+5.81** / +5.82 / +5.81 dB (BM3D's search +5.81 at 0.6, the cheapest search +5.67 at its
#: best); per setting at 0.6: ramp 25 HU +5.71 (BM3D's search +5.73), cosine 25 HU +4.49 (+4.49), ramp 60 HU +10.35
#: (+10.36), cosine 25 HU with grain 2 +2.68 (+2.67); on the flat phantom 0.6 keeps +9.55 where 0.7 drops to +9.48.
#: With the network's 4-view self-ensemble as the pilot (volumes of up to :data:`MEDIUM_VOLUME_4_VIEWS_MAX_PIXELS`):
#: network alone +5.56 (one view +5.33), refined at 0.5 / **0.6** / 0.7 +5.88 / **+5.89** / +5.88; above the one-view
#: pilot in every setting (+0.08-0.09 at 25 / 60 HU, +0.06 with grain 2) and anatomy (chest +0.04, head +0.13,
#: phantom +0.12).
CT_MEDIUM_VOLUME_SEARCH = BlockSearch(radius=7, step=4, matches=16)

#: the search for fine magnitude MR volumes (with blocks of the adjacent slices too; share 1.0, one view). Measured on
#: the *training* MR_Gd volume (176x188x144, 1 mm; uint8 x 16), ``Denoiser(modality="mr")`` as ``auto`` runs it
#: (burst model, filtered image, floor removed), the gain over the head at Rician 3 % / 6 % / non-central chi 3 %
#: with 8 coils: network alone +0.73 / +3.88 / +1.58 dB; BM3D's search in-plane (the default then up
#: to 32 slices) +2.40 / +4.32 / +3.05 (~16 s over the volume); radius 4 / step 6 / 8 blocks in-plane +2.44 / +4.30 /
#: +3.10, on 3 slices +2.50 / +4.49 / +3.16; radius 5 / step 4 / 8 in-plane +2.52 / +4.36 / +3.18, **on 3 slices
#: +2.64 / +4.60 / +3.30** (~3.5 s over the volume); radius 7 / step 3 / 16 in-plane +2.47 / +4.34 / +3.13.
MR_VOLUME_SEARCH = BlockSearch(radius=5, step=4, matches=8)
#: fine magnitude MR up to this many pixels (a 2D image of up to 512x512, or a few small slices) gets BM3D's search;
#: larger (every volume of any size) :data:`MR_VOLUME_SEARCH` on 3 slices. Training MR, ``Denoiser(modality="mr")``,
#: gain over the head, mean of Rician 3 % / 6 % / non-central chi 3 % with 8 coils: on 3 slabs of 16 slices of
#: MR_Gd (slices 40 / 70 / 100 on) BM3D's search in-plane +3.56 dB (the earlier default), on 3 slices +3.76,
#: MR_VOLUME_SEARCH on 3 slices **+3.83** (each of the 9 cases above both, at ~1/4 of the first's time); on single
#: slices (MR_Gd 60 / 90 / 115, the two itk-elastix brain slices; 15 cases) BM3D's search +3.28, MR_VOLUME_SEARCH
#: +3.31, but below it on the itk-elastix slices at Rician 6 % (-0.06 / -0.08), so single images keep BM3D's.
MR_IMAGE_MAX_PIXELS = 512 * 512


@dataclass(frozen=True)
class Refinement:
    """How a model's output is refined by default (``Denoiser(refine="auto")``).

    Attributes:
        share: weight of the filtered image in the average with the network's output, in [0, 1].
        correlated: the noise model: False, a variance line in the intensity per slice (white Gaussian or
            Poisson-Gaussian noise); True, a variance per DCT coefficient measured in flat tissue
            (:class:`NoiseSpectrum`; CT).
        volumes: also refine volumes (every slice along the slice axis), not only a single 2D image.
        max_pixels: the most pixels (all slices together) refined by default, for time (0: none on a CPU, a tier
            for CUDA devices).
        cuda_max_pixels: the same on a CUDA device (~50x faster there); None: ``max_pixels``.
        search: the block search.
        pilot_views: geometric views the network averages (its self-ensemble) when a volume is refined:
            the network's output is the pilot whose spectrum sets the Wiener gains, so a better pilot is worth its
            time here (a single 2D image gets 8 views whatever this says). Only with ``ensemble="auto"``.
        neighbours: slices on each side of a volume's slice whose blocks join its groups (see
            :func:`collaborative_wiener`); 0 filters each slice on its own.
        larger: how volumes above ``max_pixels`` are refined instead (a cheaper search, up to its own
            ``max_pixels``); None leaves them to the network.
        noise_factor: the measured noise spectrum (``correlated``) is multiplied by this in the Wiener gains
            (:data:`CT_NOISE_FACTOR`).
        threshold_pilot: the Wiener stage's pilot is the average of the network's output and BM3D's
            hard-thresholding stage (:func:`collaborative_hard_threshold`) instead of the network's output alone:
            where the network smoothed detail away, its empirical Wiener gains would remove that detail too
            (measured on MR: :data:`REFINED_MODELS`). The Wiener stage reuses the groups the thresholding matched
            on the network's output; ~1.3x the refinement's time.
        series: also refine each frame of a 4D series (its frames one by one, as volumes, with one view of the
            network as the pilot); the tier (``max_pixels``, ``larger``) is chosen by the whole series' pixels.
        share_by_noise: for white or Poisson-Gaussian noise (not ``correlated``), the share as a function of the
            noise: ``(sigma, share)`` knots, sigma on the 0-255 scale of the normalized image (the root of the
            fitted noise level's mean variance over the slices, or the sigma given), interpolated in log sigma and
            held beyond the first and last knot (:meth:`share_for`); empty: ``share`` at every level.
    """

    share: float
    correlated: bool = False
    volumes: bool = False
    max_pixels: int = 1024 * 1024
    cuda_max_pixels: int | None = None
    search: BlockSearch = BM3D_SEARCH
    pilot_views: int = 1
    neighbours: int = 0
    larger: Refinement | None = None
    noise_factor: float = 1.0
    threshold_pilot: bool = False
    series: bool = False
    share_by_noise: tuple[tuple[float, float], ...] = ()

    def share_for(self, sigma_255: float | None) -> float:
        """The share for noise of ``sigma_255`` (0-255 scale of the normalized image; None: unknown)."""
        if not self.share_by_noise or sigma_255 is None or not np.isfinite(sigma_255) or sigma_255 <= 0:
            return self.share
        knots = np.array(self.share_by_noise, dtype=np.float64)
        return float(np.interp(np.log(sigma_255), np.log(knots[:, 0]), knots[:, 1]))


def slices_noise_sigma(noisy: np.ndarray, pilot: np.ndarray, slices: range | None = None) -> float:
    """The root of the mean noise variance of ``(Z, H, W)`` slices (:func:`estimate_noise_level` per slice, its
    variance line evaluated at the pilot's intensities), in the slices' units; ``slices``: only those."""
    indices = range(noisy.shape[0]) if slices is None else slices
    variances = []
    for k in indices:
        level = estimate_noise_level(noisy[k], pilot[k])
        intensity = torch.from_numpy(np.clip(pilot[k], 0.0, None).astype(np.float64))
        variances.append(float(level.variance(intensity).mean()))
    return float(np.sqrt(max(np.mean(variances), 0.0))) if variances else 0.0


#: models whose outputs are refined by default, with the share of the Wiener-filtered image in the average.
#: ``kpn-general`` (single 2D images): chosen on 17 *training* images (CT, MR, US, X-ray, fundus, microscopy;
#: central 384 px crops): the model with 8 views 36.37 / 34.01 / 30.70 dB at Gaussian sigma 15 / 25 / 50, averaged
#: with 30 % of the filtered image 36.45 / 34.07 / 30.69, with 40 % 36.46 / 34.06 / 30.65, with 50 % 36.45 / 34.04 /
#: 30.60; on Poisson-Gaussian noise of 30 / 100 / 300 counts 33.12 / 36.07 / 38.55 -> 33.18 / 36.17 / 38.68 with 30 %
#: (the network trained on these images, so it is stronger there than on new ones).
#: ``kpn-ct-burst3`` (CT slices and volumes; the tiers by size below): chosen on 12 series of the
#: *training* split (6 central slices each of the chest 038-089, the GE head 01-22 and the Philips head phantom, all of
#: which trained the network; fast-model noise of the training kernels ramp and cosine at 25 and 60 HU; W400 PSNR gain
#: over the body of the 3 middle slices, normalized units as here): the network with 1 view +10.90 dB, refined at
#: 40 / 50 / 60 / 70 / 80 % +11.44 / +11.49 / **+11.50** / +11.47 / +11.41; with its 4-view self-ensemble as the pilot
#: (``pilot_views``) +11.26 alone, refined +11.64 / **+11.65** / +11.63 / +11.57 / +11.49; 32 blocks per group +11.62
#: at best (50 %), for twice the time. Per anatomy the best share differs: 40 % on the phantom (flat water, where the
#: network is smoother), 70-80 % on the chest and head slices. (Until 2026-12-03 the share, 60 %, and the pilot's
#: views were chosen on a set whose head and chest slices were the real-noise benchmark's held-out series; see
#: docs/benchmarks_real_noise.md.) Blocks matched on the adjacent slices too (``neighbours=1``; same 12 series):
#: 40 / 50 / 60 / 70 / 80 / 100 % +11.75 / +11.79 / **+11.81** / +11.80 / +11.75 / +11.58 (phantom +0.3 dB over
#: in-plane matching at equal share, chest +0.1, head +0.0-0.1), for 1.7x the time (5.5 vs 3.2 s per 512x512 slice).
#: ``kpn-burst3`` (what ``auto`` gives fine magnitude MR, before the removal of the noise floor; 2D images with BM3D's
#: search, ~1 s per 256x256 slice; volumes with :data:`MR_VOLUME_SEARCH`, see there):
#: chosen on 6 MR slices of the *training* split (MR_Gd slices 52/72/92, dipy S0 slice 5, the two itk-elastix brain
#: slices), simulated magnitude noise, ``Denoiser(modality="mr")`` as ``auto`` runs it, PSNR gain over the head: the
#: network alone +1.49 / +3.97 / +2.29 dB at Rician 3 % / 6 % and non-central chi 3 % with 8 coils; with 20 / 30 / 40
#: / 50 / 70 / 85 / 100 % of the filtered image +1.67 / +1.75 / +1.82 / +1.89 / +2.01 / +2.07 / **+2.12** (Rician 3 %),
#: +4.34 and +2.84 at 100 % (rising with the share at every level); the background bias rises with it, 0.105 -> 0.153
#: sigma at Rician 3 %. On MR the network trained on Gaussian noise is the weaker estimate and the filter whose blocks
#: it matches is the better one, so its output is the filtered image alone. On a 5-slice slab of MR_Gd (a volume,
#: one view) the network alone / 50 % / 100 %: +1.75 / +2.44 / +2.75 dB (Rician 3 %), +4.46 / +4.72 / +4.74 (6 %),
#: +2.33 / +2.94 / +3.21 (8 coils).
#: Since 2026-12-06 its pilot is the average of the network's output and the collaborative hard thresholding
#: (``threshold_pilot``): the network, trained on CT slices, smooths the detail of low-noise or coarse MR, and gains
#: taken from it remove that detail. *Training* MR, ``Denoiser(modality="mr")``, gain over the head at Rician 3 % / 6 %
#: / non-central chi 3 % with 8 coils: 5 single slices (MR_Gd 52 / 72 / 92, the two itk-elastix brain slices) +2.30 /
#: +4.38 / +3.29 -> +2.38 / +4.66 / +3.42 dB (the thresholded pilot alone +2.10 / +4.67 / +3.19); the same reduced
#: 2x in-plane +0.98 / +2.72 / +1.82 -> +1.36 / +3.13 / +2.19; MR_Gd slabs 1 x 1 / 2 x 2 / 2.9 x 2.9 x 5 mm
#: (``benchmarks/mr_voxel_size.py``) +0.30-0.52 / +0.41-0.81 / +0.44-0.94 dB. On CT (the 12 training cases of
#: ``CT_NOISE_FACTOR``) it lost: +7.23 -> +7.15 / +7.09 dB (threshold on the spectrum x2 / x1; chests at 60 HU -0.6).
#: And ``auto`` caps the noise level fitted per slice at the sigma it read from the magnitude floor
#: (``refine_slices``'s ``noise_ceiling``; magnitude noise is never stronger): on the itk-elastix slices reduced 2x the
#: fit read 1.46x the true sigma in tissue at Rician 3 %. With both: single slices **+2.62 / +4.71 / +3.69**, reduced
#: 2x **+1.55 / +3.15 / +2.52**, slabs (PSNR, before -> now) 1 mm 40.42 / 36.65 / 40.26 -> 41.04 / 36.94 / 40.88,
#: 2 mm 38.15 / 34.40 / 37.94 -> 39.04 / 34.81 / 38.84, 2.9 mm 37.20 / 33.39 / 36.88 -> **38.38** / 33.82 / 38.13
#: (the noisy input 37.43 / 31.42 / 36.58; background bias 0.007-0.094 sigma). The sigma itself in place of the fit
#: was 0.2 dB below the fit at Rician 6 % on the slabs, where dark tissue's Rician noise is weaker than sigma. The
#: Wiener stage reuses the groups the thresholding matched on the network's output (matching again on the averaged
#: pilot gave the same within 0.05 dB: reduced 2x +1.56 / +3.15 / +2.52, single slices +2.62 / +4.71 / +3.70, slabs
#: 2.9 mm 38.43 / 33.85 / 38.18), ~1.3x the time of the refinement without the thresholding (MR_Gd, 144 x 188 x 176,
#: ``auto`` on 2 cores: ~11.5 s, ~16 s when matching twice, ~9-11 s without the thresholding).
#: Each frame of a 4D magnitude MR series is refined too (``series``; until 2026-12-06 4D series were not refined at
#: all): on 6 frames of 16 MR_Gd slices (*training*; the frames scaled 0.5-1.0, Rician noise of 3 % / 6 % of the
#: first frame's 99th percentile, ``auto`` over the series as a DWI gets it) +3.21 / +5.92 -> +4.09 / +6.08 dB (+3.98 /
#: +6.09 without the floor's sigma as the ceiling).
#: the most pixels a CT volume may have to be refined with BM3D's search on a CPU by default: 8 slices of 512x512 (a
#: few slices, a thick-slice head; ~25 s on 2 cores), with the network's 8 views as the pilot. On the 16 *training*
#: volumes of :data:`CT_VOLUME_SEARCH` (8 slices each), share 0.6: +5.90 dB from 4 views, **+5.91** from 8 (chest
#: +0.003, head +0.025, phantom +0.009; at every share 0.5-0.7 and in every setting), for ~0.45 s more per slice on 2
#: cores. Longer volumes take :data:`CT_MEDIUM_VOLUME_SEARCH` from 4 views: on the same volumes +5.89 against BM3D's
#: search's +5.90 from 4 views, at ~1/6 of its time (until 2026-12-05 BM3D's search took up to 32 slices, ~68 s for a
#: 32-slice CT through the CLI against ~55 s for 64 slices with the cheaper search).
SHORT_VOLUME_MAX_PIXELS = 8 * 512 * 512
#: the same on a CUDA device: 1024 slices of 512x512. Measured on an NVIDIA H200 (2026-12-04, scripts/gpu/oneshot.py):
#: the CT model with its 4-view pilot and the refinement over 30 slices of 512x512 in 2.6 s (peak 552 MiB of GPU
#: memory; the model alone over 300 slices 2.4 s); a second run refined the whole 512x512x300 CT in 23 s (peak 520 MiB).
#: Refined on CUDA and on the CPU, 4 slices differ by at most 1 HU (mean 0.009 HU: rounding to the file's integers)
CUDA_VOLUME_MAX_PIXELS = 1024 * 512 * 512
#: the most pixels a CT volume may have to be refined with :data:`CT_MEDIUM_VOLUME_SEARCH` by default on a CPU: 128
#: slices of 512x512 (~45 s more than the network on 2 cores; with float32 AVX2 kernels ~0.6 s per slice in all)
MEDIUM_VOLUME_MAX_PIXELS = 128 * 512 * 512
#: ... and up to this many with the network's 4 views as its pilot: 64 slices of 512x512 (the 3 more views cost
#: ~0.4 s per slice on 2 cores, ~0.85 s with float32 AVX2 kernels; docs/memory.md)
MEDIUM_VOLUME_4_VIEWS_MAX_PIXELS = 64 * 512 * 512
#: the most pixels a CT or MR volume may have to be refined with :data:`CT_VOLUME_SEARCH` or :data:`MR_VOLUME_SEARCH`
#: by default: 1024 slices of 512x512 (~1.5 min more for CT on 2 CPU cores)
LARGE_VOLUME_MAX_PIXELS = 1024 * 512 * 512


#: the CT refinement's Wiener gains take twice the noise spectrum measured in flat tissue. The gains are
#: ``|pilot|^2 / (|pilot|^2 + noise)``, and the pilot (the network's output) still holds some of the noise, mostly its
#: low frequencies, which the gains take for signal; the measured spectrum itself is not low (on the training head
#: series below, 1.13-1.17x the inserted noise's, which includes the reference's own ~4 HU). Chosen on the *training*
#: split only: 4 volumes of 3 slices (chest 045-047 and 061-063, GE head 05-07 and 16-18) at 25 HU ramp (720 views,
#: electronic 5), 25 HU cosine with grain 2 (900 views, electronic 10) and 60 HU shepp-logan, W400 gain over the body,
#: mean of the 12: BM3D's search with the 8-view pilot (the tier of up to 8 slices) x1 / 1.5 / **2** / 3: +7.13 /
#: +7.19 / **+7.22** / +7.24 dB; forced on the same series, the 4-view middle search +7.10 -> +7.20 and the cheapest
#: search +6.90 -> +6.98 at x2. In each tier 9 of the 12 rise (cosine and 60 HU, the head most: +0.2-0.5 dB) and the
#: three at 25 HU with the sharp ramp kernel fall by 0.05-0.17 (two of them chest slices, which carry ~20 HU of noise
#: of their own that more filtering also removes and the metric counts as error); 3 was not taken, as it loses more
#: there (-0.28) for +0.02 on the mean. The Philips phantom, whose plastic skull holds too little flat tissue, is not
#: refined at all. Sweep: ``python benchmarks/ct_noise_factor.py``; held out: docs/benchmarks_real_noise.md (stop 51).
#: With the factor at 2, the share again (``--factors 2 --shares 0.8,1.0``, same 12 cases, 2026-12-06): 0.6 / 0.8 /
#: 1.0 +7.22 / +7.25 / +7.23 dB (the heads rise with the share, +0.2-0.45 dB at 25 HU ramp, the chests fall, -0.3 at
#: 25 HU grain 2): too little to move the shipped 0.6. A second pass of the filtering on the first one's output (share
#: 1.0 both times) +7.01: heads at 25 HU ramp +0.05-0.2 over one pass at share 1.0, every chest and both heads at 60 HU
#: below; not installed. Share 1.0 with the thresholded pilot (the MR refinement's, the filter alone: BM3D's two
#: stages with the network's output for the block matching) on the quiet training heads (2026-12-06, stop 57): +0.49 /
#: +0.16 / +0.11 dB at 25 HU ramp / 25 HU grain 2 / 60 HU; on the six held-out series of the real-noise benchmark
#: (in memory, setting A's scanner) +7.09 -> +7.19 dB at ~25 HU but +11.36 -> +10.86 at ~60 HU (water phantom -1.7,
#: where the network alone is the smoother): not installed.
CT_NOISE_FACTOR = 2.0


def _ct_refinement(
    share: float,
    max_pixels: int,
    search: BlockSearch,
    pilot_views: int = 1,
    cuda_max_pixels: int | None = None,
    larger: Refinement | None = None,
) -> Refinement:
    """One tier of the CT model's refinement: correlated noise (its spectrum), volumes and the frames of 4D series
    too, blocks matched on the adjacent slices; tiers differ in size limit, search, share and pilot."""
    return Refinement(
        share,
        correlated=True,
        volumes=True,
        series=True,
        max_pixels=max_pixels,
        cuda_max_pixels=cuda_max_pixels,
        search=search,
        pilot_views=pilot_views,
        neighbours=1,
        larger=larger,
        noise_factor=CT_NOISE_FACTOR,
    )


# the CT model's tiers, cheapest (largest volumes) first: each takes what the one before it leaves, for time. Each
# frame of a 4D CT (perfusion, cardiac or respiratory phases) is refined as a volume too, the tier chosen by the whole
# series' pixels, one view of the network as the pilot (until 2026-12-06 4D series went through the network alone).
# *Training* split, ``Denoiser("auto", modality="ct")`` over a series of frames of chest 050-057 or GE head 05-12 (8
# slices of 512x512) shifted as in breathing (sub-pixel, up to ~8 px over 12 frames), fast-model noise drawn per frame
# (25 HU ramp, 60 HU shepp-logan), W400 gain over the body, network alone -> refined: 4 frames (32 slices, the 4-view
# tier's search) chest +2.98 -> +3.58 / +8.93 -> +9.33 dB, head +5.42 -> +7.81 / +10.10 -> +11.28 (13-15 -> 32-34 s
# on 2 cores); 12 frames (96 slices, the middle search) chest +3.16 -> +3.83 / +9.10 -> +9.50, head +5.56 -> +7.91 /
# +10.22 -> +11.37 (36-39 -> 91-100 s)
_CT_WHOLE_VOLUME = _ct_refinement(0.5, LARGE_VOLUME_MAX_PIXELS, CT_VOLUME_SEARCH)
_CT_MEDIUM_VOLUME = _ct_refinement(0.6, MEDIUM_VOLUME_MAX_PIXELS, CT_MEDIUM_VOLUME_SEARCH, larger=_CT_WHOLE_VOLUME)
_CT_MEDIUM_VOLUME_4_VIEWS = _ct_refinement(
    0.6, MEDIUM_VOLUME_4_VIEWS_MAX_PIXELS, CT_MEDIUM_VOLUME_SEARCH, pilot_views=4, larger=_CT_MEDIUM_VOLUME
)
# on a CUDA device only (no pixels on a CPU): BM3D's search from 4 views for volumes of up to 1024 slices
_CT_CUDA_VOLUME = _ct_refinement(
    0.6, 0, BM3D_SEARCH, pilot_views=4, cuda_max_pixels=CUDA_VOLUME_MAX_PIXELS, larger=_CT_MEDIUM_VOLUME_4_VIEWS
)

# magnitude MR (the burst model): volumes of any size with the cheaper search on 3 slices, up to 512x512 pixels
# BM3D's search; both with the thresholded pilot, and each frame of a 4D series too
_MR_VOLUME = Refinement(
    1.0,
    volumes=True,
    max_pixels=LARGE_VOLUME_MAX_PIXELS,
    search=MR_VOLUME_SEARCH,
    neighbours=1,
    threshold_pilot=True,
    series=True,
)

#: ``kpn-general``'s share by noise level (:attr:`Refinement.share_by_noise`): 30 % (above) was chosen at sigma 15 /
#: 25 / 50; below them the network's own output falls behind BM3D (through the CLI 0.68 dB at sigma 3,
#: docs/benchmarks_gaussian_cli.md) and the filtered image is worth more. Chosen on 13 *training* images (chest 050
#: and 070, GE head 10 and 18, ultrasound 010 / 050 / 092, X-ray 00000001 and 00000013, lung SEM 03 and 07, the
#: middle slices of nibabel's anatomical and MR_Gd; central 256 px crops, min-max scaled, Gaussian noise, the model
#: with 8 views as ``auto`` runs a 2D image), the best share of 0-100 % by the nominal sigma (the sigma the
#: refinement estimates, mean): 2 and 3 (2.9 / 3.8): 100 % (+0.58 / +0.38 dB over 30 %); 5 (5.4): 90-100 % (+0.19);
#: 8 (8.1): 60-70 % (+0.06); 12 (11.1): 50 %; 15 (13.2): 40 %; 20-50 (17-32): 10-30 %, where two draws of the noise
#: disagreed (the best at 50 was 60 % in one, 10 % in the other): 30 % is kept there.
GENERAL_SHARE_BY_NOISE = ((4.0, 1.0), (8.0, 0.65), (13.0, 0.4), (17.0, 0.3))

#: the most pixels of a single 2D image the general model refines by default, with :data:`CT_VOLUME_SEARCH` above its
#: 1024x1024 (a digital radiograph of 3000x3000 px, a whole-slide tile): ~0.5 s per megapixel on 2 cores
LARGE_IMAGE_MAX_PIXELS = 64 * 1024 * 1024

#: ``kpn-general`` on single 2D images above 1024x1024 pixels (which get the network's one view, not 8): the cheap
#: search of CT volumes. Measured on 6 *training* images at full size (3 chest X-rays of 1024x1024, lung SEM 03,
#: ultrasound 050, chest CT 060; Gaussian noise; the network with one view): the refinement gains +0.67 / +0.20 /
#: +0.10 / +0.06 dB at sigma 3 / 8 / 15 / 25 at its best shares 100 / 60 / 40 / 20 %, those of
#: :data:`GENERAL_SHARE_BY_NOISE`, for +0.5 s per 1024x1024 image (the network's one view: 1.9 s).
_GENERAL_LARGE_IMAGE = Refinement(
    0.3, share_by_noise=GENERAL_SHARE_BY_NOISE, max_pixels=LARGE_IMAGE_MAX_PIXELS, search=CT_VOLUME_SEARCH
)

REFINED_MODELS: dict[str, Refinement] = {
    "kpn-general": Refinement(0.3, share_by_noise=GENERAL_SHARE_BY_NOISE, larger=_GENERAL_LARGE_IMAGE),
    "kpn-burst3": dataclasses.replace(
        _MR_VOLUME, max_pixels=MR_IMAGE_MAX_PIXELS, search=BM3D_SEARCH, larger=_MR_VOLUME
    ),
    "kpn-ct-burst3": _ct_refinement(0.6, SHORT_VOLUME_MAX_PIXELS, BM3D_SEARCH, pilot_views=8, larger=_CT_CUDA_VOLUME),
}


@dataclass(frozen=True)
class NoiseSpectrum:
    """Correlated noise: ``variances`` ``(BLOCK, BLOCK)``, the noise variance of each coefficient of the
    orthonormal 2D DCT of a ``BLOCK``-pixel block (:func:`~meddenoiselib.transforms.estimate.estimate_dct_noise`),
    in the image's units squared."""

    variances: np.ndarray


def _dct_matrix(n: int, device: torch.device) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``(n, n)`` on ``device``: rows are the basis functions."""
    return torch.from_numpy(dct_matrix(n)).float().to(device)


def _hadamard(n: int, device: torch.device) -> torch.Tensor:
    """Orthonormal (and symmetric) Walsh-Hadamard matrix ``(n, n)``, ``n`` a power of 2."""
    h = torch.ones(1, 1, dtype=torch.float32)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return (h / math.sqrt(n)).to(device)


def _match(
    pilot: torch.Tensor, centre: int, ry: torch.Tensor, rx: torch.Tensor, nry: int, nrx: int, search: BlockSearch
) -> torch.Tensor:
    """Flat top-left indices into ``pilot`` ``(S, H, W)`` ``(R, matches)`` of the blocks most similar (squared
    difference) to each reference block of slice ``centre``, on every slice of the stack, most similar first (the
    reference itself, at distance 0, among them).

    One slice and vertical displacement at a time, all horizontal ones at once: the shifted rows are a strided view
    ``(H, 2 radius + 1, W)``, so the block sums at the reference rows add contiguous slabs."""
    S, H, W = pilot.shape
    device = pilot.device
    radius, step, matches = search.radius, search.step, search.matches
    nby, nbx = H - BLOCK + 1, W - BLOCK + 1
    span = 2 * radius + 1
    reference = pilot[centre]
    best_d = torch.full((ry.numel(), matches), float("inf"), device=device)
    best_i = torch.zeros((ry.numel(), matches), dtype=torch.long, device=device)
    rows, cols = (nry - 1) * step + 1, (nrx - 1) * step + 1
    x = rx[:, None] + torch.arange(-radius, radius + 1, device=device)[None]
    x_inside = (x >= 0) & (x < nbx)
    x = x.clamp(0, nbx - 1)
    # candidates are merged into the best so far a few vertical displacements at a time (one top-k per merge)
    per_merge = max(1, MATCH_MERGE_ELEMENTS // max(1, ry.numel() * span))
    pending_d: list[torch.Tensor] = []
    pending_i: list[torch.Tensor] = []
    # the padding only fills candidates outside the image, which are masked out below: any mode gives the same
    # matches, and reflection needs the image wider than the radius (an 11-pixel-wide image is not)
    pad_mode = "reflect" if radius < min(H, W) else "replicate"
    for s in range(S):
        padded = F.pad(pilot[s][None, None], (radius,) * 4, mode=pad_mode)[0, 0]
        for dy in range(-radius, radius + 1):
            shifted = padded[radius + dy : radius + dy + H].unfold(1, W, 1)  # (H, span, W): every horizontal shift
            square = (shifted - reference[:, None, :]).square_()
            vertical = square[0:rows:step].clone()
            for k in range(1, BLOCK):
                vertical += square[k : k + rows : step]
            box = vertical[:, :, 0:cols:step].clone()
            for k in range(1, BLOCK):
                box += vertical[:, :, k : k + cols : step]
            distance = box.permute(0, 2, 1).reshape(-1, span)  # (R, span), references in row-major order
            y = ry + dy
            inside = x_inside & ((y >= 0) & (y < nby))[:, None]
            pending_d.append(distance.masked_fill_(~inside, float("inf")))
            pending_i.append(s * H * W + y.clamp(0, nby - 1)[:, None] * W + x)
            if len(pending_d) == per_merge or (s == S - 1 and dy == radius):
                merged_d = torch.cat([best_d, *pending_d], 1)
                merged_i = torch.cat([best_i, *pending_i], 1)
                best_d, order = merged_d.topk(matches, dim=1, largest=False)
                best_i = merged_i.gather(1, order)
                pending_d, pending_i = [], []
    return best_i


def collaborative_wiener(
    noisy: torch.Tensor,
    pilot: torch.Tensor,
    sigma: float | NoiseLevel | NoiseSpectrum,
    check_cancel: Callable[[], None] | None = None,
    ref_chunk: int = 4096,
    search: BlockSearch = BM3D_SEARCH,
    centre: int | None = None,
) -> torch.Tensor:
    """Wiener-filter ``noisy`` collaboratively, with blocks matched and gains taken on ``pilot``.

    With a stack of slices, the blocks of each group are matched on every slice of it, and the slice ``centre`` is
    filtered: adjacent slices of a volume hold blocks more like each reference block than its in-plane
    neighbourhood does, with noise of their own (BM4D's grouping, limited to a few slices).

    Args:
        noisy: ``(H, W)`` float32 noisy image, any units (normalized [0, 1] in the library); or ``(S, H, W)``
            slices, of which ``centre`` is filtered.
        pilot: ``(H, W)`` or ``(S, H, W)`` an estimate of the clean image(s) in the same units (the network's
            output).
        sigma: standard deviation of the (white) noise in ``noisy``, same units; a :class:`NoiseLevel` (each group
            then gets the variance at its reference block's mean pilot intensity); or a :class:`NoiseSpectrum`
            (correlated noise: a variance per DCT coefficient). 0 returns ``pilot``.
        check_cancel: called between chunks; raises to stop. Defaults to None.
        ref_chunk: reference blocks filtered at once (memory). Defaults to 4096.
        search: where similar blocks are looked for. Defaults to BM3D's :data:`BM3D_SEARCH`.
        centre: the slice of a stack to filter; ignored for a single image. Defaults to None.

    Returns:
        ``(H, W)`` float32 filtered image (of slice ``centre``) on ``noisy``'s device; the pilot itself when the
        image is smaller than one block or the noise is 0.
    """
    return _collaborative(noisy, pilot, sigma, None, check_cancel, ref_chunk, search, centre)[0]


def collaborative_hard_threshold(
    noisy: torch.Tensor,
    pilot: torch.Tensor,
    sigma: float | NoiseLevel | NoiseSpectrum,
    check_cancel: Callable[[], None] | None = None,
    ref_chunk: int = 4096,
    search: BlockSearch = BM3D_SEARCH,
    centre: int | None = None,
    threshold: float = HARD_THRESHOLD,
) -> torch.Tensor:
    """BM3D's first stage on ``noisy``, with its blocks matched on ``pilot``: each group's 3D spectrum keeps the
    coefficients above ``threshold`` noise standard deviations (and its mean) and drops the rest; groups are
    averaged back with weights ``1 / (sigma^2 * coefficients kept)`` and a Kaiser window.

    Unlike the Wiener stage it takes nothing from the pilot's values, only where its similar blocks are: detail
    that stands above the noise is kept as the noisy image has it, however much a network smoothed it
    (:class:`Refinement`'s ``threshold_pilot``). Arguments and result as :func:`collaborative_wiener`'s;
    ``threshold`` is BM3D's lambda_3D.
    """
    return _collaborative(noisy, pilot, sigma, threshold, check_cancel, ref_chunk, search, centre)[0]


def _collaborative(
    noisy: torch.Tensor,
    pilot: torch.Tensor,
    sigma: float | NoiseLevel | NoiseSpectrum,
    threshold: float | None,
    check_cancel: Callable[[], None] | None,
    ref_chunk: int,
    search: BlockSearch,
    centre: int | None,
    matches: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`collaborative_wiener` (``threshold`` None) or :func:`collaborative_hard_threshold`: the same
    grouping, transform and aggregation, two shrinkages. Also returns the groups' block indices (into the padded
    stack), which a second stage on the same stack can take as ``matches`` instead of matching again (None where
    nothing was filtered)."""
    if noisy.ndim == 2:
        noisy, pilot, centre = noisy[None], pilot[None], 0
    elif centre is None:
        raise OptionError(f"a stack of {noisy.shape[0]} slices needs the slice to filter (centre)")
    S, H0, W0 = noisy.shape
    if isinstance(sigma, NoiseSpectrum):
        spectrum = torch.as_tensor(sigma.variances, dtype=torch.float32, device=noisy.device)
        level = NoiseLevel(0.0, float(spectrum.mean()))
    else:
        spectrum = None
        level = sigma if isinstance(sigma, NoiseLevel) else NoiseLevel(0.0, float(sigma) ** 2)
    if (level.gain <= 0 and level.floor <= 0) or H0 < BLOCK or W0 < BLOCK:
        return pilot[centre].float(), None
    step, count = search.step, search.matches
    noisy, pilot = noisy.float(), pilot.float()
    # pad bottom/right so that reference blocks every `step` pixels end exactly at the last row and column
    pad_y, pad_x = (-(H0 - BLOCK)) % step, (-(W0 - BLOCK)) % step
    mode = "reflect" if min(H0, W0) > max(pad_y, pad_x) else "replicate"
    noisy = F.pad(noisy[None], (0, pad_x, 0, pad_y), mode=mode)[0]
    pilot = F.pad(pilot[None], (0, pad_x, 0, pad_y), mode=mode)[0]
    H, W = noisy.shape[1:]
    device = noisy.device
    ys = torch.arange(0, H - BLOCK + 1, step, device=device)
    xs = torch.arange(0, W - BLOCK + 1, step, device=device)
    ry, rx = (g.reshape(-1) for g in torch.meshgrid(ys, xs, indexing="ij"))
    if matches is None:
        matches = _match(pilot, centre, ry, rx, ys.numel(), xs.numel(), search)
    if check_cancel is not None:
        check_cancel()

    # the 3D transform of a group as two large matrix products: the 2D DCT of each block as one (BLOCK^2, BLOCK^2)
    # matrix on the flattened blocks, and the Walsh-Hadamard transform across the group on all coefficients at once
    # (groups laid out (count, R, BLOCK^2)); batches of 8x8 products are several times slower on a CPU
    dct = _dct_matrix(BLOCK, device)
    dct2, walsh = torch.kron(dct, dct), _hadamard(count, device)
    within = (torch.arange(BLOCK, device=device)[:, None] * W + torch.arange(BLOCK, device=device)[None, :]).reshape(-1)
    kaiser = torch.kaiser_window(BLOCK, periodic=False, beta=KAISER_BETA, device=device)
    window = (kaiser[:, None] * kaiser[None, :]).reshape(-1)
    numerator = torch.zeros(S * H * W, device=device)
    denominator = torch.zeros(S * H * W, device=device)
    flat_noisy, flat_pilot = noisy.reshape(-1), pilot.reshape(-1)
    if spectrum is None:
        # the reference grid was padded to end at the last block, so the strided block means are the references'
        means = F.avg_pool2d(pilot[centre][None, None], BLOCK, stride=step).reshape(-1)
        variances = level.variance(means)  # (R,)
    else:
        coefficient_variance = spectrum.reshape(1, 1, -1)  # (1, 1, BLOCK^2)

    def transform(values: torch.Tensor) -> torch.Tensor:
        """(count, r, BLOCK^2) pixels -> their 3D spectrum, same shape."""
        coefficients = values.reshape(-1, BLOCK * BLOCK) @ dct2.T
        return (walsh @ coefficients.reshape(count, -1)).reshape(values.shape)

    for start in range(0, ry.numel(), ref_chunk):
        pixels = matches[start : start + ref_chunk].T[:, :, None] + within  # (count, R, BLOCK^2)
        spectrum_noisy = transform(flat_noisy[pixels])
        # the Walsh-Hadamard transform across blocks of independent noise keeps each DCT coefficient's variance
        if spectrum is None:
            variance = variances[start : start + ref_chunk].reshape(1, -1, 1)
        else:
            variance = coefficient_variance
        if threshold is None:
            power = transform(flat_pilot[pixels]).square_()
            gain = power.div_(power + variance)
        else:
            gain = (spectrum_noisy.square() > threshold**2 * variance).float()
            gain[0, :, 0] = 1.0  # the group's mean (first DCT and Walsh-Hadamard coefficient) is always kept
        filtered_spectrum = (walsh @ (gain * spectrum_noisy).reshape(count, -1)).reshape(-1, BLOCK * BLOCK)
        group = (filtered_spectrum @ dct2).reshape(pixels.shape)  # the inverse of an orthonormal transform
        # the variance of the group's estimate: sum of gain^2 x noise variance (the coefficients kept, thresholded)
        weight = 1.0 / ((gain.square_() * variance).sum(dim=(0, 2)) + 1e-12)  # (R,)
        weights = (weight[:, None] * window).expand(count, -1, -1)
        numerator.index_add_(0, pixels.reshape(-1), (group * weights).reshape(-1))
        denominator.index_add_(0, pixels.reshape(-1), weights.reshape(-1))
        if check_cancel is not None:
            check_cancel()
    filtered = torch.where(denominator > 0, numerator / denominator.clamp_min(1e-30), flat_pilot)
    return filtered.reshape(S, H, W)[centre, :H0, :W0], matches


def refine_slices(
    noisy: np.ndarray,
    pilot: np.ndarray,
    share: float,
    device: torch.device | str = "cpu",
    check_cancel: Callable[[], None] | None = None,
    sigma: float | NoiseSpectrum | None = None,
    search: BlockSearch = BM3D_SEARCH,
    out: np.ndarray | None = None,
    on_slice: Callable[[], None] | None = None,
    neighbours: int = 0,
    slices: range | None = None,
    threshold_pilot: bool = False,
    noise_ceiling: float | None = None,
) -> np.ndarray:
    """Average a network's output with its collaborative Wiener filtering, slice by slice (axis 0).

    The noise is white of standard deviation ``sigma`` when that is a number, correlated with the variances of a
    :class:`NoiseSpectrum`, or else (None) white with its variance fitted per slice as a line in the intensity
    (:func:`estimate_noise_level`): constant for Gaussian noise, rising with the signal for photon noise.

    Args:
        noisy: ``(Z, Y, X)`` normalized noisy slices, float32.
        pilot: ``(Z, Y, X)`` the network's output for them.
        share: weight of the filtered image in the average, in [0, 1].
        device: where to compute. Defaults to the CPU.
        check_cancel: called between steps; raises to stop. Defaults to None.
        sigma: the noise, in the units of ``noisy``; None fits it per slice. Defaults to None.
        search: where similar blocks are looked for. Defaults to :data:`BM3D_SEARCH`.
        out: ``(Z, Y, X)`` float32 array to write into; may be ``pilot`` itself (each slice's pilot is read, and
            kept while a later slice matches blocks on it, before it is written). Defaults to a new array.
        on_slice: called after each slice (progress). Defaults to None.
        neighbours: slices on each side whose blocks join each slice's groups. Defaults to 0.
        slices: the slices to refine (ascending; a preview's); the others of ``out`` are left as they are (a new
            ``out`` holds the pilot there). Defaults to None: all.
        threshold_pilot: the Wiener stage's pilot is the average of the network's output and its collaborative
            hard thresholding (:func:`collaborative_hard_threshold`, blocks matched on the network's output, and the
            Wiener stage takes the same groups) instead of the network's output alone (:class:`Refinement`).
            Defaults to False.
        noise_ceiling: with ``sigma`` None, the standard deviation the fitted noise never exceeds (magnitude MR:
            Rician and non-central chi noise is at most the sigma read from the floor, while the fit reads a small
            image's fine detail as noise too). Defaults to None: no ceiling.

    Returns:
        ``(Z, Y, X)`` float32: ``(1 - share) * pilot + share * filtered`` (on ``slices``).
    """
    if out is None:
        out = np.empty_like(pilot, dtype=np.float32) if slices is None else pilot.astype(np.float32)
    in_place = neighbours > 0 and np.shares_memory(out, pilot)
    kept: dict[int, np.ndarray] = {}  # original pilots of slices already overwritten that a later slice still needs
    guides: dict[int, np.ndarray] = {}  # thresholded pilots (threshold_pilot) that a later slice still matches on
    matched: dict[int, torch.Tensor | None] = {}  # each slice's groups from its thresholding, for its Wiener stage
    count = noisy.shape[0]

    def network(k: int) -> np.ndarray:
        return kept[k] if k in kept else pilot[k]

    def noise_of(k: int) -> float | NoiseLevel | NoiseSpectrum:
        if sigma is not None:
            return sigma
        level = estimate_noise_level(noisy[k], network(k))
        return level if noise_ceiling is None else dataclasses.replace(level, ceiling=noise_ceiling**2)

    def stack(k: int) -> tuple[int, int]:
        return max(0, k - neighbours), min(count, k + neighbours + 1)

    def guide(k: int) -> np.ndarray:
        """The pilot of slice ``k`` that the Wiener stage matches blocks on and takes its gains from."""
        if not threshold_pilot:
            return network(k)
        if k not in guides:
            lo, hi = stack(k)
            thresholded, matched[k] = _collaborative(
                torch.as_tensor(noisy[lo:hi], dtype=torch.float32, device=device),
                torch.as_tensor(np.stack([network(j) for j in range(lo, hi)]), dtype=torch.float32, device=device),
                noise_of(k),
                HARD_THRESHOLD,
                check_cancel,
                4096,
                search,
                k - lo,
            )
            guides[k] = 0.5 * (network(k) + thresholded.cpu().numpy())
        return guides[k]

    # each slice allocates and frees the same hundreds of MB: kept in the heap, not mapped and zero-filled afresh
    with freed_memory_kept():
        for z in range(count) if slices is None else slices:
            lo, hi = stack(z)
            pilots = np.stack([guide(k) for k in range(lo, hi)])
            filtered, _ = _collaborative(
                torch.as_tensor(noisy[lo:hi], dtype=torch.float32, device=device),
                torch.as_tensor(pilots, dtype=torch.float32, device=device),
                noise_of(z),
                None,
                check_cancel,
                4096,
                search,
                z - lo,
                matched.pop(z, None),
            )
            filtered = filtered.cpu().numpy()
            centre = network(z)
            if in_place:
                kept[z] = centre.copy()
                kept.pop(z - neighbours, None)
            guides.pop(z - neighbours, None)
            out[z] = (1 - share) * centre + share * filtered
            if on_slice is not None:
                on_slice()
    return out
