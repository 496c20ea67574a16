"""How a denoised result is combined with its input: strength blend, mask, residual.

numpy only (no torch, MONAI or SimpleITK), so front ends can re-blend a finished result cheaply: the Slicer module's
strength slider calls :func:`blend` on every move instead of denoising again.

All functions work in the input's physical units (HU stay HU). Because intensity normalization is affine,
``blend(noisy, denoised, s)`` equals running the denoiser with ``strength=s`` up to the final rounding of integer
dtypes (at most one unit).
"""

from __future__ import annotations

import numpy as np

from .errors import MedDenoiseError

__all__ = ["apply_mask", "blend", "cast_values", "check_same_grid", "mask_array", "residual"]

#: largest difference in mm (spacing, origin) and in direction cosines for a mask to count as on the same grid.
GEOMETRY_TOLERANCE = 1e-3


def cast_values(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast float values to ``dtype``: integers rounded and clipped to the dtype's range, floats as they are."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    if dtype.kind == "b":
        return values >= 0.5
    return values.astype(dtype, copy=False)


def blend(noisy: np.ndarray, denoised: np.ndarray, strength: float, dtype: np.dtype | str | None = None) -> np.ndarray:
    """``noisy + strength * (denoised - noisy)``, in ``dtype`` (default: the noisy array's).

    ``strength`` 1 returns the denoised values and 0 the noisy ones exactly (also for integer dtypes).

    Args:
        noisy: the input voxels, any shape and numeric dtype.
        denoised: the full-strength result, same shape.
        strength: in [0, 1].
        dtype: output dtype; integers are rounded and clipped to their range.

    Raises:
        MedDenoiseError: shapes differ or ``strength`` is outside [0, 1].
    """
    noisy, denoised = np.asarray(noisy), np.asarray(denoised)
    if noisy.shape != denoised.shape:
        raise MedDenoiseError(f"cannot blend: the input has shape {noisy.shape}, the result {denoised.shape}")
    strength = float(strength)
    if not 0.0 <= strength <= 1.0:
        raise MedDenoiseError(f"strength must be in [0, 1], got {strength}")
    dtype = noisy.dtype if dtype is None else np.dtype(dtype)
    if strength in (0.0, 1.0):
        chosen = denoised if strength == 1.0 else noisy
        return cast_values(chosen.astype(np.float64, copy=False), dtype) if chosen.dtype != dtype else chosen.copy()
    work = np.float64 if dtype.itemsize > 2 and dtype.kind in "iu" or dtype == np.float64 else np.float32
    out = denoised.astype(work)
    out -= noisy
    out *= work(strength)
    out += noisy
    return cast_values(out, dtype)


def residual(noisy: np.ndarray, denoised: np.ndarray) -> np.ndarray:
    """``noisy - denoised`` as float32: what the denoiser removed (structureless if only noise went)."""
    return np.asarray(noisy).astype(np.float32) - np.asarray(denoised).astype(np.float32)


def mask_array(image, mask, label: str = "the mask", allow_empty: bool = False) -> np.ndarray:
    """The boolean inside-mask array for ``image``'s voxel grid, from a mask volume or array.

    Args:
        image: a ``Volume`` or ``VolumeSeries`` (its spatial shape and geometry are what the mask must match).
        mask: a single-component ``Volume`` on the same grid (non-zero = denoise), or a numpy array of the spatial
            shape ``(Z, Y, X)`` (no geometry to check).
        label: how the mask is named in messages (e.g. its file name).
        allow_empty: accept a mask with no voxel inside (a region left out that is empty).

    Raises:
        MedDenoiseError: components, shape or geometry differ, or no voxel is inside.
    """
    shape = tuple(image.shape)
    if isinstance(mask, np.ndarray):
        values = mask
    else:
        if mask.num_components != 1:
            raise MedDenoiseError(f"{label} has {mask.num_components} components; a mask is a single label image")
        values = mask.array
        if tuple(values.shape) == shape:
            check_same_grid(mask, image, label, "mask")
    if tuple(values.shape) != shape:
        raise MedDenoiseError(
            f"{label} has shape {tuple(values.shape)} (z, y, x) but the image has {shape}; the mask must be on the "
            "image's voxel grid"
        )
    inside = np.asarray(values) != 0
    if not inside.any() and not allow_empty:
        raise MedDenoiseError(f"{label} has no voxel inside (all zero): nothing would be denoised")
    return inside


def check_same_grid(other, image, label: str, what: str) -> None:
    """Refuse ``other`` (a volume of ``image``'s shape: a mask, a noise map) whose spacing, origin or direction differ
    from ``image``'s by more than :data:`GEOMETRY_TOLERANCE`; the message names it as ``label``, a ``what``."""
    differences = {
        "spacing": np.abs(np.subtract(other.spacing, image.spacing)).max(),
        "origin": np.abs(np.subtract(other.origin, image.origin)).max(),
        "direction": np.abs(np.subtract(other.direction, image.direction)).max(),
    }
    wrong = [f"{name} differs by {value:.3g}" for name, value in differences.items() if value > GEOMETRY_TOLERANCE]
    if wrong:
        raise MedDenoiseError(
            f"{label} is not on the image's voxel grid ({', '.join(wrong)}; {what} spacing {_fmt(other.spacing)}, "
            f"origin {_fmt(other.origin)}; image spacing {_fmt(image.spacing)}, origin {_fmt(image.origin)}); "
            f"resample the {what} onto the image first"
        )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def apply_mask(noisy: np.ndarray, denoised: np.ndarray, inside: np.ndarray, frame_axes: int = 0) -> np.ndarray:
    """``denoised`` inside the mask, ``noisy`` outside, voxel for voxel (outside values are the input's exactly).

    Args:
        noisy: input voxels, ``(Z, Y, X[, C])``, or ``(T, Z, Y, X[, C])`` with ``frame_axes=1``.
        denoised: the result, same shape; its dtype is the output's.
        inside: boolean ``(Z, Y, X)``, broadcast over the frame and component axes (one 3D mask for every frame
            and component).
        frame_axes: number of leading axes before ``Z`` (1 for a series).
    """
    noisy, denoised = np.asarray(noisy), np.asarray(denoised)
    if noisy.shape != denoised.shape:
        raise MedDenoiseError(f"cannot apply the mask: the input has shape {noisy.shape}, the result {denoised.shape}")
    spatial = noisy.shape[frame_axes : frame_axes + 3]
    if spatial != inside.shape:
        raise MedDenoiseError(f"cannot apply the mask: it has shape {inside.shape}, the image {spatial}")
    view = inside.reshape((1,) * frame_axes + inside.shape + (1,) * (noisy.ndim - frame_axes - 3))
    return np.where(view, denoised, noisy.astype(denoised.dtype, copy=False))
