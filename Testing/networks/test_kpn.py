"""KPN: kernel application (delta, reference implementation, bias), delta initialisation, burst and noise map."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from meddenoiselib.networks import KPN, apply_kernels

DIMS = [2, 3]
SPATIAL = {2: (13, 10), 3: (7, 6, 9)}
SMALL = {"features": (4, 8, 8), "convs_per_block": 1}


def _delta_kernels(b: int, n: int, k: int, dims: int, spatial: tuple, frame: int | None = None) -> torch.Tensor:
    """Centred delta kernels: weight 1 on ``frame`` (or on every frame if None), 0 elsewhere."""
    taps = k**dims
    kernels = torch.zeros(b, n, taps, *spatial)
    for f in range(n) if frame is None else [frame]:
        kernels[:, f, taps // 2] = 1.0
    return kernels.reshape(b, n * taps, *spatial)


def _reference_apply(frames: torch.Tensor, kernels: torch.Tensor, k: int) -> torch.Tensor:
    """Slow, obviously-correct version: explicit offset loop over a replicate-padded copy."""
    b, n, *spatial = frames.shape
    dims = len(spatial)
    r = k // 2
    padded = F.pad(frames, [r] * (2 * dims), mode="replicate")
    kernels = kernels.reshape(b, n, -1, *spatial)
    out = torch.zeros(b, 1, *spatial, dtype=torch.float64)
    offsets = torch.cartesian_prod(*[torch.arange(k)] * dims).reshape(-1, dims)
    for o, off in enumerate(offsets.tolist()):
        window = padded[(slice(None), slice(None)) + tuple(slice(d, d + s) for d, s in zip(off, spatial, strict=True))]
        out += (kernels[:, :, o].double() * window.double()).sum(dim=1, keepdim=True)
    return out


@pytest.mark.parametrize("dims", DIMS)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_delta_kernels_reproduce_the_frame_exactly(dims: int, k: int) -> None:
    frames = torch.rand(2, 3, *SPATIAL[dims])
    for frame in range(3):
        out = apply_kernels(frames, _delta_kernels(2, 3, k, dims, SPATIAL[dims], frame), k)
        assert out.shape == (2, 1, *SPATIAL[dims])
        assert torch.equal(out, frames[:, frame : frame + 1])


@pytest.mark.parametrize("dims", DIMS)
def test_apply_kernels_matches_reference_and_uses_replicate_borders(dims: int) -> None:
    torch.manual_seed(0)
    k, n = 3, 2
    frames = torch.rand(2, n, *SPATIAL[dims])
    kernels = torch.randn(2, n * k**dims, *SPATIAL[dims])
    out = apply_kernels(frames, kernels, k)
    torch.testing.assert_close(out.double(), _reference_apply(frames, kernels, k), rtol=1e-5, atol=1e-5)
    # a kernel that reads only its "up/left" neighbour copies the border pixel at the border (replicate)
    shift = torch.zeros(1, k**dims, *SPATIAL[dims])
    shift[:, 0] = 1.0
    out = apply_kernels(frames[:1, :1], shift, k)
    corner = (0, 0) + (0,) * dims
    assert out[corner] == frames[corner]


def test_channels_last_kernels_give_the_same_result_and_gradients() -> None:
    """The CPU inference path hands channels-last kernels to a separate 2D branch: same values, same gradients."""
    torch.manual_seed(0)
    k, n = 5, 3
    frames = torch.rand(2, n, 12, 10)
    kernels = torch.randn(2, n * k * k, 12, 10)
    results = []
    for layout in (torch.contiguous_format, torch.channels_last):
        f = frames.clone().contiguous(memory_format=layout).detach().requires_grad_()
        w = kernels.clone().contiguous(memory_format=layout).detach().requires_grad_()
        out = apply_kernels(f, w, k)
        (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
        results.append((out.detach(), f.grad, w.grad))
    assert kernels.contiguous(memory_format=torch.channels_last).is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(results[0][0].double(), _reference_apply(frames, kernels, k), rtol=1e-5, atol=1e-5)
    for first, second in zip(*results, strict=True):
        torch.testing.assert_close(first, second, rtol=1e-5, atol=1e-5)


def test_apply_kernels_bias_and_errors() -> None:
    frames = torch.rand(1, 2, 6, 7)
    kernels = _delta_kernels(1, 2, 3, 2, (6, 7), frame=0)
    bias = torch.rand(1, 2, 6, 7)
    torch.testing.assert_close(apply_kernels(frames, kernels, 3, bias), frames[:, :1] + bias.sum(1, keepdim=True))
    with pytest.raises(ValueError, match="kernel_size"):
        apply_kernels(frames, kernels, 2)
    with pytest.raises(ValueError, match="kernels"):
        apply_kernels(frames, kernels[:, :9], 3)
    with pytest.raises(ValueError, match="frames"):
        apply_kernels(frames[0], kernels[0], 3)
    with pytest.raises(ValueError, match="bias"):
        apply_kernels(frames, kernels, 3, bias[..., :3])


@pytest.mark.parametrize("dims", DIMS)
def test_single_frame_kpn_starts_as_exact_identity(dims: int) -> None:
    torch.manual_seed(0)
    net = KPN(dims, 1, **SMALL).eval()
    x = torch.rand(2, 1, *SPATIAL[dims])
    with torch.no_grad():
        assert torch.equal(net(x), x)
        # the predicted kernels are exactly the centred delta everywhere
        kernels = net.predict_kernels(torch.rand(1, 1, *([8] * dims)))
        assert torch.equal(kernels, _delta_kernels(1, 1, 5, dims, (8,) * dims))


@pytest.mark.parametrize("dims", DIMS)
def test_burst_kpn_starts_as_frame_mean_and_uses_every_frame(dims: int) -> None:
    torch.manual_seed(0)
    net = KPN(dims, 3, kernel_size=3, **SMALL).eval()
    assert net.burst == 3
    x = torch.rand(1, 3, *SPATIAL[dims])
    with torch.no_grad():
        torch.testing.assert_close(net(x), x.mean(dim=1, keepdim=True))
        net.out.weight.normal_(std=0.05)  # a "trained" state: kernels depend on the content
        base = net(x)
        for frame in range(3):
            changed = x.clone()
            changed[:, frame] += 0.1 * torch.rand_like(changed[:, frame])
            assert not torch.allclose(net(changed), base), f"frame {frame} is ignored"


def test_noise_map_is_last_channel_and_not_filtered() -> None:
    torch.manual_seed(0)
    net = KPN(2, 4, noise_map=True, kernel_size=3, **SMALL).eval()
    assert net.burst == 3 and net.noise_map
    x = torch.rand(1, 4, 12, 12)
    with torch.no_grad():
        # kernels are only predicted for the 3 frames: the output is their mean, the map is not filtered
        torch.testing.assert_close(net(x), x[:, :3].mean(dim=1, keepdim=True))
        net.out.weight.normal_(std=0.05)
        base = net(x)
        changed = x.clone()
        changed[:, 3] += 0.5
        assert not torch.allclose(net(changed), base)  # the map conditions the kernels


def test_core_bias_and_kernel_channel_count() -> None:
    net = KPN(2, 2, kernel_size=3, core_bias=True, **SMALL)
    assert net.out.out_channels == 2 * 9 + 2
    assert KPN(3, 1, kernel_size=3, **SMALL).out.out_channels == 27
    x = torch.rand(1, 2, 9, 10)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), x.mean(dim=1, keepdim=True))


def test_paper_decoder_layout() -> None:
    """The level-1 decoder block outputs the kernels at half resolution; a 1×1 conv follows the final upsample."""
    net = KPN(2, 9, burst=8, noise_map=True)
    assert [block[0].in_channels for block in net.decoder] == [1024, 768, 384]
    assert [block[-2].out_channels for block in net.decoder] == [512, 256, 200]
    assert (net.out.in_channels, net.out.out_channels, net.out.kernel_size) == (200, 200, (1, 1))


def test_coarse_kernels_start_at_zero_and_filter_the_half_resolution_frames() -> None:
    """The two-scale KPN starts as the one-scale KPN; its coarse kernels act on the 2x2-averaged frames."""
    torch.manual_seed(0)
    single = KPN(2, 3, kernel_size=3, **SMALL).eval()
    two = KPN(2, 3, kernel_size=3, coarse_kernels=True, **SMALL).eval()
    assert two.out_coarse.out_channels == 3 * 9
    assert two.load_state_dict(single.state_dict(), strict=False).missing_keys == [
        "out_coarse.weight",
        "out_coarse.bias",
    ]
    x = torch.rand(2, 3, 13, 10)  # odd size: the input is padded for the U-Net and the result cropped back
    with torch.no_grad():
        torch.testing.assert_close(two(x), single(x), rtol=0, atol=0)
        # coarse kernels = a centred delta on frame 1: the output gains frame 1 averaged 2x2 and upsampled back
        two.out_coarse.bias[9 + 4] = 1.0
        xp = F.pad(x, (1, 1, 1, 2), mode="reflect")  # pad_to_multiple: 13x10 -> 16x12 (size_multiple 4)
        coarse = F.interpolate(F.avg_pool2d(xp[:, 1:2], 2), scale_factor=2, mode="bilinear", align_corners=False)
        expected = single(x) + coarse[:, :, 1:14, 1:11]
        torch.testing.assert_close(two(x), expected, rtol=1e-5, atol=1e-6)
        # and it is a true second scale: a pattern alternating pixel by pixel averages out at half resolution
        checker = (torch.arange(14)[:, None] + torch.arange(12)[None, :]) % 2
        y = checker.float().expand(1, 3, 14, 12).contiguous()
        torch.testing.assert_close(two(y) - single(y), torch.full((1, 1, 14, 12), 0.5), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dims", DIMS)
def test_dilated_kernels_read_every_second_pixel(dims) -> None:
    """dilation 2: a 3-tap kernel reads the pixels 2 apart, as the 5-tap kernel with zeros between its taps does."""
    torch.manual_seed(1)
    spatial = SPATIAL[dims]
    frames = torch.rand(2, 2, *spatial)
    kernels = torch.randn(2, 2 * 3**dims, *spatial)
    # the same taps spread over a 5^d kernel, zeros between them
    wide = torch.zeros(2, 2, *([5] * dims), *spatial)
    index = (slice(None), slice(None)) + (slice(None, None, 2),) * dims
    wide[index] = kernels.reshape(2, 2, *([3] * dims), *spatial)
    expected = _reference_apply(frames, wide.reshape(2, 2 * 5**dims, *spatial), 5)
    got = apply_kernels(frames, kernels, 3, dilation=2)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)
    if dims == 2:  # the channels-last path of CPU inference reads the same taps
        cl = apply_kernels(frames, kernels.contiguous(memory_format=torch.channels_last), 3, dilation=2)
        torch.testing.assert_close(cl.double(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="dilation"):
        apply_kernels(frames, kernels, 3, dilation=0)


def test_dilated_kernels_start_at_zero_and_reach_two_pixels_further() -> None:
    """The KPN with dilated kernels starts as the one without; a centred-delta dilated kernel adds the frame itself,
    an off-centre one the pixel two away."""
    torch.manual_seed(0)
    two = KPN(2, 3, kernel_size=3, coarse_kernels=True, **SMALL).eval()
    three = KPN(2, 3, kernel_size=3, coarse_kernels=True, dilated_kernels=True, **SMALL).eval()
    assert three.load_state_dict(two.state_dict(), strict=False).missing_keys == [
        "out_dilated.weight",
        "out_dilated.bias",
    ]
    x = torch.rand(1, 3, 13, 10)
    with torch.no_grad():
        torch.testing.assert_close(three(x), two(x), rtol=0, atol=0)
        three.out_dilated.bias[9 + 5] = 1.0  # frame 1, tap (row 0, column +1): the pixel 2 to the right
        shifted = F.pad(x[:, 1:2], (0, 2, 0, 0), mode="replicate")[..., 2:]
        torch.testing.assert_close(three(x), two(x) + shifted, rtol=1e-5, atol=1e-6)


def test_wide_coarse_kernels_start_at_zero_and_read_every_second_coarse_pixel() -> None:
    """The KPN with wide coarse kernels starts as the two-scale one; a wide coarse kernel whose one tap sits one
    (dilated) step to the right adds the 2x2-averaged frame 4 pixels to the right, upsampled to full resolution."""
    torch.manual_seed(0)
    two = KPN(2, 3, kernel_size=3, coarse_kernels=True, **SMALL).eval()
    wide = KPN(2, 3, kernel_size=3, coarse_kernels=True, wide_coarse_kernels=True, **SMALL).eval()
    assert wide.load_state_dict(two.state_dict(), strict=False).missing_keys == [
        "out_wide_coarse.weight",
        "out_wide_coarse.bias",
    ]
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(wide(x), two(x), rtol=0, atol=0)
        wide.out_wide_coarse.bias[9 + 5] = 1.0  # frame 1, tap (row 0, column +1): 2 coarse pixels to the right
        pooled = F.avg_pool2d(x[:, 1:2], 2)
        shifted = F.pad(pooled, (0, 2, 0, 0), mode="replicate")[..., 2:]
        expected = F.interpolate(shifted, scale_factor=2, mode="bilinear", align_corners=False)
        torch.testing.assert_close(wide(x), two(x) + expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="coarse_kernels"):
        KPN(2, 3, wide_coarse_kernels=True, **SMALL)


def test_full_res_head_gates_every_frames_kernels_pixel_by_pixel() -> None:
    """The head starts with no effect; once trained it scales each tap by ``1 + g`` with ``g`` read from the first
    block's full-resolution features at that very pixel (not upsampled from half resolution), in every frame."""
    torch.manual_seed(0)
    plain = KPN(2, 3, kernel_size=3, **SMALL).eval()
    gated = KPN(2, 3, kernel_size=3, full_res_head=True, **SMALL).eval()
    assert gated.load_state_dict(plain.state_dict(), strict=False).missing_keys == [
        "full_res_head.weight",
        "full_res_head.bias",
    ]
    assert gated.full_res_head.out_channels == 9  # one gate per tap, shared by the 3 frames
    x = torch.rand(2, 3, 13, 10)
    with torch.no_grad():
        torch.testing.assert_close(gated(x), plain(x), rtol=0, atol=0)
        # untrained kernels are the centred delta 1/3 on each frame (the mean); gate the centre tap by 1 + w . f(p)
        gated.full_res_head.weight[4].normal_(std=0.5)
        xp = F.pad(x, (1, 1, 1, 2), mode="reflect")  # the U-Net's padding: 13x10 -> 16x12
        features = gated.encoder[0](xp)[:, :, 1:14, 1:11]
        gate = 1 + torch.einsum("bchw,c->bhw", features, gated.full_res_head.weight[4, :, 0, 0]).unsqueeze(1)
        expected = x.mean(dim=1, keepdim=True) * gate
        torch.testing.assert_close(gated(x), expected, rtol=1e-5, atol=1e-6)
        # the CPU inference path (channels-last) gates the same taps
        cl = gated(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(cl, expected, rtol=1e-5, atol=1e-6)
        assert gate.std() > 0.01  # the gate does change from pixel to pixel


def test_kernels_are_predicted_and_applied_in_float32_under_bf16_autocast() -> None:
    """Under bf16 autocast only the U-Net runs in bf16: a kernel weight bf16 cannot hold (0.3337, bf16 0.3340) still
    weights the frames exactly, as ~0.1 % of a CT value (0.5 of the map, water) is a visible HU offset."""
    net = KPN(2, 3, kernel_size=3, **SMALL).eval()
    with torch.no_grad():
        net.out.bias[[4, 13, 22]] = 0.3337  # the centre tap of each frame; the out conv's weights are zero
    x = torch.rand(1, 3, 16, 16) * 0.2 + 0.4
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = net(x)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, 0.3337 * x.sum(dim=1, keepdim=True), rtol=1e-6, atol=1e-6)
