"""Training: blind-spot masking, patch sampling, held-out split, resume, fine-tuning, self-supervision, DDP."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from meddenoiselib.training import (
    PatchSampler,
    TrainConfig,
    TrainingImage,
    blind_spot_mask,
    load_training_images,
    split_by_file,
    train,
)


def test_blind_spot_mask_replaces_only_masked_pixels_with_neighbours():
    generator = torch.Generator().manual_seed(0)
    noisy = torch.arange(2 * 1 * 40 * 50, dtype=torch.float32).reshape(2, 1, 40, 50)
    masked, mask = blind_spot_mask(noisy, 0.05, generator, radius=2)
    assert 0.03 < mask.float().mean() < 0.07
    torch.testing.assert_close(masked[~mask], noisy[~mask])
    changed = masked[mask] != noisy[mask]
    assert changed.all()  # never replaced by itself
    # the replacement comes from within the 5x5 neighbourhood
    b, _, y, x = torch.nonzero(mask, as_tuple=True)
    value = masked[b, 0, y, x]
    source_y, source_x = (value.long() % 2000) // 50, value.long() % 50
    assert ((source_y - y).abs() <= 2).all() and ((source_x - x).abs() <= 2).all()


def test_sampler_is_seeded_and_rejects_flat_patches(ct_crop):
    flat = TrainingImage("flat", np.zeros((1, 64, 64), np.float32))
    images = [TrainingImage("ct", ct_crop[None]), flat]
    a = PatchSampler(images, 32, seed=3).batch(8)
    b = PatchSampler(images, 32, seed=3).batch(8)
    torch.testing.assert_close(a, b)
    assert a.shape == (8, 1, 32, 32)
    assert (a.flatten(1).std(dim=1) > 0.01).all()  # flat patches were redrawn
    assert not torch.equal(a, PatchSampler(images, 32, seed=4).batch(8))


def test_burst_sampler_stacks_adjacent_slices():
    volume = np.stack([np.full((40, 40), k, np.float32) + np.random.default_rng(k).random((40, 40)) for k in range(5)])
    batch = PatchSampler([TrainingImage("v", volume)], 32, burst=3, seed=0, min_std=0).batch(6)
    assert batch.shape == (6, 3, 32, 32)
    means = batch.mean(dim=(2, 3)).round()
    assert ((means[:, 1] - means[:, 0]).abs() <= 1).all() and (means[:, 2] >= means[:, 1]).all()


def test_burst_sampler_spaces_frames_by_the_drawn_slice_stride():
    # slice k holds k * 10 (+ noise below 1): a stack's frame-to-frame step in tens is its slice stride
    volume = np.stack(
        [np.full((40, 40), 10.0 * k, np.float32) + np.random.default_rng(k).random((40, 40)) for k in range(12)]
    )
    image = [TrainingImage("v", volume)]

    def steps(strides) -> set[int]:
        batch = PatchSampler(image, 32, burst=3, seed=0, min_std=0, slice_strides=strides).batch(300)
        means = batch.mean(dim=(2, 3))
        centre = means[:, 1].round(decimals=-1)
        inner = (centre >= 30) & (centre <= 80)  # stacks whose neighbours 3 slices away exist on both sides
        low, high = (means[inner, 1] - means[inner, 0]) / 10, (means[inner, 2] - means[inner, 1]) / 10
        assert torch.allclose(low, high, atol=0.2)  # symmetric about the centre slice
        return set(low.round().int().tolist())

    assert steps((1,)) == {1}
    assert steps((1, 2, 3)) == {1, 2, 3}
    with pytest.raises(ValueError, match="slice_strides"):
        PatchSampler(image, 32, burst=3, slice_strides=(0,))
    with pytest.raises(ValueError, match="slice_strides"):
        TrainConfig(inputs=["x"], slice_strides=[]).validate()
    with pytest.raises(ValueError, match="slice_strides"):
        TrainConfig(inputs=["x"], slice_strides="1,two").validate()
    config = TrainConfig(inputs=["x"], slice_strides="1,2,3")  # as the shipped recipes write it
    config.validate()
    assert config.slice_strides == [1, 2, 3]


def test_split_holds_out_whole_files():
    images = [TrainingImage(f"f{i}", np.zeros((1, 8, 8), np.float32)) for i in range(10)]
    train_set, val = split_by_file(images, 0.2, seed=0)
    assert len(val) == 2 and len(train_set) == 8
    assert {im.name for im in train_set}.isdisjoint({im.name for im in val})


def test_loading_normalizes_every_input_to_unit_range(ct_series_dir, us_png):
    images = load_training_images([ct_series_dir, us_png])
    assert [im.array.shape for im in images] == [(4, 512, 512), (1, 540, 800)]
    for image in images:
        assert image.array.min() == pytest.approx(0.0) and image.array.max() == pytest.approx(1.0)


def _config(tmp_path, inputs, **overrides) -> TrainConfig:
    values = dict(
        inputs=[str(p) for p in inputs],
        output=str(tmp_path / "run"),
        network="conv-dae",
        patch=32,
        batch_size=4,
        steps=6,
        val_every=3,
        checkpoint_every=3,
        warmup_steps=2,
        precision="fp32",
        device="cpu",
        val_images=2,
        val_sigmas=[25.0],
        lr=1e-3,
        threads=1,
    )
    values.update(overrides)
    return TrainConfig(**values)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_resume_continues_exactly(tmp_path, xray_png, us_png):
    straight = train(_config(tmp_path / "a", [xray_png], val_inputs=[str(us_png)]), show_progress=False)
    config = _config(tmp_path / "b", [xray_png], val_inputs=[str(us_png)], stop_after=3)
    assert train(config, show_progress=False) is None  # paused
    run = Path(config.output)
    assert (run / "checkpoint.pt").is_file() and not (run / "model.safetensors").exists()
    config.stop_after = 0
    resumed = train(config, resume=True, show_progress=False)
    a, b = _weights(straight), _weights(resumed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_fine_tuning_freezes_leading_layers(tmp_path, xray_png, us_png):
    first = train(_config(tmp_path / "a", [xray_png], val_inputs=[str(us_png)], steps=3), show_progress=False)
    tuned = train(
        _config(tmp_path / "b", [xray_png], val_inputs=[str(us_png)], init=str(first), freeze=2, steps=3),
        show_progress=False,
    )
    a, b = _weights(first), _weights(tuned)
    from meddenoiselib.networks import create_network

    keys = [name for name, _ in create_network("conv-dae").named_parameters()]  # forward order
    assert all(torch.equal(a[k], b[k]) for k in keys[:4])  # the first two convs: weight + bias each
    assert all(not torch.equal(a[k], b[k]) for k in keys[4:])


@pytest.mark.slow  # a real training run until the loss has fallen
def test_self_supervised_training_learns_without_clean_images(tmp_path, ct_series_dir, xray_png):
    """150 masked steps on noisy-only data beat the noisy input on clean held-out crops."""
    config = _config(
        tmp_path,
        [ct_series_dir],
        val_inputs=[str(xray_png)],
        network="kpn-small",
        mode="self-supervised",
        simulate_noise=25.0,
        mask_fraction=0.03,
        loss="mse",
        steps=150,
        val_every=150,
        batch_size=8,
        patch=48,
        precision="auto",
        lr=1e-3,
    )
    path = train(config, show_progress=False)
    import json

    card = json.loads(path.with_suffix(".json").read_text())
    assert card["training"]["mode"] == "self-supervised"
    noisy_psnr = 20.17  # sigma 25/255 on [0, 1]
    assert card["validation"]["psnr_25"] > noisy_psnr + 6  # measured: +10.7 dB


@pytest.mark.skipif(
    shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
    reason="torchrun is not installed",
)
@pytest.mark.slow  # two torchrun processes
def test_two_process_ddp_matches_single_process(tmp_path, xray_png, us_png):
    """gloo DDP with 2 CPU processes gives the single-process weights up to floating-point noise."""
    single = train(
        _config(tmp_path / "single", [xray_png], val_inputs=[str(us_png)], network="kpn-small"), show_progress=False
    )
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "ddp"
    command = [
        torchrun,
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "meddenoiselib",
        "train",
        str(xray_png),
        "--val-inputs",
        str(us_png),
        "--network",
        "kpn-small",
        "--patch",
        "32",
        "--batch-size",
        "4",
        "--steps",
        "6",
        "--val-every",
        "3",
        "--checkpoint-every",
        "3",
        "--warmup-steps",
        "2",
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--lr",
        "0.001",
        "--threads",
        "1",
        "--output",
        str(out),
        "--no-progress",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = _weights(single), _weights(out / "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=2e-5)
    import json

    card = json.loads((out / "model.json").read_text())
    assert card["training"]["world_size"] == 2
    # only rank 0 wrote: one log, one checkpoint
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "log.csv",
        "model.json",
        "model.safetensors",
    ]


def test_three_dimensional_training_and_inference(tmp_path, mr_nifti, ct_series_dir):
    """3D patches from volumes train a 3D network whose weights the Denoiser then runs on a whole volume."""
    config = _config(
        tmp_path,
        [mr_nifti],
        val_inputs=[str(ct_series_dir)],
        spatial_dims=3,
        patch=16,
        steps=3,
        val_every=3,
        batch_size=2,
    )
    path = train(config, show_progress=False)
    import json

    from meddenoiselib.inference import Denoiser
    from meddenoiselib.io import read_volume

    assert json.loads(path.with_suffix(".json").read_text())["architecture"]["spatial_dims"] == 3
    volume = read_volume(mr_nifti)
    result = Denoiser(weights=path, device="cpu", roi_size=16).denoise(volume)
    assert result.same_geometry(volume) and result.array.dtype == volume.array.dtype


def test_burst_sampler_draws_real_neighbours_half_the_time():
    volume = np.stack([np.full((40, 40), k, np.float32) + np.random.default_rng(k).random((40, 40)) for k in range(5)])
    singles = [
        TrainingImage(f"s{i}", np.random.default_rng(10 + i).random((1, 40, 40), dtype=np.float32)) for i in range(9)
    ]
    batch = PatchSampler([TrainingImage("v", volume), *singles], 32, burst=3, seed=0, min_std=0).batch(400)
    from_volume = ~(batch[:, 0] == batch[:, 1]).flatten(1).all(dim=1) | ~(batch[:, 2] == batch[:, 1]).flatten(1).all(1)
    # 1 volume in 10 files would give ~10% (minus edge repeats); the sampler gives it about half the draws
    assert 0.35 < from_volume.float().mean() < 0.6


def test_repeated_burst_frames_share_the_centre_noise():
    from meddenoiselib.training.trainer import share_noise_of_repeated_frames

    clean = torch.rand(2, 3, 8, 8)
    clean[0] = clean[0, 1]  # a lone 2D image repeated
    clean[1, 0] = clean[1, 1]  # a stack at a volume's edge: first frame repeats the centre
    noisy = clean + torch.randn_like(clean)
    tied = share_noise_of_repeated_frames(clean, noisy, centre=1)
    assert torch.equal(tied[0, 0], noisy[0, 1]) and torch.equal(tied[0, 2], noisy[0, 1])
    assert torch.equal(tied[1, 0], noisy[1, 1]) and torch.equal(tied[1, 2], noisy[1, 2])
    assert not torch.equal(noisy[1, 2], noisy[1, 1])


def test_noisy_range_training_validates_on_the_users_path(tmp_path, xray_png, us_png):
    """With --noisy-range-fraction the validation scales each noisy crop by its own min-max, as the CLI scales a
    file, and maps the prediction back: an identity network then scores exactly the noisy input's PSNR, and a
    network that ignores its input scores what a constant at the crop's minimum would."""
    from meddenoiselib.evaluation.metrics import psnr
    from meddenoiselib.training.trainer import Trainer

    config = _config(tmp_path, [xray_png], val_inputs=[str(us_png)], network="kpn-small", noisy_range_fraction=0.5)
    trainer = Trainer(config, show_progress=False)
    trainer.setup()
    noisy_psnr = np.mean([psnr(crop.clean, crop.noisy[0]) for crop in trainer.val_sets])
    assert trainer.validate()["psnr"] == pytest.approx(noisy_psnr, abs=1e-3)  # kpn starts as the identity
    with torch.no_grad():
        trainer.module.out.bias.zero_()  # kernels of zero: the network outputs 0 on the scale it is given
    floor_psnr = np.mean([psnr(c.clean, np.full_like(c.clean, c.noisy.min())) for c in trainer.val_sets])
    assert trainer.validate()["psnr"] == pytest.approx(floor_psnr, abs=1e-3)


def test_grow_network_starts_as_the_trained_model_and_refuses_what_would_not():
    from meddenoiselib.errors import OptionError
    from meddenoiselib.networks import create_network
    from meddenoiselib.training.grow import grow_network

    torch.manual_seed(0)
    trained = create_network("kpn-burst3").eval()
    with torch.no_grad():
        trained.out.weight.normal_(std=0.05)  # a "trained" state: kernels depend on the content
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    grown = grow_network(trained, "kpn-ms-burst3", 2, {}, "trained").eval()
    x = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        torch.testing.assert_close(grown(x), trained(x), rtol=0, atol=0)
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())
    # and once more, by the dilated full-resolution kernels (the shipped CT model's path: one, two, three kernel sets)
    with torch.no_grad():
        grown.out_coarse.weight.normal_(std=0.05)
    third = grow_network(grown.eval(), "kpn-msd-burst3", 2, {}, "grown").eval()
    with torch.no_grad():
        torch.testing.assert_close(third(x), grown(x), rtol=0, atol=0)
    # and by the wide coarse kernels (taps 2 coarse pixels apart)
    wide = grow_network(grown.eval(), "kpn-msw-burst3", 2, {}, "grown").eval()
    with torch.no_grad():
        torch.testing.assert_close(wide(x), grown(x), rtol=0, atol=0)
    # and by the full-resolution head that gates the fine kernels
    sharp = grow_network(grown.eval(), "kpn-msf-burst3", 2, {}, "grown").eval()
    with torch.no_grad():
        torch.testing.assert_close(sharp(x), grown(x), rtol=0, atol=0)
        sharp.full_res_head.weight.normal_(std=0.05)
        assert (sharp(x) - grown(x)).abs().max() > 1e-3  # the head is live once trained
    with pytest.raises(OptionError, match="3 input frames.*1 frames"):
        grow_network(trained, "kpn-small", 2, {}, "trained")
    with pytest.raises(OptionError, match="other shapes"):
        grow_network(trained, "kpn-medium-burst3", 2, {}, "trained")
    # a model without the final conv: the grown network's delta bias there is not zero, so it would not start alike
    del trained.out
    with pytest.raises(OptionError, match="out.bias.*do not start at zero"):
        grow_network(trained, "kpn-burst3", 2, {}, "trained")


def test_training_can_grow_a_burst_kpn_into_the_two_scale_one(tmp_path, ct_series_dir):
    """--grow: the card names the grown network, and its coarse kernels are trained from zero."""
    base = dict(network="kpn-burst3", patch=32)
    first = train(_config(tmp_path / "a", [ct_series_dir], steps=2, **base), show_progress=False)
    with pytest.raises(ValueError, match="`grow`.*needs `init`"):
        _config(tmp_path / "x", [ct_series_dir], grow="kpn-ms-burst3", **base).validate()
    grown = train(
        _config(tmp_path / "b", [ct_series_dir], steps=3, init=str(first), grow="kpn-ms-burst3", **base),
        show_progress=False,
    )
    import json

    card = json.loads(grown.with_suffix(".json").read_text())
    assert card["architecture"]["network"] == "kpn-ms-burst3"
    assert card["training"]["grown_into"].startswith("kpn-ms-burst3")
    a, b = _weights(first), _weights(grown)
    assert set(b) - set(a) == {"out_coarse.weight", "out_coarse.bias"}
    assert b["out_coarse.weight"].abs().sum() > 0  # trained away from its zero start
    from meddenoiselib.weights import load_pretrained

    assert load_pretrained(grown)[0].coarse_kernels  # and it loads as what it is


class _FakeClock:
    """``time.perf_counter`` and ``time.time`` of the trainer module, advanced by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_000_000.0 + self.now


def test_time_limited_runs_refit_their_step_count_to_the_latest_pace(monkeypatch):
    from meddenoiselib.training import trainer as trainer_module

    clock = _FakeClock()
    monkeypatch.setattr(trainer_module, "time", clock)
    config = TrainConfig(inputs=["unused"], steps=100_000, deadline=clock.time() + 100.0, time_budget=500.0)
    pace = trainer_module._StepClock(config, step=0)
    step = 0

    def run(steps: int, seconds_each: float) -> bool:
        nonlocal step
        due = False
        for _ in range(steps):
            clock.now += seconds_each
            pace.add(seconds_each)
            step += 1
            due = pace.due(step)
        return due

    # the first 50 steps warm up at 1 s each: 50 s of the deadline's 100 left, 45 s of it for steps of 1 s
    assert run(50, 1.0)
    assert pace.fitting(step) == 50 + 45
    # then steps take 0.2 s: the next fit uses that pace (20 s later, 30 s left: 135 more steps), not the warm-up's
    assert not run(99, 0.2) and run(1, 0.2)
    assert pace.per_step == pytest.approx(0.2)
    assert pace.fitting(step) == 150 + 135
    # never more than the configured steps; the earlier of the budget and the deadline ends the run
    assert trainer_module._StepClock(TrainConfig(inputs=["x"], steps=60, time_budget=1e6), 0).end == pytest.approx(
        clock.now + 1e6
    )
    capped = trainer_module._StepClock(TrainConfig(inputs=["x"], steps=60, time_budget=1e6), 0)
    capped.per_step = 0.01
    assert capped.fitting(50) == 60
    early = trainer_module._StepClock(TrainConfig(inputs=["x"], deadline=clock.time() + 5, time_budget=50), 0)
    assert early.seconds_left() == pytest.approx(5.0)


def test_training_to_a_deadline_ends_by_it(tmp_path, xray_png, us_png):
    import json
    import time

    config = _config(tmp_path, [xray_png], val_inputs=[str(us_png)], steps=1_000_000, val_every=10**6)
    config.deadline = time.time() + 5.0
    path = train(config, show_progress=False)
    assert time.time() < config.deadline + 6.0  # the final validation and the card after the last step
    card = json.loads(path.with_suffix(".json").read_text())
    assert 50 < card["training"]["steps"] < 1_000_000


def test_negative_time_limits_are_refused():
    with pytest.raises(ValueError, match="deadline"):
        TrainConfig(inputs=["x"], deadline=-1.0).validate()


class _WholeImageSampler(PatchSampler):
    """The sampler as it was: the whole stack of slices and maps drawn, then cropped, flipped and rotated by the
    MONAI pipeline."""

    def _window(self, size):
        return tuple(slice(None) for _ in size)

    def sample(self) -> torch.Tensor:
        frames = 1 if self.spatial_dims == 3 else self.burst
        for _ in range(8):
            patch = torch.as_tensor(np.asarray(self.augment(self._draw())))
            if float(patch[:frames].std()) >= self.min_std:
                break
        return patch.float().contiguous()


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_patches_cut_before_copying_equal_monais_crops_of_the_whole_image(spatial_dims):
    rng = np.random.RandomState(0)
    arrays = [rng.rand(*shape).astype(np.float32) for shape in ((5, 90, 100), (1, 70, 80), (40, 40, 40))]
    if spatial_dims == 2:
        maps = [rng.rand(a.shape[0], 2, *a.shape[1:]).astype(np.float32) for a in arrays]
        images = [TrainingImage(f"i{k}", a, m) for k, (a, m) in enumerate(zip(arrays, maps, strict=True))]
        options = dict(patch=32, burst=3, seed=4, slice_strides=(1, 2))
    else:
        images, options = [TrainingImage("v", arrays[2])], dict(patch=16, spatial_dims=3, seed=6)
    fast, whole = PatchSampler(images, **options).batch(24), _WholeImageSampler(images, **options).batch(24)
    assert fast.shape == whole.shape and fast.shape[-1] == options["patch"]
    assert torch.equal(fast, whole)  # the same seeded patches: runs resume and reproduce as before
    from monai.data import get_track_meta

    assert get_track_meta()  # sampling without MONAI's metadata left the process's setting as it was


def test_ct_training_with_coarse_grain_validates_at_that_grain_too(tmp_path, ct_series_dir):
    """A CT range that trains on noise 1-3 pixels wide is validated at grain 3 as well (at the middle level), so
    the best step is not chosen on fine noise alone: that crop's noise has the same HU level but its power sits
    below 0.5 / 3 cycles per pixel, where the grain-1 crop's spreads to 0.5; the mean PSNR that picks the best step
    weighs it as one of the levels."""
    from meddenoiselib.training.trainer import Trainer

    config = _config(
        tmp_path,
        [ct_series_dir],
        val_inputs=[str(ct_series_dir)],
        network="kpn-burst3",
        scaling="ct_window",
        window=(0.0, 2048.0),
        noise=["ct-lowdose:5HU-100HU,views=180,grain=1|3"],
        val_sigmas=[10.0, 25.0, 60.0],
        val_images=1,
    )
    trainer = Trainer(config, show_progress=False)
    trainer.setup()
    assert trainer.val_labels == ["10", "25", "60", "25_grain3"]
    crops = {crop.label: crop for crop in trainer.val_sets}

    def noise_and_centroid(crop):
        noise = (crop.noisy[crop.noisy.shape[0] // 2] - crop.clean).astype(np.float64)
        power = np.abs(np.fft.fft2(noise - noise.mean())) ** 2
        fy, fx = np.meshgrid(*(np.fft.fftfreq(n) for n in noise.shape), indexing="ij")
        return noise.std() * 2048, float((np.hypot(fy, fx) * power).sum() / power.sum())

    fine_std, fine_centroid = noise_and_centroid(crops["25"])
    coarse_std, coarse_centroid = noise_and_centroid(crops["25_grain3"])
    assert 0.6 < coarse_std / fine_std < 1.6  # the same level in HU
    # measured 0.12 and 0.33 cycles per pixel
    assert coarse_centroid < 0.5 / 3 and coarse_centroid < 0.45 * fine_centroid
    metrics = trainer.validate()
    assert {"psnr_10", "psnr_25", "psnr_60", "psnr_25_grain3"} <= set(metrics)
    assert metrics["psnr"] == pytest.approx(np.mean([metrics[f"psnr_{k}"] for k in trainer.val_labels]))
