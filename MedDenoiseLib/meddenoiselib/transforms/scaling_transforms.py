"""MONAI transforms around :class:`IntensityScaling`, for pipelines such as the MONAI bundle.

``ScaleToUnit`` maps an image in its own units (HU, scanner values, 8-bit grey levels) to the nominal [0, 1] range the
networks were trained on and returns the :class:`IntensityScaling` it used; ``RestoreUnits`` applies its exact
inverse. The dictionary forms keep the scaling next to the image (``"<key>_scaling"``), as the library's ``Denoiser``
keeps it between normalization and the inverse. (Named so as not to shadow MONAI's ``NormalizeIntensity``, which
standardizes to zero mean and unit variance.)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from .intensity import IntensityScaling, ScalingMode, fit_scaling

__all__ = ["ScaleToUnit", "RestoreUnits", "ScaleToUnitd", "RestoreUnitsd"]


class ScaleToUnit(Transform):
    """Fit a scaling to an image and apply it: ``(image in its units) -> (float32 in nominal [0, 1], scaling)``.

    Nothing is clipped: values beyond the fitted range (noise tails, metal, outside a CT window) come out below 0 or
    above 1 and survive :class:`RestoreUnits`.

    Args:
        mode: :class:`ScalingMode` name: ``percentile``, ``minmax``, ``ct_window`` or ``fixed``. Defaults to
            ``"percentile"``.
        lower, upper: percentiles for ``percentile``. Defaults to 0.5 and 99.5.
        center, width: CT window in HU for ``ct_window``. Defaults to 40 and 400.
    """

    def __init__(
        self,
        mode: ScalingMode | str = ScalingMode.PERCENTILE,
        lower: float = 0.5,
        upper: float = 99.5,
        center: float = 40.0,
        width: float = 400.0,
    ) -> None:
        self.options = {"mode": ScalingMode(mode), "lower": lower, "upper": upper, "center": center, "width": width}

    def __call__(self, image: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, IntensityScaling]:
        """Returns the scaled image (a MetaTensor keeps its metadata) and the scaling that inverts it."""
        scaling = fit_scaling(image, **self.options)
        if isinstance(image, MetaTensor) and image.meta.get("dtype") is not None:
            # LoadImage records the on-disk dtype; restore that, not the float it may have been cast to.
            scaling = IntensityScaling(scaling.low, scaling.high, str(np.dtype(image.meta["dtype"])), scaling.mode)
        normalized = scaling.apply(image.as_tensor() if isinstance(image, MetaTensor) else torch.as_tensor(image))
        if isinstance(image, MetaTensor):
            normalized = MetaTensor(normalized, meta=image.meta, applied_operations=image.applied_operations)
        return normalized, scaling


class RestoreUnits(Transform):
    """The inverse of :class:`ScaleToUnit`: back to the original units and dtype (integers rounded and clipped)."""

    def __call__(self, image: torch.Tensor | np.ndarray, scaling: IntensityScaling) -> torch.Tensor:
        restored = torch.from_numpy(np.ascontiguousarray(scaling.invert(image)))
        if isinstance(image, MetaTensor):
            restored = MetaTensor(restored, meta=image.meta, applied_operations=image.applied_operations)
        return restored


class ScaleToUnitd(MapTransform):
    """Dictionary form of :class:`ScaleToUnit`; the scaling is stored as a dict under ``"<key>_scaling"``.

    Args:
        keys: image keys.
        scaling_postfix: suffix of the key that stores the scaling. Defaults to ``"_scaling"``.
        allow_missing_keys: do not raise on missing keys. Defaults to False.
        **options: :class:`ScaleToUnit`'s ``mode``, ``lower``, ``upper``, ``center``, ``width``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        scaling_postfix: str = "_scaling",
        allow_missing_keys: bool = False,
        **options,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scale = ScaleToUnit(**options)
        self.scaling_postfix = scaling_postfix

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key], scaling = self.scale(d[key])
            d[f"{key}{self.scaling_postfix}"] = scaling.to_dict()
        return d


class RestoreUnitsd(MapTransform):
    """Dictionary form of :class:`RestoreUnits`.

    Args:
        keys: keys of the scaled outputs to restore (e.g. ``"pred"``).
        scaling_key: key holding the scaling dict, e.g. ``"image_scaling"``.
        allow_missing_keys: do not raise on missing keys. Defaults to False.
    """

    def __init__(self, keys: KeysCollection, scaling_key: str, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scaling_key = scaling_key
        self.restore = RestoreUnits()

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        scaling = IntensityScaling.from_dict(d[self.scaling_key])
        for key in self.key_iterator(d):
            d[key] = self.restore(d[key], scaling)
        return d
