"""Registry: names, lookup errors, creation with overrides, parameter counts and shipped-weight lookup."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from monai.networks.layers.factories import Conv
from torch import nn

import meddenoiselib.networks as networks
from meddenoiselib.networks import (
    KPN,
    DnCNN,
    NetworkSpec,
    count_parameters,
    create_network,
    get_network_spec,
    has_shipped_weights,
    list_networks,
    parameter_count,
    registry,
)

EXPECTED_NAMES = [
    "dncnn", "dncnn-blind", "dncnn-small",
    "dran", "dran-small",
    "irunet", "irunet-32", "irunet-48",
    "rdn", "rdn-a", "rdn-small",
    "conv-dae", "conv-dae-skip",
    "kpn", "kpn-small", "kpn-ms-small", "kpn-msf-small", "kpn-msd-small", "kpn-medium", "kpn-burst3",
    "kpn-ms-burst3", "kpn-msd-burst3", "kpn-msw-burst3", "kpn-msf-burst3",
    "kpn-medium-bias", "kpn-medium-burst3", "kpn-medium-burst5",
]  # fmt: skip

# (registry name, 2D gray parameter count)
PARAMETER_CASES = [
    ("dncnn", 557_057),
    ("dncnn-blind", 668_225),
    ("dncnn-small", 209_713),
    ("dran", 2_456_640),
    ("dran-small", 616_224),
    ("irunet", 123_057),
    ("irunet-32", 489_825),
    ("irunet-48", 1_100_305),
    ("rdn", 21_973_377),
    ("rdn-a", 5_466_497),
    ("rdn-small", 412_993),
    ("conv-dae", 112_001),
    # encoder 640 + 3 x 36,928; decoder 4 x 36,928; refine 37,504 (65 -> 64) + 2 x 36,928; head 577
    ("conv-dae-skip", 371_073),
    ("kpn", 27_385_031),
    ("kpn-small", 335_957),
    # kpn-small plus the coarse-kernel 1x1 conv: 25 -> 25 channels
    ("kpn-ms-small", 336_607),
    # kpn-ms-small plus the full-resolution gate: 1x1 conv from the first block's 32 features to 25 taps
    ("kpn-msf-small", 337_432),
    # kpn-ms-small plus the dilated-kernel 1x1 conv: 25 -> 25 channels again
    ("kpn-msd-small", 337_257),
    ("kpn-medium", 1_811_285),
    ("kpn-burst3", 473_083),
    # kpn-burst3 plus the coarse-kernel 1x1 conv: 75 -> 75 channels
    ("kpn-ms-burst3", 478_783),
    # kpn-ms-burst3 plus the dilated-kernel 1x1 conv: 75 -> 75 channels again
    ("kpn-msd-burst3", 484_483),
    # kpn-ms-burst3 plus the wide coarse-kernel 1x1 conv: 75 -> 75 channels again
    ("kpn-msw-burst3", 484_483),
    # kpn-ms-burst3 plus the full-resolution gate: 32 -> 25 taps, shared by the 3 frames
    ("kpn-msf-burst3", 479_608),
    # kpn-medium plus per-pixel bias channels (one per frame): 4-level U-Net, K = 5
    ("kpn-medium-bias", 1_813_526),
    ("kpn-medium-burst3", 1_958_194),
    ("kpn-medium-burst5", 2_156_942),
]


def test_names_are_exactly_the_presets() -> None:
    assert [spec.name for spec in list_networks()] == EXPECTED_NAMES
    assert [name for name, _ in PARAMETER_CASES] == EXPECTED_NAMES


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_every_name_resolves(name: str) -> None:
    spec = get_network_spec(name)
    assert isinstance(spec, NetworkSpec) and spec.name == name
    assert issubclass(spec.cls, nn.Module)
    assert spec.description and "\n" not in spec.description and len(spec.description) <= 100
    assert set(spec.spatial_dims) <= {2, 3} and spec.burst >= 1
    assert len(spec.default_roi) == 2 and all(r % 16 == 0 for r in spec.default_roi)
    assert not {"spatial_dims", "in_channels", "out_channels"} & set(spec.kwargs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown network") as info:
        get_network_spec("unet")
    assert all(name in str(info.value) for name in EXPECTED_NAMES)
    with pytest.raises(ValueError, match="kpn-burst3"):
        create_network("DnCNN")


def test_create_network_3d_and_overrides() -> None:
    net = create_network("dncnn", spatial_dims=3)
    assert isinstance(net, DnCNN) and isinstance(net.body[0], Conv[Conv.CONV, 3])
    assert net(torch.rand(1, 1, 9, 8, 7)).shape == (1, 1, 9, 8, 7)

    small = create_network("dncnn", features=8, depth=5)
    assert count_parameters(small) == (9 * 8 + 8) + 3 * (9 * 64 + 8 + 16) + (9 * 8 + 1)
    assert small.receptive_field == 11
    assert get_network_spec("dncnn").kwargs == {"features": 64, "depth": 17}  # the preset is not mutated

    rgb = create_network("irunet-32", in_channels=3, out_channels=3)
    assert rgb(torch.rand(1, 3, 20, 20)).shape == (1, 3, 20, 20)
    with pytest.raises(ValueError, match="spatial_dims"):
        create_network("dncnn", spatial_dims=1)
    with pytest.raises(TypeError):
        create_network("dncnn", not_an_argument=1)


def test_burst_preset_takes_three_slices() -> None:
    spec = get_network_spec("kpn-burst3")
    assert (spec.burst, spec.noise_map) == (3, False)
    net = create_network("kpn-burst3")
    assert isinstance(net, KPN) and net.in_channels == 3 and net.burst == 3
    assert create_network("kpn-small").in_channels == 1
    with_map = create_network("kpn-burst3", in_channels=4, noise_map=True)
    assert with_map.burst == 3 and with_map.noise_map


@pytest.mark.parametrize("name, expected", PARAMETER_CASES)
def test_parameter_count(name: str, expected: int) -> None:
    assert parameter_count(name) == expected


def test_parameter_count_is_cached() -> None:
    parameter_count("conv-dae")
    hits = parameter_count.cache_info().hits
    assert parameter_count("conv-dae") == 112_001
    assert parameter_count.cache_info().hits == hits + 1
    assert parameter_count("conv-dae", spatial_dims=3) == count_parameters(create_network("conv-dae", spatial_dims=3))


def test_has_shipped_weights(tmp_path, monkeypatch) -> None:
    package = tmp_path / "meddenoiselib"
    (package / "networks").mkdir(parents=True)
    (package / "weights").mkdir()
    (package / "weights" / "dncnn-small.safetensors").write_bytes(b"")
    monkeypatch.setattr(registry, "__file__", str(package / "networks" / "registry.py"))
    assert has_shipped_weights("dncnn-small") is True
    assert has_shipped_weights("dncnn") is False
    with pytest.raises(ValueError, match="unknown network"):
        has_shipped_weights("nope")


def test_package_exports() -> None:
    assert networks.create_network is create_network
    assert "create_network" in networks.__all__ and "list_networks" in networks.__all__
