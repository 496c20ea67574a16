"""Training: patch sampling, supervised / self-supervised / fine-tuning loops, checkpoints, torch.distributed."""

from __future__ import annotations

from .config import TrainConfig
from .data import PatchSampler, TrainingImage, expand_inputs, load_training_images, split_by_file
from .distributed import DistributedContext
from .grow import grow_network
from .masking import blind_spot_mask
from .trainer import Trainer, export_checkpoint, train

__all__ = [
    "DistributedContext",
    "PatchSampler",
    "TrainConfig",
    "Trainer",
    "TrainingImage",
    "blind_spot_mask",
    "expand_inputs",
    "export_checkpoint",
    "grow_network",
    "load_training_images",
    "split_by_file",
    "train",
]
