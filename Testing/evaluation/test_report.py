"""The reference-free run report's noise estimates: before and after on the same part of the image."""

from __future__ import annotations

import numpy as np
import pytest

from meddenoiselib.evaluation import run_report
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.transforms.estimate import estimate_sigma, estimate_sigma_before_after


def test_before_and_after_are_read_where_both_images_hold_signal(ct_crop):
    """A real CT crop with white noise of 20: an output that clears the left half to (nearly) the minimum, as the
    removal of magnitude MR's floor clears air, and keeps the right half's noise reads the same noise after as before
    (the noisy image's coefficients alone would read half of them as noise-free); smoothing the right half lowers it."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    noisy = ct_crop * 1000.0 + rng.normal(0.0, 20.0, ct_crop.shape)
    cleared = noisy.copy()
    cleared[:, :64] = noisy.min() + rng.uniform(0.0, 1e-3 * np.ptp(noisy), (128, 64))
    before, after = estimate_sigma_before_after(noisy, cleared)
    assert before == pytest.approx(20.0, rel=0.15)
    assert after == pytest.approx(before, rel=0.1)
    smoothed = cleared.copy()
    smoothed[:, 64:] = ndimage.gaussian_filter(noisy, 2.0)[:, 64:]
    assert estimate_sigma_before_after(noisy, smoothed)[1] < 0.3 * before
    assert estimate_sigma_before_after(noisy, noisy) == pytest.approx((estimate_sigma(noisy),) * 2)
    with pytest.raises(ValueError, match="differ in shape"):
        estimate_sigma_before_after(noisy, noisy[:-1])


def test_magnitude_mr_report_reads_less_noise_after_the_floor_s_removal(mr_nifti):
    """The bundled MR head (4 x 4 x 5 mm, 2-coil floor of sigma ~6): the floor's removal sets the air to 0, the
    image's minimum; each image's estimate on its own coefficients left the air out of the denoised one only, 7.5 ->
    9.0, a rise in noise that a user read in every run's log. Compared where both hold signal it falls."""
    noisy = read_volume(mr_nifti)
    denoiser = Denoiser()
    denoised = denoiser.denoise(noisy)
    values = run_report(denoiser, noisy, denoised)
    assert values["modality"] == "mr"
    assert values["noise_sigma_after_0_255"] < 0.8 * values["noise_sigma_before_0_255"]
    # in the image's units the noise is the floor's sigma, as `info` gives it and --noise-sd takes it
    # (6.00 read from the plain median and MAD of its integers, 6.12 with each spread over its rounding interval)
    assert denoiser.last_report.floor_sigma == pytest.approx(6.1, abs=0.1)
    assert values["noise_sd_before"] == pytest.approx(denoiser.last_report.floor_sigma, rel=1e-3)
    assert values["noise_sd_measure"].startswith("the magnitude floor's sigma")
    share = values["noise_sigma_after_0_255"] / values["noise_sigma_before_0_255"]
    assert values["noise_sd_after"] == pytest.approx(values["noise_sd_before"] * share, rel=0.01)


def test_ct_report_gives_the_noise_sd_in_hu_that_info_gives_and_noise_sd_takes(ct_series_dir, capsys):
    """CT noise is correlated: the finest detail holds a fraction of it (the bundled chest CT: ~7.5 of ~23 HU). The
    report's SD in the image's units is the flat-tissue HU that `info` prints and `--noise-sd` takes, not the
    wavelet estimate, which a user passing it on would take for a third of the noise."""
    import json

    from meddenoiselib.cli import main

    assert main(["info", str(ct_series_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    noisy = read_volume(ct_series_dir)
    denoiser = Denoiser("median")
    values = run_report(denoiser, noisy, denoiser.denoise(noisy))
    assert values["noise_sd_measure"] == "flat body tissue (HU)"
    assert values["noise_sd_before"] == values["noise_before_hu"] == pytest.approx(info["noise_sd"], abs=1.0)
    wavelet_hu = values["noise_sigma_before_0_255"] * np.ptp(values["value_range_before"]) / 255.0
    assert values["noise_sd_before"] > 2.5 * wavelet_hu  # not the finest detail's estimate
    assert values["noise_sd_after"] == values["noise_after_hu"] < values["noise_sd_before"]
