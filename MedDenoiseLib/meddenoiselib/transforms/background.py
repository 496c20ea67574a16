"""The flat background of an image (air, the outside of a CT's field of view or of an ultrasound sector), read from
its darkest tiles: where a magnitude MR image holds only its noise floor, and the level a min-max scaling should map
to 0.

Medical images are mostly framed by such a background at their minimum. A network trained on images min-max scaled
by their *clean* range saw it at exactly 0; a noisy file's minimum lies ~4 sigma below it (the darkest of many noisy
background pixels), so scaled by its own minimum the background arrives at +4 sigma and the whole image is denoised
worse. Measured on training images with Gaussian noise of sigma 15 (0-255 scale), ``kpn-general`` with its 8 views
and refinement: the GE head CT slice 17 (24 % of it padding outside the field of view) 42.27 dB scaled by the noisy
minimum, 42.87 with the background's level, 42.93 with the clean minimum.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BACKGROUND_TILE",
    "OTHER_MASK_PATCH",
    "background_level",
    "background_tiles",
    "darkest_tiles",
    "edge_share",
    "masked_background",
    "robust_spread",
    "sampled_tiles",
    "surrounds_the_image",
    "tiles_on_border",
    "tile_noise",
]

#: tile edge (pixels) of the background analysis
BACKGROUND_TILE = 16
#: a tile is background when its mean is within this many standard errors of the darkest tiles' mean
BACKGROUND_TILE_TOLERANCE = 2.0
#: the fraction of the tiles, darkest first, that :func:`background_tiles` starts from
DARKEST_FRACTION = 0.05
#: a minimum held by at least this fraction of the pixels is the background's own level: the file was clipped there
#: (an 8-bit image of a noisy scan) or its background carries no noise (speckle, masked air). Additive noise leaves
#: a handful of pixels at the minimum of an integer image (~0.002 % for int16 CT with 20 units of noise).
PILED_MINIMUM_FRACTION = 0.001
#: a masked background (one value in 2x2-pixel patches of every slice) must cover at least this share of an image to
#: be taken as one (MR_Gd, a skull-stripped MR volume: 67 %)
MASKED_MIN_SHARE = 0.05
#: pixels at the minimum up to this many steps in-plane from a masked background's 2x2 patches join it: a mask's
#: jagged edge leaves such pixels between the patches and the object (channels a pixel wide, a few long on a brain
#: mask at 2.5 mm)
MASKED_EDGE_STEPS = 8
#: ... from its regions of at least this many pixels (a 4 x 4 square): scattered 2x2 patches of noise clipped at
#: the minimum are no background to grow
MASKED_EDGE_SEED_PIXELS = 16
#: the patch a masked background must fill in a volume of unknown modality (a skull-stripped MR or masked PET given as
#: NIfTI without a modality): photon-counting images (fluorescence microscopy, low-count reconstructions) hold exact
#: zeros wherever the counts are low, e.g. 60 % of the pixels at a mean of 0.5 counts, and so 2x2 patches of zeros
#: (13 % of them); 4x4 patches of zeros then are 0.03 %, while a mask's background fills them everywhere but its edge
OTHER_MASK_PATCH = 4
#: the darkest tiles are a flat background only when their pixels spread no more than this many times the noise
#: read from their own pixel-to-pixel differences (white noise alone: 1.00 within 1 %). Texture or an intensity ramp
#: spreads more, and so does noise correlated over several pixels (CT), which is then left alone. On training images
#: with Gaussian noise of sigma 15-50 (0-255 scale) backgrounds gave 0.98-1.01; the darkest tiles of SEM micrographs,
#: which have no background, 1.34-2.74 (at sigma 50 their texture is as strong as the noise).
FLAT_SPREAD_LIMIT = 1.15
#: the image's minimum must lie within the extreme of the background's own noise: at most sqrt(2 ln N) + this many
#: noise standard deviations below its level (N background pixels; the extreme's spread is ~0.3). Training
#: backgrounds: 3.6-4.8 below; SEM micrographs, whose darker structures lie outside the darkest tiles, 5.7-12.
MINIMUM_EXCESS = 1.0


def robust_spread(values: np.ndarray) -> float:
    """``1.4826 MAD`` of ``values``: their standard deviation were they Gaussian, robust to outliers."""
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


#: the most planes :func:`sampled_tiles` reads, evenly spaced
SAMPLED_PLANES = 16


def _plane_step(planes: int) -> int:
    """The step between the planes :func:`sampled_tiles` reads of ``planes`` (and :func:`tiles_on_border` lays out)."""
    return max(1, planes // SAMPLED_PLANES)


def sampled_tiles(array: np.ndarray, tile: int = BACKGROUND_TILE) -> np.ndarray | None:
    """``tile`` x ``tile`` tiles of up to 16 evenly sampled slices of a ``(..., Y, X)`` array, one per row (float32,
    ``(tiles, tile * tile)``), in an order fixed by the array's shape; None when there are none."""
    image = np.asarray(array)  # converted per sampled slice: no float copy of a whole volume
    slices = image.reshape(-1, *image.shape[-2:]) if image.ndim >= 2 else image[None, None]
    tiles = []
    for plane in slices[:: _plane_step(len(slices))].astype(np.float32):
        h, w = (n // tile * tile for n in plane.shape)
        if h and w:
            tiles.append(
                plane[:h, :w].reshape(h // tile, tile, w // tile, tile).swapaxes(1, 2).reshape(-1, tile * tile)
            )
    return np.concatenate(tiles) if tiles else None


def tiles_on_border(shape: tuple[int, ...], tile: int = BACKGROUND_TILE) -> np.ndarray:
    """Which rows of :func:`sampled_tiles` of an array of ``shape`` are on the edge of their slice's tile grid (the
    first or last row or column of tiles): bool ``(tiles,)``, in the same order."""
    height, width = shape[-2] // tile, shape[-1] // tile
    if not (height and width):
        return np.zeros(0, dtype=bool)
    planes = int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1
    edge = np.zeros((height, width), dtype=bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    return np.tile(edge.ravel(), len(range(0, planes, _plane_step(planes))))


def surrounds_the_image(shape: tuple[int, ...], chosen: np.ndarray, tile: int = BACKGROUND_TILE) -> bool:
    """Whether the ``chosen`` rows of :func:`sampled_tiles` of an array of ``shape`` lie on the edge of their slice's
    tile grid at least as often as all its tiles do: air surrounds an object, dark tissue lies inside it."""
    on_edge = tiles_on_border(shape, tile)
    return bool(on_edge[chosen].mean() >= on_edge.mean())


def edge_share(region: np.ndarray) -> float:
    """The share of the pixels on the edges of the slices of a boolean ``(Z, Y, X)`` ``region`` that it holds: ~1
    for a mask's background around an object, low for a crop inside it."""
    edges = [region[:, 0, :], region[:, -1, :], region[:, :, 0], region[:, :, -1]]
    return float(np.concatenate(edges, axis=None).mean())


def darkest_tiles(tiles: np.ndarray, fraction: float = DARKEST_FRACTION) -> np.ndarray | None:
    """Indices of the darkest ``fraction`` of ``tiles`` (rows of :func:`sampled_tiles`) by mean, darkest first; None
    when they are fewer than 4."""
    count = int(len(tiles) * fraction)
    return np.argsort(tiles.mean(axis=1))[:count] if count >= 4 else None


def background_tiles(tiles: np.ndarray, fraction: float = DARKEST_FRACTION, rounds: int = 2) -> np.ndarray | None:
    """Indices of the tiles (rows of :func:`sampled_tiles`) that hold only the background and its noise.

    The darkest ``fraction`` by mean are background, but the darkest of many background tiles are those whose noise
    happened to be low: a level read from them alone is low (~5 % of sigma at one coil on a magnitude MR floor). So
    every tile whose mean is within :data:`BACKGROUND_TILE_TOLERANCE` standard errors of theirs is taken too,
    ``rounds`` times. None when fewer than 4 tiles make up ``fraction``."""
    chosen = darkest_tiles(tiles, fraction)
    if chosen is None:
        return None
    means = tiles.mean(axis=1)
    for _ in range(rounds):
        values = tiles[chosen]
        error = robust_spread(values) / np.sqrt(tiles.shape[1])  # of a tile's mean, were it background
        chosen = np.flatnonzero(means <= float(values.mean()) + BACKGROUND_TILE_TOLERANCE * error)
    return chosen


def tile_noise(tiles: np.ndarray, tile: int = BACKGROUND_TILE) -> float:
    """The white-noise standard deviation of ``tiles`` (rows of :func:`sampled_tiles`) from the differences of
    horizontally adjacent pixels (``1.4826 MAD / sqrt(2)``), which a smooth intensity change barely enters."""
    differences = np.diff(tiles.reshape(-1, tile, tile), axis=2)
    return robust_spread(differences) / np.sqrt(2.0)


def background_level(array: np.ndarray) -> float | None:
    """The mean of an image's flat background at its minimum, in the image's units: an estimate of the minimum the
    image would have without its noise, where zero-mean noise spreads the background below it.

    Args:
        array: ``(Y, X)``, ``(Z, Y, X)`` or ``(T, Z, Y, X)`` image in any units, with zero-mean noise (not a
            magnitude image, whose floor's mean is above its signal: see :mod:`.magnitude`).

    Returns:
        The level, or None where the image has none to read: fewer than 4 tiles in its darkest 5 %; a minimum held
        by 0.1 % of the pixels or more (clipped there, or a noise-free background: the minimum is the level); no
        noise in the darkest tiles; darkest tiles that are not flat (their spread above :data:`FLAT_SPREAD_LIMIT`
        times their pixel-to-pixel noise); or a minimum further below them than their noise reaches (darker
        structures elsewhere: they are not the image's background).
    """
    image = np.asarray(array)
    tiles = sampled_tiles(image) if image.ndim >= 2 else None
    if tiles is None:
        return None
    if np.count_nonzero(tiles == tiles.min()) >= PILED_MINIMUM_FRACTION * tiles.size:
        return None
    chosen = background_tiles(tiles)
    if chosen is None:
        return None
    noise = tile_noise(tiles[chosen])
    if not noise > 0 or robust_spread(tiles[chosen]) > FLAT_SPREAD_LIMIT * noise:
        return None
    level = float(tiles[chosen].mean(dtype=np.float64))
    pixels = image.size * len(chosen) / len(tiles)  # the background's share of the whole image
    if float(image.min()) < level - (np.sqrt(2 * np.log(max(pixels, 2.0))) + MINIMUM_EXCESS) * noise:
        return None
    return level


def masked_background(array: np.ndarray, patch: int = 2) -> np.ndarray | None:
    """The voxels of a background set to one value by a mask: skull-stripped or scanner-masked MR, whose air holds
    0 instead of its noise floor.

    Such a background carries no noise and nothing to restore: a denoiser should leave it exactly as it is (a
    network smears tissue values across the mask's edge), and a noise floor cannot be read from it.

    Args:
        array: ``(Z, Y, X)`` or ``(T, Z, Y, X)`` image (for a series, the voxels at the minimum in every frame).
        patch: the in-plane patch (pixels) a masked region must fill somewhere. Defaults to 2 (MR, ultrasound);
            :data:`OTHER_MASK_PATCH` for images of unknown modality.

    Returns:
        Boolean ``(Z, Y, X)``: voxels at the image's minimum in a 2x2 in-plane patch all at it, dilated back over the
        patches (a morphological opening, so isolated noise pixels at the minimum stay out); with a larger ``patch``,
        only the regions of those that hold a ``patch`` x ``patch`` one (so that the mask's narrow gaps, between a
        head and the image's edge, stay in); then the voxels at the minimum up to :data:`MASKED_EDGE_STEPS` pixels
        in-plane from these regions' large ones, through others at it (4-connected). None when these cover less than
        :data:`MASKED_MIN_SHARE` of the image.
    """
    from scipy import ndimage

    image = np.asarray(array)
    at_minimum = image == image.min()
    if image.ndim == 4:
        at_minimum = at_minimum.all(axis=0)
    if np.count_nonzero(at_minimum) < MASKED_MIN_SHARE * at_minimum.size:
        return None
    masked = ndimage.binary_opening(at_minimum, structure=np.ones((1, 2, 2), dtype=bool))
    cross = ndimage.generate_binary_structure(2, 1)[None]  # 4-connected, in-plane
    if patch > 2:
        seeds = ndimage.binary_opening(at_minimum, structure=np.ones((1, patch, patch), dtype=bool))
        masked = ndimage.binary_propagation(seeds, structure=cross, mask=masked)
    # the opening leaves out background pixels at a jagged mask edge that no 2x2 patch of background holds (a
    # brain mask on 2.5 mm voxels: 400 of 63,000, some in channels a pixel wide); the network would give them the
    # tissue's values and a mask taken again as "> 0" would grow by a pixel. They join the background's large
    # regions through pixels at the minimum (4-connected, bounded): noise clipped to the minimum has no large region
    # to grow from, and photon-count zeros in tissue cannot chain far from one.
    each_slice = np.zeros((3, 3, 3), dtype=bool)
    each_slice[1] = True  # 8-connected regions of each slice
    labels, count = ndimage.label(masked, structure=each_slice)
    if count:
        large = np.bincount(labels.ravel()) >= MASKED_EDGE_SEED_PIXELS
        large[0] = False  # not masked
        seeds = masked if large[1:].all() else large[labels]
        masked |= ndimage.binary_dilation(seeds, structure=cross, iterations=MASKED_EDGE_STEPS, mask=at_minimum)
    return masked if np.count_nonzero(masked) >= MASKED_MIN_SHARE * masked.size else None
