"""Multi-volume nodes (Slicer's MultiVolumeImporter: a DCE, perfusion or multi-echo DICOM run) <-> ``VolumeSeries``.

Slicer's DICOM module loads a 4D DICOM series that is not a DWI (a DCE-MRI or CT perfusion run, variable flip angles,
multiple echoes) as a ``vtkMRMLMultiVolumeNode``: a scalar volume whose image holds one frame per component (numpy
``(k, j, i, F)``), described by ``MultiVolume.*`` attributes: the DICOM tag that tells the frames apart
(``MultiVolume.FrameIdentifyingDICOMTagName``, e.g. ``TriggerTime``), its units and each frame's value
(``MultiVolume.FrameLabels``). The library denoises it as a series: time frames with a burst model's adjacent
frames, frames of another contrast (echoes, flip angles, inversion times) each with its own adjacent slices. The
result is a node of the input's class with its attributes, so the Multi-volume Explorer plots it as it plots the
input.
"""

from __future__ import annotations

import numpy as np

import slicer

from .volumes import world_ijk_to_ras

__all__ = [
    "MULTIVOLUME_CLASS",
    "copy_multivolume_attributes",
    "is_multivolume",
    "series_from_multivolume",
    "shown_frame",
]

MULTIVOLUME_CLASS = "vtkMRMLMultiVolumeNode"
#: the attribute the importer gives every multi-volume (the number of frames)
FRAMES_ATTRIBUTE = "MultiVolume.NumberOfFrames"
_PREFIX = "MultiVolume."
#: the DICOM tags that tell time frames and echoes apart (another tag: another contrast in each frame)
_TIME_TAGS = ("TriggerTime", "AcquisitionTime", "ContentTime", "TemporalPositionIdentifier", "AcquisitionNumber")
_ECHO_TAGS = ("EchoTime", "EchoNumbers")


def is_multivolume(node) -> bool:
    """Whether ``node`` is a multi-volume node: of that class, or a volume of several components with the importer's
    ``MultiVolume.NumberOfFrames`` attribute (a vector volume saved and loaded back)."""
    if node is None:
        return False
    if node.GetClassName() == MULTIVOLUME_CLASS:
        return True
    image = node.GetImageData()
    components = image.GetNumberOfScalarComponents() if image is not None else 1
    return bool(node.GetAttribute(FRAMES_ATTRIBUTE)) and components > 1


def _frame_label(node) -> str:
    tag = (node.GetAttribute(_PREFIX + "FrameIdentifyingDICOMTagName") or "").strip()
    if not tag or tag in _TIME_TAGS:
        return "time"
    if tag in _ECHO_TAGS:
        return "echo"
    return "repeat"  # flip angles, repetition or inversion times: another contrast in each frame


def series_from_multivolume(node):
    """The node's frames as a ``VolumeSeries`` ``(F, k, j, i)`` with the node's world geometry, labelled by the tag
    that tells them apart (``"time"``, ``"echo"``, else ``"repeat"``: another contrast in each frame) and valued by
    its frame labels.

    Raises:
        ValueError: the node has no voxels.
    """
    from meddenoiselib.io.series import VolumeSeries

    image = node.GetImageData()
    if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
        raise ValueError(f"'{node.GetName()}' has no voxels.")
    array = slicer.util.arrayFromVolume(node)
    if array.ndim == 3:
        array = array[..., np.newaxis]
    frames = np.ascontiguousarray(np.moveaxis(array, -1, 0))  # a copy, detached from VTK memory
    labels = [v.strip() for v in (node.GetAttribute(_PREFIX + "FrameLabels") or "").split(",") if v.strip()]
    values = tuple(labels) if len(labels) == frames.shape[0] else ()
    return VolumeSeries.from_ijk_to_ras(frames, world_ijk_to_ras(node), _frame_label(node), values)


def copy_multivolume_attributes(source, target) -> None:
    """Give ``target`` the ``MultiVolume.*`` attributes of ``source`` (frame labels, tag, units, count)."""
    for name in source.GetAttributeNames() or ():
        if name.startswith(_PREFIX):
            target.SetAttribute(name, source.GetAttribute(name))


def shown_frame(node) -> int:
    """The frame (component) the node's display shows, 0-based (a multi-volume display node's frame component);
    0 without one."""
    display = node.GetDisplayNode()
    component = display.GetFrameComponent() if display is not None and hasattr(display, "GetFrameComponent") else 0
    count = max(1, node.GetImageData().GetNumberOfScalarComponents()) if node.GetImageData() is not None else 1
    return int(min(max(component, 0), count - 1))
