"""Sequences (4D: cine ultrasound, perfusion, 4D CT) <-> ``meddenoiselib.io.VolumeSeries``.

In Slicer a sequence of volumes is shown through a *proxy* volume node of a sequence browser; selecting that proxy
as input denoises the whole sequence. Its items become one ``(T, k, j, i[, c])`` series (all items must share the
voxel grid), the library denoises it frame by frame (burst models see adjacent frames), and the result becomes a
new sequence ``"<name> denoised"`` with the same index values, added to the same browser so both play together.
"""

from __future__ import annotations

import numpy as np
import vtk

import slicer

from .volumes import INPUT_NODE_TYPES, world_ijk_to_ras

__all__ = ["create_output_sequence", "refresh_proxies", "sequence_of", "series_from_sequence"]

_GRID_TOLERANCE_MM = 1e-4


def sequence_of(node):
    """``(sequence node, browser node)`` when ``node`` is the proxy of a volume sequence, else None."""
    scene = node.GetScene() if node is not None else None
    if scene is None:
        return None
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSequenceBrowserNode")):
        browser = scene.GetNthNodeByClass(index, "vtkMRMLSequenceBrowserNode")
        if browser.IsProxyNodeID(node.GetID()):
            sequence = browser.GetSequenceNode(node)
            if sequence is not None and sequence.GetNumberOfDataNodes() > 0:
                return sequence, browser
    return None


def current_item(sequence, browser) -> int:
    """The item of ``sequence`` that ``browser`` shows now (0-based; through the index value when another sequence
    is the browser's master)."""
    selected = browser.GetSelectedItemNumber()
    master = browser.GetMasterSequenceNode()
    if master is None or master is sequence:
        return max(0, selected)
    item = sequence.GetItemNumberFromIndexValue(master.GetNthIndexValue(selected))
    return max(0, item)


def _matrix(node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def series_from_sequence(sequence, proxy):
    """The sequence's items as a ``VolumeSeries`` with the proxy's world geometry (its parent transform applied).

    Raises:
        ValueError: an item is not a volume the module denoises, or the items do not share one voxel grid.
    """
    from meddenoiselib.io.series import VolumeSeries

    count = sequence.GetNumberOfDataNodes()
    first = sequence.GetNthDataNode(0)
    reference = _matrix(first)
    dimensions = first.GetImageData().GetDimensions() if first.GetImageData() is not None else None
    arrays = []
    for index in range(count):
        item = sequence.GetNthDataNode(index)
        _check_item(item, sequence)
        if item.GetClassName() != first.GetClassName() or item.GetImageData().GetDimensions() != dimensions:
            raise ValueError(
                f"Item {index + 1} of the sequence '{sequence.GetName()}' differs in type or size from "
                "the first; only sequences of volumes on one voxel grid can be denoised."
            )
        if np.abs(_matrix(item) - reference).max() > _GRID_TOLERANCE_MM:
            raise ValueError(
                f"Item {index + 1} of the sequence '{sequence.GetName()}' is on another voxel grid than "
                "the first; only sequences of volumes on one voxel grid can be denoised."
            )
        arrays.append(np.array(slicer.util.arrayFromVolume(item), copy=True))
    world = reference
    if proxy.GetParentTransformNode() is not None:  # what hardening the proxy's transform would do to every item
        world = world_ijk_to_ras(proxy) @ np.linalg.inv(_matrix(proxy)) @ reference
    values = tuple(sequence.GetNthIndexValue(index) for index in range(count))
    return VolumeSeries.from_ijk_to_ras(np.stack(arrays), world, sequence.GetIndexName() or "frame", values)


def _check_item(item, sequence) -> None:
    if item.GetClassName() == "vtkMRMLDiffusionWeightedVolumeNode":
        raise ValueError(
            f"The sequence '{sequence.GetName()}' holds diffusion-weighted volumes, whose gradients the module "
            "keeps for one volume at a time; uncheck 'Denoise every frame' to denoise the one shown."
        )
    if item.GetClassName() not in INPUT_NODE_TYPES or item.GetImageData() is None:
        raise ValueError(
            f"The sequence '{sequence.GetName()}' holds {item.GetClassName()} items; only scalar and "
            "vector volumes can be denoised."
        )


def create_output_sequence(
    source, browser, frames: list[np.ndarray], ijk_to_ras: np.ndarray, name: str, class_name: str | None = None
):
    """A new sequence ``name`` with one item per frame (voxels, geometry), the source's index name, unit, type and
    values, added to ``browser`` as a synchronized sequence. Items are of the source items' class unless
    ``class_name`` is given. Returns ``(sequence, items)``."""
    scene = source.GetScene()
    output = scene.AddNewNodeByClass("vtkMRMLSequenceNode", scene.GenerateUniqueName(name))
    output.SetIndexName(source.GetIndexName())
    output.SetIndexUnit(source.GetIndexUnit())
    output.SetIndexType(source.GetIndexType())
    class_name = class_name or source.GetNthDataNode(0).GetClassName()
    matrix = slicer.util.vtkMatrixFromArray(np.asarray(ijk_to_ras, dtype=np.float64))
    items = []
    for index, frame in enumerate(frames):
        item = getattr(slicer, class_name)()
        item.SetName(f"{name} {index + 1}")
        item.SetIJKToRASMatrix(matrix)
        slicer.util.updateVolumeFromArray(item, np.ascontiguousarray(frame))
        output.SetDataNodeAtValue(item, source.GetNthIndexValue(index))
        items.append(output.GetNthDataNode(index))  # the sequence keeps its own copy: blend into that one
    if browser is not None:
        browser.AddSynchronizedSequenceNodeID(output.GetID())
    return output, items


def refresh_proxies(browser, sequences_logic=None) -> None:
    """Show the current item of every synchronized sequence in its proxy node (after items changed)."""
    if browser is None:
        return
    if sequences_logic is not None:
        sequences_logic.UpdateProxyNodesFromSequences(browser)
    else:
        browser.Modified()
