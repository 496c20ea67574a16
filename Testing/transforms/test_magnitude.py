"""The magnitude-MR noise floor: coil count and sigma from the background, and the bias removed after denoising."""

from __future__ import annotations

import numpy as np
import pytest

from meddenoiselib.io import read_volume
from meddenoiselib.transforms import correct_magnitude_bias, estimate_magnitude_floor
from meddenoiselib.transforms.magnitude import MagnitudeFloor, floor_ratio_for_coils, noncentral_chi_mean


def _magnitude(signal: np.ndarray, sigma: float, coils: int, seed: int) -> np.ndarray:
    """Root sum of squares of ``coils`` complex channels, the signal in the first channel's real part."""
    rng = np.random.default_rng(seed)
    channels = rng.normal(0.0, sigma, (2 * coils, *signal.shape))
    channels[0] += signal
    return np.sqrt((channels**2).sum(axis=0))


def test_mean_function_matches_the_closed_forms_and_a_simulation():
    # air: sigma * sqrt(pi/2) for one coil; far above the floor: sqrt(A^2 + (2N - 1) sigma^2)
    assert noncentral_chi_mean(0.0, 1) == pytest.approx(np.sqrt(np.pi / 2), rel=1e-9)
    assert noncentral_chi_mean(50.0, 8) == pytest.approx(np.sqrt(50.0**2 + 15), rel=1e-4)
    for coils, snr in ((1, 1.5), (4, 2.0), (8, 0.5)):
        simulated = _magnitude(np.full(200_000, snr), 1.0, coils, seed=coils).mean()
        assert noncentral_chi_mean(snr, coils) == pytest.approx(simulated, rel=5e-3)
    assert floor_ratio_for_coils(1) == pytest.approx(1.78, abs=0.01)
    assert floor_ratio_for_coils(8) == pytest.approx(5.56, abs=0.02)


@pytest.mark.parametrize("coils", [1, 4, 8])
def test_floor_estimate_reads_coils_and_sigma_from_a_real_heads_background(mr_nifti, coils):
    """The bundled head MR (clean, its air at 0) with a simulated floor: the estimate finds the coil count and
    sigma to within 10 %."""
    clean = read_volume(mr_nifti).array.astype(np.float64)
    sigma = 0.03 * np.percentile(clean, 99)
    floor = estimate_magnitude_floor(_magnitude(clean, sigma, coils, seed=7))
    assert floor is not None
    assert floor.coils in {1: (1,), 4: (3, 4, 6), 8: (6, 8, 12)}[coils]
    assert floor.sigma == pytest.approx(sigma, rel=0.1)
    assert estimate_magnitude_floor(np.zeros((4, 64, 64))) is None  # a masked background says nothing


@pytest.mark.parametrize("coils", [1, 4, 8, 16])
def test_floor_of_a_few_grey_levels_stored_as_integers_is_read_right(mr_nifti, coils):
    """The bundled head scaled so that a floor of sigma 3 % of its 99th percentile is 3 grey levels, stored as
    integers, as a scanner stores magnitude MR. Read with the plain median and MAD, its 1 / 4 / 8 / 16 coils read
    2 / 8 / 16 / 32 and sigma 27-32 % low (the MAD of integers is a whole or half step); with each value spread
    over its rounding interval the coil count is right and sigma within 7 % (1 coil: the head's own floor adds)."""
    clean = read_volume(mr_nifti).array.astype(np.float64)
    sigma = 3.0
    clean *= sigma / (0.03 * np.percentile(clean, 99))
    noisy = np.rint(_magnitude(clean, sigma, coils, seed=7)).astype(np.int16)
    floor = estimate_magnitude_floor(noisy)
    assert floor is not None
    assert floor.coils == coils
    assert floor.sigma == pytest.approx(sigma, rel=0.07)


@pytest.mark.parametrize("coils", [1, 8])
def test_correction_removes_the_bias_of_an_ideal_mean_estimate(coils):
    """Given the exact E[M] (what an ideal Gaussian denoiser would return), the correction returns A."""
    signal = np.linspace(0.0, 30.0, 301)
    corrected = correct_magnitude_bias(noncentral_chi_mean(signal, coils), MagnitudeFloor(1.0, coils, 0.0))
    np.testing.assert_allclose(corrected, signal, atol=2e-3)
    assert correct_magnitude_bias(np.array([0.0, 0.5]), MagnitudeFloor(1.0, coils, 0.0)).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("coils", [1, 8])
def test_floor_is_read_without_bias_and_removed_without_bias_from_a_denoisers_output(coils, mr_png):
    """The test data's 256x256 brain slice as the signal (its own floor, <= 8 of 255, set to 0), with a
    magnitude floor of sigma = 3 % of its 99th percentile. Sigma is read to within 3 % (the darkest 5 % of tiles
    alone read it ~5 % low at one coil). A denoiser's output is E[M] plus a residual error; 0.1 sigma of it (what the
    burst model leaves in air) turns into +0.24 / +0.41 sigma of background bias under the plain inversion; the
    posterior inversion leaves < 0.05 sigma there, and in tissue stays within 0.05 sigma of the signal on average."""
    from scipy import ndimage

    from meddenoiselib.transforms.magnitude import residual_floor_spread

    image = read_volume(mr_png).array
    signal = np.where(image > 8, image, 0).astype(np.float64) * 16.0
    sigma = 0.03 * np.percentile(signal, 99)
    floor = estimate_magnitude_floor(_magnitude(signal, sigma, coils, seed=11))
    assert floor is not None and floor.coils == coils
    assert floor.sigma == pytest.approx(sigma, rel=0.03)

    residual = ndimage.gaussian_filter(np.random.default_rng(3).normal(size=signal.shape), 1.0)
    denoised = noncentral_chi_mean(signal / sigma, coils) * sigma + 0.1 * sigma * residual / residual.std()
    assert residual_floor_spread(denoised, floor) == pytest.approx(0.1, rel=0.25)
    air = ~ndimage.binary_dilation(signal > 0, iterations=5)
    tissue = signal > 10 * sigma
    plain = correct_magnitude_bias(denoised, MagnitudeFloor(floor.sigma, floor.coils, floor.ratio))
    corrected = correct_magnitude_bias(denoised, floor)
    assert np.mean(plain[air]) / sigma > 0.2
    assert abs(np.mean(corrected[air])) / sigma < 0.05
    assert abs(np.mean(corrected[tissue] - signal[tissue])) / sigma < 0.05


@pytest.mark.parametrize(("reduction", "tile"), [(1, 16), (2, 8), (3, 8), (4, 4)])
@pytest.mark.parametrize("coils", [1, 8])
def test_the_floor_of_a_small_single_slice_is_read_on_finer_tiles(mr_png, reduction, tile, coils):
    """A single slice under 144 x 144 (an EPI or DWI slice, an MR image reduced 2-3x) has too few 16-px tiles for a
    background; the floor is then read on 8- or 4-px tiles: the test data's brain slice reduced 2x (128 x 128), 3x
    (85 x 85) and 4x (64 x 64), Rician or 8-coil floor of 3 % of its 99th percentile: the coil count exact and sigma
    within 8 % (measured 1-6 % on the training MR_Gd slices). Before, no floor was read there, and ``auto`` gave such
    an image the Rician model."""
    image = read_volume(mr_png).array[0].astype(np.float64)
    size = image.shape[0] // reduction * reduction
    reduced = image[:size, :size].reshape(size // reduction, reduction, size // reduction, reduction).mean(axis=(1, 3))
    signal = np.where(reduced > 8, reduced, 0.0) * 16.0
    sigma = 0.03 * np.percentile(signal, 99)
    noisy = _magnitude(signal, sigma, coils, seed=11)[None]
    floor = estimate_magnitude_floor(noisy)
    assert floor is not None and floor.tile == tile and floor.coils == coils
    assert floor.sigma == pytest.approx(sigma, rel=0.08)
    assert floor.shape == noisy.shape and len(floor.air) >= 4


def test_on_finer_tiles_only_dark_tiles_on_the_edge_are_a_floor():
    """A 96 x 96 magnitude slice (one coil, sigma 30): tissue at 1000 with a dark disc of radius 20 inside and no air
    at the edges gives no floor (without the edge rule the disc read as a one-coil floor, sigma 29.5); the same disc of
    tissue with air around it gives the floor (sigma within 5 %) on 8-px tiles."""
    yy, xx = np.mgrid[:96, :96]
    dark_inside = np.where((yy - 48) ** 2 + (xx - 48) ** 2 < 20**2, 0.0, 1000.0)
    air_around = np.where((yy - 48) ** 2 + (xx - 48) ** 2 < 36**2, 1000.0, 0.0)
    assert estimate_magnitude_floor(_magnitude(dark_inside, 30.0, 1, seed=3)[None]) is None
    floor = estimate_magnitude_floor(_magnitude(air_around, 30.0, 1, seed=3)[None])
    assert floor is not None and floor.tile == 8 and floor.coils == 1
    assert floor.sigma == pytest.approx(30.0, rel=0.05)


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("coils", [1, 4, 8])
def test_the_coil_count_of_a_floor_that_varies_across_the_image_is_read_in_its_parts(mr_png, coils, integer):
    """Four slices of the test data's brain slice, sigma rising across their columns from 1 % to 8 % of the 99th
    percentile (a coil array on one side), as floats and as integers (sigma 1-8 grey levels): the whole air mixes
    sigmas, which lowers its ``median / MAD`` (8 coils read 6, 4 coils 3-4 before the parts were read); the quarters
    of the image read the count (a single 256 x 256 slice holds ~6 air tiles per quarter: 6 or 8 for 8 coils). One
    level reads its count as before, and the floor's sigma is that of the darkest air, the low end of the ramp."""
    image = read_volume(mr_png).array[0].astype(np.float64)
    signal = np.where(image > 8, image, 0.0)
    signal = np.stack([signal * (100.0 if integer else 1000.0) / np.percentile(signal, 99)] * 4)
    top = float(np.percentile(signal, 99))
    ramp = (0.01 + 0.07 * np.linspace(0.0, 1.0, signal.shape[-1]))[None, :] * top
    for sigma in (ramp, np.full(signal.shape[-2:], 0.03 * top)):
        noisy = _magnitude(signal, sigma, coils, seed=5)
        floor = estimate_magnitude_floor(np.rint(noisy) if integer else noisy)
        assert floor is not None and floor.coils == coils
        assert np.min(sigma) * 0.9 < floor.sigma < np.min(sigma) * 1.6
