"""Tier B: multi-volume nodes (Slicer's MultiVolumeImporter: a DCE, perfusion or multi-echo DICOM run, frames as the
components of one scalar volume, ``MultiVolume.*`` attributes) in the module, on real MRML (slicer-core) with the
real library and the real CLI child. slicer-core has no ``vtkMRMLMultiVolumeNode`` class; a vector volume with the
importer's attributes stands for it (``slicer.util`` reads both as ``(k, j, i, components)``). Before 2026-12-07
multi-volumes were not offered, and a vector volume's components were denoised as colours."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import slicer
from meddenoiselib.inference import Denoiser
from meddenoiselib.io import read_volume
from MedDenoiseModuleLib import DenoiseSettings, DenoiseTask, TaskState, check_input_node
from MedDenoiseModuleLib.multivolume import is_multivolume, series_from_multivolume

from .conftest import node_matrix, oblique_ijk_to_ras

TIMEOUT = 180
MODES = [pytest.param(False, id="in-process"), pytest.param(True, id="child-process")]
#: a DCE run: contrast arriving over six frames
UPTAKE = [1.0, 1.0, 1.3, 1.6, 1.7, 1.75]


def _clean_run(mr_nifti) -> np.ndarray:
    """``(k, j, i, F)``: the real head MR smoothed (a clean reference), brightening frame by frame."""
    head = gaussian_filter(read_volume(mr_nifti).array[8:13].astype(np.float64), 1.0)
    return np.stack([head * w for w in UPTAKE], axis=-1)


def _multivolume(scene, voxels: np.ndarray, matrix: np.ndarray, tag: str = "TriggerTime"):
    node = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "dce")
    slicer.util.updateVolumeFromArray(node, voxels)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(matrix))
    frames = voxels.shape[-1]
    node.SetAttribute("MultiVolume.NumberOfFrames", str(frames))
    node.SetAttribute("MultiVolume.FrameLabels", ",".join(str(5000 * f) for f in range(frames)))
    node.SetAttribute("MultiVolume.FrameIdentifyingDICOMTagName", tag)
    node.SetAttribute("MultiVolume.FrameIdentifyingDICOMTagUnits", "ms")
    node.CreateDefaultDisplayNodes()
    return node


@pytest.mark.parametrize("separate", MODES)
def test_a_multivolume_is_denoised_frame_by_frame_into_a_multivolume_with_its_labels(
    scene, temp_root, mr_nifti, separate
):
    clean = _clean_run(mr_nifti)
    rng = np.random.default_rng(3)
    noisy = np.rint(clean + rng.normal(0, 40.0, clean.shape)).astype(np.int16)
    matrix = oblique_ijk_to_ras(spacing=(2.0, 2.0, 2.5))
    node = _multivolume(scene, noisy, matrix)
    assert is_multivolume(node)
    check_input_node(node)
    series = series_from_multivolume(node)
    assert series.frame_label == "time" and series.frame_values == tuple(str(5000 * f) for f in range(6))

    task = DenoiseTask(node, DenoiseSettings(model="auto", separate_process=separate), temp_root=temp_root)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.DONE, task.error
    output = task.output_node
    assert output.GetClassName() == node.GetClassName() and output.GetName() == "dce denoised"
    for name in ("NumberOfFrames", "FrameLabels", "FrameIdentifyingDICOMTagName", "FrameIdentifyingDICOMTagUnits"):
        assert output.GetAttribute(f"MultiVolume.{name}") == node.GetAttribute(f"MultiVolume.{name}")
    np.testing.assert_allclose(node_matrix(output), matrix, rtol=0, atol=1e-9)
    denoised = slicer.util.arrayFromVolume(output)
    assert denoised.shape == noisy.shape and denoised.dtype == noisy.dtype
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), noisy)  # the input untouched
    error = [np.mean((denoised[..., f] - clean[..., f]) ** 2) for f in range(6)]
    before = [np.mean((noisy[..., f] - clean[..., f]) ** 2) for f in range(6)]
    assert max(e / b for e, b in zip(error, before, strict=True)) < 0.35, (error, before)
    # the one data path: what the module shows is the library's run on the frame series
    library = Denoiser("auto", device="cpu").denoise(series).array
    np.testing.assert_allclose(denoised, np.moveaxis(library, 0, -1), rtol=0, atol=1)


def test_a_multivolume_preview_is_a_frames_slice_of_the_whole_run_and_echoes_use_their_own_slices(
    scene, temp_root, mr_nifti
):
    rng = np.random.default_rng(4)
    noisy = np.rint(_clean_run(mr_nifti) + rng.normal(0, 40.0, (5, 58, 58, 6))).astype(np.int16)
    node = _multivolume(scene, noisy, np.diag([2.0, 2.0, 2.5, 1.0]))
    settings = DenoiseSettings(model="kpn-burst3", separate_process=False)
    task = DenoiseTask(node, settings, temp_root=temp_root, preview_slice=2)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.DONE, task.error
    preview = task.output_node
    assert preview.GetClassName() == "vtkMRMLScalarVolumeNode" and preview.GetName() == "dce preview"
    whole = Denoiser("kpn-burst3", device="cpu").denoise(series_from_multivolume(node)).array
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(preview)[0], whole[0, 2])

    echoes = _multivolume(scene, noisy, np.eye(4), tag="EchoTime")
    assert series_from_multivolume(echoes).frame_label == "echo"
    flips = _multivolume(scene, noisy, np.eye(4), tag="FlipAngle")
    assert series_from_multivolume(flips).frame_label == "repeat"  # another contrast in each frame


def test_a_vector_volume_without_the_importers_attributes_is_a_colour_volume(scene):
    node = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "rgb")
    slicer.util.updateVolumeFromArray(node, np.zeros((3, 8, 8, 3), np.uint8))
    assert not is_multivolume(node)
