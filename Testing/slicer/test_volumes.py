"""Volume node <-> Volume and the temporary NRRD, on real MRML (slicer-core): voxels and IJK->RAS are kept.

Tier B: every node, storage node and transform here is the real MRML class; nothing is faked.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import vtk

import slicer
from meddenoiselib.io import read_volume
from MedDenoiseModuleLib import DenoiseSettings, DenoiseTask, TaskState
from MedDenoiseModuleLib.volumes import (
    check_input_node,
    read_volume_file,
    update_node_from_volume,
    volume_from_node,
    world_ijk_to_ras,
    write_volume_file,
)

from .conftest import add_volume_node, node_matrix, oblique_ijk_to_ras

# (dtype, shape (k, j, i)): odd sizes, so a swapped axis cannot go unnoticed
CASES = [(np.int16, (5, 7, 9)), (np.float32, (4, 6, 11)), (np.uint8, (3, 8, 5))]


def _voxels(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -2000), min(info.max, 3000), size=shape, endpoint=True).astype(dtype)
    return rng.normal(100.0, 30.0, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype, shape", CASES)
def test_node_to_volume_and_back_keeps_voxels_and_geometry(scene, dtype, shape):
    array = _voxels(dtype, shape)
    matrix = oblique_ijk_to_ras()
    node = add_volume_node(scene, array, matrix)

    volume = volume_from_node(node)
    assert volume.array.dtype == dtype and volume.shape == shape
    np.testing.assert_array_equal(volume.array, array)
    np.testing.assert_allclose(volume.ijk_to_ras(), matrix, rtol=0, atol=1e-12)
    # voxel [k, j, i] of the Volume is voxel (i, j, k) of the node: check one off-diagonal voxel explicitly
    k, j, i = 1, 2, 3
    assert volume.array[k, j, i] == node.GetImageData().GetScalarComponentAsDouble(i, j, k, 0)

    other = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "back")
    update_node_from_volume(other, volume)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(other), array)
    assert slicer.util.arrayFromVolume(other).dtype == dtype
    np.testing.assert_allclose(node_matrix(other), matrix, rtol=0, atol=1e-12)


def test_volume_is_a_copy_not_a_view_of_the_node(scene):
    array = _voxels(np.int16, (3, 4, 5))
    node = add_volume_node(scene, array, oblique_ijk_to_ras())
    volume = volume_from_node(node)
    slicer.util.arrayFromVolume(node)[:] = 0
    np.testing.assert_array_equal(volume.array, array)


@pytest.mark.parametrize("dtype, shape", CASES)
def test_temporary_nrrd_keeps_voxels_and_geometry(scene, tmp_path, dtype, shape):
    """The file the child process reads: Slicer's own NRRD reader and the library's reader both get the node back."""
    array = _voxels(dtype, shape, seed=1)
    matrix = oblique_ijk_to_ras(spacing=(0.45, 1.9, 3.0), origin=(-120.0, 88.5, -0.75))
    node = add_volume_node(scene, array, matrix)
    path = tmp_path / "input.nrrd"
    write_volume_file(volume_from_node(node), path)

    header = path.read_bytes().split(b"\n\n", 1)[0].decode("ascii", "replace")
    assert "space: left-posterior-superior" in header

    # Slicer's reader (real vtkMRMLVolumeArchetypeStorageNode)
    loaded = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "loaded")
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(loaded)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(loaded), array)
    np.testing.assert_allclose(node_matrix(loaded), matrix, rtol=0, atol=1e-9)

    # the library's reader (what the CLI and the task's result import use)
    for volume in (read_volume(path), read_volume_file(path)):
        np.testing.assert_array_equal(volume.array, array)
        np.testing.assert_allclose(volume.ijk_to_ras(), matrix, rtol=0, atol=1e-9)


def test_result_file_from_slicer_writer_reads_back_into_node(scene, tmp_path):
    """Reverse direction: a NRRD written by Slicer's storage node becomes a node with the same geometry."""
    array = _voxels(np.int16, (4, 5, 6), seed=2)
    matrix = oblique_ijk_to_ras(angles_deg=(-10.0, 60.0, 5.0))
    node = add_volume_node(scene, array, matrix)
    path = tmp_path / "slicer.nrrd"
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    storage.UseCompressionOff()
    assert storage.WriteData(node)
    target = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "target")
    update_node_from_volume(target, read_volume_file(path))
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(target), array)
    np.testing.assert_allclose(node_matrix(target), matrix, rtol=0, atol=1e-9)


def _linear_transform(scene, matrix):
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "moved")
    transform.SetMatrixTransformToParent(slicer.util.vtkMatrixFromArray(matrix))
    return transform


def test_linear_parent_transform_gives_the_hardened_geometry(scene):
    matrix = oblique_ijk_to_ras()
    node = add_volume_node(scene, _voxels(np.int16, (3, 4, 5)), matrix)
    rigid = oblique_ijk_to_ras(spacing=(1.0, 1.0, 1.0), origin=(5.0, -7.0, 2.5), angles_deg=(0.0, 15.0, -30.0))
    node.SetAndObserveTransformNodeID(_linear_transform(scene, rigid).GetID())

    hardened = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "hardened")
    hardened.Copy(node)
    hardened.SetAndObserveTransformNodeID(node.GetTransformNodeID())
    hardened.HardenTransform()  # what Slicer itself does
    expected = node_matrix(hardened)

    np.testing.assert_allclose(world_ijk_to_ras(node), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(volume_from_node(node).ijk_to_ras(), expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(node_matrix(node), matrix, rtol=0, atol=0)  # the input node is untouched
    assert node.GetParentTransformNode() is not None

    output = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "output")
    output.SetAndObserveTransformNodeID(node.GetTransformNodeID())
    update_node_from_volume(output, volume_from_node(node))
    assert output.GetParentTransformNode() is None  # the output is created hardened
    np.testing.assert_allclose(node_matrix(output), expected, rtol=0, atol=1e-9)


def test_non_linear_and_shearing_transforms_are_refused(scene):
    """A world grid under a non-linear transform does not exist (masks, DWI, sequences need one; a scalar volume is
    denoised on its own grid instead: test_module_acquisition_transform.py), nor under a shearing one."""
    node = add_volume_node(scene, _voxels(np.int16, (3, 4, 5)), oblique_ijk_to_ras())
    grid = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "warp")
    node.SetAndObserveTransformNodeID(grid.GetID())
    with pytest.raises(ValueError, match="non-linear transform 'warp'"):
        world_ijk_to_ras(node)
    check_input_node(node)

    shear = np.eye(4)
    shear[0, 1] = 0.4
    node.SetAndObserveTransformNodeID(_linear_transform(scene, shear).GetID())
    with pytest.raises(ValueError, match="shears"):
        volume_from_node(node)


def test_unsupported_nodes_are_refused_with_a_message(scene):
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    slicer.util.updateVolumeFromArray(labels, np.zeros((2, 3, 4), np.uint8))
    with pytest.raises(
        ValueError, match="'labels' is a label map: its voxels are label values.*use the label map as the mask instead"
    ):
        check_input_node(labels)
    tensors = scene.AddNewNodeByClass("vtkMRMLDiffusionTensorVolumeNode", "tensors")
    with pytest.raises(ValueError, match="'tensors' is a tensor volume; only image volumes can be denoised"):
        check_input_node(tensors)
    empty = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty")
    with pytest.raises(ValueError, match="has no voxels"):
        check_input_node(empty)
    with pytest.raises(ValueError, match="No input volume"):
        check_input_node(None)


def test_a_dwi_saved_by_slicer_is_denoised_by_the_cli_as_mr_and_loads_back_with_gradients(scene, tmp_path, mr_nifti):
    """A DWI saved from Slicer goes through the command line too: the NRRD Slicer writes for it (gradients on a list
    axis, DWMRI keys) is read by the CLI as MR from its header, denoised gradient by gradient, and written with the
    same header, which Slicer's NRRD storage reads back as a DWI node with the same gradients and b-values."""
    import json

    from scipy.ndimage import gaussian_filter

    from meddenoiselib.cli import main

    head = gaussian_filter(read_volume(mr_nifti).array[8:13].astype(np.float64), 1.0)  # smooth: a clean reference
    weights = [1.0] + [0.45 + 0.02 * g for g in range(6)]  # b = 0, then six b = 1000 gradients
    clean = np.stack([head * w for w in weights], axis=-1)
    rng = np.random.default_rng(0)
    voxels = np.rint(np.hypot(clean + rng.normal(0, 40, clean.shape), rng.normal(0, 40, clean.shape)))  # Rician
    voxels = voxels.astype(np.int16)
    dwi = scene.AddNewNodeByClass("vtkMRMLDiffusionWeightedVolumeNode", "dwi")
    slicer.util.updateVolumeFromArray(dwi, voxels)
    dwi.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.diag([2.0, 2.0, 2.5, 1.0])))
    dwi.SetNumberOfGradients(len(weights))
    for g in range(len(weights)):
        dwi.SetBValue(g, 0.0 if g == 0 else 1000.0)
        dwi.SetDiffusionGradient(g, (0.0, 0.0, 0.0) if g == 0 else tuple(np.roll([1.0, 0.0, 0.0], g % 3)))
    storage = scene.AddNewNodeByClass("vtkMRMLNRRDStorageNode")
    storage.SetFileName(str(tmp_path / "dwi.nrrd"))
    assert storage.WriteData(dwi)
    report = tmp_path / "qa.json"
    out = tmp_path / "dwi_denoised.nrrd"
    assert main(["denoise", str(tmp_path / "dwi.nrrd"), str(out), "--report", str(report), "--quiet"]) == 0
    assert json.loads(report.read_text())["modality"] == "mr"
    loaded = scene.AddNewNodeByClass("vtkMRMLDiffusionWeightedVolumeNode", "loaded")
    reader = scene.AddNewNodeByClass("vtkMRMLNRRDStorageNode")
    reader.SetFileName(str(out))
    assert reader.ReadData(loaded)
    assert loaded.GetNumberOfGradients() == len(weights)
    for g in range(len(weights)):
        assert loaded.GetBValue(g) == dwi.GetBValue(g)
        assert loaded.GetDiffusionGradient(g) == dwi.GetDiffusionGradient(g)
    assert np.allclose(node_matrix(loaded), node_matrix(dwi))
    denoised = slicer.util.arrayFromVolume(loaded).astype(np.float64)
    assert denoised.shape == voxels.shape
    # every gradient denoised: the squared error 10x below the noisy file's (its Rician floor removed as MR's)
    assert np.mean((denoised - clean) ** 2) < 0.2 * np.mean((voxels - clean) ** 2)


def test_in_process_task_fills_a_new_node_with_the_input_geometry(scene, temp_root):
    """In-process path with the fast median baseline: the result node has the input's world geometry."""
    array = _voxels(np.float32, (3, 20, 24), seed=3)
    matrix = oblique_ijk_to_ras()
    node = add_volume_node(scene, array, matrix, name="noisy scan")
    rigid = oblique_ijk_to_ras(spacing=(1.0, 1.0, 1.0), origin=(1.0, 2.0, 3.0), angles_deg=(5.0, 0.0, 10.0))
    node.SetAndObserveTransformNodeID(_linear_transform(scene, rigid).GetID())
    expected = world_ijk_to_ras(node)
    states = []
    task = DenoiseTask(
        node,
        DenoiseSettings(model="median", device="cpu", separate_process=False),
        temp_root=temp_root,
        on_state_changed=lambda t: states.append(t.state),
    )
    assert task.start().wait(timeout=120) is TaskState.DONE, task.error
    assert states == [TaskState.RUNNING, TaskState.DONE]
    output = task.output_node
    assert output.GetName() == "noisy scan denoised" and output.GetScene() is scene
    assert output.GetParentTransformNode() is None
    np.testing.assert_allclose(node_matrix(output), expected, rtol=0, atol=1e-12)
    assert slicer.util.arrayFromVolume(output).shape == array.shape
    assert output.GetDisplayNode() is not None
    assert list(temp_root.iterdir()) == []


def test_in_process_failure_leaves_the_scene_unchanged(scene, temp_root):
    node = add_volume_node(scene, _voxels(np.int16, (2, 8, 8)), oblique_ijk_to_ras())
    before = scene.GetNumberOfNodes()
    task = DenoiseTask(node, DenoiseSettings(model="no-such-model", separate_process=False), temp_root=temp_root)
    assert task.start().wait(timeout=120) is TaskState.FAILED
    assert "unknown model 'no-such-model'" in task.error
    assert task.output_node is None and scene.GetNumberOfNodes() == before


def test_in_process_run_leaves_the_main_thread_free_and_cancels_at_once(scene, temp_root):
    """In-process work runs on a worker thread: ``start`` returns while it runs, progress arrives through ``poll``,
    and ``cancel`` returns at once; the worker stops at its next slice and nothing reaches the scene."""
    node = add_volume_node(scene, _voxels(np.float32, (60, 96, 96)), oblique_ijk_to_ras())
    before = scene.GetNumberOfNodes()
    progress = []
    task = DenoiseTask(
        node,
        DenoiseSettings(model="nlm", noise_level=20.0, separate_process=False),
        temp_root=temp_root,
        on_progress=lambda f, m: progress.append((f, m)),
    )
    began = time.monotonic()
    task.start()
    assert time.monotonic() - began < 1.0 and task.state is TaskState.RUNNING
    deadline = time.monotonic() + 120
    while not any(0 < f < 1 and m == "denoising" for f, m in progress) and time.monotonic() < deadline:
        assert task.poll() is TaskState.RUNNING, task.error
        time.sleep(0.01)
    assert task._thread.is_alive()
    began = time.monotonic()
    task.cancel()
    assert time.monotonic() - began < 1.0 and task.state is TaskState.CANCELLED
    task._thread.join(timeout=30)
    assert not task._thread.is_alive()
    assert max(f for f, _ in progress) < 1.0 and task.output_node is None and scene.GetNumberOfNodes() == before
    assert task.poll() is TaskState.CANCELLED  # the worker's late end changes nothing


def test_given_output_node_is_filled_in_place(scene, temp_root):
    node = add_volume_node(scene, _voxels(np.int16, (2, 8, 8)), oblique_ijk_to_ras())
    output = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "mine")
    before = scene.GetNumberOfNodes()
    task = DenoiseTask(node, DenoiseSettings(model="median", separate_process=False), output, temp_root=temp_root)
    assert task.start().wait(timeout=120) is TaskState.DONE, task.error
    # + its display node and the report table
    assert task.output_node is output and scene.GetNumberOfNodes() == before + 2
    np.testing.assert_allclose(node_matrix(output), oblique_ijk_to_ras(), rtol=0, atol=1e-12)


def test_vtk_matrix_helpers_round_trip():
    """The slicer.util matrix helpers the conversion relies on are exact."""
    matrix = oblique_ijk_to_ras()
    back = vtk.vtkMatrix4x4()
    back.DeepCopy(slicer.util.vtkMatrixFromArray(matrix))
    np.testing.assert_array_equal(slicer.util.arrayFromVTKMatrix(back), matrix)
