"""Slicer-free helpers of the MedDenoise scripted module.

Nothing here imports ``qt``, ``ctk`` or ``slicer.ScriptedLoadableModule``: only the MRML classes and
``slicer.util`` array helpers that the ``slicer-core`` package also provides, so that every function can be
tested for real outside the Slicer application. ``meddenoiselib`` (and through it torch and MONAI) is imported
inside functions only, so that the module loads before its dependencies are installed.

- :mod:`.dependencies`: can this Slicer run the module, what is missing or outdated, where the library sources are.
- :mod:`.install`: what installing the library would change (never a downgrade) and the pip command.
- :mod:`.settings`: the settings of one run, the choices shown in the GUI, the CLI command line.
- :mod:`.volumes`: volume node <-> ``meddenoiselib.io.Volume`` (axis order and IJK->RAS, in one place).
- :mod:`.masks`: segmentation / label map node -> the mask the library takes.
- :mod:`.sequences`: sequence (4D) <-> ``meddenoiselib.io.VolumeSeries``.
- :mod:`.diffusion`: diffusion-weighted volume (gradients as components) <-> a ``VolumeSeries`` of gradient frames.
- :mod:`.multivolume`: multi-volume (a DCE / perfusion / multi-echo run, frames as components) <-> a ``VolumeSeries``.
- :mod:`.runner`: a child process with a reader thread, progress-line parsing and process-tree kill.
- :mod:`.task`: one denoising run, in a child process or on a worker thread, as a small state machine.
- :mod:`.outputs`: the output, residual and QA report nodes of a finished run.
- :mod:`.blend`: the live strength blend of a finished run.
- :mod:`.sampledata`: the bundled chest CT as a Sample Data entry.
"""

from __future__ import annotations

from .dependencies import (
    LIBRARY_SOURCE_FOLDER,
    TORCH_REQUIREMENT,
    find_library_source,
    library_update_needed,
    missing_modules,
    runtime_problem,
    torch_too_old,
)
from .install import InstallPlan, pip_install_command, plan_library_install
from .masks import MASK_NODE_TYPES, labels_on_input_grid, mask_volume
from .regions import RegionMeasurement, fill_region_table, regions_of_node
from .runner import ProcessRunner, SubprocessRunner, kill_process_tree, parse_progress_line, run_to_completion
from .settings import (
    CTWindow,
    DenoiseSettings,
    Device,
    Ensemble,
    MagnitudeFloor,
    Modality,
    ModelChoice,
    NoiseUnits,
    Refine,
    SliceAxis,
    available_models,
    build_cli_command,
    cli_supports,
    default_python_executable,
    modality_from_dicom,
)
from .task import DenoiseTask, TaskState
from .volumes import (
    INPUT_NODE_TYPES,
    check_input_node,
    dicom_modality,
    file_modality,
    first_input_candidate,
    grid_of_node,
    output_node_name,
    resampling_sign_of_node,
    slice_index_in_view,
    update_node_from_volume,
    volume_from_node,
    world_ijk_to_ras,
)

__all__ = [
    "INPUT_NODE_TYPES",
    "LIBRARY_SOURCE_FOLDER",
    "MASK_NODE_TYPES",
    "TORCH_REQUIREMENT",
    "CTWindow",
    "DenoiseSettings",
    "DenoiseTask",
    "Device",
    "Ensemble",
    "MagnitudeFloor",
    "NoiseUnits",
    "InstallPlan",
    "Modality",
    "ModelChoice",
    "ProcessRunner",
    "Refine",
    "RegionMeasurement",
    "SliceAxis",
    "SubprocessRunner",
    "TaskState",
    "available_models",
    "build_cli_command",
    "check_input_node",
    "cli_supports",
    "default_python_executable",
    "dicom_modality",
    "file_modality",
    "find_library_source",
    "fill_region_table",
    "first_input_candidate",
    "grid_of_node",
    "kill_process_tree",
    "labels_on_input_grid",
    "library_update_needed",
    "mask_volume",
    "missing_modules",
    "modality_from_dicom",
    "output_node_name",
    "parse_progress_line",
    "pip_install_command",
    "plan_library_install",
    "regions_of_node",
    "resampling_sign_of_node",
    "run_to_completion",
    "runtime_problem",
    "slice_index_in_view",
    "torch_too_old",
    "update_node_from_volume",
    "volume_from_node",
    "world_ijk_to_ras",
]
