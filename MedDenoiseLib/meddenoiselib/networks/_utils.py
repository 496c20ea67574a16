"""Helpers shared by the networks: padding to a size multiple, argument checks, residual reference channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.layers.utils import get_act_layer
from torch import nn

#: a MONAI activation spec: a name (``"relu"``, ``"prelu"``, ``"leakyrelu"``, ``"gelu"``...) or ``(name, kwargs)``.
ActSpec = str | tuple

__all__ = [
    "ActSpec",
    "activation",
    "check_positive_int",
    "check_spatial_dims",
    "count_parameters",
    "pad_spatial",
    "pad_to_multiple",
    "reference_slice",
    "select_reference",
]


def activation(act: ActSpec) -> nn.Module:
    """A new activation layer from a MONAI spec (each call a new module, so layers never share parameters).

    Raises:
        ValueError: for a spec MONAI does not know (MONAI's own message).
    """
    try:
        return get_act_layer(act)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"`act` must be a MONAI activation name or (name, kwargs), got {act!r} ({exc}).") from None


def check_spatial_dims(spatial_dims: int) -> int:
    """Check that ``spatial_dims`` is 2 or 3.

    Args:
        spatial_dims: number of spatial dimensions.

    Returns:
        ``spatial_dims`` unchanged.

    Raises:
        ValueError: when ``spatial_dims`` is not 2 or 3.
    """
    if isinstance(spatial_dims, bool) or spatial_dims not in (2, 3):
        raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims!r}.")
    return int(spatial_dims)


def check_positive_int(name: str, value: int, minimum: int = 1) -> int:
    """Check that an integer argument is at least ``minimum``.

    Args:
        name: the argument's name, used in the error message.
        value: the value to check.
        minimum: the smallest allowed value. Defaults to 1.

    Returns:
        ``value`` as an ``int``.

    Raises:
        ValueError: when ``value`` is not an integer or is smaller than ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return value


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Count the parameters of a module.

    Args:
        module: the module to count.
        trainable_only: count only parameters with ``requires_grad``. Defaults to False.

    Returns:
        The total number of scalar parameters (buffers such as BatchNorm running statistics are not counted).
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def pad_spatial(x: torch.Tensor, pads: list[int]) -> torch.Tensor:
    """Pad the spatial dims of ``x`` by reflection, or by replication where reflection is impossible.

    Reflection (``numpy``'s "reflect": the edge pixel is not repeated) needs each pad to be smaller than the size
    of its dimension; when any pad is not, the whole tensor is padded by replication instead.

    Args:
        x: tensor ``(B, C, *spatial)`` with 2 or 3 spatial dims.
        pads: ``F.pad`` order, i.e. ``[last_lo, last_hi, second_last_lo, second_last_hi, ...]``, one pair per
            spatial dim.

    Returns:
        The padded tensor (``x`` itself when every pad is zero).
    """
    if not any(pads):
        return x
    sizes = x.shape[2:][::-1]  # F.pad order: last dim first
    reflect_ok = all(pads[2 * i] < s and pads[2 * i + 1] < s for i, s in enumerate(sizes))
    return F.pad(x, pads, mode="reflect" if reflect_ok else "replicate")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Pad every spatial dim of ``x`` up to a multiple of ``multiple``.

    The padding is split between both ends (the extra pixel, if any, goes at the end) and uses reflection, or
    replication when a dim is too small to reflect (see :func:`pad_spatial`). Networks with ``n`` stride-2
    down-samplings call this with ``2**n`` so that they accept any input size.

    Args:
        x: tensor ``(B, C, *spatial)``.
        multiple: the required multiple, >= 1.

    Returns:
        ``(padded, crop)``: the padded tensor and the tuple of slices that crops a same-size output back to the
        size of ``x`` (``y[crop]``).

    Raises:
        ValueError: when ``multiple`` is not a positive integer.
    """
    check_positive_int("multiple", multiple)
    spatial = x.shape[2:]
    lo_hi = []
    for s in spatial:
        total = (-s) % multiple
        lo_hi.append((total // 2, total - total // 2))
    crop = (slice(None), slice(None)) + tuple(slice(lo, lo + s) for (lo, _), s in zip(lo_hi, spatial, strict=True))
    pads: list[int] = []
    for lo, hi in reversed(lo_hi):
        pads += [lo, hi]
    return pad_spatial(x, pads), crop


def reference_slice(in_channels: int, out_channels: int) -> slice:
    """The input channels that a residual network's output is added to (or subtracted from).

    Rules, checked in order:

    - ``in_channels == out_channels``: all channels.
    - ``out_channels == 1``: channel ``(in_channels - 1) // 2``. With the input layout "frames first, optional
      noise-level map last" this is the centre frame of an odd burst, with or without the map (1 → 0, 2 (image +
      map) → 0, 3 → 1, 4 (3 frames + map) → 1, 5 → 2).
    - ``in_channels == out_channels + 1``: the first ``out_channels`` channels (a multi-channel image plus a
      noise-level map as the last channel).

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.

    Returns:
        A ``slice`` over the channel dim.

    Raises:
        ValueError: for any other combination.
    """
    if in_channels == out_channels:
        return slice(0, in_channels)
    if out_channels == 1:
        centre = (in_channels - 1) // 2
        return slice(centre, centre + 1)
    if in_channels == out_channels + 1:
        return slice(0, out_channels)
    raise ValueError(
        "a residual network needs in_channels == out_channels, out_channels == 1 or "
        f"in_channels == out_channels + 1 (noise map), got in_channels={in_channels}, out_channels={out_channels}."
    )


def select_reference(x: torch.Tensor, in_channels: int, out_channels: int) -> torch.Tensor:
    """Return the channels of ``x`` given by :func:`reference_slice`.

    Args:
        x: input ``(B, in_channels, *spatial)``.
        in_channels: number of input channels.
        out_channels: number of output channels.

    Returns:
        ``(B, out_channels, *spatial)`` view of ``x``.
    """
    return x[:, reference_slice(in_channels, out_channels)]
