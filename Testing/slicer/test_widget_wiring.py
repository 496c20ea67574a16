"""Tier C: the widget/logic wiring of ``MedDenoise.py``, with stand-ins for the GUI classes slicer-core lacks.

Faked (see ``fakes.py`` for each behaviour): ``qt.QTimer`` (fired by hand), ``slicer.i18n.tr``/``translate``,
``slicer.ScriptedLoadableModule`` base classes (``getParameterNode`` returns a real scripted module node),
``slicer.parameterNodeWrapper`` (``parameterNodeWrapper`` holds Python values and calls ``Modified()``;
``connectGui``/``disconnectGui`` record only), ``slicer.util.errorDisplay`` and ``confirmOkCancelDisplay``
(record), the panel's widgets (attributes + signals, see ``fake_ui``), and the child process (:class:`FakeRunner`:
scripted output lines and exit code; "finishing" copies its input file to its output path). Real: the MRML scene
and nodes, the ``DenoiseTask`` state machine, the NRRD files the task writes and reads.

These tests only check wiring: which call the GUI makes with which settings, the state sequence Idle -> Running
-> Done/Failed/Cancelled, buttons, status text, log panel, error display, cleanup. No geometry or voxel values are
asserted here (those are covered by test_volumes.py, test_module_features.py and test_subprocess.py without fakes).
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

    def finish_with_preview_slice(self) -> None:
        """Exit 0 after 'previewing' = writing the input's slice ``--preview-slice K`` along k as the output."""
        from meddenoiselib.io import read_volume, write_volume

        index = int(self.command[self.command.index("--preview-slice") + 1])
        write_volume(read_volume(self.command[4]).slab(0, index, index + 1), self.command[5], overwrite=True)
        self.code = 0


@pytest.fixture()
def gui(temp_root):
    """Imports MedDenoise.py under the fakes and builds the widget on stand-in widgets and a real scene.

    The scene holds a label map *before* the scalar volume: the default input must skip it, as the selector does.
    """
    FakeRunner.instances = []
    with slicer_gui_fakes() as fakes:
        import MedDenoise

        logic = MedDenoise.MedDenoiseLogic(runnerFactory=FakeRunner)
        logic.temporaryRoot = str(temp_root)
        labels = fakes.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
        slicer.util.updateVolumeFromArray(labels, np.ones((2, 6, 7), np.uint8))
        volume = add_volume_node(fakes.scene, np.zeros((2, 6, 7), np.int16), oblique_ijk_to_ras(), name="scan")
        widget = MedDenoise.MedDenoiseWidget()
        ui, timer, blend_timer = fake_ui(), FakeTimer(), FakeTimer()
        widget.setupWithUi(ui, logic, timer, blend_timer)

        states, calls, strengths = [], [], []
        original_process, original_strength = logic.process, logic.setStrength

        def spy_process(*args, **kwargs):
            calls.append((args, kwargs))
            return original_process(*args, **kwargs)

        def spy_strength(value):
            strengths.append(value)
            original_strength(value)

        logic.process, logic.setStrength = spy_process, spy_strength
        original_state = widget.onTaskStateChanged

        def spy_state(task):
            states.append(task.state.name)
            original_state(task)

        widget.onTaskStateChanged = spy_state
        yield type(
            "Gui",
            (),
            dict(
                module=MedDenoise,
                widget=widget,
                logic=logic,
                ui=ui,
                timer=timer,
                blend_timer=blend_timer,
                volume=volume,
                labels=labels,
                scene=fakes.scene,
                errors=fakes.errors,
                confirm=fakes.confirm,
                states=states,
                calls=calls,
                strengths=strengths,
                temp_root=Path(temp_root),
            ),
        )
        widget.cleanup()  # as Slicer does when the module widget goes away: cancel, remove scene observers


def test_initial_state_picks_an_image_volume_not_the_label_map(gui):
    parameters = gui.widget._parameterNode
    assert parameters.inputVolume is gui.volume  # the label map, first in the scene, is not what the selector offers
    assert gui.widget._task is None
    assert gui.ui.applyButton.enabled and not gui.ui.cancelButton.enabled
    assert gui.ui.modelComboBox.items[:2] == ["auto", "default"] and gui.ui.modelComboBox.currentText == "auto"
    assert {"median", "nlm"} <= set(gui.ui.modelComboBox.items)
    assert not gui.ui.noiseLevelSpinBox.enabled  # noise level "auto" by default
    assert not gui.ui.noiseLevelUnitsComboBox.enabled
    assert not gui.ui.windowCenterSpinBox.enabled  # CT window "none" by default
    assert not gui.ui.wholeSequenceCheckBox.enabled  # the input is not a sequence proxy
    assert parameters.separateProcess is True and not gui.ui.guardLabel.visible


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
    parameters.ctWindow = module.CTWindow.CUSTOM
    assert gui.ui.windowCenterSpinBox.enabled and gui.ui.windowWidthSpinBox.enabled
    parameters.windowCenter, parameters.windowWidth = -500.0, 1200.0
    parameters.ensemble = module.Ensemble.FOUR
    parameters.refine = module.Refine.OFF
    parameters.modality = module.Modality.CT
    parameters.createResidual = True
    parameters.createNoiseMap = True
    parameters.leaveMetalOut = False
    parameters.stabilizePhotonNoise = False

    gui.ui.applyButton.click()

    ((args, kwargs),) = gui.calls
    assert args == (gui.volume, None)
    assert {
        k: kwargs[k]
        for k in (
            "model",
            "noiseLevel",
            "noiseSD",
            "device",
            "roiSize",
            "overlap",
            "sliceAxis",
            "window",
            "modality",
            "ensemble",
            "refine",
            "mask",
            "exclude",
            "measure",
            "residual",
            "noiseMap",
            "strength",
            "separateProcess",
            "leaveMetalOut",
            "stabilizePhotonNoise",
            "waitForCompletion",
        )
    } == {
        "model": "median",
        "noiseLevel": 15.0,
        "noiseSD": None,
        "device": "cpu",
        "roiSize": 64,
        "overlap": 0.5,
        "sliceAxis": 1,
        "window": (-500.0, 1200.0),
        "modality": "ct",
        "ensemble": 4,
        "refine": "off",
        "mask": None,
        "exclude": None,
        "measure": None,
        "residual": True,
        "noiseMap": True,
        "strength": 1.0,
        "separateProcess": True,
        "leaveMetalOut": False,
        "stabilizePhotonNoise": False,
        "waitForCompletion": False,
    }
    (runner,) = FakeRunner.instances
    command = runner.command
    assert command[1:4] == ["-m", "meddenoiselib", "denoise"]
    options = command[6:]
    assert options[:14] == [
        "--model",
        "median",
        "--sigma",
        "15.0",
        "--device",
        "cpu",
        "--overlap",
        "0.5",
        "--roi",
        "64",
        "--slice-axis",
        "1",
        "--window",
        "-500.0,1200.0",
    ]
    assert options[14:18] == ["--ensemble", "4", "--refine", "off"]
    assert options[options.index("--metal") + 1] == "off"
    assert options[options.index("--stabilize") + 1] == "off"
    assert options[-5:-3] == ["--report", str(Path(command[4]).with_name("report.json"))]
    assert options[-3:] == ["--progress-format", "lines", "--overwrite"]
    assert gui.states == ["RUNNING"] and gui.timer.active
    assert not gui.ui.applyButton.enabled and gui.ui.cancelButton.enabled

    runner.lines = ["Reading input.nrrd", "PROGRESS 0.5000 denoising"]
    gui.timer.fire()
    assert gui.ui.progressBar.value == 50 and gui.ui.statusLabel.text == "denoising"
    assert "Reading input.nrrd" in gui.ui.logTextEdit.lines  # the child's lines reach the panel's log

    runner.finish_with_input_as_output()
    gui.timer.fire()
    assert gui.states == ["RUNNING", "DONE"] and not gui.timer.active
    task = gui.widget._task
    assert task.output_node.GetName() == "scan denoised" and task.residual_node.GetName() == "scan residual"
    assert task.noise_map_node.GetName() == "scan noise map"
    assert gui.ui.reportTableView.table is task.report_table
    assert not gui.ui.regionTableView.visible and task.region_table is None  # no regions chosen
    assert parameters.outputVolume is None  # the next Apply creates another volume
    assert gui.ui.statusLabel.text.startswith("Denoised 'scan' into 'scan denoised' in ")
    assert gui.ui.logTextEdit.lines[-1] == gui.ui.statusLabel.text  # with the run time
    assert gui.ui.applyButton.enabled and not gui.ui.cancelButton.enabled and gui.ui.progressBar.value == 100
    assert gui.errors.messages == [] and list(gui.temp_root.iterdir()) == []


def test_a_noise_sd_in_image_units_reaches_the_cli_as_noise_sd(gui):
    """The SD Segment Statistics measured (HU for CT), typed with "SD in image units": the child gets --noise-sd
    and no --sigma; the 0-255 scale stays the default."""
    module, parameters = gui.module, gui.widget._parameterNode
    assert parameters.noiseLevelUnits is module.NoiseUnits.NORMALIZED
    parameters.noiseLevelAuto = False
    assert gui.ui.noiseLevelUnitsComboBox.enabled
    parameters.noiseLevel = 31.5
    parameters.noiseLevelUnits = module.NoiseUnits.IMAGE
    gui.ui.applyButton.click()
    ((_args, kwargs),) = gui.calls
    assert kwargs["noiseLevel"] is None and kwargs["noiseSD"] == 31.5
    options = FakeRunner.instances[-1].command[6:]
    assert options[options.index("--noise-sd") + 1] == "31.5" and "--sigma" not in options


def test_a_trained_weights_file_replaces_the_model_and_reaches_the_cli_as_weights(gui, tmp_path):
    """A file typed or browsed in "Trained weights" goes into the parameter node, turns the model list off and
    reaches the child as ``--weights`` (no ``--model``); cleared, the model list is back. A file without its model
    card is refused before anything starts, naming the file."""
    from meddenoiselib.weights import WEIGHTS_DIR

    weights = tmp_path / "model.safetensors"
    shutil.copyfile(WEIGHTS_DIR / "kpn-small.safetensors", weights)
    shutil.copyfile(WEIGHTS_DIR / "kpn-small.json", weights.with_suffix(".json"))
    parameters = gui.widget._parameterNode
    gui.ui.weightsPathLineEdit.currentPath = str(weights)  # as the user browses to it
    assert parameters.weightsFile == str(weights)
    assert not gui.ui.modelComboBox.enabled and str(weights) in gui.ui.modelComboBox.toolTip
    gui.ui.applyButton.click()
    ((_args, kwargs),) = gui.calls
    assert kwargs["weights"] == str(weights)
    options = FakeRunner.instances[-1].command[6:]
    assert options[options.index("--weights") + 1] == str(weights.resolve()) and "--model" not in options
    FakeRunner.instances[-1].finish_with_input_as_output()
    gui.timer.fire()

    parameters.weightsFile = ""  # e.g. a scene saved without weights, or the field cleared
    assert gui.ui.weightsPathLineEdit.currentPath == "" and gui.ui.modelComboBox.enabled
    weights.with_suffix(".json").unlink()
    gui.ui.weightsPathLineEdit.currentPath = str(weights)
    gui.ui.applyButton.click()
    assert len(FakeRunner.instances) == 1  # nothing started
    assert gui.errors.messages[-1] == f"Denoising failed: {weights}: model card model.json not found beside the weights"


def test_the_magnitude_floor_and_coils_reach_the_cli(gui):
    """ "MR noise floor" and "MR coils" in Advanced: the child gets --magnitude-floor and --coils; left at auto and
    0 ("from the air") it gets neither."""
    module, parameters = gui.module, gui.widget._parameterNode
    gui.ui.applyButton.click()
    options = FakeRunner.instances[-1].command[6:]
    assert "--magnitude-floor" not in options and "--coils" not in options
    FakeRunner.instances[-1].finish_with_input_as_output()
    gui.timer.fire()
    parameters.magnitudeFloor = module.MagnitudeFloor.REMOVE
    parameters.coils = 8
    gui.ui.applyButton.click()
    kwargs = gui.calls[-1][1]
    assert kwargs["magnitudeFloor"] == "remove" and kwargs["coils"] == 8
    options = FakeRunner.instances[-1].command[6:]
    assert options[options.index("--magnitude-floor") + 1] == "remove" and options[options.index("--coils") + 1] == "8"


def test_second_apply_on_another_input_creates_a_new_output(gui):
    other = add_volume_node(gui.scene, np.ones((2, 6, 7), np.int16), oblique_ijk_to_ras(), name="other")
    gui.ui.applyButton.click()
    FakeRunner.instances[-1].finish_with_input_as_output()
    gui.timer.fire()
    first = gui.widget._task.output_node
    gui.widget._parameterNode.inputVolume = other
    gui.ui.applyButton.click()
    FakeRunner.instances[-1].finish_with_input_as_output()
    gui.timer.fire()
    second = gui.widget._task.output_node
    assert second is not first and second.GetName() == "other denoised" and first.GetScene() is gui.scene
    assert first.GetName() == "scan denoised"


def test_preview_button_previews_the_slice_the_red_view_shows(gui):
    red = slicer.vtkMRMLSliceNode()
    red.SetName("Red")
    red.SetLayoutName("Red")
    red.SetSingletonTag("Red")
    gui.scene.AddNode(red)
    centre = oblique_ijk_to_ras() @ np.array([3.0, 2.0, 1.2, 1.0])  # in slice k = 1 of the (2, 6, 7) scan
    for row in range(3):
        red.GetSliceToRAS().SetElement(row, 3, centre[row])
    red.UpdateMatrices()
    parameters = gui.widget._parameterNode
    parameters.createResidual = True  # Apply's extras are not a preview's
    assert gui.ui.previewButton.enabled

    gui.ui.previewButton.click()

    ((args, kwargs),) = gui.calls
    assert args == (gui.volume, None) and kwargs["previewSlice"] == 1  # None: its preview node, not the output
    assert not kwargs["residual"] and not kwargs["noiseMap"]
    runner = FakeRunner.instances[-1]
    assert runner.command[runner.command.index("--preview-slice") + 1] == "1" and "--residual" not in runner.command
    assert not gui.ui.previewButton.enabled and gui.ui.cancelButton.enabled  # running
    runner.finish_with_preview_slice()
    gui.timer.fire()
    task = gui.widget._task
    assert task.state.name == "DONE" and task.output_node.GetName() == "scan preview"
    assert gui.ui.statusLabel.text.startswith("Previewed slice 1 of 'scan' in 'scan preview'")
    assert task.residual_node is None and gui.ui.previewButton.enabled

    gui.ui.previewButton.click()  # a second preview fills the same node
    FakeRunner.instances[-1].finish_with_preview_slice()
    gui.timer.fire()
    assert gui.widget._task.output_node is task.output_node


def test_measured_regions_reach_their_table_and_follow_the_strength(gui):
    regions = np.zeros((2, 6, 7), np.uint8)
    regions[:, 1:4, 1:5] = 1
    painted = gui.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "painted")
    slicer.util.updateVolumeFromArray(painted, regions)
    painted.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(oblique_ijk_to_ras()))  # the scan's grid
    parameters = gui.widget._parameterNode
    parameters.measureNode = painted

    gui.ui.applyButton.click()
    ((_args, kwargs),) = gui.calls
    assert kwargs["measure"] is painted
    FakeRunner.instances[-1].finish_with_input_as_output()
    gui.timer.fire()
    task = gui.widget._task
    assert gui.ui.regionTableView.visible and gui.ui.regionTableView.table is task.region_table
    assert task.region_table.GetName() == "scan region noise" and task.region_table.GetCellText(0, 1) == "24"
    parameters.strength = 0.5
    gui.blend_timer.fire()
    assert task.blend.strength == 0.5 and task.regions[0]["voxels"] == 24


def test_strength_slider_reblends_after_a_run_without_running_again(gui):
    gui.ui.applyButton.click()
    FakeRunner.instances[-1].finish_with_input_as_output()
    gui.timer.fire()
    parameters = gui.widget._parameterNode
    parameters.strength = 0.4  # the slider moves
    assert gui.blend_timer.active and gui.strengths == []  # waits for the slider to stop
    parameters.strength = 0.3
    gui.blend_timer.fire()
    assert gui.strengths == [0.3] and len(FakeRunner.instances) == 1 and len(gui.calls) == 1
    parameters.noiseLevel = 12.0  # another setting changes: no re-blend
    assert not gui.blend_timer.active


@pytest.mark.parametrize(
    "lines, code, message",
    [
        (
            ["error: device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto"],
            1,
            "device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto",
        ),
        (
            [
                "Traceback (most recent call last):",
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB",
            ],
            1,
            "Out of memory while denoising; try the cpu device, a smaller ROI size, or crop the volume.",
        ),
        ([], -9, "The denoising process was killed by signal 9 (the system may have run out of memory)."),
        (["Segmentation fault"], 139, "The denoising process failed (exit code 139): Segmentation fault"),
    ],
)
def test_failure_shows_one_error_the_log_and_leaves_the_scene_unchanged(gui, lines, code, message):
    nodes_before = gui.scene.GetNumberOfNodes()
    gui.ui.applyButton.click()
    (runner,) = FakeRunner.instances
    runner.lines, runner.code = list(lines), code
    gui.timer.fire()
    assert gui.states == ["RUNNING", "FAILED"] and not gui.timer.active
    assert gui.errors.messages == [f"Denoising failed: {message}"]
    assert gui.ui.statusLabel.text == f"Failed: {message}"
    assert all(line in gui.ui.logTextEdit.lines for line in lines)  # tracebacks are visible in the panel
    assert gui.ui.applyButton.enabled and not gui.ui.cancelButton.enabled
    assert gui.scene.GetNumberOfNodes() == nodes_before and gui.widget._parameterNode.outputVolume is None
    assert list(gui.temp_root.iterdir()) == []


def test_auto_falls_back_to_default_on_a_library_without_it(gui):
    """``auto`` goes to the library as is; if the library does not know it, the run restarts with ``default``."""
    gui.ui.applyButton.click()
    (first,) = FakeRunner.instances
    assert first.command[first.command.index("--model") + 1] == "auto"
    first.lines, first.code = ["error: unknown model 'auto'; choose one of: kpn-small, median"], 1
    gui.timer.fire()
    second = FakeRunner.instances[-1]
    assert len(FakeRunner.instances) == 2 and second.command[second.command.index("--model") + 1] == "default"
    assert gui.states == ["RUNNING"]
    second.finish_with_input_as_output()
    gui.timer.fire()
    task = gui.widget._task
    assert gui.states == ["RUNNING", "DONE"] and task.notes["model_choice"].startswith("'auto' is not available")
    rows = [
        (task.report_table.GetCellText(r, 0), task.report_table.GetCellText(r, 1))
        for r in range(task.report_table.GetNumberOfRows())
    ]
    assert ("model choice", task.notes["model_choice"]) in rows
    assert any("'default' was used" in line for line in gui.ui.logTextEdit.lines)


def test_cancel_kills_the_runner_and_reaches_cancelled(gui):
    nodes_before = gui.scene.GetNumberOfNodes()
    gui.ui.applyButton.click()
    (runner,) = FakeRunner.instances
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
    gui.widget._parameterNode.inputVolume = gui.labels  # e.g. set from the Python console
    gui.ui.applyButton.click()
    assert FakeRunner.instances == []
    assert gui.errors.messages[-1].startswith("Denoising failed: 'labels' is a label map")
    assert gui.ui.applyButton.enabled


def test_second_apply_while_running_is_ignored_and_scene_close_cancels(gui):
    gui.ui.applyButton.click()
    gui.widget.onApplyButton()  # e.g. a queued click: no second task
    assert len(FakeRunner.instances) == 1
    gui.widget.onSceneStartClose(None, None)
    assert FakeRunner.instances[0].killed and gui.states == ["RUNNING", "CANCELLED"]


def test_too_old_slicer_is_named_in_the_panel_and_nothing_is_installed(temp_root, monkeypatch):
    """On Slicer 5.8 (Python 3.9) the panel says which Slicer is needed; Apply stays off and installs nothing."""
    with slicer_gui_fakes() as fakes:
        import MedDenoise
        from MedDenoiseModuleLib import dependencies

        monkeypatch.setattr(
            MedDenoise,
            "runtime_problem",
            lambda version, slicer_version: dependencies.runtime_problem((3, 9, 10), "5.8.1"),
        )
        logic = MedDenoise.MedDenoiseLogic(runnerFactory=FakeRunner)
        installs = []
        monkeypatch.setattr(logic, "ensureDependencies", lambda **kwargs: installs.append(kwargs) or True)
        add_volume_node(fakes.scene, np.zeros((2, 6, 7), np.int16), oblique_ijk_to_ras(), name="scan")
        widget = MedDenoise.MedDenoiseWidget()
        ui = fake_ui()
        widget.setupWithUi(ui, logic, FakeTimer(), FakeTimer())
        assert ui.guardLabel.visible and "3D Slicer 5.10 or later" in ui.guardLabel.text
        assert "This Slicer (5.8.1) has Python 3.9.10" in ui.guardLabel.text
        assert not ui.applyButton.enabled and ui.applyButton.toolTip == ui.guardLabel.text
        widget.onApplyButton()
        assert installs == [] and fakes.errors.messages == []
        widget.cleanup()


def test_self_test_runs_outside_slicer(temp_root):
    """Runs the module's own MedDenoiseTest (both modes, real CLI child; strength, residual and mask) with the GUI
    fakes only for its base class (``unittest.TestCase`` + no-op ``delayDisplay``) and ``slicer.mrmlScene``."""
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
        names = [
            slicer.mrmlScene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode").GetName()
            for i in range(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))
        ]
        assert names.count("MedDenoiseTestNoisy") == 5  # one phantom per test method
        assert "MedDenoiseTestNoisy denoised" in names and "MedDenoiseTestNoisy residual" in names
        assert "MedDenoiseTestNoisy noise map" in names
        assert names.count("MedDenoiseTestNoisy preview") == 1  # the second preview refills the first's node
        # a report per run (two each the noise-SD and noise-SD-map runs), one per preview, and the measuring run's
        # region table
        assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLTableNode") == 13
    assert list(temp_root.iterdir()) == []
