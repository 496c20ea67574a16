"""A CT under a non-linear parent transform, on real MRML (slicer-core): what Slicer's DICOM module makes of a
series taken on a tilted gantry (its "Acquisition transform", a grid transform that moves each slice within its
plane). The module denoises the voxels on their own grid, as acquired, and puts the results under the same
transform, where hardening first would resample them, and their noise, and the module used to refuse them.

Tier B: the scene, the volume, grid transform and table nodes are real MRML; the CLI runs in a child process.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import vtk
from vtk.util import numpy_support

import slicer
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import Volume
from MedDenoiseModuleLib import DenoiseSettings, DenoiseTask, TaskState
from MedDenoiseModuleLib.masks import labels_on_input_grid
from MedDenoiseModuleLib.volumes import check_input_node, grid_of_node, slice_index_in_view, volume_from_node

from .conftest import add_volume_node, node_matrix

TILT = math.radians(20.0)
SLICES, STEP_MM, PIXEL_MM = 6, 2.5, 0.7
#: the node's own grid as Slicer's DICOM module builds it: axial LPS->RAS, the slices stacked along their normal
LOCAL = np.diag([-PIXEL_MM, -PIXEL_MM, STEP_MM, 1.0])
LOCAL[:3, 3] = (40.0, 50.0, 100.0)


def _acquisition_transform(scene, lift_mm: float = 0.0):
    """A grid transform moving each plane z = c by (c - 100 mm) tan(20 degrees) along A, as the DICOM module's
    acquisition transform moves a tilted gantry's slices (and by ``lift_mm`` along S)."""
    grid = vtk.vtkImageData()
    grid.SetOrigin(-60.0, -60.0, 90.0)
    grid.SetSpacing(60.0, 60.0, 5.0)
    grid.SetDimensions(4, 4, 8)
    grid.AllocateScalars(vtk.VTK_DOUBLE, 3)
    displacement = numpy_support.vtk_to_numpy(grid.GetPointData().GetScalars())
    z = 90.0 + 5.0 * (np.arange(4 * 4 * 8) // 16)  # VTK point order: x fastest, then y, then z
    displacement[:] = 0.0
    displacement[:, 1] = (z - 100.0) * math.tan(TILT)
    displacement[:, 2] = lift_mm
    transform = slicer.vtkOrientedGridTransform()
    transform.SetDisplacementGridData(grid)
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "Acquisition transform")
    node.SetAndObserveTransformToParent(transform)
    return node


@pytest.fixture()
def tilted_ct(scene, ct_crop):
    """A 6-slice int16 HU CT node (the real chest crop, shifted from slice to slice) under the acquisition
    transform, with noise of 25 HU."""
    hu = ct_crop.astype(np.float64) * 1400.0 - 1000.0
    clean = np.stack([np.roll(hu, (k, k // 2), axis=(0, 1)) for k in range(SLICES)])
    noisy = np.rint(clean + np.random.default_rng(11).normal(0.0, 25.0, clean.shape)).astype(np.int16)
    node = add_volume_node(scene, noisy, LOCAL, name="head CT")
    node.SetAttribute("DICOM.Modality", "CT")
    transform = _acquisition_transform(scene)
    node.SetAndObserveTransformNodeID(transform.GetID())
    return node, transform, noisy


def test_a_volume_under_a_warp_is_taken_on_its_own_grid(tilted_ct):
    node, transform, noisy = tilted_ct
    check_input_node(node)  # no longer refused
    matrix, transform_id = grid_of_node(node)
    assert transform_id == transform.GetID()
    np.testing.assert_allclose(matrix, LOCAL)
    volume = volume_from_node(node)
    np.testing.assert_array_equal(volume.array, noisy)
    np.testing.assert_allclose(volume.ijk_to_ras(), LOCAL, atol=1e-12)


def test_apply_denoises_the_acquired_voxels_and_puts_the_results_under_the_same_transform(tilted_ct, temp_root):
    """The child process (the CLI, as Slicer runs it) on the node's own grid: the output and residual under the
    acquisition transform, with the input's matrix, the voxels the library's denoising of that grid; the input
    untouched."""
    node, transform, noisy = tilted_ct
    settings = DenoiseSettings(model="median", device="cpu")
    task = DenoiseTask(node, settings, temp_root=temp_root, residual=True)
    assert task.start().wait(timeout=180) is TaskState.DONE, task.error
    output, residual = task.output_node, task.residual_node
    for result in (output, residual):
        assert result.GetTransformNodeID() == transform.GetID()
        np.testing.assert_allclose(node_matrix(result), LOCAL, atol=1e-9)
    expected = Denoiser("median").denoise(Volume.from_ijk_to_ras(noisy, LOCAL)).array
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(output), expected)
    np.testing.assert_allclose(slicer.util.arrayFromVolume(residual), noisy - expected.astype(np.float32), atol=1e-3)
    assert any("under the non-linear transform 'Acquisition transform'" in line for line in task.log)
    assert node.GetTransformNodeID() == transform.GetID()
    np.testing.assert_allclose(node_matrix(node), LOCAL)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), noisy)


def _voxel_points(node, transform) -> tuple[np.ndarray, np.ndarray]:
    """``(K, J, I, 3)`` twice: each voxel centre of ``node`` by its own matrix, and where the acquisition transform
    shows it (world RAS mm)."""
    k, j, i = np.indices(tuple(reversed(node.GetImageData().GetDimensions())))
    local = (LOCAL @ np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)]))[:3].T
    to_world = vtk.vtkGeneralTransform()
    transform.GetTransformToWorld(to_world)
    world = np.array([to_world.TransformPoint(*point) for point in local])
    return local.reshape(*k.shape, 3), world.reshape(*k.shape, 3)


def _world_box(scene, low, high):
    """A segmentation drawn in world space (no transform), as the Segment Editor stores one: a box from ``low`` to
    ``high`` (RAS mm) painted on a 0.5 mm grid."""
    spacing, origin = 0.5, np.array([-10.0, -10.0, 95.0])
    k, j, i = np.indices((60, 120, 120))
    points = origin + spacing * np.stack([i, j, k], axis=-1)
    inside = np.all((points > low) & (points < high), axis=-1)
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "painted")
    slicer.util.updateVolumeFromArray(labels, inside.astype(np.uint8))
    matrix = np.diag([spacing, spacing, spacing, 1.0])
    matrix[:3, 3] = origin
    labels.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "lesion")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(labels)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels, segmentation)
    scene.RemoveNode(labels)
    return segmentation


def test_a_segmentation_in_world_space_masks_a_volume_under_a_warp_where_it_is_shown(
    tilted_ct, temp_root, scene, segmentation_converters
):
    """A box drawn in world space over the tilted CT: Slicer's export places it on the node's own grid through the
    transform (the voxels the transform shows inside the box, but for boundary voxels; placed by the node's own
    matrix, 15 % of them would be wrong here, the tilt moving slice k by 0.91 k mm along A); Apply (CLI child)
    denoises those voxels only and measures the noise there."""
    node, transform, noisy = tilted_ct
    low, high = np.array([5.0, 15.0, 98.0]), np.array([25.0, 35.0, 110.0])
    segmentation = _world_box(scene, low, high)
    local, world = _voxel_points(node, transform)
    shown_inside = np.all((world > low) & (world < high), axis=-1)
    unwarped_inside = np.all((local > low) & (local < high), axis=-1)
    mask = labels_on_input_grid(segmentation, node) != 0
    # boundary voxels only (measured 28 of 3164); the node's own matrix alone would misplace 476
    assert (mask != shown_inside).sum() < 0.02 * shown_inside.sum()
    assert (unwarped_inside != shown_inside).sum() > 0.1 * shown_inside.sum()
    settings = DenoiseSettings(model="median", device="cpu")
    task = DenoiseTask(node, settings, temp_root=temp_root, mask_node=segmentation, measure_node=segmentation)
    assert task.start().wait(timeout=180) is TaskState.DONE, task.error
    expected = Denoiser("median").denoise(Volume.from_ijk_to_ras(noisy, LOCAL), mask=mask).array
    result = slicer.util.arrayFromVolume(task.output_node)
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(result[~mask], noisy[~mask])
    assert task.output_node.GetTransformNodeID() == transform.GetID()
    (region,) = task.regions
    assert region["voxels"] == int(mask.sum())
    assert region["sd_before"] == pytest.approx(noisy[mask].std(ddof=1), rel=1e-9)
    assert region["sd_after"] == pytest.approx(expected[mask].std(ddof=1), rel=1e-9)


def test_a_label_map_on_a_volume_under_a_warp_must_be_under_the_same_transform(tilted_ct, temp_root, scene):
    """A label map on the node's own grid: accepted under the acquisition transform (its voxels are the mask as
    they are), refused outside it (the same IJK->RAS then means another place), with what to do."""
    node, transform, noisy = tilted_ct
    inside = np.zeros(noisy.shape, bool)
    inside[1:5, 20:90, 30:100] = True
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "body")
    slicer.util.updateVolumeFromArray(labels, inside.astype(np.uint8))
    labels.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(LOCAL))
    before = scene.GetNumberOfNodes()
    task = DenoiseTask(node, DenoiseSettings(model="median"), temp_root=temp_root, mask_node=labels)
    assert task.start().state is TaskState.FAILED
    assert (
        "The label map 'body' is not under the non-linear transform 'Acquisition transform' that 'head CT' is under"
        in task.error
    )
    assert scene.GetNumberOfNodes() == before

    labels.SetAndObserveTransformNodeID(transform.GetID())
    settings = DenoiseSettings(model="median", device="cpu")
    task = DenoiseTask(node, settings, temp_root=temp_root, mask_node=labels)
    assert task.start().wait(timeout=180) is TaskState.DONE, task.error
    expected = Denoiser("median").denoise(Volume.from_ijk_to_ras(noisy, LOCAL), mask=inside).array
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(task.output_node), expected)
    np.testing.assert_array_equal(expected[~inside], noisy[~inside])


@pytest.mark.parametrize("lift_mm", [0.0, 5.0])
def test_the_view_s_slice_is_found_through_the_transform(tilted_ct, scene, lift_mm):
    """A slice view placed on slice k where the transform shows it (its centre moved along A by the tilt, and
    along S by ``lift_mm``: two slices, which the node's own matrix alone would count) counts slice k and cuts
    across the slices: the planes z = c stay planes under the shift."""
    node, _, _ = tilted_ct
    transform = _acquisition_transform(scene, lift_mm)
    node.SetAndObserveTransformNodeID(transform.GetID())
    to_world = vtk.vtkGeneralTransform()
    transform.GetTransformToWorld(to_world)
    for k in range(SLICES):
        centre_local = LOCAL @ [64.0, 64.0, k, 1.0]
        view = np.eye(4)
        view[:3, 3] = to_world.TransformPoint(*centre_local[:3])
        assert slice_index_in_view(node, view) == (k, True)
        assert view[1, 3] - centre_local[1] == pytest.approx((centre_local[2] - 100.0) * math.tan(TILT))
        assert view[2, 3] - centre_local[2] == pytest.approx(lift_mm)


def test_a_preview_of_a_volume_under_a_warp_is_its_slice_under_the_same_transform(tilted_ct, temp_root):
    """The preview of slice 2 (in process): Apply's slice 2, on the node's own grid moved to that slice, under the
    acquisition transform."""
    node, transform, noisy = tilted_ct
    settings = DenoiseSettings(model="median", device="cpu", separate_process=False)
    task = DenoiseTask(node, settings, temp_root=temp_root, preview_slice=2)
    assert task.start().wait(timeout=120) is TaskState.DONE, task.error
    preview = task.output_node
    assert preview.GetTransformNodeID() == transform.GetID()
    expected = Denoiser("median").denoise(Volume.from_ijk_to_ras(noisy, LOCAL)).array[2]
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(preview)[0], expected)
    np.testing.assert_allclose(node_matrix(preview), LOCAL @ [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2], [0, 0, 0, 1]])
