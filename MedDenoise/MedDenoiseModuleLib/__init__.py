"""Slicer-free helpers of the MedDenoise scripted module.

Nothing here imports ``qt``, ``ctk`` or ``slicer.ScriptedLoadableModule``: only the MRML classes and
``slicer.util`` array helpers that the ``slicer-core`` package also provides, so that every function can be
tested for real outside the Slicer application. ``meddenoiselib`` (and through it torch and MONAI) is imported
inside functions only, so that the module loads before its dependencies are installed.

- :mod:`.settings`: the settings of one run, the choices shown in the GUI, the CLI command line.
- :mod:`.volumes`: volume node <-> ``meddenoiselib.io.Volume`` (axis order and IJK->RAS, in one place).
- :mod:`.runner`: a child process with a reader thread, progress-line parsing and process-tree kill.
- :mod:`.task`: one denoising run, in-process or in a child process, as a small state machine.
- :mod:`.dependencies`: which Python packages are missing and where the bundled library sources are.
"""

from __future__ import annotations

from .dependencies import LIBRARY_SOURCE_FOLDER, TORCH_REQUIREMENT, find_library_source, missing_modules
from .runner import ProcessRunner, SubprocessRunner, kill_process_tree, parse_progress_line
from .settings import (
    DenoiseSettings,
    Device,
    ModelChoice,
    SliceAxis,
    available_models,
    build_cli_command,
    default_python_executable,
)
from .task import DenoiseTask, TaskState
from .volumes import (
    check_input_node,
    output_node_name,
    update_node_from_volume,
    volume_from_node,
    world_ijk_to_ras,
)

__all__ = [
    "LIBRARY_SOURCE_FOLDER",
    "TORCH_REQUIREMENT",
    "DenoiseSettings",
    "DenoiseTask",
    "Device",
    "ModelChoice",
    "ProcessRunner",
    "SliceAxis",
    "SubprocessRunner",
    "TaskState",
    "available_models",
    "build_cli_command",
    "check_input_node",
    "default_python_executable",
    "find_library_source",
    "kill_process_tree",
    "missing_modules",
    "output_node_name",
    "parse_progress_line",
    "update_node_from_volume",
    "volume_from_node",
    "world_ijk_to_ras",
]
