"""Tier B: diffusion-weighted volume nodes (DWI) in the module, on real MRML (slicer-core) with the real library and
the real CLI child: denoised gradient by gradient as MR into a DWI node that keeps the gradients, b-values and
measurement frame; previewed in the gradient shown; measured in the gradient shown; refused under a turning
transform."""

from __future__ import annotations

import numpy as np
import pytest
import vtk
from scipy.ndimage import gaussian_filter

import slicer
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from MedDenoiseModuleLib import DenoiseSettings, DenoiseTask, TaskState, check_input_node
from MedDenoiseModuleLib.diffusion import series_from_dwi

from .conftest import node_matrix, oblique_ijk_to_ras

TIMEOUT = 180
MODES = [pytest.param(False, id="in-process"), pytest.param(True, id="child-process")]
B_VALUES = [0.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0, 1000.0]


def _clean_dwi(mr_nifti) -> np.ndarray:
    """``(k, j, i, G)``: the real head MR smoothed (a clean reference) as a b = 0 and six b = 1000 gradient volumes
    (S0 exp(-b D) with a different diffusivity per direction)."""
    head = gaussian_filter(read_volume(mr_nifti).array[8:13].astype(np.float64), 1.0)
    weights = [1.0] + [0.45 + 0.04 * g for g in range(6)]
    return np.stack([head * w for w in weights], axis=-1)


def _rician(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.rint(np.hypot(clean + rng.normal(0, sigma, clean.shape), rng.normal(0, sigma, clean.shape)))


def _dwi_node(scene, voxels: np.ndarray, matrix: np.ndarray, name: str = "dwi"):
    node = scene.AddNewNodeByClass("vtkMRMLDiffusionWeightedVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, voxels)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    node.SetNumberOfGradients(voxels.shape[-1])
    for g, b_value in enumerate(B_VALUES[: voxels.shape[-1]]):
        node.SetBValue(g, b_value)
        direction = np.zeros(3) if b_value == 0 else np.roll([0.8, 0.6, 0.0], g)
        node.SetDiffusionGradient(g, tuple(direction))
    frame = np.eye(4)
    frame[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # a scanner's measurement frame
    node.SetMeasurementFrameMatrix(slicer.util.vtkMatrixFromArray(frame))
    node.CreateDefaultDisplayNodes()
    return node


def _run(node, settings, temp_root, **kwargs) -> DenoiseTask:
    task = DenoiseTask(node, settings, temp_root=temp_root, **kwargs)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.DONE, task.error
    return task


def _measurement_frame(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetMeasurementFrameMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


@pytest.mark.parametrize("separate", MODES)
def test_a_dwi_node_is_denoised_gradient_by_gradient_as_mr_into_a_dwi_with_its_gradients(
    scene, temp_root, mr_nifti, separate
):
    """The automatic choice takes a DWI node for MR (no DICOM tag, no file), denoises every gradient's volume (the
    squared error 5x below the noisy input's), and the result is a DWI node with the input's gradients, b-values,
    measurement frame and geometry, equal in both modes to the library's run on the gradient series."""
    clean = _clean_dwi(mr_nifti)
    noisy = _rician(clean, 40.0).astype(np.int16)
    matrix = oblique_ijk_to_ras(spacing=(2.0, 2.0, 2.5))
    node = _dwi_node(scene, noisy, matrix)
    node.GetDisplayNode().SetDiffusionComponent(3)
    settings = DenoiseSettings(model="auto", separate_process=separate)
    task = _run(node, settings, temp_root, residual=True)

    output = task.output_node
    assert output.GetClassName() == "vtkMRMLDiffusionWeightedVolumeNode" and output.GetName() == "dwi denoised"
    assert task.report["modality"] == "mr" and task.notes["modality"] == "mr (a diffusion-weighted volume)"
    assert output.GetNumberOfGradients() == len(B_VALUES)
    for g in range(len(B_VALUES)):
        assert output.GetBValue(g) == node.GetBValue(g)
        assert output.GetDiffusionGradient(g) == node.GetDiffusionGradient(g)
    np.testing.assert_array_equal(_measurement_frame(output), _measurement_frame(node))
    np.testing.assert_allclose(node_matrix(output), matrix, rtol=0, atol=1e-9)
    assert output.GetDisplayNode().GetDiffusionComponent() == 3  # the gradient the input shows
    denoised = slicer.util.arrayFromVolume(output)
    assert denoised.shape == noisy.shape and denoised.dtype == noisy.dtype
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), noisy)  # the input untouched
    error = [np.mean((denoised[..., g] - clean[..., g]) ** 2) for g in range(len(B_VALUES))]
    before = [np.mean((noisy[..., g] - clean[..., g]) ** 2) for g in range(len(B_VALUES))]
    assert max(e / b for e, b in zip(error, before, strict=True)) < 0.2  # every gradient, b = 0 and b = 1000
    # the one data path: what the module shows is the library's run on the gradient series
    library = Denoiser("auto", device="cpu", modality="mr").denoise(series_from_dwi(node)).array
    np.testing.assert_allclose(denoised, np.moveaxis(library, 0, -1), rtol=0, atol=1)
    residual = slicer.util.arrayFromVolume(task.residual_node)
    np.testing.assert_allclose(residual, noisy.astype(np.float32) - denoised, atol=1e-3)
    # the strength slider re-blends all gradients of the DWI node, which keeps its gradients
    task.blend.apply(0.0)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(output), noisy)
    assert output.GetNumberOfGradients() == len(B_VALUES) and output.GetBValue(0) == 0.0


@pytest.mark.parametrize("separate", MODES)
def test_preview_of_a_dwi_is_the_shown_gradients_slice_of_the_whole_run(scene, temp_root, mr_nifti, separate):
    """The preview shows the gradient the DWI's display shows, its slice as the whole DWI's run gives it, in a
    one-slice scalar volume."""
    noisy = _rician(_clean_dwi(mr_nifti), 40.0).astype(np.int16)
    node = _dwi_node(scene, noisy, np.diag([2.0, 2.0, 2.5, 1.0]))
    node.GetDisplayNode().SetDiffusionComponent(4)
    settings = DenoiseSettings(model="kpn-burst3", separate_process=separate)
    task = _run(node, settings, temp_root, preview_slice=2)
    preview = task.output_node
    assert preview.GetClassName() == "vtkMRMLScalarVolumeNode" and preview.GetName() == "dwi preview"
    whole = Denoiser("kpn-burst3", device="cpu").denoise(series_from_dwi(node)).array
    shown = slicer.util.arrayFromVolume(preview)
    assert shown.shape == (1, *noisy.shape[1:3])
    np.testing.assert_array_equal(shown[0], whole[4, 2])
    assert task.report["preview"] == "frame 4 of 7, slice 2 of 5 along array axis 0"
    np.testing.assert_allclose(node_matrix(preview)[:3, 3], [0.0, 0.0, 5.0], atol=1e-9)


def test_regions_of_a_dwi_are_measured_in_the_gradient_shown(scene, temp_root, mr_nifti):
    """b = 0 and b = 1000 contrasts are not pooled: a region's statistics are those of the gradient shown."""
    noisy = _rician(_clean_dwi(mr_nifti), 40.0).astype(np.int16)
    matrix = np.diag([2.0, 2.0, 2.5, 1.0])
    node = _dwi_node(scene, noisy, matrix)
    node.GetDisplayNode().SetDiffusionComponent(2)
    inside = np.zeros(noisy.shape[:3], np.uint8)
    inside[:, 20:40, 20:40] = 1
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "region")
    slicer.util.updateVolumeFromArray(labels, inside)
    labels.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    settings = DenoiseSettings(model="median", noise_level=20.0, separate_process=False)
    task = _run(node, settings, temp_root, measure_node=labels)
    (region,) = task.regions
    gradient = noisy[..., 2][inside == 1]
    assert region["voxels"] == gradient.size
    assert region["mean_before"] == pytest.approx(gradient.mean(), rel=1e-9)
    assert region["sd_before"] == pytest.approx(gradient.std(ddof=1), rel=1e-9)
    after = slicer.util.arrayFromVolume(task.output_node)[..., 2][inside == 1]
    assert region["sd_after"] == pytest.approx(after.std(ddof=1), rel=1e-9)
    assert task.notes["regions measured in"] == "gradient 3 of 7 (the one shown)"


def test_a_dwi_under_a_turning_transform_is_refused_and_under_a_translation_denoised(scene, temp_root, mr_nifti):
    """Hardening a rotation turns a DWI's gradients with it; the module, which writes the world geometry, cannot, so
    it asks for the hardening. A translation moves the voxels only: the result lies where the input is shown."""
    noisy = _rician(_clean_dwi(mr_nifti), 40.0).astype(np.int16)[:2]
    node = _dwi_node(scene, noisy, np.diag([2.0, 2.0, 2.5, 1.0]))
    turn = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "turn")
    rotation = np.eye(4)
    rotation[:2, :2] = [[0.0, -1.0], [1.0, 0.0]]
    turn.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(rotation))
    node.SetAndObserveTransformNodeID(turn.GetID())
    with pytest.raises(ValueError, match="'dwi' is a diffusion-weighted volume under the transform 'turn'.*Harden"):
        check_input_node(node)
    nodes = scene.GetNumberOfNodes()
    median = DenoiseSettings(model="median", noise_level=20.0, separate_process=False)
    task = DenoiseTask(node, median, temp_root=temp_root)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.FAILED and "Harden" in task.error
    assert scene.GetNumberOfNodes() == nodes
    shift = np.eye(4)
    shift[:3, 3] = [5.0, -3.0, 12.0]
    turn.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(shift))
    task = _run(node, median, temp_root)
    expected = np.diag([2.0, 2.0, 2.5, 1.0])
    expected[:3, 3] = shift[:3, 3]
    np.testing.assert_allclose(node_matrix(task.output_node), expected, atol=1e-9)
    assert task.output_node.GetParentTransformNode() is None


def test_a_sequence_of_dwi_nodes_is_refused_whole_and_its_shown_dwi_denoised(scene, temp_root, mr_nifti):
    """A sequence whose items are DWI nodes (repeated diffusion scans) is not stacked into one series of vector
    volumes, which would lose the gradients: refused with the advice; the shown item alone is denoised as a DWI."""
    scene.RegisterNodeClass(slicer.vtkMRMLSequenceBrowserNode())
    noisy = _rician(_clean_dwi(mr_nifti), 40.0).astype(np.int16)[:2]
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "sessions")
    for index in range(2):
        sequence.SetDataNodeAtValue(_dwi_node(slicer.vtkMRMLScene(), noisy, np.eye(4), f"dwi {index}"), str(index))
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", "sessions browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    logic = slicer.vtkSlicerSequencesLogic()
    logic.SetMRMLScene(scene)
    logic.UpdateProxyNodesFromSequences(browser)
    proxy = browser.GetProxyNode(sequence)
    median = DenoiseSettings(model="median", noise_level=20.0, separate_process=False)
    task = DenoiseTask(proxy, median, temp_root=temp_root, sequences_logic=logic)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.FAILED
    assert "holds diffusion-weighted volumes" in task.error and "uncheck 'Denoise every frame'" in task.error
    task = _run(proxy, median, temp_root, whole_sequence=False, sequences_logic=logic)
    assert task.output_node.GetClassName() == "vtkMRMLDiffusionWeightedVolumeNode"
    assert task.output_node.GetNumberOfGradients() == len(B_VALUES)
