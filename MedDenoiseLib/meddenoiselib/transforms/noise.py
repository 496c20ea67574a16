"""Noise simulation as MONAI-style array transforms, plus a batched torch sampler for training.

Units: every noise level is on the normalized [0, 1] scale of the image. For the 0-255 convention of the
seed papers (σ = 15, 25, 50) use :func:`~meddenoiselib.transforms.intensity.sigma_from_255`.

Gaussian and Rician noise reuse MONAI's ``RandGaussianNoise`` and ``RandRicianNoise`` (see
:func:`make_noise_transform`); Poisson(-Gaussian) and speckle are defined here in the same style: randomness
only from ``self.R`` (seed it with ``set_random_state``), ``randomize()`` then ``__call__(img, randomize=True)``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandGaussianNoise, RandomizableTransform, RandRicianNoise
from monai.utils.type_conversion import convert_to_dst_type

__all__ = [
    "NoiseKind",
    "RandPoissonNoise",
    "RandSpeckleNoise",
    "RandPoissonNoised",
    "RandSpeckleNoised",
    "make_noise_transform",
    "parse_noise_spec",
    "BatchNoise",
]


class NoiseKind(str, enum.Enum):
    """Noise models: additive white Gaussian, Rician (magnitude MR), Poisson(-Gaussian) (low-dose CT, X-ray,
    microscopy) and multiplicative speckle (ultrasound)."""

    GAUSSIAN = "gaussian"
    RICIAN = "rician"
    POISSON = "poisson"
    SPECKLE = "speckle"


class RandPoissonNoise(RandomizableTransform):
    """Poisson (shot) noise with optional additive Gaussian read noise.

    ``noisy = Poisson(max(x, 0) * peak) / peak + N(0, gaussian_std²)``: at a given ``peak`` (photon count that
    maps to intensity 1), the noise standard deviation at intensity ``x`` is ``sqrt(x / peak)``. Lower ``peak``
    means stronger noise (peak 30 is very low dose, peak 1000 mild).

    Args:
        peak: photon count at intensity 1.0; must be positive. Defaults to 100.
        gaussian_std: standard deviation of the additive Gaussian part, normalized units. Defaults to 0.
        prob: probability of applying the noise. Defaults to 1.0.
    """

    def __init__(self, peak: float = 100.0, gaussian_std: float = 0.0, prob: float = 1.0) -> None:
        RandomizableTransform.__init__(self, prob)
        if peak <= 0:
            raise ValueError(f"`peak` must be positive, got {peak}.")
        if gaussian_std < 0:
            raise ValueError(f"`gaussian_std` must be non-negative, got {gaussian_std}.")
        self.peak = float(peak)
        self.gaussian_std = float(gaussian_std)
        self._counts: np.ndarray | None = None
        self._read_noise: np.ndarray | None = None

    def randomize(self, img: np.ndarray | torch.Tensor) -> None:  # type: ignore[override]
        super().randomize(None)
        if not self._do_transform:
            return
        values = np.clip(np.asarray(_to_numpy(img), dtype=np.float64), 0.0, None)
        self._counts = self.R.poisson(values * self.peak)
        self._read_noise = self.R.normal(0.0, self.gaussian_std, size=values.shape) if self.gaussian_std else None

    def __call__(self, img: np.ndarray | torch.Tensor, randomize: bool = True) -> np.ndarray | torch.Tensor:
        if randomize:
            self.randomize(img)
        if not self._do_transform:
            return img
        noisy = self._counts / self.peak
        if self._read_noise is not None:
            noisy = noisy + self._read_noise
        return convert_to_dst_type(noisy.astype(np.float32), img, dtype=_float_dtype(img))[0]


class RandSpeckleNoise(RandomizableTransform):
    """Multiplicative speckle noise (ultrasound).

    Two models:

    - ``"gamma"`` (fully developed speckle, intensity with ``looks`` looks): ``noisy = x · n``, ``n ~ Gamma(L, 1/L)``
      with mean 1 and standard deviation ``1/sqrt(L)``.
    - ``"gaussian"``: ``noisy = x + x · N(0, sigma²)``.

    Args:
        sigma: relative standard deviation of the multiplicative factor. For the gamma model ``L = 1/sigma²``.
            Defaults to 0.2.
        model: ``"gamma"`` or ``"gaussian"``. Defaults to ``"gamma"``.
        prob: probability of applying the noise. Defaults to 1.0.
    """

    def __init__(self, sigma: float = 0.2, model: str = "gamma", prob: float = 1.0) -> None:
        RandomizableTransform.__init__(self, prob)
        if sigma <= 0:
            raise ValueError(f"`sigma` must be positive, got {sigma}.")
        if model not in ("gamma", "gaussian"):
            raise ValueError(f"`model` must be 'gamma' or 'gaussian', got {model!r}.")
        self.sigma = float(sigma)
        self.model = model
        self._factor: np.ndarray | None = None

    def randomize(self, img: np.ndarray | torch.Tensor) -> None:  # type: ignore[override]
        super().randomize(None)
        if not self._do_transform:
            return
        shape = tuple(img.shape)
        if self.model == "gamma":
            looks = 1.0 / self.sigma**2
            self._factor = self.R.gamma(looks, 1.0 / looks, size=shape)
        else:
            self._factor = 1.0 + self.R.normal(0.0, self.sigma, size=shape)

    def __call__(self, img: np.ndarray | torch.Tensor, randomize: bool = True) -> np.ndarray | torch.Tensor:
        if randomize:
            self.randomize(img)
        if not self._do_transform:
            return img
        noisy = np.asarray(_to_numpy(img), dtype=np.float64) * self._factor
        return convert_to_dst_type(noisy.astype(np.float32), img, dtype=_float_dtype(img))[0]


class _RandNoised(RandomizableTransform, MapTransform):
    """Dictionary wrapper: one independent draw per key (keys do NOT share a noise realisation)."""

    def __init__(self, keys: KeysCollection, transform: RandomizableTransform, prob: float, allow_missing_keys: bool):
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.transform = transform

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> _RandNoised:
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


class RandPoissonNoised(_RandNoised):
    """Dictionary version of :class:`RandPoissonNoise`; each key gets its own draw.

    Args:
        keys: keys of the images to corrupt.
        peak: see :class:`RandPoissonNoise`. Defaults to 100.
        gaussian_std: see :class:`RandPoissonNoise`. Defaults to 0.
        prob: probability of applying the noise. Defaults to 1.0.
        allow_missing_keys: do not raise on missing keys. Defaults to False.
    """

    def __init__(
        self,
        keys: KeysCollection,
        peak: float = 100.0,
        gaussian_std: float = 0.0,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, RandPoissonNoise(peak, gaussian_std, prob=1.0), prob, allow_missing_keys)


class RandSpeckleNoised(_RandNoised):
    """Dictionary version of :class:`RandSpeckleNoise`; each key gets its own draw.

    Args:
        keys: keys of the images to corrupt.
        sigma: see :class:`RandSpeckleNoise`. Defaults to 0.2.
        model: ``"gamma"`` or ``"gaussian"``. Defaults to ``"gamma"``.
        prob: probability of applying the noise. Defaults to 1.0.
        allow_missing_keys: do not raise on missing keys. Defaults to False.
    """

    def __init__(
        self,
        keys: KeysCollection,
        sigma: float = 0.2,
        model: str = "gamma",
        prob: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, RandSpeckleNoise(sigma, model, prob=1.0), prob, allow_missing_keys)


def parse_noise_spec(spec: str) -> tuple[NoiseKind, float]:
    """Parse ``"kind:level"`` (e.g. ``"gaussian:25"``, ``"rician:20"``, ``"poisson:100"``, ``"speckle:0.2"``).

    Levels: Gaussian and Rician σ on the 0-255 scale; Poisson the peak count; speckle the relative σ.
    A bare kind uses a moderate default level.
    """
    kind_text, _, level_text = spec.partition(":")
    try:
        kind = NoiseKind(kind_text.strip().lower())
    except ValueError:
        raise ValueError(f"unknown noise model {kind_text!r}; choose one of {[k.value for k in NoiseKind]}.") from None
    defaults = {NoiseKind.GAUSSIAN: 25.0, NoiseKind.RICIAN: 25.0, NoiseKind.POISSON: 100.0, NoiseKind.SPECKLE: 0.2}
    try:
        level = float(level_text) if level_text.strip() else defaults[kind]
    except ValueError:
        raise ValueError(f"noise level in {spec!r} must be a number.") from None
    if level < 0 or (level == 0 and kind in (NoiseKind.POISSON, NoiseKind.SPECKLE)):
        raise ValueError(f"noise level in {spec!r} must be positive.")
    return kind, level


def make_noise_transform(kind: NoiseKind | str, level: float) -> RandomizableTransform:
    """Build the array transform for a noise model at a fixed level (``prob=1``).

    Args:
        kind: a :class:`NoiseKind` or its value.
        level: Gaussian/Rician σ on the 0-255 scale; Poisson peak count; speckle relative σ.

    Returns:
        MONAI ``RandGaussianNoise``/``RandRicianNoise`` (fixed σ, ``sample_std=False``), or
        :class:`RandPoissonNoise`/:class:`RandSpeckleNoise`.
    """
    kind = NoiseKind(kind)
    if kind == NoiseKind.GAUSSIAN:
        return RandGaussianNoise(prob=1.0, mean=0.0, std=level / 255.0, sample_std=False)
    if kind == NoiseKind.RICIAN:
        return RandRicianNoise(prob=1.0, mean=0.0, std=level / 255.0, sample_std=False)
    if kind == NoiseKind.POISSON:
        return RandPoissonNoise(peak=level)
    return RandSpeckleNoise(sigma=level)


class BatchNoise:
    """Fast on-device noise for training batches, drawn from a ``torch.Generator``.

    Each batch item gets its own level drawn uniformly from ``level_range`` (Gaussian/Rician σ on the 0-255
    scale, Poisson peak on a log scale, speckle relative σ), so one model learns a whole range (blind denoising).
    With several ``kinds``, each item also draws its noise model uniformly.

    Args:
        kinds: noise models to draw from. Defaults to ``("gaussian",)``.
        level_range: ``(low, high)`` levels in each model's units. Defaults to ``(0, 50)``.
        generator: the random source. Defaults to a new generator seeded with 0.
    """

    def __init__(
        self,
        kinds: Sequence[NoiseKind | str] = ("gaussian",),
        level_range: tuple[float, float] = (0.0, 50.0),
        generator: torch.Generator | None = None,
    ) -> None:
        self.kinds = tuple(NoiseKind(k) for k in kinds)
        if not self.kinds:
            raise ValueError("`kinds` must name at least one noise model.")
        low, high = (float(v) for v in level_range)
        if high < low or low < 0:
            raise ValueError(f"`level_range` must satisfy 0 <= low <= high, got {level_range}.")
        self.level_range = (low, high)
        if generator is None:
            generator = torch.Generator()
            generator.manual_seed(0)
        self.generator = generator

    def _uniform(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, dtype=torch.float64)

    def __call__(self, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrupt a batch.

        Args:
            clean: ``(B, C, *spatial)`` float tensor in [0, 1] (on CPU; the generator is a CPU generator).

        Returns:
            ``(noisy, sigma)`` where ``sigma`` is ``(B,)``: the per-item noise standard deviation in normalized
            units (for Poisson and speckle, the value at mean intensity 0.5, as a guide).
        """
        b = clean.shape[0]
        low, high = self.level_range
        u = self._uniform(b)
        kind_index = (self._uniform(b) * len(self.kinds)).long().clamp_(max=len(self.kinds) - 1)
        noisy = torch.empty_like(clean)
        sigma = torch.empty(b, dtype=torch.float32)
        view = (-1,) + (1,) * (clean.ndim - 1)
        for k, kind in enumerate(self.kinds):
            idx = (kind_index == k).nonzero().flatten()
            if idx.numel() == 0:
                continue
            x = clean[idx]
            if kind == NoiseKind.POISSON:
                # log-uniform peak: equal weight to each decade of dose
                log_low, log_high = math.log(max(low, 1e-3)), math.log(max(high, 1e-3))
                peak = torch.exp(log_low + u[idx] * (log_high - log_low))
                peak_v = peak.to(x.dtype).view(view)
                y = torch.poisson(x.clamp(min=0) * peak_v, generator=self.generator) / peak_v
                s = torch.sqrt(0.5 / peak).float()
            else:
                level = (low + u[idx] * (high - low)).to(x.dtype)
                n1 = torch.randn(x.shape, generator=self.generator, dtype=x.dtype)
                if kind == NoiseKind.GAUSSIAN:
                    s = (level / 255.0).float()
                    y = x + n1 * s.view(view).to(x.dtype)
                elif kind == NoiseKind.RICIAN:
                    s = (level / 255.0).float()
                    n2 = torch.randn(x.shape, generator=self.generator, dtype=x.dtype)
                    sv = s.view(view).to(x.dtype)
                    y = torch.sqrt((x + n1 * sv) ** 2 + (n2 * sv) ** 2)
                else:
                    s = (0.5 * level).float()
                    y = x * (1.0 + n1 * level.view(view))
            noisy[idx] = y.to(clean.dtype)
            sigma[idx] = s
        return noisy, sigma


def _to_numpy(img: np.ndarray | torch.Tensor) -> np.ndarray:
    return img.detach().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img)


def _float_dtype(img: np.ndarray | torch.Tensor):
    if isinstance(img, torch.Tensor):
        return img.dtype if img.dtype.is_floating_point else torch.float32
    return img.dtype if np.asarray(img).dtype.kind == "f" else np.float32
