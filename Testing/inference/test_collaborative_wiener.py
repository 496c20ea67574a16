"""Collaborative Wiener refinement: BM3D's second stage with the network's output as the pilot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meddenoiselib import MedDenoiseError
from meddenoiselib.evaluation import psnr, run_report
from meddenoiselib.inference import Denoiser
from meddenoiselib.inference.collaborative_wiener import (
    BM3D_SEARCH,
    CT_MEDIUM_VOLUME_SEARCH,
    CT_VOLUME_SEARCH,
    MR_VOLUME_SEARCH,
    REFINED_MODELS,
    Refinement,
    collaborative_hard_threshold,
    collaborative_wiener,
    refine_slices,
)
from meddenoiselib.io import Volume, VolumeSeries, read_volume
from meddenoiselib.transforms import fit_scaling

from ..conftest import DATA

#: measured on the bundled chest CT, which carries ~27 HU of its own noise that the reference keeps (filtering that away
#: counts as error here): 26.87 -> 26.97 dB (the network alone, one view -> 8 views refined with twice the measured
#: noise spectrum, ``CT_NOISE_FACTOR``; with the spectrum as measured 27.10; AVX-512 BF16 machine)
MIN_CT_GAIN = 0.05


@pytest.fixture(scope="module")
def brain(mr_png) -> np.ndarray:
    """The 256x256 brain MR slice of the test data, min-max scaled to [0, 1]."""
    image = read_volume(mr_png).array[0]
    return fit_scaling(image.astype(np.float32), "minmax").apply(image.astype(np.float32))


def _noisy(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return (clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)).astype(np.float32)


def test_with_the_clean_image_as_pilot_it_is_the_oracle_wiener_filter(brain):
    """Blocks matched and gains taken on the true image: the filter keeps the signal and removes most of the noise
    (brain MR at sigma 0.06 of its range: 24.5 dB noisy, 41.1 dB filtered)."""
    noisy = _noisy(brain, 0.06, seed=5)
    filtered = collaborative_wiener(torch.from_numpy(noisy), torch.from_numpy(brain), 0.06).numpy()
    gain = psnr(filtered, brain, data_range=1.0) - psnr(noisy, brain, data_range=1.0)
    assert gain > 14.0


def test_refinement_sharpens_the_general_model_on_brain_mr(brain):
    """Sigma 15 on the 0-255 scale: kpn-general (8 views) 37.64 dB, refined 38.02 dB on this slice; the gain lies at
    the edges (the top 10 % of the clean image's gradient), where the network loses to BM3D."""
    from scipy import ndimage

    noisy = _noisy(brain, 15 / 255, seed=5)
    plain = Denoiser("kpn-general", device="cpu", refine="off").denoise_array(noisy)
    refined = Denoiser("kpn-general", device="cpu").denoise_array(noisy)
    assert psnr(refined, brain, data_range=1.0) > psnr(plain, brain, data_range=1.0) + 0.2
    gradient = np.hypot(*(ndimage.sobel(ndimage.gaussian_filter(brain, 1.0), a) for a in (0, 1)))
    edges = gradient > np.quantile(gradient, 0.9)
    assert np.mean((refined - brain)[edges] ** 2) < 0.9 * np.mean((plain - brain)[edges] ** 2)


def test_a_thresholded_pilot_keeps_the_detail_a_smoothing_pilot_took_away(brain):
    """A pilot that smoothed detail away (the brain slice blurred by 1.5 px, 31.4 dB) sets Wiener gains that remove
    that detail too: at white noise of 0.02 of the range (34.0 dB noisy) the filter guided by it reaches 39.6 dB.
    BM3D's hard-thresholding stage, blocks matched on the same pilot, keeps what stands above the noise (43.2 dB);
    the Wiener stage guided by the average of both (``threshold_pilot``, what ``auto`` runs on magnitude MR) 43.9 dB.
    Written in place over the pilot with blocks of the adjacent slices, the result is the same."""
    from scipy import ndimage

    sigma = 0.02
    noisy = _noisy(brain, sigma, seed=5)
    smooth = ndimage.gaussian_filter(brain, 1.5).astype(np.float32)
    thresholded = collaborative_hard_threshold(torch.from_numpy(noisy), torch.from_numpy(smooth), sigma).numpy()
    guided = collaborative_wiener(torch.from_numpy(noisy), torch.from_numpy(smooth), sigma).numpy()
    refined = refine_slices(noisy[None], smooth[None], 1.0, sigma=sigma, threshold_pilot=True)[0]
    noisy_db, guided_db = psnr(noisy, brain, data_range=1.0), psnr(guided, brain, data_range=1.0)
    assert psnr(thresholded, brain, data_range=1.0) > noisy_db + 8.0
    assert psnr(refined, brain, data_range=1.0) > guided_db + 3.0
    noisy3 = np.stack([_noisy(brain, sigma, seed) for seed in (1, 2, 3)])
    pilot3 = np.repeat(smooth[None], 3, axis=0)
    apart = refine_slices(noisy3, pilot3, 1.0, sigma=sigma, neighbours=1, threshold_pilot=True)
    pilot = pilot3.copy()
    in_place = refine_slices(noisy3, pilot, 1.0, sigma=sigma, neighbours=1, out=pilot, threshold_pilot=True)
    assert in_place is pilot and np.array_equal(in_place, apart)
    assert psnr(apart[1], brain, data_range=1.0) > psnr(refined, brain, data_range=1.0)


def test_the_fitted_noise_level_is_capped_at_a_known_sigma(brain):
    """On a small slice fine detail reaches the finest wavelet band that the per-slice noise fit reads: the brain
    slice averaged 2x2 (128x128 px, a coarse MR matrix) with white noise of 0.01 of the range reads 2.1x that noise
    in its tissue, and the refinement smooths its detail away (43.6 dB from 39.9 noisy). Capped at the sigma known
    from elsewhere (``auto``: magnitude MR's floor) it keeps it: 46.1 dB."""
    from scipy import ndimage

    from meddenoiselib.inference.collaborative_wiener import NoiseLevel, estimate_noise_level

    small = brain.reshape(128, 2, 128, 2).mean(axis=(1, 3))
    sigma = 0.01
    noisy = _noisy(small, sigma, seed=5)
    pilot = ndimage.gaussian_filter(small, 0.7).astype(np.float32)
    level = estimate_noise_level(noisy, pilot)
    tissue = float(np.median(small[small > 0.3]))
    assert np.sqrt(level.gain * tissue + level.floor) > 1.5 * sigma
    fitted = refine_slices(noisy[None], pilot[None], 1.0, threshold_pilot=True)[0]
    capped = refine_slices(noisy[None], pilot[None], 1.0, threshold_pilot=True, noise_ceiling=sigma)[0]
    assert psnr(capped, small, data_range=1.0) > psnr(fitted, small, data_range=1.0) + 1.5
    variance = NoiseLevel(1e-3, 1e-4, ceiling=4e-4).variance(torch.tensor([0.0, 0.2, 1.0]))
    np.testing.assert_allclose(variance.numpy(), [1e-4, 3e-4, 4e-4], rtol=1e-5)


def test_nothing_to_filter_returns_the_pilot():
    pilot = torch.rand(40, 40)
    assert torch.equal(collaborative_wiener(pilot + 0.1, pilot, 0.0), pilot)
    small = torch.rand(7, 40)
    assert torch.equal(collaborative_wiener(small + 0.1, small, 0.05), small)


def test_any_image_size_keeps_its_shape_and_flat_values(brain):
    """Sizes that the block grid does not divide are padded and cropped back; a flat image stays flat."""
    odd = _noisy(brain[:101, :77], 0.05, seed=1)
    out = collaborative_wiener(torch.from_numpy(odd), torch.from_numpy(brain[:101, :77]), 0.05)
    assert out.shape == (101, 77) and torch.isfinite(out).all()
    flat = torch.full((30, 45), 0.4)
    np.testing.assert_allclose(collaborative_wiener(flat, flat, 0.05).numpy(), 0.4, atol=1e-5)


def test_auto_refines_a_single_2d_image_of_the_general_model_only(brain):
    """``refine="auto"`` (the default) for the general model on one 2D image; not for its volumes, nor other models
    without a measured share unless asked; the report records the share (CT volumes: below)."""
    noisy = _noisy(brain[:64, :64], 15 / 255, seed=2)
    general = Denoiser("kpn-general", device="cpu")
    general.denoise(Volume(noisy[np.newaxis]))
    assert 0.3 <= general.last_report.refined <= 0.45  # its share at sigma ~15 (next test)
    general.denoise(Volume(np.stack([noisy, noisy[::-1]])))
    assert general.last_report.refined == 0.0
    other = Denoiser("kpn-small", device="cpu")
    other.denoise(Volume(noisy[np.newaxis]))
    assert other.last_report.refined == 0.0
    forced = Denoiser("kpn-small", device="cpu", refine="on")
    forced.denoise(Volume(np.stack([noisy, noisy[::-1]])))
    assert forced.last_report.refined > 0
    automatic = Denoiser(device="cpu", modality="xray")
    automatic.denoise(Volume(noisy[np.newaxis]))
    assert automatic.last_report.method == "kpn-general" and automatic.last_report.refined > 0


def test_the_general_model_s_share_follows_the_noise_level(monkeypatch):
    """At low noise the filtered image gets the larger share (the network alone falls behind BM3D there): on a real
    chest X-ray at sigma 3 the share is ~100 % and the result beats the fixed 30 % (43.94 vs 43.82 dB; the smooth
    radiograph gains least of the training images' +0.38 dB on average); at sigma 25 the share stays 30 %."""
    from PIL import Image

    from meddenoiselib.inference import collaborative_wiener as cw

    general = REFINED_MODELS["kpn-general"]
    assert general.share_for(2.0) == general.share_for(4.0) == 1.0
    assert general.share_for(8.0) == pytest.approx(0.65) and general.share_for(40.0) == general.share_for(None) == 0.3
    xray = np.asarray(Image.open(DATA / "xray_nih_00027426_000.png"), dtype=np.float64)
    clean = (xray - xray.min()) / (xray.max() - xray.min())
    clean = clean[128:384, 128:384]

    def psnr(denoiser, sigma):
        noisy = clean + np.random.default_rng(4).normal(0.0, sigma / 255, clean.shape)
        out = denoiser.denoise(Volume(noisy[np.newaxis].astype(np.float32))).array[0]
        return 10 * np.log10(1.0 / np.mean((out - clean) ** 2)), denoiser.last_report.refined

    denoiser = Denoiser("kpn-general", device="cpu")
    low, low_share = psnr(denoiser, 3.0)
    high, high_share = psnr(denoiser, 25.0)
    assert low_share > 0.9 and high_share == 0.3
    assert "the share for noise sigma" in denoiser.last_report.refine_detail
    monkeypatch.setitem(cw.REFINED_MODELS, "kpn-general", Refinement(0.3))
    fixed, fixed_share = psnr(denoiser, 3.0)
    assert fixed_share == 0.3 and low > fixed + 0.06, (low, fixed)


def test_a_large_2d_image_is_refined_with_the_cheaper_search():
    """Above 1024x1024 pixels the general model runs one view and, since stop 64, the cheap search of CT volumes
    (a digital radiograph of several megapixels): a real chest X-ray upsampled to 1200x1200 px at sigma 3 gains over
    the network alone (+0.67 dB on average on the training images at full size)."""
    from PIL import Image
    from skimage.transform import resize

    xray = np.asarray(Image.open(DATA / "xray_nih_00027426_000.png"), dtype=np.float64)
    clean = resize((xray - xray.min()) / (xray.max() - xray.min()), (1200, 1200), order=1)
    noisy = (clean + np.random.default_rng(6).normal(0.0, 3 / 255, clean.shape)).astype(np.float32)[np.newaxis]
    refined = Denoiser("kpn-general", device="cpu")
    out = refined.denoise(Volume(noisy)).array[0]
    report = refined.last_report
    assert report.ensemble == 1 and report.refined > 0.9
    assert f"{CT_VOLUME_SEARCH.matches} blocks matched within 9x9 px" in report.refine_detail
    alone = Denoiser("kpn-general", device="cpu", refine="off").denoise(Volume(noisy)).array[0]
    assert psnr(clean, out, 1.0) > psnr(clean, alone, 1.0) + 0.1


def test_refine_option_is_checked():
    with pytest.raises(MedDenoiseError, match="refine must be one of auto, on, off") as info:
        Denoiser("median", refine="yes")
    assert info.value.parameter == "refine"


def test_the_noise_level_follows_photon_noise_and_stays_flat_for_gaussian_noise(brain):
    """Poisson-Gaussian noise (100 counts at intensity 1, 1 count of read noise): variance x / 100 + 1e-4, so ~9x
    larger at 0.8 than at 0.08; white Gaussian noise: the same everywhere. The fit reads both within 25 %."""
    from meddenoiselib.inference.collaborative_wiener import estimate_noise_level

    rng = np.random.default_rng(3)
    photons = ((rng.poisson(brain * 100) + rng.normal(0, 1, brain.shape)) / 100).astype(np.float32)
    level = estimate_noise_level(photons, brain)
    for x in (0.2, 0.5, 0.8):
        truth = x / 100 + 1e-4
        assert abs(float(level.variance(torch.tensor(x))) - truth) < 0.25 * truth
    gaussian = _noisy(brain, 0.05, seed=3)
    level = estimate_noise_level(gaussian, brain)
    for x in (0.0, 0.5, 1.0):
        assert abs(float(level.variance(torch.tensor(x))) - 0.05**2) < 0.25 * 0.05**2


def test_the_dct_noise_spectrum_of_correlated_noise_is_measured_in_flat_tissue():
    """Low-pass correlated noise (white noise blurred by a Gaussian of 1 px, as CT's reconstruction kernel makes it)
    on a flat disc with a smooth ramp: the per-coefficient variances, chosen where the guide is flattest, match those
    of the noise itself within 20 % for every coefficient with a tenth of the mean power or more; a white-noise
    spectrum would be 10x off at the highest frequencies."""
    from scipy import ndimage

    from meddenoiselib.transforms.estimate import dct_matrix, estimate_dct_noise

    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:256, :256]
    clean = np.where(np.hypot(yy - 128, xx - 128) < 110, 40.0 + 0.05 * xx, -1000.0)
    noise = ndimage.gaussian_filter(rng.normal(0, 60, (4, 256, 256)), (0, 1, 1))
    body = np.broadcast_to(clean > -500, noise.shape)
    variances = estimate_dct_noise(clean + noise, np.broadcast_to(clean, noise.shape), body)
    basis = dct_matrix(8)
    corners = [(z, y, x) for z in range(4) for y in range(0, 248, 8) for x in range(0, 248, 8)]
    patches = np.stack([noise[z, y : y + 8, x : x + 8] for z, y, x in corners])  # the noise alone
    truth = np.mean((basis @ patches @ basis.T) ** 2, axis=0)
    assert variances.shape == (8, 8)
    strong = truth > 0.1 * truth.mean()
    np.testing.assert_allclose(variances[strong], truth[strong], rtol=0.2)
    assert truth[0, 0] > 10 * truth[7, 7]


def test_an_image_narrower_than_the_search_radius_is_refined():
    """pydicom's JPEGLSNearLossless_08.dcm is 47x11 pixels: the block search's reflection padding (19 pixels) needs
    an image wider than that, and ``auto`` stopped with an internal error. The padding only fills candidates
    outside the image, which are never matched, so replication serves there."""
    rng = np.random.default_rng(3)
    clean = np.tile(np.linspace(0.2, 0.8, 11, dtype=np.float32), (47, 1))
    noisy = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    filtered = collaborative_wiener(torch.from_numpy(noisy), torch.from_numpy(clean), 0.05).numpy()
    assert filtered.shape == noisy.shape and np.isfinite(filtered).all()
    assert np.abs(filtered - clean).mean() < 0.5 * np.abs(noisy - clean).mean()
    refiner = Denoiser("kpn-general", device="cpu")
    result = refiner.denoise(Volume(noisy[None]))
    assert refiner.last_report.refined > 0 and result.array.shape == (1, 47, 11)


def test_ct_refinement_removes_the_low_frequency_noise_the_ct_model_leaves(ct_series_dir):
    """The bundled 4-slice chest CT with ~25 HU of low-dose noise: ``kpn-ct-burst3`` alone vs refined with the
    noise spectrum measured in the body (the default for CT); soft-tissue window W400/L40 over the body."""
    from meddenoiselib.transforms import parse_noise_spec, simulate_volume

    clean = read_volume(ct_series_dir)
    noisy = simulate_volume(clean, parse_noise_spec("ct-lowdose:25HU,method=fast,kernel=ramp"), seed=11)
    alone = Denoiser("kpn-ct-burst3", device="cpu", refine="off")
    plain = alone.denoise(noisy)
    refiner = Denoiser("kpn-ct-burst3", device="cpu")
    refined = refiner.denoise(noisy)
    assert refiner.last_report.refined == REFINED_MODELS["kpn-ct-burst3"].share
    assert refiner.last_report.refine_detail.startswith("noise spectrum")
    # the pilot of a short volume is the network's 8-view self-ensemble; without the refinement one view
    assert refiner.last_report.ensemble == REFINED_MODELS["kpn-ct-burst3"].pilot_views == 8
    assert alone.last_report.ensemble == 1
    body = clean.array > -500

    def window(image: np.ndarray) -> float:
        return psnr(np.clip(image, -160, 240)[body], np.clip(clean.array, -160, 240)[body], data_range=400.0)

    assert window(refined.array) > window(plain.array) + MIN_CT_GAIN
    assert refined.array.dtype == noisy.array.dtype and refined.same_geometry(noisy)
    # what the report (``denoise --report``, the Slicer module's table) tells a user without the clean scan: the
    # noise in flat body tissue in HU, before (the scan's own ~27 HU with ~25 HU inserted) and after
    report = run_report(refiner, noisy, refined)
    assert report["modality"] == "ct" and report["noise_hu_blocks"] >= 8
    assert 30 < report["noise_before_hu"] < 45
    assert report["noise_after_hu"] < 0.5 * report["noise_before_hu"]


def test_each_frame_of_a_ct_series_is_refined(ct_series_dir):
    """A 4D CT (a perfusion run, the phases of a cardiac or respiratory 4D CT) gets what a volume gets: the CT
    model's output averaged with its collaborative Wiener filtering, the noise spectrum measured in each frame's body
    (until 2026-12-06 4D series went through the network alone). The bundled chest's central 256x256, 2 frames
    shifted 2 px apart (breathing), low-dose noise of ~60 HU drawn per frame: W400 over the body 23.9 dB from the
    network alone, 24.4 refined (the chest's own ~25 HU of noise caps both; training-split 4D CT: the note of
    inference/collaborative_wiener.py's ``_ct_refinement``)."""
    from meddenoiselib.transforms import parse_noise_spec, simulate_volume

    clean = read_volume(ct_series_dir)
    crop = clean.slab(1, 128, 384).slab(2, 128, 384)
    frames = [np.roll(crop.array, 2 * t, axis=1) for t in range(2)]
    spec = parse_noise_spec("ct-lowdose:60HU,method=fast,kernel=shepp-logan")
    noisy = np.stack([simulate_volume(crop.with_array(f), spec, seed=20 + t).array for t, f in enumerate(frames)])
    series = VolumeSeries(noisy, crop.spacing, crop.origin, crop.direction, frame_label="time")
    refiner = Denoiser("auto", device="cpu", modality="ct")
    refined = refiner.denoise(series)
    plain = Denoiser("auto", device="cpu", modality="ct", refine="off").denoise(series)
    assert refiner.last_report.method == "kpn-ct-burst3"
    assert refiner.last_report.refined == REFINED_MODELS["kpn-ct-burst3"].share
    assert refiner.last_report.refine_detail.startswith("noise spectrum")
    assert refined.array.dtype == noisy.dtype and refined.array.shape == noisy.shape
    truth = np.stack(frames).astype(np.float32)
    body = truth > -500

    def window(image: np.ndarray) -> float:
        return psnr(np.clip(image, -160, 240)[body], np.clip(truth, -160, 240)[body], data_range=400.0)

    assert window(refined.array) > window(plain.array) + 0.25, (window(refined.array), window(plain.array))


def test_large_ct_volumes_get_cheaper_refinements_by_default_for_time():
    """On a CPU ``auto`` refines a CT volume of up to 8 slices of 512x512 with BM3D's search and the network's 8 views
    as the pilot; longer ones with cheaper block searches: up to 64 slices of 512x512 with 16 blocks within 15x15 px
    and the network's 4 views as the pilot, up to 128 (a thick-slice chest or head) with the same search from one
    view (~0.3 s per slice), up to 1024 slices with the ~20x cheaper search from one view (a 512x512x300 CT: ~25 s
    more on 2 cores instead of ~10 min); past that the network alone. The tier of BM3D's search from 4 views is for
    CUDA devices only. ``on`` refines any volume with the full search."""
    ct = REFINED_MODELS["kpn-ct-burst3"]
    cuda, medium_4 = ct.larger, ct.larger.larger
    medium, large = medium_4.larger, medium_4.larger.larger
    assert ct.volumes and ct.correlated and ct.max_pixels == 8 * 512 * 512 and ct.pilot_views == 8
    assert ct.search == cuda.search == BM3D_SEARCH and cuda.pilot_views == 4 and cuda.max_pixels == 0
    assert medium_4.search == medium.search == CT_MEDIUM_VOLUME_SEARCH and medium_4.share == medium.share
    assert medium_4.correlated and medium_4.pilot_views == 4 and medium_4.max_pixels == 64 * 512 * 512
    assert medium.correlated and medium.pilot_views == 1 and medium.max_pixels == 128 * 512 * 512
    assert large.correlated and large.search == CT_VOLUME_SEARCH and large.pilot_views == 1
    assert large.max_pixels == 1024 * 512 * 512
    assert ct.neighbours == cuda.neighbours == medium_4.neighbours == medium.neighbours == large.neighbours == 1
    # each search looks at fewer candidates per pixel than the one before (time)
    cost = [(2 * r.search.radius + 1) ** 2 * r.search.matches / r.search.step**2 for r in (ct, medium, large)]
    assert cost[0] > cost[1] > cost[2]
    shape = (ct.max_pixels // (64 * 64) + 1, 64, 64)
    auto = Denoiser("kpn-ct-burst3", device="cpu")
    assert auto._refinement((8, 512, 512), 0, in_series=0) is ct
    assert auto._refinement(shape, 0, in_series=0) is medium_4
    assert auto._refinement((9, 512, 512), 0, in_series=0) is medium_4
    assert auto._refinement((32, 512, 512), 0, in_series=0) is medium_4
    assert auto._refinement((64, 512, 512), 0, in_series=0) is medium_4
    assert auto._refinement((65, 512, 512), 0, in_series=0) is medium
    assert auto._refinement((128, 512, 512), 0, in_series=0) is medium
    assert auto._refinement((129, 512, 512), 0, in_series=0) is large
    assert auto._refinement((300, 512, 512), 0, in_series=0) is large
    assert auto._refinement((1025, 512, 512), 0, in_series=0) is None
    assert auto._refinement((4, 64, 64), 0, in_series=0) is ct
    assert Denoiser("kpn-ct-burst3", device="cpu", refine="on")._refinement(shape, 0, in_series=0) is ct
    # the frames of a 4D series: each refined, the tier chosen by the whole series' pixels (time), from one view
    assert auto._refinement((8, 512, 512), 0, in_series=1) is ct
    assert auto._refinement((8, 512, 512), 0, in_series=4) is medium_4
    assert auto._refinement((8, 512, 512), 0, in_series=16) is medium
    assert auto._refinement((8, 512, 512), 0, in_series=17) is large
    assert auto._refinement((8, 512, 512), 0, in_series=129) is None
    assert auto._views((8, 512, 512), 0, 4, medium_4) == 1
    # the self-ensemble of the pilot goes with the refinement: one view when the volume is not refined, or refined
    # with a one-view tier, or when the user chose the ensemble
    assert auto._views((4, 64, 64), 0, False, ct) == ct.pilot_views == 8
    assert auto._views((40, 512, 512), 0, False, medium_4) == 4
    assert auto._views(shape, 0, False, medium) == 1
    assert auto._views(shape, 0, False, large) == 1
    assert auto._views(shape, 0, False, None) == 1
    assert auto._views((4, 64, 64), 0, 2, None) == 1
    assert Denoiser("kpn-ct-burst3", device="cpu", ensemble=1)._views((4, 64, 64), 0, False, ct) == 1
    # fine magnitude MR's burst model: a 2D image of up to 512x512 with BM3D's search, any volume larger than that
    # (a 10-slice 256x256 MR) with its own cheaper search on 3 slices, up to 1024 slices of 512x512
    mr = REFINED_MODELS["kpn-burst3"]
    assert mr.larger.search == MR_VOLUME_SEARCH and mr.larger.neighbours == 1 and mr.larger.share == mr.share
    burst = Denoiser("kpn-burst3", device="cpu")
    assert burst._refinement((1, 512, 512), 0, in_series=0) is mr
    assert burst._refinement((10, 256, 256), 0, in_series=0) is mr.larger
    assert burst._refinement((300, 512, 512), 0, in_series=0) is mr.larger
    assert burst._refinement((1025, 512, 512), 0, in_series=0) is None
    assert Denoiser("kpn-general", device="cpu")._refinement((300, 512, 512), 0, in_series=0) is None


def test_on_a_gpu_auto_refines_ct_volumes_of_up_to_1024_slices():
    """On CUDA the refinement runs ~50x faster (a 512x512x300 CT refined in ~26 s on an H200), so ``auto`` refines a
    whole CT there with BM3D's search, from the 4-view pilot (8 views up to 8 slices, as on a CPU), and stops only
    past 1024 slices of 512x512; 2D-only refinements (the general model) keep their single-image rule."""
    import torch

    ct = REFINED_MODELS["kpn-ct-burst3"]
    auto = Denoiser("kpn-ct-burst3", device="cpu")
    auto.device = torch.device("cuda")  # the policy alone: no GPU on the test machine
    ct_300 = (300, 512, 512)
    assert auto._refinement((8, 512, 512), 0, in_series=0) is ct
    assert auto._refinement(ct_300, 0, in_series=0) is ct.larger
    assert ct.larger.search == BM3D_SEARCH and auto._views(ct_300, 0, False, ct.larger) == 4
    assert auto._refinement((1025, 512, 512), 0, in_series=0) is None
    medium_4 = ct.larger.larger
    assert Denoiser("kpn-ct-burst3", device="cpu")._refinement(ct_300, 0, in_series=0) is medium_4.larger.larger
    burst = Denoiser("kpn-burst3", device="cpu")  # MR: the cheaper search on volumes there too
    burst.device = torch.device("cuda")
    assert burst._refinement((10, 256, 256), 0, in_series=0) is REFINED_MODELS["kpn-burst3"].larger
    general = Denoiser("kpn-general", device="cpu")
    general.device = torch.device("cuda")
    assert general._refinement((3, 512, 512), 0, in_series=0) is None


def test_auto_filters_a_fine_magnitude_mr_slice_guided_by_the_burst_model(mr_png):
    """Fine magnitude MR (``auto``: ``kpn-burst3``, then the noise floor removed): on a single 2D slice the output is
    the collaborative Wiener filtering guided by the network (share 1.0, chosen on training MR slices), which beats
    the network alone (the test data's 256x256 brain slice as an MR file, Rician 3 %: +1.28 dB over the head)."""
    from meddenoiselib.transforms.noise import parse_noise_spec, simulate_volume

    image = read_volume(mr_png).array
    clean = Volume(image.astype(np.uint16), spacing=(1.0, 1.0, 2.0), metadata={"0008|0060": "MR"})
    noisy = simulate_volume(clean, parse_noise_spec("rician:3%"), seed=5)
    refined = Denoiser(device="cpu")
    filtered = refined.denoise(noisy).array.astype(np.float64)
    assert refined.last_report.method == "kpn-burst3" and refined.last_report.refined == 1.0
    assert "magnitude noise floor removed" in refined.last_report.choice
    plain = Denoiser(device="cpu", refine="off").denoise(noisy).array.astype(np.float64)
    truth = clean.array.astype(np.float64)
    inside, peak = truth > 0.15 * truth.max(), float(truth.max())
    gain = psnr(truth[inside], filtered[inside], peak) - psnr(truth[inside], plain[inside], peak)
    assert gain > 0.5, gain


def test_blocks_of_the_adjacent_slices_join_the_groups(ct_crop):
    """A real 128x128 CT crop ([0, 1]) repeated on 3 slices, each with its own white noise (sigma 0.05): with blocks
    matched on all 3 slices (``neighbours=1``, the CT default) the centre slice is filtered from 3 noise realizations
    of its anatomy, +1.6 dB closer to the truth than from its own slice alone (the pilot is the truth: the oracle
    Wiener filter). Written in place over the pilot, the result is the same: the pilots a later slice still matches
    on are kept."""

    clean = ct_crop.astype(np.float32)[None].repeat(3, axis=0)
    sigma = 0.05
    noisy = np.stack([_noisy(clean[0], sigma, seed) for seed in (1, 2, 3)])
    alone = refine_slices(noisy, clean, 1.0, sigma=sigma)
    joint = refine_slices(noisy, clean, 1.0, sigma=sigma, neighbours=1)
    gain = psnr(clean[1], joint[1], 1.0) - psnr(clean[1], alone[1], 1.0)
    assert gain > 1.0, gain
    pilot = clean.copy()
    in_place = refine_slices(noisy, pilot, 1.0, sigma=sigma, neighbours=1, out=pilot)
    assert in_place is pilot and np.array_equal(in_place, joint)
    with pytest.raises(ValueError, match="centre"):
        collaborative_wiener(torch.from_numpy(noisy), torch.from_numpy(clean), sigma)


def test_integer_magnitude_mr_has_its_floor_removed_from_the_unrounded_output(mr_png):
    """The floor removal measures the noise the model left in air; with sigma a few units an integer output hides
    it (rounded to the same 1-2 values). ``auto`` therefore denoises integer magnitude MR as float: the test data's
    brain slice (its own floor zeroed, 0-217) with Rician noise of 3 % (sigma ~5 units) gives the same background as
    the same noisy values handed over as float32, within 0.05 sigma."""
    from meddenoiselib.transforms.noise import parse_noise_spec, simulate_volume

    image = read_volume(mr_png).array
    image = np.where(image > 8, image, 0).astype(np.uint16)
    clean = Volume(image, spacing=(1.0, 1.0, 2.0), metadata={"0008|0060": "MR"})
    noisy = simulate_volume(clean, parse_noise_spec("rician:3%"), seed=5)
    sigma = 0.03 * float(np.percentile(image, 99))
    air = image[0] == 0
    integer = Denoiser(device="cpu", ensemble=1).denoise(noisy).array[0].astype(np.float64)
    floating = Denoiser(device="cpu", ensemble=1).denoise(noisy.with_array(noisy.array.astype(np.float32))).array[0]
    assert noisy.array.dtype == np.uint16
    assert abs(integer[air].mean() - floating[air].mean()) / sigma < 0.05
    assert abs(integer[air].mean()) / sigma < 0.1


@pytest.mark.parametrize(
    ("skipped", "detail", "views", "bound"),
    [
        (2, "noise spectrum x2; 16 blocks matched within 15x15 px on 3 adjacent slices", 4, 0.28),
        (3, "noise spectrum x2; 16 blocks matched within 15x15 px on 3 adjacent slices", 1, 0.22),
        (4, "noise spectrum x2; 8 blocks matched within 9x9 px on 3 adjacent slices", 1, 0.14),
    ],
    ids=["medium-4-views", "medium", "cheapest"],
)
def test_the_cheaper_refinements_of_larger_ct_volumes_still_remove_noise(
    ct_series_dir, monkeypatch, skipped, detail, views, bound
):
    """The refinements longer CT volumes get on a CPU (9-64 slices of 512x512: 16 blocks within 15x15 px from a 4-view
    pilot; up to 128: the same from one view; up to 1024: 8 blocks within 9x9 px from one view; all on 3 slices),
    made to run on the bundled 4-slice chest by lowering the limits of the tiers before them (the CUDA tier among
    them), at ~60 HU of low-dose noise: W400 PSNR over the body +0.37 (medium, 4 views) / +0.31 (medium) / +0.22 dB
    (cheapest) over the network alone with one view (BM3D's search with the 8-view pilot: +0.38; each ~0.07 dB less
    than with the spectrum as measured: this reference's own ~27 HU of noise, which more filtering removes, counts as
    error here, see ``CT_NOISE_FACTOR``)."""
    import dataclasses

    from meddenoiselib.inference import collaborative_wiener as cw
    from meddenoiselib.transforms import parse_noise_spec, simulate_volume

    def forced(refinement, tiers):
        if tiers == 0:
            return refinement
        return dataclasses.replace(refinement, max_pixels=1, larger=forced(refinement.larger, tiers - 1))

    clean = read_volume(ct_series_dir)
    noisy = simulate_volume(clean, parse_noise_spec("ct-lowdose:60HU,method=fast,kernel=ramp"), seed=11)
    plain = Denoiser("kpn-ct-burst3", device="cpu", refine="off").denoise(noisy)
    ct = cw.REFINED_MODELS["kpn-ct-burst3"]
    tier = ct
    for _ in range(skipped):
        tier = tier.larger
    monkeypatch.setitem(cw.REFINED_MODELS, "kpn-ct-burst3", forced(ct, skipped))
    refiner = Denoiser("kpn-ct-burst3", device="cpu")
    refined = refiner.denoise(noisy)
    report = refiner.last_report
    assert report.refined == tier.share and report.ensemble == views
    assert report.refine_detail == detail
    body = clean.array > -500

    def window(image: np.ndarray) -> float:
        return psnr(np.clip(image, -160, 240)[body], np.clip(clean.array, -160, 240)[body], data_range=400.0)

    assert window(refined.array) > window(plain.array) + bound
    assert refined.array.dtype == noisy.array.dtype and refined.same_geometry(noisy)


def test_large_magnitude_mr_volumes_get_their_cheaper_refinement(mr_png, monkeypatch):
    """Fine magnitude MR above the full refinement's limit (forced here on 4 slices by lowering it): the burst model's
    output filtered with 8 blocks within 11x11 px on 3 slices, then the floor removed. The test's 256x256 brain
    slice shifted by sub-pixel steps into 4 slices 1 mm apart, Rician 3 %: +1.19 dB over the head against the network
    alone (the full in-plane search: +1.06)."""
    import dataclasses

    from scipy import ndimage

    from meddenoiselib.inference import collaborative_wiener as cw
    from meddenoiselib.transforms.noise import parse_noise_spec, simulate_volume

    image = np.squeeze(read_volume(mr_png).array.astype(np.float64))
    slices = np.stack([ndimage.shift(image, (0.5 * k, 0.3 * k), order=1) for k in range(4)])
    clean = Volume(slices.astype(np.uint16), spacing=(1.0, 1.0, 1.0), metadata={"0008|0060": "MR"})
    noisy = simulate_volume(clean, parse_noise_spec("rician:3%"), seed=5)
    plain = Denoiser(device="cpu", refine="off").denoise(noisy).array.astype(np.float64)
    mr = cw.REFINED_MODELS["kpn-burst3"]
    monkeypatch.setitem(cw.REFINED_MODELS, "kpn-burst3", dataclasses.replace(mr, max_pixels=1))
    refiner = Denoiser(device="cpu")
    refined = refiner.denoise(noisy).array.astype(np.float64)
    report = refiner.last_report
    assert report.method == "kpn-burst3" and report.refined == 1.0
    assert report.refine_detail == (
        "noise level, at most the floor's sigma; 8 blocks matched within 11x11 px on 3 adjacent slices; pilot "
        "averaged with collaborative hard thresholding"
    )
    assert "magnitude noise floor removed" in report.choice
    truth = clean.array.astype(np.float64)
    inside, peak = truth > 0.15 * truth.max(), float(truth.max())
    gain = psnr(truth[inside], refined[inside], peak) - psnr(truth[inside], plain[inside], peak)
    assert gain > 0.6, gain
