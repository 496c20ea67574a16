"""Grow a trained network into a larger registry network that starts with exactly the same output."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import OptionError

__all__ = ["grow_network"]


def grow_network(
    trained: torch.nn.Module, network: str, spatial_dims: int, overrides: dict[str, Any], source: str
) -> torch.nn.Module:
    """Build registry ``network`` and copy ``trained``'s weights into it.

    Every parameter of ``network`` that ``trained`` lacks must be all zeros as created (the network's own promise
    that the new part starts with no effect, e.g. the coarse kernels of ``kpn-ms-burst3``), so fine-tuning starts
    from ``trained``'s exact output instead of from a half-random network.

    Args:
        trained: the initial model (its weights are read, not changed).
        network: registry name of the network to build.
        spatial_dims: 2 or 3, as ``trained``.
        overrides: constructor overrides, as ``trained`` was built with.
        source: the initial model's name or path, for error messages.

    Returns:
        The grown network, in train mode, on the CPU.

    Raises:
        OptionError: ``network`` has a different number of input frames, lacks some of ``trained``'s
            parameters, has differently shaped ones, or adds parameters that do not start at zero.
    """
    from ..networks import create_network, get_network_spec

    frames, target_frames = getattr(trained, "burst", 1), get_network_spec(network).burst
    if target_frames != frames:
        raise OptionError(
            f"cannot grow {source} ({frames} input frames) into {network} ({target_frames} frames)", parameter="grow"
        )
    grown = create_network(network, spatial_dims=spatial_dims, **overrides)
    state = trained.state_dict()
    own = grown.state_dict()
    foreign = sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(state) & set(own) if state[k].shape != own[k].shape)
    if foreign or reshaped:
        raise OptionError(
            f"cannot grow {source} into {network}: "
            + (f"{network} has no parameters {', '.join(foreign[:4])}" if foreign else "")
            + ("; " if foreign and reshaped else "")
            + (f"{', '.join(reshaped[:4])} have other shapes" if reshaped else ""),
            parameter="grow",
        )
    added = sorted(set(own) - set(state))
    live = [k for k in added if own[k].is_floating_point() and bool(own[k].any())]
    if live:
        raise OptionError(
            f"cannot grow {source} into {network}: its new parameters {', '.join(live[:4])} do not start at zero, "
            "so the grown network would not start as the trained one",
            parameter="grow",
        )
    grown.load_state_dict(state, strict=False)
    return grown.train()
