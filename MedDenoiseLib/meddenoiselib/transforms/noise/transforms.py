"""MONAI-style noise transforms (array and dictionary forms) over the one noise implementation.

``RandNoise(spec)`` draws a torch seed from its ``self.R`` in ``randomize()`` (seed it with
``set_random_state``), then calls :func:`~meddenoiselib.transforms.noise.apply.add_noise`, the same code the
training batches use (:class:`~meddenoiselib.transforms.noise.batch.BatchNoise`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils.type_conversion import convert_to_dst_type

from ..intensity import IntensityScaling
from .apply import add_noise
from .spec import NoiseKind, NoiseSpec, parse_noise_spec

__all__ = ["RandNoise", "RandNoised", "make_noise_transform"]


class RandNoise(RandomizableTransform):
    """Add seeded noise of one model and level to a channel-first image.

    Args:
        spec: a :class:`NoiseSpec` or its text (``"gaussian:25"``, ``"rician:3%"``, ``"ct-lowdose:0.25"``, ...).
        scaling: how the input's values relate to the normalized scale that intensity-relative levels refer to:
            the input is ``scaling.apply(original)``. None: the input is already normalized ([0, 1]), or in HU for
            ``ct-lowdose``.
        pixel_mm: in-plane pixel spacing in mm, required by ``ct-lowdose``.
        prob: probability of applying the noise. Defaults to 1.0.

    Input: ``(C, *spatial)`` numpy array or tensor; ``ct-lowdose`` treats every 2D plane of the last two axes as
    one slice. Output: float32, same type and shape.
    """

    def __init__(
        self,
        spec: NoiseSpec | str,
        scaling: IntensityScaling | None = None,
        pixel_mm: float | None = None,
        prob: float = 1.0,
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        self.spec = parse_noise_spec(spec) if isinstance(spec, str) else spec
        if self.spec.kind == NoiseKind.CT_LOWDOSE and pixel_mm is None:
            raise ValueError("ct-lowdose noise needs `pixel_mm`, the in-plane pixel spacing in mm.")
        self.scaling = scaling
        self.pixel_mm = pixel_mm
        self.generator_seed = 0

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self.generator_seed = int(self.R.randint(0, 2**31 - 1))

    def __call__(self, img: np.ndarray | torch.Tensor, randomize: bool = True) -> np.ndarray | torch.Tensor:
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        values = img.detach().cpu() if isinstance(img, torch.Tensor) else torch.from_numpy(np.asarray(img))
        generator = torch.Generator().manual_seed(self.generator_seed)
        noisy = add_noise(values.float()[None], self.spec, self.scaling, self.pixel_mm, generator)[0]
        return convert_to_dst_type(noisy, img, dtype=torch.float32 if isinstance(img, torch.Tensor) else np.float32)[0]


class RandNoised(RandomizableTransform, MapTransform):
    """Dictionary form of :class:`RandNoise`; each key gets its own independent draw.

    Args:
        keys: keys of the images to corrupt.
        spec, scaling, pixel_mm: as for :class:`RandNoise`.
        prob: probability of applying the noise (to all keys together). Defaults to 1.0.
        allow_missing_keys: do not raise on missing keys. Defaults to False.
    """

    def __init__(
        self,
        keys: KeysCollection,
        spec: NoiseSpec | str,
        scaling: IntensityScaling | None = None,
        pixel_mm: float | None = None,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.transform = RandNoise(spec, scaling, pixel_mm, prob=1.0)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandNoised:
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, np.ndarray | torch.Tensor]) -> dict[Hashable, np.ndarray | torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], randomize=True)
        return d


def make_noise_transform(spec: NoiseSpec | str | NoiseKind, level: float | None = None, **kwargs) -> RandNoise:
    """A :class:`RandNoise` from a spec, its text, or a kind plus a level in that kind's default unit.

    ``make_noise_transform("gaussian", 25)`` is ``RandNoise("gaussian:25")``.
    """
    if isinstance(spec, NoiseSpec):
        return RandNoise(spec, **kwargs)
    text = spec.value if isinstance(spec, NoiseKind) else str(spec)
    if level is not None:
        text = f"{text}:{level:g}"
    return RandNoise(parse_noise_spec(text), **kwargs)
