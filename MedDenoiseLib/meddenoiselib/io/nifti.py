"""NIfTI specifics: how a NIfTI source stores its values, for outputs that should store theirs the same way, and what
its qform cannot hold (the shear of a tilted-gantry CT), for a warning."""

from __future__ import annotations

import numpy as np

from .geometry import gantry_tilt_degrees

__all__ = ["qform_misplacement", "scaled_integer_storage", "sheared_grid_warning", "stored_like_source"]


def scaled_integer_storage(image) -> np.dtype | None:
    """The integer type a NIfTI image stores scaled values in (``scl_slope``/``scl_inter`` other than identity:
    Philips MR through dcm2niix, FSL, SPM), or None when it stores values as they are (or floats).

    Such a file reads as float64 physical values; the denoised image is written back in the same integer type
    (:func:`stored_like_source`), so its precision and size are the source's, rather than float64 at 4x the size.

    Args:
        image: a loaded ``nibabel`` NIfTI image (nibabel moves the header's scaling to ``image.dataobj`` on load).
    """
    dtype = np.dtype(image.get_data_dtype())
    slope = float(getattr(image.dataobj, "slope", 1.0))
    inter = float(getattr(image.dataobj, "inter", 0.0))
    if dtype.kind not in "iu" or (slope, inter) == (1.0, 0.0):
        return None
    return dtype.newbyteorder("=")


def stored_like_source(values: np.ndarray, source=None) -> tuple[np.ndarray, np.dtype, tuple[float, float] | None]:
    """What to hand nibabel for physical ``values`` whose NIfTI ``source`` (a loaded image, or None: no source whose
    storage to keep) may store scaled integers.

    Returns:
        ``(data, dtype, (slope, intercept))``: the source's integers under its own slope and intercept when they hold
        every value (unchanged values come back exactly, the header's scaling is the source's); else ``values`` with
        the source's integer type and ``None``, for nibabel to fit a slope and intercept to their range; and without
        a source, or for one that stores values as they are, ``values`` unscaled ``(1, 0)``.
    """
    dtype = None if source is None else scaled_integer_storage(source)
    if dtype is None or values.dtype.kind != "f":
        return values, values.dtype, (1.0, 0.0)
    slope, inter = float(source.dataobj.slope), float(source.dataobj.inter)
    raw = np.rint((values - inter) / slope)
    limits = np.iinfo(dtype)
    if raw.size and limits.min <= raw.min() and raw.max() <= limits.max:
        return raw.astype(dtype), dtype, (slope, inter)
    return values, dtype, None


def qform_misplacement(image) -> tuple[float, float]:
    """How far a reader of ``image``'s qform instead of its sform would misplace voxels, for a sheared affine.

    A CT taken on a tilted gantry has slices that step along the table, not along their normal: its affine is
    sheared. The sform holds any affine and FSL, nibabel and MRtrix read it; the qform holds a rotation only, and
    ITK-based readers (3D Slicer, ITK-SNAP, ANTs, SimpleITK) read the qform when the sform is not orthonormal, so
    they place such slices off by up to the first number.

    Args:
        image: a ``nibabel`` NIfTI image whose qform and sform were both set from the same affine.

    Returns:
        ``(largest distance in mm over the volume's corners between the two affines' positions, the angle in
        degrees between the slice axis and the image plane's normal)``; ``(0, 0)`` for an orthogonal grid.
    """
    shape = image.shape[:3] + (1,) * (3 - len(image.shape[:3]))
    sform, qform = image.get_sform(), image.get_qform()
    ends = [(0, n - 1) for n in shape]
    corners = np.array([[i, j, k, 1.0] for i in ends[0] for j in ends[1] for k in ends[2]])
    distance = float(np.max(np.linalg.norm((corners @ (sform - qform).T)[:, :3], axis=1)))
    return distance, gantry_tilt_degrees(sform[:3, :3])


def sheared_grid_warning(image, label: str, advice: str) -> str:
    """The warning for a NIfTI ``image`` (about to be written as ``label``) whose shear ITK-based tools would lose,
    misplacing voxels by more than a tenth of its smallest voxel (:func:`qform_misplacement`), ending with
    ``advice`` (what to write instead); empty when they would place it well."""
    distance, tilt = qform_misplacement(image)
    voxel = float(np.linalg.norm(np.asarray(image.get_sform())[:3, :3], axis=0).min())
    if distance <= 0.1 * voxel:
        return ""
    return (
        f"{label}: the slices are sheared (stepping {tilt:.3g} degrees off the image plane's normal, as on a tilted "
        "gantry); the NIfTI sform holds that and FSL, nibabel and MRtrix read it, but ITK-based tools (3D Slicer, "
        f"ITK-SNAP, ANTs) read the qform, which cannot, and would place voxels up to {distance:.3g} mm off: {advice}"
    )
