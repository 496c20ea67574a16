"""One denoising run as a small state machine: IDLE -> RUNNING -> DONE | FAILED | CANCELLED.

The one data path is node -> ``Volume`` -> ``Denoiser`` -> ``Volume`` -> node. In a child process (the default)
the ``Volume`` travels through a temporary NRRD file and ``python -m meddenoiselib denoise``; in-process it is
handed to ``meddenoiselib.inference.Denoiser`` directly. Either way the output node is created or changed only
after a complete result is in memory, so a failed or cancelled run leaves the scene as it was, and the
temporary folder is removed whatever the outcome.

The task never blocks on its own in child-process mode: call :meth:`DenoiseTask.poll` from a timer (the GUI)
or :meth:`DenoiseTask.wait` (scripts, tests). In-process mode runs synchronously inside :meth:`start`; its
progress callback is the place to keep a GUI responsive, and a cancel request takes effect at the next
progress report.
"""

from __future__ import annotations

import collections
import enum
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .runner import ProcessRunner, SubprocessRunner, parse_progress_line
from .settings import DenoiseSettings, build_cli_command
from .volumes import (
    copy_display_settings,
    output_node_name,
    place_next_to,
    read_volume_file,
    update_node_from_volume,
    volume_from_node,
    world_ijk_to_ras,
    write_volume_file,
)

__all__ = ["DenoiseTask", "TaskState"]

logger = logging.getLogger(__name__)


class TaskState(enum.Enum):
    """Where a task is."""

    IDLE = "idle"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for DONE, FAILED and CANCELLED."""
        return self in (TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED)


class _CancelRequested(Exception):
    """Raised from the library's progress callback to stop an in-process run."""


#: geometry read back from the child's output may differ from the input by float formatting only.
_GEOMETRY_TOLERANCE_MM = 1e-4


class DenoiseTask:
    """Denoise one volume node into a new or given output node.

    Args:
        input_node: the scalar volume node to denoise (not modified unless it is also ``output_node``).
        settings: what to run (model, noise level, device, windows, in-process or child process).
        output_node: the node to fill; None creates ``"<input name> denoised"`` on success. Defaults to None.
        python_executable: the interpreter for the child process (``PythonSlicer`` in Slicer). Defaults to the
            current interpreter.
        runner_factory: makes the :class:`ProcessRunner` for the child process. Defaults to
            :class:`SubprocessRunner`.
        env: environment of the child process. Defaults to this process's environment.
        temp_root: where the temporary folder is made. Defaults to the system temporary folder.
        on_progress: ``callback(fraction, message)``.
        on_state_changed: ``callback(task)`` after every state change.
        on_log: ``callback(line)`` for every non-progress output line of the child process.

    Attributes:
        state: the :class:`TaskState`.
        progress: fraction done in [0, 1]; message: the latest progress or status text.
        error: the one-line reason of a failure ("" otherwise).
        output_node: the filled node once DONE (None before, and after a failure that created nothing).
        seconds: wall time from start to the end state.
        command: the child-process command line (child-process mode).
        log: the last output lines of the child process.
    """

    INPUT_FILE = "input.nrrd"
    OUTPUT_FILE = "output.nrrd"

    def __init__(
        self,
        input_node,
        settings: DenoiseSettings,
        output_node=None,
        *,
        python_executable: str | None = None,
        runner_factory: Callable[[], ProcessRunner] = SubprocessRunner,
        env: dict[str, str] | None = None,
        temp_root: str | Path | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_state_changed: Callable[[DenoiseTask], None] | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self.input_node = input_node
        self.settings = settings
        self.requested_output_node = output_node
        self.output_node = None
        self.python_executable = python_executable
        self.runner_factory = runner_factory
        self.env = env
        self.temp_root = temp_root
        self.on_progress = on_progress
        self.on_state_changed = on_state_changed
        self.on_log = on_log

        self.state = TaskState.IDLE
        self.progress = 0.0
        self.message = ""
        self.error = ""
        self.seconds = 0.0
        self.command: list[str] | None = None
        self.runner: ProcessRunner | None = None
        self.temp_dir: Path | None = None
        self.log: collections.deque[str] = collections.deque(maxlen=400)
        self._started_at = 0.0
        self._cancel_requested = False
        self._denoiser = None
        self._input_volume = None
        self._input_ijk_to_ras: np.ndarray | None = None

    # ------------------------------------------------------------------------------------------ public API
    def start(self) -> DenoiseTask:
        """Leave IDLE: convert the input and start the child process, or run in-process to the end.

        Errors do not raise: they end the task in FAILED with :attr:`error` set.
        """
        if self.state is not TaskState.IDLE:
            raise RuntimeError(f"a task starts once; this one is {self.state.value}")
        self._started_at = time.monotonic()
        self._set_state(TaskState.RUNNING, "Reading the input volume")
        try:
            self._input_ijk_to_ras = world_ijk_to_ras(self.input_node)
            self._input_volume = volume_from_node(self.input_node)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one message
            self._finish(TaskState.FAILED, _describe_exception(exc))
            return self
        if self.settings.separate_process:
            self._start_child()
        else:
            self._run_in_process()
        return self

    def poll(self) -> TaskState:
        """Read the child's output, update progress, and finish the task when the child has exited."""
        if self.state is not TaskState.RUNNING or self.runner is None:
            return self.state
        for line in self.runner.read_lines():
            self._handle_line(line)
        code = self.runner.exit_code()
        if code is None or self.state is not TaskState.RUNNING:
            return self.state
        for line in self.runner.read_lines():
            self._handle_line(line)
        if code != 0:
            self._finish(TaskState.FAILED, _describe_exit(code, list(self.log)))
            return self.state
        self._set_progress(1.0, "Loading the result")
        try:
            result = read_volume_file(self.temp_dir / self.OUTPUT_FILE)
            self._check_result_geometry(result)
            self._import_result(result)
        except Exception as exc:  # noqa: BLE001
            self._finish(TaskState.FAILED, _describe_exception(exc))
            return self.state
        self._finish(TaskState.DONE, "Done")
        return self.state

    def wait(self, timeout: float | None = None, interval: float = 0.05,
             idle: Callable[[], None] | None = None) -> TaskState:
        """Poll until the task ends (or ``timeout`` seconds pass); ``idle()`` runs between polls."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is TaskState.RUNNING:
            if deadline is not None and time.monotonic() > deadline:
                break
            if idle is not None:
                idle()
            time.sleep(interval)
        return self.state

    def cancel(self) -> None:
        """Stop a running task: kill the child's process tree now, or stop in-process work at its next progress
        report. The scene is left unchanged and the temporary folder removed."""
        if self.state is not TaskState.RUNNING:
            return
        self._cancel_requested = True
        if self._denoiser is not None:
            self._denoiser.cancel()
        if self.runner is not None:
            self.runner.kill()
            self._finish(TaskState.CANCELLED, "Cancelled")

    # ------------------------------------------------------------------------------------- child process
    def _start_child(self) -> None:
        try:
            self.temp_dir = Path(tempfile.mkdtemp(prefix="MedDenoise-", dir=self.temp_root))
            input_path = self.temp_dir / self.INPUT_FILE
            write_volume_file(self._input_volume, input_path)
            self._input_volume = None  # the child has it now; keep memory free for the result
            python = self.python_executable or _current_python()
            self.command = build_cli_command(python, input_path, self.temp_dir / self.OUTPUT_FILE, self.settings)
            env = dict(os.environ if self.env is None else self.env)
            env.update({"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
            self._set_progress(0.0, "Starting the denoising process")
            self.runner = self.runner_factory()
            self.runner.start(self.command, env=env, cwd=str(self.temp_dir))
        except Exception as exc:  # noqa: BLE001
            self._finish(TaskState.FAILED, f"Could not start the denoising process: {_describe_exception(exc)}")
            return
        if self._cancel_requested:  # asked for by a callback while the input was being written
            self.runner.kill()
            self._finish(TaskState.CANCELLED, "Cancelled")

    def _handle_line(self, line: str) -> None:
        progress = parse_progress_line(line)
        if progress is not None:
            self._set_progress(*progress)
            return
        if line.strip():
            self.log.append(line)
            logger.debug("denoise: %s", line)
            if self.on_log is not None:
                self.on_log(line)

    def _check_result_geometry(self, result) -> None:
        expected = self._input_ijk_to_ras
        if tuple(result.shape) != tuple(self._expected_shape()):
            raise ValueError(f"the denoised volume has shape {result.shape}, the input {self._expected_shape()}")
        if result.array.ndim != 3:
            raise ValueError(f"the denoised volume has {result.num_components} components, the input one")
        if result.is_2d:
            return  # a single slice travels as a 2D image; its geometry comes from the input below
        difference = np.abs(result.ijk_to_ras() - expected).max()
        if difference > _GEOMETRY_TOLERANCE_MM:
            raise ValueError(f"the denoised volume's geometry differs from the input's by {difference:.3g} mm")

    def _expected_shape(self) -> tuple[int, int, int]:
        dimensions = self.input_node.GetImageData().GetDimensions()
        return int(dimensions[2]), int(dimensions[1]), int(dimensions[0])

    # ------------------------------------------------------------------------------------------ in-process
    def _run_in_process(self) -> None:
        try:
            from meddenoiselib.inference import DenoiseCancelled, Denoiser

            self._set_progress(0.0, "Loading the model")
            denoiser = Denoiser(**self.settings.denoiser_arguments(progress_callback=self._library_progress))
            self._denoiser = denoiser
            self._set_progress(0.0, f"Denoising with {denoiser.method} on {denoiser.device}")
            try:
                result = denoiser.denoise(self._input_volume, sigma=self.settings.sigma)
            except DenoiseCancelled:
                raise _CancelRequested() from None
            self._input_volume = None
            if self._cancel_requested:
                raise _CancelRequested()
            self._set_progress(1.0, "Storing the result")
            self._import_result(result)
        except _CancelRequested:
            self._finish(TaskState.CANCELLED, "Cancelled")
            return
        except Exception as exc:  # noqa: BLE001
            self._finish(TaskState.FAILED, _describe_exception(exc))
            return
        self._finish(TaskState.DONE, "Done")

    def _library_progress(self, fraction: float, message: str) -> None:
        self._set_progress(fraction, message)
        if self._cancel_requested and self._denoiser is not None:
            # requested from inside the callback (a GUI processing its events): the library stops at the next step
            self._denoiser.cancel()

    # ---------------------------------------------------------------------------------------------- result
    def _import_result(self, volume) -> None:
        """Fill the output node; a node created here is removed again if filling it fails."""
        node = self.requested_output_node
        created = node is None
        scene = self.input_node.GetScene()
        if created:
            if scene is None:
                raise ValueError("the input volume is not in a scene")
            node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", output_node_name(scene, self.input_node))
        try:
            update_node_from_volume(node, volume, ijk_to_ras=self._input_ijk_to_ras)
            if created or node.GetDisplayNode() is None:
                copy_display_settings(self.input_node, node)
            if created:
                place_next_to(self.input_node, node)
        except Exception:
            if created and node.GetScene() is not None:
                node.GetScene().RemoveNode(node)
            raise
        self.output_node = node

    # ----------------------------------------------------------------------------------------------- state
    def _set_state(self, state: TaskState, message: str) -> None:
        self.state = state
        self.message = message
        if self.on_state_changed is not None:
            self.on_state_changed(self)

    def _set_progress(self, fraction: float, message: str) -> None:
        self.progress = float(fraction)
        self.message = message
        if self.on_progress is not None:
            self.on_progress(self.progress, message)

    def _finish(self, state: TaskState, message: str) -> None:
        if self.runner is not None and state is not TaskState.DONE and self.runner.exit_code() is None:
            self.runner.kill()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            if self.temp_dir.exists():
                logger.warning("could not remove the temporary folder %s", self.temp_dir)
        self._input_volume = None
        self.seconds = time.monotonic() - self._started_at
        if state is TaskState.FAILED:
            self.error = message
            logger.error("MedDenoise failed: %s", message)
        self._set_state(state, message)


# -------------------------------------------------------------------------------------------------- helpers
def _current_python() -> str:
    return sys.executable


_OUT_OF_MEMORY_HINT = "try the cpu device, a smaller ROI size, or crop the volume"


def _describe_exception(exc: BaseException) -> str:
    """One line for a user: library errors as they are, out-of-memory with a hint, others with their type."""
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, MemoryError) or "OutOfMemoryError" in name or "out of memory" in text.lower():
        return f"Out of memory while denoising ({text or name}); {_OUT_OF_MEMORY_HINT}."
    if name in ("MedDenoiseError", "ValueError"):
        return text or name
    return f"{name}: {text}" if text else name


def _describe_exit(code: int, lines: list[str]) -> str:
    """One line for a child process that exited with ``code``, from its last output lines."""
    errors = [line[len("error: "):].strip() for line in lines if line.startswith("error: ")]
    text = "\n".join(lines[-30:])
    if "out of memory" in text.lower() or "OutOfMemoryError" in text:
        return f"Out of memory while denoising; {_OUT_OF_MEMORY_HINT}."
    if errors:
        return errors[-1]
    if "No module named" in text and "meddenoiselib" in text:
        return "meddenoiselib is not installed for the denoising process's Python; press Apply again to install it."
    if code < 0:
        hint = " (the system may have run out of memory)" if code == -9 else ""
        return f"The denoising process was killed by signal {-code}{hint}."
    last = next((line.strip() for line in reversed(lines) if line.strip()), "no output")
    return f"The denoising process failed (exit code {code}): {last}"
