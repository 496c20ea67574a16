"""Device choice: an NVIDIA GPU that PyTorch cannot use is named (a CPU-only build, a driver older than the build's
CUDA), once, instead of running silently on the CPU."""

from __future__ import annotations

import logging

import pytest
import torch

from meddenoiselib.errors import OptionError
from meddenoiselib.inference import device as device_module
from meddenoiselib.inference.device import resolve_device, unused_gpu_reason


@pytest.fixture()
def gpu_unusable(monkeypatch):
    """A computer with an NVIDIA driver whose GPU torch cannot use; ``cuda`` is the build's CUDA version."""
    monkeypatch.setattr(device_module, "nvidia_driver_present", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device_module._say_once.cache_clear()

    def build(cuda):
        monkeypatch.setattr(torch.version, "cuda", cuda)

    yield build
    device_module._say_once.cache_clear()


def test_a_cpu_only_build_beside_an_nvidia_gpu_is_named_once(gpu_unusable, caplog):
    gpu_unusable(None)
    with caplog.at_level(logging.WARNING, logger="meddenoiselib.inference.device"):
        assert resolve_device("auto") == torch.device("cpu")
        assert resolve_device("auto") == torch.device("cpu")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("running on the CPU: this computer has an NVIDIA GPU, but the installed PyTorch")
    assert "was built for the CPU only; install a CUDA build of PyTorch" in warnings[0]
    with pytest.raises(OptionError, match="device 'cuda' was requested but this computer has an NVIDIA GPU"):
        resolve_device("cuda")


def test_a_cuda_build_the_driver_cannot_run_is_named(gpu_unusable):
    gpu_unusable("12.8")
    assert "(built for CUDA 12.8) cannot use it: the NVIDIA driver may be older" in unused_gpu_reason()


def test_no_nvidia_gpu_no_warning(monkeypatch, caplog):
    monkeypatch.setattr(device_module, "nvidia_driver_present", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device_module._say_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="meddenoiselib.inference.device"):
        assert resolve_device("auto") == torch.device("cpu")
    assert not caplog.records and unused_gpu_reason() is None
    with pytest.raises(OptionError, match="^device 'cuda' was requested but no CUDA GPU is available$"):
        resolve_device("cuda")
