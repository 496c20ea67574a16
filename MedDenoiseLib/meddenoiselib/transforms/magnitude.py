"""The noise floor of magnitude MR and its removal after denoising.

A magnitude image of ``N`` receive coils combined by root sum of squares follows a non-central chi distribution with
``2N`` degrees of freedom: ``M / sigma ~ chi_2N(A / sigma)`` for a true signal ``A`` and per-channel noise ``sigma``
(Rician for one coil). Its mean is above ``A``: in air (``A = 0``) it is ``sigma * sqrt(2) Gamma(N + 1/2) / Gamma(N)``
(1.25 sigma for one coil, 3.9 sigma for eight), in tissue it fades as ``A`` grows. A denoiser trained on Gaussian
noise estimates that mean, not ``A``; inverting the mean function maps its output back to ``A``
(Koay & Basser, J Magn Reson 179:317, 2006, give the same inversion for the second moment).

Near the floor that inversion is steep (``E[M]`` grows with ``A^2``): a denoised air value 0.1 sigma above the floor's
mean inverts to ``A`` ~ 0.6 sigma, so the residual error a denoiser leaves in air would come back as a positive bias.
The correction therefore takes the posterior mean of ``A`` given the denoised value and that residual error, read from
the same air tiles the floor was read from.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace

import numpy as np

from .background import BACKGROUND_TILE as FLOOR_TILE
from .background import (
    background_tiles,
    darkest_tiles,
    robust_spread,
    sampled_tiles,
    surrounds_the_image,
    tiles_on_border,
)
from .quantization import interval_median_and_spread

__all__ = [
    "MagnitudeFloor",
    "correct_magnitude_bias",
    "darkest_background",
    "estimate_magnitude_floor",
    "describe_floor_variation",
    "floor_variation",
    "interior_variation",
    "magnitude_sd_to_sigma",
    "varying_floor_note",
    "floor_median",
    "floor_ratio_for_coils",
    "noncentral_chi_mean",
    "residual_floor_spread",
    "robust_ratio",
    "robust_spread",
]

#: tile edges (pixels) the floor is read with, the first whose grid holds enough darkest tiles (4 in 5 %): 16 px on
#: volumes and images of ~145 px and more; 8 and 4 px on smaller single images (a 128 x 128 EPI or DWI slice, an MR
#: slice reduced 2-3x). Only 16 gave no floor on 2D slices under 144 x 144, and ``auto`` then chose the Rician model,
#: which left these images *below* the noisy input: on the *training* MR_Gd slices 52 / 72 / 92 reduced 2x (94 x 88) /
#: 3x (62 x 58) at Rician 3 % / 6 % and 8 coils -1.87 / +0.80 / -1.82 and -2.85 / -0.35 / -3.31 dB; read with 8 / 4 px
#: tiles (sigma within 1-6 %, every coil count right) the burst model and the floor's removal gain +0.58 / +2.25 /
#: +1.24 and -0.26 / +1.30 / +0.25 dB there. Held out (the 7 real slices of ``benchmarks/real_mr.py --reduce 2`` /
#: ``3``, through the CLI): -1.36 / +1.39 / -0.98 -> +0.00 / +2.20 / +1.54 dB and -2.64 / +0.20 / -2.24 -> +0.10 /
#: +1.63 / +1.41
FLOOR_TILES = (FLOOR_TILE, 8, 4)
#: the finer tiles only on slices of at least this many pixels each way (a 64 x 64 EPI matrix), and only where the
#: background's tiles lie on the image's edge at least as often as all tiles do (air surrounds the head): the dark
#: tissue of a crop inside a head (the sample head's 27 x 15 px crop, 4-px tiles) fits a one-coil floor too
SMALL_FLOOR_MIN_PIXELS = 48
#: coil counts the floor estimate chooses among (root-sum-of-squares arrays up to 32 channels)
COIL_COUNTS = (1, 2, 3, 4, 6, 8, 12, 16, 20, 32)
#: a floor's median is at most this fraction of the image's 99th percentile: 8 coils at sigma 6 % of it give ~0.23,
#: the darkest tissue of a crop without air ~0.55
FLOOR_LEVEL_LIMIT = 0.3
#: the background's median / (1.4826 MAD) must be within this factor of a chi floor's (measured 0.91-1.14 on five
#: MR volumes with simulated Rician and 8-coil noise; a quantized, masked background gave 0.38)
FLOOR_RATIO_TOLERANCE = 1.3


def darkest_background(array: np.ndarray, tile: int = 16, fraction: float = 0.05) -> np.ndarray | None:
    """The pixels of the darkest ``fraction`` of ``tile`` x ``tile`` tiles (by mean) of up to 16 slices: air, where
    a magnitude image holds only its noise floor.

    Args:
        array: ``(Z, Y, X)`` or ``(Y, X)`` magnitude image in its stored units.

    Returns:
        float64 values, or None when the image has fewer than 4 such tiles.
    """
    tiles = sampled_tiles(array, tile)
    darkest = None if tiles is None else darkest_tiles(tiles, fraction)
    return None if darkest is None else tiles[darkest].ravel().astype(np.float64)


def robust_ratio(values: np.ndarray) -> float | None:
    """``median / (1.4826 MAD)`` of ``values``, stored values of a lattice (integers) taken as spread over their
    rounding intervals (:func:`~.quantization.interval_median_and_spread`); None when the spread or the median is
    zero."""
    median, spread = interval_median_and_spread(values)
    return median / spread if spread > 0 and median > 0 else None


@functools.cache
def _chi_median_and_ratio(coils: int) -> tuple[float, float]:
    from scipy import optimize, stats

    dist = stats.chi(2 * coils)
    median = float(dist.median())
    mad = optimize.brentq(lambda d: dist.cdf(median + d) - dist.cdf(max(median - d, 0.0)) - 0.5, 1e-9, 10 * median)
    return median, median / (1.4826 * mad)


def floor_median(coils: int) -> float:
    """The median of a pure noise floor of ``coils`` coils over sigma (1.18 for 1 coil, 3.94 for 8)."""
    return _chi_median_and_ratio(int(coils))[0]


def floor_ratio_for_coils(coils: int) -> float:
    """``median / (1.4826 MAD)`` of a pure noise floor of ``coils`` coils (1.78 for 1, 3.86 for 4, 5.56 for 8)."""
    return _chi_median_and_ratio(int(coils))[1]


@dataclass(frozen=True)
class MagnitudeFloor:
    """The noise floor of a magnitude image.

    Attributes:
        sigma: per-channel noise standard deviation, in the image's units.
        coils: the effective number of coils ``N`` (chi with ``2N`` degrees of freedom).
        ratio: the measured ``median / (1.4826 MAD)`` of the background it was read from.
        shape: the shape of the image it was read from (None: not read from an image).
        air: indices of the air tiles it was read from (rows of the image's sampled tiles), where
            :func:`residual_floor_spread` measures what a denoiser left of the noise.
        tile: the edge of those tiles in pixels (:data:`FLOOR_TILES`).
    """

    sigma: float
    coils: int
    ratio: float
    shape: tuple[int, ...] | None = None
    air: np.ndarray | None = field(default=None, compare=False, repr=False)
    tile: int = FLOOR_TILE

    def with_coils(self, coils: int) -> MagnitudeFloor:
        """The same background read with a known coil count (``N`` of the root-sum-of-squares combination, as the
        scanner's protocol says): sigma is the background's median over the median of ``chi_2N`` for that ``N``
        (1 coil reads sigma 1.18x the median, 8 coils 0.25x), not for the count the background's spread suggested."""
        coils = int(coils)
        if coils == self.coils:
            return self
        median = self.sigma * _chi_median_and_ratio(self.coils)[0]
        return replace(self, sigma=median / _chi_median_and_ratio(coils)[0], coils=coils)


def estimate_magnitude_floor(array: np.ndarray) -> MagnitudeFloor | None:
    """Read sigma and the coil count from the background of a magnitude image.

    The background is the darkest tiles and every tile whose mean is as low within its noise
    (:func:`~.background.background_tiles`), on the first grid of :data:`FLOOR_TILES` with enough tiles. The coil
    count is the one whose theoretical floor ratio (:func:`floor_ratio_for_coils`) is nearest to the background's;
    sigma is the background median over the median of ``chi_2N``. Both are read with each stored value of an integer
    image spread over its rounding interval (:func:`~.quantization.interval_median_and_spread`): a floor of a few
    grey levels otherwise reads the wrong coil count.

    Args:
        array: ``(Z, Y, X)`` or ``(Y, X)`` magnitude image with a zero offset.

    Returns:
        The floor, or None when the image has no usable background (too small, or air set to one value).
    """
    found = _floor_tiles(array)
    if found is None:
        return None
    tile, tiles, air = found
    image = np.asarray(array)
    sample = image[tuple(slice(None, None, max(1, n // 64)) for n in image.shape)]
    # Not a floor: the darkest tiles are tissue (a crop without air: their level is a large part of the image's), or
    # their spread fits no coil count (air set to a constant, quantized, or masked by the scanner)
    level_limit = FLOOR_LEVEL_LIMIT * float(np.percentile(sample, 99))
    read = _read_floor(tiles[air], level_limit)
    if read is None:
        return None
    median, ratio, coils = read
    coils = max(coils, _varying_floor_coils(image.shape, tiles, tile, level_limit))
    return MagnitudeFloor(median / _chi_median_and_ratio(coils)[0], coils, ratio, tuple(image.shape), air, tile)


def _nearest_coils(ratio: float) -> int:
    """The coil count of :data:`COIL_COUNTS` whose floor's ``median / (1.4826 MAD)`` is nearest to ``ratio``."""
    return min(COIL_COUNTS, key=lambda n: abs(np.log(floor_ratio_for_coils(n) / ratio)))


def _read_floor(values: np.ndarray, level_limit: float) -> tuple[float, float, int] | None:
    """``(median, ratio, coils)`` of air ``values`` (:func:`~.quantization.interval_median_and_spread`); None where
    they are no floor: no spread, a median above ``level_limit``, or a ratio no coil count's floor fits within
    :data:`FLOOR_RATIO_TOLERANCE`."""
    median, spread = interval_median_and_spread(values)
    if not (spread > 0 and 0 < median <= level_limit):
        return None
    ratio = median / spread
    coils = _nearest_coils(ratio)
    if abs(np.log(floor_ratio_for_coils(coils) / ratio)) > np.log(FLOOR_RATIO_TOLERANCE):
        return None
    return median, ratio, coils


#: the parts of the image (along its columns, along its rows) whose own air the coil count is read in too, where the
#: floor varies across the image
FLOOR_PARTS = 4
#: ... each part's air: the darkest tenth of its tiles and those as low (a part of the image holds less of the air
#: than the whole, whose darkest twentieth :func:`~.background.background_tiles` starts from)
FLOOR_PART_FRACTION = 0.1
#: ... which lies on the edge of the image at least this share as often as all the part's tiles do (dark tissue
#: inside the object does not: a CT-like brain slice's dark band, 6 coils by its spread for a floor of 1 coil; where
#: the floor is high, the last quarter of a ramp's air takes some of the object's dark tiles, 0.4-0.9 as often)
FLOOR_PART_EDGE_SHARE = 1 / 3


def _tile_positions(shape: tuple[int, ...], tile: int, count: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(rows, columns, height, width)``: each of ``count`` rows of :func:`~.background.sampled_tiles` of an array
    of ``shape``, its row and column in its slice's grid of ``height`` x ``width`` tiles."""
    height, width = shape[-2] // tile, shape[-1] // tile
    planes = count // max(height * width, 1)
    rows = np.tile(np.repeat(np.arange(height), width), planes)
    columns = np.tile(np.tile(np.arange(width), height), planes)
    return rows, columns, height, width


def _varying_floor_coils(shape: tuple[int, ...], tiles: np.ndarray, tile: int, level_limit: float) -> int:
    """The coil count of a floor whose sigma varies across the image (a coil array on one side, parallel imaging's
    g-factor), else 0.

    The air of a varying floor mixes sigmas, and a mixture only lowers ``median / MAD``: the whole air of 8 coils under
    a sigma rising 1 -> 8 % across the image reads 2-6 coils. Each quarter of the columns and of the rows, read from
    its own air, mixes less. Where their floors' medians differ by :data:`FLOOR_VARIATION_FACTOR` or more, the count is
    the second largest of theirs (not the largest, so that one part whose darkest tiles are dark tissue, whose
    spread is small for their level, cannot set it). Measured on 5 training MR volumes with air, ramps of 1 to 8 % as
    floats and integers (sigma 10-80 and 1-8 grey levels): 8 coils read 8 on 4 volumes (the whole air: 4-6) and 4 on
    the 58 x 58 x 24 bundled head (2); 4 coils 4 on 4 volumes and 3 on the head (the whole air: 2-4); 1 coil 1. One
    level (and a g-factor bump, whose air at the edges lies at one level) reads the same count by the whole air and
    by every part, whose medians then do not differ by the factor.
    """
    rows, columns, height, width = _tile_positions(shape, tile, len(tiles))
    on_edge = tiles_on_border(shape, tile)
    parts = []
    for position, count in ((columns, width), (rows, height)):
        for k in range(FLOOR_PARTS):
            part = np.flatnonzero((position >= k * count // FLOOR_PARTS) & (position < (k + 1) * count // FLOOR_PARTS))
            air = background_tiles(tiles[part], FLOOR_PART_FRACTION) if part.size else None
            # air surrounds the object: a part's darkest tiles inside it are dark tissue
            if air is None or on_edge[part[air]].mean() < FLOOR_PART_EDGE_SHARE * on_edge[part].mean():
                continue
            read = _read_floor(tiles[part[air]], level_limit)
            if read is not None:
                parts.append(read)
    if len(parts) < 2:
        return 0
    medians = [median for median, _, _ in parts]
    if max(medians) < FLOOR_VARIATION_FACTOR * min(medians):
        return 0
    return sorted(coils for _, _, coils in parts)[-2]


def _floor_tiles(array: np.ndarray) -> tuple[int, np.ndarray, np.ndarray] | None:
    """``(tile, tiles, air)``: the first tile edge of :data:`FLOOR_TILES` whose grid shows a background, the image's
    sampled tiles of that edge and the background's rows among them; None when no grid shows one."""
    for tile in FLOOR_TILES:
        finer = tile != FLOOR_TILE
        if finer and min(np.shape(array)[-2:]) < SMALL_FLOOR_MIN_PIXELS:
            return None
        tiles = sampled_tiles(array, tile)
        air = None if tiles is None else background_tiles(tiles)
        if air is not None and (not finer or surrounds_the_image(np.shape(array), air, tile)):
            return tile, tiles, air
    return None


#: the floor's sigma on two opposite sides of the image differing by at least this factor is reported as varying
FLOOR_VARIATION_FACTOR = 1.5
#: the fewest air tiles on a side for its own sigma
FLOOR_SIDE_TILES = 4


def floor_variation(array: np.ndarray, floor: MagnitudeFloor) -> tuple[str, float, float] | None:
    """Whether the noise floor differs between opposite sides of the image (parallel imaging's g-factor, a coil
    array on one side): the floor's sigma read in each half (of the columns, of the rows) from that half's own
    background tiles, as :func:`estimate_magnitude_floor` reads it from the whole image (whose darkest tiles lie
    where the floor is lowest, so one reading cannot see it vary).

    Args:
        array: the image the floor was read from (``(Z, Y, X)`` or ``(Y, X)``).
        floor: its :func:`estimate_magnitude_floor` (the coil count and tile size are used).

    Returns:
        ``(axis, first, second)`` for the pair of halves whose sigmas differ most, when by at least
        :data:`FLOOR_VARIATION_FACTOR` (``axis``: ``"columns"`` or ``"rows"`` of the array; ``first`` / ``second``
        the sigma in its first and last half), else None (also where a half shows no background).
    """
    tiles = sampled_tiles(array, floor.tile)
    if tiles is None:
        return None
    rows, columns, height, width = _tile_positions(np.shape(array), floor.tile, len(tiles))
    if not (height and width):
        return None
    median = _chi_median_and_ratio(floor.coils)[0]
    found = []
    for sides, position, count in (("columns", columns, width), ("rows", rows, height)):
        sigmas = []
        for half in (position < count // 2, position >= count - count // 2):
            air = background_tiles(tiles[half]) if half.sum() else None
            if air is None or len(air) < FLOOR_SIDE_TILES:
                break
            sigmas.append(interval_median_and_spread(tiles[half][air])[0] / median)
        if len(sigmas) == 2 and min(sigmas) > 0 and max(sigmas) / min(sigmas) >= FLOOR_VARIATION_FACTOR:
            found.append((max(sigmas) / min(sigmas), sides, *sigmas))
    if not found:
        return None
    _, sides, first, second = max(found)
    return sides, first, second


#: the noise inside the image (the 90th percentile of its estimated SD map) at least this many times the floor's sigma
#: read in the air is taken for noise that rises away from the air (parallel imaging's g-factor peaks between the
#: coils, in the middle of the image, where a floor read at the edges cannot see it). On 5 training MR volumes with
#: Rician noise (1 coil at 3 % and 6 %, 8 coils at 3 %) of one level the ratio reads 0.92-1.25; with a bump from 2 % at
#: the edges to 6 % in the middle 1.18-2.02 (3 of 5 above this factor: the bump is missed on a head that fills the
#: field of view and on a 58 x 58 image). With 1, 4 and 8 coils, as floats and as integers of a floor of 5 and 2.5 grey
#: levels: one level 0.95-1.27 (45 images), the bump 1.13-2.13 (found in all 27 images of the same 3 volumes, in 2 of 18
#: of the other two). Until the floor's median and spread were read as their rounding intervals allow
#: (:mod:`.quantization`) this was for one-coil floors only: an 8-coil floor of sigma 5 stored as integers read 12
#: coils and a sigma 20 % low, and one-level noise then read 1.66 on a held-out real slice
INTERIOR_VARIATION_FACTOR = 1.45
#: slices of a volume the interior's noise is read on
INTERIOR_VARIATION_SLICES = 8


def interior_variation(array: np.ndarray, floor: MagnitudeFloor) -> float | None:
    """How many times the noise inside a magnitude image exceeds its floor's sigma, where by at least
    :data:`INTERIOR_VARIATION_FACTOR`, else None.

    The inside's noise is the 90th percentile of the noise SD map read from the image
    (:func:`~.noise_sd_map.estimate_noise_sd_map`, for the floor's coil count) on up to
    :data:`INTERIOR_VARIATION_SLICES` evenly spaced slices.

    Args:
        array: the image the floor was read from, ``(Z, Y, X)`` or ``(Y, X)``.
        floor: its :func:`estimate_magnitude_floor`.
    """
    from .estimate import sampled_slice_indices
    from .noise_sd_map import estimate_noise_sd_map

    image = np.asarray(array)
    image = image[None] if image.ndim == 2 else image
    sampled = image[sampled_slice_indices(image.shape[0], INTERIOR_VARIATION_SLICES)]
    ratio = float(np.percentile(estimate_noise_sd_map(sampled, floor.coils), 90)) / max(floor.sigma, 1e-30)
    return ratio if ratio >= INTERIOR_VARIATION_FACTOR else None


def describe_floor_sigmas(varies: tuple[str, float, float]) -> str:
    """A :func:`floor_variation`'s two sigmas in words."""
    axis, first, second = varies
    return f"sigma {first:.4g} in the first half of the {axis}, {second:.4g} in the last"


def describe_floor_variation(varies: tuple[str, float, float]) -> str:
    """How a :func:`floor_variation` reads in messages (``info``, ``denoise``, the run report)."""
    return (
        f"{describe_floor_sigmas(varies)}, as parallel imaging or coils on one side make it; one level fits neither: "
        "auto reads a noise SD map from the image, --noise-sd-map takes the scanner's or MP-PCA's map (or auto)"
    )


def varying_floor_note(array: np.ndarray) -> str | None:
    """:func:`describe_floor_variation` of a magnitude image whose floor varies across it, else None (no floor,
    or one level)."""
    floor = estimate_magnitude_floor(array)
    varies = None if floor is None else floor_variation(array, floor)
    return None if varies is None else describe_floor_variation(varies)


def residual_floor_spread(denoised: np.ndarray, floor: MagnitudeFloor, noisy: np.ndarray | None = None) -> float | None:
    """What a denoiser left of the noise in air: ``1.4826 MAD`` of ``denoised`` over the floor's air tiles, over
    sigma (~0.1 for the burst model with its Wiener refinement on MR_Gd at Rician 3-6 %; 0.66 for no denoising at
    one coil).

    Args:
        denoised: the denoised image, in the noisy image's units and shape.
        floor: the noisy image's floor, as :func:`estimate_magnitude_floor` read it.
        noisy: for ``denoised`` of another shape than the image the floor was read from (a preview's slice of it),
            the matching part of the noisy image, whose air tiles are found as the floor found its own. Defaults to
            None.

    Returns:
        The spread in units of sigma, or None when the floor was not read from an image of ``denoised``'s shape and
        ``noisy`` shows no air.
    """
    if floor.air is not None and floor.shape == tuple(np.shape(denoised)):
        tile, air = floor.tile, floor.air
    else:
        found = _floor_tiles(noisy) if noisy is not None and np.shape(noisy) == np.shape(denoised) else None
        if found is None:
            return None
        tile, _, air = found
    return robust_spread(sampled_tiles(denoised, tile)[air]) / floor.sigma


def noncentral_chi_mean(snr: np.ndarray | float, coils: int) -> np.ndarray:
    """``E[M] / sigma`` for a true signal ``snr = A / sigma`` and ``coils`` coils (``snr`` >= 0).

    ``sqrt(2) Gamma(N + 1/2) / Gamma(N) * 1F1(-1/2; N; -snr^2 / 2)``; for one coil ``sqrt(pi/2) L_1/2(-snr^2/2)``.
    """
    from scipy import special

    snr = np.asarray(snr, dtype=np.float64)
    scale = np.sqrt(2.0) * np.exp(special.gammaln(coils + 0.5) - special.gammaln(coils))
    return scale * special.hyp1f1(-0.5, coils, -0.5 * snr**2)


@functools.cache
def _mean_table(coils: int) -> tuple[np.ndarray, np.ndarray]:
    snr = np.concatenate([np.linspace(0.0, 10.0, 2001), np.linspace(10.0, 60.0, 501)[1:]])
    return noncentral_chi_mean(snr, coils), snr


def magnitude_sd_to_sigma(mean: np.ndarray, spread: np.ndarray, coils: int, error: float = 0.0) -> np.ndarray:
    """Per-channel sigma of regions of a magnitude image from their mean and SD: ``SD / sqrt(xi)``, where ``xi`` (the
    magnitude's variance over sigma^2, ``2 coils + snr^2 - E[M]^2``) is tabulated against ``mean / SD`` over the
    signal-to-noise ratio (Koay & Basser, J Magn Reson 2006), on the table the floor's inversion uses.

    Near the floor ``mean / SD`` hardly changes with the signal (8 coils: 5.615 in air, 5.647 at an SNR of 1.4), so a
    measured SD a few % off moves it across a range of SNRs, and the plain inversion reads them only upwards (it cannot
    go below air's): ``xi`` then comes out high and sigma low, by 8-10 % in the air of 8-coil images whose SD was read
    from 256 wavelet coefficients. With ``error`` (the SD's relative standard error) the factor ``1 / sqrt(xi)`` is
    its posterior mean given the measured ratio (:func:`_sd_factor_table`).

    Args:
        mean, spread: the regions' mean and SD, any shape, the image's units.
        coils: the floor's coil count.
        error: the relative standard error of ``spread`` (0: the plain inversion). Defaults to 0.
    """
    measured = np.asarray(mean, np.float64) / np.maximum(spread, 1e-12)
    if error > 0:
        log_ratio, factor = _sd_factor_table(coils, round(float(error), 3))
        return spread * np.interp(np.log(np.maximum(measured, 1e-12)), log_ratio, factor)
    moment, snr = _mean_table(coils)
    variance = 2.0 * coils + snr**2 - moment**2
    ratio = moment / np.sqrt(variance)  # rises with the SNR
    measured = np.clip(measured, ratio[0], ratio[-1])
    return spread / np.sqrt(np.interp(measured, ratio, variance))


@functools.cache
def _sd_factor_table(coils: int, error: float) -> tuple[np.ndarray, np.ndarray]:
    """``E[1 / sqrt(xi) | log(mean / SD)]`` on a grid of ``log(mean / SD)``, for an SD with relative error ``error``
    (Gaussian in the logarithm) and the prior of :func:`_posterior_table` (half air, half uniform in the SNR up to
    the mean table's 60)."""
    moment, snr = _mean_table(coils)
    variance = 2.0 * coils + snr**2 - moment**2
    log_ratio = np.log(moment / np.sqrt(variance))
    weights = np.gradient(snr) / snr[-1] * (1.0 - PRIOR_AIR)
    weights[0] += PRIOR_AIR
    grid = np.linspace(log_ratio[0] - 5.0 * error, log_ratio[-1], 1000)
    log_like = -0.5 * ((grid[:, None] - log_ratio[None, :]) / error) ** 2
    like = np.exp(log_like - log_like.max(axis=1, keepdims=True)) * weights
    return grid, (like / np.sqrt(variance)).sum(axis=1) / like.sum(axis=1)


#: prior of the posterior inversion: this share of pixels is air (``A = 0``), the rest uniform in ``A`` up to
#: POSTERIOR_MAX_SNR sigma (beyond the table's 60 sigma, so the posterior is not truncated where the table ends)
PRIOR_AIR = 0.5
POSTERIOR_MAX_SNR = 80.0
#: below this residual spread (in sigma) the posterior is the plain inversion to within the table's resolution
MIN_RESIDUAL_SPREAD = 0.02
#: the residual spread allowed for in a part of an image that shows no air of its own (a preview's slice of a small
#: head): what the burst model with its refinement leaves in air, 0.06-0.14 sigma (median 0.09) on the training
#: MR_Gd volume at Rician 3 % / 6 % and 8 coils, 1 x 1 x 5 to 3 x 3 x 5 mm. On the sample head's 58 x 58 slices
#: (the full run measured 0.22 there) a preview is 2.2-2.6 grey levels RMS from the full run's slice with this,
#: 3.4-3.7 with the plain inversion
NOMINAL_RESIDUAL_SPREAD = 0.1


@functools.cache
def _posterior_table(coils: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """``E[A | d] / sigma`` on a grid of denoised values ``d / sigma`` (up to the mean at 60 sigma), for ``d`` =
    ``E[M](A)`` plus Gaussian error of ``spread`` sigma and the prior above."""
    snr = np.concatenate([np.linspace(0.0, 10.0, 1001), np.linspace(10.0, POSTERIOR_MAX_SNR, 701)[1:]])
    means = noncentral_chi_mean(snr, coils)
    weights = np.gradient(snr) / POSTERIOR_MAX_SNR  # the uniform part's density times each grid step
    table_means, _ = _mean_table(coils)
    grid = np.concatenate([np.linspace(0.0, table_means[0], 201)[:-1], table_means])
    log_like = -0.5 * ((grid[:, None] - means[None, :]) / spread) ** 2
    log_air = -0.5 * ((grid - means[0]) / spread) ** 2
    top = np.maximum(log_like.max(axis=1), log_air)  # per row, so that no row underflows to 0 / 0
    like = np.exp(log_like - top[:, None]) * ((1.0 - PRIOR_AIR) * weights)
    evidence = PRIOR_AIR * np.exp(log_air - top) + like.sum(axis=1)
    return grid, (like * snr).sum(axis=1) / evidence


def correct_magnitude_bias(denoised: np.ndarray, floor: MagnitudeFloor, noisy: np.ndarray | None = None) -> np.ndarray:
    """Map a denoised magnitude image (an estimate of ``E[M]``) to the true signal ``A``.

    Where the floor was read from an image of this shape, the map is the posterior mean of ``A`` given the denoised
    value, with the denoiser's residual error in air (:func:`residual_floor_spread`) and a prior of half air, half
    uniform signal: values within that error of the floor's mean become ~0 instead of inverting to a positive bias
    (training MR_Gd slices and a 5-slice slab, the burst model refined: background bias 0.35-0.43 -> 0.01-0.02 sigma
    at Rician 3 % and 6 %, 0.51-0.75 -> 0.02-0.04 at 8 coils, the PSNR over the head within -0.02 ... +0.18 dB of the
    plain inversion's; together with the unbiased floor of :func:`estimate_magnitude_floor`).

    Otherwise, and far above the floor, it is the plain inversion of the mean function: values at or below the
    floor's mean in air become 0; beyond ``A = 60 sigma`` the mean is ``sqrt(A^2 + (2N - 1) sigma^2)`` to within
    0.01 %, which is inverted directly.

    Args:
        denoised: the denoised image in the noisy image's units, any shape.
        floor: the noisy image's floor (:func:`estimate_magnitude_floor`).
        noisy: for a part of the image the floor was read from (a preview's slice), that part of the noisy image,
            where :func:`residual_floor_spread` finds the air (without air, :data:`NOMINAL_RESIDUAL_SPREAD` is
            allowed for). Defaults to None.

    Returns:
        float32, same shape, >= 0.
    """
    means, snr = _mean_table(floor.coils)
    spread = residual_floor_spread(denoised, floor, noisy)
    if spread is None and noisy is not None:
        spread = NOMINAL_RESIDUAL_SPREAD  # a part of the image without air of its own
    if spread is not None and spread >= MIN_RESIDUAL_SPREAD:
        # rounded so that the table is cached across the slices of a series and the frames of a run
        means, snr = _posterior_table(floor.coils, round(spread, 3))
    ratio = np.asarray(denoised, dtype=np.float64) / floor.sigma
    inverted = np.interp(ratio, means, snr, left=0.0)
    far = ratio > means[-1]
    inverted[far] = np.sqrt(np.maximum(ratio[far] ** 2 - (2 * floor.coils - 1), 0.0))
    return (inverted * floor.sigma).astype(np.float32)
