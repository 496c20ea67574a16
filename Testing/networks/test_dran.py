"""DRAN: distinct stages, dynamic-conv attention and temperature, equivalence with a per-sample conv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from meddenoiselib.networks import DRAN, DynamicConv, GatedConv, count_parameters

DIMS = [2, 3]
SHAPES = {2: (3, 8, 13, 11), 3: (2, 8, 7, 9, 6)}  # (B, C, *spatial)


def test_stages_are_distinct_modules_with_different_weights() -> None:
    torch.manual_seed(0)
    net = DRAN(2, 1, 1, features=16)
    assert len(net.stages) == 3
    pointers = [{p.data_ptr() for p in stage.parameters()} for stage in net.stages]
    assert not (pointers[0] & pointers[1]) and not (pointers[0] & pointers[2]) and not (pointers[1] & pointers[2])
    for a, b in [(0, 1), (0, 2), (1, 2)]:
        pairs = zip(net.stages[a].named_parameters(), net.stages[b].named_parameters(), strict=True)
        # every weight differs; BatchNorm scales (ones) and biases (zeros) start equal by design
        weights = [(pa, pb) for (name, pa), (_, pb) in pairs if name.endswith("weight") and pa.dim() > 1]
        assert len(weights) == 5 * 3 + 2  # per dynamic conv: kernels, 2 attention convs; gate: feature, mask
        for pa, pb in weights:
            assert not torch.equal(pa, pb)
    assert len(net.dynamic_convs()) == 3 * 5


def test_parameter_count_against_the_shared_weight_original() -> None:
    net = DRAN(2, 1, 1)
    assert count_parameters(net) == 2_456_640  # derivation in test_networks.PARAM_CASES
    head, tail = count_parameters(net.head), count_parameters(net.tail)
    main, gate = count_parameters(net.stages[0].main), count_parameters(net.stages[0].gate)
    assert (head, tail, main, gate) == (576, 576, 744_640, 73_856)
    # the original calls one stage's main branch three times with three gates: 967,360 parameters used
    assert head + tail + main + 3 * gate == 967_360


@pytest.mark.parametrize("dims", DIMS)
def test_attention_sums_to_one_per_sample(dims: int) -> None:
    torch.manual_seed(0)
    conv = DynamicConv(dims, 8, 4, num_kernels=4)
    x = torch.randn(SHAPES[dims])
    pi = conv.attention(x)
    assert pi.shape == (x.shape[0], 4)
    assert (pi > 0).all()
    torch.testing.assert_close(pi.sum(dim=1), torch.ones(x.shape[0]))
    assert not torch.allclose(pi[0], pi[1])  # per-sample weights


@pytest.mark.parametrize("dims", DIMS)
def test_dynamic_conv_equals_per_sample_mixed_conv(dims: int) -> None:
    torch.manual_seed(0)
    conv = DynamicConv(dims, 8, 5, num_kernels=3, temperature=1.0)
    with torch.no_grad():
        conv.bias.normal_()  # exercise the bias mixing too
    x = torch.randn(SHAPES[dims])
    y = conv(x)
    assert y.shape == (x.shape[0], 5, *x.shape[2:])
    pi = conv.attention(x)
    kernels = conv.weight.reshape(3, 5, 8, *([3] * dims))
    conv_fn = F.conv2d if dims == 2 else F.conv3d
    for b in range(x.shape[0]):
        weight = (pi[b].view(-1, *[1] * (dims + 2)) * kernels).sum(0)
        bias = (pi[b, :, None] * conv.bias).sum(0)
        expected = conv_fn(x[b : b + 1], weight, bias, padding=1)
        torch.testing.assert_close(y[b : b + 1], expected, rtol=1e-4, atol=1e-5)


def test_dynamic_conv_bias_starts_at_zero() -> None:
    conv = DynamicConv(2, 4, 4)
    assert conv.bias.shape == (4, 4) and torch.equal(conv.bias, torch.zeros(4, 4))


def test_temperature_is_a_buffer_and_controls_sharpness() -> None:
    torch.manual_seed(0)
    net = DRAN(2, 1, 1, features=16, num_stages=1, convs_per_stage=2)
    state = net.state_dict()
    keys = [k for k in state if k.endswith("temperature")]
    assert len(keys) == 2 and all(float(state[k]) == 34.0 for k in keys)

    conv = net.dynamic_convs()[0]
    x = torch.rand(4, 16, 9, 9) * torch.arange(1.0, 5.0).view(4, 1, 1, 1)

    def entropy(pi: torch.Tensor) -> torch.Tensor:
        return -(pi * pi.log()).sum(dim=1)

    warm = conv.attention(x)
    net.set_temperature(0.5)
    assert all(float(m.temperature) == 0.5 for m in net.dynamic_convs())
    assert float(net.state_dict()[keys[0]]) == 0.5
    cold = conv.attention(x)
    assert (entropy(cold) < entropy(warm)).all()
    assert (cold.max(dim=1).values > warm.max(dim=1).values).all()
    torch.testing.assert_close(cold.sum(dim=1), torch.ones(4))

    restored = DRAN(2, 1, 1, features=16, num_stages=1, convs_per_stage=2)
    restored.load_state_dict(net.state_dict())
    assert float(restored.dynamic_convs()[1].temperature) == 0.5
    with pytest.raises(ValueError, match="temperature"):
        conv.set_temperature(0.0)


@pytest.mark.parametrize("dims", DIMS)
def test_gated_conv_keeps_size_and_gates(dims: int) -> None:
    torch.manual_seed(0)
    gate = GatedConv(dims, 8, 6)
    x = torch.randn(SHAPES[dims])
    y = gate(x)
    assert y.shape == (x.shape[0], 6, *x.shape[2:])
    with torch.no_grad():
        gate.mask.bias.fill_(-1e4)  # closed gate: sigmoid → 0
    assert gate(x).abs().max() == 0
    assert GatedConv(dims, 2, 2)(torch.randn(1, 2, *([1] * dims))).shape == (1, 2, *([1] * dims))  # replicate pad
    with pytest.raises(ValueError, match="kernel_size"):
        GatedConv(dims, 2, 2, kernel_size=4)


@pytest.mark.parametrize("dims", DIMS)
def test_untrained_dran_is_identity_and_output_is_residual(dims: int) -> None:
    torch.manual_seed(0)
    net = DRAN(dims, 1, 1, features=8, num_stages=2, convs_per_stage=2).eval()
    x = torch.rand(2, 1, *SHAPES[dims][2:])
    with torch.no_grad():
        assert torch.equal(net(x), x)  # zero-initialised tail
        net.tail.weight.normal_()
        residual = torch.tanh(net.tail(net.stages[1](net.stages[0](net.head(x)))))
        torch.testing.assert_close(net(x), x - residual)
