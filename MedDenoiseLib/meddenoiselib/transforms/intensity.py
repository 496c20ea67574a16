"""Intensity scaling to a nominal [0, 1] float32 range, with an exact inverse back to original units and dtype."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["ScalingMode", "IntensityScaling", "NoiseSD", "fit_scaling", "sigma_from_255"]


class ScalingMode(str, enum.Enum):
    """How the [0, 1] range is chosen.

    - ``minmax``: the image's minimum maps to 0 and its maximum to 1.
    - ``percentile``: robust; the ``lower``/``upper`` percentiles map to 0 and 1 (defaults 0.5 and 99.5).
    - ``ct_window``: a CT window in HU, ``center`` ± ``width``/2 maps to 0 and 1.
    - ``fixed``: ``low`` and ``high`` given explicitly (e.g. 0 and 255 for 8-bit images).
    """

    MINMAX = "minmax"
    PERCENTILE = "percentile"
    CT_WINDOW = "ct_window"
    FIXED = "fixed"


def sigma_from_255(sigma255):
    """Convert a noise level on the 0-255 scale of an 8-bit image (σ = 15, 25, 50) to the normalized [0, 1] scale.

    Args:
        sigma255: a number (returned as a float), or an array or tensor of levels (returned as the same type).
    """
    if hasattr(sigma255, "shape"):
        return sigma255 / 255.0
    return float(sigma255) / 255.0


@dataclass(frozen=True)
class NoiseSD:
    """A noise level in the image's own units: the standard deviation of the noise in HU for CT (after the rescale
    slope and intercept), in the stored grey values for MR, ultrasound and the rest, e.g. the SD a user measured in
    a flat region of the noisy image. For MR magnitude, the per-channel sigma of the Gaussian noise.

    Given as ``sigma`` to :class:`~meddenoiselib.inference.Denoiser`, it is converted to the normalized scale of
    each intensity scaling the Denoiser chooses (``value / scaling.scale``), so the caller needs to know nothing of
    that scaling; a bare float ``sigma`` is on the normalized scale already.

    Attributes:
        value: the standard deviation, > 0, in the image's units.
    """

    value: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.value) and self.value > 0):
            raise ValueError(f"a noise SD must be a positive number in the image's units, got {self.value!r}")

    def normalized(self, scaling: IntensityScaling) -> float:
        """The same level on ``scaling``'s normalized [0, 1] scale."""
        return float(self.value) / scaling.scale


@dataclass(frozen=True)
class IntensityScaling:
    """An affine map ``normalized = (value - low) / (high - low)`` and its inverse.

    The forward map never clips: values beyond ``low``/``high`` (noise tails, metal) come out below 0 or above 1
    and survive the round trip. Only :meth:`invert` to an integer dtype rounds and clips, to that dtype's range.

    Attributes:
        low: the value mapped to 0, in original units.
        high: the value mapped to 1, in original units (``high > low``).
        dtype: numpy dtype name of the original data, restored by :meth:`invert`.
        mode: the :class:`ScalingMode` value that produced ``low``/``high``.
    """

    low: float
    high: float
    dtype: str = "float32"
    mode: str = ScalingMode.MINMAX.value

    def __post_init__(self) -> None:
        if not np.isfinite(self.low) or not np.isfinite(self.high):
            raise ValueError(f"`low`/`high` must be finite, got {self.low}, {self.high}.")
        if self.high <= self.low:
            raise ValueError(f"`high` must exceed `low`, got low={self.low}, high={self.high}.")

    @property
    def scale(self) -> float:
        """Original units per normalized unit (``high - low``)."""
        return float(self.high - self.low)

    def _float32_is_exact(self, dtype: np.dtype) -> bool:
        """float32 arithmetic keeps the round trip within half an integer step for 8/16-bit data and float32."""
        return dtype.itemsize <= 2 or dtype == np.float32

    def apply(self, data: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Map original values to the normalized range; returns float32 (numpy or torch, like the input).

        8/16-bit and float32 data are computed in float32 in place (no float64 copy of a large volume).
        """
        if isinstance(data, torch.Tensor):
            return ((data.double() - self.low) / self.scale).float()
        data = np.asarray(data)
        if self._float32_is_exact(data.dtype):
            out = data.astype(np.float32)  # a new array, so the in-place steps never touch the input
            out -= np.float32(self.low)
            out *= np.float32(1.0 / self.scale)
            return out
        return ((data.astype(np.float64) - self.low) / self.scale).astype(np.float32)

    def invert(self, data: np.ndarray | torch.Tensor, dtype: str | None = None) -> np.ndarray:
        """Map normalized values back to original units and dtype.

        Integer dtypes are rounded to the nearest integer and clipped to the dtype's range; float dtypes are
        returned unclipped.

        Args:
            data: normalized values (any shape).
            dtype: target dtype name. Defaults to the original ``self.dtype``.
        """
        if isinstance(data, torch.Tensor):
            data = data.detach().cpu().numpy()
        target = np.dtype(dtype or self.dtype)
        working = np.float32 if self._float32_is_exact(target) else np.float64
        values = np.asarray(data, dtype=working) * working(self.scale)
        values += working(self.low)
        if target.kind in "iu":
            info = np.iinfo(target)
            np.rint(values, out=values)
            np.clip(values, info.min, info.max, out=values)
            return values.astype(target)
        if target.kind == "b":
            return values >= 0.5
        return values.astype(target, copy=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (for metadata and the MONAI bundle)."""
        return asdict(self)

    @staticmethod
    def from_dict(values: dict[str, Any]) -> IntensityScaling:
        """Inverse of :meth:`to_dict`."""
        return IntensityScaling(
            low=float(values["low"]),
            high=float(values["high"]),
            dtype=str(values.get("dtype", "float32")),
            mode=str(values.get("mode", "minmax")),
        )


def fit_scaling(
    data: np.ndarray | torch.Tensor,
    mode: ScalingMode | str = ScalingMode.PERCENTILE,
    lower: float = 0.5,
    upper: float = 99.5,
    center: float = 40.0,
    width: float = 400.0,
    low: float | None = None,
    high: float | None = None,
) -> IntensityScaling:
    """Choose the scaling for an image.

    Args:
        data: the image in original units (any shape).
        mode: a :class:`ScalingMode` or its string value. Defaults to ``"percentile"``.
        lower: lower percentile for ``percentile`` mode. Defaults to 0.5.
        upper: upper percentile for ``percentile`` mode. Defaults to 99.5.
        center: CT window centre in HU for ``ct_window`` mode. Defaults to 40.
        width: CT window width in HU for ``ct_window`` mode. Defaults to 400.
        low: value mapped to 0 for ``fixed`` mode.
        high: value mapped to 1 for ``fixed`` mode.

    Returns:
        The scaling. A constant image gets ``high = low + 1`` so it still inverts exactly.
    """
    mode = ScalingMode(mode)
    if isinstance(data, torch.Tensor):
        dtype = str(data.dtype).replace("torch.", "")
        values = data.detach().cpu().numpy()
    else:
        values = np.asarray(data)
        dtype = values.dtype.name
    if mode == ScalingMode.FIXED:
        if low is None or high is None:
            raise ValueError("`low` and `high` are required for mode='fixed'.")
        lo, hi = float(low), float(high)
    elif mode == ScalingMode.CT_WINDOW:
        if width <= 0:
            raise ValueError(f"`width` must be positive, got {width}.")
        lo, hi = center - width / 2.0, center + width / 2.0
    elif mode == ScalingMode.MINMAX:
        lo, hi = float(values.min()), float(values.max())
    else:
        if not 0 <= lower < upper <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got {lower}, {upper}.")
        # A strided sample keeps this fast on 500 MB volumes; percentiles of 1e6+ voxels are stable.
        flat = values.reshape(-1)
        step = max(1, flat.size // 2_000_000)
        lo, hi = (float(v) for v in np.percentile(flat[::step], [lower, upper]))
        if hi <= lo:
            lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1.0
    return IntensityScaling(low=lo, high=hi, dtype=dtype, mode=mode.value)
