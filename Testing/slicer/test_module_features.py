"""Tier B: the module's features on real MRML (slicer-core) with the real library and the real CLI child.

Colour (vector) volumes, masks from segmentations and label maps, whole sequences (real ``vtkMRMLSequenceNode``,
``vtkMRMLSequenceBrowserNode`` and Sequences logic), the live strength blend and residual, the QA report table,
model release after an in-process run, the DICOM modality from the subject hierarchy, and the Sample Data files.

Two things Slicer's application does at startup are done here by the fixtures with the same real classes: the
Sequences module registers ``vtkMRMLSequenceBrowserNode`` with the scene, and the Segmentations module registers
the segmentation converter rules. Nothing is faked except, in the Sample Data test, the SampleData module itself
(see that test's docstring).
"""

from __future__ import annotations

import gc
import hashlib
import types
import urllib.request
import weakref

import numpy as np
import pytest
import vtk
from scipy import ndimage

import slicer
from meddenoiselib.blend import blend
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from meddenoiselib.noise_map import local_noise_sd
from MedDenoiseModuleLib import DenoiseSettings, DenoiseTask, TaskState, first_input_candidate, mask_volume
from MedDenoiseModuleLib.sampledata import CHEST_CT_FILES, SAMPLE_NAME, chest_ct_folder, register_chest_ct
from MedDenoiseModuleLib.sequences import sequence_of, series_from_sequence
from MedDenoiseModuleLib.settings import modality_from_dicom
from MedDenoiseModuleLib.volumes import dicom_modality, volume_from_node

from .conftest import MODULE_DIR, add_volume_node, node_matrix, oblique_ijk_to_ras

pytestmark = pytest.mark.usefixtures("segmentation_converters")

TIMEOUT = 180
MODES = [pytest.param(False, id="in-process"), pytest.param(True, id="child-process")]
SIGMA = 20.0  # noise level given to the median filter (0-255 scale): no estimate, so results compare exactly


@pytest.fixture()
def sequence_scene(scene):
    """A scene in which sequence browsers can be created (the Sequences module registers the class in Slicer)."""
    scene.RegisterNodeClass(slicer.vtkMRMLSequenceBrowserNode())
    return scene


def _noisy_mr_frames(mr_nifti, count=3, seed=0) -> np.ndarray:
    """``count`` int16 frames (4 slices each) of the real head MR with seeded noise, the MR a little brighter each
    frame (a perfusion-like series)."""
    mr = read_volume(mr_nifti).array[8:12].astype(np.float64)
    rng = np.random.default_rng(seed)
    return np.stack([np.rint(mr * (1 + 0.1 * t) + rng.normal(0, 40, mr.shape)) for t in range(count)]).astype(np.int16)


def _labels(scene, values: np.ndarray, matrix: np.ndarray, name: str):
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, values.astype(np.uint8))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    return node


def _run(node, settings, temp_root, **kwargs) -> DenoiseTask:
    task = DenoiseTask(node, settings, temp_root=temp_root, **kwargs)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.DONE, task.error
    return task


# --------------------------------------------------------------------------------------------- volume types
def test_default_input_is_what_the_selector_offers(scene):
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    hidden = add_volume_node(scene, np.zeros((1, 2, 2), np.int16), np.eye(4), name="hidden")
    hidden.SetHideFromEditors(True)
    tensors = scene.AddNewNodeByClass("vtkMRMLDiffusionTensorVolumeNode", "tensors")
    assert first_input_candidate(scene) is None  # only subclasses / hidden nodes so far
    colour = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "colour")
    scalar = add_volume_node(scene, np.zeros((1, 2, 2), np.int16), np.eye(4), name="scalar")
    assert first_input_candidate(scene) is colour
    assert first_input_candidate(scene, ("vtkMRMLScalarVolumeNode",)) is scalar
    assert {labels.GetClassName(), tensors.GetClassName()}.isdisjoint({first_input_candidate(scene).GetClassName()})
    dwi = scene.AddNewNodeByClass("vtkMRMLDiffusionWeightedVolumeNode", "dwi")
    assert first_input_candidate(scene, ("vtkMRMLDiffusionWeightedVolumeNode",)) is dwi  # offered, denoised as MR


@pytest.mark.parametrize("separate", MODES)
def test_colour_volume_is_denoised_per_component(scene, temp_root, us_png, separate):
    """Colour ultrasound as Slicer's DICOM module loads it (vtkMRMLVectorVolumeNode, RGB uint8)."""
    from PIL import Image

    grey = np.asarray(Image.open(us_png).convert("L"), dtype=np.float64)[100:164, 200:280]
    rgb = np.stack([grey, 0.8 * grey + 20, np.clip(1.1 * grey, 0, 255)], axis=-1)
    voxels = np.stack([rgb, np.roll(rgb, 3, axis=0)]).round().astype(np.uint8)  # (2, 64, 80, 3)
    node = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "colour US")
    slicer.util.updateVolumeFromArray(node, voxels)
    matrix = oblique_ijk_to_ras(spacing=(0.3, 0.3, 1.0))
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    task = _run(node, DenoiseSettings(model="median", noise_level=SIGMA, separate_process=separate), temp_root)
    output = task.output_node
    assert output.GetClassName() == "vtkMRMLVectorVolumeNode" and output.GetName() == "colour US denoised"
    result = slicer.util.arrayFromVolume(output)
    assert result.dtype == np.uint8 and result.shape == voxels.shape
    np.testing.assert_allclose(node_matrix(output), matrix, rtol=0, atol=1e-9)
    expected = Denoiser("median", device="cpu").denoise(volume_from_node(node), sigma=SIGMA / 255).array
    np.testing.assert_array_equal(result, expected)  # each component filtered as the library does it
    assert not np.array_equal(result[..., 0], voxels[..., 0])


# ---------------------------------------------------------------------------------------------------- masks
def _segmentation(scene, reference, inside: np.ndarray):
    """A real segmentation made from a label map on ``reference``'s grid (as the Segment Editor stores it)."""
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "painted")
    slicer.util.updateVolumeFromArray(labels, inside.astype(np.uint8))
    matrix = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(matrix)
    labels.SetIJKToRASMatrix(matrix)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "segmentation")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(reference)
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels, segmentation)
    scene.RemoveNode(labels)
    return segmentation


def test_mask_from_a_segmentation_or_a_label_map_is_on_the_input_grid(scene):
    shape = (5, 20, 24)
    matrix = oblique_ijk_to_ras()
    node = add_volume_node(scene, np.zeros(shape, np.int16), matrix)
    inside = np.zeros(shape, bool)
    inside[1:4, 5:15, 2:20] = True
    mask = mask_volume(_segmentation(scene, node, inside), node)
    np.testing.assert_array_equal(mask.array, inside.astype(np.uint8))
    np.testing.assert_allclose(mask.ijk_to_ras(), matrix, rtol=0, atol=1e-9)
    nodes = scene.GetNumberOfNodes()

    labels = _labels(scene, inside * 7, matrix, "labels")
    np.testing.assert_array_equal(mask_volume(labels, node).array, inside.astype(np.uint8))
    assert scene.GetNumberOfNodes() == nodes + 1  # the label map; no temporary node left behind
    shifted = matrix.copy()
    shifted[:3, 3] += (0.0, 0.0, 1.5)
    labels.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(shifted))
    with pytest.raises(ValueError, match=r"'labels' is not on the voxel grid of 'input' \(IJK to RAS differs by 1.5"):
        mask_volume(labels, node)
    smaller = _labels(scene, inside[:, :, :10], matrix, "smaller")
    with pytest.raises(
        ValueError,
        match=r"'smaller' has \(10, 20, 5\) voxels \(i, j, k\), the input 'input' "
        r"\(24, 20, 5\)",
    ):
        mask_volume(smaller, node)
    empty = _labels(scene, np.zeros(shape), matrix, "empty")
    with pytest.raises(ValueError, match="'empty' has no voxel inside"):
        mask_volume(empty, node)
    with pytest.raises(ValueError, match="has no segments"):
        mask_volume(scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "no segments"), node)


@pytest.mark.parametrize("separate", MODES)
def test_masked_run_changes_only_voxels_inside(scene, temp_root, mr_nifti, separate):
    noisy = _noisy_mr_frames(mr_nifti, count=1)[0]
    node = add_volume_node(scene, noisy, oblique_ijk_to_ras(spacing=(4.0, 4.0, 5.0)), name="MR")
    inside = np.zeros(noisy.shape, bool)
    inside[:, 15:45, 10:40] = True
    segmentation = _segmentation(scene, node, inside)
    settings = DenoiseSettings(model="median", noise_level=SIGMA, separate_process=separate)
    masked = slicer.util.arrayFromVolume(_run(node, settings, temp_root, mask_node=segmentation).output_node)
    # the unmasked run, in-process: the child's output equals the library's (test_sequence_... checks it too)
    whole = Denoiser("median", device="cpu").denoise(volume_from_node(node), sigma=SIGMA / 255).array
    np.testing.assert_array_equal(masked[~inside], noisy[~inside])  # outside: the input, bit for bit
    np.testing.assert_array_equal(masked[inside], whole[inside])
    assert np.count_nonzero(masked[inside] != noisy[inside]) > 0.5 * inside.sum()


@pytest.mark.parametrize("separate", MODES)
def test_a_segment_left_out_keeps_its_values_and_spreads_nowhere(scene, temp_root, ct_series_dir, separate):
    """Metal painted as a segment and left out: its voxels are the input's, the tissue around it is what the library
    gives with ``exclude=`` (no bright halo), in both modes."""
    ct = read_volume(ct_series_dir).slab(1, 136, 200).slab(2, 288, 352)  # soft tissue, 4 x 64 x 64
    voxels = np.array(ct.array, dtype=np.int16)
    y, x = np.mgrid[:64, :64]
    metal = np.broadcast_to((y - 32) ** 2 + (x - 32) ** 2 <= 16, voxels.shape)
    voxels[metal] = 3000
    node = add_volume_node(scene, voxels, ct.ijk_to_ras(), name="implant CT")
    settings = DenoiseSettings(model="median", noise_level=SIGMA, separate_process=separate)
    task = _run(node, settings, temp_root, exclude_node=_segmentation(scene, node, metal))
    result = slicer.util.arrayFromVolume(task.output_node)
    np.testing.assert_array_equal(result[metal], voxels[metal])
    expected = Denoiser("median", device="cpu").denoise(volume_from_node(node), sigma=SIGMA / 255, exclude=metal)
    np.testing.assert_array_equal(result, expected.array)
    plain = Denoiser("median", device="cpu").denoise(volume_from_node(node), sigma=SIGMA / 255).array
    next_to = np.broadcast_to(ndimage.binary_dilation(metal[0], iterations=2) & ~metal[0], metal.shape)
    assert (
        float(plain[next_to].astype(np.float64).mean()) > float(result[next_to].astype(np.float64).mean()) + 5
    )  # 40.9 vs 31.3 HU
    assert task.report["voxels_left_out"] == int(metal.sum())
    preview = _run(node, settings, temp_root, exclude_node=task.exclude_node, preview_slice=2)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(preview.output_node)[0], result[2])  # Apply's slice


@pytest.mark.parametrize("separate", MODES)
def test_auto_leaves_the_metal_out_unless_unchecked(scene, temp_root, ct_series_dir, separate):
    ct = read_volume(ct_series_dir).slab(1, 136, 200).slab(2, 288, 352)
    voxels = np.array(ct.array, dtype=np.int16)
    y, x = np.mgrid[:64, :64]
    metal = np.broadcast_to((y - 32) ** 2 + (x - 32) ** 2 <= 16, voxels.shape)
    voxels[metal] = 3000
    node = add_volume_node(scene, voxels, ct.ijk_to_ras(), name="implant CT")
    settings = DenoiseSettings(model="auto", modality="ct", separate_process=separate)
    task = _run(node, settings, temp_root)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(task.output_node)[metal], voxels[metal])
    assert task.report["metal_voxels_left_out"] == int(metal.sum())
    task = _run(
        node, DenoiseSettings(model="auto", modality="ct", separate_process=separate, leave_metal_out=False), temp_root
    )
    assert "metal_voxels_left_out" not in task.report
    assert not np.array_equal(slicer.util.arrayFromVolume(task.output_node)[metal], voxels[metal])


@pytest.mark.parametrize("separate", MODES)
def test_photon_noise_is_stabilized_for_nlm_unless_unchecked(scene, temp_root, xray_png, separate):
    """A 256 x 256 radiograph crop with photon noise (30 counts at its brightest; a 128 x 128 one is too small to tell
    photon noise from noise that changes across the image) denoised with NLM: both paths equal the library's
    default (under the generalized Anscombe transform, which the report names) and, unchecked, its
    ``stabilize="off"``."""
    import torch

    from meddenoiselib.transforms.noise import samplers

    image = read_volume(xray_png).array[:, 128:384, 128:384].astype(np.float32)
    clean = torch.from_numpy((image - image.min()) / np.ptp(image))
    photons = samplers.poisson_gaussian(clean, 30.0, 1.0, torch.Generator().manual_seed(0)).float().numpy()
    node = add_volume_node(scene, photons, np.eye(4), name="radiograph")
    for stabilize in (True, False):
        settings = DenoiseSettings(model="nlm", separate_process=separate, stabilize=stabilize)
        task = _run(node, settings, temp_root)
        expected = Denoiser("nlm", stabilize="auto" if stabilize else "off").denoise(volume_from_node(node)).array
        np.testing.assert_allclose(slicer.util.arrayFromVolume(task.output_node), expected, rtol=0, atol=1e-4)
        assert ("variance_stabilization" in task.report) == stabilize


@pytest.mark.parametrize("separate", MODES)
def test_a_volume_with_no_data_keeps_it_in_both_modes(scene, temp_root, mr_nifti, separate):
    """A resampled float volume whose corner holds NaN (no data): the module's run gives NaN back there, exactly,
    and denoises the rest as the library does; the live strength blend keeps NaN too."""
    noisy = _noisy_mr_frames(mr_nifti, count=1)[0].astype(np.float32)
    noisy[:, :12, :20] = np.nan
    node = add_volume_node(scene, noisy, oblique_ijk_to_ras(spacing=(4.0, 4.0, 5.0)), name="resampled MR")
    settings = DenoiseSettings(model="median", noise_level=SIGMA, separate_process=separate)
    task = _run(node, settings, temp_root)
    result = slicer.util.arrayFromVolume(task.output_node)
    expected = Denoiser("median", device="cpu").denoise(volume_from_node(node), sigma=SIGMA / 255).array
    np.testing.assert_array_equal(np.isnan(result), np.isnan(noisy))
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-3, equal_nan=True)
    assert np.count_nonzero(result[~np.isnan(noisy)] != noisy[~np.isnan(noisy)]) > 0.5 * np.isfinite(noisy).sum()
    np.testing.assert_array_equal(np.isnan(blend(noisy, result, 0.5)), np.isnan(noisy))


# ------------------------------------------------------------------------------------------------ sequences
def _sequence(scene, frames: np.ndarray, matrix: np.ndarray):
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "cine")
    sequence.SetIndexName("time")
    sequence.SetIndexUnit("s")
    for index, frame in enumerate(frames):
        item = slicer.vtkMRMLScalarVolumeNode()
        slicer.util.updateVolumeFromArray(item, frame)
        item.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
        sequence.SetDataNodeAtValue(item, f"{0.04 * index:.2f}")
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", "cine browser")
    browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
    logic = slicer.vtkSlicerSequencesLogic()
    logic.SetMRMLScene(scene)
    browser.SetSelectedItemNumber(1)
    logic.UpdateProxyNodesFromSequences(browser)
    return sequence, browser, logic, browser.GetProxyNode(sequence)


@pytest.mark.parametrize("separate", MODES)
def test_sequence_is_denoised_item_by_item_into_a_synchronized_sequence(sequence_scene, temp_root, mr_nifti, separate):
    frames = _noisy_mr_frames(mr_nifti)
    matrix = oblique_ijk_to_ras(spacing=(4.0, 4.0, 5.0))
    sequence, browser, logic, proxy = _sequence(sequence_scene, frames, matrix)
    assert sequence_of(proxy) == (sequence, browser)
    series = series_from_sequence(sequence, proxy)
    np.testing.assert_array_equal(series.array, frames)
    assert series.frame_values == ("0.00", "0.04", "0.08") and series.frame_label == "time"

    inside = np.zeros(frames.shape[1:], bool)
    inside[:, 10:50, 10:50] = True
    mask = _labels(sequence_scene, inside, matrix, "mask")
    settings = DenoiseSettings(model="median", noise_level=SIGMA, separate_process=separate)
    task = _run(
        proxy,
        settings,
        temp_root,
        sequences_logic=logic,
        mask_node=mask,
        residual=True,
        noise_map=True,
        measure_node=mask,
    )
    output = task.output_sequence
    assert task.noise_map_node.GetName() == "cine noise map" and task.noise_map_node.GetNumberOfDataNodes() == 3
    assert output.GetName() == "cine denoised" and output.GetNumberOfDataNodes() == 3
    assert [output.GetNthIndexValue(i) for i in range(3)] == ["0.00", "0.04", "0.08"]
    assert output.GetIndexName() == "time" and output.GetIndexUnit() == "s"
    expected = Denoiser("median", device="cpu").denoise(series, sigma=SIGMA / 255, mask=inside).array
    for index in range(3):
        item = output.GetNthDataNode(index)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(item), expected[index])
        np.testing.assert_allclose(node_matrix(item), matrix, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(item)[~inside], frames[index][~inside])
        residual = slicer.util.arrayFromVolume(task.residual_node.GetNthDataNode(index))
        np.testing.assert_allclose(residual, frames[index].astype(np.float32) - expected[index], atol=1e-4)
        noise_map = slicer.util.arrayFromVolume(task.noise_map_node.GetNthDataNode(index))
        np.testing.assert_allclose(noise_map, local_noise_sd(residual, (-2, -1)), rtol=1e-5, atol=1e-3)
        # inside the mask, and 10 pixels outside it (only the window's tail reaches there)
        assert noise_map[:, 0, 0].max() < 0.01 * noise_map[:, 30, 30].min()
    assert browser.IsSynchronizedSequenceNodeID(output.GetID())
    shown = browser.GetProxyNode(output)  # the browser shows the denoised item beside the input's
    assert task.output_node is shown and browser.GetSelectedItemNumber() == 1
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(shown), expected[1])
    assert task.report["frames"] == 3
    # the regions are measured in the item shown (2 of 3), as the browser shows it
    (region,) = task.regions
    assert region["name"] == "label 1" and region["voxels"] == int(inside.sum())
    assert region["sd_before"] == pytest.approx(frames[1][inside].std(ddof=1), rel=1e-9)
    assert region["sd_after"] == pytest.approx(expected[1][inside].std(ddof=1), rel=1e-9)
    assert task.notes["regions measured in"] == "item 2 of 3 of the sequence"


@pytest.mark.parametrize("separate", MODES)
def test_preview_of_a_sequence_is_the_shown_items_slice_of_the_whole_run(sequence_scene, temp_root, mr_nifti, separate):
    """A burst model sees the adjacent items: the shown item's slice as the whole sequence's run gives it, which
    the item alone (a volume: adjacent slices as its burst) does not."""
    frames = _noisy_mr_frames(mr_nifti)
    matrix = oblique_ijk_to_ras(spacing=(4.0, 4.0, 5.0))
    sequence, browser, logic, proxy = _sequence(sequence_scene, frames, matrix)
    assert browser.GetSelectedItemNumber() == 1
    settings = DenoiseSettings(model="kpn-burst3", separate_process=separate)
    task = _run(proxy, settings, temp_root, sequences_logic=logic, preview_slice=2)
    assert task.output_sequence is None and task.output_node.GetName() == f"{proxy.GetName()} preview"
    series = series_from_sequence(sequence, proxy)
    whole = Denoiser("kpn-burst3", device="cpu").denoise(series).array
    preview = slicer.util.arrayFromVolume(task.output_node)
    assert preview.shape == (1, *frames.shape[2:])
    np.testing.assert_array_equal(preview[0], whole[1, 2])  # item 2 of 3, shown by the browser
    alone = Denoiser("kpn-burst3", device="cpu").denoise(series.frame(1)).array[2]
    assert np.abs(alone.astype(np.float32) - whole[1, 2]).max() > 10
    np.testing.assert_allclose(node_matrix(task.output_node), series.frame(1).slab(0, 2, 3).ijk_to_ras(), atol=1e-6)
    assert task.report["preview"] == "frame 1 of 3, slice 2 of 4 along array axis 0"


def test_without_whole_sequence_only_the_shown_frame_is_denoised(sequence_scene, temp_root, mr_nifti):
    frames = _noisy_mr_frames(mr_nifti)
    sequence, browser, logic, proxy = _sequence(sequence_scene, frames, oblique_ijk_to_ras())
    sequences_before = sequence_scene.GetNumberOfNodesByClass("vtkMRMLSequenceNode")
    task = _run(
        proxy,
        DenoiseSettings(model="median", noise_level=SIGMA, separate_process=False),
        temp_root,
        whole_sequence=False,
        sequences_logic=logic,
    )
    assert task.output_sequence is None and task.output_node.GetName() == f"{proxy.GetName()} denoised"
    assert sequence_scene.GetNumberOfNodesByClass("vtkMRMLSequenceNode") == sequences_before
    assert slicer.util.arrayFromVolume(task.output_node).shape == frames[1].shape


def test_sequence_items_on_different_grids_are_refused(sequence_scene, temp_root, mr_nifti):
    frames = _noisy_mr_frames(mr_nifti)
    sequence, browser, logic, proxy = _sequence(sequence_scene, frames, oblique_ijk_to_ras())
    moved = oblique_ijk_to_ras(origin=(0.0, 0.0, 0.0))
    sequence.GetNthDataNode(2).SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(moved))
    nodes = sequence_scene.GetNumberOfNodes()
    task = DenoiseTask(proxy, DenoiseSettings(model="median", separate_process=False), temp_root=temp_root)
    assert task.start().state is TaskState.FAILED
    assert task.error == (
        "Item 3 of the sequence 'cine' is on another voxel grid than the first; only sequences of "
        "volumes on one voxel grid can be denoised."
    )
    assert sequence_scene.GetNumberOfNodes() == nodes


# ------------------------------------------------------------------------------------------ blend and report
def test_strength_blend_and_residual_follow_live(scene, temp_root, mr_nifti):
    noisy = _noisy_mr_frames(mr_nifti, count=1)[0]
    node = add_volume_node(scene, noisy, oblique_ijk_to_ras(), name="MR")
    settings = DenoiseSettings(model="median", noise_level=SIGMA, separate_process=False)
    task = _run(node, settings, temp_root, residual=True, noise_map=True)
    full = slicer.util.arrayFromVolume(task.output_node).copy()
    residual = task.residual_node
    np.testing.assert_allclose(slicer.util.arrayFromVolume(residual), noisy.astype(np.float32) - full, atol=1e-4)
    # the noise map: the local SD of the residual, in the MR's units, on its grid; the slider scales it
    full_map = local_noise_sd(noisy.astype(np.float32) - full, (-2, -1))
    assert task.noise_map_node.GetName() == "MR noise map"
    np.testing.assert_allclose(slicer.util.arrayFromVolume(task.noise_map_node), full_map, rtol=1e-5, atol=1e-3)
    assert np.median(full_map[noisy > np.percentile(noisy, 60)]) > 5  # int16 MR units, not 0-1
    for strength in (0.25, 0.0, 0.8):
        task.blend.apply(strength)
        task.update_report_table()
        shown = slicer.util.arrayFromVolume(task.output_node)
        np.testing.assert_array_equal(shown, blend(noisy, full, strength))  # the library's blend, int16
        assert shown.dtype == np.int16
        np.testing.assert_allclose(slicer.util.arrayFromVolume(residual), noisy.astype(np.float32) - shown, atol=1e-4)
        shown_map = slicer.util.arrayFromVolume(task.noise_map_node)
        np.testing.assert_allclose(shown_map, strength * full_map, rtol=1e-5, atol=1e-3)
        # = the map of the residual shown, up to the int16 rounding of the blended output
        assert np.abs(shown_map - local_noise_sd(noisy.astype(np.float32) - shown, (-2, -1))).max() < 1.0
        table = task.report_table
        assert table.GetCellText(table.GetNumberOfRows() - 1, 1) == f"{strength:.2f}"
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(task.output_node), blend(noisy, full, 0.8))
    task.blend.apply(0.0)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(task.output_node), noisy)
    task.blend.release()
    task.blend.apply(1.0)  # released: nothing changes any more
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(task.output_node), noisy)


def test_report_table_shows_the_child_report(scene, temp_root, mr_nifti):
    noisy = _noisy_mr_frames(mr_nifti, count=1)[0]
    node = add_volume_node(scene, noisy, oblique_ijk_to_ras(), name="MR")
    task = _run(node, DenoiseSettings(model="nlm", separate_process=True), temp_root)
    report = task.report
    assert report["method"] == "nlm" and report["device"] == "cpu"
    assert report["noise_sigma_after_0_255"] < report["noise_sigma_before_0_255"]
    table = task.report_table
    assert table.GetName() == "MR denoising report" and table.GetColumnName(0) == "quantity"
    rows = {table.GetCellText(r, 0): table.GetCellText(r, 1) for r in range(table.GetNumberOfRows())}
    assert rows["model"] == "nlm" and rows["device"] == "cpu"
    assert rows["noise before (0-255 scale)"] == f"{report['noise_sigma_before_0_255']:.4g}"
    assert rows["noise after (0-255 scale)"] == f"{report['noise_sigma_after_0_255']:.4g}"
    # the same in the MR's own grey values, what the noise SD setting takes: the 0-255 number times its range / 255
    scale = (float(noisy.max()) - float(noisy.min())) / 255.0
    assert float(rows["noise SD before (image units)"]) == pytest.approx(
        report["noise_sigma_before_0_255"] * scale, rel=2e-3
    )
    assert float(rows["noise SD after (image units)"]) < float(rows["noise SD before (image units)"])
    assert float(rows["run time (s)"]) == pytest.approx(report["seconds"], rel=1e-3)
    assert rows["noise level used (0-255 scale)"] == f"{report['sigma_used_0_255']:.4g}"
    assert "input" not in rows and rows["strength (blend with the input)"] == "1.00"


def test_in_process_run_releases_the_model(scene, temp_root, monkeypatch):
    node = add_volume_node(
        scene, np.random.default_rng(0).normal(500, 50, (2, 64, 64)).astype(np.float32), oblique_ijk_to_ras()
    )
    models = []
    original = DenoiseTask._make_denoiser

    def keep_a_weak_reference(self):
        denoiser = original(self)
        models.append(weakref.ref(denoiser.model))
        return denoiser

    monkeypatch.setattr(DenoiseTask, "_make_denoiser", keep_a_weak_reference)
    task = _run(node, DenoiseSettings(model="kpn-small", device="cpu", separate_process=False), temp_root)
    task._thread.join(timeout=10)
    gc.collect()
    assert len(models) == 1 and models[0]() is None  # no reference to the network is left after the run
    assert task._denoiser is None


# -------------------------------------------------------------------------------------------- DICOM modality
def test_dicom_modality_is_read_from_the_subject_hierarchy(scene):
    node = add_volume_node(scene, np.zeros((1, 2, 2), np.int16), np.eye(4), name="series")
    assert dicom_modality(node) is None  # no subject hierarchy yet: none is created
    assert scene.GetFirstNodeByClass("vtkMRMLSubjectHierarchyNode") is None
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study = hierarchy.CreateStudyItem(hierarchy.GetSceneItemID(), "study")
    item = hierarchy.CreateItem(study, node)  # as the DICOM module places a loaded series under its study
    attribute = slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMSeriesModalityAttributeName()
    hierarchy.SetItemAttribute(study, attribute, "US")
    assert dicom_modality(node) == "US"  # from a parent item
    hierarchy.SetItemAttribute(item, attribute, "MR")
    assert dicom_modality(node) == "MR" and modality_from_dicom("MR") == "mr"
    assert [modality_from_dicom(code) for code in ("CT", "DX", "CR", "OT", "", None)] == [
        "ct",
        "xray",
        "xray",
        "other",
        None,
        None,
    ]


# ------------------------------------------------------------------------------------------------- sample data
def test_sample_data_entry_loads_the_bundled_chest_ct(scene, tmp_path, ct_series_dir):
    """Faked: only the SampleData module (its logic records the registration and, like Slicer's, copies each URI into
    a cache folder with ``urllib.request.urlretrieve``, checks the SHA-256 and loads the file that has a node name
    with the volume archetype reader). Real: the files, the URIs and checksums the module registers, Slicer's
    ``vtkMRMLVolumeArchetypeStorageNode`` reading the series, the subject hierarchy."""
    registered = {}
    cache = tmp_path / "cache"
    cache.mkdir()

    class SampleDataLogic:
        @staticmethod
        def registerCustomSampleDataSource(**kwargs):
            registered.update(kwargs)

        def downloadFromSource(self, source):
            nodes = []
            for uri, name, node_name, checksum in zip(
                source.uris, source.fileNames, source.nodeNames, source.checksums, strict=True
            ):
                path = cache / name
                urllib.request.urlretrieve(uri, path)
                assert checksum == "SHA256:" + hashlib.sha256(path.read_bytes()).hexdigest()
                if node_name:
                    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", node_name)
                    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
                    storage.SetFileName(str(path))
                    assert storage.ReadData(node)
                    nodes.append(node)
            return nodes

    thumbnail = MODULE_DIR / "Resources/Icons/MedDenoiseChestCT.png"
    assert register_chest_ct(types.SimpleNamespace(SampleDataLogic=SampleDataLogic), MODULE_DIR, thumbnail)
    assert registered["category"] == "MedDenoise" and registered["sampleName"] == SAMPLE_NAME
    assert registered["thumbnailFileName"] == str(thumbnail) and thumbnail.read_bytes()[:4] == b"\x89PNG"
    assert registered["nodeNames"] == [None, None, None, SAMPLE_NAME]
    assert chest_ct_folder(MODULE_DIR) == ct_series_dir.resolve()
    source = types.SimpleNamespace(**{key: registered[key] for key in ("uris", "fileNames", "nodeNames", "checksums")})
    (node,) = registered["customDownloader"](source)  # what the Sample Data button does
    reference = read_volume(ct_series_dir)
    voxels = slicer.util.arrayFromVolume(node)
    assert voxels.shape == (4, 512, 512) and voxels.min() == -1024  # all four slices, in HU
    np.testing.assert_array_equal(voxels, reference.array)
    np.testing.assert_allclose(node_matrix(node), reference.ijk_to_ras(), rtol=0, atol=1e-4)
    assert dicom_modality(node) == "CT"  # so model "auto" knows it is a CT
    assert [name for name, _ in CHEST_CT_FILES] == sorted(p.name for p in ct_series_dir.glob("*.dcm"))


def test_sequence_file_saved_by_slicer_goes_through_the_cli_and_back(scene, tmp_path, mr_nifti):
    """A ``.seq.nrrd`` written by Slicer's own ``vtkMRMLVolumeSequenceStorageNode`` is denoised frame by frame by
    ``python -m meddenoiselib denoise`` and the result reads back into a sequence with Slicer's reader."""
    from meddenoiselib.cli import main

    frames = _noisy_mr_frames(mr_nifti)
    matrix = oblique_ijk_to_ras(spacing=(4.0, 4.0, 5.0))
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "perfusion")
    for index, frame in enumerate(frames):
        item = slicer.vtkMRMLScalarVolumeNode()
        slicer.util.updateVolumeFromArray(item, frame)
        item.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
        sequence.SetDataNodeAtValue(item, str(2.5 * index))
    writer = scene.AddNewNodeByClass("vtkMRMLVolumeSequenceStorageNode")
    writer.SetFileName(str(tmp_path / "perfusion.seq.nrrd"))
    assert writer.WriteData(sequence)
    assert (
        main(
            [
                "denoise",
                str(tmp_path / "perfusion.seq.nrrd"),
                str(tmp_path / "out.seq.nrrd"),
                "--model",
                "median",
                "--sigma",
                str(SIGMA),
                "-q",
            ]
        )
        == 0
    )
    result = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "result")
    reader = scene.AddNewNodeByClass("vtkMRMLVolumeSequenceStorageNode")
    reader.SetFileName(str(tmp_path / "out.seq.nrrd"))
    assert reader.ReadData(result) and result.GetNumberOfDataNodes() == 3
    assert [result.GetNthIndexValue(i) for i in range(3)] == ["0.0", "2.5", "5.0"]
    series = series_from_sequence(sequence, sequence.GetNthDataNode(0))
    expected = Denoiser("median", device="cpu").denoise(series, sigma=SIGMA / 255).array
    for index in range(3):
        item = result.GetNthDataNode(index)
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(item), expected[index])
        np.testing.assert_allclose(node_matrix(item), matrix, rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------------- noise SD in image units
@pytest.mark.parametrize("separate", MODES)
def test_a_noise_sd_in_hu_denoises_as_the_library_does_with_it(scene, temp_root, ct_crop, separate):
    """A CT node with white noise of 40 HU and the SD typed in HU: the result is the library's with NoiseSD(40) on
    the node's grid (both paths), and the report names the level the method's scaling made of it."""
    from meddenoiselib.io import Volume
    from meddenoiselib.transforms import NoiseSD

    hu = np.repeat((ct_crop.astype(np.float64) * 1400.0 - 1000.0)[np.newaxis], 3, axis=0)
    noisy = np.rint(hu + np.random.default_rng(8).normal(0.0, 40.0, hu.shape)).astype(np.int16)
    matrix = oblique_ijk_to_ras(spacing=(0.7, 0.7, 2.5))
    node = add_volume_node(scene, noisy, matrix, name="low-dose CT")
    node.SetAttribute("DICOM.Modality", "CT")
    settings = DenoiseSettings(model="nlm", noise_sd=40.0, modality="ct", separate_process=separate)
    task = _run(node, settings, temp_root)
    library = Denoiser("nlm", modality="ct")
    expected = library.denoise(Volume.from_ijk_to_ras(noisy, matrix), sigma=NoiseSD(40.0)).array
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(task.output_node), expected)
    assert task.report["sigma_used_0_255"] == pytest.approx(library.last_report.sigma * 255.0, abs=1e-3)


# ------------------------------------------------------------------------------------------- trained weights
@pytest.mark.parametrize("separate", MODES)
def test_trained_weights_denoise_as_the_library_does_with_them(scene, temp_root, tmp_path, mr_png, separate):
    """A user's trained weights (here the general model saved again as 'my-brain-model', as ``train`` writes them:
    ``model.safetensors`` with ``model.json``) run instead of the model on both paths: the result is the library's
    ``Denoiser(weights=...)``, it gains over the noisy slice, and the report names the card's model; a pickled
    checkpoint and a model card chosen instead of its weights are refused by name."""
    import json
    import shutil

    from meddenoiselib.evaluation.metrics import psnr
    from meddenoiselib.io import Volume
    from meddenoiselib.weights import WEIGHTS_DIR

    weights = tmp_path / "model.safetensors"
    shutil.copyfile(WEIGHTS_DIR / "kpn-general.safetensors", weights)
    card = json.loads((WEIGHTS_DIR / "kpn-general.json").read_text())
    weights.with_suffix(".json").write_text(json.dumps({**card, "name": "my-brain-model"}))
    clean = read_volume(mr_png).array.astype(np.float64)
    noisy = (clean + np.random.default_rng(3).normal(0.0, 15.0, clean.shape)).astype(np.float32)
    matrix = oblique_ijk_to_ras(spacing=(0.9, 0.9, 3.0))
    node = add_volume_node(scene, noisy, matrix, name="brain")
    settings = DenoiseSettings(model="nlm", separate_process=separate, weights=str(weights), ensemble=1, refine="off")
    task = _run(node, settings, temp_root)
    expected = Denoiser(weights=weights, ensemble=1, refine="off").denoise(Volume.from_ijk_to_ras(noisy, matrix))
    result = slicer.util.arrayFromVolume(task.output_node)
    np.testing.assert_allclose(result, expected.array, rtol=0, atol=1e-3)
    assert psnr(clean, result, 255.0) > psnr(clean, noisy, 255.0) + 6.0
    assert task.report["method"] == "my-brain-model"
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="checkpoint.pt is not a .safetensors file"):
        DenoiseSettings(weights=str(checkpoint))
    with pytest.raises(ValueError, match="is a model card; choose the weights beside it, model.safetensors"):
        DenoiseSettings(weights=str(weights.with_suffix(".json")))


# ------------------------------------------------------------------------------------------ magnitude floor
@pytest.mark.parametrize("separate", MODES)
def test_the_magnitude_floor_is_removed_with_a_named_method(scene, temp_root, mr_png, separate):
    """ "MR noise floor: remove" with NLM on the brain slice with Rician noise of 6 % and empty air: the result is the
    library's ``Denoiser("nlm", magnitude_floor="remove", coils=1)`` on both paths, its air near 0 where NLM alone
    leaves the floor (~1.25 sigma)."""
    from scipy import ndimage

    from meddenoiselib.io import Volume
    from meddenoiselib.transforms import parse_noise_spec, simulate_volume

    clean = read_volume(mr_png).array.astype(np.float32)
    air = ~ndimage.binary_dilation(clean > 0.1 * np.percentile(clean, 99), iterations=3)
    clean[air] = 0
    matrix = oblique_ijk_to_ras(spacing=(0.9, 0.9, 3.0))
    spec = parse_noise_spec("rician:6%")
    noisy = simulate_volume(Volume.from_ijk_to_ras(clean, matrix), spec, seed=1, float_output=True).array
    node = add_volume_node(scene, noisy, matrix, name="brain")
    settings = DenoiseSettings(model="nlm", modality="mr", separate_process=separate, magnitude_floor="remove", coils=1)
    task = _run(node, settings, temp_root)
    volume = Volume.from_ijk_to_ras(noisy, matrix)
    expected = Denoiser("nlm", modality="mr", magnitude_floor="remove", coils=1).denoise(volume).array
    result = slicer.util.arrayFromVolume(task.output_node)
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-3)
    floor_left = Denoiser("nlm", modality="mr").denoise(volume).array
    assert float(result[air].mean()) < 0.2 * float(floor_left[air].mean())
    assert "magnitude noise floor removed" in task.report["model_choice"]
    with pytest.raises(ValueError, match="`coils` must be a whole number from 1 to 64"):
        DenoiseSettings(coils=0)


# ---------------------------------------------------------------------------------------------- noise SD map
def _ramped_brain(mr_png):
    """``(clean, sigma, noisy float32, IJK-to-RAS)``: the brain slice with Rician noise whose sigma rises across it from
    1 % to 8 % of its 99th percentile, on an oblique 0.9 x 0.9 x 3 mm grid."""
    clean = read_volume(mr_png).array.astype(np.float64)
    p99 = float(np.percentile(clean, 99))
    sigma = np.broadcast_to((0.01 + 0.07 * np.linspace(0.0, 1.0, clean.shape[2]))[None, None, :] * p99, clean.shape)
    rng = np.random.default_rng(5)
    noisy = np.hypot(clean + rng.normal(0.0, 1.0, clean.shape) * sigma, rng.normal(0.0, 1.0, clean.shape) * sigma)
    return clean, sigma, noisy.astype(np.float32), oblique_ijk_to_ras(spacing=(0.9, 0.9, 3.0))


@pytest.mark.parametrize("separate", MODES)
def test_a_noise_sd_map_node_denoises_as_the_library_does_with_it(scene, temp_root, mr_png, separate):
    """The brain slice with Rician noise rising across it and the map of that sigma as a volume node on its grid:
    the result is the library's with ``NoiseSDMap`` (both paths) and gains over the noisy slice; a preview takes the
    map too; a noise level beside the map is refused."""
    from meddenoiselib.evaluation.metrics import psnr
    from meddenoiselib.io import Volume
    from meddenoiselib.transforms import NoiseSDMap

    clean, sigma, noisy, matrix = _ramped_brain(mr_png)
    p99 = float(np.percentile(clean, 99))
    node = add_volume_node(scene, noisy, matrix, name="brain")
    sigma_node = add_volume_node(scene, np.ascontiguousarray(sigma, np.float32), matrix, name="sigma")
    settings = DenoiseSettings(model="nlm", modality="mr", separate_process=separate)
    task = _run(node, settings, temp_root, noise_sd_map_node=sigma_node)
    map_volume = Volume.from_ijk_to_ras(np.ascontiguousarray(sigma, np.float32), matrix)
    expected = Denoiser("nlm", modality="mr").denoise(
        Volume.from_ijk_to_ras(noisy, matrix), sigma=NoiseSDMap(map_volume)
    )
    result = slicer.util.arrayFromVolume(task.output_node)
    np.testing.assert_allclose(result, expected.array, rtol=0, atol=1e-3)
    head = clean > 0.1 * p99
    assert psnr(clean[head], result[head], clean.max()) > psnr(clean[head], noisy[head], clean.max()) + 6.0
    # a preview takes the map's slice: of this one-slice image, the whole result
    preview = DenoiseTask(node, settings, temp_root=temp_root, noise_sd_map_node=sigma_node, preview_slice=0).start()
    assert preview.wait(timeout=TIMEOUT) is TaskState.DONE
    np.testing.assert_allclose(slicer.util.arrayFromVolume(preview.output_node), expected.array, rtol=0, atol=1e-3)
    given = DenoiseSettings(model="nlm", modality="mr", separate_process=separate, noise_level=10.0)
    failed = DenoiseTask(node, given, temp_root=temp_root, noise_sd_map_node=sigma_node).start()
    assert failed.wait(timeout=TIMEOUT) is TaskState.FAILED and "set the noise level to auto" in failed.error


@pytest.mark.parametrize("separate", MODES)
def test_a_noise_sd_map_read_from_the_image_denoises_as_the_library_does(scene, temp_root, mr_png, separate):
    """``noise_sd_map_auto`` (the "Read from the image" switch, ``--noise-sd-map auto`` in the child): NLM on the
    brain slice with Rician noise rising across it equals the library's ``NoiseSDMap.estimated()`` on both paths and
    gains over NLM at one level; with a map node or a noise level beside it, refused."""
    from meddenoiselib.evaluation.metrics import psnr
    from meddenoiselib.io import Volume
    from meddenoiselib.transforms import NoiseSDMap

    clean, sigma, noisy, matrix = _ramped_brain(mr_png)
    p99 = float(np.percentile(clean, 99))
    node = add_volume_node(scene, noisy, matrix, name="brain")
    settings = DenoiseSettings(model="nlm", modality="mr", separate_process=separate, noise_sd_map_auto=True)
    task = _run(node, settings, temp_root)
    volume = Volume.from_ijk_to_ras(noisy, matrix)
    expected = Denoiser("nlm", modality="mr").denoise(volume, sigma=NoiseSDMap.estimated())
    result = slicer.util.arrayFromVolume(task.output_node)
    np.testing.assert_allclose(result, expected.array, rtol=0, atol=1e-3)
    one_level = Denoiser("nlm", modality="mr").denoise(volume).array
    head = clean > 0.1 * p99
    assert psnr(clean[head], result[head], clean.max()) > psnr(clean[head], one_level[head], clean.max()) + 2.0
    assert task.report["noise_sd_map"] == "the noise SD map estimated from the image"
    with pytest.raises(ValueError, match="set the noise level to auto"):
        DenoiseSettings(model="nlm", noise_level=10.0, noise_sd_map_auto=True)
    sigma_node = add_volume_node(scene, np.ascontiguousarray(sigma, np.float32), matrix, name="sigma")
    failed = DenoiseTask(node, settings, temp_root=temp_root, noise_sd_map_node=sigma_node).start()
    assert failed.wait(timeout=TIMEOUT) is TaskState.FAILED and "do not also read one" in failed.error
