"""Noise-level estimation, so that ``--sigma auto`` and the quality report work on real scans.

Two estimators:

- white noise: Donoho's wavelet median-absolute-deviation on the finest diagonal band (:func:`estimate_sigma`);
  unbiased for white noise, but it sees only the highest frequencies, so it misses most of correlated noise
  (CT after filtered back-projection has little power there);
- correlated noise: flat regions (:func:`estimate_noise`): the image is cut into blocks, a plane is fitted and
  removed in each, and the blocks with the least remaining variation (the flattest tissue) give the noise standard
  deviation at all frequencies and its power spectrum (the PSD BM3D takes for correlated noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "estimate_sigma",
    "estimate_sigma_before_after",
    "estimate_sigma_per_slice",
    "estimate_noise",
    "NoiseEstimate",
    "dct_matrix",
    "estimate_dct_noise",
    "FlatTissueNoise",
    "flat_tissue_noise",
    "magnitude_floor_ratio",
    "sampled_slice_indices",
]

#: block edge of the flat-region estimator (pixels): long enough to hold mid-frequency CT noise.
BLOCK = 24
#: share of the candidate blocks (least structured first) whose spread is taken as noise.
FLAT_SHARE = 0.2
#: block edge of the DCT in which :func:`estimate_dct_noise` gives the noise (the collaborative Wiener's block).
DCT_BLOCK = 8
#: flat-region sigma above this multiple of the wavelet sigma means the noise is correlated (low-pass).
CORRELATED_RATIO = 1.3
#: a denoised image's background (magnitude MR's air after its floor's removal) reaches this fraction of its range
#: above the minimum: dipy's T1 slice, 79 % air, after ``auto``: median 1e-4, 90th percentile 6.5e-4 of the range
DENOISED_BACKGROUND_TOLERANCE = 0.002
#: the fewest coefficients outside a masked background that a slice's wavelet estimate is taken from (else from all)
MIN_UNMASKED_COEFFICIENTS = 64


def finest_diagonal_band(image: np.ndarray) -> np.ndarray:
    """The finest diagonal Daubechies-2 detail band (HH₁) of a 2D image, ``(ceil(Y / 2), ceil(X / 2))``: orthonormal,
    so white noise keeps its standard deviation there, while smooth structure nearly vanishes."""
    import pywt

    _, (_, _, diagonal) = pywt.dwt2(np.asarray(image, dtype=np.float64), "db2", mode="periodization")
    return diagonal


def unmasked_coefficients(image: np.ndarray, tolerance: float = 0.0) -> np.ndarray:
    """Which coefficients of :func:`finest_diagonal_band` see anything but a masked background: boolean, the band's
    shape; False where the coefficient's whole 4x4-pixel support is at the image's minimum.

    Such coefficients are exactly 0 whatever the noise: a background set to its lowest value by a mask (skull-stripped
    or scanner-masked MR, the black surround of an ultrasound sector, CT padding outside the field of view). Where
    that background fills half of a slice, the median of the band is 0 and so would the noise estimate be (MR_Gd,
    two-thirds zeros: 3.9 instead of 11.3). Only the minimum is left out: flat regions at other values stay in, so
    that a noise-free piecewise-constant image (a phantom) keeps a median of 0 rather than its edges'.

    ``tolerance``: the background reaches this fraction of the image's range above its minimum (a denoised image's
    air, near but not at 0). Defaults to 0 (exactly the minimum)."""
    image = np.asarray(image)
    band_shape = ((image.shape[0] + 1) // 2, (image.shape[1] + 1) // 2)
    # coefficient (i, j) of the periodized db2 transform reads pixels 2i-1..2i+2, 2j-1..2j+2, wrapping around
    padded = np.pad(image, ((1, 2 + image.shape[0] % 2), (1, 2 + image.shape[1] % 2)), mode="wrap")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (4, 4))[::2, ::2]
    floor = image.min() + (tolerance * float(np.ptp(image)) if tolerance > 0 else 0.0)
    unmasked = windows.max(axis=(2, 3)) > floor
    return unmasked[: band_shape[0], : band_shape[1]]


def noise_band(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`finest_diagonal_band` of a 2D image and which of its coefficients measure the noise: the
    :func:`unmasked_coefficients`, or all of them when fewer than :data:`MIN_UNMASKED_COEFFICIENTS` are (a tiny image,
    or one almost all at its minimum)."""
    band, unmasked = finest_diagonal_band(image), unmasked_coefficients(image)
    if np.count_nonzero(unmasked) < MIN_UNMASKED_COEFFICIENTS:
        unmasked = np.ones_like(unmasked)
    return band, unmasked


def mad_sigma(coefficients: np.ndarray) -> float:
    """Donoho's robust noise standard deviation of wavelet detail coefficients: median(|c|) / 0.6745."""
    return float(np.median(np.abs(coefficients)) / 0.6745)


def _mad_sigma_2d(image: np.ndarray) -> float:
    """Donoho's wavelet estimator on one 2D image: :func:`mad_sigma` of its :func:`finest_diagonal_band`, which is
    dominated by white noise and nearly free of smooth structure, outside a masked background (:func:`noise_band`)."""
    band, unmasked = noise_band(image)
    return mad_sigma(band[unmasked])


def estimate_sigma_per_slice(array: np.ndarray, axis: int = 0) -> np.ndarray:
    """Wavelet-MAD noise estimate of every 2D slice along ``axis``.

    Args:
        array: ``(Z, Y, X)`` or ``(Y, X)`` image, any units.

    Returns:
        ``(Z,)`` noise standard deviations, in the units of ``array``.
    """
    array = np.asarray(array)
    if array.ndim == 2:
        return np.array([_mad_sigma_2d(array)])
    if array.ndim != 3:
        raise ValueError(f"`array` must be 2D or 3D, got shape {array.shape}.")
    moved = np.moveaxis(array, axis, 0)
    return np.array([_mad_sigma_2d(s) if min(s.shape) >= 4 else np.nan for s in moved])


def _sample_slices(array: np.ndarray, max_slices: int) -> list[np.ndarray]:
    array = np.asarray(array)
    if array.ndim == 2:
        return [array]
    if array.ndim != 3:
        raise ValueError(f"`array` must be 2D or 3D, got shape {array.shape}.")
    return [array[i] for i in sampled_slice_indices(array.shape[0], max_slices) if min(array[i].shape) >= 4]


def sampled_slice_indices(depth: int, max_slices: int = 32) -> np.ndarray:
    """The up to ``max_slices`` evenly spaced slice indices of a ``depth``-slice volume that
    :func:`estimate_sigma` reads (so a caller can prepare only those slices)."""
    return np.unique(np.linspace(0, depth - 1, min(max_slices, depth)).round().astype(int))


def estimate_sigma(array: np.ndarray, max_slices: int = 32) -> float:
    """Estimate the standard deviation of additive white noise in a 2D image or a volume.

    Uses the wavelet median-absolute-deviation estimator (Donoho & Johnstone 1994) on 2D slices and returns the
    median over up to ``max_slices`` evenly spaced slices of a volume. A background at the image's minimum (zero
    after skull stripping or masking, padding) holds no noise: its coefficients are left out
    (:func:`unmasked_coefficients`); slices whose band is all zero are skipped. For correlated noise (CT) use
    :func:`estimate_noise`.

    Args:
        array: ``(Y, X)`` or ``(Z, Y, X)`` image, usually normalized to [0, 1].
        max_slices: the most slices of a volume to look at. Defaults to 32.

    Returns:
        σ in the units of ``array`` (on normalized data multiply by 255 for the 0-255 scale).
    """
    values = np.array([_mad_sigma_2d(s) for s in _sample_slices(array, max_slices)])
    values = values[values > 0]
    return float(np.median(values)) if values.size else 0.0


def estimate_sigma_before_after(noisy: np.ndarray, denoised: np.ndarray, max_slices: int = 32) -> tuple[float, float]:
    """:func:`estimate_sigma` of an image before and after denoising, both on the same wavelet coefficients: those
    that see anything but a masked background (:func:`unmasked_coefficients`) in both images, the denoised image's
    background allowed :data:`DENOISED_BACKGROUND_TOLERANCE` of its range.

    Each image left to choose its own coefficients compares different parts of it: a denoiser that sets air to the
    image's minimum (magnitude MR after the removal of its noise floor) takes that air out of the denoised image's
    estimate but not out of the noisy one's, whose air holds the floor's noise. dipy's T1 slice with Rician noise of
    sigma 0.041 (the noise's true SD over the head 0.043), denoised by ``auto``: 0.037 -> 0.0027 here, 0.029 ->
    0.00003 on the noisy image's own coefficients (mostly air, ~0 after). The sample MR head (4 x 4 x 5 mm): 16.4 ->
    12.0 here, 7.5 -> 9.0 with each image's own coefficients; its finest detail is mostly anatomy (floor sigma 6).

    Args:
        noisy: ``(Y, X)`` or ``(Z, Y, X)`` image, any units. denoised: the same shape and units.
        max_slices: the most slices of a volume to look at. Defaults to 32.

    Returns:
        ``(before, after)``: the medians over the slices whose noisy estimate is above 0, in the images' units
        (``(0.0, 0.0)`` when none is).
    """
    if np.shape(noisy) != np.shape(denoised):
        raise ValueError(f"`noisy` {np.shape(noisy)} and `denoised` {np.shape(denoised)} differ in shape.")
    pairs = []
    for before_slice, after_slice in zip(
        _sample_slices(noisy, max_slices), _sample_slices(denoised, max_slices), strict=True
    ):
        band, after_band = finest_diagonal_band(before_slice), finest_diagonal_band(after_slice)
        used = unmasked_coefficients(before_slice) & unmasked_coefficients(after_slice, DENOISED_BACKGROUND_TOLERANCE)
        if np.count_nonzero(used) < MIN_UNMASKED_COEFFICIENTS:
            used = np.ones_like(used)
        before = mad_sigma(band[used])
        if before > 0:
            pairs.append((before, mad_sigma(after_band[used])))
    if not pairs:
        return 0.0, 0.0
    before, after = np.median(np.array(pairs), axis=0)
    return float(before), float(after)


@dataclass(frozen=True)
class NoiseEstimate:
    """What :func:`estimate_noise` found.

    Attributes:
        sigma: the noise standard deviation to use (flat-region estimate for correlated noise, else wavelet).
        sigma_white: the wavelet (finest-band) estimate.
        sigma_flat: the flat-region estimate (None when too few flat blocks were found).
        correlated: the noise is low-pass correlated (``sigma_flat > 1.3·sigma_white``), as in CT.
        block_psd: mean power spectrum ``E|FFT2(noise block)|²`` of the flat ``(BLOCK, BLOCK)`` blocks, or None.
        blocks: number of flat blocks used.
    """

    sigma: float
    sigma_white: float
    sigma_flat: float | None
    correlated: bool
    block_psd: np.ndarray | None
    blocks: int

    def psd(self, shape: tuple[int, int]) -> np.ndarray:
        """The noise PSD on the DFT grid of a ``shape`` image, as the ``bm3d`` package takes it:
        ``E|FFT2(noise)|²`` (``shape[0]·shape[1]·σ²`` everywhere for white noise)."""
        h, w = shape
        if self.block_psd is None or not self.correlated:
            return np.full(shape, h * w * self.sigma**2)
        # interpolate the block spectrum (per-sample density = power / BLOCK²) on the image's frequency grid
        density = np.fft.fftshift(self.block_psd / BLOCK**2)
        axis = np.fft.fftshift(np.fft.fftfreq(BLOCK))
        fy = np.fft.fftfreq(h)[:, None] * np.ones((1, w))
        fx = np.ones((h, 1)) * np.fft.fftfreq(w)[None, :]
        from scipy.interpolate import RegularGridInterpolator

        interpolate = RegularGridInterpolator((axis, axis), density, bounds_error=False, fill_value=None)
        values = np.clip(interpolate(np.stack([fy.ravel(), fx.ravel()], axis=1)).reshape(h, w), 0, None)
        values *= (self.sigma**2) / max(float(values.mean()), 1e-30)  # total power = σ² per sample
        return values * h * w


def _blocks(image: np.ndarray) -> np.ndarray:
    """``(N, BLOCK, BLOCK)`` non-overlapping blocks of a 2D image (the remainder at the edges is dropped)."""
    h, w = (s // BLOCK * BLOCK for s in image.shape)
    if h == 0 or w == 0:
        return np.empty((0, BLOCK, BLOCK), dtype=image.dtype)
    return image[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(1, 2).reshape(-1, BLOCK, BLOCK)


def _blocks_inside(mask: np.ndarray) -> np.ndarray:
    """Per block of :func:`_blocks`: whether at least 95 % of it lies inside ``mask`` (a 2D boolean image)."""
    return _blocks(mask.astype(np.float32)).mean(axis=(1, 2)) >= 0.95


def _block_statistics(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block: the spread left after removing a plane, and the detrended block itself."""
    blocks = _blocks(image)
    if not len(blocks):
        return np.empty(0), np.empty((0, BLOCK, BLOCK))
    yy, xx = np.mgrid[:BLOCK, :BLOCK]
    design = np.stack([np.ones(BLOCK * BLOCK), yy.ravel() - BLOCK / 2, xx.ravel() - BLOCK / 2], axis=1)
    flat = blocks.reshape(len(blocks), -1).astype(np.float64)
    coefficients, *_ = np.linalg.lstsq(design, flat.T, rcond=None)
    residual = flat - (design @ coefficients).T
    spread = residual.std(axis=1) * np.sqrt(BLOCK * BLOCK / (BLOCK * BLOCK - 3))
    return spread, residual.reshape(-1, BLOCK, BLOCK)


def estimate_noise(
    array: np.ndarray, max_slices: int = 16, correlated: bool | None = None, mask: np.ndarray | None = None
) -> NoiseEstimate:
    """Estimate the noise level of a 2D image or a volume, white or spatially correlated.

    Blocks of ``BLOCK²`` pixels are detrended by a plane; blocks without signal variation at all (padding, clipped
    air: spread below 1e-6 of the image range, or one value in a quarter of the pixels) are dropped; the flattest
    quarter of the rest gives ``sigma_flat`` (the median of their spreads, corrected for picking the flattest of
    pure-noise blocks) and their mean power spectrum.

    Args:
        array: ``(Y, X)`` or ``(Z, Y, X)`` image, any units (the estimate is in the same units).
        max_slices: the most slices of a volume to look at. Defaults to 16.
        correlated: force the decision (True: use the flat-region estimate, e.g. for CT; False: the wavelet
            estimate); None decides from the data.
        mask: boolean array of ``array``'s shape: where to look for flat blocks (the body). Defaults to all.

    Returns:
        A :class:`NoiseEstimate`.
    """
    slices = _sample_slices(array, max_slices)
    masks = [None] * len(slices) if mask is None else _sample_slices(np.asarray(mask, dtype=bool), max_slices)
    sigma_white = estimate_sigma(array, max_slices)
    spreads, residuals = [], []
    for image, inside in zip(slices, masks, strict=True):
        image = np.asarray(image, dtype=np.float64)
        extent = float(image.max() - image.min())
        spread, residual = _block_statistics(image)
        if not spread.size or extent <= 0:
            continue
        # a block where one value fills a quarter of the pixels is padding or clipped, not tissue
        ties = np.array(
            [np.unique(b, return_counts=True)[1].max() / b.size for b in _blocks(image).reshape(len(spread), -1)]
        )
        keep = (spread > 1e-6 * extent) & (ties < 0.25)
        if inside is not None:
            keep &= _blocks_inside(inside)
        spreads.append(spread[keep])
        residuals.append(residual[keep])
    spread = np.concatenate(spreads) if spreads else np.empty(0)
    sigma_flat, block_psd, used = None, None, 0
    if spread.size >= 8:
        order = np.argsort(spread)
        chosen = order[: max(4, int(round(FLAT_SHARE * spread.size)))]
        # the flattest quarter of pure-noise blocks sits ~2 % below sigma (chi statistics of 573 dof)
        sigma_flat = float(np.median(spread[chosen])) * 1.02
        stack = np.concatenate(residuals)[chosen]
        block_psd = (np.abs(np.fft.fft2(stack)) ** 2).mean(axis=0)
        block_psd[0, 0] = np.mean([block_psd[0, 1], block_psd[1, 0], block_psd[0, -1], block_psd[-1, 0]])
        used = int(chosen.size)
    if correlated is None:
        correlated = sigma_flat is not None and sigma_white > 0 and sigma_flat > CORRELATED_RATIO * sigma_white
    correlated = bool(correlated and sigma_flat is not None)
    sigma = sigma_flat if correlated else sigma_white
    return NoiseEstimate(float(sigma), sigma_white, sigma_flat, correlated, block_psd, used)


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``(n, n)`` (float64): rows are the basis functions."""
    k = np.arange(n)
    matrix = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * np.sqrt(2 / n)
    matrix[0] /= np.sqrt(2)
    return matrix


def _guided_blocks(
    noisy: np.ndarray, guide: np.ndarray, mask: np.ndarray | None, max_slices: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``BLOCK``-pixel blocks of up to ``max_slices`` slices, at least 95 % inside ``mask`` and with noise:
    ``(flatness, noisy_residual, guide_residual)``: the spread of each guide block beyond its plane ``(N,)``, the
    noisy block less the guide's plane ``(N, BLOCK, BLOCK)`` and the guide block less its plane (float64).

    The noisy blocks lose the guide's planes, not their own: a plane fitted to the noisy block would also take away
    the noise's own lowest frequencies (31 % of the DC variance of noise blurred by a 1 px Gaussian)."""
    if np.shape(guide) != np.shape(noisy) or (mask is not None and np.shape(mask) != np.shape(noisy)):
        raise ValueError(f"noisy {np.shape(noisy)}, guide {np.shape(guide)} and mask must have one shape")
    noisy_slices, guide_slices = _sample_slices(noisy, max_slices), _sample_slices(guide, max_slices)
    masks = [None] * len(noisy_slices) if mask is None else _sample_slices(np.asarray(mask, bool), max_slices)
    flatness, noisy_residuals, guide_residuals = [], [], []
    for image, smooth, inside in zip(noisy_slices, guide_slices, masks, strict=True):
        smooth, image = np.asarray(smooth, dtype=np.float64), np.asarray(image, dtype=np.float64)
        spread, guide_residual = _block_statistics(smooth)
        residual = _blocks(image) - (_blocks(smooth) - guide_residual)
        keep = residual.reshape(len(residual), BLOCK * BLOCK).std(axis=1) > 0  # padding without noise
        if inside is not None:
            keep &= _blocks_inside(inside)
        flatness.append(spread[keep])
        noisy_residuals.append(residual[keep])
        guide_residuals.append(guide_residual[keep])
    if not flatness:
        empty = np.empty((0, BLOCK, BLOCK))
        return np.empty(0), empty, empty
    return np.concatenate(flatness), np.concatenate(noisy_residuals), np.concatenate(guide_residuals)


def estimate_dct_noise(
    noisy: np.ndarray,
    guide: np.ndarray,
    mask: np.ndarray | None = None,
    max_slices: int = 16,
    share: float = FLAT_SHARE,
) -> np.ndarray | None:
    """Noise variance of each coefficient of the orthonormal 2D DCT of a ``DCT_BLOCK``-pixel block, for correlated
    noise (CT) whose spectrum the filter must know.

    Like :func:`estimate_noise`, from ``BLOCK``-pixel blocks of flat tissue, but the flattest blocks are chosen on
    ``guide`` (a denoised copy: the network's output), and the trend removed from each is the plane fitted to the
    guide, not to the noisy block: chosen on the noisy image, the flattest blocks are also those with the least
    noise (CT noise varies across the body; on held-out CT series that read ~20 % low). Inside each chosen block
    the ``DCT_BLOCK`` sub-blocks every ``DCT_BLOCK // 2`` pixels are transformed: they measure exactly what the
    filter sees, low frequencies included (a periodogram of a non-periodic block smears them).

    Args:
        noisy: ``(Y, X)`` or ``(Z, Y, X)`` noisy image, any units. guide: the same shape, denoised.
        mask: where to look (the CT body), same shape. Defaults to everywhere.
        max_slices: the most slices to look at. share: the flattest share of the blocks taken as noise.

    Returns:
        ``(DCT_BLOCK, DCT_BLOCK)`` float64 variances in ``noisy``'s units squared, or None with fewer than 8 blocks.
    """
    flat, residuals, _ = _guided_blocks(noisy, guide, mask, max_slices)
    if flat.size < 8:
        return None
    chosen = residuals[np.argsort(flat)[: max(8, int(round(share * flat.size)))]]
    n, step = DCT_BLOCK, DCT_BLOCK // 2
    starts = range(0, BLOCK - n + 1, step)
    sub = np.stack([chosen[:, y : y + n, x : x + n] for y in starts for x in starts], axis=1).reshape(-1, n, n)
    basis = dct_matrix(n)
    return np.mean((basis @ sub @ basis.T) ** 2, axis=0)


@dataclass(frozen=True)
class FlatTissueNoise:
    """The noise of a denoising run's input and output at the same places, in the image's units (HU for CT).

    Attributes:
        before: RMS of the input's ``BLOCK``-pixel blocks less the output's plane in each, over the chosen blocks.
        after: RMS of the output's blocks less their own plane, over the same blocks.
        blocks: how many blocks were used.
    """

    before: float
    after: float
    blocks: int


def flat_tissue_noise(
    noisy: np.ndarray,
    denoised: np.ndarray,
    mask: np.ndarray | None = None,
    max_slices: int = 16,
    share: float = FLAT_SHARE,
) -> FlatTissueNoise | None:
    """The noise in flat tissue before and after denoising, measured on the same blocks.

    The flattest ``share`` of the ``BLOCK``-pixel blocks inside ``mask`` are chosen on ``denoised`` (on the noisy
    image, the flattest blocks are also the least noisy ones), as :func:`estimate_dct_noise` chooses them; in each,
    ``before`` is what the input holds beyond the output's plane and ``after`` what the output holds beyond it.
    Both see all frequencies (correlated CT noise included), so for CT in HU they are the numbers a physicist reads
    off an ROI in uniform tissue, on many ROIs at once. ``after`` also holds whatever texture the flattest tissue
    has; ``before`` also holds noise the reference scan itself would carry.

    Args:
        noisy: ``(Y, X)`` or ``(Z, Y, X)`` input, any units. denoised: the output, same shape and units.
        mask: where to look (the CT body), boolean, same shape; blocks at least 95 % inside count. Defaults to all.
        max_slices: the most slices of a volume to look at (evenly spaced). Defaults to 16.
        share: the flattest share of the candidate blocks used. Defaults to ``FLAT_SHARE``.

    Returns:
        A :class:`FlatTissueNoise`, or None with fewer than 8 candidate blocks (a small image, no tissue in
        ``mask``, or an input without noise).
    """
    flat, before, after = _guided_blocks(noisy, denoised, mask, max_slices)
    if flat.size < 8:
        return None
    chosen = np.argsort(flat, kind="stable")[: max(8, int(round(share * flat.size)))]
    return FlatTissueNoise(
        before=float(np.sqrt(np.square(before[chosen]).mean())),
        after=float(np.sqrt(np.square(after[chosen]).mean())),
        blocks=int(chosen.size),
    )


#: median / (1.4826 MAD) of pure magnitude noise with N receive coils (root sum of squares of N complex Gaussians:
#: a central chi with 2N degrees of freedom): 1.78 for one coil (Rayleigh), 2.66 for 2, 3.86 for 4, 5.56 for 8.
#: Independent of sigma, so it tells the coil count of a background without knowing the noise level.
SINGLE_COIL_FLOOR_RATIO = 1.78


def magnitude_floor_ratio(array: np.ndarray, tile: int = 16, fraction: float = 0.05) -> float | None:
    """How the background of a magnitude MR image is distributed: ``median / (1.4826 MAD)`` of its darkest tiles.

    The darkest ``fraction`` of ``tile`` x ``tile`` tiles (by mean, over all slices) are taken as air, where a
    magnitude image holds only its noise floor. That floor is Rayleigh for one coil (ratio ~1.78) and a central chi
    for N coils combined by root sum of squares (2.66 for 2 coils, 3.86 for 4, 5.56 for 8), whatever sigma is.

    Args:
        array: ``(Z, Y, X)`` or ``(Y, X)`` magnitude image in its stored units (a zero offset, as MR magnitude has).

    Returns:
        The ratio, or None where it cannot tell: a background set to one value (masked by the scanner) or too
        few tiles.
    """
    from .magnitude import darkest_background, robust_ratio

    values = darkest_background(array, tile, fraction)
    return None if values is None else robust_ratio(values)
