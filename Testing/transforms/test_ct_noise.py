"""Low-dose CT noise: the projector matches skimage's radon/iradon, the noise behaves like a scanner's (std in HU
grows as 1/sqrt(dose), more noise along long paths, streaks between dense objects, a ramp-shaped spectrum), and the
fast image-domain approximation used for training matches the projection-domain simulation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter
from skimage.transform import iradon, radon

from meddenoiselib.io import read_volume
from meddenoiselib.transforms.noise import (
    CTScanner,
    ParallelBeam,
    ct_noise_fast,
    ct_noise_projection,
    ct_noise_variance_terms,
)

SCANNER = CTScanner(views=240)


@pytest.fixture(scope="module")
def chest_hu(ct_series_dir) -> tuple[np.ndarray, float]:
    """A real chest CT slice in HU, 2x downsampled to 256x256 (1.95 mm pixels) to keep the tests fast."""
    volume = read_volume(ct_series_dir)
    hu = volume.array[1].astype(np.float32)
    return hu.reshape(256, 2, 256, 2).mean(axis=(1, 3)), volume.spacing[0] * 2


def _ellipse(shape, centre, axes, value, background):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    inside = ((yy - centre[0]) / axes[0]) ** 2 + ((xx - centre[1]) / axes[1]) ** 2 <= 1
    out = (
        np.asarray(background, dtype=np.float32).copy()
        if np.ndim(background)
        else np.full(shape, background, np.float32)
    )
    out[inside] = value
    return out


def _realizations(hu, pixel_mm, dose, count, seed, scanner=SCANNER):
    generator = torch.Generator().manual_seed(seed)
    stack = torch.from_numpy(np.repeat(hu[None], count, axis=0))
    return ct_noise_projection(stack, pixel_mm, dose, scanner, generator).numpy()


def test_projector_matches_skimage_radon_and_iradon(chest_hu):
    hu, pixel_mm = chest_hu
    mu = np.clip(0.019 * (1 + hu / 1000), 0, None) * pixel_mm
    geometry = ParallelBeam(mu.shape, views=180)
    sinogram = geometry.project(torch.from_numpy(mu)[None])[0].numpy()
    theta = np.rad2deg(geometry.angles.numpy())
    reference = radon(mu, theta=theta, circle=False)  # (detectors, views)
    # every view integrates the whole image: the same total as skimage's
    np.testing.assert_allclose(sinogram.sum(axis=1), reference.sum(axis=0), rtol=1e-3)
    ours = geometry.reconstruct(torch.from_numpy(sinogram)[None], "ramp")[0].numpy()
    theirs = iradon(reference, theta=theta, circle=False, filter_name="ramp")
    centre = (slice(64, 192), slice(64, 192))
    error_ours = np.abs(ours - mu)[centre].mean() / mu[centre].mean()
    error_theirs = np.abs(theirs - mu)[centre].mean() / mu[centre].mean()
    assert error_ours < 1.05 * error_theirs + 1e-3
    assert ours[centre].mean() == pytest.approx(mu[centre].mean(), rel=0.005)


def test_noise_std_in_hu_grows_as_one_over_sqrt_dose(chest_hu):
    hu, pixel_mm = chest_hu
    body = hu > -500
    quiet = CTScanner(views=240, electronic_noise=0.0)
    full = _realizations(hu, pixel_mm, 1.0, 3, seed=0, scanner=quiet)[:, body].std()
    quarter = _realizations(hu, pixel_mm, 0.25, 3, seed=1, scanner=quiet)[:, body].std()
    assert quarter / full == pytest.approx(2.0, rel=0.10)
    # zero-mean noise, in HU of a plausible size for a chest at these doses
    assert abs(_realizations(hu, pixel_mm, 0.25, 2, seed=2)[:, body].mean()) < 0.1 * quarter
    assert 5 < full < 60


def test_noise_is_larger_along_long_paths():
    """A wide water ellipse: the centre sees long rays in every direction, the tips of the long axis short ones."""
    shape = (256, 256)
    phantom = _ellipse(shape, (128, 128), (60, 115), 0.0, -1000.0)
    noise = _realizations(phantom, 1.5, 0.5, 4, seed=3)
    local = np.sqrt(uniform_filter((noise**2).mean(axis=0), 15))
    centre, tip = local[128, 128], local[128, 128 + 100]
    assert centre > 1.15 * tip  # measured 1.26; stationary noise gives 1.00 +- 0.03


def test_dense_objects_cause_streaks_between_them():
    """Two dense rods in water: rays through both are photon-starved, so noise concentrates along their line."""
    shape = (256, 256)
    phantom = _ellipse(shape, (128, 128), (100, 100), 0.0, -1000.0)
    phantom = _ellipse(shape, (128, 78), (8, 8), 3000.0, phantom)
    phantom = _ellipse(shape, (128, 178), (8, 8), 3000.0, phantom)
    noise = _realizations(phantom, 1.5, 0.3, 4, seed=4)
    power = (noise**2).mean(axis=0)
    along = power[124:133, 95:162].mean()  # between the rods, on the line joining them
    across = power[95:162, 124:133].mean()  # the same distance from the centre, perpendicular to that line
    assert along > 1.25 * across  # measured 1.35; stationary noise gives 1.0


def _radial_nps(noise: np.ndarray) -> np.ndarray:
    n = noise.shape[-1]
    power = (np.abs(np.fft.fft2(noise - noise.mean(axis=(-2, -1), keepdims=True))) ** 2).mean(axis=0)
    fy, fx = np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij")
    bins = np.clip((np.hypot(fx, fy) / 0.5 * 16).astype(int), 0, 16)
    return np.bincount(bins.ravel(), power.ravel(), 17)[:16] / np.bincount(bins.ravel(), minlength=17)[:16]


@pytest.mark.parametrize("kernel", ["shepp-logan", "hann"])
def test_fast_image_domain_noise_matches_projection_domain(chest_hu, kernel):
    """Tolerances: local noise std within 15 % in the body; the radial noise power spectra correlate > 0.95 and
    their median frequencies (half the noise power below) agree within 10 %."""
    hu, pixel_mm = chest_hu
    scanner = CTScanner(views=240, kernel=kernel)
    projection = _realizations(hu, pixel_mm, 0.25, 6, seed=5, scanner=scanner)
    terms = ct_noise_variance_terms(torch.from_numpy(hu), pixel_mm, scanner)
    fast = ct_noise_fast(terms[None].repeat(6, 1, 1, 1), 0.25, scanner, torch.Generator().manual_seed(6)).numpy()

    local_projection = np.sqrt(uniform_filter((projection**2).mean(axis=0), 25))
    local_fast = np.sqrt(uniform_filter((fast**2).mean(axis=0), 25))
    body = uniform_filter((hu > -500).astype(float), 25) > 0.99
    ratio = local_fast[body] / local_projection[body]
    assert np.median(np.abs(ratio - 1)) < 0.15
    assert np.median(ratio) == pytest.approx(1.0, abs=0.10)

    roi = (slice(96, 160), slice(96, 160))  # mediastinum: a region of nearly constant noise level
    nps_projection = _radial_nps(projection[(slice(None), *roi)])
    nps_fast = _radial_nps(fast[(slice(None), *roi)])
    assert np.corrcoef(nps_projection[1:], nps_fast[1:])[0, 1] > 0.95  # measured 0.966 / 0.988

    def median_frequency(nps):
        weights = nps * (np.arange(16) + 0.5)  # ring areas grow with radius
        cumulative = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
        return float(np.interp(0.5, cumulative, np.arange(17)))  # in bins of 1/32 cycles per pixel

    assert median_frequency(nps_fast) == pytest.approx(median_frequency(nps_projection), rel=0.10)
    # a ramp-filtered spectrum: almost no power at the lowest frequencies, unlike white noise
    assert nps_projection[0] < 0.3 * nps_projection.max()  # measured 0.14 (shepp-logan), 0.18 (hann)


def test_slices_batched_through_the_projector_give_each_slice_its_own_result(chest_hu):
    """Slices go through the projector a few at a time; a slice's variance terms and its seeded noise are the
    same as when it is simulated alone (the random draws stay in slice order)."""
    hu, pixel_mm = chest_hu
    small = hu[::4, ::4]  # 64x64
    stack = torch.from_numpy(
        np.stack([small, np.flipud(small).copy(), small + 100, small - 100, small[:, ::-1].copy()])
    )
    terms = ct_noise_variance_terms(stack, pixel_mm * 4, SCANNER)
    for index in (0, 4):  # in the first and in the second batch
        alone = ct_noise_variance_terms(stack[index], pixel_mm * 4, SCANNER)
        torch.testing.assert_close(terms[index], alone, rtol=0, atol=0)
    together = ct_noise_projection(stack, pixel_mm * 4, 0.25, SCANNER, torch.Generator().manual_seed(7))
    first = ct_noise_projection(stack[:1], pixel_mm * 4, 0.25, SCANNER, torch.Generator().manual_seed(7))
    torch.testing.assert_close(together[:1], first, rtol=0, atol=0)
    twice = ct_noise_projection(stack[[0, 0]], pixel_mm * 4, 0.25, SCANNER, torch.Generator().manual_seed(7))
    assert (twice[0] - twice[1]).abs().mean() > 0.5 * twice[0].abs().mean()  # each slice draws its own noise


def test_projection_rays_are_sampled_at_float64_coordinates_rounded_once():
    """The sinogram sets the Poisson rates of simulated CT noise: a rate off in its last bit changes how many uniforms
    the sampler draws, and with them every later count of a seeded simulation. The projector builds its grid from
    (views, D) products; its samples must equal those of the grid computed whole in float64 and rounded once."""
    import torch.nn.functional as F

    image = torch.rand(1, 37, 41, generator=torch.Generator().manual_seed(0))
    geometry = ParallelBeam(image.shape[1:], views=30)
    d = geometry.detectors
    t = torch.arange(d, dtype=torch.float64) - (d - 1) / 2
    theta = geometry.angles
    cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    x = (t[None, :, None] * cos - t[None, None, :] * sin) / ((41 - 1) / 2)
    y = (t[None, :, None] * sin + t[None, None, :] * cos) / ((37 - 1) / 2)
    grid = torch.stack((x, y), dim=-1).float().reshape(1, 30 * d, d, 2)
    expected = F.grid_sample(image[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    torch.testing.assert_close(geometry.project(image), expected.reshape(1, 30, d, d).sum(-1), rtol=0, atol=0)


def _median_frequency(nps: np.ndarray) -> float:
    """Radial frequency (cycles per pixel) below which half the noise power lies."""
    weights = nps * (np.arange(nps.size) + 0.5)  # ring areas grow with radius
    cumulative = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return float(np.interp(0.5, cumulative, np.arange(nps.size + 1))) * 0.5 / nps.size


def test_noise_grain_follows_the_scanner_resolution_cell(chest_hu):
    """``grain=2``: a detector resolving 2 pixels (a small-FOV reconstruction) puts no noise power above 0.25
    cycles/pixel and halves the noise's median frequency, in the projection simulation and in the fast model alike;
    the grain is spelled in noise specs and drawn per sample in training ranges."""
    from meddenoiselib.transforms.noise import BatchNoise, parse_noise_range, parse_noise_spec

    hu, pixel_mm = chest_hu
    roi = (slice(None), slice(96, 160), slice(96, 160))
    fine = _radial_nps(_realizations(hu, pixel_mm, 0.25, 6, seed=5)[roi])
    coarse_scanner = CTScanner(views=240, grain=2.0)
    coarse = _radial_nps(_realizations(hu, pixel_mm, 0.25, 6, seed=5, scanner=coarse_scanner)[roi])
    terms = ct_noise_variance_terms(torch.from_numpy(hu), pixel_mm, coarse_scanner)
    fast = ct_noise_fast(terms[None].repeat(6, 1, 1, 1), 0.25, coarse_scanner, torch.Generator().manual_seed(6))
    coarse_fast = _radial_nps(fast.numpy()[roi])
    assert _median_frequency(coarse) == pytest.approx(0.5 * _median_frequency(fine), rel=0.2)
    assert _median_frequency(coarse_fast) == pytest.approx(_median_frequency(coarse), rel=0.1)
    rings = np.arange(16) + 0.5
    for nps in (coarse, coarse_fast):
        assert (nps * rings)[9:].sum() < 0.05 * (nps * rings).sum()  # above 0.28 cycles/pixel: (almost) nothing
    assert (fine * rings)[9:].sum() > 0.3 * (fine * rings).sum()

    spec = parse_noise_spec("ct-lowdose:25HU,grain=2.5")
    assert spec.scanner.grain == 2.5 and str(spec) == "ct-lowdose:25HU,grain=2.5"
    with pytest.raises(ValueError, match="grain"):
        parse_noise_spec("ct-lowdose:25HU,grain=0.5")
    fixed, varied = parse_noise_range("ct-lowdose:5HU-100HU"), parse_noise_range("ct-lowdose:5HU-100HU,grain=1|3")
    assert fixed.grain == (1.0, 1.0) and varied.grain == (1.0, 3.0)
    grains = BatchNoise([varied])._grains(varied, 400)
    assert set(grains) <= {1 + 0.25 * k for k in range(9)} and len(set(grains)) >= 7
    assert np.median(grains) == pytest.approx(np.sqrt(3), abs=0.25)  # log-uniform
    # a fixed grain draws nothing: seeded training runs without grains sample exactly as before
    batch = BatchNoise([fixed])
    state = batch.level_generator.get_state()
    assert batch._grains(fixed, 8) == [1.0] * 8 and torch.equal(batch.level_generator.get_state(), state)


def test_coarse_grain_cells_collect_the_photons_that_starve_one_pixel_bins(chest_hu):
    """A cell ``grain`` pixels wide collects that many pixels' photons: at a dose where one-pixel bins through the
    chest starve (reading 0 and clamped, which adds streaks), grain-3 noise keeps the level of the variance model
    that the fast model and the dose calibration use (1.08x; one-pixel bins with the same band limit: 1.32x)."""
    hu, pixel_mm = chest_hu
    scanner = CTScanner(views=360, kernel="hamming", grain=3.0)
    body = hu > -500
    terms = ct_noise_variance_terms(torch.from_numpy(hu), pixel_mm, scanner).numpy()
    dose = 0.01
    predicted = np.sqrt(float(np.mean((terms[0] / dose + scanner.electronic_noise**2 * terms[1] / dose**2)[body])))
    noise = _realizations(hu, pixel_mm, dose, 3, seed=1, scanner=scanner)
    ratio = float(np.sqrt(np.mean(noise[:, body] ** 2))) / predicted
    assert 0.9 < ratio < 1.15, ratio  # measured 1.08
