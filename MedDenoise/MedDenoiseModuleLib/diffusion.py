"""Diffusion-weighted volume nodes (DWI) <-> ``meddenoiselib.io.VolumeSeries`` of gradient frames.

A ``vtkMRMLDiffusionWeightedVolumeNode`` holds one volume per diffusion gradient as the components of its image
(numpy ``(k, j, i, G)``), with the gradient directions, b-values and measurement frame beside it. The library
denoises a DWI as a series of magnitude MR frames, ``frame_label="gradient"`` (as it reads a NRRD with ``DWMRI``
keys or a NIfTI with its ``.bval``): each gradient's volume on its own, never mixing b = 0 and diffusion-weighted
contrast. Here the components become frames and back, and the result node gets the input's gradients, b-values and
measurement frame, so tensor fitting and tractography read it as they read the input.
"""

from __future__ import annotations

import numpy as np
import vtk

import slicer

from .volumes import world_ijk_to_ras

__all__ = [
    "DWI_CLASS",
    "check_diffusion_transform",
    "copy_diffusion_table",
    "dwi_array",
    "is_diffusion_weighted",
    "series_from_dwi",
    "shown_gradient",
]

DWI_CLASS = "vtkMRMLDiffusionWeightedVolumeNode"

_ROTATION_TOLERANCE = 1e-6


def is_diffusion_weighted(node) -> bool:
    """Whether ``node`` is a DWI node (its components are gradient volumes, not colours)."""
    return node is not None and node.GetClassName() == DWI_CLASS


def check_diffusion_transform(node) -> None:
    """Refuse a DWI under a transform that turns its voxel axes: its gradient directions, given in the measurement
    frame, would no longer point where the denoised volume's anatomy lies. A translation is harmless.

    Raises:
        ValueError: the message names the node and the transform, and says to harden the transform first.
    """
    transform = node.GetParentTransformNode()
    if transform is None:
        return
    world = world_ijk_to_ras(node)  # refuses non-linear and shearing transforms with their own message
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    own = slicer.util.arrayFromVTKMatrix(matrix)
    if np.abs(world[:3, :3] - own[:3, :3]).max() > _ROTATION_TOLERANCE * max(1.0, np.abs(own[:3, :3]).max()):
        raise ValueError(
            f"'{node.GetName()}' is a diffusion-weighted volume under the transform '{transform.GetName()}', which "
            "turns it; its gradient directions would no longer match the anatomy. Harden the transform on the volume "
            "first (Transforms module, which rotates the gradients with it), then denoise."
        )


def series_from_dwi(node):
    """The DWI's gradient volumes as a ``VolumeSeries`` ``(G, k, j, i)`` with the node's world geometry, frames
    labelled ``"gradient"`` and valued by their b-values (s/mm^2).

    Raises:
        ValueError: the node has no voxels, or is under a transform that turns it (:func:`check_diffusion_transform`).
    """
    from meddenoiselib.io.series import VolumeSeries

    check_diffusion_transform(node)
    image = node.GetImageData()
    if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
        raise ValueError(f"'{node.GetName()}' has no voxels.")
    array = slicer.util.arrayFromVolume(node)
    if array.ndim == 3:  # one gradient: VTK drops the component axis
        array = array[..., np.newaxis]
    frames = np.ascontiguousarray(np.moveaxis(array, -1, 0))  # a copy, detached from VTK memory
    values = tuple(_b_value_text(node, g) for g in range(frames.shape[0]))
    return VolumeSeries.from_ijk_to_ras(frames, world_ijk_to_ras(node), "gradient", values)


def _b_value_text(node, gradient: int) -> str:
    if gradient >= node.GetNumberOfGradients():
        return ""
    value = float(node.GetBValue(gradient))
    return f"{value:g}"


def dwi_array(frames: np.ndarray) -> np.ndarray:
    """``(G, k, j, i)`` gradient frames -> the DWI node's ``(k, j, i, G)`` voxels (contiguous)."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(frames), 0, -1))


def copy_diffusion_table(source, target) -> None:
    """Give ``target`` the gradient directions, b-values and measurement frame of ``source`` (both DWI nodes)."""
    gradients, b_values = vtk.vtkDoubleArray(), vtk.vtkDoubleArray()
    gradients.DeepCopy(source.GetDiffusionGradients())
    b_values.DeepCopy(source.GetBValues())
    frame = vtk.vtkMatrix4x4()
    source.GetMeasurementFrameMatrix(frame)
    was_modifying = target.StartModify()
    try:
        target.SetDiffusionGradients(gradients)
        target.SetBValues(b_values)
        target.SetMeasurementFrameMatrix(frame)
    finally:
        target.EndModify(was_modifying)


def shown_gradient(node) -> int:
    """The gradient (component) the DWI's display node shows, 0-based; 0 without a display node."""
    display = node.GetDisplayNode()
    component = display.GetDiffusionComponent() if display is not None else 0
    count = max(1, node.GetImageData().GetNumberOfScalarComponents()) if node.GetImageData() is not None else 1
    return int(min(max(component, 0), count - 1))
