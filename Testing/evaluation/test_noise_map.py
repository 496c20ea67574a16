"""The noise map (``denoise --noise-map``): the local standard deviation of what the denoiser removed, in HU on a
real CT series, following a dose that changes across the image and from slice to slice, with the input's geometry."""

from __future__ import annotations

import numpy as np
import pytest

from meddenoiselib.errors import MedDenoiseError
from meddenoiselib.evaluation import local_noise_sd, noise_map_volume, residual_volume
from meddenoiselib.io import read_volume


@pytest.fixture(scope="module")
def ct(ct_series_dir):
    return read_volume(ct_series_dir)


def _body(hu: np.ndarray) -> np.ndarray:
    """Soft tissue of the chest, away from the outline where the residual of a real denoiser would carry edges."""
    return (hu > -200) & (hu < 200)


def test_a_perfect_denoiser_maps_the_added_noise_in_hu_where_it_changes(ct):
    clean = ct.array.astype(np.float32)
    rng = np.random.default_rng(3)
    sd = np.full(clean.shape, 15.0, dtype=np.float32)
    sd[:, :, clean.shape[2] // 2 :] = 40.0  # the right half of every slice noisier (a lateral dose difference)
    sd[-1] *= 2  # and the last slice twice as noisy (tube current modulation)
    noisy = ct.with_array(clean + rng.normal(0.0, 1.0, clean.shape).astype(np.float32) * sd)
    before = noisy.array.copy()
    out = noise_map_volume(residual_volume(noisy, ct.with_array(clean)))
    assert out.array.dtype == np.float32 and out.same_geometry(ct)
    np.testing.assert_array_equal(noisy.array, before)  # the input is not modified
    body = _body(clean)
    x = np.arange(clean.shape[2])
    left = body & (x < clean.shape[2] // 2 - 16)  # 4 window widths from the step
    right = body & (x >= clean.shape[2] // 2 + 16)
    for z, factor in ((0, 1), (1, 1), (clean.shape[0] - 1, 2)):
        assert np.median(out.array[z][left[z]]) == pytest.approx(15.0 * factor, rel=0.05)
        assert np.median(out.array[z][right[z]]) == pytest.approx(40.0 * factor, rel=0.05)


def test_a_denoiser_that_took_anatomy_shows_it_in_the_map(ct):
    """Blurring the scan removes its own noise (~27 HU in this 2 mm chest) and its edges: the map reads that noise
    in flat soft tissue and many times more at the ribs and the skin, so a user sees where signal went."""
    from scipy import ndimage

    clean = ct.array.astype(np.float32)
    blurred = ndimage.gaussian_filter(clean, (0, 2, 2))
    out = noise_map_volume(residual_volume(ct, ct.with_array(blurred))).array
    gradient = np.hypot(*np.gradient(blurred, axis=(1, 2)))
    flat = _body(clean) & (ndimage.maximum_filter(gradient, (1, 17, 17)) < 10)
    edges = gradient > np.quantile(gradient, 0.99)
    assert flat.sum() > 10_000
    assert 12.0 < np.median(out[flat]) < 30.0
    assert np.median(out[edges]) > 5 * np.median(out[flat])


def test_the_window_must_be_positive_and_in_plane():
    with pytest.raises(MedDenoiseError, match="positive"):
        local_noise_sd(np.zeros((2, 8, 8)), (-2, -1), window_px=0)
    with pytest.raises(MedDenoiseError, match="first axis"):
        local_noise_sd(np.zeros((2, 8, 8)), (0, -1))
