"""The module's preview (user need 9): one slice, as Apply will give it, placed where it lies; on real MRML
(slicer-core) with the real library in both modes, and the Red view's slice found on an oblique volume."""

from __future__ import annotations

import numpy as np
import pytest

import slicer
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from MedDenoiseModuleLib import DenoiseSettings, DenoiseTask, TaskState, slice_index_in_view, volume_from_node

from .conftest import add_volume_node, node_matrix, oblique_ijk_to_ras

TIMEOUT = 180
MODES = [pytest.param(False, id="in-process"), pytest.param(True, id="child-process")]


@pytest.fixture(scope="module")
def chest(ct_series_dir):
    """The sample chest CT's central 256x256 pixels (4 slices, 2 mm, int16 HU) and the full run's output."""
    volume = read_volume(ct_series_dir).slab(1, 128, 384).slab(2, 128, 384)
    volume = volume.with_array(np.ascontiguousarray(volume.array))
    return volume, Denoiser("auto").denoise(volume).array


@pytest.mark.parametrize("separate", MODES)
def test_preview_is_apply_s_slice_in_a_reused_preview_node(scene, temp_root, chest, separate):
    volume, full = chest
    node = add_volume_node(scene, volume.array, volume.ijk_to_ras(), name="chest")
    settings = DenoiseSettings(model="auto", modality="ct", separate_process=separate)
    task = DenoiseTask(node, settings, temp_root=temp_root, preview_slice=1)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.DONE, task.error
    preview = task.output_node
    assert preview.GetName() == "chest preview"
    voxels = slicer.util.arrayFromVolume(preview)
    assert voxels.shape == (1, 256, 256) and voxels.dtype == np.int16
    np.testing.assert_array_equal(voxels[0], full[1])  # what Apply gives at that slice
    np.testing.assert_allclose(node_matrix(preview), volume.slab(0, 1, 2).ijk_to_ras(), atol=1e-6)  # 2 mm up
    assert task.report["noise_before_hu"] > 2 * task.report["noise_after_hu"]
    assert task.report_table.GetName() == "chest preview report"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), volume.array)  # the input is untouched

    task.blend.apply(0.5)  # the strength slider works on the preview too
    half = volume.array[1] + 0.5 * (full[1].astype(np.float32) - volume.array[1])
    np.testing.assert_allclose(slicer.util.arrayFromVolume(preview)[0], np.round(half), atol=1)

    again = DenoiseTask(node, settings, preview, temp_root=temp_root, preview_slice=2)
    assert again.start().wait(timeout=TIMEOUT) is TaskState.DONE, again.error
    assert again.output_node is preview and again.report_table is task.report_table  # refilled, not added
    assert np.abs(slicer.util.arrayFromVolume(preview)[0].astype(np.float32) - full[2]).max() <= 3
    assert scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems() == 1
    assert not any(temp_root.iterdir())


def test_preview_refuses_a_slice_outside_the_volume(scene, temp_root, chest):
    volume, _ = chest
    node = add_volume_node(scene, volume.array, volume.ijk_to_ras(), name="chest")
    task = DenoiseTask(node, DenoiseSettings(model="median"), temp_root=temp_root, preview_slice=4)
    assert task.start().state is TaskState.FAILED
    assert task.error == "slice 4 is outside the volume: it has 4 slices along array axis 0 (the slice axis), 0 to 3"
    assert scene.GetNumberOfNodes() == 2  # the input and its display node: nothing added


def test_the_slice_a_view_shows_counted_along_the_denoising_axis(scene):
    # oblique, anisotropic: 0.7 x 1.3 x 2.5 mm, so the library denoises along k (array axis 0)
    matrix = oblique_ijk_to_ras()
    node = add_volume_node(scene, np.zeros((9, 20, 24), np.int16), matrix)
    geometry = volume_from_node(node)
    for k in (0, 4, 8):
        centre = matrix @ np.array([10.0, 7.0, k + 0.3, 1.0])  # within slice k, off the voxel centre
        view = np.eye(4)
        view[:3, 2] = matrix[:3, 2] / np.linalg.norm(matrix[:3, 2])  # a view across k
        view[:3, 3] = centre[:3]
        assert slice_index_in_view(node, view, None) == (k, True)
        assert Denoiser("median").slice_axis_for(geometry) == 0
    # a view of another orientation still names the slice through its centre, and says it does not cut across
    view = np.eye(4)
    view[:3, 3] = (matrix @ np.array([10.0, 7.0, 4.0, 1.0]))[:3]
    assert slice_index_in_view(node, view, None) == (4, False)
    # the module's slice axis counts along j instead
    view[:3, 3] = (matrix @ np.array([10.0, 12.0, 4.0, 1.0]))[:3]
    assert slice_index_in_view(node, view, 1)[0] == 12
    view[:3, 3] = (matrix @ np.array([10.0, 7.0, 9.6, 1.0]))[:3]
    with pytest.raises(ValueError, match="outside 'input' \\(9 slices"):
        slice_index_in_view(node, view, None)
