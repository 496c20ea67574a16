"""MedDenoise: denoise CT, MR and ultrasound volumes with meddenoiselib inside 3D Slicer.

A thin front end over the library's one data path: volume node -> ``Volume`` -> ``Denoiser`` -> ``Volume`` ->
volume node. The work runs in a child process by default (``PythonSlicer -m meddenoiselib denoise`` on a
temporary NRRD), so the GUI stays responsive, a run can be cancelled, and a crash or out-of-memory in torch
cannot take Slicer down; in-process mode is there for small volumes and tests.

torch, MONAI and meddenoiselib are never imported when this file loads: they are checked (and offered for
installation) on the first Apply and imported inside functions. The Slicer-free parts live in
``MedDenoiseModuleLib`` beside this file.
"""

import importlib
import logging
import os
from typing import Annotated

import qt
import slicer
import vtk
from MedDenoiseModuleLib import (
    TORCH_REQUIREMENT,
    DenoiseSettings,
    DenoiseTask,
    Device,
    SliceAxis,
    SubprocessRunner,
    TaskState,
    available_models,
    check_input_node,
    default_python_executable,
    find_library_source,
    missing_modules,
)
from MedDenoiseModuleLib.dependencies import torch_too_old
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

#
# MedDenoise
#


class MedDenoise(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MedDenoise")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Filtering")]
        # PyTorchUtils (PyTorch extension) is imported on first use only: listing it here would stop this module
        # from loading at all when that extension is missing.
        self.parent.dependencies = []
        self.parent.contributors = ["MedDenoise developers"]
        self.parent.helpText = _(
            "Denoise a scalar volume (CT, MR, ultrasound) with a neural network trained for MedDenoise or with a "
            "classical filter (median, non-local means, BM3D/BM4D, anisotropic diffusion). The result is a new "
            "volume '&lt;input&gt; denoised' with the input's geometry. Noise level 'auto' estimates it from the "
            "image. Work runs in a separate process by default, so it can be cancelled."
        )
        self.parent.acknowledgementText = _(
            "MedDenoise is built on MONAI and PyTorch. The PyTorch extension (SlicerPyTorch) installs torch."
        )


#
# MedDenoiseParameterNode
#


@parameterNodeWrapper
class MedDenoiseParameterNode:
    """Every setting of the module, saved with the scene.

    inputVolume / outputVolume: the volume to denoise and the volume to fill (None: create "<input> denoised").
    model: shipped model or baseline name, or "default". noiseLevelAuto / noiseLevel: estimate the noise sigma, or
    use noiseLevel (0-255 scale of the normalized image). device: auto, cpu or cuda. roiSize: sliding-window edge
    in voxels (0: the model's preset). overlap: window overlap in [0, 0.95]. sliceAxis: array axis for 2D models.
    separateProcess: run in a child process (default) or inside Slicer.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    outputVolume: vtkMRMLScalarVolumeNode
    model: str = "default"
    noiseLevelAuto: bool = True
    noiseLevel: Annotated[float, WithinRange(0.0, 255.0)] = 25.0
    device: Device = Device.AUTO
    roiSize: Annotated[int, WithinRange(0, 4096)] = 0
    overlap: Annotated[float, WithinRange(0.0, 0.95)] = 0.25
    sliceAxis: SliceAxis = SliceAxis.AUTO
    separateProcess: bool = True


#
# MedDenoiseWidget
#


class MedDenoiseWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: binds the GUI to the parameter node and drives one :class:`DenoiseTask` at a time."""

    POLL_INTERVAL_MS = 200

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.ui = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._pollTimer = None
        self._task = None
        self._updatingGui = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MedDenoise.ui"))
        self.layout.addWidget(uiWidget)
        ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.setupWithUi(ui, MedDenoiseLogic(), qt.QTimer())

    def setupWithUi(self, ui, logic, pollTimer) -> None:
        """Everything of :meth:`setup` after the .ui file is loaded (tests call it with stand-in widgets)."""
        self.ui = ui
        self.logic = logic
        self._pollTimer = pollTimer
        self._pollTimer.setInterval(self.POLL_INTERVAL_MS)
        self._pollTimer.connect("timeout()", self.onPollTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)

        self._modelDescriptions = {}
        self.populateModels()
        self._showState(TaskState.IDLE, _("Select a volume and press Apply."))
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        self._cancelRunningTask()
        self.removeObservers()

    def onReload(self) -> None:
        """Developer "Reload": reload the helper package too, in dependency order, before this file."""
        import sys

        for name in ("settings", "runner", "dependencies", "volumes", "task"):
            module = sys.modules.get(f"MedDenoiseModuleLib.{name}")
            if module is not None:
                importlib.reload(module)
        if "MedDenoiseModuleLib" in sys.modules:
            importlib.reload(sys.modules["MedDenoiseModuleLib"])
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        # a running task keeps running (and the poll timer with it); only the GUI binding is released
        self._disconnectParameterNode()

    def onSceneStartClose(self, caller, event) -> None:
        self._cancelRunningTask()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent is not None and self.parent.isEntered:
            self.initializeParameterNode()

    # ----------------------------------------------------------------------------------- parameter node
    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                self._parameterNode.inputVolume = firstVolume

    def setParameterNode(self, inputParameterNode) -> None:
        self._disconnectParameterNode()
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.onParameterNodeModified()

    def _disconnectParameterNode(self) -> None:
        if self._parameterNode and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """Update what connectGui does not bind: the model list, the noise-level box, the buttons."""
        if self._parameterNode is None:
            return
        self._selectModel(self._parameterNode.model)
        self.ui.noiseLevelSpinBox.enabled = not self._parameterNode.noiseLevelAuto
        self._updateButtons()

    # ------------------------------------------------------------------------------------------ models
    def populateModels(self) -> None:
        """Fill the model combo box with ``default``, the shipped networks and the installed baselines."""
        combo = self.ui.modelComboBox
        self._updatingGui = True
        try:
            combo.clear()
            self._modelDescriptions = {}
            for choice in available_models():
                combo.addItem(choice.name)
                self._modelDescriptions[choice.name] = choice.description
        finally:
            self._updatingGui = False
        if self._parameterNode is not None:
            self._selectModel(self._parameterNode.model)

    def _selectModel(self, name) -> None:
        combo = self.ui.modelComboBox
        self._updatingGui = True
        try:
            index = combo.findText(name)
            if index < 0:  # e.g. a scene saved with a model this installation does not have
                combo.addItem(name)
                index = combo.count - 1
            combo.currentIndex = index
            combo.toolTip = self._modelDescriptions.get(name, "")
        finally:
            self._updatingGui = False

    def onModelChanged(self, index=None) -> None:
        if self._updatingGui or self._parameterNode is None:
            return
        self._parameterNode.model = self.ui.modelComboBox.currentText

    # ---------------------------------------------------------------------------------------- running
    def _isRunning(self) -> bool:
        return self._task is not None and self._task.state is TaskState.RUNNING

    def _updateButtons(self) -> None:
        running = self._isRunning()
        hasInput = self._parameterNode is not None and self._parameterNode.inputVolume is not None
        self.ui.applyButton.enabled = hasInput and not running
        self.ui.applyButton.toolTip = (
            _("Denoising is running") if running
            else _("Denoise the input volume") if hasInput else _("Select an input volume")
        )
        self.ui.cancelButton.enabled = running

    def _showState(self, state, text) -> None:
        self.ui.statusLabel.text = text
        if state is TaskState.RUNNING:
            self.ui.progressBar.value = 0
        elif state is TaskState.DONE:
            self.ui.progressBar.value = 100
        self._updateButtons()

    def onApplyButton(self, checked=False) -> None:
        """Check dependencies, then start a task with the parameter node's settings."""
        if self._parameterNode is None or self._isRunning():
            return
        self._task = None
        try:
            if not self.logic.ensureDependencies():
                self._showState(TaskState.IDLE, _("Not started: the required Python packages are not installed."))
                return
            if self.ui.modelComboBox.count <= 1:  # meddenoiselib may just have been installed: list its models
                self.populateModels()
            self.logic.processParameterNode(
                self._parameterNode,
                waitForCompletion=False,
                progressCallback=self.onTaskProgress,
                stateCallback=self.onTaskStateChanged,
            )
        except Exception as exc:  # invalid input or settings, or missing packages: nothing was started
            if isinstance(exc, (ValueError, RuntimeError)):
                logging.error("MedDenoise could not start: %s", exc)
            else:
                logging.exception("MedDenoise could not start")
            self._showState(TaskState.FAILED, _("Failed: {message}").format(message=exc))
            self._showError(str(exc))
            return
        if self._isRunning():
            self._pollTimer.start()

    def onCancelButton(self, checked=False) -> None:
        if self._isRunning():
            self.ui.statusLabel.text = _("Cancelling...")
            self._task.cancel()

    def onPollTimer(self) -> None:
        if self._task is None:
            self._pollTimer.stop()
            return
        self._task.poll()

    def onTaskProgress(self, fraction, message) -> None:
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = message
        if self._task is not None and not self._task.settings.separate_process:
            slicer.app.processEvents()  # in-process work runs on this thread: let Cancel be clicked

    def onTaskStateChanged(self, task) -> None:
        self._task = task
        if task.state is TaskState.RUNNING:
            self._showState(task.state, task.message)
            return
        if not task.state.finished:
            return
        self._pollTimer.stop()
        if task.state is TaskState.DONE:
            if self._parameterNode is not None:
                self._parameterNode.outputVolume = task.output_node
            text = _("Denoised '{input}' into '{output}' in {seconds:.1f} s.").format(
                input=task.input_node.GetName(), output=task.output_node.GetName(), seconds=task.seconds)
        elif task.state is TaskState.CANCELLED:
            text = _("Cancelled; the scene was not changed.")
        else:
            text = _("Failed: {message}").format(message=task.error)
        self._showState(task.state, text)
        if task.state is TaskState.FAILED:
            self._showError(task.error)

    def _showError(self, message) -> None:
        slicer.util.errorDisplay(_("Denoising failed: {message}").format(message=message))

    def _cancelRunningTask(self) -> None:
        if self._isRunning():
            self._task.cancel()
        if self._pollTimer is not None:
            self._pollTimer.stop()


#
# MedDenoiseLogic
#


class MedDenoiseLogic(ScriptedLoadableModuleLogic):
    """Denoising without the GUI (Python console, scripts, tests).

    Example (Slicer's Python console)::

        logic = slicer.util.getModuleLogic("MedDenoise")
        task = logic.process(slicer.util.getNode("MRHead"), model="default", device="cpu")
        print(task.output_node.GetName(), task.seconds)

    Attributes:
        runnerFactory: makes the child-process runner (inject another ``ProcessRunner`` for tests).
        pythonExecutable: the child's Python; None means ``PythonSlicer`` inside Slicer, else this interpreter.
        temporaryRoot: where temporary folders go; None means Slicer's temporary folder (system's outside Slicer).
        task: the latest :class:`DenoiseTask`.
    """

    def __init__(self, runnerFactory=None) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.runnerFactory = runnerFactory or SubprocessRunner
        self.pythonExecutable = None
        self.temporaryRoot = None
        self.task = None

    def getParameterNode(self):
        return MedDenoiseParameterNode(super().getParameterNode())

    # ------------------------------------------------------------------------------------ dependencies
    def ensureDependencies(self, askConfirmation=True) -> bool:
        """Make torch, MONAI and meddenoiselib importable, asking before installing anything.

        torch comes from the PyTorch extension (it picks the build that fits the GPU driver); MONAI and the rest
        of meddenoiselib's requirements come from ``pip install`` of the bundled meddenoiselib sources.

        Returns:
            True when everything is importable, False when the user declined an installation.

        Raises:
            RuntimeError: the PyTorch extension or the bundled sources are missing, or installation failed.
        """
        if "torch" in missing_modules(("torch",)) or torch_too_old():
            try:
                import PyTorchUtils
            except ImportError:
                raise RuntimeError(_(
                    "MedDenoise needs PyTorch: install the 'PyTorch' extension from the Extensions Manager, "
                    "restart Slicer, and press Apply again."
                )) from None
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=askConfirmation, torchVersionRequirement=TORCH_REQUIREMENT)
            if torch is None:
                return False
        missing = missing_modules(("monai", "meddenoiselib"))
        if missing:
            source = find_library_source(os.path.dirname(os.path.abspath(__file__)))
            if source is None:
                raise RuntimeError(_(
                    "meddenoiselib is not installed and its sources were not found beside the module; install it "
                    "with: PythonSlicer -m pip install <path to the MedDenoise repository>"
                ))
            if askConfirmation and not slicer.util.confirmOkCancelDisplay(_(
                "MedDenoise needs these Python packages: {packages}. Install meddenoiselib and its requirements "
                "(MONAI, SimpleITK, pydicom, ...) from {source} now? This can take a few minutes."
            ).format(packages=", ".join(missing), source=source)):
                return False
            slicer.util.pip_install([str(source)])
            importlib.invalidate_caches()
        stillMissing = missing_modules()
        if stillMissing:
            raise RuntimeError(_("Installation finished but these packages are still missing: {names}").format(
                names=", ".join(stillMissing)))
        return True

    # --------------------------------------------------------------------------------------- processing
    @staticmethod
    def settingsFromParameterNode(parameterNode) -> dict:
        """``process`` keyword arguments from the parameter node."""
        return {
            "model": parameterNode.model,
            "noiseLevel": None if parameterNode.noiseLevelAuto else float(parameterNode.noiseLevel),
            "device": parameterNode.device.value,
            "roiSize": int(parameterNode.roiSize),
            "overlap": float(parameterNode.overlap),
            "sliceAxis": parameterNode.sliceAxis.array_axis,
            "separateProcess": bool(parameterNode.separateProcess),
        }

    def processParameterNode(self, parameterNode, **kwargs):
        """``process`` with the input, output and settings held by ``parameterNode``."""
        return self.process(parameterNode.inputVolume, parameterNode.outputVolume,
                            **self.settingsFromParameterNode(parameterNode), **kwargs)

    def process(self, inputVolume, outputVolume=None, model="default", noiseLevel=None, device="auto", roiSize=0,
                overlap=0.25, sliceAxis=None, separateProcess=True, waitForCompletion=True, showResult=True,
                progressCallback=None, stateCallback=None, logCallback=None):
        """Denoise ``inputVolume`` into ``outputVolume`` (None: a new "<input name> denoised" volume).

        Args:
            inputVolume: a scalar volume node; under a parent transform only if it is linear (its world
                geometry is used and the output is created hardened).
            outputVolume: the node to fill, or None to create one. It is created/changed only on success.
            model: shipped model or baseline name, or "default" (the best shipped model).
            noiseLevel: noise sigma on the 0-255 scale of the normalized image, or None to estimate it.
            device: "auto", "cpu" or "cuda".
            roiSize: sliding-window edge in voxels; 0 uses the model's preset.
            overlap: sliding-window overlap in [0, 1).
            sliceAxis: array axis (0, 1, 2) for 2D models; None picks the largest spacing.
            separateProcess: run ``python -m meddenoiselib denoise`` in a child process (default), or the library
                in this process (blocks until done).
            waitForCompletion: return only when the task has ended (scripts, tests). Otherwise the caller polls
                ``task.poll()`` (the GUI does it from a timer).
            showResult: show the output in the slice views (input as foreground at opacity 0 for comparison).
            progressCallback: ``callback(fraction, message)``.
            stateCallback: ``callback(task)`` on every state change.
            logCallback: ``callback(line)`` for the child process's output lines.

        Returns:
            The :class:`DenoiseTask`; its ``output_node`` is the result once ``state`` is DONE.

        Raises:
            ValueError: invalid input volume or settings (nothing was started).
            RuntimeError: another task is running; or, with ``waitForCompletion``, the task failed.
        """
        if self.task is not None and self.task.state is TaskState.RUNNING:
            raise RuntimeError(_("A denoising task is already running."))
        check_input_node(inputVolume)
        settings = DenoiseSettings(model=model, noise_level=noiseLevel, device=device, roi_size=roiSize,
                                   overlap=overlap, slice_axis=sliceAxis, separate_process=separateProcess)
        needed = ("meddenoiselib",) if separateProcess else ("torch", "monai", "meddenoiselib")
        missing = missing_modules(needed)
        if missing:
            raise RuntimeError(_("Missing Python packages: {names}. Press Apply in the MedDenoise module, or call "
                                 "ensureDependencies() of this logic, to install them.").format(
                                     names=", ".join(missing)))

        def onStateChanged(task):
            if task.state is TaskState.DONE and showResult:
                self.showResult(task.input_node, task.output_node)
            if stateCallback is not None:
                stateCallback(task)

        self.task = DenoiseTask(
            inputVolume, settings, outputVolume,
            python_executable=self._childPython() if separateProcess else None,
            runner_factory=self.runnerFactory,
            env=self._childEnvironment(),
            temp_root=self.temporaryRoot or self._slicerTemporaryPath(),
            on_progress=progressCallback,
            on_state_changed=onStateChanged,
            on_log=logCallback,
        )
        self.task.start()
        if waitForCompletion:
            idle = slicer.app.processEvents if self._insideSlicer() else None
            self.task.wait(idle=idle)
            if self.task.state is TaskState.FAILED:
                raise RuntimeError(self.task.error)
        return self.task

    def showResult(self, inputVolume, outputVolume) -> None:
        """Output in the background of all slice views, input in the foreground at opacity 0 (fade to compare)."""
        if not self._insideSlicer():
            return
        slicer.util.setSliceViewerLayers(background=outputVolume, foreground=inputVolume, foregroundOpacity=0.0,
                                         fit=True)

    def _childPython(self) -> str:
        """The configured Python, else PythonSlicer inside Slicer, else this interpreter."""
        if self.pythonExecutable:
            return self.pythonExecutable
        if not self._insideSlicer():
            return default_python_executable(False)
        return default_python_executable(True, getattr(slicer.app, "slicerHome", None))

    @staticmethod
    def _insideSlicer() -> bool:
        return getattr(slicer, "app", None) is not None

    def _childEnvironment(self):
        """Slicer's startup environment for PythonSlicer (it sets up its own paths); None elsewhere."""
        if not self._insideSlicer():
            return None
        try:
            return slicer.util.startupEnvironment()
        except Exception:  # e.g. an application without launcher settings
            logging.warning("MedDenoise: no startup environment; the child process inherits Slicer's")
            return None

    def _slicerTemporaryPath(self):
        return getattr(slicer.app, "temporaryPath", None) if self._insideSlicer() else None


#
# MedDenoiseTest
#


class MedDenoiseTest(ScriptedLoadableModuleTest):
    """Self-test run inside Slicer: a small synthetic noisy volume, both modes, geometry and noise checks."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_MedDenoise_geometry_and_noise()

    def test_MedDenoise_geometry_and_noise(self):
        self.delayDisplay("Starting the MedDenoise test")
        missing = missing_modules()
        if missing:
            logging.warning("MedDenoise self-test skipped: %s not installed (press Apply once to install)", missing)
            self.delayDisplay(f"Skipped: {', '.join(missing)} not installed")
            return

        import numpy as np

        clean, noisy, ijkToRas = syntheticPhantom()
        inputVolume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "MedDenoiseTestNoisy")
        slicer.util.updateVolumeFromArray(inputVolume, noisy)
        inputVolume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRas))

        logic = MedDenoiseLogic()
        names = [choice.name for choice in available_models()]
        model = "kpn-small" if "kpn-small" in names else "default"
        noisyError = float(np.sqrt(np.mean((noisy - clean) ** 2)))
        for separateProcess in (False, True):
            self.delayDisplay(f"Denoising with {model}, separate process: {separateProcess}")
            task = logic.process(inputVolume, None, model=model, device="cpu", separateProcess=separateProcess,
                                 showResult=False)
            self.assertIs(task.state, TaskState.DONE)
            outputVolume = task.output_node
            self.assertIsNotNone(outputVolume)
            matrix = vtk.vtkMatrix4x4()
            outputVolume.GetIJKToRASMatrix(matrix)
            np.testing.assert_allclose(slicer.util.arrayFromVTKMatrix(matrix), ijkToRas, atol=1e-9)
            self.assertIsNone(outputVolume.GetParentTransformNode())
            denoised = slicer.util.arrayFromVolume(outputVolume).astype(np.float64)
            self.assertEqual(denoised.shape, noisy.shape)
            denoisedError = float(np.sqrt(np.mean((denoised - clean) ** 2)))
            self.assertLess(denoisedError, 0.8 * noisyError, f"RMSE {denoisedError:.1f} vs noisy {noisyError:.1f}")
        self.delayDisplay("Test passed")


def syntheticPhantom(shape=(6, 64, 64), sigma=60.0, seed=0):
    """``(clean, noisy, ijkToRas)``: nested ellipsoids (float32, 100..900) plus seeded Gaussian noise, on an
    oblique anisotropic grid (spacing 0.8 x 1.1 x 2.5 mm)."""
    import numpy as np

    k, j, i = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    clean = np.full(shape, 100.0)
    clean[(i / 0.8) ** 2 + (j / 0.7) ** 2 + (k / 1.2) ** 2 < 1] = 500.0
    clean[((i - 0.2) / 0.3) ** 2 + (j / 0.25) ** 2 < 1] = 900.0
    clean += 80.0 * i  # a gentle ramp, so the image is not piecewise constant
    noisy = clean + np.random.default_rng(seed).normal(0.0, sigma, size=shape)
    angle = np.deg2rad(25.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    ijkToRas = np.eye(4)
    ijkToRas[:3, :3] = rotation @ np.diag([0.8, 1.1, 2.5])
    ijkToRas[:3, 3] = [-20.0, 15.5, 3.25]
    return clean.astype(np.float32), noisy.astype(np.float32), ijkToRas
