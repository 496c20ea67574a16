"""MedDenoise: denoise CT, MR and ultrasound volumes with meddenoiselib inside 3D Slicer.

A thin front end over the library's one data path: volume node -> ``Volume`` (a sequence -> ``VolumeSeries``) ->
``Denoiser`` -> node. The work runs in a child process by default (``PythonSlicer -m meddenoiselib denoise`` on
temporary NRRD files), so the GUI stays responsive, a run can be cancelled at once, and a crash or out-of-memory in
torch cannot take Slicer down; in-process mode runs the library on a worker thread.

torch, MONAI and meddenoiselib are never imported when this file loads: they are checked (and offered for
installation) on the first Apply and imported inside functions. The Slicer-free parts live in
``MedDenoiseModuleLib`` beside this file.
"""

import importlib
import logging
import os
import sys
from typing import Annotated, Union

import qt
import slicer
import vtk
from MedDenoiseModuleLib import (
    INPUT_NODE_TYPES,
    TORCH_REQUIREMENT,
    CTWindow,
    DenoiseSettings,
    DenoiseTask,
    Device,
    Ensemble,
    MagnitudeFloor,
    Modality,
    NoiseUnits,
    Refine,
    SliceAxis,
    SubprocessRunner,
    TaskState,
    available_models,
    check_input_node,
    cli_supports,
    default_python_executable,
    dicom_modality,
    file_modality,
    find_library_source,
    first_input_candidate,
    library_update_needed,
    missing_modules,
    modality_from_dicom,
    pip_install_command,
    plan_library_install,
    run_to_completion,
    runtime_problem,
    slice_index_in_view,
    torch_too_old,
)
from MedDenoiseModuleLib.sequences import sequence_of
from slicer import (
    vtkMRMLDiffusionWeightedVolumeNode,
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLVectorVolumeNode,
)
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

# Slicer's Multi-volume Explorer registers the class; where it is absent (slicer-core), scalar volumes stand for it
vtkMRMLMultiVolumeNode = getattr(slicer, "vtkMRMLMultiVolumeNode", vtkMRMLScalarVolumeNode)

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))

#
# MedDenoise
#


class MedDenoise(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("MedDenoise")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Filtering.Denoising")]
        # PyTorchUtils (PyTorch extension) is imported on first use only: listing it here would stop this module
        # from loading at all when that extension is missing.
        self.parent.dependencies = []
        self.parent.contributors = ["MedDenoise developers (MedDenoise project)"]
        self.parent.helpText = _(
            "Denoise a scalar or colour volume, a diffusion-weighted volume (gradient by gradient, gradients kept), or "
            "every frame of a sequence (CT, MR, ultrasound), with a neural "
            "network trained for MedDenoise or with a classical filter (median, non-local means, BM3D/BM4D, "
            "anisotropic diffusion), optionally only inside a segmentation, or with a segmentation (metal, an "
            "implant) left out. The result is a new volume '&lt;input&gt; denoised' with the input's geometry; the "
            "strength slider blends it with the input without running again. Paint flat tissue in a segmentation and "
            "choose it under 'Measure noise in' to see the noise (standard deviation) in each segment before and "
            "after, in the input's units. Needs 3D Slicer 5.10 or later and the PyTorch extension."
        )
        self.parent.acknowledgementText = _(
            "MedDenoise is built on MONAI and PyTorch. The PyTorch extension (SlicerPyTorch) installs torch. The "
            "sample chest CT comes from the ITKElastix examples (Apache-2.0)."
        )
        app = getattr(slicer, "app", None)
        if app is not None and hasattr(app, "connect"):
            app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Add the bundled chest CT to the Sample Data module (category MedDenoise)."""
    try:
        import SampleData
        from MedDenoiseModuleLib.sampledata import register_chest_ct
    except ImportError:
        return
    thumbnail = os.path.join(MODULE_DIR, "Resources", "Icons", "MedDenoiseChestCT.png")
    if not register_chest_ct(SampleData, MODULE_DIR, thumbnail):
        logging.warning("MedDenoise: the sample chest CT files were not found; no Sample Data entry")


#
# MedDenoiseParameterNode
#


@parameterNodeWrapper
class MedDenoiseParameterNode:
    """Every setting of the module, saved with the scene.

    inputVolume / outputVolume: the volume to denoise and the volume to fill (None: create "<input> denoised").
    maskNode: segmentation or label map; only voxels inside are denoised (None: the whole volume).
    excludeNode: segmentation or label map left out of the denoising, e.g. metal (None: nothing left out).
    measureNode: segmentation or label map whose regions' noise is measured before and after (None: none).
    noiseSdMapNode: scalar volume of the noise's SD per voxel on the input's grid, in its units (MR g-factor or
    MP-PCA noise map); the input is denoised divided by it (None: one noise level).
    estimateNoiseSdMap: instead, read such a map from the input itself (any method; auto does so by itself where a
    magnitude MR's noise floor varies).
    wholeSequence: when the input is a sequence's proxy node, denoise every frame into a new sequence.
    model: "auto", "default", a shipped model or a baseline. modality: for model "auto" (from DICOM or given).
    weightsFile: a .safetensors file the user trained ("python -m meddenoiselib train"), run instead of the model
    ("": none; set in the Advanced section, not bound by connectGui, whose path connector wants a pathlib.Path).
    ctWindow / windowCenter / windowWidth: normalize with a CT window (HU). ensemble: geometric views averaged.
    refine: the collaborative Wiener refinement of a network's output (auto, on, off).
    noiseLevelAuto / noiseLevel / noiseLevelUnits: estimate the noise, or use noiseLevel, on the 0-255 scale of the
    normalized image or as the noise's SD in the volume's units (HU for CT; e.g. Segment Statistics' SD in flat tissue).
    strength: blend of input (0) and result (1), applied live after a run. createResidual: add "<input> residual".
    createNoiseMap: add "<input> noise map" (local standard deviation of the residual, in the input's units).
    device, roiSize, overlap, sliceAxis, separateProcess: how it runs.
    leaveMetalOut: with model auto on CT, leave clusters at or above 2500 HU out of the denoising (no halo).
    magnitudeFloor: magnitude MR's Rician noise floor: removed with the automatic model (auto), with any method
    (remove), or kept. coils: the receive coils it was combined from (0: read from the air).
    stabilizePhotonNoise: NLM / BM3D / BM4D on photon noise (X-ray, other) under the generalized Anscombe transform.
    """

    inputVolume: Union[
        vtkMRMLScalarVolumeNode, vtkMRMLVectorVolumeNode, vtkMRMLDiffusionWeightedVolumeNode, vtkMRMLMultiVolumeNode
    ]
    outputVolume: Union[
        vtkMRMLScalarVolumeNode, vtkMRMLVectorVolumeNode, vtkMRMLDiffusionWeightedVolumeNode, vtkMRMLMultiVolumeNode
    ]
    maskNode: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]
    excludeNode: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]
    measureNode: Union[vtkMRMLSegmentationNode, vtkMRMLLabelMapVolumeNode]
    noiseSdMapNode: vtkMRMLScalarVolumeNode
    estimateNoiseSdMap: bool = False
    wholeSequence: bool = True
    model: str = "auto"
    weightsFile: str = ""
    modality: Modality = Modality.FROM_DICOM
    ctWindow: CTWindow = CTWindow.NONE
    windowCenter: Annotated[float, WithinRange(-2000.0, 4000.0)] = 40.0
    windowWidth: Annotated[float, WithinRange(1.0, 8000.0)] = 400.0
    ensemble: Ensemble = Ensemble.AUTO
    refine: Refine = Refine.AUTO
    noiseLevelAuto: bool = True
    noiseLevel: Annotated[float, WithinRange(0.0, 100000.0)] = 25.0
    noiseLevelUnits: NoiseUnits = NoiseUnits.NORMALIZED
    strength: Annotated[float, WithinRange(0.0, 1.0)] = 1.0
    createResidual: bool = False
    createNoiseMap: bool = False
    device: Device = Device.AUTO
    roiSize: Annotated[int, WithinRange(0, 4096)] = 0
    overlap: Annotated[float, WithinRange(0.0, 0.95)] = 0.25
    sliceAxis: SliceAxis = SliceAxis.AUTO
    separateProcess: bool = True
    leaveMetalOut: bool = True
    magnitudeFloor: MagnitudeFloor = MagnitudeFloor.AUTO
    coils: Annotated[int, WithinRange(0, 64)] = 0
    stabilizePhotonNoise: bool = True


#
# MedDenoiseWidget
#


class MedDenoiseWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: binds the GUI to the parameter node and drives one :class:`DenoiseTask` at a time."""

    POLL_INTERVAL_MS = 200
    BLEND_DELAY_MS = 150

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.ui = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._pollTimer = None
        self._blendTimer = None
        self._task = None
        self._updatingGui = False
        self._runtimeProblem = None
        self._blendedStrength = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MedDenoise.ui"))
        self.layout.addWidget(uiWidget)
        ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.setupWithUi(ui, MedDenoiseLogic(), qt.QTimer(), qt.QTimer())

    def setupWithUi(self, ui, logic, pollTimer, blendTimer) -> None:
        """Everything of :meth:`setup` after the .ui file is loaded (tests call it with stand-in widgets)."""
        self.ui = ui
        self.logic = logic
        self._pollTimer = pollTimer
        self._pollTimer.setInterval(self.POLL_INTERVAL_MS)
        self._pollTimer.connect("timeout()", self.onPollTimer)
        self._blendTimer = blendTimer
        self._blendTimer.setSingleShot(True)
        self._blendTimer.setInterval(self.BLEND_DELAY_MS)
        self._blendTimer.connect("timeout()", self.onBlendTimer)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.previewButton.connect("clicked(bool)", self.onPreviewButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelChanged)
        self.ui.weightsPathLineEdit.connect("currentPathChanged(QString)", self.onWeightsChanged)

        self._modelDescriptions = {}
        self.populateModels()
        app = getattr(slicer, "app", None)
        self._runtimeProblem = runtime_problem(sys.version_info, getattr(app, "applicationVersion", None))
        self.ui.guardLabel.text = self._runtimeProblem or ""
        self.ui.guardLabel.visible = self._runtimeProblem is not None
        self._showState(TaskState.IDLE, self._runtimeProblem or _("Select a volume and press Apply."))
        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        self._cancelRunningTask()
        self.removeObservers()

    def onReload(self) -> None:
        """Developer "Reload": reload the helper package too, in dependency order, before this file."""
        for name in (
            "dependencies",
            "install",
            "settings",
            "runner",
            "volumes",
            "masks",
            "regions",
            "sequences",
            "outputs",
            "blend",
            "task",
            "sampledata",
        ):
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
        self.logic.releaseResult()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent is not None and self.parent.isEntered:
            self.initializeParameterNode()

    # ----------------------------------------------------------------------------------- parameter node
    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            # the first volume the input selector offers (its node types, child classes such as label maps excluded)
            selector = getattr(self.ui, "inputSelector", None)
            nodeTypes = tuple(getattr(selector, "nodeTypes", None) or INPUT_NODE_TYPES)
            firstVolume = first_input_candidate(slicer.mrmlScene, nodeTypes)
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
        """Update what connectGui does not bind: the model list, enabled states, the buttons, the live blend."""
        parameters = self._parameterNode
        if parameters is None:
            return
        self._selectModel(parameters.model)
        self._showWeights(parameters.weightsFile)
        self.ui.noiseLevelSpinBox.enabled = not parameters.noiseLevelAuto
        self.ui.noiseLevelUnitsComboBox.enabled = not parameters.noiseLevelAuto
        custom = parameters.ctWindow is CTWindow.CUSTOM
        self.ui.windowCenterSpinBox.enabled = custom
        self.ui.windowWidthSpinBox.enabled = custom
        self.ui.wholeSequenceCheckBox.enabled = (
            parameters.inputVolume is not None and sequence_of(parameters.inputVolume) is not None
        )
        if self.logic.hasResult() and parameters.strength != self._blendedStrength:
            self._blendTimer.start()  # re-blend shortly after the slider stops moving
        self._updateButtons()

    # ------------------------------------------------------------------------------------------ models
    def populateModels(self) -> None:
        """Fill the model combo box with ``auto``, ``default``, the shipped networks and the installed baselines."""
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

    def _showWeights(self, path) -> None:
        """The weights file in its path field; the model list is off while a file is chosen, as the file is run."""
        lineEdit = self.ui.weightsPathLineEdit
        self._updatingGui = True
        try:
            if lineEdit.currentPath != path:
                lineEdit.currentPath = path
        finally:
            self._updatingGui = False
        self.ui.modelComboBox.enabled = not path
        if path:
            self.ui.modelComboBox.toolTip = _("Not used: the trained weights {path} are run (Advanced)").format(
                path=path
            )

    def onWeightsChanged(self, path=None) -> None:
        if self._updatingGui or self._parameterNode is None:
            return
        self._parameterNode.weightsFile = str(self.ui.weightsPathLineEdit.currentPath or "").strip()

    # ---------------------------------------------------------------------------------------- running
    def _isRunning(self) -> bool:
        return self._task is not None and self._task.state is TaskState.RUNNING

    def _updateButtons(self) -> None:
        running = self._isRunning()
        hasInput = self._parameterNode is not None and self._parameterNode.inputVolume is not None
        self.ui.applyButton.enabled = hasInput and not running and self._runtimeProblem is None
        self.ui.applyButton.toolTip = self._runtimeProblem or (
            _("Denoising is running")
            if running
            else _("Denoise the input volume")
            if hasInput
            else _("Select an input volume")
        )
        self.ui.cancelButton.enabled = running
        self.ui.previewButton.enabled = self.ui.applyButton.enabled
        self.ui.previewButton.toolTip = (
            _("Denoise only the slice the Red view shows, as Apply will give it, in seconds")
            if self.ui.applyButton.enabled
            else self.ui.applyButton.toolTip
        )

    def _showState(self, state, text) -> None:
        self.ui.statusLabel.text = text
        if state is TaskState.RUNNING:
            self.ui.progressBar.value = 0
        elif state is TaskState.DONE:
            self.ui.progressBar.value = 100
        self._updateButtons()

    def appendLog(self, line) -> None:
        """Show a line in the panel's log (install steps, the child's output, tracebacks, run times)."""
        self.ui.logTextEdit.appendPlainText(str(line))

    def onApplyButton(self, checked=False) -> None:
        """Check Slicer and the Python packages, then start a task with the parameter node's settings."""
        self._start(preview=False)

    def onPreviewButton(self, checked=False) -> None:
        """As Apply, for the one slice the Red view shows: what Apply will give there, in seconds."""
        self._start(preview=True)

    def _start(self, preview) -> None:
        if self._parameterNode is None or self._isRunning() or self._runtimeProblem:
            return
        self._task = None
        self.appendLog(_("--- Preview ---") if preview else _("--- Apply ---"))
        try:
            if not self.logic.ensureDependencies(logCallback=self.appendLog, idle=self._processEvents):
                self._showState(TaskState.IDLE, _("Not started: the required Python packages are not installed."))
                return
            if self.ui.modelComboBox.count <= 2:  # meddenoiselib may just have been installed: list its models
                self.populateModels()
            self.logic.releaseResult()  # the previous run's kept copies
            self._blendedStrength = self._parameterNode.strength
            extra = {}
            if preview:
                parameters = self._parameterNode
                index = self.logic.previewSliceIndex(
                    parameters.inputVolume, sliceAxis=parameters.sliceAxis.array_axis, logCallback=self.appendLog
                )
                # one slice, as Apply will compute it (of a whole sequence: the item shown), into its preview node:
                # not into the chosen output, and without Apply's residual and noise map
                extra = dict(previewSlice=index, outputVolume=None, residual=False, noiseMap=False)
            self.logic.processParameterNode(
                self._parameterNode,
                waitForCompletion=False,
                progressCallback=self.onTaskProgress,
                stateCallback=self.onTaskStateChanged,
                logCallback=self.appendLog,
                **extra,
            )
        except Exception as exc:  # invalid input or settings, or missing packages: nothing was started
            if isinstance(exc, (ValueError, RuntimeError)):
                logging.error("MedDenoise could not start: %s", exc)
            else:
                logging.exception("MedDenoise could not start")
            self.appendLog(_("Not started: {message}").format(message=exc))
            self._showState(TaskState.FAILED, _("Failed: {message}").format(message=exc))
            self._showError(str(exc))
            return
        if self._isRunning():
            self._pollTimer.start()

    def _processEvents(self) -> None:
        app = getattr(slicer, "app", None)
        if app is not None:
            app.processEvents()

    def onCancelButton(self, checked=False) -> None:
        if self._isRunning():
            self.ui.statusLabel.text = _("Cancelling...")
            self._task.cancel()

    def onPollTimer(self) -> None:
        if self._task is None:
            self._pollTimer.stop()
            return
        self._task.poll()

    def onBlendTimer(self) -> None:
        if self._parameterNode is None or not self.logic.hasResult():
            return
        self._blendedStrength = self._parameterNode.strength
        self.logic.setStrength(self._blendedStrength)

    def onTaskProgress(self, fraction, message) -> None:
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = message

    def onTaskStateChanged(self, task) -> None:
        self._task = task
        if task.state is TaskState.RUNNING:
            self._showState(task.state, task.message)
            return
        if not task.state.finished:
            return
        self._pollTimer.stop()
        if task.state is TaskState.DONE:
            name = task.output_sequence.GetName() if task.output_sequence is not None else task.output_node.GetName()
            if task.preview_slice is not None:
                text = _("Previewed slice {index} of '{input}' in '{output}' in {seconds:.1f} s.").format(
                    index=task.preview_slice, input=task.input_node.GetName(), output=name, seconds=task.seconds
                )
            else:
                text = _("Denoised '{input}' into '{output}' in {seconds:.1f} s.").format(
                    input=task.input_node.GetName(), output=name, seconds=task.seconds
                )
            if task.report_table is not None:
                self.ui.reportTableView.setMRMLTableNode(task.report_table)
            self.ui.regionTableView.visible = task.region_table is not None
            if task.region_table is not None:
                self.ui.regionTableView.setMRMLTableNode(task.region_table)
        elif task.state is TaskState.CANCELLED:
            text = _("Cancelled; the scene was not changed.")
        else:
            text = _("Failed: {message}").format(message=task.error)
        self.appendLog(text)
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
        task = logic.process(slicer.util.getNode("MRHead"), model="auto", device="cpu", residual=True)
        print(task.output_node.GetName(), task.seconds, task.report["noise_sigma_after_0_255"])
        logic.setStrength(0.7)  # re-blend with the input, no new run

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
        self._previewNodes = {}  # input node ID -> its latest preview node (reused by the next preview)

    def getParameterNode(self):
        return MedDenoiseParameterNode(super().getParameterNode())

    # ------------------------------------------------------------------------------------ dependencies
    def ensureDependencies(self, askConfirmation=True, logCallback=None, idle=None) -> bool:
        """Make torch, MONAI and an up-to-date meddenoiselib importable, asking before installing anything.

        Every step is reported to ``logCallback``. On a Slicer whose Python cannot run the library nothing is
        installed. torch comes from the PyTorch extension (the build that fits the GPU driver) and is never upgraded
        in place; meddenoiselib and its requirements come from ``pip install`` of the bundled sources under
        constraints that never downgrade anything already installed.

        Returns:
            True when everything is importable, False when the user declined an installation.

        Raises:
            RuntimeError: this Slicer is too old, torch is too old, the PyTorch extension or the bundled sources are
                missing, the installation would downgrade a package, or pip failed.
        """
        log = logCallback or (lambda line: logging.info("MedDenoise: %s", line))
        app = getattr(slicer, "app", None)
        problem = runtime_problem(sys.version_info, getattr(app, "applicationVersion", None))
        if problem:
            log(problem)
            raise RuntimeError(problem)
        log(_("Checking Python packages: torch, MONAI, meddenoiselib"))
        if torch_too_old():
            from MedDenoiseModuleLib.dependencies import installed_version

            raise RuntimeError(
                _(
                    "torch {version} is older than MedDenoise needs ({requirement}). Open the PyTorch Utils module "
                    "(PyTorch extension), install torch {requirement} there, restart Slicer and press Apply again. "
                    "MedDenoise does not replace torch itself: a torch in use cannot be upgraded in place."
                ).format(version=installed_version("torch"), requirement=TORCH_REQUIREMENT)
            )
        if missing_modules(("torch",)):
            log(_("torch is not installed: asking the PyTorch extension to install it"))
            try:
                import PyTorchUtils
            except ImportError:
                raise RuntimeError(
                    _(
                        "MedDenoise needs PyTorch: install the 'PyTorch' extension from the Extensions Manager, "
                        "restart Slicer, and press Apply again."
                    )
                ) from None
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=askConfirmation, torchVersionRequirement=TORCH_REQUIREMENT
            )
            if torch is None:
                log(_("torch installation declined"))
                return False
            log(_("Installed torch {version}").format(version=getattr(torch, "__version__", "?")))
        source = find_library_source(MODULE_DIR)
        missing = missing_modules(("monai", "meddenoiselib"))
        outdated = library_update_needed(source)
        if not missing and not outdated:
            log(_("All packages present."))
            return True
        if source is None:
            raise RuntimeError(
                _(
                    "meddenoiselib is not installed and its sources were not found beside the module; install it "
                    "with: PythonSlicer -m pip install <path to the MedDenoise repository>"
                )
            )
        reason = (
            _("missing: {names}").format(names=", ".join(missing))
            if missing
            else _("meddenoiselib {installed} is older than the bundled {packaged}").format(
                installed=outdated[0], packaged=outdated[1]
            )
        )
        plan = plan_library_install(source)
        log(_("Installation needed ({reason}).").format(reason=reason))
        if plan.blocked:
            log(plan.blocked)
            raise RuntimeError(plan.blocked)
        log(plan.summary())
        if askConfirmation and not slicer.util.confirmOkCancelDisplay(
            _(
                "MedDenoise needs Python packages ({reason}).\n\n{summary}\n\nInstall now? This can take a few minutes."
            ).format(reason=reason, summary=plan.summary())
        ):
            log(_("Installation declined."))
            return False
        self._runPip(plan, log, idle)
        importlib.invalidate_caches()
        cli_supports.cache_clear()
        stillMissing = missing_modules()
        if stillMissing:
            raise RuntimeError(
                _("Installation finished but these packages are still missing: {names}").format(
                    names=", ".join(stillMissing)
                )
            )
        if "meddenoiselib" in sys.modules or plan.restart_needed:
            log(
                _(
                    "Restart Slicer before running in-process: the previous versions stay loaded until then "
                    "(the separate-process mode uses the new ones now)."
                )
            )
        return True

    def _runPip(self, plan, log, idle) -> None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="MedDenoise-pip-") as folder:
            constraints = os.path.join(folder, "constraints.txt")
            with open(constraints, "w", encoding="utf-8") as handle:
                handle.write("\n".join(plan.constraints) + "\n")
            command = pip_install_command(self._childPython(), plan, constraints)
            log(" ".join(command))
            log(
                _("Constraints (nothing installed may be downgraded, torch stays): {count} packages").format(
                    count=len(plan.constraints)
                )
            )
            code = run_to_completion(
                self.runnerFactory(), command, env=self._childEnvironment(), on_line=log, idle=idle
            )
        if code != 0:
            raise RuntimeError(_("pip failed (exit code {code}); the log panel shows its output.").format(code=code))
        log(_("pip finished."))

    # --------------------------------------------------------------------------------------- processing
    @staticmethod
    def settingsFromParameterNode(parameterNode) -> dict:
        """``process`` keyword arguments from the parameter node."""
        window = parameterNode.ctWindow.center_width(parameterNode.windowCenter, parameterNode.windowWidth)
        modality = parameterNode.modality
        given_sd = not parameterNode.noiseLevelAuto and parameterNode.noiseLevelUnits is NoiseUnits.IMAGE
        return {
            "model": parameterNode.model,
            "weights": parameterNode.weightsFile or None,
            "noiseLevel": None if given_sd or parameterNode.noiseLevelAuto else float(parameterNode.noiseLevel),
            "noiseSD": float(parameterNode.noiseLevel) if given_sd else None,
            "device": parameterNode.device.value,
            "roiSize": int(parameterNode.roiSize),
            "overlap": float(parameterNode.overlap),
            "sliceAxis": parameterNode.sliceAxis.array_axis,
            "separateProcess": bool(parameterNode.separateProcess),
            "leaveMetalOut": bool(parameterNode.leaveMetalOut),
            "magnitudeFloor": parameterNode.magnitudeFloor.value,
            "coils": int(parameterNode.coils) or None,
            "stabilizePhotonNoise": bool(parameterNode.stabilizePhotonNoise),
            "window": window,
            "modality": None if modality is Modality.FROM_DICOM else modality.value,
            "ensemble": parameterNode.ensemble.value,
            "refine": parameterNode.refine.value,
            "mask": parameterNode.maskNode,
            "exclude": parameterNode.excludeNode,
            "measure": parameterNode.measureNode,
            "noiseSDMap": parameterNode.noiseSdMapNode,
            "estimateNoiseSDMap": bool(parameterNode.estimateNoiseSdMap),
            "wholeSequence": bool(parameterNode.wholeSequence),
            "residual": bool(parameterNode.createResidual),
            "noiseMap": bool(parameterNode.createNoiseMap),
            "strength": float(parameterNode.strength),
        }

    def processParameterNode(self, parameterNode, **kwargs):
        """``process`` with the input, output and settings held by ``parameterNode``."""
        arguments = dict(outputVolume=parameterNode.outputVolume, **self.settingsFromParameterNode(parameterNode))
        arguments.update(kwargs)  # e.g. a preview's own output and options
        return self.process(parameterNode.inputVolume, arguments.pop("outputVolume"), **arguments)

    def process(
        self,
        inputVolume,
        outputVolume=None,
        model="auto",
        noiseLevel=None,
        device="auto",
        roiSize=0,
        overlap=0.25,
        sliceAxis=None,
        separateProcess=True,
        window=None,
        modality=None,
        ensemble="auto",
        refine="auto",
        mask=None,
        wholeSequence=True,
        residual=False,
        strength=1.0,
        waitForCompletion=True,
        noiseMap=False,
        showResult=True,
        progressCallback=None,
        stateCallback=None,
        logCallback=None,
        previewSlice=None,
        measure=None,
        exclude=None,
        leaveMetalOut=True,
        noiseSD=None,
        noiseSDMap=None,
        estimateNoiseSDMap=False,
        weights=None,
        magnitudeFloor="auto",
        coils=None,
        stabilizePhotonNoise=True,
    ):
        """Denoise ``inputVolume`` into ``outputVolume`` (None: a new "<input name> denoised" volume).

        Args:
            inputVolume: a scalar, vector (colour) or diffusion-weighted volume node (a DWI is denoised gradient by
                gradient, as MR unless ``modality`` says otherwise, into a DWI node with its gradients); under a
                linear parent transform its world geometry is used and the output is created hardened (a DWI's only
                if it does not turn it); a scalar or vector volume under a non-linear one (the DICOM module's
                "Acquisition transform" of a tilted-gantry CT) is denoised on its own grid and the outputs put
                under the same transform (a segmentation as mask or regions placed through it). When it is the
                proxy node of a sequence and ``wholeSequence`` is set, every item is denoised into a new sequence
                "<sequence> denoised".
            outputVolume: the node to fill, or None to create one. It is created/changed only on success.
            model: "auto" (chosen by the library from the modality), "default", a shipped model or a baseline.
            magnitudeFloor: magnitude MR's Rician / non-central chi noise floor: "auto" (removed where the
                automatic model finds one in the air), "remove" (with any method: a Rician-corrected NLM or BM3D;
                refused where the air shows no floor), "keep" (the magnitude's mean, also with auto).
            coils: the receive coils a magnitude MR was combined from (root sum of squares) for the floor's
                removal; None reads the count from the air.
            stabilizePhotonNoise: NLM, BM3D and BM4D with the noise estimated, on X-ray and other images whose noise
                grows with the signal (photon counting), run under the generalized Anscombe transform (the library's
                default); False gives them one noise level for the whole image (``--stabilize off``).
            weights: instead of ``model``, a ``.safetensors`` file the user trained (``python -m meddenoiselib
                train``; its ``.json`` model card beside it), checked before anything starts (``--weights``).
            noiseLevel: noise sigma on the 0-255 scale of the normalized image, or None to estimate it.
            noiseSD: instead of ``noiseLevel``, the noise's standard deviation in the volume's units (HU for CT), e.g.
                the SD Segment Statistics measured in flat tissue; the library converts it to each method's scaling.
            noiseSDMap: instead of either, a scalar volume node of the noise's SD per voxel on the input's grid, in its
                units (an MR g-factor or MP-PCA noise map; one for every item of a sequence): the input is denoised
                divided by it and multiplied back (a preview takes its slice). Not for CT with its models; without one,
                ``auto`` reads a map from the image where a magnitude MR's noise floor varies across it.
            estimateNoiseSDMap: instead of ``noiseSDMap``, read a map from the input itself (``--noise-sd-map auto``),
                with any method; not with a noise level.
            roiSize: sliding-window edge in voxels; 0 uses the model's preset.
            overlap: sliding-window overlap in [0, 1).
            sliceAxis: array axis (0, 1, 2) for 2D models; None picks the largest spacing.
            separateProcess: run ``python -m meddenoiselib denoise`` in a child process (default), or the library on
                a worker thread of this process.
            window: ``(center, width)`` CT window in HU for the intensity normalization, or None.
            modality: "ct", "mr", "us", "xray", "other" for model "auto"; None reads the DICOM Modality Slicer
                stored for the input's series.
            ensemble: 1, 2, 4 or 8 geometric views averaged (networks), or "auto" (8 for a single 2D image and a CT
                series of up to 8 slices, 4 for one of up to 64 slices the CT model refines, else 1).
            refine: "auto", "on" or "off": average a network's output with its collaborative Wiener filtering
                (auto: a single 2D image with the general model, CT of up to 8 slices of 512x512 and fine magnitude MR
                of up to 512x512, 1024 slices on a CUDA GPU, larger CT and MR with a cheaper search; on: any size,
                ~2.5 s per 512x512 slice on 2 CPU cores; off: the network alone).
            mask: a segmentation or label map node; only voxels inside are denoised, the others keep their values.
            exclude: a segmentation or label map node left out of the denoising (metal, an implant): its voxels keep
                their values and do not spread into the tissue around them, which is denoised as if they were not
                there.
            leaveMetalOut: with model "auto" on CT, leave clusters at or above 2500 HU (metal) out of the denoising,
                as ``exclude`` leaves a region out (the library's default); False denoises them too.
            wholeSequence: see ``inputVolume``.
            residual: also create "<input> residual" (input minus output, float32).
            noiseMap: also create "<input> noise map": the local standard deviation of the residual in the input's
                units (HU for CT), which the strength slider scales with the residual.
            strength: blend of the input (0) and the result (1); change it later with :meth:`setStrength`.
            waitForCompletion: return only when the task has ended (scripts, tests). Otherwise the caller polls
                ``task.poll()`` (the GUI does it from a timer).
            showResult: show the output in the slice views (input as foreground at opacity 0 for comparison).
            progressCallback: ``callback(fraction, message)``.
            stateCallback: ``callback(task)`` on every state change.
            logCallback: ``callback(line)`` for the output lines of the child process or the library.
            previewSlice: denoise only this slice (0-based, along the slice axis; :meth:`previewSliceIndex` finds the
                one a slice view shows), as the run over the whole volume would give it, into a one-slice
                "<input> preview" volume placed where the slice lies (the previous preview of the same input is
                reused when ``outputVolume`` is None). Of a sequence with ``wholeSequence``: the item shown, as the
                whole sequence's run gives it. Default: the whole volume.
            measure: a segmentation (each segment a region) or label map (each value) on the input: after the run,
                each region's mean, standard deviation and SNR before and after, in the input's units, fill the table
                "<input> region noise" (``task.region_table``, ``task.regions``; a preview: its slice's regions; a
                sequence: the item shown) and follow :meth:`setStrength`; the CNR of the first two regions goes into
                the report.

        Returns:
            The :class:`DenoiseTask`; its ``output_node`` is the result once ``state`` is DONE.

        Raises:
            ValueError: invalid input volume or settings (nothing was started).
            RuntimeError: another task is running; or, with ``waitForCompletion``, the task failed.
        """
        if self.task is not None and self.task.state is TaskState.RUNNING:
            raise RuntimeError(_("A denoising task is already running."))
        check_input_node(inputVolume)
        if modality is None:
            code = dicom_modality(inputVolume)
            modality = modality_from_dicom(code)
            if code and logCallback is not None:
                logCallback(
                    _("DICOM Modality {code}: modality '{modality}' for the automatic model choice").format(
                        code=code, modality=modality
                    )
                )
            named = file_modality(inputVolume) if modality is None else None
            if named is not None:
                modality, reason = named
                if logCallback is not None:
                    logCallback(
                        _("Loaded from a file: {reason}; modality '{modality}' for the automatic model choice").format(
                            reason=reason, modality=modality
                        )
                    )
        settings = DenoiseSettings(
            model=model,
            noise_level=noiseLevel,
            noise_sd=noiseSD,
            device=device,
            roi_size=roiSize,
            overlap=overlap,
            slice_axis=sliceAxis,
            separate_process=separateProcess,
            window=window,
            modality=modality,
            ensemble=ensemble,
            refine=refine,
            leave_metal_out=leaveMetalOut,
            noise_sd_map_auto=bool(estimateNoiseSDMap),
            weights=weights or None,
            magnitude_floor=magnitudeFloor,
            coils=coils or None,
            stabilize=bool(stabilizePhotonNoise),
        )
        needed = ("meddenoiselib",) if separateProcess else ("torch", "monai", "meddenoiselib")
        missing = missing_modules(needed)
        if missing:
            raise RuntimeError(
                _(
                    "Missing Python packages: {names}. Press Apply in the MedDenoise module, or call "
                    "ensureDependencies() of this logic, to install them."
                ).format(names=", ".join(missing))
            )
        self.releaseResult()
        if previewSlice is not None and outputVolume is None:
            outputVolume = self._previewNodes.get(inputVolume.GetID())
            if outputVolume is not None and outputVolume.GetScene() is None:
                outputVolume = None  # the user deleted it

        def onStateChanged(task):
            if task.state is TaskState.DONE and previewSlice is not None:
                self._previewNodes[task.input_node.GetID()] = task.output_node
            if task.state is TaskState.DONE and showResult:
                self.showResult(task.input_node, task.output_node, fit=previewSlice is None)
            if stateCallback is not None:
                stateCallback(task)

        self.task = DenoiseTask(
            inputVolume,
            settings,
            outputVolume,
            mask_node=mask,
            whole_sequence=wholeSequence,
            residual=residual,
            noise_map=noiseMap,
            strength=strength,
            sequences_logic=self._sequencesLogic(),
            python_executable=self._childPython() if separateProcess else None,
            runner_factory=self.runnerFactory,
            env=self._childEnvironment(),
            temp_root=self.temporaryRoot or self._slicerTemporaryPath(),
            on_progress=progressCallback,
            on_state_changed=onStateChanged,
            on_log=logCallback,
            preview_slice=previewSlice,
            measure_node=measure,
            exclude_node=exclude,
            noise_sd_map_node=noiseSDMap,
        )
        self.task.start()
        if waitForCompletion:
            idle = slicer.app.processEvents if self._insideSlicer() else None
            self.task.wait(idle=idle)
            if self.task.state is TaskState.FAILED:
                raise RuntimeError(self.task.error)
        return self.task

    def hasResult(self) -> bool:
        """Whether the latest run's result can still be re-blended (see :meth:`setStrength`)."""
        return (
            self.task is not None
            and self.task.state is TaskState.DONE
            and self.task.blend is not None
            and not self.task.blend.released
        )

    def setStrength(self, strength) -> None:
        """Re-blend the latest result with its input at ``strength`` (0..1), without running again; the residual
        and noise map volumes, the report table and the region table follow."""
        if not self.hasResult():
            return
        self.task.blend.apply(float(strength))
        self.task.update_report_table()

    def releaseResult(self) -> None:
        """Drop the copies kept for :meth:`setStrength` (the nodes keep their voxels)."""
        if self.task is not None and self.task.blend is not None:
            self.task.blend.release()

    def showResult(self, inputVolume, outputVolume, fit=True) -> None:
        """Output in the background of all slice views, input in the foreground at opacity 0 (fade to compare);
        ``fit``: fit the views to the output (not for a preview's one slice, which the view already shows)."""
        if not self._insideSlicer() or outputVolume is None:
            return
        slicer.util.setSliceViewerLayers(
            background=outputVolume, foreground=inputVolume, foregroundOpacity=0.0, fit=fit
        )

    def previewSliceIndex(self, inputVolume, sliceNode=None, sliceAxis=None, logCallback=None) -> int:
        """The slice of ``inputVolume`` that ``sliceNode`` (default: the Red view's) shows, counted along the axis
        the library denoises it (``sliceAxis``: array axis 0, 1, 2, or None for the largest spacing): the
        ``previewSlice`` of :meth:`process` for that view.

        Raises:
            ValueError: there is no such view, or its centre lies outside the volume.
        """
        if sliceNode is None:
            scene = inputVolume.GetScene()
            sliceNode = scene.GetNodeByID("vtkMRMLSliceNodeRed") if scene is not None else None
            if sliceNode is None:
                raise ValueError(_("There is no Red slice view to preview."))
        matrix = slicer.util.arrayFromVTKMatrix(sliceNode.GetSliceToRAS())
        index, across = slice_index_in_view(inputVolume, matrix, sliceAxis)
        if not across and logCallback is not None:
            logCallback(
                _(
                    "The view '{view}' does not cut across the axis the volume is denoised along; the preview is "
                    "the slice through its centre along that axis (see it in the view that does)."
                ).format(view=sliceNode.GetName())
            )
        return index

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

    @staticmethod
    def _sequencesLogic():
        modules = getattr(slicer, "modules", None)
        sequences = getattr(modules, "sequences", None) if modules is not None else None
        return sequences.logic() if sequences is not None else None

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
    """Self-test run inside Slicer: a small synthetic noisy volume, both modes, geometry, noise, strength, mask and
    residual checks."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_MedDenoise_geometry_and_noise()
        self.test_MedDenoise_strength_residual_and_mask()
        self.test_MedDenoise_preview()
        self.test_MedDenoise_noise_sd()
        self.test_MedDenoise_noise_sd_map()

    def _prerequisites(self):
        missing = missing_modules()
        if missing:
            logging.warning("MedDenoise self-test skipped: %s not installed (press Apply once to install)", missing)
            self.delayDisplay(f"Skipped: {', '.join(missing)} not installed")
        return not missing

    def _phantomNode(self):
        clean, noisy, ijkToRas = syntheticPhantom()
        inputVolume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "MedDenoiseTestNoisy")
        slicer.util.updateVolumeFromArray(inputVolume, noisy)
        inputVolume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRas))
        return clean, noisy, ijkToRas, inputVolume

    @staticmethod
    def _model():
        names = [choice.name for choice in available_models()]
        return "kpn-small" if "kpn-small" in names else "default"

    def test_MedDenoise_geometry_and_noise(self):
        self.delayDisplay("Starting the MedDenoise test")
        if not self._prerequisites():
            return
        import numpy as np

        clean, noisy, ijkToRas, inputVolume = self._phantomNode()
        logic = MedDenoiseLogic()
        noisyError = float(np.sqrt(np.mean((noisy - clean) ** 2)))
        for separateProcess in (False, True):
            self.delayDisplay(f"Denoising with {self._model()}, separate process: {separateProcess}")
            task = logic.process(
                inputVolume, None, model=self._model(), device="cpu", separateProcess=separateProcess, showResult=False
            )
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
            self.assertLess(task.report["noise_sigma_after_0_255"], task.report["noise_sigma_before_0_255"])
            self.assertGreater(task.report_table.GetNumberOfRows(), 5)
        self.delayDisplay("Test passed")

    def test_MedDenoise_strength_residual_and_mask(self):
        self.delayDisplay("Strength, residual and mask")
        if not self._prerequisites():
            return
        import numpy as np

        _, noisy, ijkToRas, inputVolume = self._phantomNode()
        logic = MedDenoiseLogic()
        task = logic.process(
            inputVolume,
            None,
            model=self._model(),
            device="cpu",
            separateProcess=False,
            residual=True,
            noiseMap=True,
            showResult=False,
        )
        full = slicer.util.arrayFromVolume(task.output_node).astype(np.float64)
        residual = slicer.util.arrayFromVolume(task.residual_node)
        np.testing.assert_allclose(residual, noisy - full, atol=1e-3)  # input minus output
        noiseMap = slicer.util.arrayFromVolume(task.noise_map_node).copy()  # local SD of the residual
        self.assertGreater(float(np.median(noiseMap)), 0.0)
        self.assertLess(float(np.abs(noiseMap.mean() - residual.std()) / residual.std()), 0.5)
        logic.setStrength(0.0)  # live blend: the input itself
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(task.output_node), noisy)
        self.assertEqual(float(np.abs(slicer.util.arrayFromVolume(task.residual_node)).max()), 0.0)
        self.assertEqual(float(slicer.util.arrayFromVolume(task.noise_map_node).max()), 0.0)
        logic.setStrength(0.5)
        np.testing.assert_allclose(
            slicer.util.arrayFromVolume(task.output_node), noisy + 0.5 * (full - noisy), atol=1e-3
        )

        labels = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "MedDenoiseTestMask")
        inside = np.zeros(noisy.shape, np.uint8)
        inside[:, :, : noisy.shape[2] // 2] = 1
        slicer.util.updateVolumeFromArray(labels, inside)
        labels.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRas))
        for separateProcess in (False, True):
            task = logic.process(
                inputVolume,
                None,
                model=self._model(),
                device="cpu",
                mask=labels,
                separateProcess=separateProcess,
                showResult=False,
            )
            masked = slicer.util.arrayFromVolume(task.output_node)
            np.testing.assert_array_equal(masked[inside == 0], noisy[inside == 0])  # outside: untouched
            self.assertGreater(float(np.abs(masked[inside == 1] - noisy[inside == 1]).mean()), 1.0)

        # the noise in a region before and after, as users measure it in a painted segment
        task = logic.process(
            inputVolume,
            None,
            model=self._model(),
            device="cpu",
            measure=labels,
            separateProcess=False,
            showResult=False,
        )
        (region,) = task.regions
        denoised = slicer.util.arrayFromVolume(task.output_node).astype(np.float64)
        self.assertAlmostEqual(region["sd_before"], float(noisy[inside == 1].std(ddof=1)), places=3)
        self.assertAlmostEqual(region["sd_after"], float(denoised[inside == 1].std(ddof=1)), places=3)
        self.assertLess(region["sd_after"], region["sd_before"])
        self.assertEqual(task.region_table.GetCellText(0, 1), str(int(inside.sum())))
        self.delayDisplay("Test passed")

    def test_MedDenoise_preview(self):
        self.delayDisplay("Preview of one slice")
        if not self._prerequisites():
            return
        import numpy as np

        _, noisy, ijkToRas, inputVolume = self._phantomNode()
        logic = MedDenoiseLogic()
        options = dict(model=self._model(), device="cpu", showResult=False)
        full = logic.process(inputVolume, None, separateProcess=False, **options)
        expected = slicer.util.arrayFromVolume(full.output_node)[3].copy()
        for separateProcess in (False, True):
            task = logic.process(inputVolume, None, separateProcess=separateProcess, previewSlice=3, **options)
            self.assertIs(task.state, TaskState.DONE)
            preview = slicer.util.arrayFromVolume(task.output_node)
            self.assertEqual(preview.shape, (1, *noisy.shape[1:]))
            np.testing.assert_allclose(preview[0], expected, atol=0.5)  # what Apply gave at slice 3
            matrix = vtk.vtkMatrix4x4()
            task.output_node.GetIJKToRASMatrix(matrix)
            placed = slicer.util.arrayFromVTKMatrix(matrix)
            np.testing.assert_allclose(placed[:, 3], ijkToRas @ np.array([0.0, 0.0, 3.0, 1.0]), atol=1e-6)
        self.delayDisplay("Test passed")

    def test_MedDenoise_noise_sd(self):
        self.delayDisplay("Noise level as an SD in the volume's units")
        if not self._prerequisites():
            return
        import numpy as np

        clean, noisy, _, inputVolume = self._phantomNode()  # noise SD 60 in the volume's units
        logic = MedDenoiseLogic()
        noisyError = float(np.sqrt(np.mean((noisy - clean) ** 2)))
        errors = {}
        for sd in (60.0, 6.0):
            task = logic.process(
                inputVolume, None, model="nlm", device="cpu", noiseSD=sd, separateProcess=False, showResult=False
            )
            self.assertIs(task.state, TaskState.DONE)
            denoised = slicer.util.arrayFromVolume(task.output_node).astype(np.float64)
            errors[sd] = float(np.sqrt(np.mean((denoised - clean) ** 2)))
        self.assertLess(errors[60.0], 0.6 * noisyError, errors)  # the true SD denoises
        self.assertGreater(errors[6.0], 0.8 * noisyError, errors)  # a tenth of it leaves the noise
        self.delayDisplay("Test passed")

    def test_MedDenoise_noise_sd_map(self):
        self.delayDisplay("Noise that varies across the volume, given as a noise SD map node")
        if not self._prerequisites():
            return
        import numpy as np

        shape = (6, 64, 64)
        sigma = np.broadcast_to(np.linspace(15.0, 120.0, shape[2], dtype=np.float32), shape)
        clean, noisy, ijkToRas = syntheticPhantom(shape, sigma=sigma)
        inputVolume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "MedDenoiseTestNoisy")
        slicer.util.updateVolumeFromArray(inputVolume, noisy)
        inputVolume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRas))
        sigmaVolume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "MedDenoiseTestNoiseSD")
        slicer.util.updateVolumeFromArray(sigmaVolume, np.ascontiguousarray(sigma))
        sigmaVolume.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijkToRas))
        logic = MedDenoiseLogic()
        errors = {}
        for name, given in (("map", {"noiseSDMap": sigmaVolume}), ("one SD", {"noiseSD": float(sigma.mean())})):
            task = logic.process(
                inputVolume, None, model="nlm", device="cpu", separateProcess=False, showResult=False, **given
            )
            self.assertIs(task.state, TaskState.DONE)
            denoised = slicer.util.arrayFromVolume(task.output_node).astype(np.float64)
            errors[name] = float(np.sqrt(np.mean((denoised - clean) ** 2)))
        self.assertLess(errors["map"], 0.9 * errors["one SD"], errors)  # each part denoised at its own level
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
