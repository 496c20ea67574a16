"""How a NIfTI source stores its values, for outputs that should store theirs the same way."""

from __future__ import annotations

import numpy as np

__all__ = ["scaled_integer_storage", "stored_like_source"]


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
