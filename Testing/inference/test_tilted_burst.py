"""A burst model's adjacent slices on a tilted gantry: a sheared grid's slices each sit a few pixels along the column
direction from the one before (4.8 px on the GE head CT's 7.38 mm slices), so the burst's frames held other anatomy
than the centre slice's. The runner now moves each adjacent slice back by whole pixels onto the centre pixel's normal,
as on an orthogonal grid."""

from __future__ import annotations

import math

import numpy as np

from meddenoiselib.inference import Denoiser
from meddenoiselib.inference.denoiser import neighbour_shift
from meddenoiselib.inference.network_runner import _adjacent_slices
from meddenoiselib.io import Volume

PIXEL_MM = 0.7
STEP_MM = 2.5


def _sheared_direction(rows_per_slice: int) -> np.ndarray:
    """A gantry tilt whose 2.5 mm table step moves ``rows_per_slice`` whole pixels along the column direction."""
    tilt = math.asin(rows_per_slice * PIXEL_MM / STEP_MM)
    row, column = np.array([1.0, 0.0, 0.0]), np.array([0.0, math.cos(tilt), -math.sin(tilt)])
    return np.stack([row, column, [0.0, 0.0, 1.0]], axis=1)


def _stack_on_sheared_grid(image: np.ndarray, slices: int, rows_per_slice: int) -> np.ndarray:
    """``image`` repeated along the planes' normal, sampled on the sheared grid: slice k holds it moved down by
    ``k * rows_per_slice`` rows (the column direction tilts away from the table's step, so the anatomy under a pixel
    changes from slice to slice as it does on the scanner)."""
    return np.stack([np.roll(image, k * rows_per_slice, axis=0) for k in range(slices)])


def test_the_shift_of_a_sheared_grid_and_of_an_orthogonal_one():
    np.testing.assert_allclose(neighbour_shift((PIXEL_MM, PIXEL_MM, STEP_MM), _sheared_direction(2)), (-2.0, 0.0))
    assert neighbour_shift((PIXEL_MM, PIXEL_MM, STEP_MM), np.eye(3)) is None
    # the GE head CT of the data folder: 18.5 degrees, 4.22 mm steps, 0.488 mm pixels: 2.74 rows per slice
    tilt = math.radians(18.5)
    ge = np.stack([[1.0, 0.0, 0.0], [0.0, math.cos(tilt), -math.sin(tilt)], [0.0, 0.0, 1.0]], axis=1)
    rows, columns = neighbour_shift((0.488, 0.488, 4.22), ge)
    assert abs(rows + 2.74) < 0.01 and columns == 0.0


def test_adjacent_slices_are_moved_onto_the_centre_pixel_s_normal(ct_crop):
    stack = _stack_on_sheared_grid(ct_crop, 5, 2)
    shift = neighbour_shift((PIXEL_MM, PIXEL_MM, STEP_MM), _sheared_direction(2))
    frames = _adjacent_slices(stack, 2, 1, shift)
    inner = (slice(4, -4), slice(None))  # rows the move brought in from the edge are repeated edge pixels
    for frame in frames:
        np.testing.assert_array_equal(frame[inner], stack[2][inner])
    as_stored = _adjacent_slices(stack, 2, 1, None)
    assert np.abs(as_stored[0] - stack[2]).mean() > 0.01  # other anatomy without the move


def test_the_ct_burst_model_on_a_tilted_gantry_denoises_as_on_an_orthogonal_grid(ct_crop):
    """The real chest crop as 5 slices of one anatomy on a grid tilted so that each slice sits 3 rows from the last,
    noise of ~25 HU: the burst model's centre slices are as close to the clean ones as those of the same slices moved
    onto an orthogonal grid (not equal: a multi-scale network is not equivariant to a 3-pixel move), and closer than
    with the slices taken as stored."""
    hu = ct_crop.astype(np.float64) * 1400.0 - 1000.0
    clean = _stack_on_sheared_grid(hu, 5, 3)
    noisy = (clean + np.random.default_rng(8).normal(0.0, 25.0, clean.shape)).astype(np.float32)
    spacing = (PIXEL_MM, PIXEL_MM, STEP_MM)
    metadata = {"0008|0060": "CT"}
    denoiser = Denoiser("kpn-ct-burst3", refine="off", ensemble=1)
    tilted = denoiser.denoise(Volume(noisy, spacing, direction=_sheared_direction(3), metadata=metadata)).array
    moved = np.stack([np.roll(noisy[k], -3 * k, axis=0) for k in range(5)])  # onto the normal of slice 0's pixels
    orthogonal = denoiser.denoise(Volume(moved, spacing, metadata=metadata)).array
    stored = denoiser.denoise(Volume(noisy, spacing, metadata=metadata)).array
    inner = (slice(1, 4), slice(20, -20), slice(20, -20))
    back = np.stack([np.roll(orthogonal[k], 3 * k, axis=0) for k in range(5)])

    def rmse(image):
        return float(np.sqrt(np.mean((image[inner] - clean[inner]) ** 2)))

    assert abs(rmse(tilted) - rmse(back)) < 0.05 * rmse(back), (rmse(tilted), rmse(back))
    assert rmse(tilted) < rmse(stored) - 0.2, (rmse(tilted), rmse(stored), rmse(noisy))
