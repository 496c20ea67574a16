"""Device and precision selection."""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

import torch

from ..errors import OptionError

__all__ = ["resolve_device", "autocast_dtype", "autocast_forward", "unused_gpu_reason"]

logger = logging.getLogger(__name__)


def nvidia_driver_present() -> bool:
    """Whether this computer has an NVIDIA driver (Linux: its ``/proc`` entry; any system: ``nvidia-smi``, which
    the driver installs)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def unused_gpu_reason() -> str | None:
    """Why an NVIDIA GPU this computer has is not used, in the user's words, or None (no such GPU, or it is used).

    The usual cause is a PyTorch built for the CPU only (``pip install torch`` on some systems, or an install that
    picked the wrong build); less often a CUDA build newer than the driver.
    """
    if torch.cuda.is_available() or not nvidia_driver_present():
        return None
    if torch.version.cuda is None:
        return (
            f"this computer has an NVIDIA GPU, but the installed PyTorch {torch.__version__} was built for the CPU "
            "only; install a CUDA build of PyTorch to use the GPU (in 3D Slicer: the PyTorch Utils module)"
        )
    return (
        f"this computer has an NVIDIA GPU, but PyTorch {torch.__version__} (built for CUDA {torch.version.cuda}) "
        "cannot use it: the NVIDIA driver may be older than that CUDA version needs; update the driver or install a "
        "PyTorch build for an older CUDA"
    )


@functools.cache
def _say_once(message: str) -> None:
    logger.warning("running on the CPU: %s", message)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU (saying once why an NVIDIA GPU present is not used:
    :func:`unused_gpu_reason`); ``"cuda"`` without a usable GPU raises a clear error."""
    text = str(device)
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        reason = unused_gpu_reason()
        if reason is not None:
            _say_once(reason)
        return torch.device("cpu")
    if text.startswith("cuda") and not torch.cuda.is_available():
        reason = unused_gpu_reason() or "no CUDA GPU is available"
        raise OptionError(f"device 'cuda' was requested but {reason}", parameter="device")
    try:
        return torch.device(text)
    except RuntimeError as exc:
        raise OptionError(f"device {text!r} is not valid ({exc}); use auto, cpu or cuda", parameter="device") from exc


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for a precision choice, or None for full float32.

    ``"auto"``: float16 on CUDA; bfloat16 on CPUs with native bf16 (about 3x faster there); float32 otherwise.
    ``"fp32"``, ``"bf16"``, ``"fp16"`` force a choice. Autocast covers the convolutions; a KPN keeps its kernel
    heads and the per-pixel filtering in float32 (``networks/kpn.py``), which decide the output to a few HU.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if precision != "auto":
        raise OptionError(f"`precision` must be auto, fp32, bf16 or fp16, got {precision!r}.", parameter="precision")
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_forward(
    model: torch.nn.Module, batch: torch.Tensor, device: torch.device, dtype: torch.dtype | None
) -> torch.Tensor:
    """``model(batch)`` in float32, under autocast to ``dtype`` when given, channels-last on the CPU.

    The one forward pass of inference and training: channels-last is what oneDNN's fast CPU convolutions want,
    and the float32 result keeps losses, blending and the inverse scaling out of reduced precision.

    Args:
        model: a network on ``device``.
        batch: ``(B, C, *spatial)`` on ``device``.
        device: where it runs (its type chooses the autocast backend).
        dtype: ``torch.bfloat16``/``torch.float16`` for autocast, or None for plain float32.

    Returns:
        ``model(batch)`` as float32.
    """
    if device.type == "cpu" and batch.ndim in (4, 5):
        batch = batch.contiguous(memory_format=torch.channels_last if batch.ndim == 4 else torch.channels_last_3d)
    if dtype is None:
        return model(batch).float()
    with torch.autocast(device_type=device.type, dtype=dtype):
        return model(batch).float()
