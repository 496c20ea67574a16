"""Voxels without data (NaN): found, refused when infinite, filled for the denoiser by mirroring the data across the
edge of its region, and whole empty slices by the nearest slice with data."""

from __future__ import annotations

import numpy as np
import pytest

from meddenoiselib.errors import InputError
from meddenoiselib.transforms.missing import fill_from_nearest, fill_missing, missing_values


def test_missing_values_finds_nan_and_refuses_infinite_or_empty_images():
    assert missing_values(np.arange(6, dtype=np.int16)) is None
    assert missing_values(np.ones(4, np.float32)) is None
    values = np.array([1.0, np.nan, 2.0])
    np.testing.assert_array_equal(missing_values(values), [False, True, False])
    with pytest.raises(InputError, match="scan.nii: .*contains 1 infinite voxel "):
        missing_values(np.array([1.0, np.inf, np.nan]), "scan.nii:")
    with pytest.raises(InputError, match="every voxel is NaN"):
        missing_values(np.full((2, 2), np.nan))


def test_the_fill_mirrors_the_data_across_the_edge_and_keeps_the_input():
    plane = np.arange(1.0, 41.0).reshape(5, 8)
    image = plane.copy()
    image[:, 5:] = np.nan  # the right three columns have no data
    before = image.copy()
    filled = fill_missing(image, missing_values(image))
    np.testing.assert_array_equal(image, before)  # the input is not modified
    np.testing.assert_array_equal(filled[:, :5], plane[:, :5])
    # column 5 mirrors column 3 through column 4, the nearest with data; 6 mirrors 2; 7 mirrors 1
    np.testing.assert_array_equal(filled[:, 5:], plane[:, [3, 2, 1]])
    # without room to mirror (a region wider than the data), the nearest value
    narrow = plane.copy()
    narrow[:, 2:] = np.nan
    filled = fill_missing(narrow, missing_values(narrow))
    # column 2 mirrors column 0 through column 1; column 3's mirror image (-1) lies outside: column 1 itself
    np.testing.assert_array_equal(filled[:, 2:4], plane[:, [0, 1]])
    np.testing.assert_array_equal(filled[:, 4:], np.repeat(plane[:, 1:2], 4, axis=1))


def test_mirroring_keeps_the_noise_that_a_smooth_fill_would_remove():
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 10.0, (64, 64))
    image = noise.copy()
    yy, xx = np.mgrid[:64, :64]
    image[(yy - 32) ** 2 + (xx - 32) ** 2 > 20**2] = np.nan  # a round field of view
    missing = missing_values(image)
    mirrored = fill_missing(image, missing)
    nearest = image.copy()
    fill_from_nearest(nearest, missing, 0.0)
    assert mirrored[missing].std() == pytest.approx(10.0, rel=0.15)
    assert nearest[missing].std() == pytest.approx(10.0, rel=0.15)  # the values are the data's either way...
    # ...but a smooth extension repeats each edge value along its ray: pixel-to-pixel differences vanish
    assert (
        np.abs(np.diff(mirrored, axis=1))[missing[:, 1:]].mean()
        > 3 * np.abs(np.diff(nearest, axis=1))[missing[:, 1:]].mean()
    )


def test_empty_slices_take_the_nearest_slice_with_data_and_components_fill_on_their_own():
    volume = np.stack([np.full((3, 4), float(z)) for z in range(5)])
    volume[0] = volume[3] = volume[4] = np.nan
    filled = fill_missing(volume, missing_values(volume))
    np.testing.assert_array_equal(filled[:, 0, 0], [1, 1, 2, 2, 2])
    series = np.stack([volume, volume + 10])  # (T, Z, Y, X): each frame on its own
    series[1, 1:3] = np.nan  # the second frame holds no data at all
    filled = fill_missing(series, missing_values(series))
    np.testing.assert_array_equal(filled[0, :, 0, 0], [1, 1, 2, 2, 2])
    assert np.isfinite(filled).all() and np.all(filled[1] == np.median(series[~np.isnan(series)]))
    colour = np.stack([volume[1:3], volume[1:3] + 100], axis=-1)  # (Z, Y, X, C)
    colour[0, 1, 2, 1] = np.nan
    filled = fill_missing(colour, missing_values(colour), components=True)
    assert filled[0, 1, 2, 1] == 101.0 and filled[0, 1, 2, 0] == 1.0
