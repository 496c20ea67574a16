"""CT padding outside the reconstructed field of view: filled for denoising, given back unchanged, left alone by
simulated noise; on a targeted reconstruction whose body meets the padding, the default model no longer smears the
~3000 HU step into the skin."""

from __future__ import annotations

import numpy as np
import pytest

from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.transforms import parse_noise_spec, simulate_volume
from meddenoiselib.transforms.ct_padding import fill_outside_reconstruction, outside_reconstruction

PADDING_HU = -3024


def _targeted(volume, radius: int):
    """The sample series as a targeted reconstruction: a field of view of ``radius`` pixels around the image centre
    that cuts through the body, -3024 HU outside (as GE stores it). Returns (volume, outside mask)."""
    z, y, x = volume.array.shape
    yy, xx = np.mgrid[:y, :x]
    outside = np.broadcast_to((yy - y / 2 + 0.5) ** 2 + (xx - x / 2 + 0.5) ** 2 > radius**2, (z, y, x))
    return volume.with_array(np.where(outside, PADDING_HU, volume.array).astype(np.int16)), outside


def test_padding_is_filled_from_the_nearest_voxel_inside_and_the_input_is_kept():
    hu = np.full((2, 5, 6), PADDING_HU, dtype=np.int16)
    hu[0, 1:4, 2:5] = [[10, 20, 30], [40, 50, 60], [70, 80, 90]]
    before = hu.copy()
    outside = outside_reconstruction(hu)
    filled = fill_outside_reconstruction(hu, outside)
    np.testing.assert_array_equal(hu, before)
    assert filled.dtype == np.float32
    np.testing.assert_array_equal(filled[0, 1:4, 2:5], hu[0, 1:4, 2:5])  # inside: unchanged
    assert filled[0, 0, 2] == 10 and filled[0, 4, 4] == 90 and filled[0, 2, 0] == 40 and filled[0, 2, 5] == 60
    assert filled[0, 0, 0] == 10  # corner: nearest is the corner of the inside
    np.testing.assert_array_equal(filled[1], -1000)  # all padding: air
    # air, noise in air and a low-dose streak are measurements, not padding
    assert outside_reconstruction(np.array([[-1024.0, -1300.0, 40.0]])) is None
    with pytest.raises(ValueError, match="shape"):
        fill_outside_reconstruction(hu, outside[:1])


@pytest.fixture(scope="module")
def targeted_low_dose(ct_series_dir):
    clean, outside = _targeted(read_volume(ct_series_dir), radius=200)
    noisy = simulate_volume(clean, parse_noise_spec("ct-lowdose:40HU,method=fast,views=360"), seed=5)
    return clean, noisy, outside


def test_simulated_noise_leaves_the_padding_alone(targeted_low_dose):
    clean, noisy, outside = targeted_low_dose
    np.testing.assert_array_equal(noisy.array[outside], PADDING_HU)
    body = (clean.array > -500) & ~outside
    assert 25 < np.std(noisy.array[body].astype(float) - clean.array[body]) < 60


def test_default_model_on_a_targeted_reconstruction_keeps_the_padding_and_the_skin(targeted_low_dose):
    clean, noisy, outside = targeted_low_dose
    denoised = Denoiser().denoise(noisy)
    assert denoised.array.dtype == noisy.array.dtype
    np.testing.assert_array_equal(denoised.array[outside], PADDING_HU)
    # the body inside 6 pixels of the field of view's edge, where the padding meets the skin
    z, y, x = clean.array.shape
    yy, xx = np.mgrid[:y, :x]
    radius = np.sqrt((yy - y / 2 + 0.5) ** 2 + (xx - x / 2 + 0.5) ** 2)
    body = clean.array > -500

    def rmse(values, lo, hi):
        ring = np.broadcast_to((radius > lo) & (radius <= hi), clean.array.shape) & body
        assert ring.sum() > 2000  # the field of view does cut through the body
        return float(np.sqrt(np.mean((values[ring].astype(float) - clean.array[ring]) ** 2)))

    # the body within 6 pixels of the field of view's edge, where the padding meets the skin, and the ring inside
    rim_noisy, rim, inner = rmse(noisy.array, 194, 200), rmse(denoised.array, 194, 200), rmse(denoised.array, 180, 194)
    # without the fill the model's kernels mixed -3024 HU into the skin: rim error 68 HU, twice the noisy input's
    # 35 HU and 2.7 times the error just inside; with it 26 HU, about the error just inside (23 HU)
    assert rim < 0.85 * rim_noisy, (rim, rim_noisy)
    assert rim < 1.25 * inner, (rim, inner)


def test_ct_training_images_are_filled_as_the_denoiser_fills_them(tmp_path, ct_series_dir):
    from meddenoiselib.io import write_volume
    from meddenoiselib.training.data import load_training_images

    targeted, outside = _targeted(read_volume(ct_series_dir), radius=200)
    write_volume(targeted, tmp_path / "targeted.nii.gz")
    (image,) = load_training_images([tmp_path / "targeted.nii.gz"], scaling_mode="ct_window", window=(0.0, 2048.0))
    expected = fill_outside_reconstruction(targeted.array, outside)
    np.testing.assert_allclose(image.scaling.invert(image.array, dtype="float32"), expected, atol=0.01)
    assert image.array.min() > (-1400 + 1024) / 2048
