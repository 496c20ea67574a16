"""Training data: images and volumes loaded once, normalized, cached in memory, and sampled as patches with
MONAI transforms (random crops, flips, 90° rotations)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.transforms import Compose, RandFlip, RandRotate90, RandSpatialCrop

from ..errors import MedDenoiseError
from ..io import find_inputs, read_volume
from ..transforms.intensity import ScalingMode, fit_scaling

__all__ = ["TrainingImage", "load_training_images", "split_by_file", "PatchSampler", "expand_inputs"]

logger = logging.getLogger(__name__)


@dataclass
class TrainingImage:
    """One loaded input: a normalized float32 ``(Z, Y, X)`` array (``Z == 1`` for 2D images) and its name."""

    name: str
    array: np.ndarray


def expand_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Files and DICOM series folders named directly or found recursively under folders."""
    items: list[Path] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise MedDenoiseError(f"{path}: no such file or folder")
        if path.is_dir():
            found = find_inputs(path, recursive=True)
            if not found:
                raise MedDenoiseError(f"{path}: no readable images found in this folder")
            items.extend(found)
        else:
            items.append(path)
    return items


def load_training_images(
    paths: Sequence[str | Path],
    scaling_mode: ScalingMode | str = ScalingMode.MINMAX,
    min_size: int = 32,
) -> list[TrainingImage]:
    """Read every input once and normalize it to [0, 1] with the library's own intensity scaling.

    RGB images become luminance. Images smaller than ``min_size`` in-plane are skipped with a warning.

    Args:
        paths: files, DICOM series folders, or folders searched recursively.
        scaling_mode: per-image (per-volume) scaling. Defaults to ``"minmax"``.
        min_size: smallest accepted in-plane edge. Defaults to 32.
    """
    images = []
    for item in expand_inputs(paths):
        volume = read_volume(item)
        array = volume.array.astype(np.float32)
        if volume.num_components > 1:
            array = array[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if min(array.shape[1:]) < min_size:
            logger.warning("%s: skipped, smaller than %d pixels in-plane", item, min_size)
            continue
        normalized = fit_scaling(array, scaling_mode).apply(array)
        images.append(TrainingImage(str(item), np.ascontiguousarray(normalized)))
    if not images:
        raise MedDenoiseError("no usable training images were found")
    return images


def split_by_file(
    images: list[TrainingImage], val_fraction: float, seed: int
) -> tuple[list[TrainingImage], list[TrainingImage]]:
    """Hold out whole files (never patches of a training file) for validation.

    Returns ``(train, val)``; ``val`` is empty when ``val_fraction`` is 0, and at least one file is kept for
    training.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"`val_fraction` must be in [0, 1), got {val_fraction}.")
    count = int(round(len(images) * val_fraction))
    if val_fraction > 0:
        count = max(count, 1)
    count = min(count, len(images) - 1)
    order = np.random.RandomState(seed).permutation(len(images))
    val_ids = set(order[:count].tolist())
    return [im for i, im in enumerate(images) if i not in val_ids], [im for i, im in enumerate(images) if i in val_ids]


class PatchSampler:
    """Draws batches of training patches from cached images.

    2D mode draws a slice (or, with ``burst > 1``, a stack of adjacent slices as channels) from a random image,
    then a random ``patch`` crop, flips and 90° rotations (MONAI ``RandSpatialCrop``, ``RandFlip``,
    ``RandRotate90``). 3D mode draws ``patch³`` blocks from volumes with at least ``patch`` slices. Each input file
    is drawn with equal probability, whatever its number of slices, so large series do not dominate; nearly
    flat patches (standard deviation below ``min_std``) are redrawn, up to a few times.

    Burst sampling draws half of its stacks from images with at least ``burst`` slices, so the network sees real
    neighbours often enough to learn to use them even when most training files are single 2D images (whose
    "stack" is the one slice repeated: the case a burst model meets when given a lone slice).

    Args:
        images: cached training images.
        patch: patch edge in pixels.
        spatial_dims: 2 or 3.
        burst: adjacent slices per 2D sample (channels). Defaults to 1.
        seed: seeds every MONAI transform and the image choice. Defaults to 0.
        min_std: flat-patch threshold. Defaults to 0.01.
    """

    def __init__(
        self,
        images: Sequence[TrainingImage],
        patch: int,
        spatial_dims: int = 2,
        burst: int = 1,
        seed: int = 0,
        min_std: float = 0.01,
    ) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims}.")
        self.patch = int(patch)
        self.spatial_dims = spatial_dims
        self.burst = int(burst)
        self.min_std = float(min_std)
        usable = [
            im for im in images
            if min(im.array.shape[1:]) >= patch and (spatial_dims == 2 or im.array.shape[0] >= patch)
        ]
        if not usable:
            raise MedDenoiseError(
                f"no training image is large enough for {patch}-pixel {'cubes' if spatial_dims == 3 else 'patches'}"
            )
        self.images = usable
        self.volumes = [im for im in usable if im.array.shape[0] >= self.burst] if self.burst > 1 else []
        self.random = np.random.RandomState(seed)
        axes = (0, 1) if spatial_dims == 2 else (0, 1, 2)
        size = [patch] * spatial_dims
        self.augment = Compose(
            [
                RandSpatialCrop(size, random_size=False),
                RandFlip(prob=0.5, spatial_axis=axes[-1]),
                RandFlip(prob=0.5, spatial_axis=axes[-2]),
                RandRotate90(prob=0.75, max_k=3, spatial_axes=(axes[-2], axes[-1])),
            ]
        )
        self.augment.set_random_state(seed=seed + 1)

    def _draw(self) -> np.ndarray:
        pool = self.volumes if self.volumes and self.random.random_sample() < 0.5 else self.images
        image = pool[self.random.randint(len(pool))].array
        if self.spatial_dims == 3:
            return image[np.newaxis]
        k = self.random.randint(image.shape[0])
        if self.burst == 1:
            return image[k : k + 1]
        half = self.burst // 2
        index = np.clip(np.arange(k - half, k + half + 1), 0, image.shape[0] - 1)
        return image[index]

    def sample(self) -> torch.Tensor:
        """One patch, ``(C, *patch)`` with ``C = burst`` (2D) or 1 (3D)."""
        for _ in range(8):
            patch = torch.as_tensor(np.asarray(self.augment(self._draw())))
            if float(patch.std()) >= self.min_std:
                break
        return patch.float().contiguous()

    def batch(self, size: int) -> torch.Tensor:
        """A batch ``(size, C, *patch)`` of clean patches."""
        return torch.stack([self.sample() for _ in range(size)])

    def state_dict(self) -> dict:
        """The random states (as tensors and builtins, so checkpoints load with ``weights_only=True``)."""
        return {"choice": _pack_state(self.random.get_state()), "augment": [
            _pack_state(t.R.get_state()) for t in self.augment.transforms
        ]}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.random.set_state(_unpack_state(state["choice"]))
        for transform, packed in zip(self.augment.transforms, state["augment"]):
            transform.R.set_state(_unpack_state(packed))


def _pack_state(state: tuple) -> dict:
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _unpack_state(packed: dict) -> tuple:
    return (packed["name"], packed["keys"].numpy().astype(np.uint32), packed["pos"], packed["has_gauss"],
            packed["cached"])
