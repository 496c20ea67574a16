"""The flat background of a noisy image: its level is the minimum the image would have without its noise."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from meddenoiselib.io import read_volume
from meddenoiselib.transforms.background import background_level, edge_share, masked_background

SIGMA = 15 / 255


@pytest.fixture(scope="module")
def ultrasound(us_png) -> np.ndarray:
    """The test data's ultrasound frame (540x800, black outside the sector), min-max scaled to [0, 1]."""
    image = read_volume(us_png).array.astype(np.float32)
    return (image - image.min()) / (image.max() - image.min())


def test_the_level_of_a_noisy_background_is_the_clean_minimum(ultrasound):
    """Gaussian noise of sigma 15/255 puts the noisy minimum 4-5 sigma below the black outside the sector; the
    background's level is within 0.05 sigma of it, also read from a stack of slices."""
    noisy = ultrasound + np.random.default_rng(0).normal(0, SIGMA, ultrasound.shape).astype(np.float32)
    assert noisy.min() < -4 * SIGMA
    assert abs(background_level(noisy)) < 0.05 * SIGMA
    stack = np.concatenate([noisy, noisy[:, ::-1] + np.float32(0.5)])  # (2, 540, 800); the darker slice's is read
    assert abs(background_level(stack)) < 0.05 * SIGMA
    assert abs(background_level(stack[None]) - background_level(stack)) < 1e-6  # (T, Z, Y, X) as (Z, Y, X)


def test_no_level_where_the_minimum_is_already_the_background(ultrasound):
    """An image clipped at its minimum (an 8-bit file of a noisy scan) or without noise in its background holds that
    minimum in 0.1 % of its pixels or more: the minimum is the level, and nothing is read."""
    noisy = ultrasound + np.random.default_rng(0).normal(0, SIGMA, ultrasound.shape).astype(np.float32)
    assert background_level(np.clip(noisy, 0, 1)) is None
    assert background_level(ultrasound) is None


def test_no_level_without_a_flat_background():
    """The darkest tiles of a ramp hold the ramp, not only noise (their spread 2.4x the noise of their pixel-to-pixel
    differences); noise correlated over neighbouring pixels, as in CT, spreads 2x more than those differences tell
    and is left alone too, where the same background with white noise is read; an image of fewer than 80 tiles has
    too few to read; a 1D array has none."""
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 1, 256, dtype=np.float32)[None, :].repeat(256, axis=0)
    assert background_level(ramp + rng.normal(0, 0.01, ramp.shape)) is None
    flat = np.zeros((256, 256), np.float32)
    flat[64:192, 64:192] = 1
    assert background_level(flat + rng.normal(0, 0.01, flat.shape)) == pytest.approx(0, abs=0.001)
    correlated = gaussian_filter(rng.normal(0, 0.03, flat.shape), 1.0)  # ~0.01 after the smoothing
    assert background_level(flat + correlated) is None


def test_no_level_from_a_flat_region_above_darker_structures():
    """A flat grey region darker on average than fine texture around it (2x2 blocks of 0.3 and 0.7) is the darkest
    by its tiles' means, but the texture's dark pixels reach far below it: the image's minimum lies further below
    the region than its noise reaches, so it is not the background; without the texture's dark half it is."""
    rng = np.random.default_rng(2)
    blocks = np.where(rng.random((128, 128)) < 0.5, 0.3, 0.7).repeat(2, 0).repeat(2, 1).astype(np.float32)
    blocks[:64, :] = 0.45
    noise = rng.normal(0, 0.05, blocks.shape).astype(np.float32)
    assert background_level(blocks + noise) is None
    assert background_level(np.maximum(blocks, 0.45) + noise) == pytest.approx(0.45, abs=0.01)
    assert background_level(rng.normal(0, 0.01, (64, 64))) is None
    assert background_level(rng.normal(0, 0.01, 4096)) is None


def test_a_masked_background_is_found_in_every_frame_and_noise_is_not_one(ultrasound):
    """The black outside the ultrasound sector is a background of one value (the whole 2x2 patches at the minimum);
    Gaussian noise leaves no such patches, and clipped at 0 only a few isolated pixels: no masked background. In a
    series only what is masked in every frame counts."""
    frame = ultrasound[0]
    black = masked_background(ultrasound)
    assert black is not None and 0.1 < black.mean() < 0.6
    assert np.all(frame[black[0]] == frame.min())
    noisy = ultrasound + np.random.default_rng(0).normal(0, SIGMA, ultrasound.shape).astype(np.float32)
    assert masked_background(noisy) is None
    clipped = np.clip(noisy, 0, 1)
    assert np.count_nonzero(clipped == 0) > 0.05 * clipped.size  # half the black is clipped to 0...
    assert masked_background(clipped) is None or masked_background(clipped).mean() < 0.05 * black.mean()
    shifted = np.stack([ultrasound, np.roll(ultrasound, 40, axis=-1)])  # (T, Z, Y, X): the sector moved in frame 2
    both = masked_background(shifted)
    assert both is not None and both.sum() < black.sum() and np.all(both <= black)


def test_a_masks_background_holds_the_slices_edges_and_a_crop_inside_the_object_does_not():
    yy, xx = np.mgrid[:64, :64] - 31.5
    outside = np.broadcast_to(np.hypot(yy, xx) > 24, (3, 64, 64))  # a round object, the mask's background around it
    assert edge_share(outside) == 1.0
    assert edge_share(outside[:, 16:48, 16:48]) == 0.0  # a crop inside the object: tissue on every edge
    half = outside.copy()
    half[:, :, 32:] = False  # the object runs off the right half of the image
    assert 0.4 < edge_share(half) < 0.6


def test_a_masks_jagged_edge_is_background_up_to_the_object():
    """Pixels of a mask's background that no 2x2 patch of it holds (a channel a pixel wide into the object, an L of
    pixels) are background too: the network would give them the object's values, and a mask taken again as
    "> 0" from the output would grow. Scattered zeros of noise clipped at 0 mostly stay out."""
    yy, xx = np.mgrid[:64, :64] - 31.5
    image = np.where(np.hypot(yy, xx) < 20, 100.0, 0.0)[None].repeat(3, axis=0)
    image[:, 31, 44:52] = 0  # a channel a pixel wide, 8 deep into the object from its edge
    image[:, 12:15, 30] = 0  # ... and an L of pixels from the top edge
    image[:, 14, 31] = 0
    masked = masked_background(image)
    assert masked is not None and np.array_equal(masked, image == 0)
    # zeros of noise clipped at 0 inside a larger object: the 2x2 patches they happen to fill count as background
    # (12 % of them at 30 % zeros), and a few more through them from the edge (16 % with the edge's pixels)
    yy, xx = np.mgrid[:128, :128] - 63.5
    disc = np.where(np.hypot(yy, xx) < 50, 100.0, 0.0)[None].repeat(3, axis=0)
    zeros = (np.random.default_rng(0).random(disc.shape) < 0.3) & (disc > 0)
    grown = masked_background(np.where(zeros, 0.0, disc))
    assert grown is not None and np.count_nonzero(grown & zeros) < 0.2 * np.count_nonzero(zeros)
