"""The settings of one denoising run, the choices the GUI offers, and the matching CLI command line."""

from __future__ import annotations

import contextlib
import enum
import functools
import io
import logging
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

__all__ = [
    "CTWindow",
    "DenoiseSettings",
    "Device",
    "Ensemble",
    "MagnitudeFloor",
    "Modality",
    "ModelChoice",
    "NoiseUnits",
    "Refine",
    "SliceAxis",
    "UNKNOWN_AUTO_MODEL",
    "available_models",
    "build_cli_command",
    "check_weights_file",
    "cli_supports",
    "default_python_executable",
    "modality_from_dicom",
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


class Modality(enum.Enum):
    """The scan's modality, handed to the library's automatic model choice (``--modality``).

    ``FROM_DICOM`` reads the series' DICOM Modality from the subject hierarchy (as Slicer's DICOM module stores it), or
    for a volume loaded from a file what the file says (a DICOM or MetaImage header, its name or sidecar:
    ``volumes.file_modality``).
    """

    FROM_DICOM = "dicom"
    CT = "ct"
    MR = "mr"
    US = "us"
    XRAY = "xray"
    OTHER = "other"

    def label(self) -> str:
        """Text shown in the modality combo box."""
        return {
            "dicom": "from DICOM or the file (if known)",
            "ct": "CT",
            "mr": "MR",
            "us": "ultrasound",
            "xray": "X-ray",
            "other": "other",
        }[self.value]


def modality_from_dicom(code: str | None) -> str | None:
    """The library's modality word (``"ct"``, ``"mr"``, ``"us"``, ``"xray"``, ``"other"``) for a DICOM Modality code,
    as the library itself maps the tag (``meddenoiselib.io.modality_from_dicom_code``); None when there is no code or
    no library."""
    try:
        from meddenoiselib.io import modality_from_dicom_code
    except ImportError:
        return None
    modality = modality_from_dicom_code(code)
    return None if modality is None else modality.value


class CTWindow(enum.Enum):
    """Intensity normalization with a CT window in HU (``--window CENTER,WIDTH``); values outside are kept."""

    NONE = "none"
    SOFT_TISSUE = "soft-tissue"
    LUNG = "lung"
    BONE = "bone"
    BRAIN = "brain"
    CUSTOM = "custom"

    def label(self) -> str:
        """Text shown in the CT window combo box."""
        return {
            "none": "none (the model's own scaling)",
            "soft-tissue": "soft tissue (40, 400)",
            "lung": "lung (-600, 1500)",
            "bone": "bone (400, 1800)",
            "brain": "brain (40, 80)",
            "custom": "custom",
        }[self.value]

    def center_width(self, center: float, width: float) -> tuple[float, float] | None:
        """``(center, width)`` in HU; the custom values for CUSTOM, None for NONE."""
        presets = {
            "soft-tissue": (40.0, 400.0),
            "lung": (-600.0, 1500.0),
            "bone": (400.0, 1800.0),
            "brain": (40.0, 80.0),
        }
        if self is CTWindow.NONE:
            return None
        if self is CTWindow.CUSTOM:
            return float(center), float(width)
        return presets[self.value]


class NoiseUnits(enum.Enum):
    """What a noise level typed in the module is measured in: the 0-255 scale of the normalized image
    (``--sigma``), or the volume's own units, HU for CT (``--noise-sd``: the SD that Segment Statistics measures in a
    flat region)."""

    NORMALIZED = "0-255"
    IMAGE = "image"

    def label(self) -> str:
        """Text shown in the noise units combo box."""
        return {"0-255": "0-255 scale", "image": "SD in image units (HU for CT)"}[self.value]


class Ensemble(enum.Enum):
    """Geometric self-ensemble of networks (``--ensemble``): more views, a little better, proportionally slower.
    ``AUTO`` lets the library choose: all 8 views for a single 2D image and a CT series of up to 8 slices, 4 for one
    of up to 64 slices the CT model refines, none for other volumes."""

    AUTO = "auto"
    ONE = 1
    TWO = 2
    FOUR = 4
    EIGHT = 8

    def label(self) -> str:
        """Text shown in the ensemble combo box."""
        return {
            "auto": "auto (8 views for a 2D image, 4 for refined CT, else off)",
            1: "off",
            2: "2 views (2x time)",
            4: "4 views (4x time)",
            8: "8 views (8x time)",
        }[self.value]


class Refine(enum.Enum):
    """Collaborative Wiener refinement of a network's output (``--refine``): sharper edges on 2D images, less
    low-frequency noise on CT, several seconds per slice. ``AUTO`` lets the library choose: a single 2D image with the
    general model, CT of up to 8 slices of 512x512 (1024 on a CUDA GPU, 23 s for a 300-slice CT on an H200), longer
    CT and fine magnitude MR volumes of up to 1024 slices with cheaper block searches (a 32-slice CT ~20 s more on 2
    CPU cores, a 100-slice CT ~40 s more, a 300-slice CT ~25 s more); ``ON`` refines any size with the full search
    (a 300-slice CT takes ~10 min more on 2 CPU cores); ``OFF`` never (the network alone, fastest)."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"

    def label(self) -> str:
        """Text shown in the refine combo box."""
        return {
            "auto": "auto (2D images, CT and MR; large volumes cheaper)",
            "on": "on (any size; seconds per slice)",
            "off": "off (network alone)",
        }[self.value]


class MagnitudeFloor(enum.Enum):
    """The Rician / non-central chi noise floor of magnitude MR (``--magnitude-floor``): removed where the automatic
    model finds one in the air (``AUTO``), removed with any method (``REMOVE``: a Rician-corrected NLM or BM3D), or
    left (``KEEP``)."""

    AUTO = "auto"
    REMOVE = "remove"
    KEEP = "keep"

    def label(self) -> str:
        """Text shown in the MR noise floor combo box."""
        return {
            "auto": "auto (removed with the automatic model)",
            "remove": "remove (with any method)",
            "keep": "keep (the magnitude's mean)",
        }[self.value]


@dataclass(frozen=True)
class DenoiseSettings:
    """Everything that changes the result of one run.

    The strength blend is not here: the module always computes the full-strength result and blends it with the
    input afterwards (live, without running again), with the library's :func:`meddenoiselib.blend.blend`.

    Attributes:
        model: shipped model or baseline name, ``"default"`` for the best shipped model, or ``"auto"`` (chosen by
            the library from the modality; on a library without automatic choice the task falls back to
            ``"default"`` and says so in the log).
        noise_level: noise sigma on the 0-255 scale of the normalized image, or None to estimate it ("auto").
        noise_sd: instead, the noise's standard deviation in the volume's own units (HU for CT), e.g. the SD that
            Segment Statistics measured in a flat region; the library converts it to each method's scaling. At most
            one of ``noise_level`` and ``noise_sd``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (a :class:`Device` is accepted too).
        roi_size: sliding-window edge in voxels; 0 uses the model's preset.
        overlap: sliding-window overlap in [0, 1).
        slice_axis: array axis (0, 1, 2) for 2D models on volumes; None lets the library choose.
        separate_process: run the CLI in a child process (True) or the library inside this process (False).
        window: ``(center, width)`` of a CT window in HU for intensity normalization, or None.
        modality: ``"ct"``, ``"mr"``, ``"us"``, ``"xray"``, ``"other"`` for the automatic model choice, or None.
        ensemble: 1, 2, 4 or 8 geometric views averaged (networks only), or ``"auto"`` (the library's choice: 8 for a
            single 2D image and a CT series of up to 8 slices, 4 for one of up to 64 the CT model refines, else 1).
        refine: ``"auto"``, ``"on"`` or ``"off"``: the collaborative Wiener refinement (a :class:`Refine` is accepted
            too).
        leave_metal_out: with ``auto`` on CT, leave clusters at or above 2500 HU out of the denoising (the library's
            default); False denoises them too (``--metal off``).
        noise_sd_map_auto: denoise on a noise SD map read from the image (``NoiseSDMap.estimated()``,
            ``--noise-sd-map auto``) for noise that varies across it, with any method (``auto`` reads one by itself
            where a magnitude MR's floor varies); not with ``noise_level`` or ``noise_sd``.
        magnitude_floor: ``"auto"``, ``"remove"`` or ``"keep"``: magnitude MR's noise floor (a
            :class:`MagnitudeFloor` is accepted too).
        coils: the receive coils a magnitude MR was combined from (root sum of squares), for the floor's removal;
            None reads the count from the air.
        stabilize: NLM, BM3D and BM4D with the noise estimated run under the generalized Anscombe transform where
            the noise of an X-ray or other image grows with the signal (the library's default); False: never
            (``--stabilize off``).
        weights: a ``.safetensors`` file the user trained (``python -m meddenoiselib train``, its ``.json`` model
            card beside it), run instead of ``model`` (``--weights``); None: ``model`` decides. Checked when the
            settings are made (the file, its card, a card the library can read), so a run is not started in vain.
    """

    model: str = "auto"
    noise_level: float | None = None
    noise_sd: float | None = None
    device: str = "auto"
    roi_size: int = 0
    overlap: float = 0.25
    slice_axis: int | None = None
    separate_process: bool = True
    window: tuple[float, float] | None = None
    modality: str | None = None
    ensemble: int | str = "auto"
    refine: str = "auto"
    leave_metal_out: bool = True
    noise_sd_map_auto: bool = False
    weights: str | None = None
    magnitude_floor: str = "auto"
    coils: int | None = None
    stabilize: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.magnitude_floor, MagnitudeFloor):
            object.__setattr__(self, "magnitude_floor", self.magnitude_floor.value)
        if self.magnitude_floor not in {choice.value for choice in MagnitudeFloor}:
            raise ValueError(f"`magnitude_floor` must be 'auto', 'remove' or 'keep', got {self.magnitude_floor!r}.")
        if self.coils is not None and not (isinstance(self.coils, int) and 1 <= self.coils <= 64):
            raise ValueError(
                f"`coils` must be a whole number from 1 to 64 or None (read from the air), got {self.coils!r}."
            )
        if self.weights is not None:
            object.__setattr__(self, "weights", check_weights_file(self.weights))
        device = self.device.value if isinstance(self.device, Device) else str(self.device)
        object.__setattr__(self, "device", device)
        if isinstance(self.ensemble, Ensemble):
            object.__setattr__(self, "ensemble", self.ensemble.value)
        if isinstance(self.refine, Refine):
            object.__setattr__(self, "refine", self.refine.value)
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"`model` must be a non-empty name, got {self.model!r}.")
        if device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"`device` must be auto, cpu or cuda, got {self.device!r}.")
        if self.noise_level is not None and not 0 <= float(self.noise_level) <= 255:
            raise ValueError(
                f"`noise_level` must be in 0-255 (0-255 scale) or None for auto, got {self.noise_level!r}; an SD in "
                "the volume's units (HU for CT) goes in as `noise_sd`."
            )
        if self.noise_sd is not None:
            if not (np.isfinite(float(self.noise_sd)) and float(self.noise_sd) > 0):
                raise ValueError(
                    f"`noise_sd` must be a positive number in the volume's units or None, got {self.noise_sd!r}."
                )
            if self.noise_level is not None:
                raise ValueError(
                    "Give the noise as `noise_level` (0-255 scale) or as `noise_sd` (image units), not both."
                )
        if self.noise_sd_map_auto and (self.noise_level is not None or self.noise_sd is not None):
            raise ValueError(
                "A noise SD map read from the image gives the noise level per voxel; set the noise level to auto."
            )
        if int(self.roi_size) < 0:
            raise ValueError(
                f"`roi_size` must be 0 (model preset) or a positive number of voxels, got {self.roi_size!r}."
            )
        if not 0 <= float(self.overlap) < 1:
            raise ValueError(f"`overlap` must be in [0, 1), got {self.overlap!r}.")
        if self.slice_axis not in (None, 0, 1, 2):
            raise ValueError(f"`slice_axis` must be 0, 1, 2 or None (automatic), got {self.slice_axis!r}.")
        if self.window is not None:
            center, width = (float(v) for v in self.window)
            if not (np.isfinite(center) and np.isfinite(width) and width > 0):
                raise ValueError(f"`window` must be (center, width) with a positive width, got {self.window!r}.")
            object.__setattr__(self, "window", (center, width))
        if self.modality is not None and self.modality not in MODALITY_WORDS:
            raise ValueError(f"`modality` must be one of {', '.join(MODALITY_WORDS)} or None, got {self.modality!r}.")
        if self.ensemble != "auto" and self.ensemble not in (1, 2, 4, 8):
            raise ValueError(f"`ensemble` must be 'auto', 1, 2, 4 or 8, got {self.ensemble!r}.")
        if self.refine not in {choice.value for choice in Refine}:
            raise ValueError(f"`refine` must be 'auto', 'on' or 'off', got {self.refine!r}.")

    @property
    def sigma(self):
        """The library's ``sigma``: a ``meddenoiselib.transforms.NoiseSD`` in the volume's units, a fraction of the
        normalized range, a noise SD map read from the image, or ``"auto"``."""
        if self.noise_sd_map_auto:
            from meddenoiselib.transforms import NoiseSDMap

            return NoiseSDMap.estimated()
        if self.noise_sd is not None:
            from meddenoiselib.transforms import NoiseSD

            return NoiseSD(float(self.noise_sd))
        return "auto" if self.noise_level is None else float(self.noise_level) / 255.0

    def with_model(self, model: str) -> DenoiseSettings:
        """The same settings with another model (the fallback from ``auto`` to ``default``)."""
        return replace(self, model=model)

    def cli_arguments(self, modality_option: bool = False) -> list[str]:
        """The ``python -m meddenoiselib denoise`` options for these settings.

        Args:
            modality_option: the CLI has ``--modality`` (see :func:`cli_supports`); otherwise it is left out.
            ``--metal off`` is passed only to a library that has it (an older one leaves no metal out anyway).
        """
        noise = ["--sigma", "auto" if self.noise_level is None else repr(float(self.noise_level))]
        if self.noise_sd is not None:
            noise = ["--noise-sd", repr(float(self.noise_sd))]
        if self.noise_sd_map_auto:
            noise = ["--noise-sd-map", "auto"]
        arguments = [
            *(["--model", self.model] if self.weights is None else ["--weights", self.weights]),
            *noise,
            "--device",
            self.device,
            "--overlap",
            repr(float(self.overlap)),
        ]
        if self.roi_size:
            arguments += ["--roi", str(int(self.roi_size))]
        if self.slice_axis is not None:
            arguments += ["--slice-axis", str(int(self.slice_axis))]
        if self.window is not None:
            arguments += ["--window", f"{self.window[0]!r},{self.window[1]!r}"]
        if self.ensemble != "auto":
            arguments += ["--ensemble", str(int(self.ensemble))]
        if self.refine != "auto":
            arguments += ["--refine", self.refine]
        if self.modality is not None and modality_option:
            arguments += ["--modality", self.modality]
        if not self.leave_metal_out and cli_supports("--metal", "off"):
            arguments += ["--metal", "off"]  # a library without --metal leaves no metal out
        if self.magnitude_floor != "auto" or self.coils is not None:
            if not cli_supports("--magnitude-floor", self.magnitude_floor):
                raise ValueError(OLD_LIBRARY_FLOOR)
            arguments += ["--magnitude-floor", self.magnitude_floor]
        if self.coils is not None:
            arguments += ["--coils", str(int(self.coils))]
        if not self.stabilize:
            if not cli_supports("--stabilize", "off"):
                raise ValueError(OLD_LIBRARY_STABILIZE)
            arguments += ["--stabilize", "off"]
        return arguments

    def denoiser_arguments(self, progress_callback=None, accepted: tuple[str, ...] | None = None) -> dict:
        """Keyword arguments of ``meddenoiselib.inference.Denoiser`` for these settings.

        Args:
            progress_callback: the Denoiser's ``progress_callback``.
            accepted: the Denoiser's parameter names; ``modality`` is passed only when it is one of them.
        """
        arguments = {
            "method": self.model,
            "weights": self.weights,
            "device": self.device,
            "roi_size": int(self.roi_size) or None,
            "overlap": float(self.overlap),
            "slice_axis": self.slice_axis,
            "window": self.window,
            "progress_callback": progress_callback,
        }
        if self.ensemble != "auto":  # "auto" is the library's own default
            arguments["ensemble"] = int(self.ensemble)
        if self.refine != "auto":
            arguments["refine"] = self.refine
        if self.modality is not None and accepted is not None and "modality" in accepted:
            arguments["modality"] = self.modality
        if not self.leave_metal_out and accepted is not None and "metal_hu" in accepted:
            arguments["metal_hu"] = None
        if self.magnitude_floor != "auto" or self.coils is not None:
            if accepted is not None and "magnitude_floor" not in accepted:
                raise ValueError(OLD_LIBRARY_FLOOR)
            arguments["magnitude_floor"] = self.magnitude_floor
        if self.coils is not None:
            arguments["coils"] = int(self.coils)
        if not self.stabilize:
            if accepted is not None and "stabilize" not in accepted:
                raise ValueError(OLD_LIBRARY_STABILIZE)
            arguments["stabilize"] = "off"
        return arguments


#: why photon noise cannot be left unstabilized: the installed library predates the setting (and the transform)
OLD_LIBRARY_STABILIZE = (
    "The installed meddenoiselib has no photon-noise stabilization setting (it always gives NLM and BM3D one noise "
    "level); update it (Apply installs the module's version) or leave 'Stabilize photon noise' checked."
)

#: why an MR noise floor setting cannot run: the installed library predates it
OLD_LIBRARY_FLOOR = (
    "The installed meddenoiselib has no MR noise floor setting (remove / keep, coils); update it (Apply installs the "
    "module's version) or leave the MR noise floor on auto and the coils on 'from the air'."
)


#: the library's ``--modality`` words.
MODALITY_WORDS = ("ct", "mr", "us", "xray", "other")


def check_weights_file(path: str | Path) -> str:
    """The absolute path of trained weights the module can run, or a ValueError saying what is wrong with them.

    The file must be a ``.safetensors`` file (weights are never unpickled: a ``.pt`` checkpoint is refused) with the
    ``.json`` model card ``train`` writes beside it, readable by the installed library (without it only the file
    is checked; the run then reports what the library says).
    """
    weights = Path(str(path)).expanduser()
    if weights.suffix == ".json" and weights.with_suffix(".safetensors").is_file():
        raise ValueError(f"{weights} is a model card; choose the weights beside it, {weights.stem}.safetensors.")
    if not weights.is_file():
        raise ValueError(f"The weights file {weights} was not found.")
    if weights.suffix != ".safetensors":
        raise ValueError(
            f"{weights} is not a .safetensors file: the module runs weights saved by 'python -m meddenoiselib train' "
            "(model.safetensors with its model.json), never pickled checkpoints."
        )
    try:
        from meddenoiselib.weights import load_model_card
    except ImportError:
        return str(weights.resolve())
    try:
        card = load_model_card(weights)
    except Exception as exc:  # noqa: BLE001 - the library's own message names the file and the problem
        raise ValueError(str(exc)) from None
    if not isinstance(card, dict) or "architecture" not in card:
        raise ValueError(f"{weights.with_suffix('.json')}: the model card names no architecture.")
    return str(weights.resolve())


def build_cli_command(
    python: str,
    input_path: str | Path,
    output_path: str | Path,
    settings: DenoiseSettings,
    extra: list[str] | tuple[str, ...] = (),
    modality_option: bool = False,
) -> list[str]:
    """The child-process command line: ``python -m meddenoiselib denoise IN OUT ... --progress-format lines``.

    ``extra`` holds per-run options that are not settings (``--mask FILE``, ``--report FILE``).
    """
    return [
        str(python),
        "-m",
        "meddenoiselib",
        "denoise",
        str(input_path),
        str(output_path),
        *settings.cli_arguments(modality_option=modality_option),
        *extra,
        "--progress-format",
        "lines",
        "--overwrite",
    ]


@functools.cache
def cli_supports(option: str, value: str = "x") -> bool:
    """Whether the installed library's ``denoise`` command accepts ``option value`` (e.g. ``--mask m.nrrd``).

    Asked from the library's own argument parser, which imports neither torch nor MONAI, so the module can tell what
    the installed library supports without loading it. False when meddenoiselib is not importable. Call
    ``cli_supports.cache_clear()`` after installing another library version.
    """
    try:
        from meddenoiselib.cli import build_parser
    except ImportError:
        return False
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            _, unknown = build_parser().parse_known_args(["denoise", "input.nrrd", "output.nrrd", option, value])
    except SystemExit:  # known option, value refused
        return False
    return option not in unknown


#: what the library says when it does not know a model name; ``auto`` falls back to ``default`` on this message.
UNKNOWN_AUTO_MODEL = "unknown model 'auto'"


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
    """``auto``, ``default``, the shipped networks and the installed baselines, found without importing torch.

    Without meddenoiselib installed the list holds ``auto`` and ``default`` only.
    """
    choices = [
        ModelChoice(
            "auto",
            "chosen by the library from the modality (DICOM or the Modality setting); 'default' on a "
            "library version without automatic choice",
        ),
        ModelChoice("default", "the best shipped model"),
    ]
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
