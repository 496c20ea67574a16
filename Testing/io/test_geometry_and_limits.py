"""The two general protections under the readers: slice-stack geometry and the bounded-read check."""

from __future__ import annotations

import numpy as np
import pytest

from meddenoiselib import InputError
from meddenoiselib.io.geometry import orientation_groups, stack_geometry
from meddenoiselib.io.limits import DEFLATE_MAX_RATIO, Encoding, check_claimed_size

AXIAL = np.array([1.0, 0, 0, 0, 1, 0])

# (positions of 4 slices, expected problem fragment or "" for a regular grid)
STACKS = [
    ([[0, 0, 0], [0, 0, 2], [0, 0, 4], [0, 0, 6]], ""),
    ([[0, 0, 6], [0, 0, 4], [0, 0, 2], [0, 0, 0]], ""),  # descending: the slice axis points down
    ([[0, 0, 0], [0, 0.5, 2], [0, 1.0, 4], [0, 1.5, 6]], ""),  # gantry tilt: a constant oblique step
    ([[0, 0, 0], [0, 0, 2], [0, 0, 70], [0, 0, 72]], "not evenly spaced"),  # a gap
    ([[0, 0, 0], [0, 0, 0.001], [0, 0, 4], [0, 0, 6]], "not evenly spaced"),
    ([[0, 0, 0], [5, 0, 0], [10, 0, 0], [15, 0, 0]], "within the image plane"),
    ([[1, 2, 3]] * 4, "same position"),
]


@pytest.mark.parametrize("positions, problem", STACKS)
def test_stack_geometry_places_every_slice_or_says_why_not(positions, problem):
    positions = np.array(positions, dtype=float)
    grid = stack_geometry("stack", AXIAL, (0.5, 0.8), positions, len(positions), slice_spacing=3.0)
    assert (problem in grid.problem) if problem else grid.problem == ""
    if not problem:
        matrix = grid.direction @ np.diag(grid.spacing)
        for k, expected in enumerate(positions):
            np.testing.assert_allclose(np.asarray(grid.origin) + matrix @ [0, 0, k], expected, atol=1e-9)
        assert grid.spacing[:2] == (0.5, 0.8)


def test_single_slice_uses_the_given_thickness_and_orientation_groups_split():
    grid = stack_geometry("one", np.array([0.0, 1, 0, 0, 0, -1]), (1.0, 1.0), np.zeros((1, 3)), 1, 4.0)
    assert grid.spacing[2] == 4.0 and grid.problem == ""
    np.testing.assert_allclose(grid.direction[:, 2], np.cross([0, 1, 0], [0, 0, -1]))
    assert orientation_groups([AXIAL, AXIAL + 1e-5, [1, 0, 0, 0, 0, -1]]) == [0, 0, 1]


@pytest.mark.parametrize("orientation", [[0, 0, 0, 0, 1, 0], [1, 0, 0, 1, 0, 0], [np.nan, 0, 0, 0, 1, 0]])
def test_degenerate_orientations_are_input_errors(orientation):
    with pytest.raises(InputError, match="orientation|parallel"):
        stack_geometry("bad.dcm", np.array(orientation, dtype=float), (1.0, 1.0), None, 3)


# (shape, dtype, file bytes, encoding, budget, expected fragment or "" to accept)
CLAIMS = [
    ((10, 10, 10), "int16", 2000, Encoding.RAW, 10**9, ""),
    ((10, 10, 10), "int16", 1999, Encoding.RAW, 10**9, "truncated"),
    ((2048, 2048, 2048), "uint8", 65536, Encoding.DEFLATE, 10**12, "compressed data can hold"),
    ((1000, 1000), "uint8", 1000, Encoding.DEFLATE, 10**9, ""),  # 1000:1 is still possible for gzip
    ((10**5, 10**5), "float32", None, Encoding.OTHER, 10**9, "would need"),
    ((-1, 4), "uint8", None, Encoding.OTHER, 10**9, "negative"),
]


@pytest.mark.parametrize("shape, dtype, data_bytes, encoding, budget, fragment", CLAIMS)
def test_claimed_size_is_checked_before_allocation(shape, dtype, data_bytes, encoding, budget, fragment):
    if not fragment:
        assert (
            check_claimed_size("f", shape, dtype, data_bytes, encoding, max_bytes=budget)
            == int(np.prod(shape)) * np.dtype(dtype).itemsize
        )
        return
    with pytest.raises(InputError, match=fragment) as info:
        check_claimed_size("scan.nii.gz", shape, dtype, data_bytes, encoding, max_bytes=budget)
    assert str(info.value).startswith("scan.nii.gz: ")
    assert DEFLATE_MAX_RATIO >= 1032  # zlib's own bound
