"""The noise models as batched torch functions: the single implementation behind the MONAI transforms
(``simulate``, evaluation, benchmarks) and training batches.

Every function takes a clean batch ``(B, C, *spatial)`` on the normalized intensity scale, per-item levels
``(B,)`` in normalized units, and a ``torch.Generator``; it returns the noisy batch, same shape and dtype.
Randomness comes only from the generator, so a seed fixes the noise.
"""

from __future__ import annotations

import math

import torch

__all__ = ["gaussian", "noncentral_chi", "speckle", "poisson_gaussian", "standard_gamma"]


def _per_item(level: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    level = torch.as_tensor(level, dtype=like.dtype, device=like.device)
    if level.ndim == 0:
        level = level.expand(like.shape[0])
    return level.reshape(-1, *([1] * (like.ndim - 1)))


def _randn(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def gaussian(
    clean: torch.Tensor, sigma: torch.Tensor | float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Additive white Gaussian noise: ``clean + σ·N(0, 1)``."""
    return clean + _per_item(sigma, clean) * _randn(clean, generator)


def noncentral_chi(
    clean: torch.Tensor, sigma: torch.Tensor | float, coils: int = 1, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Magnitude MR: root-sum-of-squares over ``coils`` receivers, each with complex Gaussian noise of std σ per
    part. The signal is spread evenly over the coils (``clean/√L`` each) so the noiseless magnitude is ``clean``.

    ``coils = 1`` is Rician noise (background mean ``σ·√(π/2)``); ``L`` coils give a non-central chi
    distribution with ``2L`` degrees of freedom (background mean ``σ·√2·Γ(L+½)/Γ(L)``).
    """
    if coils < 1:
        raise ValueError(f"`coils` must be at least 1, got {coils}.")
    s = _per_item(sigma, clean)
    signal = torch.clamp(clean, min=0) / math.sqrt(coils)
    total = torch.zeros_like(clean)
    for _ in range(coils):
        real = signal + s * _randn(clean, generator)
        imaginary = s * _randn(clean, generator)
        total += real * real + imaginary * imaginary
    return torch.sqrt(total)


def standard_gamma(
    shape_parameter: torch.Tensor, size: tuple[int, ...], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Gamma(k, 1) variates drawn from ``generator`` (torch's own gamma sampler takes no generator).

    Marsaglia & Tsang (2000) for ``k ≥ 1``, vectorized: candidates are drawn for every element at once and
    rejected ones redrawn (acceptance > 95 %); ``k < 1`` uses ``Gamma(k+1)·U^(1/k)``.

    Args:
        shape_parameter: ``k`` per element, broadcastable to ``size`` (float64 recommended).
        size: output shape.
    """
    k = torch.as_tensor(shape_parameter, dtype=torch.float64).expand(size).contiguous()
    boost = k < 1
    a = torch.where(boost, k + 1, k)
    d = a - 1.0 / 3.0
    c = 1.0 / torch.sqrt(9.0 * d)
    out = torch.empty(size, dtype=torch.float64)
    pending = torch.ones(size, dtype=torch.bool)
    while bool(pending.any()):
        n = int(pending.sum())
        x = torch.randn(n, generator=generator, dtype=torch.float64)
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        dd, cc = d[pending], c[pending]
        v = (1.0 + cc * x) ** 3
        accept = (v > 0) & (torch.log(u) < 0.5 * x * x + dd - dd * v + dd * torch.log(torch.clamp(v, min=1e-300)))
        index = pending.nonzero(as_tuple=True)
        chosen = tuple(i[accept] for i in index)
        out[chosen] = (dd * v)[accept]
        pending[chosen] = False
    if bool(boost.any()):
        u = torch.rand(size, generator=generator, dtype=torch.float64)
        out = torch.where(boost, out * u ** (1.0 / k), out)
    return out


def speckle(clean: torch.Tensor, sigma: torch.Tensor | float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Ultrasound speckle, the project's one definition: ``clean · n`` with ``n ~ Gamma(L, 1/L)``, ``L = 1/σ²``.

    ``n`` has mean 1 and standard deviation σ (fully developed speckle of an ``L``-look intensity image).
    """
    s = _per_item(sigma, clean).double()
    if bool((s <= 0).any()):
        raise ValueError("speckle sigma must be positive.")
    looks = (1.0 / s**2).expand(clean.shape)
    factor = standard_gamma(looks.cpu(), tuple(clean.shape), generator) / looks.cpu()
    return (clean.double() * factor.to(clean.device)).to(clean.dtype)


def poisson_gaussian(
    clean: torch.Tensor,
    peak: torch.Tensor | float,
    read_noise: torch.Tensor | float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Photon counting: ``(Poisson(max(x, 0)·peak) + N(0, read²)) / peak``, with ``peak`` counts at intensity 1
    and ``read`` the read-noise std in counts. The variance at intensity ``x`` is ``x/peak + (read/peak)²``."""
    p = _per_item(peak, clean).double()
    if bool((p <= 0).any()):
        raise ValueError("Poisson peak must be positive.")
    counts = torch.poisson(torch.clamp(clean.double(), min=0) * p, generator=generator)
    read = _per_item(read_noise, clean).double()
    if bool((read > 0).any()):
        counts = counts + read * torch.randn(
            counts.shape, generator=generator, dtype=torch.float64, device=counts.device
        )
    return (counts / p).to(clean.dtype)
