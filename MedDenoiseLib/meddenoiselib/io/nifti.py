"""How a NIfTI source stores its values, for outputs that should store theirs the same way."""

from __future__ import annotations

import numpy as np

__all__ = ["scaled_integer_storage"]


def scaled_integer_storage(image) -> np.dtype | None:
    """The integer type a NIfTI image stores scaled values in (``scl_slope``/``scl_inter`` other than identity:
    Philips MR through dcm2niix, FSL, SPM), or None when it stores values as they are (or floats).

    Such a file reads as float64 physical values; the denoised image is written back in the same integer type, with
    a slope and intercept nibabel fits to the output's range, so its precision is the source's (a step of ~1/65535 of
    the range for int16) and its size too, rather than float64 at 4x the source's size.

    Args:
        image: a loaded ``nibabel`` NIfTI image (nibabel moves the header's scaling to ``image.dataobj`` on load).
    """
    dtype = np.dtype(image.get_data_dtype())
    slope = float(getattr(image.dataobj, "slope", 1.0))
    inter = float(getattr(image.dataobj, "inter", 0.0))
    if dtype.kind not in "iu" or (slope, inter) == (1.0, 0.0):
        return None
    return dtype.newbyteorder("=")
