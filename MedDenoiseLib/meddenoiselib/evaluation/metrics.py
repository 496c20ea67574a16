"""PSNR and SSIM through MONAI's metrics, always with an explicit data range."""

from __future__ import annotations

import numpy as np
import torch
from monai.metrics import PSNRMetric, SSIMMetric

from ..errors import OptionError

__all__ = ["psnr", "ssim"]


def _as_batch(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(image, dtype=np.float32))
    return tensor[None, None]


def psnr(clean: np.ndarray | torch.Tensor, test: np.ndarray | torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range² / MSE)``.

    Args:
        clean: reference image, any shape (2D or 3D).
        test: image to score, same shape.
        data_range: the peak value range; 1.0 on normalized data, 255 on 8-bit data. Defaults to 1.0.
    """
    if np.shape(clean) != np.shape(test):
        raise OptionError(f"shapes differ: clean {np.shape(clean)} vs test {np.shape(test)}.")
    metric = PSNRMetric(max_val=float(data_range), reduction="mean")
    return float(metric(_as_batch(test), _as_batch(clean)).item())


def ssim(clean: np.ndarray | torch.Tensor, test: np.ndarray | torch.Tensor, data_range: float = 1.0) -> float:
    """Structural similarity (Wang et al. 2004): 11×11 Gaussian window, σ 1.5, K1 0.01, K2 0.03.

    2D images are scored directly; for a volume ``(Z, Y, X)`` the 2D SSIM of every slice is averaged (slices
    smaller than the window are skipped).

    Args:
        clean: reference image.
        test: image to score, same shape.
        data_range: the value range. Defaults to 1.0.
    """
    clean = np.asarray(clean, dtype=np.float32)
    test = np.asarray(test, dtype=np.float32)
    if clean.shape != test.shape:
        raise OptionError(f"shapes differ: clean {clean.shape} vs test {test.shape}.")
    metric = SSIMMetric(
        spatial_dims=2,
        data_range=float(data_range),
        kernel_type="gaussian",
        win_size=11,
        kernel_sigma=1.5,
        k1=0.01,
        k2=0.03,
        reduction="mean",
    )
    if clean.ndim == 2:
        if min(clean.shape) < 11:
            raise OptionError(f"images of shape {clean.shape} are smaller than the 11x11 SSIM window.")
        return float(metric(_as_batch(test), _as_batch(clean)).item())
    if clean.ndim != 3:
        raise OptionError(f"images must be 2D or 3D, got shape {clean.shape}.")
    keep = [k for k in range(clean.shape[0]) if min(clean.shape[1:]) >= 11]
    if not keep:
        raise OptionError(f"slices of shape {clean.shape[1:]} are smaller than the 11x11 SSIM window.")
    values = metric(torch.from_numpy(test[keep])[:, None], torch.from_numpy(clean[keep])[:, None])
    return float(values.mean().item())
