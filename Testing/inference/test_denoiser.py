"""The Denoiser: exact sliding windows, geometry and dtype kept, baselines behind the same call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from meddenoiselib import MedDenoiseError
from meddenoiselib.inference import Denoiser, HaloPredictor, build_inferer
from meddenoiselib.io import Volume, VolumeSeries, read_volume
from meddenoiselib.networks import create_network
from meddenoiselib.weights import save_weights

#: a 5-layer, 8-feature DnCNN: the same code path as the shipped networks at a fraction of the cost, for tests about
#: geometry, dtype and blending rather than about what a network learned
TINY = {"features": 8, "depth": 5}


def _random_weights(tmp_path, network="dncnn-small", spatial_dims=2, seed=0, overrides=None, **card_arch):
    overrides = dict(overrides or {})
    with torch.random.fork_rng():
        torch.random.manual_seed(seed)
        model = create_network(network, spatial_dims=spatial_dims, **overrides)
    # non-trivial BatchNorm statistics so eval mode is not the identity
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    arch = {
        "network": network,
        "spatial_dims": spatial_dims,
        "in_channels": 1,
        "out_channels": 1,
        "overrides": overrides,
        "burst": 1,
        "noise_map": False,
    }
    arch.update(card_arch)
    path = save_weights(model.eval(), tmp_path / f"{network}.safetensors", {"name": network, "architecture": arch})
    return path, model.eval()


@pytest.mark.parametrize("roi, overlap", [(64, 0.25), (48, 0.0), (96, 0.5)])
def test_sliding_window_equals_whole_image_for_finite_receptive_field(tmp_path, ct_crop, roi, overlap):
    path, model = _random_weights(tmp_path)
    image = np.pad(ct_crop, ((5, 20), (0, 37)), mode="reflect")  # 153 x 165: not a multiple of anything
    with torch.inference_mode():
        whole = model(torch.from_numpy(image)[None, None])[0, 0].numpy()
    denoiser = Denoiser(weights=path, roi_size=roi, overlap=overlap, precision="fp32", device="cpu", ensemble=1)
    tiled = denoiser.denoise_array(image)
    assert np.abs(tiled - whole).max() < 1e-4
    # without the halo, plain windows would differ: the test can fail
    inputs = torch.from_numpy(image)[None, None]
    inferer = build_inferer(image.shape, (roi, roi), overlap, 4)
    with torch.inference_mode():
        plain = inferer(inputs, HaloPredictor(model, inputs, halo=0))[0, 0].numpy()
    assert np.abs(plain - whole).max() > 1e-3


def test_roi_larger_than_image_is_one_exact_window(tmp_path, ct_crop):
    path, model = _random_weights(tmp_path)
    with torch.inference_mode():
        whole = model(torch.from_numpy(ct_crop)[None, None])[0, 0].numpy()
    tiled = Denoiser(weights=path, roi_size=512, precision="fp32", device="cpu", ensemble=1).denoise_array(ct_crop)
    assert np.abs(tiled - whole).max() < 1e-5


def test_denoise_keeps_geometry_dtype_and_metadata(tmp_path, ct_series_dir):
    path, _ = _random_weights(tmp_path, overrides=TINY)
    volume = read_volume(ct_series_dir)
    result = Denoiser(weights=path, roi_size=128, device="cpu").denoise(volume)
    assert result.same_geometry(volume) and result.array.dtype == volume.array.dtype
    assert result.metadata == volume.metadata and result.source == volume.source
    assert not np.array_equal(result.array, volume.array)


def test_strength_zero_returns_the_input(tmp_path, ct_series_dir):
    path, _ = _random_weights(tmp_path, overrides=TINY)
    volume = read_volume(ct_series_dir)
    result = Denoiser(weights=path, strength=0.0, device="cpu").denoise(volume)
    np.testing.assert_array_equal(result.array, volume.array)


def test_slice_axis_defaults_to_largest_spacing(tmp_path):
    denoiser = Denoiser("median")
    array = np.zeros((10, 20, 30), np.float32)
    assert denoiser.slice_axis_for(Volume(array, spacing=(0.5, 0.5, 3.0))) == 0
    assert denoiser.slice_axis_for(Volume(array, spacing=(4.0, 1.0, 1.0))) == 2
    assert denoiser.slice_axis_for(Volume(array, spacing=(1.0, 1.0, 1.0))) == 0


def test_three_dimensional_model_on_a_volume(tmp_path):
    path, model = _random_weights(tmp_path, spatial_dims=3)
    volume = np.random.default_rng(0).random((20, 26, 30)).astype(np.float32)
    with torch.inference_mode():
        whole = model(torch.from_numpy(volume)[None, None])[0, 0].numpy()
    calls = []
    denoiser = Denoiser(
        weights=path,
        roi_size=16,
        overlap=0.25,
        precision="fp32",
        device="cpu",
        progress_callback=lambda f, m: calls.append(f),
    )
    tiled = denoiser.denoise_array(volume)
    assert np.abs(tiled - whole).max() < 1e-4
    assert calls == sorted(calls) and calls[-1] == pytest.approx(1.0)


def test_rgb_images_are_denoised_per_channel():
    rng = np.random.default_rng(0)
    clean = np.kron(rng.integers(30, 220, size=(1, 8, 8, 3)), np.ones((1, 8, 8, 1))).astype(np.float64)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    volume = Volume(noisy)
    result = Denoiser("median").denoise(volume, sigma=20 / 255)
    assert result.array.shape == noisy.shape and result.array.dtype == np.uint8
    for c in range(3):
        assert np.abs(result.array[..., c] - clean[..., c]).mean() < np.abs(noisy[..., c] - clean[..., c]).mean()


@pytest.mark.parametrize("method", ["median", "nlm", "diffusion"])
def test_baselines_reduce_noise_on_a_real_slice(ct_crop, method):
    rng = np.random.default_rng(1)
    noisy = ct_crop + rng.normal(0, 25 / 255, ct_crop.shape).astype(np.float32)
    denoised = Denoiser(method).denoise_array(noisy, sigma=25 / 255)
    error = lambda x: float(np.sqrt(np.mean((x - ct_crop) ** 2)))  # noqa: E731
    assert error(denoised) < 0.7 * error(noisy)


def test_sigma_auto_estimates_for_baselines(ct_crop):
    noisy = ct_crop + np.random.default_rng(2).normal(0, 20 / 255, ct_crop.shape).astype(np.float32)
    denoiser = Denoiser("nlm")
    denoiser.denoise(Volume(noisy[None]), sigma="auto")
    assert denoiser.last_report.sigma_estimated
    assert denoiser.last_report.sigma * 255 == pytest.approx(20, rel=0.2)


def test_bad_requests_raise_library_errors(tmp_path):
    with pytest.raises(MedDenoiseError, match="unknown model 'nonsense'"):
        Denoiser("nonsense")
    with pytest.raises(MedDenoiseError, match="has no shipped weights"):
        Denoiser("rdn")
    with pytest.raises(MedDenoiseError, match="no CUDA GPU"):
        Denoiser("median", device="cuda") if not torch.cuda.is_available() else (_ for _ in ()).throw(
            MedDenoiseError("no CUDA GPU (skipped: a GPU is present)")
        )
    with pytest.raises(MedDenoiseError, match="overlap"):
        Denoiser("median", overlap=1.0)
    # a bundle's "--clip_to_input_range false" is the string "false", which would read as true
    with pytest.raises(MedDenoiseError, match="clip_to_input_range must be True or False, got 'false'"):
        Denoiser("median", clip_to_input_range="false")
    path, _ = _random_weights(tmp_path)
    path.write_bytes(path.read_bytes()[:-8] + b"corrupt!")
    with pytest.raises(MedDenoiseError, match="sha256 does not match"):
        Denoiser(weights=path)


def test_ensemble_averages_the_eight_flips_and_rotations(tmp_path, ct_crop):
    path, model = _random_weights(tmp_path)
    image = ct_crop[:101, :77]  # not square: rotated views change shape and must be mapped back
    expected = np.zeros_like(image)
    with torch.inference_mode():
        for flip in (False, True):
            view = image[:, ::-1] if flip else image
            for turns in range(4):
                rotated = np.ascontiguousarray(np.rot90(view, turns))
                out = np.rot90(model(torch.from_numpy(rotated)[None, None])[0, 0].numpy(), -turns)
                expected += out[:, ::-1] if flip else out
    expected /= 8
    ensembled = Denoiser(weights=path, roi_size=512, precision="fp32", device="cpu", ensemble=8).denoise_array(image)
    single = Denoiser(weights=path, roi_size=512, precision="fp32", device="cpu", ensemble=1).denoise_array(image)
    assert np.abs(ensembled - expected).max() < 1e-4
    assert np.abs(ensembled - single).max() > 1e-3  # a random network is not rotation-equivariant


def test_automatic_ensemble_averages_views_for_a_2d_image_only(tmp_path, ct_crop):
    """``ensemble="auto"`` (the default): all 8 views for a single 2D image, none for a volume or a series."""
    path, _ = _random_weights(tmp_path)
    image = ct_crop[:101, :77]
    options = dict(weights=path, roi_size=512, precision="fp32", device="cpu")
    automatic = Denoiser(**options)
    eight = Denoiser(**options, ensemble=8).denoise_array(image)
    np.testing.assert_array_equal(automatic.denoise_array(image), eight)
    automatic.denoise(Volume(image[np.newaxis]))
    assert automatic.last_report.ensemble == 8
    volume = np.stack([image, image[::-1], image[:, ::-1]])
    one = Denoiser(**options, ensemble=1).denoise_array(volume)
    np.testing.assert_array_equal(automatic.denoise_array(volume), one)
    automatic.denoise(Volume(volume))
    assert automatic.last_report.ensemble == 1
    series = VolumeSeries(np.stack([image, image[::-1]])[:, None].astype(np.float32))
    automatic.denoise(series)
    assert automatic.last_report.ensemble == 1


def test_ensemble_size_is_checked():
    with pytest.raises(MedDenoiseError, match="ensemble must be 'auto' or one of") as info:
        Denoiser("median", ensemble=3)
    assert info.value.parameter == "ensemble"  # the CLI maps it to --ensemble


def test_a_min_max_model_scales_a_noisy_file_from_its_flat_background(us_png, mr_png):
    """A noisy float file's minimum lies ~4 sigma below its black background, where the general model, trained on
    images scaled by their clean range, never saw it. On the test data's ultrasound frame with Gaussian noise of
    sigma 15/255 (one view, unrefined) the model gains ~0.19 dB when the background's level is the minimum; the
    report gives the scaling. A scaling the user chose is kept, and so is the minimum of magnitude MR under ``auto``
    (its floor is not zero-mean noise around the signal)."""
    from meddenoiselib.evaluation import psnr
    from meddenoiselib.transforms.noise import parse_noise_spec, simulate_volume

    image = read_volume(us_png).array.astype(np.float32)
    clean = (image - image.min()) / (image.max() - image.min())
    noisy = Volume(clean + np.random.default_rng(0).normal(0, 15 / 255, clean.shape).astype(np.float32))
    background = Denoiser("kpn-general", device="cpu", ensemble=1, refine="off")
    chosen = Denoiser("kpn-general", device="cpu", ensemble=1, refine="off", scaling_mode="minmax")
    from_background, from_minimum = (d.denoise(noisy).array for d in (background, chosen))
    assert abs(background.last_report.scaling[0]["low"]) < 0.05 * 15 / 255
    assert chosen.last_report.scaling[0]["low"] == pytest.approx(float(noisy.array.min()))
    assert psnr(clean, from_background) > psnr(clean, from_minimum) + 0.1

    brain = read_volume(mr_png).array
    brain = np.where(brain > 8, brain, 0).astype(np.float32)
    mr = simulate_volume(
        Volume(brain, spacing=(1.0, 1.0, 2.0), metadata={"0008|0060": "MR"}), parse_noise_spec("rician:3%"), seed=5
    )
    auto = Denoiser(device="cpu", ensemble=1)
    auto.denoise(mr)
    assert "magnitude noise floor removed" in auto.last_report.choice
    assert auto.last_report.scaling[0]["low"] == pytest.approx(float(mr.array.min()))


def test_the_slice_axis_of_one_volume_is_not_carried_to_the_next_call():
    """A volume whose slices are off one grid is filtered slice by slice along z whatever its spacing; the next
    series given to the same Denoiser is filtered along its own through-plane axis (x here), not along z."""
    from meddenoiselib.io import SourceInfo

    rng = np.random.default_rng(0)
    uneven = Volume(
        rng.random((4, 12, 12)).astype(np.float32),
        spacing=(1.0, 1.0, 3.0),
        source=SourceInfo(grid_problem="slices 1 and 2 are 6 mm apart, the others 3 mm"),
    )
    series = VolumeSeries(rng.random((2, 6, 12, 12)).astype(np.float32), spacing=(4.0, 1.0, 1.0))
    used = Denoiser("median")
    used.denoise(uneven, sigma=0.1)
    np.testing.assert_array_equal(
        used.denoise(series, sigma=0.1).array, Denoiser("median").denoise(series, sigma=0.1).array
    )
