"""The one transform the bundle adds to MONAI's and the library's: adjacent slices as channels (burst models)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["AdjacentSlicesd"]


class AdjacentSlicesd(MapTransform):
    """Stack each slice's neighbours as channels, for 2D burst models (e.g. ``kpn-burst3``) run by ``SliceInferer``.

    A channel-first volume ``(1, H, W, D)`` becomes ``(burst, H, W, D)`` where channel ``c`` holds the volume shifted
    by ``c - burst // 2`` slices along ``slice_dim``; the volume's first and last slices repeat at its ends. Taking
    slice ``k`` of the result along ``slice_dim`` therefore gives slices ``k - burst//2 … k + burst//2`` in order,
    with the reference slice in the centre, exactly the input layout the library's ``Denoiser`` feeds burst models.
    With ``burst == 1`` the data pass through unchanged.

    Args:
        keys: image keys.
        burst: odd number of adjacent slices. Defaults to 1.
        slice_dim: spatial axis of the slices (0, 1 or 2 of ``H, W, D``), the same as ``SliceInferer.spatial_dim``.
            Defaults to 2.
        allow_missing_keys: do not raise on missing keys. Defaults to False.

    Raises:
        ValueError: an even or non-positive ``burst``, a ``slice_dim`` outside 0-2, or an input that is not a
            single-channel 3D volume.
    """

    def __init__(self, keys: KeysCollection, burst: int = 1, slice_dim: int = 2, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if isinstance(burst, bool) or int(burst) != burst or burst < 1 or burst % 2 == 0:
            raise ValueError(f"`burst` must be a positive odd integer, got {burst!r}.")
        if slice_dim not in (0, 1, 2):
            raise ValueError(f"`slice_dim` must be 0, 1 or 2, got {slice_dim!r}.")
        self.burst = int(burst)
        self.slice_dim = int(slice_dim)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.burst == 1:
            return d
        half = self.burst // 2
        axis = self.slice_dim + 1
        for key in self.key_iterator(d):
            image = d[key]
            if image.ndim != 4 or image.shape[0] != 1:
                raise ValueError(f"`{key}` must be a single-channel 3D volume (1, H, W, D), got {tuple(image.shape)}.")
            count = image.shape[axis]
            index = torch.arange(count, device=image.device)
            offsets = range(-half, half + 1)
            frames = [image.index_select(axis, (index + offset).clamp(0, count - 1)) for offset in offsets]
            d[key] = torch.cat(frames, dim=0)
        return d
