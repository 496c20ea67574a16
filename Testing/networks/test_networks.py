"""Contract tests over every registry entry × {2D, 3D}, parameter counts, and the shared helpers."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
import torch

import meddenoiselib.networks as networks
from meddenoiselib.networks import (
    DRAN,
    KPN,
    RDN,
    ConvDAE,
    DnCNN,
    IRUNet,
    count_parameters,
    create_network,
    get_network_spec,
    list_networks,
    pad_to_multiple,
)
from meddenoiselib.networks._utils import reference_slice

NAMES = [spec.name for spec in list_networks()]

# Paper-size presets are shrunk in 3D (same class, smaller width/depth) to keep the suite fast and small.
SMALL_3D = {
    "dran": {"convs_per_stage": 2},
    "rdn": {"num_blocks": 2, "layers_per_block": 2, "growth": 16, "features": 16},
    "rdn-a": {"num_blocks": 2, "layers_per_block": 2, "growth": 16, "features": 16},
    "kpn": {"features": (8, 16, 16, 32, 32), "kernel_size": 3},
}
SHAPES = {2: (2, 37, 41), 3: (1, 19, 23, 17)}  # batch, then odd spatial sizes


def _small(name: str, dims: int) -> dict:
    """Narrower settings for the contract test where a preset is slow on a CPU (the full RDN is 22 M parameters;
    3D KPNs carry K^3 kernels per frame): the same class and code path, fewer channels. The presets' own layouts
    are checked by the parameter-count tests."""
    spec = get_network_spec(name)
    if spec.cls is RDN:
        return SMALL_3D["rdn"]
    if dims == 3 and spec.cls is KPN:
        widths = tuple(max(4, c // 8) for c in spec.kwargs.get("features", (64, 128, 256, 512, 512)))
        return {"features": widths, "kernel_size": 3}
    return SMALL_3D.get(name, {}) if dims == 3 else {}


CONTRACT_CASES = [(name, dims) for name in NAMES for dims in (2, 3)]

# (class, positional args, kwargs, expected parameter count)
PARAM_CASES = [
    pytest.param(DnCNN, (2, 1, 1), {}, 557_057, id="DnCNN-S-gray"),
    pytest.param(DnCNN, (2, 1, 1), {"depth": 20}, 668_225, id="DnCNN-B-gray"),
    pytest.param(DnCNN, (2, 3, 3), {"depth": 20}, 670_531, id="CDnCNN-B"),
    pytest.param(RDN, (2, 1, 1), {}, 21_973_377, id="RDN-B-gray"),
    pytest.param(RDN, (2, 3, 3), {}, 21_975_683, id="RDN-B-RGB"),
    pytest.param(RDN, (2, 1, 1), {"num_blocks": 20, "layers_per_block": 6, "growth": 32}, 5_466_497, id="RDN-A-gray"),
    pytest.param(IRUNet, (2, 3, 3), {"features": 16}, 123_379, id="IRUNet-f16-RGB"),
    pytest.param(IRUNet, (2, 1, 1), {"features": 16}, 123_057, id="IRUNet-f16-gray"),
    pytest.param(ConvDAE, (2, 1, 1), {}, 112_001, id="ConvDAE-gray"),
    # DRAN, 1 channel, 64 features, 3 DISTINCT stages:
    #   head 1·64·9 = 576, tail 64·9·1 = 576 (both without bias)
    #   dynamic conv = 4 kernels·64·64·9 (147,456) + 4·64 biases (256) + attention 64·16 (1,024) + 16·4 (64)
    #                = 148,800; + BatchNorm 2·64 = 148,928; × 5 per stage = 744,640
    #   gate = 2 · (64·64·9 + 64) = 73,856
    #   total = 576 + 576 + 3 · (744,640 + 73,856) = 2,456,640
    # (networks.md's 967,360 counts one shared stage's dynamic convs + three gates, see test_dran.py)
    pytest.param(DRAN, (2, 1, 1), {}, 2_456_640, id="DRAN-gray"),
    pytest.param(DRAN, (2, 3, 3), {}, 2_458_944, id="DRAN-RGB"),
    pytest.param(KPN, (2, 9), {"burst": 8, "noise_map": True}, 28_743_264, id="KPN-paper-N8-sigma"),
    pytest.param(KPN, (2, 2), {"noise_map": True}, 27_385_607, id="KPN-paper-1frame-sigma"),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 OpenMP threads run up to 10x slower under contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _first_weight(net: torch.nn.Module) -> torch.Tensor:
    return next(p for p in net.parameters() if p.dim() > 1)


@pytest.mark.parametrize("name, dims", CONTRACT_CASES, ids=[f"{n}-{d}d" for n, d in CONTRACT_CASES])
def test_forward_contract(name: str, dims: int) -> None:
    torch.manual_seed(0)
    spec = get_network_spec(name)
    net = create_network(name, spatial_dims=dims, **_small(name, dims))
    batch, *spatial = SHAPES[dims]
    in_channels = spec.burst + int(spec.noise_map)
    x = torch.rand(batch, in_channels, *spatial)

    y = net(x)
    assert y.shape == (batch, 1, *spatial)
    assert y.dtype == x.dtype
    assert torch.isfinite(y).all()

    weight = _first_weight(net)
    y.mean().backward()
    if not weight.grad.abs().sum() > 0:
        # DRAN and KPN start with a zero output conv (identity at init), which blocks the very first
        # backward by design; after one optimiser step the gradient must reach the first layer.
        torch.optim.SGD(net.parameters(), lr=0.1).step()
        net.zero_grad()
        net(x).mean().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    assert torch.isfinite(weight.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_signature_and_attributes(name: str) -> None:
    spec = get_network_spec(name)
    params = list(inspect.signature(spec.cls).parameters.values())
    assert [p.name for p in params[:3]] == ["spatial_dims", "in_channels", "out_channels"]
    assert all(p.default is not inspect.Parameter.empty for p in params[3:])
    net = create_network(name) if name not in ("rdn", "kpn") else create_network(name, spatial_dims=2)
    assert net.receptive_field is None or (isinstance(net.receptive_field, int) and net.receptive_field >= 3)
    assert isinstance(net.size_multiple, int) and net.size_multiple >= 1


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("rdn", "rdn-a", "kpn")])
def test_bf16_autocast_channels_last(name: str) -> None:
    """The training setting: bf16 autocast and channels_last; the output keeps the input's dtype and shape."""
    torch.manual_seed(0)
    net = create_network(name).to(memory_format=torch.channels_last)
    x = torch.rand(2, net.in_channels, 37, 41).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x)
    assert y.shape == (2, 1, 37, 41) and y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_receptive_fields() -> None:
    assert DnCNN(2, 1, 1).receptive_field == 35
    assert DnCNN(2, 1, 1, depth=20).receptive_field == 41
    assert RDN(2, 1, 1).receptive_field == 265
    assert ConvDAE(2, 1, 1).receptive_field == 24
    assert DRAN(2, 1, 1).receptive_field is None
    assert IRUNet(2, 1, 1).size_multiple == 16
    assert ConvDAE(2, 1, 1, levels=3).size_multiple == 8
    assert KPN(2, 1).size_multiple == 16


def test_receptive_field_is_exact_for_dncnn() -> None:
    """An impulse at the centre changes exactly a (2·depth+1)-wide square of DnCNN's output."""
    net = DnCNN(2, 1, 1, features=4, depth=4, norm=None).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.rand_like(p) + 0.1)  # positive weights: no cancellation, ReLUs always on
        x = torch.zeros(1, 1, 21, 21)
        base = net(x)
        x[0, 0, 10, 10] = 1.0
        changed = (net(x) - base).abs()[0, 0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert (rows.max() - rows.min() + 1).item() == net.receptive_field
    assert (cols.max() - cols.min() + 1).item() == net.receptive_field


@pytest.mark.parametrize("cls, args, kwargs, expected", PARAM_CASES)
def test_parameter_counts(cls: type, args: tuple, kwargs: dict, expected: int) -> None:
    assert count_parameters(cls(*args, **kwargs)) == expected


RESIDUAL_CASES = [
    # (in_channels, out_channels, reference channels)
    (1, 1, [0]),
    (3, 3, [0, 1, 2]),
    (2, 1, [0]),  # image + noise map
    (3, 1, [1]),  # burst of 3: centre frame
    (4, 1, [1]),  # burst of 3 + noise map
    (4, 3, [0, 1, 2]),  # RGB + noise map
]


@pytest.mark.parametrize("in_channels, out_channels, expected", RESIDUAL_CASES)
def test_reference_channels(in_channels: int, out_channels: int, expected: list[int]) -> None:
    assert list(range(in_channels))[reference_slice(in_channels, out_channels)] == expected
    # an untrained DRAN is the identity on its reference channels
    net = DRAN(2, in_channels, out_channels, features=8, num_stages=1, convs_per_stage=1).eval()
    x = torch.rand(1, in_channels, 9, 11)
    with torch.no_grad():
        assert torch.equal(net(x), x[:, expected])


def test_residual_networks_reject_impossible_channel_pairs() -> None:
    for cls in (DnCNN, DRAN, RDN):
        with pytest.raises(ValueError, match="in_channels"):
            cls(2, 1, 3)
    assert ConvDAE(2, 1, 3)(torch.rand(1, 1, 8, 8)).shape == (1, 3, 8, 8)  # direct output: any pair
    assert ConvDAE(2, 1, 3, refine_convs=2)(torch.rand(1, 1, 8, 8)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="refine_convs"):
        ConvDAE(2, 1, 1, refine_convs=-1)


BAD_ARGS = [
    (DnCNN, (1, 1, 1), {}, "spatial_dims"),
    (DnCNN, (2, 1, 1), {"depth": 1}, "depth"),
    (DnCNN, (2, 0, 1), {}, "in_channels"),
    (DRAN, (4, 1, 1), {}, "spatial_dims"),
    (DRAN, (2, 1, 1), {"num_stages": 0}, "num_stages"),
    (IRUNet, (2, 1, 1), {"levels": 0}, "levels"),
    (RDN, (2, 1, 1), {"growth": 0}, "growth"),
    (ConvDAE, (2, 1, 1), {"features": -1}, "features"),
    (KPN, (2, 1, 2), {}, "out_channels"),
    (KPN, (2, 1), {"kernel_size": 4}, "kernel_size"),
    (KPN, (2, 1), {"features": (8, 16)}, "features"),
    (KPN, (2, 3), {"burst": 2}, "burst"),
]


@pytest.mark.parametrize("cls, args, kwargs, arg_name", BAD_ARGS)
def test_bad_arguments_raise_value_error(cls: type, args: tuple, kwargs: dict, arg_name: str) -> None:
    with pytest.raises(ValueError, match=arg_name):
        cls(*args, **kwargs)


PAD_CASES = [
    # (shape, multiple, padded spatial shape)
    ((1, 1, 37, 41), 16, (48, 48)),
    ((2, 3, 32, 16), 16, (32, 16)),
    ((1, 1, 19, 23, 17), 4, (20, 24, 20)),
    ((1, 1, 3, 5), 16, (16, 16)),  # too small to reflect: replication
]


@pytest.mark.parametrize("shape, multiple, padded_shape", PAD_CASES)
def test_pad_to_multiple(shape: tuple, multiple: int, padded_shape: tuple) -> None:
    x = torch.rand(shape)
    padded, crop = pad_to_multiple(x, multiple)
    assert padded.shape[:2] == x.shape[:2] and tuple(padded.shape[2:]) == padded_shape
    assert torch.equal(padded[crop], x)


def test_pad_to_multiple_reflects_when_possible() -> None:
    x = torch.arange(6.0).reshape(1, 1, 1, 6).expand(1, 1, 6, 6)
    padded, _ = pad_to_multiple(x, 4)  # 6 → 8: one pixel each side
    assert padded[0, 0, 0].tolist() == [1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 4.0]
    tiny = torch.arange(2.0).reshape(1, 1, 1, 2)
    padded, _ = pad_to_multiple(tiny, 8)  # 2 → 8 cannot reflect: replicate
    assert padded[0, 0, 0].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="multiple"):
        pad_to_multiple(x, 0)


def test_no_direct_nn_conv_or_batchnorm_layers() -> None:
    """House style: layers come from MONAI factories (one class serves 2D and 3D)."""
    folder = Path(networks.__file__).resolve().parent
    for path in folder.glob("*.py"):
        assert not re.search(r"nn\.(Conv|BatchNorm|ConvTranspose)[123]d", path.read_text()), path.name


def test_every_module_declares_all() -> None:
    for name in ["_utils", "dncnn", "dran", "irunet", "rdn", "conv_dae", "kpn", "registry"]:
        module = importlib.import_module(f"meddenoiselib.networks.{name}")
        assert module.__all__ and all(hasattr(module, item) for item in module.__all__)
    assert sorted(networks.__all__) == sorted(set(networks.__all__))
    assert all(hasattr(networks, item) for item in networks.__all__)


NETWORK_CLASSES = (ConvDAE, DnCNN, DRAN, IRUNet, KPN, RDN)


@pytest.mark.parametrize("cls", NETWORK_CLASSES, ids=lambda c: c.__name__)
def test_width_is_called_features_and_the_activation_is_a_parameter(cls) -> None:
    parameters = inspect.signature(cls).parameters
    assert "features" in parameters and not {"filters", "channels"} & set(parameters)
    assert "act" in parameters


@pytest.mark.parametrize("name", ["kpn-small", "irunet", "rdn-small", "dncnn-small", "conv-dae-skip", "dran-small"])
def test_act_parameter_changes_the_activation_and_keeps_the_weights_layout(name) -> None:
    torch.manual_seed(0)
    relu = create_network(name)
    prelu = create_network(name, act="prelu")
    assert any(isinstance(m, torch.nn.PReLU) for m in prelu.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in prelu.modules())
    # the convs are where they were: a ReLU network's weights load into the PReLU one (PReLU adds its slopes)
    missing, unexpected = prelu.load_state_dict(relu.state_dict(), strict=False)
    slopes = {f"{path}.weight" for path, m in prelu.named_modules() if isinstance(m, torch.nn.PReLU)}
    assert not unexpected and set(missing) == slopes
    x = torch.rand(1, prelu.in_channels, 32, 32)
    with torch.no_grad():
        assert prelu.eval()(x).shape == (1, 1, 32, 32)


def test_unknown_activation_is_refused_with_the_parameter_named() -> None:
    with pytest.raises(ValueError, match="`act`"):
        create_network("kpn-small", act="no-such-activation")


def test_dran_norm_parameter() -> None:
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in create_network("dran-small", norm=None).modules())
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in create_network("dran-small", norm="instance").modules())


@pytest.mark.parametrize(("name", "old", "value"), [("irunet", "filters", 8), ("kpn-small", "channels", (8, 16, 16))])
def test_old_width_names_from_older_cards_still_load(name, old, value) -> None:
    with pytest.warns(DeprecationWarning, match="features"):
        legacy = create_network(name, **{old: value})
    assert count_parameters(legacy) == count_parameters(create_network(name, features=value))
