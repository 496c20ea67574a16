"""Voxels without data (NaN), and the nearest-voxel filling that lets a denoiser run around them.

Neuroimaging pipelines store what lies outside the field of view after resampling or registration as NaN (SPM's
``spm_reslice``, nilearn's and ANTs' resampling of float images, masked statistics maps). These voxels are not
measurements: a denoiser must neither see them (a NaN poisons every kernel or block it touches) nor change them. So
each one is filled from the nearest voxel with data in its own slice for the denoiser, and the output gives NaN back
there. Infinite values are not "no data" but an overflow upstream, and are refused.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError

__all__ = ["fill_from_nearest", "fill_left_out", "fill_missing", "missing_values", "require_complete"]


def missing_values(array: np.ndarray, label: str = "the image") -> np.ndarray | None:
    """The NaN elements of an image, or None when it has none (integer images never have any).

    Args:
        array: any shape, any real dtype.
        label: how messages name the image (its file).

    Returns:
        A boolean array of ``array``'s shape, True where the value is NaN; None when none is.

    Raises:
        InputError: the image holds infinite values, or nothing but NaN.
    """
    if array.dtype.kind not in "fc":
        return None
    infinite = int(np.count_nonzero(np.isinf(array)))
    if infinite:
        voxels = "voxel" if infinite == 1 else "voxels"
        raise InputError(f"{label} contains {infinite} infinite {voxels} (+/-Inf, an overflow upstream); replace them")
    missing = np.isnan(array)
    if not missing.any():
        return None
    if missing.all():
        raise InputError(f"{label} holds no data: every voxel is NaN")
    return missing


def require_complete(array: np.ndarray, label: str, use: str) -> None:
    """Refuse an image with voxels without data (NaN) where every voxel must be known (a clean reference, a training
    image), naming ``label`` and the ``use``; and, as :func:`missing_values`, one with infinite values."""
    missing = missing_values(array, label)
    if missing is not None:
        raise InputError(
            f"{label}: {int(missing.sum())} voxels hold no data (NaN); {use} needs a complete image (crop or fill them)"
        )


def fill_from_nearest(values: np.ndarray, missing: np.ndarray, empty: float, mirror: bool = False) -> None:
    """Set, in place, each ``missing`` element of ``values`` to the nearest element that is not missing in its own
    ``(Y, X)`` plane (with ``mirror``, to its mirror image through that element where it has data); a plane
    missing throughout is set to ``empty``.

    Args:
        values: ``(..., Y, X)`` float array (a view is fine: it is written plane by plane).
        missing: boolean, ``values``' shape.
        empty: the value of planes without any data.
        mirror: fill ``p`` with ``2 q - p`` (``q`` the nearest element with data) where that lies in the plane and
            has data, else with ``q``: the filled region carries the data's noise and texture, as an image is padded
            symmetrically at its border, rather than a smooth extension that noise estimates would read as
            noise-free.
    """
    if missing.shape != values.shape:
        raise ValueError(f"the mask's shape {missing.shape} differs from the image's {values.shape}")
    nearest, previous = None, None
    for index in np.ndindex(values.shape[:-2]):
        plane, mask = values[index], missing[index]
        if not mask.any():
            continue
        if mask.all():
            plane[...] = empty
            continue
        # a series usually keeps one field of view, so the nearest-voxel map is computed once and reused
        if previous is None or not np.array_equal(mask, previous):
            nearest = ndimage.distance_transform_edt(mask, return_distances=False, return_indices=True)
            nearest = tuple(axis[mask] for axis in nearest)
            if mirror:
                nearest = _mirrored(nearest, np.nonzero(mask), mask)
            previous = mask
        plane[mask] = plane[nearest]


def _mirrored(
    nearest: tuple[np.ndarray, np.ndarray], points: tuple[np.ndarray, np.ndarray], mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The mirror images ``2 q - p`` of the ``points`` through their ``nearest`` elements with data, where those lie
    in the plane and have data; ``nearest`` elsewhere."""
    y, x = (2 * q - p for q, p in zip(nearest, points, strict=True))
    inside = (y >= 0) & (y < mask.shape[0]) & (x >= 0) & (x < mask.shape[1])
    usable = inside.copy()
    usable[inside] = ~mask[y[inside], x[inside]]
    return np.where(usable, y, nearest[0]), np.where(usable, x, nearest[1])


def fill_missing(array: np.ndarray, missing: np.ndarray, components: bool = False) -> np.ndarray:
    """A copy of ``array`` with every NaN filled from the nearest voxel with data in its own slice, and a slice
    without any data from the nearest slice with data (as a volume's edge is extended); ``array`` itself is not
    modified.

    Why not a constant: a plane or region at one value reads to the model chooser as a masked background (and a
    constant below the data as the scaling's new minimum), which a resampled volume's empty end slices are not.

    Args:
        array: float ``(..., Y, X)``, or ``(..., Y, X, C)`` with ``components`` (each component filled on its own);
            slices are along the axis before ``Y``.
        missing: :func:`missing_values` of ``array``.
        components: the last axis holds components (colour, vectors).

    Returns:
        The filled copy, ``array``'s shape and dtype, finite.
    """
    filled = np.array(array, copy=True)
    _fill_in_place(filled, missing, components)
    return filled


def _fill_in_place(filled: np.ndarray, missing: np.ndarray, components: bool) -> None:
    """:func:`fill_missing`'s filling, in place, in ``filled``'s own dtype (the values are copies of its own)."""
    if components:
        channels = [(filled[..., channel], missing[..., channel]) for channel in range(filled.shape[-1])]
    else:
        channels = [(filled, missing)]
    empty = np.nan if filled.dtype.kind == "f" else 0  # a plane without data: set from its neighbours next
    for values, absent in channels:
        fill_from_nearest(values, absent, empty, mirror=True)
        _fill_empty_slices(values, absent)


def _fill_empty_slices(values: np.ndarray, missing: np.ndarray) -> None:
    """Set, in place, each ``(Y, X)`` plane of ``values`` that is ``missing`` throughout to the nearest plane along
    the slice axis (the one before ``Y``) with data, walking every leading axis (frames); a stack without any data
    gets the median of the data elsewhere (0 if there is none)."""
    empty = missing.all(axis=(-2, -1))
    if not empty.any():
        return
    present = values[~missing]
    fallback = float(np.median(present)) if present.size else 0.0
    if values.ndim < 3:
        values[...] = fallback
        return
    for index in np.ndindex(values.shape[:-3]):
        stack, blank = values[index], empty[index]
        full = np.flatnonzero(~blank)
        if full.size == 0:
            stack[...] = fallback
            continue
        for z in np.flatnonzero(blank):
            stack[z] = stack[full[np.argmin(np.abs(full - z))]]


def fill_left_out(array: np.ndarray, region: np.ndarray, frame_axes: int = 0, components: bool = False) -> np.ndarray:
    """A copy of ``array`` in which the voxels of ``region`` are filled as :func:`fill_missing` fills NaN (mirrored
    from their neighbours in the slice), in ``array``'s dtype: what a denoiser sees of a region left out of the
    denoising (metal, a device), so that its values neither change nor spread into the tissue around it.

    Args:
        array: ``(..., Z, Y, X[, C])`` with ``frame_axes`` leading axes (1 for a 4D series); any real dtype.
        region: boolean ``(Z, Y, X)``, the same region in every frame and component; or, with ``frame_axes`` 0,
            of ``array``'s shape without its components (a region per frame).
        frame_axes: leading axes of ``array`` that ``region`` lacks.
        components: the last axis holds components.

    Returns:
        The filled copy, ``array``'s shape and dtype (integers exactly: the filling copies the image's own values).
    """
    view = region.reshape((1,) * frame_axes + region.shape + (1,) * int(components))  # over frames and components
    absent = np.ascontiguousarray(np.broadcast_to(view, array.shape))
    filled = np.array(array, copy=True)  # in the image's dtype: a float copy of an int16 CT would double it
    _fill_in_place(filled, absent, components)
    return filled
