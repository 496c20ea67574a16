"""Non-local means (scikit-image)."""

from __future__ import annotations

import numpy as np

__all__ = ["nlm_denoise"]


def nlm_denoise(image: np.ndarray, sigma: float, patch_size: int = 5, patch_distance: int = 6, h_factor: float = 0.8):
    """Non-local means (Buades et al. 2005) via ``skimage.restoration.denoise_nl_means`` (fast mode).

    Args:
        image: normalized ``(Y, X)`` image or ``(Z, Y, X)`` volume (filtered in 3D), float32.
        sigma: noise standard deviation in normalized units; the filter strength is ``h = h_factor · sigma``
            and ``sigma`` is passed on so the patch distances are bias-corrected (skimage's recommendation).
        patch_size: patch edge in pixels. Defaults to 5.
        patch_distance: search radius in pixels. Defaults to 6.
        h_factor: ``h / sigma``. Defaults to 0.8.
    """
    from skimage.restoration import denoise_nl_means

    image = np.asarray(image, dtype=np.float32)
    if sigma <= 0:
        return image.copy()
    result = denoise_nl_means(
        image,
        h=h_factor * sigma,
        sigma=sigma,
        patch_size=patch_size,
        patch_distance=patch_distance,
        fast_mode=True,
        preserve_range=True,
    )
    return result.astype(np.float32)
