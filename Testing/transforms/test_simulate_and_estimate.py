"""`simulate` in physical units on real files, and noise estimation for white and correlated noise."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pydicom
import pytest
import torch

from meddenoiselib.cli import main
from meddenoiselib.io import read_volume
from meddenoiselib.transforms import estimate_noise, parse_noise_spec, simulate_volume
from meddenoiselib.transforms.noise import CTScanner, ct_noise_projection

from ..conftest import digest_tree


def test_simulate_ct_lowdose_on_a_dicom_series_keeps_hu_geometry_and_tags(tmp_path, ct_series_dir):
    series = tmp_path / "series"  # two of the four slices keep the projection-domain simulation quick
    series.mkdir()
    for source in sorted(ct_series_dir.iterdir())[1:3]:
        (series / source.name).write_bytes(source.read_bytes())
    ct_series_dir = series
    before = digest_tree(ct_series_dir)
    out = tmp_path / "lowdose"
    assert (
        main(
            [
                "simulate",
                str(ct_series_dir),
                str(out),
                "--noise",
                "ct-lowdose:0.25,views=240",
                "--seed",
                "1",
                "-q",
                "--no-progress",
            ]
        )
        == 0
    )
    clean, noisy = read_volume(ct_series_dir), read_volume(out)
    assert noisy.same_geometry(clean) and noisy.array.dtype == clean.array.dtype
    source, derived = pydicom.dcmread(sorted(ct_series_dir.iterdir())[0]), pydicom.dcmread(sorted(out.iterdir())[0])
    for keyword in ("Modality", "StudyInstanceUID", "PatientID", "FrameOfReferenceUID", "RescaleIntercept"):
        assert getattr(derived, keyword) == getattr(source, keyword)
    assert derived.SeriesInstanceUID != source.SeriesInstanceUID
    assert "ct-lowdose" in derived.DerivationDescription
    body = clean.array > -500
    added = noisy.array.astype(np.float64) - clean.array
    # HU in, HU out: zero-mean noise of a few tens of HU in the body at quarter dose, air stays air
    assert abs(added[body].mean()) < 2.0
    assert 8 < added[body].std() < 60
    assert np.median(noisy.array[clean.array < -1000]) <= -990
    assert digest_tree(ct_series_dir) == before


def test_simulate_same_seed_same_noise_and_hu_level_spec(ct_series_dir):
    volume = read_volume(ct_series_dir)
    volume = replace(volume, array=volume.array[1:2, ::2, ::2], spacing=(1.95, 1.95, 2.0))
    spec = parse_noise_spec("ct-lowdose:20HU,method=fast,views=360")
    first, second = simulate_volume(volume, spec, seed=4), simulate_volume(volume, spec, seed=4)
    np.testing.assert_array_equal(first.array, second.array)
    body = volume.array > -500
    added = first.array.astype(np.float64) - volume.array
    # "20HU" sets the dose so that the median noise std over the body is about 20 HU
    assert np.std(added[body]) == pytest.approx(20.0, rel=0.35)


def test_simulate_refuses_ct_noise_on_mr_and_bad_numbers(tmp_path, mr_nifti, capsys):
    volume = read_volume(mr_nifti)
    tagged = replace(volume, metadata={**volume.metadata, "0008|0060": "MR"})
    with pytest.raises(ValueError, match="needs a CT image in HU"):
        simulate_volume(tagged, parse_noise_spec("ct-lowdose:0.5"))
    code = main(["simulate", str(mr_nifti), str(tmp_path / "y.nii.gz"), "--noise", "gaussian:nan"])
    assert code != 0 and "not a number" in capsys.readouterr().err


def test_rician_simulation_in_percent_of_signal(mr_nifti):
    volume = read_volume(mr_nifti)
    noisy = simulate_volume(volume, parse_noise_spec("rician:5%"), seed=0, float_output=True)
    background = volume.array == 0
    sigma = 0.05 * np.percentile(volume.array, 99)
    # the Rician floor: the background reads sigma*sqrt(pi/2) on average, not zero (within the percentile-scaling
    # round trip)
    assert noisy.array[background].mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.15)


def test_white_noise_estimate_matches_sigma(ct_crop):
    rng = np.random.default_rng(0)
    for sigma in (5, 15, 25):
        estimate = estimate_noise(ct_crop + rng.normal(0, sigma / 255, ct_crop.shape))
        assert not estimate.correlated
        assert estimate.sigma * 255 == pytest.approx(sigma, rel=0.15)


def _phantom(shape=(256, 256)) -> np.ndarray:
    """Water ellipse with a fat region and two bone rods, in air (HU)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    hu = np.full(shape, -1000.0, np.float32)
    hu[((yy - 128) / 100) ** 2 + ((xx - 128) / 120) ** 2 <= 1] = 0.0
    hu[((yy - 150) / 30) ** 2 + ((xx - 90) / 40) ** 2 <= 1] = -100.0
    for cx in (160, 190):
        hu[(yy - 100) ** 2 + (xx - cx) ** 2 <= 64] = 1200.0
    return hu


def test_correlated_ct_noise_is_detected_and_its_psd_is_low_pass():
    hu = _phantom()
    scanner = CTScanner(views=240, kernel="hann")
    noise = ct_noise_projection(hu, 1.5, 0.05, scanner, torch.Generator().manual_seed(0)).numpy()
    body = hu > -500
    estimate = estimate_noise(hu + noise, mask=body)
    true_sigma = float(np.std(noise[body]))
    # the finest-band (white-noise) estimate misses most of ramp-filtered noise; the flat-region estimate does not
    assert estimate.sigma_white < 0.6 * true_sigma
    assert estimate.correlated and estimate.sigma == pytest.approx(true_sigma, rel=0.2)
    psd = estimate.psd(hu.shape)
    assert psd.shape == hu.shape and psd.mean() == pytest.approx(hu.size * estimate.sigma**2, rel=1e-6)
    # more power at mid frequencies than at the highest ones (hann kernel): a low-pass spectrum
    fy, fx = np.meshgrid(np.fft.fftfreq(hu.shape[0]), np.fft.fftfreq(hu.shape[1]), indexing="ij")
    radius = np.hypot(fx, fy)
    assert psd[(radius > 0.05) & (radius < 0.15)].mean() > 3 * psd[radius > 0.35].mean()


def test_noise_estimate_on_real_ct_reads_natural_plus_inserted_noise(ct_series_dir):
    """On the real chest CT the body estimate sees the scan's own noise (about 20 HU) plus what was inserted, and
    tissue texture makes it read high: documented behaviour, bounded here."""
    volume = read_volume(ct_series_dir)
    hu = volume.array[1].astype(np.float32)
    estimate = estimate_noise(hu, mask=hu > -500, correlated=True)
    assert 12 < estimate.sigma < 45
