"""Denoising networks (DnCNN, DRAN, IRUNet, RDN, conv-DAE, KPN) and their registry of presets.

Every network is an ``nn.Module`` built as ``Net(spatial_dims, in_channels, out_channels, ...)`` whose ``forward``
maps a noisy ``(B, in_channels, *spatial)`` image in [0, 1] to the denoised ``(B, out_channels, *spatial)`` image
of the same spatial size, and which exposes ``receptive_field`` and ``size_multiple``.
"""

from __future__ import annotations

from ._utils import count_parameters, pad_to_multiple
from .conv_dae import ConvDAE
from .dncnn import DnCNN
from .dran import DRAN, DynamicConv, GatedConv
from .irunet import IRUNet
from .kpn import KPN, apply_kernels
from .rdn import RDN
from .registry import (
    NetworkSpec,
    create_network,
    get_network_spec,
    has_shipped_weights,
    list_networks,
    parameter_count,
)

__all__ = [
    "DRAN",
    "KPN",
    "RDN",
    "ConvDAE",
    "DnCNN",
    "DynamicConv",
    "GatedConv",
    "IRUNet",
    "NetworkSpec",
    "apply_kernels",
    "count_parameters",
    "create_network",
    "get_network_spec",
    "has_shipped_weights",
    "list_networks",
    "pad_to_multiple",
    "parameter_count",
]
