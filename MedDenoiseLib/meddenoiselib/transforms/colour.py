"""Colour ultrasound: denoise the brightness, keep the colour.

Ultrasound DICOM is usually stored as colour (RGB or YBR) although the B-mode image is grey: R = G = B everywhere
but on annotations, calipers and colour-Doppler overlays. Speckle lives in the B-mode brightness. Denoised channel
by channel, each channel gets its own intensity scaling and the network mixes the coloured overlay pixels into their
grey neighbours differently per channel: on pydicom's US1_J2KR.dcm 8.5 % of the grey pixels came out tinted (up to
176 levels apart). Denoising the luma and adding its change to every channel keeps grey pixels exactly grey and the
overlays' hue, at a third of the time.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LUMA_WEIGHTS", "grey_images", "luma", "with_new_luma"]

#: ITU-R BT.601 luma weights of R, G and B (sum 1: a grey pixel's luma is its value)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luma(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB values (any numeric dtype) -> their luma, float32 ``(...)``, in the same units."""
    return (np.asarray(rgb, dtype=np.float32) @ np.asarray(LUMA_WEIGHTS, dtype=np.float32)).astype(np.float32)


def with_new_luma(rgb: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``rgb`` ``(..., 3)`` with every channel moved by ``new - old`` (the luma's change), rounded and clipped to
    ``rgb``'s integer range, in ``rgb``'s dtype (float dtypes unclipped)."""
    moved = np.asarray(rgb, dtype=np.float32) + (np.asarray(new, np.float32) - np.asarray(old, np.float32))[..., None]
    if rgb.dtype.kind in "iu":
        info = np.iinfo(rgb.dtype)
        return np.clip(np.rint(moved), info.min, info.max).astype(rgb.dtype)
    return moved.astype(rgb.dtype)


def grey_images(array: np.ndarray, components: int) -> list[tuple[str, np.ndarray]]:
    """The grey images an image holds, for uses that take one grey image (evaluation references, training): an RGB
    image's luma, each channel of any other channel count (a 2-channel fluorescence stack), or the image itself.

    Args:
        array: ``(...)`` for one component, ``(..., C)`` for ``components`` > 1.
        components: the number of components ``C`` (1 for scalar images).

    Returns:
        ``(suffix, float32 image)`` pairs: suffix ``""``, or ``"[channel k]"`` (k from 1) per channel.
    """
    if components == 1:
        return [("", np.asarray(array, dtype=np.float32))]
    if components == 3:
        return [("", luma(array))]
    return [(f"[channel {k + 1}]", np.asarray(array[..., k], dtype=np.float32)) for k in range(components)]
