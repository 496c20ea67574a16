"""Tier C: the widget/logic wiring of ``MedDenoise.py``, with stand-ins for the GUI classes slicer-core lacks.

Faked (see ``fakes.py`` for each behaviour): ``qt.QTimer`` (fired by hand), ``slicer.i18n.tr``/``translate``,
``slicer.ScriptedLoadableModule`` base classes (``getParameterNode`` returns a real scripted module node),
``slicer.parameterNodeWrapper`` (``parameterNodeWrapper`` holds Python values and calls ``Modified()``;
``connectGui``/``disconnectGui`` record only), ``slicer.util.errorDisplay`` (records), the panel's widgets
(attributes + signals, see ``fake_ui``), and the child process (:class:`FakeRunner`: scripted output lines and
exit code; "finishing" copies its input file to its output path). Real: the MRML scene and nodes, the
``DenoiseTask`` state machine, the NRRD files the task writes and reads.

These tests only check wiring: which call the GUI makes with which settings, the state sequence Idle -> Running
-> Done/Failed/Cancelled, buttons, status text, error display, cleanup. No geometry or voxel values are
asserted here (those are covered by test_volumes.py and test_subprocess.py without fakes).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import slicer

from .conftest import add_volume_node, oblique_ijk_to_ras
from .fakes import FakeTimer, fake_ui, slicer_gui_fakes


class FakeRunner:
    """A ``ProcessRunner`` whose output and exit code the test scripts."""

    instances: list[FakeRunner] = []

    def __init__(self) -> None:
        self.command = None
        self.env = None
        self.lines: list[str] = []
        self.code = None
        self.killed = False
        FakeRunner.instances.append(self)

    def start(self, command, env=None, cwd=None) -> None:
        self.command, self.env = list(command), env

    def read_lines(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines

    def exit_code(self):
        return self.code

    def kill(self) -> None:
        self.killed = True
        self.code = -9

    def finish_with_input_as_output(self) -> None:
        """Exit 0 after 'denoising' = copying the input NRRD to the output path (identity)."""
        shutil.copyfile(self.command[4], self.command[5])
        self.code = 0


@pytest.fixture()
def gui(temp_root):
    """Imports MedDenoise.py under the fakes and builds the widget on stand-in widgets and a real scene."""
    FakeRunner.instances = []
    with slicer_gui_fakes() as fakes:
        import MedDenoise

        logic = MedDenoise.MedDenoiseLogic(runnerFactory=FakeRunner)
        logic.temporaryRoot = str(temp_root)
        volume = add_volume_node(fakes.scene, np.zeros((2, 6, 7), np.int16), oblique_ijk_to_ras(), name="scan")
        widget = MedDenoise.MedDenoiseWidget()
        ui, timer = fake_ui(), FakeTimer()
        widget.setupWithUi(ui, logic, timer)

        states, calls = [], []
        original_process = logic.process

        def spy_process(*args, **kwargs):
            calls.append((args, kwargs))
            return original_process(*args, **kwargs)

        logic.process = spy_process
        original_state = widget.onTaskStateChanged

        def spy_state(task):
            states.append(task.state.name)
            original_state(task)

        widget.onTaskStateChanged = spy_state
        yield type("Gui", (), dict(module=MedDenoise, widget=widget, logic=logic, ui=ui, timer=timer,
                                   volume=volume, scene=fakes.scene, errors=fakes.errors, states=states,
                                   calls=calls, temp_root=Path(temp_root)))
        widget.cleanup()  # as Slicer does when the module widget goes away: cancel, remove scene observers


def test_initial_state_is_idle_with_the_first_volume_selected(gui):
    parameters = gui.widget._parameterNode
    assert parameters.inputVolume is gui.volume  # initializeParameterNode picked the scene's volume
    assert gui.widget._task is None
    assert gui.ui.applyButton.enabled and not gui.ui.cancelButton.enabled
    assert gui.ui.modelComboBox.currentText == "default"
    assert {"default", "median", "nlm"} <= set(gui.ui.modelComboBox.items)
    assert not gui.ui.noiseLevelSpinBox.enabled  # noise level "auto" by default
    assert parameters.separateProcess is True


def test_apply_passes_the_parameter_node_settings_and_reaches_done(gui):
    module, parameters = gui.module, gui.widget._parameterNode
    gui.ui.modelComboBox.currentIndex = gui.ui.modelComboBox.findText("median")  # the user picks a model
    assert parameters.model == "median"
    parameters.noiseLevelAuto = False
    assert gui.ui.noiseLevelSpinBox.enabled
    parameters.noiseLevel = 15.0
    parameters.device = module.Device.CPU
    parameters.roiSize = 64
    parameters.overlap = 0.5
    parameters.sliceAxis = module.SliceAxis.J

    gui.ui.applyButton.click()

    (args, kwargs), = gui.calls
    assert args == (gui.volume, None)
    assert {k: kwargs[k] for k in ("model", "noiseLevel", "device", "roiSize", "overlap", "sliceAxis",
                                   "separateProcess", "waitForCompletion")} == {
        "model": "median", "noiseLevel": 15.0, "device": "cpu", "roiSize": 64, "overlap": 0.5, "sliceAxis": 1,
        "separateProcess": True, "waitForCompletion": False}
    runner, = FakeRunner.instances
    command = runner.command
    assert command[1:4] == ["-m", "meddenoiselib", "denoise"]
    assert command[6:] == ["--model", "median", "--sigma", "15.0", "--device", "cpu", "--overlap", "0.5",
                           "--roi", "64", "--slice-axis", "1", "--progress-format", "lines", "--overwrite"]
    assert gui.states == ["RUNNING"] and gui.timer.active
    assert not gui.ui.applyButton.enabled and gui.ui.cancelButton.enabled

    runner.lines = ["Reading input.nrrd", "PROGRESS 0.5000 denoising"]
    gui.timer.fire()
    assert gui.ui.progressBar.value == 50 and gui.ui.statusLabel.text == "denoising"

    runner.finish_with_input_as_output()
    gui.timer.fire()
    assert gui.states == ["RUNNING", "DONE"] and not gui.timer.active
    output = gui.widget._task.output_node
    assert output.GetName() == "scan denoised" and parameters.outputVolume is output
    assert gui.ui.statusLabel.text.startswith("Denoised 'scan' into 'scan denoised'")
    assert gui.ui.applyButton.enabled and not gui.ui.cancelButton.enabled and gui.ui.progressBar.value == 100
    assert gui.errors.messages == [] and list(gui.temp_root.iterdir()) == []


@pytest.mark.parametrize("lines, code, message", [
    (["error: device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto"], 1,
     "device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto"),
    (["Traceback (most recent call last):", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB"],
     1, "Out of memory while denoising; try the cpu device, a smaller ROI size, or crop the volume."),
    ([], -9, "The denoising process was killed by signal 9 (the system may have run out of memory)."),
    (["Segmentation fault"], 139, "The denoising process failed (exit code 139): Segmentation fault"),
])
def test_failure_shows_one_error_and_leaves_the_scene_unchanged(gui, lines, code, message):
    nodes_before = gui.scene.GetNumberOfNodes()
    gui.ui.applyButton.click()
    runner, = FakeRunner.instances
    runner.lines, runner.code = list(lines), code
    gui.timer.fire()
    assert gui.states == ["RUNNING", "FAILED"] and not gui.timer.active
    assert gui.errors.messages == [f"Denoising failed: {message}"]
    assert gui.ui.statusLabel.text == f"Failed: {message}"
    assert gui.ui.applyButton.enabled and not gui.ui.cancelButton.enabled
    assert gui.scene.GetNumberOfNodes() == nodes_before and gui.widget._parameterNode.outputVolume is None
    assert list(gui.temp_root.iterdir()) == []


def test_cancel_kills_the_runner_and_reaches_cancelled(gui):
    nodes_before = gui.scene.GetNumberOfNodes()
    gui.ui.applyButton.click()
    runner, = FakeRunner.instances
    runner.lines = ["PROGRESS 0.2500 denoising"]
    gui.timer.fire()
    gui.ui.cancelButton.click()
    assert runner.killed
    assert gui.states == ["RUNNING", "CANCELLED"] and not gui.timer.active
    assert gui.ui.statusLabel.text == "Cancelled; the scene was not changed."
    assert gui.ui.applyButton.enabled and not gui.ui.cancelButton.enabled
    assert gui.errors.messages == []
    assert gui.scene.GetNumberOfNodes() == nodes_before and list(gui.temp_root.iterdir()) == []
    gui.timer.fire()  # a late timer tick after the end changes nothing
    assert gui.states == ["RUNNING", "CANCELLED"]


def test_invalid_input_is_refused_before_anything_starts(gui):
    empty = gui.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    gui.widget._parameterNode.inputVolume = empty
    gui.ui.applyButton.click()
    assert FakeRunner.instances == [] and gui.states == []
    assert gui.errors.messages == ["Denoising failed: 'empty' has no voxels."]
    assert gui.ui.applyButton.enabled


def test_second_apply_while_running_is_ignored_and_scene_close_cancels(gui):
    gui.ui.applyButton.click()
    gui.widget.onApplyButton()  # e.g. a queued click: no second task
    assert len(FakeRunner.instances) == 1
    gui.widget.onSceneStartClose(None, None)
    assert FakeRunner.instances[0].killed and gui.states == ["RUNNING", "CANCELLED"]


def test_self_test_runs_outside_slicer(temp_root):
    """Runs the module's own MedDenoiseTest (both modes, real CLI child) with the GUI fakes only for its base
    class (``unittest.TestCase`` + no-op ``delayDisplay``) and ``slicer.mrmlScene`` (a real scene)."""
    import unittest

    with slicer_gui_fakes():
        import MedDenoise

        original = MedDenoise.MedDenoiseLogic.__init__

        def logic_in_temp_root(self, *args, **kwargs):
            original(self, *args, **kwargs)
            self.temporaryRoot = str(temp_root)

        MedDenoise.MedDenoiseLogic.__init__ = logic_in_temp_root
        result = unittest.TestResult()
        MedDenoise.MedDenoiseTest("runTest").run(result)
        assert result.wasSuccessful(), result.errors + result.failures
        names = [slicer.mrmlScene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode").GetName()
                 for i in range(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]
        assert names == ["MedDenoiseTestNoisy", "MedDenoiseTestNoisy denoised", "MedDenoiseTestNoisy denoised_1"]
    assert list(temp_root.iterdir()) == []
