"""The settings of one denoising run, the choices the GUI offers, and the matching CLI command line."""

from __future__ import annotations

import enum
import logging
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DenoiseSettings",
    "Device",
    "ModelChoice",
    "SliceAxis",
    "available_models",
    "build_cli_command",
    "default_python_executable",
]

logger = logging.getLogger(__name__)


class Device(enum.Enum):
    """Where the network runs. Stored in the parameter node by name."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"

    def label(self) -> str:
        """Text shown in the device combo box."""
        return {"auto": "auto (GPU when available)", "cpu": "cpu", "cuda": "cuda (GPU)"}[self.value]


class SliceAxis(enum.Enum):
    """Array axis along which 2D models run on a volume (``-1``: the library picks the largest spacing)."""

    AUTO = -1
    K = 0
    J = 1
    I = 2  # noqa: E741 - the volume's i axis

    def label(self) -> str:
        """Text shown in the slice-axis combo box."""
        return {
            -1: "auto (largest spacing)",
            0: "k (slices, array axis 0)",
            1: "j (rows, array axis 1)",
            2: "i (columns, array axis 2)",
        }[self.value]

    @property
    def array_axis(self) -> int | None:
        """The library's ``slice_axis`` (None for automatic)."""
        return None if self is SliceAxis.AUTO else int(self.value)


@dataclass(frozen=True)
class DenoiseSettings:
    """Everything that changes the result of one run.

    Attributes:
        model: shipped model or baseline name, or ``"default"`` for the best shipped model.
        noise_level: noise sigma on the 0-255 scale of the normalized image, or None to estimate it ("auto").
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (a :class:`Device` is accepted too).
        roi_size: sliding-window edge in voxels; 0 uses the model's preset.
        overlap: sliding-window overlap in [0, 1).
        slice_axis: array axis (0, 1, 2) for 2D models on volumes; None lets the library choose.
        separate_process: run the CLI in a child process (True) or the library inside this process (False).
    """

    model: str = "default"
    noise_level: float | None = None
    device: str = "auto"
    roi_size: int = 0
    overlap: float = 0.25
    slice_axis: int | None = None
    separate_process: bool = True

    def __post_init__(self) -> None:
        device = self.device.value if isinstance(self.device, Device) else str(self.device)
        object.__setattr__(self, "device", device)
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"`model` must be a non-empty name, got {self.model!r}.")
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"`device` must be auto, cpu or cuda, got {self.device!r}.")
        if self.noise_level is not None and not float(self.noise_level) >= 0:
            raise ValueError(
                f"`noise_level` must be non-negative (0-255 scale) or None for auto, got {self.noise_level!r}."
            )
        if int(self.roi_size) < 0:
            raise ValueError(
                f"`roi_size` must be 0 (model preset) or a positive number of voxels, got {self.roi_size!r}."
            )
        if not 0 <= float(self.overlap) < 1:
            raise ValueError(f"`overlap` must be in [0, 1), got {self.overlap!r}.")
        if self.slice_axis not in (None, 0, 1, 2):
            raise ValueError(f"`slice_axis` must be 0, 1, 2 or None (automatic), got {self.slice_axis!r}.")

    @property
    def sigma(self) -> float | str:
        """The library's ``sigma``: a fraction of the normalized range, or ``"auto"``."""
        return "auto" if self.noise_level is None else float(self.noise_level) / 255.0

    def cli_arguments(self) -> list[str]:
        """The ``python -m meddenoiselib denoise`` options for these settings."""
        arguments = [
            "--model", self.model,
            "--sigma", "auto" if self.noise_level is None else repr(float(self.noise_level)),
            "--device", self.device,
            "--overlap", repr(float(self.overlap)),
        ]
        if self.roi_size:
            arguments += ["--roi", str(int(self.roi_size))]
        if self.slice_axis is not None:
            arguments += ["--slice-axis", str(int(self.slice_axis))]
        return arguments

    def denoiser_arguments(self, progress_callback=None) -> dict:
        """Keyword arguments of ``meddenoiselib.inference.Denoiser`` for these settings."""
        return {
            "method": self.model,
            "device": self.device,
            "roi_size": int(self.roi_size) or None,
            "overlap": float(self.overlap),
            "slice_axis": self.slice_axis,
            "progress_callback": progress_callback,
        }


def build_cli_command(python: str, input_path: str | Path, output_path: str | Path,
                      settings: DenoiseSettings) -> list[str]:
    """The child-process command line: ``python -m meddenoiselib denoise IN OUT ... --progress-format lines``."""
    return [
        str(python), "-m", "meddenoiselib", "denoise", str(input_path), str(output_path),
        *settings.cli_arguments(),
        "--progress-format", "lines", "--overwrite",
    ]


def default_python_executable(inside_slicer: bool, slicer_home: str | None = None) -> str:
    """``PythonSlicer`` inside the Slicer application (same site-packages as Slicer), else this interpreter.

    Inside Slicer ``sys.executable`` may be the application itself, so PythonSlicer is looked up on PATH and in
    ``<slicer_home>/bin``; when it is in neither place a RuntimeError says so.
    """
    if not inside_slicer:
        return sys.executable
    found = shutil.which("PythonSlicer")
    if found:
        return found
    if slicer_home:
        for name in ("PythonSlicer", "PythonSlicer.exe"):
            candidate = Path(slicer_home) / "bin" / name
            if candidate.is_file():
                return str(candidate)
    raise RuntimeError(
        "PythonSlicer was not found (neither on PATH nor in Slicer's bin folder); uncheck 'Run in separate "
        "process' to denoise inside Slicer"
    )


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model combo box."""

    name: str
    description: str


def available_models() -> list[ModelChoice]:
    """``default``, the shipped networks and the installed baselines, found without importing torch.

    Without meddenoiselib installed the list holds ``default`` only.
    """
    choices = [ModelChoice("default", "the best shipped model")]
    try:
        from meddenoiselib.weights import list_shipped_weights, load_model_card
    except ImportError:
        return choices
    for name in list_shipped_weights():
        try:
            description = str(load_model_card(name).get("description", ""))
        except Exception:  # a broken card must not break the GUI  # noqa: BLE001
            description = ""
        choices.append(ModelChoice(name, description))
    try:
        from meddenoiselib.baselines import list_baselines
    except Exception as exc:  # a broken optional dependency must not break the GUI  # noqa: BLE001
        logger.warning("cannot list the classical baselines: %s", exc)
        return choices
    for baseline in list_baselines():
        if baseline.available():
            choices.append(ModelChoice(baseline.name, baseline.description))
    return choices

