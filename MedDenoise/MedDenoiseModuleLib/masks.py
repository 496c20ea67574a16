"""A segmentation or label map node -> the mask ``Volume`` the library takes (``mask=`` / ``--mask``).

Non-zero voxels are denoised, all others keep the input's values. A segmentation is exported (all its segments,
as one union) onto the input's voxel grid by Slicer's own segmentation logic, through any transforms between the two
(a non-linear one included: the input may be a CT under the DICOM module's "Acquisition transform", the segmentation
drawn in world space or under the same transform); a label map must already be on the input's grid (same shape and
geometry, under the same transform), otherwise it is refused with the difference, as the library does.
"""

from __future__ import annotations

import numpy as np
import vtk

import slicer

from .volumes import grid_of_node, world_ijk_to_ras

__all__ = ["MASK_NODE_TYPES", "labels_on_input_grid", "mask_volume"]

#: the node classes the mask selector offers.
MASK_NODE_TYPES = ("vtkMRMLSegmentationNode", "vtkMRMLLabelMapVolumeNode")

_GRID_TOLERANCE_MM = 1e-3


def _labelmap_from_segmentation(segmentation, reference, segment_ids=None):
    """The segments ``segment_ids`` (None: all of them, as one union) as a temporary label map node on
    ``reference``'s grid (caller removes it)."""
    scene = reference.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", scene.GenerateUniqueName("MedDenoise labels"))
    ids = vtk.vtkStringArray()
    if segment_ids is None:
        segmentation.GetSegmentation().GetSegmentIDs(ids)
    else:
        for segment_id in segment_ids:
            ids.InsertNextValue(segment_id)
    if ids.GetNumberOfValues() == 0:
        scene.RemoveNode(labelmap)
        raise ValueError(f"The segmentation '{segmentation.GetName()}' has no segments.")
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    if not logic.ExportSegmentsToLabelmapNode(segmentation, ids, labelmap, reference):
        scene.RemoveNode(labelmap)
        raise ValueError(f"The segmentation '{segmentation.GetName()}' could not be exported onto the input's grid.")
    return labelmap


def _check_under_the_same_transform(labelmap, reference_node) -> None:
    """A label map can lie on the grid of a volume under a non-linear transform only under that transform too."""
    transform = reference_node.GetParentTransformNode()
    if labelmap.GetTransformNodeID() != transform.GetID():
        raise ValueError(
            f"The label map '{labelmap.GetName()}' is not under the non-linear transform '{transform.GetName()}' that "
            f"'{reference_node.GetName()}' is under, so it is not on its voxel grid: put it under the same transform, "
            "or convert it to a segmentation (Segmentations module), which is placed through the transform."
        )


def labels_on_input_grid(node, reference_node, segment_ids=None) -> np.ndarray:
    """The label values of ``node`` on the voxel grid of ``reference_node``, ``(K, J, I)``.

    Args:
        node: a ``vtkMRMLSegmentationNode`` (exported onto the grid by Slicer's segmentation logic: non-zero inside
            ``segment_ids``, None for all segments) or a ``vtkMRMLLabelMapVolumeNode`` (which must already be on the
            grid: same shape and geometry, under the same non-linear transform where the input is under one).
        reference_node: the input volume (its first frame's proxy node for a sequence).

    Raises:
        ValueError: an unsupported node, a segmentation without segments, or a label map on another grid.
    """
    name = node.GetName()
    created = None
    if node.GetClassName() == "vtkMRMLSegmentationNode":
        created = labelmap = _labelmap_from_segmentation(node, reference_node, segment_ids)
    elif node.GetClassName() == "vtkMRMLLabelMapVolumeNode":
        labelmap = node
    else:
        raise ValueError(f"'{name}' is a {node.GetClassName()}; it must be a segmentation or a label map.")
    reference, reference_transform = grid_of_node(reference_node)
    try:
        labels = np.array(slicer.util.arrayFromVolume(labelmap), copy=True)
        if created is not None:  # Slicer's export resampled it onto the reference's own grid, through the transforms
            geometry = reference
        elif reference_transform is not None:
            _check_under_the_same_transform(labelmap, reference_node)
            matrix = vtk.vtkMatrix4x4()
            labelmap.GetIJKToRASMatrix(matrix)
            geometry = slicer.util.arrayFromVTKMatrix(matrix)
        else:
            geometry = world_ijk_to_ras(labelmap)
    finally:
        if created is not None:
            created.GetScene().RemoveNode(created)
    reference_shape = tuple(reversed(reference_node.GetImageData().GetDimensions()))
    if labels.shape != reference_shape:
        raise ValueError(
            f"The label map '{name}' has {labels.shape[::-1]} voxels (i, j, k), the input "
            f"'{reference_node.GetName()}' {reference_shape[::-1]}: it must be on the input's voxel grid. Convert it "
            "to a segmentation (Segmentations module) to use it on any grid."
        )
    difference = float(np.abs(geometry - reference).max())
    if difference > _GRID_TOLERANCE_MM:
        raise ValueError(
            f"The label map '{name}' is not on the voxel grid of '{reference_node.GetName()}' (IJK to RAS differs by "
            f"{difference:.3g} mm). Convert it to a segmentation (Segmentations module) to use it on any grid."
        )
    return labels


def mask_volume(mask_node, reference_node, role: str = "mask"):
    """A ``meddenoiselib.io.Volume`` (uint8, 1 inside) on the voxel grid and world geometry of ``reference_node``.

    Args:
        mask_node: a ``vtkMRMLSegmentationNode`` (all segments) or ``vtkMRMLLabelMapVolumeNode`` (non-zero labels).
        reference_node: the input volume (its first frame's proxy node for a sequence).
        role: how messages name it (``"mask"``, ``"region left out"``).

    Raises:
        ValueError: an unsupported node, a label map on another grid, or a mask with no voxel inside.
    """
    from meddenoiselib.io.volume import SourceInfo, Volume

    inside = (labels_on_input_grid(mask_node, reference_node) != 0).astype(np.uint8)
    if not inside.any():
        raise ValueError(f"The {role} '{mask_node.GetName()}' has no voxel inside the input volume.")
    return Volume.from_ijk_to_ras(inside, grid_of_node(reference_node)[0], source=SourceInfo(path="", format="memory"))
