"""The module's *Measure noise in* (user need 12): the standard deviation in painted segments before and after, in
HU, as Slicer users measure noise by hand; on real MRML (slicer-core) with real segmentations, the real chest CT and
the real library in both modes. The numbers are checked against numpy on the nodes' voxels."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

import slicer
from meddenoiselib.io import read_volume
from MedDenoiseModuleLib import DenoiseSettings, DenoiseTask, TaskState

from .conftest import add_volume_node

pytestmark = pytest.mark.usefixtures("segmentation_converters")

TIMEOUT = 180
MODES = [pytest.param(False, id="in-process"), pytest.param(True, id="child-process")]
#: the median filter with a given noise level: no estimate, so the child's and the library's results are equal
SETTINGS = dict(model="median", noise_level=10.0)


@pytest.fixture(scope="module")
def chest(ct_series_dir):
    """The sample chest CT (4 slices of 512x512, 2 mm, int16 HU) and two boxes of flat tissue on it."""
    ct = read_volume(ct_series_dir)
    fat, soft = np.zeros(ct.shape, bool), np.zeros(ct.shape, bool)
    fat[:, 110:130, 180:200] = True  # subcutaneous fat, about -126 HU
    soft[:, 190:210, 310:330] = True  # soft tissue, about 39 HU
    return ct, fat, soft


def _painted(scene, reference, regions: dict[str, np.ndarray]):
    """A real segmentation with one segment per region, as the Segment Editor stores it; segments may overlap."""
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "regions")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(reference)
    matrix = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(matrix)
    for name, inside in regions.items():
        labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "painted")
        slicer.util.updateVolumeFromArray(labels, inside.astype(np.uint8))
        labels.SetIJKToRASMatrix(matrix)
        before = segmentation.GetSegmentation().GetNumberOfSegments()
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labels, segmentation)
        segmentation.GetSegmentation().GetNthSegment(before).SetName(name)
        scene.RemoveNode(labels)
    return segmentation


def _table(table) -> list[list[str]]:
    return [
        [table.GetCellText(row, column) for column in range(table.GetNumberOfColumns())]
        for row in range(table.GetNumberOfRows())
    ]


def _report(task) -> dict[str, str]:
    table = task.report_table
    return {table.GetCellText(row, 0): table.GetCellText(row, 1) for row in range(table.GetNumberOfRows())}


@pytest.mark.parametrize("separate", MODES)
def test_segments_measured_in_hu_before_and_after_and_with_the_strength(scene, temp_root, chest, separate):
    ct, fat, soft = chest
    node = add_volume_node(scene, ct.array, ct.ijk_to_ras(), name="chest")
    both = fat | soft  # overlaps the other two: each segment is measured on its own
    segmentation = _painted(scene, node, {"fat": fat, "soft tissue": soft, "both": both})
    settings = DenoiseSettings(**SETTINGS, separate_process=separate)
    task = DenoiseTask(node, settings, temp_root=temp_root, measure_node=segmentation)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.DONE, task.error
    output = slicer.util.arrayFromVolume(task.output_node).astype(np.float64)
    noisy = ct.array.astype(np.float64)

    assert [row["name"] for row in task.regions] == ["fat", "soft tissue", "both"]
    for row, inside in zip(task.regions, (fat, soft, both), strict=True):
        assert row["voxels"] == int(inside.sum())
        assert row["mean_before"] == pytest.approx(noisy[inside].mean(), abs=1e-6)
        assert row["sd_before"] == pytest.approx(noisy[inside].std(ddof=1), rel=1e-9)
        assert row["sd_after"] == pytest.approx(output[inside].std(ddof=1), rel=1e-9)
    first, second = task.regions[:2]
    assert first["mean_before"] == pytest.approx(-126, abs=10) and second["mean_before"] == pytest.approx(39, abs=10)
    assert first["sd_after"] < 0.8 * first["sd_before"] and second["sd_after"] < 0.8 * second["sd_before"]
    assert task.regions[2]["voxels"] == 3200  # the overlap did not take voxels from either

    table = task.region_table
    assert table.GetName() == "chest region noise"
    rows = _table(table)
    assert rows[0][:2] == ["fat", "1600"] and float(rows[0][5]) == pytest.approx(first["sd_after"], rel=1e-3)
    report = _report(task)
    pooled = np.sqrt((first["sd_before"] ** 2 + second["sd_before"] ** 2) / 2)
    cnr_before = abs(first["mean_before"] - second["mean_before"]) / pooled
    before, after = report["CNR of 'fat' and 'soft tissue'"].split(" -> ")
    assert float(before) == pytest.approx(cnr_before, rel=1e-3) and float(after) > float(before)
    assert report["CNR definition"].startswith("|mean1 - mean2|")

    # the strength slider: the numbers are those of the output as it is shown
    task.blend.apply(0.5)
    task.update_report_table()
    half = slicer.util.arrayFromVolume(task.output_node).astype(np.float64)
    assert task.regions[0]["sd_after"] == pytest.approx(half[fat].std(ddof=1), rel=1e-9)
    assert first["sd_after"] < task.regions[0]["sd_after"] < first["sd_before"]
    assert float(_table(table)[0][5]) == pytest.approx(task.regions[0]["sd_after"], rel=1e-3)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), ct.array)  # the input is untouched
    assert not any(temp_root.iterdir())


def test_a_preview_measures_its_slice_into_a_reused_table(scene, temp_root, chest):
    ct, fat, soft = chest
    node = add_volume_node(scene, ct.array, ct.ijk_to_ras(), name="chest")
    upper = np.zeros(ct.shape, bool)
    upper[3, 300:320, 250:270] = True  # painted on the top slice only
    segmentation = _painted(scene, node, {"fat": fat, "soft tissue": soft, "top slice": upper})
    settings = DenoiseSettings(**SETTINGS, separate_process=False)
    task = DenoiseTask(node, settings, temp_root=temp_root, preview_slice=1, measure_node=segmentation)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.DONE, task.error
    preview = slicer.util.arrayFromVolume(task.output_node)[0].astype(np.float64)
    assert [(row["name"], row["voxels"]) for row in task.regions] == [("fat", 400), ("soft tissue", 400)]
    assert task.regions[0]["sd_after"] == pytest.approx(preview[fat[1]].std(ddof=1), rel=1e-9)
    report = _report(task)
    assert report["regions measured in"] == "previewed slice 1"
    assert report["regions with no voxel there"] == "top slice"
    assert task.region_table.GetName() == "chest preview region noise"

    again = DenoiseTask(
        node, settings, task.output_node, temp_root=temp_root, preview_slice=3, measure_node=segmentation
    )
    assert again.start().wait(timeout=TIMEOUT) is TaskState.DONE, again.error
    assert again.region_table is task.region_table  # refilled, not added
    assert [row["name"] for row in again.regions] == ["fat", "soft tissue", "top slice"]
    assert scene.GetNodesByClass("vtkMRMLTableNode").GetNumberOfItems() == 2  # preview report + region noise


def test_label_map_regions_and_refusals_before_anything_runs(scene, temp_root, chest):
    ct, fat, soft = chest
    node = add_volume_node(scene, ct.array, ct.ijk_to_ras(), name="chest")
    labels = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    slicer.util.updateVolumeFromArray(labels, (fat * 3 + soft * 5).astype(np.uint8))
    labels.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ct.ijk_to_ras()))
    task = DenoiseTask(
        node, DenoiseSettings(**SETTINGS, separate_process=False), temp_root=temp_root, measure_node=labels
    )
    assert task.start().wait(timeout=TIMEOUT) is TaskState.DONE, task.error
    assert [(row["name"], row["voxels"]) for row in task.regions] == [("label 3", 1600), ("label 5", 1600)]

    nodes = scene.GetNumberOfNodes()
    moved = ct.ijk_to_ras()
    moved[:3, 3] += (0.0, 0.0, 3.0)
    labels.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(moved))
    failed = DenoiseTask(node, DenoiseSettings(**SETTINGS), temp_root=temp_root, measure_node=labels)
    assert failed.start().state is TaskState.FAILED
    assert failed.error.startswith(
        "The label map 'labels' is not on the voxel grid of 'chest' (IJK to RAS differs by 3"
    )
    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "nothing painted")
    failed = DenoiseTask(node, DenoiseSettings(**SETTINGS), temp_root=temp_root, measure_node=empty)
    assert failed.start().state is TaskState.FAILED
    assert failed.error == "The segmentation 'nothing painted' has no segments to measure."
    assert scene.GetNumberOfNodes() == nodes + 1  # the empty segmentation; nothing else added
    assert not any(temp_root.iterdir())


def test_of_many_segments_the_visible_ones_are_measured(scene, chest):
    """A segmentation with more segments than can be measured (an atlas, a TotalSegmentator result): the ones the
    user shows are measured; too many shown is refused with what to do."""
    from meddenoiselib.evaluation.regions import MAX_REGIONS
    from MedDenoiseModuleLib import regions_of_node

    ct, fat, soft = chest
    node = add_volume_node(scene, ct.array, ct.ijk_to_ras(), name="chest")
    boxes = {}
    for index in range(MAX_REGIONS + 2):
        inside = np.zeros(ct.shape, bool)
        inside[:, 10 * index : 10 * index + 5, 250:260] = True
        boxes[f"box {index}"] = inside
    segmentation = _painted(scene, node, boxes)
    segmentation.CreateDefaultDisplayNodes()
    with pytest.raises(ValueError, match=f"34 visible segments; measure at most {MAX_REGIONS} \\(hide the others"):
        regions_of_node(segmentation, node)
    display, ids = segmentation.GetDisplayNode(), segmentation.GetSegmentation()
    for index in range(3, MAX_REGIONS + 2):
        display.SetSegmentVisibility(ids.GetNthSegmentID(index), False)
    assert [name for name, _ in regions_of_node(segmentation, node)] == ["box 0", "box 1", "box 2"]
