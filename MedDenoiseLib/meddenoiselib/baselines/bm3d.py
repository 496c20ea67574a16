"""BM3D and BM4D through the optional ``bm3d``/``bm4d`` packages.

Those packages are distributed under a NON-COMMERCIAL licence (Tampere University), so they are never a hard
dependency of MedDenoise: install them with ``pip install meddenoiselib[bm3d]`` where their licence allows.
"""

from __future__ import annotations

import numpy as np

from ..errors import MedDenoiseError

__all__ = ["bm3d_available", "bm4d_available", "bm3d_denoise", "bm4d_denoise"]


def bm3d_available() -> bool:
    """Whether the optional ``bm3d`` package is installed."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def bm4d_available() -> bool:
    """Whether the optional ``bm4d`` package is installed."""
    try:
        import bm4d  # noqa: F401
    except ImportError:
        return False
    return True


def bm3d_denoise(image: np.ndarray, sigma: float, psd: np.ndarray | None = None) -> np.ndarray:
    """BM3D (Dabov et al. 2007) of a 2D ``(Y, X)`` image; volumes are filtered slice by slice.

    Args:
        image: normalized image, float32.
        sigma: noise standard deviation, normalized units (used when ``psd`` is None).
        psd: for correlated noise (CT), the noise power spectrum on the image's DFT grid, ``E|FFT2(noise)|²``
            (:meth:`~meddenoiselib.transforms.NoiseEstimate.psd`); BM3D then shapes its thresholds by it.

    Raises:
        MedDenoiseError: the optional ``bm3d`` package is not installed.
    """
    try:
        import bm3d
    except ImportError as exc:
        raise MedDenoiseError(
            "method 'bm3d': the optional bm3d package is not installed (non-commercial licence); "
            "install it with `pip install bm3d` if its licence allows your use"
        ) from exc
    if not hasattr(np, "trapz"):
        # bm3d 4.0's PSD path calls np.trapz, which NumPy 2.x removed in favour of np.trapezoid (same function)
        np.trapz = np.trapezoid  # noqa: NPY201 (restores the name bm3d calls)
    image = np.asarray(image, dtype=np.float32)
    if psd is None and sigma <= 0:
        return image.copy()
    noise = sigma if psd is None else np.asarray(psd, dtype=np.float64)
    if image.ndim == 3:
        return np.stack([bm3d.bm3d(s, sigma_psd=noise).astype(np.float32) for s in image])
    return np.asarray(bm3d.bm3d(image, sigma_psd=noise), dtype=np.float32)


def bm4d_denoise(image: np.ndarray, sigma: float) -> np.ndarray:
    """BM4D (Maggioni et al. 2013) of a ``(Z, Y, X)`` volume.

    Raises:
        MedDenoiseError: the optional ``bm4d`` package is not installed.
    """
    try:
        import bm4d
    except ImportError as exc:
        raise MedDenoiseError(
            "method 'bm4d': the optional bm4d package is not installed (non-commercial licence); "
            "install it with `pip install bm4d` if its licence allows your use"
        ) from exc
    image = np.asarray(image, dtype=np.float32)
    if sigma <= 0:
        return image.copy()
    return np.asarray(bm4d.bm4d(image, sigma_psd=sigma), dtype=np.float32)
