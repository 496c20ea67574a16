"""torch.distributed set-up for ``torchrun`` launches (gloo on CPU, nccl on GPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext"]


@dataclass
class DistributedContext:
    """This process's place in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 in a single process).
        world_size: number of processes.
        local_rank: rank on this node (selects the GPU).
        backend: ``"gloo"``, ``"nccl"`` or ``""`` when not distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and weights."""
        return self.rank == 0

    @staticmethod
    def from_environment(device_type: str) -> DistributedContext:
        """Join the process group ``torchrun`` describes through ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``.

        Args:
            device_type: ``"cuda"`` selects nccl, anything else gloo.
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return DistributedContext()
        backend = "nccl" if device_type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        context = DistributedContext(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            backend=backend,
        )
        if device_type == "cuda":
            torch.cuda.set_device(context.local_rank)
        return context

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def broadcast_flag(self, value: bool) -> bool:
        """Rank 0's boolean, on every rank (e.g. early stop)."""
        if not self.is_distributed:
            return value
        device = torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")
        tensor = torch.tensor([1 if value else 0], dtype=torch.int32, device=device)
        dist.broadcast(tensor, src=0)
        return bool(tensor.item())

    def close(self) -> None:
        if self.is_distributed and dist.is_initialized():
            dist.destroy_process_group()
