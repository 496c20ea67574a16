"""Device and precision selection."""

from __future__ import annotations

import torch

from ..errors import OptionError

__all__ = ["resolve_device", "autocast_dtype", "autocast_forward"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else CPU; ``"cuda"`` without a GPU raises a clear error."""
    text = str(device)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise OptionError("device 'cuda' was requested but no CUDA GPU is available", parameter="device")
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
