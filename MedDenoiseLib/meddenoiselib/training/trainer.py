"""Supervised, self-supervised and fine-tuning training of any registry network, single process or
torch.distributed (DistributedDataParallel), with checkpoints, resume, validation and early stopping."""

from __future__ import annotations

import csv
import gc
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MedDenoiseError, OptionError
from ..evaluation.compare import add_noise
from ..evaluation.metrics import psnr, ssim
from ..inference.device import autocast_dtype, autocast_forward, resolve_device
from ..transforms.intensity import sigma_from_255
from ..transforms.noise import BatchNoise, NoiseKind, NoiseRange, NoiseSpec
from .config import TrainConfig
from .data import PatchSampler, TrainingImage, load_training_images, split_by_file
from .distributed import DistributedContext
from .file_range import to_noisy_file_range
from .masking import blind_spot_mask

__all__ = ["train", "Trainer", "export_checkpoint"]

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
VAL_CROP_2D = 256
VAL_CROP_3D = 64


def share_noise_of_repeated_frames(clean: torch.Tensor, noisy: torch.Tensor, centre: int) -> torch.Tensor:
    """Give every burst frame that repeats the centre frame the centre frame's noisy values.

    A stack built from one 2D image (or padded at a volume's edge) repeats the same slice; at inference the
    repeat is of the same *noisy* slice, so it carries no extra information. Independent noise on the copies
    would teach the network to average them, and it would then under-denoise lone slices.

    Args:
        clean: ``(B, burst, H, W)`` clean stacks.
        noisy: the same stacks with independent noise per frame.
        centre: index of the reference frame.

    Returns:
        ``noisy`` with repeated frames' noise tied to the centre frame's.
    """
    reference = clean[:, centre : centre + 1]
    repeats = (clean == reference).flatten(2).all(dim=2)  # (B, burst)
    mask = repeats.view(*repeats.shape, *([1] * (clean.ndim - 2)))
    return torch.where(mask, noisy[:, centre : centre + 1].expand_as(noisy), noisy)


def _share_repeats(frames: np.ndarray, noisy: np.ndarray, centre: int) -> np.ndarray:
    """numpy form of :func:`share_noise_of_repeated_frames` for one stack ``(burst, H, W)``."""
    return share_noise_of_repeated_frames(torch.from_numpy(frames)[None], torch.from_numpy(noisy)[None], centre)[
        0
    ].numpy()


def _center_crop(array: np.ndarray, edge: int) -> np.ndarray:
    slices = []
    for size in array.shape:
        start = max((size - edge) // 2, 0)
        slices.append(slice(start, start + min(edge, size)))
    return array[tuple(slices)]


class ValidationCrop(NamedTuple):
    """One fixed validation crop: ``label`` names its noise in the metrics (``psnr_{label}``: the level, and for
    coarse-grained CT noise ``25_grain3``), ``level`` in the noise range's unit, ``clean`` ``(H, W)`` (or
    ``(D, H, W)``) and ``noisy`` ``(frames, H, W)`` (or ``(1, D, H, W)``) on the training scale."""

    label: str
    level: float
    clean: np.ndarray
    noisy: np.ndarray


def _coarse_grain_specs(noise_range: NoiseRange, levels: list[float]) -> list[tuple[str, float, NoiseSpec]]:
    """Validation noise at the coarsest grain a CT range trains on, at its middle validation level: validated at
    grain 1 only, a run's best step favours fine noise over the coarse noise it was also trained for."""
    high = noise_range.grain[1]
    if noise_range.kind != NoiseKind.CT_LOWDOSE or high <= 1.0 or not levels:
        return []
    level = sorted(levels)[len(levels) // 2]
    return [(f"{level:g}_grain{high:g}", level, noise_range.at(level, grain=high))]


#: with ``time_budget`` or ``deadline``: steps of the first pace measurement, and how often the step count is
#: fitted again from the latest steps (the first ones include warm-up: cuDNN autotuning, caches, the allocator)
PROBE_STEPS, REFIT_EVERY = 50, 100


class _StepClock:
    """Paces a time-limited run: the seconds of the training steps (validation and checkpoints left out) and when
    the time ends (``time_budget`` from the first step of this invocation, ``deadline`` on the wall clock)."""

    def __init__(self, config: TrainConfig, step: int) -> None:
        self.cap, self.first = config.steps, step
        now = time.perf_counter()
        ends = []
        if config.time_budget > 0:
            ends.append(now + config.time_budget)
        if config.deadline > 0:
            ends.append(now + (config.deadline - time.time()))
        self.end = min(ends) if ends else None
        self.window_steps, self.window_seconds, self.per_step = 0, 0.0, 0.0

    def add(self, seconds: float) -> None:
        """Count one training step of ``seconds``."""
        self.window_steps += 1
        self.window_seconds += seconds

    def due(self, step: int) -> bool:
        """After the first :data:`PROBE_STEPS` steps, then every :data:`REFIT_EVERY`: the pace of the steps since
        the last fit is taken and the window starts again."""
        if self.end is None:
            return False
        done = step - self.first
        if done < PROBE_STEPS or (done - PROBE_STEPS) % REFIT_EVERY:
            return False
        self.per_step = self.window_seconds / max(self.window_steps, 1)
        self.window_steps, self.window_seconds = 0, 0.0
        return True

    def seconds_left(self) -> float:
        return max(self.end - time.perf_counter(), 0.0) if self.end is not None else float("inf")

    def fitting(self, step: int) -> int:
        """Steps that fit: those done plus what 0.9 of the time left allows, at least one more, at most the cap."""
        more = int(0.9 * self.seconds_left() / max(self.per_step, 1e-6) + 1e-6)  # + 1e-6: 0.9 * 30 / 0.2 is 134.99...
        return min(self.cap, step + max(more, 1))


class Trainer:
    """Runs one training configuration. Use :func:`train` unless you need the pieces."""

    def __init__(self, config: TrainConfig, resume: bool = False, show_progress: bool = True) -> None:
        config.validate()
        self.config = config
        self.resume = resume
        self.show_progress = show_progress
        requested = resolve_device(config.device)
        self.context = DistributedContext.from_environment(requested.type)
        self.device = (
            torch.device("cuda", self.context.local_rank)
            if requested.type == "cuda" and self.context.is_distributed
            else requested
        )
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.autocast = autocast_dtype(self.device, config.precision)
        self.output = Path(config.output)
        if self.context.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
        self.context.barrier()

    # ------------------------------------------------------------------------------------------------ data
    def _load_data(self) -> None:
        config = self.config
        self.ranges = config.noise_ranges() if config.mode == "supervised" else []
        scanners = [scanner for r in self.ranges for scanner in r.scanners()]
        options = dict(scaling_mode=config.scaling, window=tuple(config.window))
        cache = config.cache_dir or self.output / "cache"
        images = load_training_images(
            config.inputs, ct_scanners=scanners, cache_dir=cache, device=self.device, **options
        )
        if config.val_inputs:
            val = load_training_images(config.val_inputs, **options)
            train = images
        else:
            train, val = split_by_file(images, config.val_fraction, config.seed)
        self.clean_val = val
        if config.mode == "self-supervised" and config.simulate_noise > 0:
            # Emulate a hospital archive of noisy scans: one fixed noise realisation per image, drawn once.
            # The trainer never sees the clean training images after this point.
            train = [
                TrainingImage(
                    im.name,
                    add_noise(
                        im.array.reshape(-1, im.array.shape[-1]), config.simulate_noise, config.seed + 7919 * i
                    ).reshape(im.array.shape),
                )
                for i, im in enumerate(train)
            ]
        self.train_images = train
        self.train_names = [im.name for im in train]
        self.val_names = [im.name for im in val]
        self.val_images = val

    def _build_validation(self, val: list[TrainingImage]) -> None:
        """Fixed validation crops with fixed noise, so every validation compares like with like.

        Burst models are validated on stacks of real neighbouring slices, each with its own noise, where the file
        has them (a lone 2D image repeats its one noisy slice, as at inference).
        """
        from ..transforms.noise import RandNoise

        config = self.config
        half = self.burst // 2 if config.spatial_dims == 2 else 0
        picks: list[tuple[TrainingImage, int | None]] = []
        for image in val:
            if config.spatial_dims == 3:
                if image.array.shape[0] >= 16:
                    picks.append((image, None))
            else:
                count = image.array.shape[0]
                for k in np.linspace(0, count - 1, min(3, count) + 2)[1:-1].round().astype(int):
                    picks.append((image, int(k)))
        if len(picks) > config.val_images:
            # evenly spread over the validation files, so every modality in them takes part
            keep = np.linspace(0, len(picks) - 1, config.val_images).round().astype(int)
            picks = [picks[k] for k in keep]
        self.val_sets: list[ValidationCrop] = []
        if config.mode == "self-supervised" and config.simulate_noise:
            specs = [(f"{config.simulate_noise:g}", config.simulate_noise, f"gaussian:{config.simulate_noise:g}")]
        else:
            first = self.ranges[0]
            specs = [(f"{level:g}", level, first.at(level)) for level in config.val_sigmas]
            specs += _coarse_grain_specs(first, config.val_sigmas)
        self.val_noise_kind, self.val_crop_count = str(specs[0][2]).split(":")[0], len(picks)
        self.val_labels = [label for label, _, _ in specs]
        for i, (image, k) in enumerate(picks):
            if k is None:
                clean_full = image.array[np.newaxis]
                frames = image.array[np.newaxis]
            else:
                index = np.clip(np.arange(k - half, k + half + 1), 0, image.array.shape[0] - 1)
                frames = image.array[index]
                clean_full = image.array[k : k + 1]
            for j, (label, level, spec) in enumerate(specs):
                is_ct = not isinstance(spec, str) and spec.kind == NoiseKind.CT_LOWDOSE
                transform = RandNoise(
                    spec, scaling=image.scaling if is_ct else None, pixel_mm=image.pixel_mm if is_ct else None
                )
                transform.set_random_state(10_000 + 100 * i + j)
                noisy = np.asarray(transform(frames), dtype=np.float32)
                if k is not None:
                    noisy = _share_repeats(frames, noisy, half)
                edge = VAL_CROP_3D if config.spatial_dims == 3 else VAL_CROP_2D
                crop_clean = _center_crop(clean_full[0], edge)
                crop_noisy = np.stack([_center_crop(f, edge) for f in noisy])
                self.val_sets.append(ValidationCrop(label, float(level), crop_clean, crop_noisy))

    # ----------------------------------------------------------------------------------------------- model
    def _build_model(self) -> None:
        from ..networks import create_network, get_network_spec
        from ..weights import load_pretrained

        config = self.config
        if config.init:
            model, card = load_pretrained(config.init)
            arch = card["architecture"]
            self.network_name = arch["network"]
            self.overrides = dict(arch.get("overrides", {}))
            if int(arch.get("spatial_dims", 2)) != config.spatial_dims:
                raise OptionError(
                    f"the initial model {config.init} is {arch.get('spatial_dims')}D but the training is "
                    f"{config.spatial_dims}D (spatial_dims)",
                    parameter="init",
                )
            if config.grow and config.grow != self.network_name:
                from .grow import grow_network

                model = grow_network(model, config.grow, config.spatial_dims, self.overrides, config.init)
                self.network_name = config.grow
        else:
            self.network_name = config.network
            self.overrides = dict(config.overrides)
            with torch.random.fork_rng():
                torch.random.manual_seed(config.seed)
                model = create_network(config.network, spatial_dims=config.spatial_dims, **self.overrides)
        spec = get_network_spec(self.network_name)
        self.burst = spec.burst
        self.noise_map = spec.noise_map
        self.in_channels = spec.burst + (1 if spec.noise_map else 0)
        if config.freeze > 0:
            frozen = 0
            for module in model.modules():
                own = list(module.parameters(recurse=False))
                if not own:
                    continue
                if frozen >= config.freeze:
                    break
                for parameter in own:
                    parameter.requires_grad_(False)
                frozen += 1
            logger.info("froze the first %d parameterised layers", frozen)
        model = model.to(self.device)
        if self.device.type == "cpu":
            model = model.to(memory_format=torch.channels_last if config.spatial_dims == 2 else torch.channels_last_3d)
        self.model = model
        self.module = model
        if self.context.is_distributed:
            from torch.nn.parallel import DistributedDataParallel

            if self.device.type == "cuda":
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
                self.module = model
                self.model = DistributedDataParallel(model, device_ids=[self.device.index])
            else:
                # BatchNorm statistics stay per rank on CPU (SyncBatchNorm needs CUDA).
                self.model = DistributedDataParallel(model)
        parameters = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        use_scaler = self.device.type == "cuda" and self.autocast == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.initial_temperature = (
            float(getattr(self.module, "temperature", torch.tensor(0.0)).item())
            if hasattr(self.module, "set_temperature")
            else 0.0
        )

    def _lr_factor(self, step: int) -> float:
        config = self.config
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.schedule == "constant":
            return 1.0
        progress = min((step - config.warmup_steps) / max(config.steps - config.warmup_steps, 1), 1.0)
        if config.schedule == "step":
            return 1.0 if progress < 0.5 else 0.5 if progress < 0.75 else 0.25
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))

    def _anneal_temperature(self, step: int) -> None:
        """DRAN's dynamic convolutions: anneal the attention temperature to 1 over the first 20 % of the steps
        (Chen et al.'s schedule, which the original DRAN code never applied)."""
        if not self.initial_temperature:
            return
        fraction = min(step / max(0.2 * self.config.steps, 1), 1.0)
        self.module.set_temperature(self.initial_temperature + (1.0 - self.initial_temperature) * fraction)

    # ------------------------------------------------------------------------------------------- one step
    def _prepare(self, frames: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        if not self.noise_map:
            return frames
        view = (-1,) + (1,) * (frames.ndim - 1)
        level = sigma.to(frames.dtype).view(view).expand(frames.shape[0], 1, *frames.shape[2:])
        return torch.cat([frames, level], dim=1)

    def _forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return autocast_forward(self.model, inputs.to(self.device, non_blocking=True), self.device, self.autocast)

    def _loss(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            prediction, target = prediction[mask], target[mask]
        if self.config.loss == "l1":
            return F.l1_loss(prediction, target)
        return F.mse_loss(prediction, target)

    def _step(self) -> float:
        config = self.config
        # Every rank draws the same global batch and keeps its own rows, so the averaged DDP gradient equals
        # the single-process gradient of the whole batch.
        batch = self.sampler.batch(config.batch_size)
        aux = None
        if self.sampler.aux_channels:
            frames = self.burst if config.spatial_dims == 2 else 1
            batch, aux = batch[:, :frames], batch[:, frames:]
        per_rank = config.batch_size // self.context.world_size
        rows = slice(self.context.rank * per_rank, (self.context.rank + 1) * per_rank)
        centre = self.burst // 2
        if config.mode == "supervised":
            noisy, sigma = self.noise(batch, aux)
            if self.burst > 1:
                noisy = share_noise_of_repeated_frames(batch, noisy, centre)
            clean = batch
            if config.noisy_range_fraction > 0:
                clean, noisy, sigma = to_noisy_file_range(
                    clean, noisy, sigma, config.noisy_range_fraction, self.range_generator
                )
            noisy, sigma, clean = noisy[rows], sigma[rows], clean[rows]
            prediction = self._forward(self._prepare(noisy, sigma))
            loss = self._loss(prediction, clean[:, centre : centre + 1].to(self.device))
        else:
            noisy = batch[rows]
            masked, mask = blind_spot_mask(noisy, config.mask_fraction, self.mask_generator, channel=centre)
            sigma = torch.zeros(noisy.shape[0])
            prediction = self._forward(self._prepare(masked, sigma))
            loss = self._loss(prediction, noisy[:, centre : centre + 1].to(self.device), mask.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.module.parameters(), config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return float(loss.detach())

    # ------------------------------------------------------------------------------------------ validation
    @torch.inference_mode()
    def validate(self) -> dict[str, float]:
        """Mean PSNR/SSIM per validation σ on fixed crops with fixed noise (plus masked loss when self-supervised)."""
        self.module.eval()
        results: dict[str, list[tuple[float, float]]] = {label: [] for label in self.val_labels}
        for label, sigma, clean, noisy in self.val_sets:
            frames = torch.from_numpy(noisy)[None]
            if frames.shape[1] < self.burst:
                frames = frames.repeat(1, self.burst, *([1] * (frames.ndim - 2)))
            level = torch.tensor([self._val_level_normalized(sigma)])
            low, span = 0.0, 1.0
            if self.config.noisy_range_fraction > 0:
                # trained for the user's path: validate on it, scaled by the noisy crop's min-max and mapped back
                low, span = float(frames.min()), max(float(frames.max() - frames.min()), 1e-6)
                frames, level = (frames - low) / span, level / span
            prediction = self._forward_eval(self._prepare(frames, level))[0, 0].cpu().numpy() * span + low
            results[label].append((psnr(clean, prediction), ssim(clean, prediction)))
        self.module.train()
        metrics = {}
        for label, values in results.items():
            if values:
                metrics[f"psnr_{label}"] = float(np.mean([v[0] for v in values]))
                metrics[f"ssim_{label}"] = float(np.mean([v[1] for v in values]))
        if results:
            metrics["psnr"] = float(np.mean([metrics[k] for k in metrics if k.startswith("psnr_")]))
            metrics["ssim"] = float(np.mean([metrics[k] for k in metrics if k.startswith("ssim_")]))
        return metrics

    def _val_level_normalized(self, level: float) -> float:
        """A validation level as the noise-map value the network was trained with (normalized units)."""
        if not self.ranges:
            return sigma_from_255(level)
        unit = self.ranges[0].unit.value
        if unit == "scale255":
            return sigma_from_255(level)
        if unit == "hu":
            return level / float(self.config.window[1])
        return 0.0

    def _forward_eval(self, inputs: torch.Tensor) -> torch.Tensor:
        return autocast_forward(self.module, inputs.to(self.device), self.device, self.autocast)

    # ------------------------------------------------------------------------------------- checkpointing
    def _checkpoint_state(self, step: int) -> dict[str, Any]:
        return {
            "step": step,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "noise_generator": self.noise.generator.get_state(),
            "level_generator": self.noise.level_generator.get_state(),
            "mask_generator": self.mask_generator.get_state(),
            "range_generator": self.range_generator.get_state(),
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "best_model": self.best_state,
            "stale": self.stale,
            "elapsed": self.elapsed,
            "history": json.dumps(self.history),
        }

    def _save_checkpoint(self, step: int) -> None:
        if not self.context.is_main:
            return
        path = self.output / CHECKPOINT
        temporary = path.with_name(f".{CHECKPOINT}.tmp")
        torch.save(self._checkpoint_state(step), temporary)
        os.replace(temporary, path)

    def _load_checkpoint(self) -> int:
        path = self.output / CHECKPOINT
        if not path.is_file():
            raise MedDenoiseError(f"{path}: no checkpoint to resume from")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        self.noise.generator.set_state(state["noise_generator"])
        if "level_generator" in state:
            self.noise.level_generator.set_state(state["level_generator"])
        self.mask_generator.set_state(state["mask_generator"])
        if "range_generator" in state:
            self.range_generator.set_state(state["range_generator"])
        self.best_metric = float(state["best_metric"])
        self.best_step = int(state["best_step"])
        self.best_state = state["best_model"]
        self.stale = int(state["stale"])
        self.elapsed = float(state["elapsed"])
        self.history = json.loads(state["history"])
        logger.info("resumed from %s at step %d", path, state["step"])
        return int(state["step"])

    # ---------------------------------------------------------------------------------------------- run
    def setup(self) -> int:
        """Load the data, build the model, optimiser and random sources; restore the checkpoint when resuming.

        Returns:
            The step to continue from.
        """
        config = self.config
        self._load_data()
        self._build_model()
        self._build_validation(self.val_images)  # burst validation stacks need the model's burst
        self.sampler = PatchSampler(
            self.train_images,
            config.patch,
            config.spatial_dims,
            self.burst,
            config.seed,
            slice_strides=config.slice_strides,
        )
        generator = torch.Generator()
        generator.manual_seed(config.seed + 1)
        level_generator = torch.Generator()
        level_generator.manual_seed(config.seed + 3)
        self.noise = BatchNoise(
            self.ranges or ["gaussian:0-50"],
            generator,
            level_generator,
            hu_per_unit=float(config.window[1]),
            store_8bit_fraction=config.store_8bit_fraction,
        )
        self.mask_generator = torch.Generator()
        self.mask_generator.manual_seed(config.seed + 2)
        self.range_generator = torch.Generator()
        self.range_generator.manual_seed(config.seed + 4)
        self.best_metric, self.best_step, self.best_state = -math.inf, -1, None
        self.stale, self.elapsed, self.history = 0, 0.0, []
        self.steps_run = self._load_checkpoint() if self.resume else 0
        return self.steps_run

    def run(self) -> Path | None:
        """Train; returns the weights path on rank 0 (None on other ranks, or when paused by ``stop_after``)."""
        config = self.config
        step = self.setup()
        if self.context.is_main:
            (self.output / "config.json").write_text(config.to_json() + "\n")
        log_path = self.output / "log.csv"
        fields = ["step", "loss", "lr", "seconds", "val_psnr", "val_ssim"]
        if self.context.is_main and (not self.resume or not log_path.exists()):
            with open(log_path, "w", newline="") as handle:
                csv.writer(handle).writerow(fields)

        bar = None
        if self.show_progress and self.context.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=config.steps, initial=step, desc=f"training {self.network_name}", unit="step")
        self.model.train()
        losses: list[float] = []
        started = time.perf_counter() - self.elapsed
        stop = False
        pause_at = step + config.stop_after if config.stop_after > 0 else config.steps
        clock = _StepClock(config, step)
        while step < config.steps and not stop:
            self._anneal_temperature(step)
            tick = time.perf_counter()
            losses.append(self._step())
            step += 1
            clock.add(time.perf_counter() - tick)
            if clock.due(step):
                self._fit_steps_to_time(step, clock)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4g}")
            if step % config.val_every == 0 or step == config.steps:
                stop = self._end_of_epoch(step, losses, started, log_path)
                losses = []
            if step % config.checkpoint_every == 0 or step == config.steps or stop or step == pause_at:
                self.elapsed = time.perf_counter() - started
                self._save_checkpoint(step)
            if step == pause_at and step < config.steps:
                logger.info("paused at step %d of %d; resume from the checkpoint to continue", step, config.steps)
                if bar is not None:
                    bar.close()
                self._leave_process_group()
                return None
        if bar is not None:
            bar.close()
        self.elapsed = time.perf_counter() - started
        self.steps_run = step
        result = self._finish() if self.context.is_main else None
        self._leave_process_group()
        return result

    def _leave_process_group(self) -> None:
        """Wait for every rank, drop the DistributedDataParallel wrapper, then leave the process group. The wrapper's
        reducer holds the group's last pending work (with tensors); a gloo rank that leaves with it alive can abort
        while the interpreter shuts down ("terminate called without an active exception", exit -6: seen once in a
        loaded CI run of the two-rank test)."""
        self.context.barrier()
        if self.model is not self.module:
            self.model = self.module
            gc.collect()
        self.context.close()

    def _fit_steps_to_time(self, step: int, clock: _StepClock) -> None:
        """Set ``config.steps`` to what fits the time left (``time_budget`` / ``deadline``) at the latest steps'
        pace, a tenth kept for validations, never above the configured step count."""
        config = self.config
        fitting = clock.fitting(step)
        first = step - clock.first == PROBE_STEPS
        if first or abs(fitting - config.steps) > 0.02 * config.steps:
            logger.info(
                "%.3f s/step: %d steps fit the %.0f s left (of %d)",
                clock.per_step,
                fitting,
                clock.seconds_left(),
                clock.cap,
            )
        if first:
            config.val_every = min(config.val_every, max(fitting // 4, 1))
        config.steps = fitting

    def _end_of_epoch(self, step: int, losses: list[float], started: float, log_path: Path) -> bool:
        config = self.config
        stop = False
        if self.context.is_main:
            metrics = self.validate() if self.val_sets else {}
            score = metrics.get("psnr", -float(np.mean(losses)) if losses else -math.inf)
            if score > self.best_metric:
                self.best_metric, self.best_step, self.stale = score, step, 0
                self.best_state = {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
            else:
                self.stale += 1
            record = {
                "step": step,
                "loss": float(np.mean(losses)) if losses else float("nan"),
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": round(time.perf_counter() - started, 1),
                **metrics,
            }
            self.history.append(record)
            with open(log_path, "a", newline="") as handle:
                csv.writer(handle).writerow(
                    [
                        record["step"],
                        f"{record['loss']:.6g}",
                        f"{record['lr']:.3g}",
                        record["seconds"],
                        f"{metrics.get('psnr', float('nan')):.3f}",
                        f"{metrics.get('ssim', float('nan')):.4f}",
                    ]
                )
            logger.info("step %d: %s", step, {k: round(v, 4) for k, v in record.items() if isinstance(v, float)})
            stop = bool(config.early_stop) and self.stale >= config.early_stop
        return self.context.broadcast_flag(stop)

    def _finish(self, target: Path | None = None) -> Path:
        """Write the best (or last) weights and the filled-in model card; returns the weights path."""
        from ..weights import save_weights
        from ..weights.card import build_model_card

        config = self.config
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        metrics = self.validate() if self.val_sets else {}
        self.module.eval()
        card = build_model_card(
            config,
            name=config.name or self.network_name,
            architecture={
                "network": self.network_name,
                "spatial_dims": config.spatial_dims,
                "in_channels": self.in_channels,
                "out_channels": 1,
                "overrides": self.overrides,
                "burst": self.burst,
                "noise_map": self.noise_map,
                "parameters": sum(p.numel() for p in self.module.parameters()),
            },
            data=self.train_names,
            validation_data=self.val_names,
            noise_ranges=self.ranges,
            steps_run=self.steps_run,
            best_step=self.best_step,
            precision=str(self.autocast).replace("torch.", "") if self.autocast else "float32",
            wall_time_s=self.elapsed,
            device=self.device,
            world_size=self.context.world_size,
            validation_protocol=f"center crops (<=256 px) of {self.val_crop_count} slices spread over the validation "
            f"files, normalized as in training, fixed seeded {self.val_noise_kind} noise per level "
            f"({', '.join(label.replace('_grain', ' at grain ') for label in self.val_labels)})"
            + (
                "; inputs scaled by the noisy crop's min-max and outputs mapped back, as the CLI scales a file"
                if config.noisy_range_fraction > 0
                else ""
            )
            + "; PSNR data range 1, SSIM 11x11 Gaussian window",
            metrics=metrics,
        )
        path = save_weights(self.module, target or self.output / "model.safetensors", card)
        logger.info("wrote %s", path)
        return path


def export_checkpoint(run_dir: str | Path, target: str | Path) -> Path:
    """Write the best weights of a (possibly still running) run's checkpoint, with its model card.

    Lets a long run's progress be shipped or inspected without stopping it.
    """
    run_dir = Path(run_dir)
    config = TrainConfig.from_json(run_dir / "config.json")
    config.output = str(run_dir)
    trainer = Trainer(config, resume=True, show_progress=False)
    trainer.setup()
    return trainer._finish(Path(target))


def train(config: TrainConfig, resume: bool = False, show_progress: bool = True) -> Path | None:
    """Train a network as ``config`` describes; returns the ``.safetensors`` path (rank 0) or None (others).

    Launch with ``torchrun --nproc_per_node=N -m meddenoiselib train ...`` for DistributedDataParallel; each
    rank computes its share of every global batch and rank 0 alone writes checkpoints, logs and weights.
    """
    return Trainer(config, resume=resume, show_progress=show_progress).run()
