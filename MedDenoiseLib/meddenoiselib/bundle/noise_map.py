"""The bundle's noise map: MONAI's dictionary-transform interface over the library's residual noise map.

``save_noise_map: true`` in ``configs/inference.json`` adds :class:`NoiseMapd` and a second ``SaveImaged`` to the
postprocessing, so each input gets ``<name>_noise_map.nii.gz`` next to its denoised output: the local standard
deviation of what was removed (input − denoised), in the input's units (HU for CT), on the input's grid: the same map
as the CLI's ``--noise-map``, made by the same functions (:func:`meddenoiselib.evaluation.residual_volume`,
:func:`meddenoiselib.evaluation.noise_map_volume`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform

from ..noise_map import DEFAULT_WINDOW_PX
from .inferer import image_from_item, item_from_image

__all__ = ["NoiseMapd"]


class NoiseMapd(MapTransform):
    """Add ``output_key``: the noise map of ``pred`` (the denoised volume) against ``image`` (the input).

    Args:
        image_key: the input volume, ``(C, I, J, K)`` in its file's units (what ``LoadImaged`` gave the evaluator).
        pred_key: the denoised volume, same shape and units.
        output_key: where the map goes: float32 ``(C, I, J, K)``, >= 0, the input's units, with ``pred``'s metadata
            (affine, file name), so ``SaveImaged`` writes it on the input's grid. Defaults to ``"noise_map"``.
        window_px: in-plane Gaussian window of the local statistics, pixels. Defaults to
            :data:`~meddenoiselib.noise_map.DEFAULT_WINDOW_PX`.

    The map is computed per slice plane ``(I, J)`` at each ``K`` (the library's ``(y, x)`` at each ``z``), channels
    separately, as the CLI computes it.
    """

    def __init__(
        self,
        image_key: str = "image",
        pred_key: str = "pred",
        output_key: str = "noise_map",
        window_px: float = DEFAULT_WINDOW_PX,
    ) -> None:
        super().__init__([image_key, pred_key])
        self.image_key, self.pred_key, self.output_key = image_key, pred_key, output_key
        self.window_px = float(window_px)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        from ..evaluation import noise_map_volume, residual_volume

        d = dict(data)
        image, pred = d[self.image_key], d[self.pred_key]
        if tuple(image.shape) != tuple(pred.shape) or image.ndim != 4:
            raise ValueError(
                f"NoiseMapd needs '{self.image_key}' and '{self.pred_key}' of one channel-first 3D shape (C, I, J, K), "
                f"got {tuple(image.shape)} and {tuple(pred.shape)}"
            )
        removed = residual_volume(image_from_item(image), image_from_item(pred))
        result = item_from_image(noise_map_volume(removed, self.window_px))
        d[self.output_key] = MetaTensor(result, meta=dict(pred.meta)) if isinstance(pred, MetaTensor) else result
        return d
