"""One denoising run as a small state machine: IDLE -> RUNNING -> DONE | FAILED | CANCELLED.

The one data path is node -> ``Volume`` (or ``VolumeSeries`` for a sequence, or for a diffusion-weighted volume's
gradients) -> ``Denoiser`` -> node. In a child
process (the default) the image and the mask travel through temporary NRRD files and
``python -m meddenoiselib denoise IN OUT --mask M --report R``; in-process they go to
``meddenoiselib.inference.Denoiser`` on a worker thread. Either way the nodes are created only on the main thread
after a complete result is there, so a failed or cancelled run leaves the scene as it was, and the temporary folder
is removed whatever the outcome.

The task never blocks: call :meth:`DenoiseTask.poll` from a timer (the GUI) or :meth:`DenoiseTask.wait` (scripts,
tests). :meth:`DenoiseTask.cancel` returns at once in both modes (the child's process tree is killed without
waiting; the worker thread is asked to stop at its next slice or window and its late result is dropped).
"""

from __future__ import annotations

import collections
import enum
import gc
import inspect
import json
import logging
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

import slicer

from .blend import LiveBlend
from .diffusion import copy_diffusion_table, dwi_array, is_diffusion_weighted, series_from_dwi, shown_gradient
from .masks import mask_volume
from .multivolume import copy_multivolume_attributes, is_multivolume, series_from_multivolume, shown_frame
from .outputs import (
    create_output_volume,
    create_residual_volume,
    fill_report_table,
    finish_output_volume,
    prepare_output_volume,
    report_rows,
)
from .regions import RegionMeasurement, fill_region_table, regions_of_node
from .runner import ProcessRunner, SubprocessRunner, parse_progress_line
from .sequences import create_output_sequence, current_item, refresh_proxies, sequence_of, series_from_sequence
from .settings import UNKNOWN_AUTO_MODEL, DenoiseSettings, build_cli_command, cli_supports
from .volumes import (
    grid_of_node,
    read_volume_file,
    resampling_sign_of_node,
    volume_from_node,
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


#: geometry read back from the child's output may differ from the input by float formatting only.
_GEOMETRY_TOLERANCE_MM = 1e-4
_FALLBACK_NOTE = "'auto' is not available in this meddenoiselib; 'default' was used"


class DenoiseTask:
    """Denoise one volume node (or the whole sequence it is the proxy of) into new or given nodes.

    Args:
        input_node: the scalar, vector or diffusion-weighted volume node to denoise (not modified unless it is also
            ``output_node``). A DWI is denoised gradient by gradient as MR (unless ``settings.modality`` says
            otherwise) into a DWI node with its gradients, b-values and measurement frame.
        settings: what to run (model, noise level, device, windows, in-process or child process).
        output_node: the node to fill; None creates ``"<input name> denoised"`` on success (sequences always get
            a new sequence). Defaults to None.
        mask_node: a segmentation or label map; only voxels inside are denoised. Defaults to None.
        exclude_node: a segmentation or label map left out of the denoising (metal, an implant): its voxels keep
            their values and do not spread into their neighbours (``exclude=``, ``--exclude``). Defaults to None.
        whole_sequence: when ``input_node`` is a sequence proxy, denoise every item into a new sequence.
        residual: also create ``"<input> residual"`` (input minus output, float32).
        noise_map: also create ``"<input> noise map"``: the local standard deviation of the residual in the input's
            units (HU for CT), a 4-pixel in-plane Gaussian window (``meddenoiselib.noise_map``).
        strength: initial blend with the input (0..1); change it later with ``task.blend.apply``.
        sequences_logic: Slicer's Sequences logic, to refresh proxy nodes after writing sequence items.
        python_executable: the interpreter for the child process (``PythonSlicer`` in Slicer).
        runner_factory: makes the :class:`ProcessRunner` for the child process.
        env: environment of the child process. Defaults to this process's environment.
        temp_root: where the temporary folder is made. Defaults to the system temporary folder.
        on_progress: ``callback(fraction, message)`` (always on the thread that calls start/poll).
        on_state_changed: ``callback(task)`` after every state change.
        on_log: ``callback(line)`` for every output line of the child process or the library.
        preview_slice: denoise only this slice (0-based, along the library's slice axis) as the whole volume's run
            would give it (``Denoiser.preview``, ``--preview-slice``), into a one-slice ``"<input> preview"`` node
            placed where the slice lies; of a whole sequence, the item shown, as the sequence's run gives it. Defaults
            to None (the whole volume).
        noise_sd_map_node: a scalar volume on the input's grid holding the noise's SD per voxel in the input's units
            (an MR g-factor-scaled or MP-PCA noise map; one for every item of a sequence): the input is denoised
            divided by it and multiplied back (``NoiseSDMap``, ``--noise-sd-map``; a preview takes its slice); not
            with a noise level of the settings. Defaults to None.
        measure_node: a segmentation (each segment a region) or label map (each value); after the run, the mean,
            standard deviation and SNR in each region before and after, in the input's units, fill
            ``"<input> region noise"`` (a preview: its slice's regions; a whole sequence: the item shown) and follow
            the strength slider; the CNR of the first two regions goes into the report. Defaults to None.

    Attributes:
        state, progress, message: where the task is; error: the one-line reason of a failure.
        output_node: the filled volume node once DONE (for a sequence: the output sequence's proxy, if any).
        output_sequence: the new sequence node when a sequence was denoised.
        residual_node: the residual volume (or sequence) when asked for.
        noise_map_node: the noise map volume (or sequence) when asked for.
        report: the QA numbers of the run (noise before/after, run time, device, model) once DONE.
        report_table: the ``vtkMRMLTableNode`` showing :attr:`report`.
        regions: the region statistics of ``measure_node`` at the current strength (dicts of
            ``meddenoiselib.evaluation.regions.statistics_in_regions``); region_table: the table showing them.
        blend: the :class:`~.blend.LiveBlend` of the result (strength slider).
        notes: what the module adds to the report (e.g. the automatic-choice fallback).
        seconds: wall time from start to the end state. command: the child's command line. log: last lines.
    """

    INPUT_FILE = "input.nrrd"
    OUTPUT_FILE = "output.nrrd"
    MASK_FILE = "mask.nrrd"
    EXCLUDE_FILE = "exclude.nrrd"
    NOISE_SD_MAP_FILE = "noise_sd_map.nrrd"
    REPORT_FILE = "report.json"

    def __init__(
        self,
        input_node,
        settings: DenoiseSettings,
        output_node=None,
        *,
        mask_node=None,
        whole_sequence: bool = True,
        residual: bool = False,
        noise_map: bool = False,
        strength: float = 1.0,
        sequences_logic=None,
        python_executable: str | None = None,
        runner_factory: Callable[[], ProcessRunner] = SubprocessRunner,
        env: dict[str, str] | None = None,
        temp_root: str | Path | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_state_changed: Callable[[DenoiseTask], None] | None = None,
        on_log: Callable[[str], None] | None = None,
        preview_slice: int | None = None,
        measure_node=None,
        exclude_node=None,
        noise_sd_map_node=None,
    ) -> None:
        self.input_node = input_node
        self.noise_sd_map_node = noise_sd_map_node
        self.measure_node = measure_node
        self.exclude_node = exclude_node
        self.preview_slice = preview_slice
        self.settings = settings
        self.requested_output_node = output_node
        self.mask_node = mask_node
        self.whole_sequence = whole_sequence
        self.want_residual = residual
        self.want_noise_map = noise_map
        self.strength = float(strength)
        self.sequences_logic = sequences_logic
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
        self.output_node = None
        self.output_sequence = None
        self.residual_node = None
        self.noise_map_node = None
        self.report: dict = {}
        self.report_table = None
        self.regions: list[dict] = []
        self.region_table = None
        self.blend: LiveBlend | None = None
        self.notes: dict[str, str] = {}
        self._started_at = 0.0
        self._cancel_requested = False
        self._image = None  # the input Volume / VolumeSeries (kept for the blend)
        self._slab = None  # a preview's slice of the input (what is written and blended)
        self._preview_frame: int | None = None  # the sequence item a preview of a whole sequence shows
        self._mask = None
        self._exclude = None
        self._noise_sd_map = None  # the Volume of noise_sd_map_node
        self._measurement: RegionMeasurement | None = None
        self._measured_frame = 0  # the output item the regions are measured in
        self._sequence = None  # (sequence node, browser node)
        self._dwi = is_diffusion_weighted(input_node)
        self._multivolume = not self._dwi and is_multivolume(input_node)
        self._measured_gradient: int | None = None  # the DWI component the regions are measured in
        self._ijk_to_ras: np.ndarray | None = None
        # the non-linear parent transform a scalar / vector input is denoised under (volumes.grid_of_node): its
        # results go under it too; None: they are created hardened
        self._transform_id: str | None = None
        self._fell_back = False
        self._thread: threading.Thread | None = None
        self._denoiser = None
        self._events: queue.Queue = queue.Queue()
        self._outcome = None

    # ------------------------------------------------------------------------------------------ public API
    @property
    def is_sequence(self) -> bool:
        return self._sequence is not None

    @property
    def _writes_sequence(self) -> bool:
        """The result is a sequence: a whole sequence denoised, not a preview of one of its items."""
        return self.is_sequence and self._slab is None

    @property
    def _series_input(self) -> bool:
        """The input travels as a ``VolumeSeries``: a sequence's items, a DWI's gradient volumes or a multi-volume's
        frames."""
        return self.is_sequence or self._frames_as_components

    @property
    def _frames_as_components(self) -> bool:
        """The input node holds its frames as components: a DWI or a multi-volume."""
        return self._dwi or self._multivolume

    @property
    def _writes_dwi(self) -> bool:
        """The result is a DWI node: a whole DWI denoised, not a preview of one of its gradients."""
        return self._dwi and self._slab is None

    @property
    def _writes_components(self) -> bool:
        """The result holds frames as components: a whole DWI or multi-volume denoised, not a preview of a frame."""
        return self._frames_as_components and self._slab is None

    def start(self) -> DenoiseTask:
        """Leave IDLE: read the input (and mask) from the scene, then start the child process or the worker thread.

        Errors do not raise: they end the task in FAILED with :attr:`error` set.
        """
        if self.state is not TaskState.IDLE:
            raise RuntimeError(f"a task starts once; this one is {self.state.value}")
        self._started_at = time.monotonic()
        self._set_state(TaskState.RUNNING, "Reading the input volume")
        try:
            self._ijk_to_ras, self._transform_id = grid_of_node(self.input_node)
            if self._transform_id is not None:
                self._log(
                    f"'{self.input_node.GetName()}' is under the non-linear transform "
                    f"'{self.input_node.GetParentTransformNode().GetName()}': denoised on its own grid (nothing "
                    "resampled), the results put under the same transform"
                )
                self.notes["parent_transform"] = self.input_node.GetParentTransformNode().GetName()
            self._sequence = sequence_of(self.input_node) if self.whole_sequence else None
            if self._sequence is not None:
                self._image = series_from_sequence(self._sequence[0], self.input_node)
                self._ijk_to_ras = self._image.ijk_to_ras()
                self._log(
                    f"Denoising all {self._image.num_frames} items of the sequence '{self._sequence[0].GetName()}'"
                )
            elif self._dwi:
                self._start_diffusion()
            elif self._multivolume:
                self._start_multivolume()
            else:
                self._image = volume_from_node(self.input_node)
            if self.preview_slice is not None:
                from meddenoiselib.inference import preview_slab

                if self.is_sequence:  # the item shown, as the whole sequence's run denoises it
                    self._preview_frame = current_item(*self._sequence)
                elif self._dwi:  # the gradient shown
                    self._preview_frame = shown_gradient(self.input_node)
                elif self._multivolume:  # the frame shown
                    self._preview_frame = shown_frame(self.input_node)
                self._slab = preview_slab(
                    self._image, self.preview_slice, self.settings.slice_axis, self._preview_frame
                )
                self._ijk_to_ras = self._slab.ijk_to_ras()
                what = "volume" if self._preview_frame is None else f"sequence (item {self._preview_frame + 1})"
                if self._dwi:
                    what = f"diffusion-weighted volume (gradient {self._preview_frame + 1})"
                elif self._multivolume:
                    what = f"multi-volume (frame {self._preview_frame + 1})"
                self._log(f"Previewing slice {self.preview_slice} as the whole {what}'s run would give it")
            if self.mask_node is not None:
                self._mask = mask_volume(self.mask_node, self.input_node)
                self._log(f"Mask '{self.mask_node.GetName()}': {int(self._mask.array.sum())} voxels inside")
            if self.exclude_node is not None:
                self._exclude = mask_volume(self.exclude_node, self.input_node, "region left out")
                self._log(f"Left out: '{self.exclude_node.GetName()}', {int(self._exclude.array.sum())} voxels")
            if self.noise_sd_map_node is not None:
                self._noise_sd_map = self._read_noise_sd_map()
            if self.measure_node is not None:
                self._measurement = self._regions_to_measure()
            self._name_resampled_input()
        except Exception as exc:  # noqa: BLE001 - every failure becomes one message
            self._finish(TaskState.FAILED, _describe_exception(exc))
            return self
        if self.settings.separate_process:
            self._start_child(self.settings)
        else:
            self._start_thread()
        return self

    def _read_noise_sd_map(self):
        """The noise SD map node as a volume, after the checks the settings allow (its grid is the library's)."""
        name = self.noise_sd_map_node.GetName()
        if self.settings.noise_level is not None or self.settings.noise_sd is not None:
            raise ValueError(f"The noise SD map '{name}' gives the noise level per voxel; set the noise level to auto.")
        if self.settings.noise_sd_map_auto:
            raise ValueError(f"The noise SD map '{name}' is given; do not also read one from the image.")
        volume = volume_from_node(self.noise_sd_map_node)
        if volume.num_components != 1:
            raise ValueError(f"The noise SD map '{name}' has {volume.num_components} components; it needs one.")
        self._log(f"Noise SD map '{name}': the input is denoised divided by it, then multiplied back")
        return volume

    def _start_diffusion(self) -> None:
        """A DWI's gradient volumes as a series, and MR for the automatic choice unless the settings name a
        modality (a DWI node says what its DICOM tag or NRRD header said, whichever way it was loaded)."""
        self._image = series_from_dwi(self.input_node)
        if self.settings.modality is None:
            self.settings = replace(self.settings, modality="mr")
            self.notes["modality"] = "mr (a diffusion-weighted volume)"
        self._log(
            f"Denoising the {self._image.num_frames} gradient volumes of the diffusion-weighted volume "
            f"'{self.input_node.GetName()}' one by one as {self.settings.modality.upper()}; the gradients, b-values "
            "and measurement frame go to the result"
        )

    def _start_multivolume(self) -> None:
        """A multi-volume's frames as a series (its modality from the DICOM tag Slicer kept, or the settings)."""
        self._image = series_from_multivolume(self.input_node)
        self._log(
            f"Denoising the {self._image.num_frames} frames ({self._image.frame_label}) of the multi-volume "
            f"'{self.input_node.GetName()}'; its frame labels go to the result"
        )

    def _name_resampled_input(self) -> None:
        """Say so in the log and the report when the input's header says it was resampled (user need 21), as the
        command line does for a file: the node's DICOM instances or the file it was loaded from tell."""
        sign = resampling_sign_of_node(self.input_node)
        if sign:
            from meddenoiselib.io.provenance import resampling_message

            self._log(f"Warning: {resampling_message(sign, repr(self.input_node.GetName()))}")
            self.notes["input_resampled"] = sign

    def _regions_to_measure(self) -> RegionMeasurement:
        """The measure node's regions on the grid of what is shown after the run: the volume, a preview's slice, or
        the sequence item shown."""
        from meddenoiselib.inference import preview_slab
        from meddenoiselib.io.volume import Volume

        regions = regions_of_node(self.measure_node, self.input_node)
        where = ""
        if self._writes_sequence:
            self._measured_frame = current_item(*self._sequence)
            where = f"item {self._measured_frame + 1} of {self._image.num_frames} of the sequence"
        if self._dwi and self.preview_slice is None:  # b = 0 and diffusion-weighted contrasts are not mixed
            self._measured_gradient = shown_gradient(self.input_node)
            where = f"gradient {self._measured_gradient + 1} of {self._image.num_frames} (the one shown)"
        if self._multivolume and self.preview_slice is None:  # a multi-volume's frames are not pooled either
            self._measured_gradient = shown_frame(self.input_node)
            where = f"frame {self._measured_gradient + 1} of {self._image.num_frames} (the one shown)"
        if self._slab is not None:
            geometry = grid_of_node(self.input_node)[0]  # the node's own grid under a non-linear transform

            def cut(inside):
                volume = Volume.from_ijk_to_ras(inside.astype(np.uint8), geometry)
                return preview_slab(volume, self.preview_slice, self.settings.slice_axis).array != 0

            regions = [(name, cut(inside)) for name, inside in regions]
            where = f"previewed slice {self.preview_slice}"
        measurement = RegionMeasurement(regions, self._ijk_to_ras, where)
        if not measurement.regions:
            raise ValueError(f"No region of '{self.measure_node.GetName()}' has a voxel in {where}.")
        names = ", ".join(name for name, _inside in measurement.regions)
        self._log(f"Measuring noise in {len(measurement.regions)} regions of '{self.measure_node.GetName()}': {names}")
        return measurement

    def poll(self) -> TaskState:
        """Take in progress and log lines; finish the task when the child or the worker thread is done."""
        if self.state is not TaskState.RUNNING:
            return self.state
        if self._thread is not None:
            self._poll_thread()
        elif self.runner is not None:
            self._poll_child()
        return self.state

    def wait(
        self, timeout: float | None = None, interval: float = 0.05, idle: Callable[[], None] | None = None
    ) -> TaskState:
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
        """Stop a running task and return at once; the scene is left unchanged."""
        if self.state is not TaskState.RUNNING:
            return
        self._cancel_requested = True
        denoiser = self._denoiser
        if denoiser is not None:
            denoiser.cancel()
        if self.runner is not None:
            self.runner.kill()
        self._finish(TaskState.CANCELLED, "Cancelled")

    # ------------------------------------------------------------------------------------- child process
    def _start_child(self, settings: DenoiseSettings) -> None:
        try:
            if self.temp_dir is None:
                self.temp_dir = Path(tempfile.mkdtemp(prefix="MedDenoise-", dir=self.temp_root))
                self._write_inputs()
            if settings.noise_sd is not None and not cli_supports("--noise-sd", "1"):
                raise ValueError("the installed meddenoiselib takes no noise SD in image units; update it")
            extra = ["--report", str(self.temp_dir / self.REPORT_FILE)]
            if self._mask is not None:
                extra += ["--mask", str(self.temp_dir / self.MASK_FILE)]
            if self._noise_sd_map is not None:
                if not cli_supports("--noise-sd-map", "x.nrrd"):
                    raise ValueError("the installed meddenoiselib takes no noise SD map; update it")
                extra += ["--noise-sd-map", str(self.temp_dir / self.NOISE_SD_MAP_FILE)]
            if self._exclude is not None:
                if not cli_supports("--exclude", "x.nrrd"):
                    raise ValueError("the installed meddenoiselib cannot leave a region out; update it")
                extra += ["--exclude", str(self.temp_dir / self.EXCLUDE_FILE)]
            if self.preview_slice is not None:
                if not cli_supports("--preview-slice", "0"):
                    raise ValueError("the installed meddenoiselib cannot preview a slice; update it")
                extra += ["--preview-slice", str(self.preview_slice)]
                if self._preview_frame is not None:
                    extra += ["--preview-frame", str(self._preview_frame)]
            python = self.python_executable or sys.executable
            self.command = build_cli_command(
                python,
                self.temp_dir / self.INPUT_FILE,
                self.temp_dir / self.OUTPUT_FILE,
                settings,
                extra,
                modality_option=_modality_option(settings),
            )
            env = dict(os.environ if self.env is None else self.env)
            env.update({"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})
            self._set_progress(0.0, "Starting the denoising process")
            self._log("Running: " + " ".join(self.command))
            self.runner = self.runner_factory()
            self.runner.start(self.command, env=env, cwd=str(self.temp_dir))
        except Exception as exc:  # noqa: BLE001
            self._finish(TaskState.FAILED, f"Could not start the denoising process: {_describe_exception(exc)}")
            return
        if self._cancel_requested:  # asked for by a callback while the input was being written
            self.runner.kill()
            self._finish(TaskState.CANCELLED, "Cancelled")

    def _write_inputs(self) -> None:
        if self._series_input:
            from meddenoiselib.io.series import write_series

            write_series(self._image, self.temp_dir / self.INPUT_FILE, overwrite=True, compress=False)
        else:
            write_volume_file(self._image, self.temp_dir / self.INPUT_FILE)
        if self._mask is not None:
            write_volume_file(self._mask, self.temp_dir / self.MASK_FILE)
        if self._exclude is not None:
            write_volume_file(self._exclude, self.temp_dir / self.EXCLUDE_FILE)
        if self._noise_sd_map is not None:
            write_volume_file(self._noise_sd_map, self.temp_dir / self.NOISE_SD_MAP_FILE)

    def _poll_child(self) -> None:
        for line in self.runner.read_lines():
            self._handle_line(line)
        code = self.runner.exit_code()
        if code is None or self.state is not TaskState.RUNNING:
            return
        for line in self.runner.read_lines():
            self._handle_line(line)
        if code != 0:
            if self._should_fall_back(list(self.log)):
                self._fall_back()
                self.runner = None
                self._start_child(self.settings)
                return
            self._finish(TaskState.FAILED, _describe_exit(code, list(self.log)))
            return
        self._set_progress(1.0, "Loading the result")
        try:
            result = self._read_child_result()
            report_path = self.temp_dir / self.REPORT_FILE
            report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
            self._import_result(result, report)
        except Exception as exc:  # noqa: BLE001
            self._finish(TaskState.FAILED, _describe_exception(exc))
            return
        self._finish(TaskState.DONE, "Done")

    def _read_child_result(self):
        path = self.temp_dir / self.OUTPUT_FILE
        if self._writes_sequence or self._writes_components:
            from meddenoiselib.io.series import read_series

            result = read_series(path)
            if result.array.shape != self._image.array.shape:
                what = "sequence" if self.is_sequence else "diffusion-weighted volume" if self._dwi else "multi-volume"
                raise ValueError(
                    f"the denoised {what} has shape {result.array.shape}, the input {self._image.array.shape}"
                )
            self._check_geometry(result.ijk_to_ras())
            return result
        result = read_volume_file(path)
        expected = (self._image if self._slab is None else self._slab).array.shape
        if result.array.shape != expected:
            raise ValueError(f"the denoised volume has shape {result.array.shape}, the input {expected}")
        if not result.is_2d:  # a single slice travels as a 2D image; its geometry comes from the input
            self._check_geometry(result.ijk_to_ras())
        return result

    def _check_geometry(self, matrix: np.ndarray) -> None:
        difference = np.abs(matrix - self._ijk_to_ras).max()
        if difference > _GEOMETRY_TOLERANCE_MM:
            raise ValueError(f"the denoised volume's geometry differs from the input's by {difference:.3g} mm")

    def _handle_line(self, line: str) -> None:
        progress = parse_progress_line(line)
        if progress is not None:
            self._set_progress(*progress)
        elif line.strip():
            self._log(line)

    # ------------------------------------------------------------------------------------ auto fallback
    def _should_fall_back(self, lines: list[str]) -> bool:
        return (
            self.settings.model == "auto" and not self._fell_back and any(UNKNOWN_AUTO_MODEL in line for line in lines)
        )

    def _fall_back(self) -> None:
        self._fell_back = True
        self.settings = self.settings.with_model("default")
        self.notes["model_choice"] = _FALLBACK_NOTE
        self._log(f"MedDenoise: {_FALLBACK_NOTE}.")

    # ------------------------------------------------------------------------------------------ in-process
    def _start_thread(self) -> None:
        self._set_progress(0.0, "Loading the model")
        self._thread = threading.Thread(
            target=self._work, args=(self._image, self._mask), name="MedDenoise in-process run", daemon=True
        )
        self._thread.start()

    def _make_denoiser(self):
        from meddenoiselib import MedDenoiseError
        from meddenoiselib.inference import Denoiser

        def progress(fraction: float, message: str) -> None:
            self._events.put(("progress", fraction, message))

        accepted = tuple(inspect.signature(Denoiser).parameters)
        try:
            return Denoiser(**self.settings.denoiser_arguments(progress, accepted))
        except MedDenoiseError as exc:
            if not self._should_fall_back([str(exc)]):
                raise
        self._events.put(("fallback",))
        return Denoiser(**self.settings.with_model("default").denoiser_arguments(progress, accepted))

    def _work(self, image, mask) -> None:
        """The worker thread: library calls only (no MRML, no Qt); results and messages go through a queue."""
        library_log = logging.getLogger("meddenoiselib")
        handler = _QueueLogHandler(self._events, threading.get_ident())
        saved = library_log.level, library_log.propagate
        library_log.addHandler(handler)
        library_log.setLevel(logging.INFO)
        library_log.propagate = False  # Slicer's log handlers are fed on the main thread, from the queue
        try:
            from meddenoiselib.evaluation.report import run_report
            from meddenoiselib.inference import DenoiseCancelled

            self._denoiser = self._make_denoiser()
            if self._cancel_requested:
                raise DenoiseCancelled("cancelled")
            self._events.put(("progress", 0.0, f"Denoising with {self._denoiser.method} on {self._denoiser.device}"))
            sigma = self.settings.sigma
            if self._noise_sd_map is not None:
                from meddenoiselib.transforms import NoiseSDMap

                sigma = NoiseSDMap(self._noise_sd_map, label=f"'{self.noise_sd_map_node.GetName()}'")
            masks = {"mask": mask} if self._exclude is None else {"mask": mask, "exclude": self._exclude}
            if self.preview_slice is None:
                result = self._denoiser.denoise(image, sigma=sigma, **masks)
            else:
                result = self._denoiser.preview(
                    image, self.preview_slice, sigma=sigma, frame=self._preview_frame, **masks
                )
                image = self._slab
            self._outcome = ("done", result, run_report(self._denoiser, image, result))
        except Exception as exc:  # noqa: BLE001 - DenoiseCancelled included
            cancelled = type(exc).__name__ == "DenoiseCancelled"
            self._outcome = ("cancelled",) if cancelled else ("failed", _describe_exception(exc))
        finally:
            self._denoiser = None  # the model goes with it
            gc.collect()
            _release_gpu_cache()
            library_log.removeHandler(handler)
            library_log.setLevel(saved[0])
            library_log.propagate = saved[1]

    def _poll_thread(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if event[0] == "progress":
                self._set_progress(event[1], event[2])
            elif event[0] == "log":
                self._log(event[1])
            elif event[0] == "fallback":
                self._fall_back()
        if self._thread.is_alive() or self.state is not TaskState.RUNNING:
            return
        outcome, self._outcome = self._outcome, None
        if outcome is None or outcome[0] == "cancelled":
            self._finish(TaskState.CANCELLED, "Cancelled")
        elif outcome[0] == "failed":
            self._finish(TaskState.FAILED, outcome[1])
        else:
            self._set_progress(1.0, "Storing the result")
            try:
                self._import_result(outcome[1], outcome[2])
            except Exception as exc:  # noqa: BLE001
                self._finish(TaskState.FAILED, _describe_exception(exc))
                return
            self._finish(TaskState.DONE, "Done")

    # ---------------------------------------------------------------------------------------------- result
    def _import_result(self, result, report: dict) -> None:
        """Create or fill the output, residual and report nodes; anything created is removed again on failure."""
        created = []
        try:
            if self._writes_sequence:
                noisy = list(self._image.array)
                denoised = list(result.array)
                outputs, residuals, noise_maps = self._output_sequence(denoised, created)
            else:
                if self._writes_components:  # gradient / multi-volume frames back to the node's components
                    noisy, denoised = [dwi_array(self._image.array)], [dwi_array(result.array)]
                else:
                    noisy, denoised = [(self._image if self._slab is None else self._slab).array], [result.array]
                what = "denoised" if self._slab is None else "preview"
                # a DWI's or a multi-volume's preview is one frame's slice: a scalar volume
                one_frame = self._frames_as_components and self._slab is not None
                class_name = "vtkMRMLScalarVolumeNode" if one_frame else None
                node, new = create_output_volume(self.input_node, self.requested_output_node, what, class_name)
                if new:
                    created.append(node)
                prepare_output_volume(node, denoised[0], self._ijk_to_ras, self._transform_id)
                if self._writes_dwi:
                    copy_diffusion_table(self.input_node, node)
                if self._multivolume and self._slab is None:
                    copy_multivolume_attributes(self.input_node, node)
                finish_output_volume(self.input_node, node, new)
                outputs, residuals, noise_maps, self.output_node = [node], None, None, node
                if self.want_residual:
                    self.residual_node = create_residual_volume(
                        self.input_node, denoised[0].shape, self._ijk_to_ras, transform_id=self._transform_id
                    )
                    created.append(self.residual_node)
                    residuals = [self.residual_node]
                if self.want_noise_map:
                    self.noise_map_node = create_residual_volume(
                        self.input_node,
                        denoised[0].shape,
                        self._ijk_to_ras,
                        what="noise map",
                        transform_id=self._transform_id,
                    )
                    created.append(self.noise_map_node)
                    noise_maps = [self.noise_map_node]
            browser = self._sequence[1] if self._writes_sequence else None
            after = (lambda: refresh_proxies(browser, self.sequences_logic)) if browser is not None else None
            self.blend = LiveBlend(noisy, denoised, outputs, residuals, after_update=after, noise_maps=noise_maps)
            self.blend.apply(self.strength)
            self.report = dict(report)
            self._measure()
            self.report_table, new = self._report_table()
            if new:
                created.append(self.report_table)
            if self._measurement is not None:
                self.region_table, new = self._table("region noise")
                if new:
                    created.append(self.region_table)
                fill_region_table(self.region_table, self.regions)
        except Exception:
            for node in reversed(created):
                if node.GetScene() is not None:
                    node.GetScene().RemoveNode(node)
            self.output_node = self.output_sequence = self.residual_node = self.noise_map_node = None
            self.report_table = self.region_table = self.blend = None
            raise
        self._image = self._mask = self._exclude = self._slab = self._noise_sd_map = None

    def _output_sequence(self, denoised: list[np.ndarray], created: list):
        sequence, browser = self._sequence
        name = f"{sequence.GetName()} denoised"
        self.output_sequence, outputs = create_output_sequence(sequence, browser, denoised, self._ijk_to_ras, name)
        created.append(self.output_sequence)
        residuals = noise_maps = None
        if self.want_residual:
            self.residual_node, residuals = self._float_sequence(denoised, "residual", created)
        if self.want_noise_map:
            self.noise_map_node, noise_maps = self._float_sequence(denoised, "noise map", created)
        refresh_proxies(browser, self.sequences_logic)
        self.output_node = browser.GetProxyNode(self.output_sequence) if browser is not None else None
        return outputs, residuals, noise_maps

    def _float_sequence(self, denoised: list[np.ndarray], what: str, created: list):
        """A new float32 ``"<sequence> <what>"`` sequence (zeros until the blend fills it) and its item nodes."""
        sequence, browser = self._sequence
        zeros = [np.zeros(frame.shape, np.float32) for frame in denoised]
        node, items = create_output_sequence(
            sequence,
            browser,
            zeros,
            self._ijk_to_ras,
            f"{sequence.GetName()} {what}",
            class_name="vtkMRMLVectorVolumeNode" if zeros[0].ndim == 4 else "vtkMRMLScalarVolumeNode",
        )
        created.append(node)
        return node, items

    def _report_table(self):
        """``(table, created)``: the report of this run, filled."""
        table, created = self._table("denoising report")
        self._fill(table)
        return table, created

    def _table(self, what: str):
        """``(table, created)``: a new "<input> <what>" table per run; a preview reuses its input's
        "<input> preview <what>" (previews are many; "denoising report" is "preview report" there)."""
        scene = self.input_node.GetScene()
        if self.preview_slice is not None:
            name = f"{self.input_node.GetName()} preview {what.replace('denoising ', '')}"
            table = scene.GetFirstNode(name, "vtkMRMLTableNode", False, True)
            if table is not None:
                return table, False
        else:
            name = scene.GenerateUniqueName(f"{self.input_node.GetName()} {what}")
        return scene.AddNewNodeByClass("vtkMRMLTableNode", name), True

    def _fill(self, table) -> None:
        fill_report_table(table, report_rows(self.report, self.blend.strength if self.blend else None, self.notes))

    def _measure(self) -> None:
        """The regions' statistics in the input and in the output as it is shown now (the current strength)."""
        if self._measurement is None or self.blend is None or self.blend.released:
            return
        frame = self._measured_frame
        noisy, shown = self.blend.noisy[frame], slicer.util.arrayFromVolume(self.blend.outputs[frame])
        if self._measured_gradient is not None:
            noisy, shown = noisy[..., self._measured_gradient], shown[..., self._measured_gradient]
        self.regions = self._measurement.measure(noisy, shown)
        self.notes.update(self._measurement.notes())

    def update_report_table(self) -> None:
        """Refresh the report and region tables (after the strength changed)."""
        self._measure()
        if self.report_table is not None:
            self._fill(self.report_table)
        if self.region_table is not None:
            fill_region_table(self.region_table, self.regions)

    # ----------------------------------------------------------------------------------------------- state
    def _log(self, line: str) -> None:
        self.log.append(line)
        logger.info("MedDenoise: %s", line)
        if self.on_log is not None:
            self.on_log(line)

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
        if (
            self.runner is not None
            and state is TaskState.FAILED
            and not self._cancel_requested
            and self.runner.exit_code() is None
        ):
            self.runner.kill()
        self._remove_temp_dir()
        if state is not TaskState.DONE:
            self._image = self._mask = self._exclude = self._slab = self._noise_sd_map = None
        self.seconds = time.monotonic() - self._started_at
        if state is TaskState.FAILED:
            self.error = message
            logger.error("MedDenoise failed: %s", message)
        self._set_state(state, message)

    def _remove_temp_dir(self) -> None:
        """Remove the temporary folder now; where a killed child still holds its files (Windows), once it ended."""
        folder, runner = self.temp_dir, self.runner
        if folder is None:
            return
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists() and runner is not None and hasattr(runner, "wait"):

            def later() -> None:
                runner.wait(timeout=60)
                shutil.rmtree(folder, ignore_errors=True)

            threading.Thread(target=later, name="MedDenoise temporary folder cleanup", daemon=True).start()


# -------------------------------------------------------------------------------------------------- helpers
class _QueueLogHandler(logging.Handler):
    """Library log records of one thread -> ``("log", text)`` events for the main thread."""

    def __init__(self, events: queue.Queue, thread_id: int) -> None:
        super().__init__(logging.INFO)
        self.events, self.thread_id = events, thread_id

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id:
            self.events.put(("log", record.getMessage()))


def _modality_option(settings: DenoiseSettings) -> bool:
    return settings.modality is not None and cli_supports("--modality", settings.modality)


def _release_gpu_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


_OUT_OF_MEMORY_HINT = "try the cpu device, a smaller ROI size, or crop the volume"


def _describe_exception(exc: BaseException) -> str:
    """One line for a user: library errors as they are, out-of-memory with a hint, others with their type."""
    name = type(exc).__name__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, MemoryError) or "OutOfMemoryError" in name or "out of memory" in text.lower():
        return f"Out of memory while denoising ({text or name}); {_OUT_OF_MEMORY_HINT}."
    if name in ("MedDenoiseError", "ValueError") or isinstance(exc, ValueError):
        return text or name
    return f"{name}: {text}" if text else name


def _describe_exit(code: int, lines: list[str]) -> str:
    """One line for a child process that exited with ``code``, from its last output lines."""
    errors = [line[len("error: ") :].strip() for line in lines if line.startswith("error: ")]
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
