"""Training data: images and volumes loaded once, normalized, cached in memory, and sampled as patches with
MONAI transforms (random crops, flips, 90° rotations)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.data import get_track_meta, set_track_meta
from monai.data.utils import get_random_patch, get_valid_patch_size
from monai.transforms import Compose, RandFlip, RandRotate90, RandSpatialCrop

from ..errors import MedDenoiseError
from ..io import Volume, find_inputs, read_volume
from ..transforms.colour import grey_images
from ..transforms.ct_padding import fill_outside_reconstruction, outside_reconstruction
from ..transforms.intensity import IntensityScaling, ScalingMode, fit_scaling
from ..transforms.missing import require_complete
from ..transforms.noise import (
    BODY_THRESHOLD_HU,
    CTScanner,
    ct_noise_projection,
    ct_noise_variance_terms,
    in_plane_pixel_mm,
)

__all__ = ["TrainingImage", "load_training_images", "split_by_file", "PatchSampler", "expand_inputs"]

logger = logging.getLogger(__name__)


@dataclass
class TrainingImage:
    """One loaded input.

    Attributes:
        name: the file or series it came from.
        array: normalized float32 ``(Z, Y, X)`` (``Z == 1`` for 2D images).
        aux: optional per-slice auxiliary maps ``(Z, A, Y, X)`` that travel with the image through cropping and
            augmentation (for ``ct-lowdose`` training: the normalized noise-variance terms, ``A = 2``).
        scaling: the intensity scaling that produced ``array`` (its inverse gives the original units).
        pixel_mm: in-plane pixel spacing in mm.
    """

    name: str
    array: np.ndarray
    aux: np.ndarray | None = None
    scaling: IntensityScaling | None = None
    pixel_mm: float = 1.0


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
    window: tuple[float, float] = (40.0, 400.0),
    ct_scanners: Sequence[CTScanner] = (),
    cache_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> list[TrainingImage]:
    """Read every input once and normalize it with the library's own intensity scaling.

    RGB images become luminance, other multi-channel images one image per channel. Images smaller than
    ``min_size`` in-plane are skipped with a warning.

    Args:
        paths: files, DICOM series folders, folders searched recursively, or pack selections
            (``PACK.npz:RECIPE:SPLIT``, see :mod:`~meddenoiselib.training.pack`).
        scaling_mode: per-image (per-volume) scaling, or ``ct_window`` for the fixed HU map of CT models.
            Defaults to ``"minmax"``.
        min_size: smallest accepted in-plane edge. Defaults to 32.
        window: ``(center, width)`` in HU for ``ct_window``. Defaults to W400/L40.
        ct_scanners: when given, also compute each slice's low-dose CT noise maps for these scanners (``aux``, see
            :func:`ct_training_terms`); every input must then be a CT in HU.
        cache_dir: where computed terms are kept between runs (keyed by file and size). Defaults to None.
        device: where the CT noise maps are computed. Defaults to CPU.
    """
    images = []
    for item, volume in _volumes(paths):
        for suffix, array in grey_images(volume.array, volume.num_components):
            image = _training_image(item, f"{item}{suffix}", volume, array, scaling_mode, min_size, window,
                                    ct_scanners, cache_dir, device)  # fmt: skip
            if image is not None:
                images.append(image)
    if not images:
        raise MedDenoiseError("no usable training images were found")
    return images


def _training_image(
    item: Path,
    name: str,
    volume: Volume,
    array: np.ndarray,
    scaling_mode: ScalingMode | str,
    min_size: int,
    window: tuple[float, float],
    ct_scanners: Sequence[CTScanner],
    cache_dir: str | Path | None,
    device: torch.device | str,
) -> TrainingImage | None:
    """One grey image ``array`` (float32 ``(Z, Y, X)``) of the input ``item``, named ``name``, as
    :func:`load_training_images` makes it; None when it is smaller than ``min_size`` in-plane."""
    if min(array.shape[1:]) < min_size:
        logger.warning("%s: skipped, smaller than %d pixels in-plane", name, min_size)
        return None
    is_window = ScalingMode(scaling_mode) == ScalingMode.CT_WINDOW
    outside = outside_reconstruction(array) if is_window or ct_scanners else None
    if outside is not None:  # CT padding: what the Denoiser shows a network in its place, not a -3024 HU step
        array = fill_outside_reconstruction(array, outside)
    options = {"center": window[0], "width": window[1]} if is_window else {}
    scaling = fit_scaling(array, scaling_mode, **options)
    aux = _cached_ct_terms(item, volume, array, cache_dir, tuple(ct_scanners), device) if ct_scanners else None
    return TrainingImage(name, np.ascontiguousarray(scaling.apply(array)), aux, scaling, in_plane_pixel_mm(volume))


def _volumes(paths: Sequence[str | Path]):
    """``(name, Volume)`` for every input: files and folders through the readers, pack selections from the pack."""
    from .pack import is_pack_selection, pack_volumes

    files = [p for p in paths if not is_pack_selection(p)]
    for path in paths:
        if is_pack_selection(path):
            yield from pack_volumes(str(path))
    for item in expand_inputs(files) if files else []:
        volume = read_volume(item)
        require_complete(volume.array, str(item), "a training image")
        yield item, volume


def ct_training_terms(
    hu: np.ndarray,
    pixel_mm: float,
    scanners: Sequence[CTScanner] = (CTScanner(),),
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Per-slice low-dose CT noise maps for training, normalized to the slice's body noise level.

    Returns ``(Z, 3, Y, X)`` float32 per slice:

    - ``q`` and ``r``: the quantum and electronic variance terms of :func:`ct_noise_variance_terms` divided by
      ``s²`` and ``s⁴``, where ``s`` is the median quantum noise std over the body at full dose, so that noise of
      body level σ HU with electronic noise ``e`` counts has variance ``σ²·q + e²·σ⁴·r`` (the fast model);
    - ``n``: one projection-domain noise realization (Poisson + electronic, FBP) divided by its own body std, so
      ``σ·n`` is scanner noise of body level σ with its streaks. Slice ``k`` uses ``scanners[k % len(scanners)]``.

    A slice without body (nothing above the body threshold) gets stationary maps (``q = 1``, ``r = 0``, ``n``
    white Gaussian).
    """
    terms = np.empty((hu.shape[0], 3, *hu.shape[1:]), dtype=np.float32)
    generator = torch.Generator(device).manual_seed(seed)
    for k in range(hu.shape[0]):
        scanner = scanners[k % len(scanners)]
        slice_hu = torch.from_numpy(np.ascontiguousarray(hu[k]))
        variance = ct_noise_variance_terms(slice_hu, pixel_mm, scanner, device=device).numpy()
        body = hu[k] > BODY_THRESHOLD_HU
        if body.sum() < 64:
            terms[k, 0], terms[k, 1] = 1.0, 0.0
            terms[k, 2] = torch.randn(hu.shape[1:], generator=generator, device=device).cpu().numpy()
            continue
        level = float(np.median(variance[0][body]))
        terms[k, 0] = variance[0] / level
        terms[k, 1] = variance[1] / level**2
        realization = ct_noise_projection(slice_hu, pixel_mm, 1.0, scanner, generator, device=device).numpy()
        terms[k, 2] = realization / float(np.std(realization[body]))
    return terms


def _cached_ct_terms(
    item: Path,
    volume: Volume,
    hu: np.ndarray,
    cache_dir: str | Path | None,
    scanners: Sequence[CTScanner],
    device: torch.device | str = "cpu",
) -> np.ndarray:
    modality = volume.metadata.get("0008|0060", "").strip().upper()
    if (modality and modality != "CT") or (not modality and float(hu.min()) > -900):
        raise MedDenoiseError(
            f"{item}: ct-lowdose training needs CT images in HU (Modality {modality or 'unknown'}, "
            f"minimum {float(hu.min()):.0f})"
        )
    path = None
    if cache_dir is not None:
        import hashlib

        identity = f"{Path(item).resolve()}|{hu.shape}|{float(hu.sum()):.6e}|{scanners}"
        key = hashlib.sha1(identity.encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"ct_terms_{key}.npy"
        if path.is_file():
            return np.load(path)
    logger.info("%s: computing CT noise maps for %d slices", item, hu.shape[0])
    terms = ct_training_terms(hu, in_plane_pixel_mm(volume), scanners, device=device)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, terms)
    return terms


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
    "stack" is the one slice repeated: the case a burst model meets when given a lone slice). With several
    ``slice_strides``, each stack takes every ``s``-th slice (``s`` drawn uniformly from them), so a series
    reconstructed at 2 mm also shows the network neighbours as far apart as a 4-6 mm series has them, where
    anatomy near bone changes from one slice to the next and the neighbours must be trusted less.

    Args:
        images: cached training images.
        patch: patch edge in pixels.
        spatial_dims: 2 or 3.
        burst: adjacent slices per 2D sample (channels). Defaults to 1.
        seed: seeds every MONAI transform and the image choice. Defaults to 0.
        min_std: flat-patch threshold. Defaults to 0.01.
        slice_strides: slice steps between the frames of a burst stack, one drawn per stack. Defaults to (1,).
    """

    def __init__(
        self,
        images: Sequence[TrainingImage],
        patch: int,
        spatial_dims: int = 2,
        burst: int = 1,
        seed: int = 0,
        min_std: float = 0.01,
        slice_strides: Sequence[int] = (1,),
    ) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims}.")
        self.slice_strides = tuple(int(s) for s in slice_strides)
        if not self.slice_strides or min(self.slice_strides) < 1:
            raise ValueError(f"`slice_strides` must be positive integers, got {tuple(slice_strides)!r}.")
        self.patch = int(patch)
        self.spatial_dims = spatial_dims
        self.burst = int(burst)
        self.min_std = float(min_std)
        usable = [
            im
            for im in images
            if min(im.array.shape[1:]) >= patch and (spatial_dims == 2 or im.array.shape[0] >= patch)
        ]
        if not usable:
            raise MedDenoiseError(
                f"no training image is large enough for {patch}-pixel {'cubes' if spatial_dims == 3 else 'patches'}"
            )
        self.images = usable
        with_aux = [im.aux is not None for im in usable]
        if any(with_aux) and not all(with_aux):
            raise ValueError("either every training image carries aux maps or none does.")
        if any(with_aux) and spatial_dims == 3:
            raise ValueError("aux maps are supported for 2D sampling only.")
        self.aux_channels = int(usable[0].aux.shape[1]) if usable[0].aux is not None else 0
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

    def _window(self, size: Sequence[int]) -> tuple[slice, ...]:
        """The crop of the next patch in an image of spatial ``size``, drawn as ``RandSpatialCrop`` draws it (its
        own random state), so that only the patch is copied out of the image, not the whole stack of slices and
        maps (12 full slices per patch for a 3-slice burst with 3 CT noise maps each: ~0.2 s per batch of 32)."""
        crop = self.augment.transforms[0]
        size = tuple(int(s) for s in size)
        return get_random_patch(size, get_valid_patch_size(size, [self.patch] * len(size)), crop.R)

    def _draw(self) -> np.ndarray:
        """The cropped frames ``(C, *patch)``, followed by their aux maps ``(C·A, *patch)`` when the images carry
        them."""
        pool = self.volumes if self.volumes and self.random.random_sample() < 0.5 else self.images
        chosen = pool[self.random.randint(len(pool))]
        image = chosen.array
        if self.spatial_dims == 3:
            return image[self._window(image.shape)][np.newaxis]
        k = self.random.randint(image.shape[0])
        half = self.burst // 2
        strides = self.slice_strides
        # a single stride draws nothing, so a seeded run without strides samples as it did before they existed
        stride = strides[0] if len(strides) == 1 else strides[self.random.randint(len(strides))]
        index = np.clip(k + stride * np.arange(-half, half + 1), 0, image.shape[0] - 1)
        window = self._window(image.shape[1:])
        frames = image[(index, *window)]
        if self.aux_channels:
            maps = chosen.aux[(index, slice(None), *window)]
            return np.concatenate([frames, maps.reshape(-1, *frames.shape[1:])], axis=0)
        return frames

    def sample(self) -> torch.Tensor:
        """One patch, ``(C, *patch)`` with ``C = burst`` (2D) or 1 (3D), plus ``burst·A`` aux channels after
        them when the images carry aux maps (cropped, flipped and rotated together with the frames)."""
        frames = 1 if self.spatial_dims == 3 else self.burst
        flips_and_rotations = self.augment.transforms[1:]
        for _ in range(8):
            patch = self._draw()
            for transform in flips_and_rotations:
                patch = transform(patch)
            patch = torch.as_tensor(np.asarray(patch))
            if float(patch[:frames].std()) >= self.min_std:
                break
        return patch.float().contiguous()

    def batch(self, size: int) -> torch.Tensor:
        """A batch ``(size, C, *patch)`` of clean patches (frames, then aux channels if any)."""
        # the flips and rotations as plain tensors: MONAI's metadata tracking (MetaTensor, transform history) took
        # more than half of the sampling time and nothing here reads it; the same patches either way
        tracking = get_track_meta()
        set_track_meta(False)
        try:
            return torch.stack([self.sample() for _ in range(size)])
        finally:
            set_track_meta(tracking)

    def state_dict(self) -> dict:
        """The random states (as tensors and builtins, so checkpoints load with ``weights_only=True``)."""
        return {
            "choice": _pack_state(self.random.get_state()),
            "augment": [_pack_state(t.R.get_state()) for t in self.augment.transforms],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.random.set_state(_unpack_state(state["choice"]))
        for transform, packed in zip(self.augment.transforms, state["augment"], strict=True):
            transform.R.set_state(_unpack_state(packed))


def _pack_state(state: tuple) -> dict:
    name, keys, pos, has_gauss, cached = state
    return {
        "name": name,
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _unpack_state(packed: dict) -> tuple:
    return (
        packed["name"],
        packed["keys"].numpy().astype(np.uint32),
        packed["pos"],
        packed["has_gauss"],
        packed["cached"],
    )
