"""The model card a training run writes next to its weights: what the network is, how it was trained (data, noise in
its units, scaling, schedule, hardware) and how it scored on held-out data."""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..training.config import TrainConfig

__all__ = ["build_model_card", "hardware_name"]


def hardware_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and torch's thread count."""
    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA)"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {torch.get_num_threads()} torch threads"


def _data_name(path: str) -> str:
    """``<data set>/<file>`` as the cards and the bundle's data licence name training files."""
    p = Path(path)
    return p.name if p.parent.name == "" else f"{p.parent.name}/{p.name}"


def _range_units(noise_range) -> str:
    """What a training range's numbers mean (HU, the 0-255 scale, relative...)."""
    return noise_range.at(noise_range.low).describe().split(" (", 1)[1].rstrip(")")


def build_model_card(
    config: TrainConfig,
    *,
    name: str,
    architecture: dict[str, Any],
    data: Sequence[str],
    validation_data: Sequence[str],
    noise_ranges: Sequence,
    steps_run: int,
    best_step: int,
    precision: str,
    wall_time_s: float,
    device: torch.device,
    world_size: int,
    validation_protocol: str,
    metrics: dict[str, float],
) -> dict[str, Any]:
    """The model card of a finished run (``<name>.json`` beside ``<name>.safetensors``).

    Args:
        config: the run's configuration.
        name: the model's name.
        architecture: network, spatial_dims, in/out channels, overrides, burst, noise_map, parameters.
        data, validation_data: the training and validation files (paths; written as ``<data set>/<file>``).
        noise_ranges: the training noise ranges (``transforms.noise.NoiseRange``), each written with its units.
        steps_run, best_step: optimizer steps taken, and the step whose weights are saved.
        precision: ``"bfloat16"``, ``"float16"`` or ``"float32"``.
        wall_time_s: training time in seconds.
        device, world_size: where it trained and on how many processes.
        validation_protocol: one sentence on how ``metrics`` were measured.
        metrics: validation PSNR/SSIM per noise level.
    """
    import torch

    from .. import __version__

    supervised = config.mode == "supervised"
    return {
        "name": name,
        "description": config.description,
        "architecture": dict(architecture),
        "training": {
            "mode": config.mode,
            "data": [_data_name(n) for n in data],
            "validation_data": [_data_name(n) for n in validation_data],
            "noise": [str(r) for r in noise_ranges] if supervised else "none (self-supervised on noisy inputs)",
            "noise_units": [_range_units(r) for r in noise_ranges],
            "simulated_input_noise_sigma_0_255": config.simulate_noise or None,
            "stored_8bit_fraction": config.store_8bit_fraction,
            "noisy_file_range_fraction": config.noisy_range_fraction,
            "intensity_scaling": f"fixed HU map: window center {config.window[0]:g}, width {config.window[1]:g} HU "
            "-> [0, 1], not clipped"
            if config.scaling == "ct_window"
            else "per-volume min-max to [0, 1]",
            "patch": config.patch,
            **({"slice_strides": list(config.slice_strides)} if config.slice_strides != [1] else {}),
            "batch_size": config.batch_size,
            "steps": steps_run,
            "patches_seen": steps_run * config.batch_size,
            "best_step": best_step,
            "optimizer": f"Adam lr {config.lr:g}, {config.schedule} schedule, {config.warmup_steps} warm-up steps",
            "loss": config.loss if supervised else f"masked {config.loss} (blind spot)",
            "precision": precision,
            "init": config.init or "random",
            **({"grown_into": f"{config.grow} (new parameters starting at zero)"} if config.grow else {}),
            "wall_time_s": round(wall_time_s, 1),
            "hardware": hardware_name(device),
            "world_size": world_size,
            "seed": config.seed,
        },
        "validation": {"protocol": validation_protocol, **{k: round(v, 4) for k, v in metrics.items()}},
        # what the Denoiser applies at inference unless told otherwise: the training images' scaling
        "input_scaling": config.scaling,
        **({"input_window": list(config.window)} if config.scaling == "ct_window" else {}),
        "meddenoiselib_version": __version__,
        "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%d"),
    }
