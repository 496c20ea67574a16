"""MONAI dictionary transforms around :class:`IntensityScaling`, for pipelines such as the MONAI bundle.

``NormalizeIntensityd`` stores the fitted scaling next to the image (``"<key>_scaling"``) so that
``DenormalizeIntensityd`` can restore original units and dtype after the network, exactly as the library's
``Denoiser`` does.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from .intensity import IntensityScaling, ScalingMode, fit_scaling

__all__ = ["NormalizeIntensityd", "DenormalizeIntensityd"]


class NormalizeIntensityd(MapTransform):
    """Scale images to the nominal [0, 1] float32 range and remember how, under ``"<key>_scaling"``.

    Args:
        keys: image keys.
        mode: :class:`ScalingMode` name. Defaults to ``"percentile"``.
        lower: lower percentile. Defaults to 0.5.
        upper: upper percentile. Defaults to 99.5.
        center: CT window centre (``ct_window``). Defaults to 40.
        width: CT window width (``ct_window``). Defaults to 400.
        scaling_postfix: suffix of the key that stores the scaling dict. Defaults to ``"_scaling"``.
        allow_missing_keys: do not raise on missing keys. Defaults to False.
    """

    def __init__(
        self,
        keys: KeysCollection,
        mode: ScalingMode | str = ScalingMode.PERCENTILE,
        lower: float = 0.5,
        upper: float = 99.5,
        center: float = 40.0,
        width: float = 400.0,
        scaling_postfix: str = "_scaling",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.options = {"mode": ScalingMode(mode), "lower": lower, "upper": upper, "center": center, "width": width}
        self.scaling_postfix = scaling_postfix

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            scaling = fit_scaling(image, **self.options)
            if isinstance(image, MetaTensor) and image.meta.get("dtype") is not None:
                # LoadImage records the on-disk dtype; restore that, not the float it may have been cast to.
                scaling = IntensityScaling(scaling.low, scaling.high, str(np.dtype(image.meta["dtype"])), scaling.mode)
            normalized = scaling.apply(image.as_tensor() if isinstance(image, MetaTensor) else torch.as_tensor(image))
            if isinstance(image, MetaTensor):
                normalized = MetaTensor(normalized, meta=image.meta, applied_operations=image.applied_operations)
            d[key] = normalized
            d[f"{key}{self.scaling_postfix}"] = scaling.to_dict()
        return d


class DenormalizeIntensityd(MapTransform):
    """Invert :class:`NormalizeIntensityd`: back to original units and dtype (integers rounded and clipped).

    Args:
        keys: keys of the normalized outputs to restore (e.g. ``"pred"``).
        scaling_key: key holding the scaling dict, e.g. ``"image_scaling"``.
        allow_missing_keys: do not raise on missing keys. Defaults to False.
    """

    def __init__(self, keys: KeysCollection, scaling_key: str, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scaling_key = scaling_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        scaling = IntensityScaling.from_dict(d[self.scaling_key])
        for key in self.key_iterator(d):
            value = d[key]
            restored = torch.from_numpy(np.ascontiguousarray(scaling.invert(value)))
            if isinstance(value, MetaTensor):
                restored = MetaTensor(restored, meta=value.meta, applied_operations=value.applied_operations)
            d[key] = restored
        return d
