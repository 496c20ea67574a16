"""Registry of network presets: names, classes, constructor kwargs and input layout."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ._utils import count_parameters
from .conv_dae import ConvDAE
from .dncnn import DnCNN
from .dran import DRAN
from .irunet import IRUNet
from .kpn import KPN
from .rdn import RDN

__all__ = [
    "NetworkSpec",
    "create_network",
    "get_network_spec",
    "has_shipped_weights",
    "list_networks",
    "parameter_count",
]


@dataclass(frozen=True)
class NetworkSpec:
    """One registry entry.

    Attributes:
        name: registry name, e.g. ``"dncnn"`` or ``"dncnn-small"``.
        cls: the network class.
        kwargs: preset constructor kwargs beyond ``spatial_dims``, ``in_channels`` and ``out_channels``.
        description: one line.
        spatial_dims: the spatial dims the preset supports. Defaults to ``(2, 3)``.
        burst: adjacent slices (or frames) the model takes as input channels, centre slice = reference.
            Defaults to 1.
        noise_map: the model takes a noise-level map as an extra, last, input channel. Defaults to False.
        default_roi: default sliding-window ROI edge for 2D and 3D use. Defaults to ``(512, 64)``: a 512x512
            slice is one window, since 2D activations are small and fewer windows mean less halo overhead.
    """

    name: str
    cls: type[nn.Module]
    kwargs: dict
    description: str
    spatial_dims: tuple[int, ...] = (2, 3)
    burst: int = 1
    noise_map: bool = False
    default_roi: tuple[int, int] = (512, 64)


_KPN_SMALL = {"features": (32, 64, 128), "convs_per_block": 2, "kernel_size": 5}
# The per-pixel additive bias lets the U-Net output values no 5x5 kernel can form: the low-frequency part of
# correlated (ramp-filtered) CT noise lies beyond a 5x5 neighbourhood.
_KPN_MEDIUM_BIAS = {"features": (32, 64, 128, 256), "convs_per_block": 2, "kernel_size": 5, "core_bias": True}

_SPECS: tuple[NetworkSpec, ...] = (
    NetworkSpec(
        "dncnn", DnCNN, {"features": 64, "depth": 17}, "DnCNN-S layout: 17 convs, 64 features, BatchNorm, residual."
    ),
    NetworkSpec(
        "dncnn-blind", DnCNN, {"features": 64, "depth": 20}, "DnCNN-B layout for blind noise: 20 convs, 64 features."
    ),
    NetworkSpec("dncnn-small", DnCNN, {"features": 48, "depth": 12}, "Small DnCNN for CPU: 12 convs, 48 features."),
    NetworkSpec("dran", DRAN, {"features": 64}, "DRAN: 3 distinct dynamic-conv stages with noise gates, 64 features."),
    NetworkSpec("dran-small", DRAN, {"features": 32}, "Small DRAN for CPU: 32 features."),
    NetworkSpec(
        "irunet", IRUNet, {"features": 16, "levels": 4}, "IRUNet: inception-residual U-Net, 16 filters, 4 levels."
    ),
    NetworkSpec("irunet-32", IRUNet, {"features": 32, "levels": 4}, "IRUNet with 32 filters per level."),
    NetworkSpec("irunet-48", IRUNet, {"features": 48, "levels": 4}, "IRUNet with 48 filters per level."),
    NetworkSpec(
        "rdn",
        RDN,
        {"num_blocks": 16, "layers_per_block": 8, "growth": 64, "features": 64},
        "RDN config B (D16 C8 G64), 22 M parameters; heavy in 3D.",
        default_roi=(128, 32),
    ),
    NetworkSpec(
        "rdn-a",
        RDN,
        {"num_blocks": 20, "layers_per_block": 6, "growth": 32, "features": 64},
        "RDN config A (D20 C6 G32), 5.5 M parameters.",
        default_roi=(192, 32),
    ),
    NetworkSpec(
        "rdn-small",
        RDN,
        {"num_blocks": 4, "layers_per_block": 4, "growth": 32, "features": 32},
        "Small RDN for CPU: D4 C4 G32, 32 features.",
    ),
    NetworkSpec(
        "conv-dae", ConvDAE, {"features": 64, "levels": 2}, "Gondara's 2-level conv autoencoder, direct output."
    ),
    NetworkSpec(
        "conv-dae-skip",
        ConvDAE,
        {"features": 64, "levels": 2, "convs_per_level": 2, "refine_convs": 3},
        "Conv autoencoder (2 convs per level) whose output meets the noisy input in 3 full-resolution convs.",
    ),
    NetworkSpec(
        "kpn",
        KPN,
        {"features": (64, 128, 256, 512, 512), "convs_per_block": 3, "kernel_size": 5},
        "KPN paper U-Net, single frame, 5x5 per-pixel kernels (5x5x5 in 3D).",
        default_roi=(256, 32),
    ),
    NetworkSpec("kpn-small", KPN, dict(_KPN_SMALL), "Small KPN for CPU: 3-level U-Net (32/64/128), single frame, K 5."),
    NetworkSpec(
        "kpn-ms-small",
        KPN,
        {**_KPN_SMALL, "coarse_kernels": True},
        "kpn-small plus half-resolution kernels (a wider support in flat regions, at ~2 % of the cost).",
    ),
    NetworkSpec(
        "kpn-msf-small",
        KPN,
        {**_KPN_SMALL, "coarse_kernels": True, "full_res_head": True},
        "kpn-ms-small plus a full-resolution gate on every tap of its kernels (sharper at edges).",
    ),
    NetworkSpec(
        "kpn-msd-small",
        KPN,
        {**_KPN_SMALL, "coarse_kernels": True, "dilated_kernels": True},
        "kpn-ms-small plus full-resolution kernels with taps 2 pixels apart (a 9x9 support along edges).",
    ),
    NetworkSpec(
        "kpn-medium",
        KPN,
        {"features": (32, 64, 128, 256), "convs_per_block": 2, "kernel_size": 5},
        "KPN for CPU with a 4-level U-Net (32/64/128/256): twice kpn-small's context at similar cost.",
    ),
    NetworkSpec(
        "kpn-burst3",
        KPN,
        dict(_KPN_SMALL),
        "Small KPN on 3 adjacent slices as channels, denoising the centre slice.",
        burst=3,
    ),
    NetworkSpec(
        "kpn-ms-burst3",
        KPN,
        {**_KPN_SMALL, "coarse_kernels": True},
        "kpn-burst3 plus half-resolution kernels (2.5D CT: a wider support for correlated noise).",
        burst=3,
    ),
    NetworkSpec(
        "kpn-msd-burst3",
        KPN,
        {**_KPN_SMALL, "coarse_kernels": True, "dilated_kernels": True},
        "kpn-ms-burst3 plus full-resolution kernels with taps 2 pixels apart (a 9x9 support).",
        burst=3,
    ),
    NetworkSpec(
        "kpn-msw-burst3",
        KPN,
        {**_KPN_SMALL, "coarse_kernels": True, "wide_coarse_kernels": True},
        "kpn-ms-burst3 plus half-resolution kernels with dilated taps (18 px support, for coarse CT noise).",
        burst=3,
    ),
    NetworkSpec(
        "kpn-msf-burst3",
        KPN,
        {**_KPN_SMALL, "coarse_kernels": True, "full_res_head": True},
        "kpn-ms-burst3 plus a full-resolution gate on every tap (sharper kernels at edges, e.g. bone).",
        burst=3,
    ),
    NetworkSpec(
        "kpn-medium-bias",
        KPN,
        dict(_KPN_MEDIUM_BIAS),
        "4-level KPN, single frame, with per-pixel bias (can correct clipped or biased regions too).",
    ),
    NetworkSpec(
        "kpn-medium-burst3",
        KPN,
        dict(_KPN_MEDIUM_BIAS),
        "4-level KPN on 3 adjacent slices with per-pixel bias (low-frequency correlated noise, e.g. CT).",
        burst=3,
    ),
    NetworkSpec(
        "kpn-medium-burst5",
        KPN,
        dict(_KPN_MEDIUM_BIAS),
        "4-level KPN on 5 adjacent slices with per-pixel bias (2.5D CT/MR).",
        burst=5,
    ),
)

_REGISTRY: dict[str, NetworkSpec] = {spec.name: spec for spec in _SPECS}


def list_networks() -> list[NetworkSpec]:
    """All registry entries, in registry order.

    Returns:
        A new list of :class:`NetworkSpec`.
    """
    return list(_SPECS)


def get_network_spec(name: str) -> NetworkSpec:
    """Look up one registry entry.

    Args:
        name: registry name, e.g. ``"dncnn"``.

    Returns:
        The :class:`NetworkSpec`.

    Raises:
        ValueError: for an unknown name; the message lists the valid names.
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown network `name` {name!r}; valid names: {', '.join(_REGISTRY)}.") from None


#: width parameters of earlier releases (IRUNet ``filters``, KPN ``channels``): every network now calls it ``features``
LEGACY_WIDTH_NAMES = {"filters": "features", "channels": "features"}


def create_network(
    name: str,
    spatial_dims: int = 2,
    in_channels: int | None = None,
    out_channels: int = 1,
    **overrides,
) -> nn.Module:
    """Build a registry preset with random weights.

    Args:
        name: registry name.
        spatial_dims: 2 or 3. Defaults to 2.
        in_channels: input channels; ``None`` gives the preset's layout, ``burst`` frames plus 1 if it takes a
            noise map. Defaults to None.
        out_channels: output channels. Defaults to 1.
        overrides: constructor kwargs that replace or extend the preset's (e.g. ``features=32``).

    Returns:
        The network, in training mode, on the CPU.

    Raises:
        ValueError: for an unknown name, a ``spatial_dims`` the preset does not support, or bad kwargs (raised by
            the network).
    """
    spec = get_network_spec(name)
    if spatial_dims not in spec.spatial_dims:
        raise ValueError(f"network {name!r} supports spatial_dims {spec.spatial_dims}, got {spatial_dims!r}.")
    if in_channels is None:
        in_channels = spec.burst + (1 if spec.noise_map else 0)
    for old, new in LEGACY_WIDTH_NAMES.items():
        if old in overrides and new not in overrides:
            # cards written before the width was called ``features`` everywhere keep loading
            warnings.warn(f"network override {old!r} is now called {new!r}", DeprecationWarning, stacklevel=2)
            overrides[new] = overrides.pop(old)
    kwargs = {**spec.kwargs, **overrides}
    return spec.cls(spatial_dims, in_channels, out_channels, **kwargs)


@functools.cache
def parameter_count(name: str, spatial_dims: int = 2) -> int:
    """Number of parameters of a preset with its default input layout and one output channel.

    The network is built once per ``(name, spatial_dims)`` and the count cached.

    Args:
        name: registry name.
        spatial_dims: 2 or 3. Defaults to 2.

    Returns:
        The parameter count.
    """
    return count_parameters(create_network(name, spatial_dims=spatial_dims))


def has_shipped_weights(name: str) -> bool:
    """Whether ``weights/<name>.safetensors`` ships with the package.

    Args:
        name: registry name.

    Returns:
        True when the weights file exists.

    Raises:
        ValueError: for an unknown name.
    """
    get_network_spec(name)
    return (Path(__file__).resolve().parent.parent / "weights" / f"{name}.safetensors").is_file()
