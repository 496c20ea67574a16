"""The nodes a finished run creates or fills: the output volume, the residual volume and the QA report table.

The output is a new node per run (``"<input> denoised"``, made unique) unless the user picked one, so a second
Apply on another input never overwrites the first result. Voxels are written by :class:`~.blend.LiveBlend`
(the strength blend), geometry here.
"""

from __future__ import annotations

import numpy as np
import vtk

import slicer

from .volumes import copy_display_settings, output_node_name, place_next_to

__all__ = [
    "create_output_volume",
    "create_residual_volume",
    "fill_report_table",
    "finish_output_volume",
    "prepare_output_volume",
    "report_rows",
]

#: report keys shown first, with their labels; every other key follows under its own name.
_KNOWN_ROWS = (
    ("method", "model"),
    ("model_choice", "model choice"),
    ("device", "device"),
    ("seconds", "run time (s)"),
    ("noise_before_hu", "noise in flat body tissue before (HU)"),
    ("noise_after_hu", "noise in flat body tissue after (HU)"),
    ("noise_sd_before", "noise SD before (image units)"),
    ("noise_sd_after", "noise SD after (image units)"),
    ("noise_sd_measure", "noise SD measured in"),
    ("noise_floor_varies", "noise floor varies across the image"),
    ("noise_sd_map", "noise SD map the image was divided by"),
    ("noise_sigma_before_0_255", "noise before (0-255 scale)"),
    ("noise_sigma_after_0_255", "noise after (0-255 scale)"),
    ("sigma_used_0_255", "noise level used (0-255 scale)"),
    ("residual_std", "residual standard deviation"),
    ("residual_neighbour_correlation", "residual neighbour correlation (0 = white noise)"),
    ("frames", "frames"),
)
#: report keys not shown (paths of the temporary hand-over files, versions).
_HIDDEN = {"input", "output"}


def _set_geometry(node, ijk_to_ras: np.ndarray, transform_id: str | None = None) -> None:
    node.SetAndObserveTransformNodeID(transform_id)
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(np.asarray(ijk_to_ras, dtype=np.float64)))


def prepare_output_volume(node, template: np.ndarray, ijk_to_ras: np.ndarray, transform_id: str | None = None) -> None:
    """Give ``node`` the geometry and voxel layout (shape, dtype, components) of ``template`` (values come later),
    under the parent transform ``transform_id`` (None: none; an input under a non-linear transform gives its own,
    see ``volumes.grid_of_node``)."""
    was_modifying = node.StartModify()
    try:
        _set_geometry(node, ijk_to_ras, transform_id)
        slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(template))
    finally:
        node.EndModify(was_modifying)


def create_output_volume(input_node, requested=None, what: str = "denoised", class_name: str | None = None):
    """``(node, created)``: the user's output node, or a new ``"<input> denoised"`` node of the input's class, or of
    ``class_name`` (``"<input> preview"`` for a preview's slice).

    Raises:
        ValueError: the requested node is of another class than the output's (a scalar volume cannot hold colour).
    """
    class_name = class_name or input_node.GetClassName()
    if requested is not None:
        if requested.GetClassName() != class_name:
            raise ValueError(
                f"The output '{requested.GetName()}' is a {requested.GetClassName()} but the result is a "
                f"{class_name}; choose 'Create new volume'."
            )
        return requested, False
    scene = input_node.GetScene()
    if scene is None:
        raise ValueError("the input volume is not in a scene")
    node = scene.AddNewNodeByClass(class_name, output_node_name(scene, input_node, what))
    return node, True


def finish_output_volume(input_node, node, created: bool) -> None:
    """Display settings like the input's and a place beside it in the subject hierarchy (new nodes)."""
    if created or node.GetDisplayNode() is None:
        copy_display_settings(input_node, node)
    if created:
        place_next_to(input_node, node)


def create_residual_volume(
    input_node,
    template_shape: tuple[int, ...],
    ijk_to_ras: np.ndarray,
    what: str = "residual",
    transform_id: str | None = None,
):
    """A new float32 ``"<input> residual"`` node (input minus output) with the input's geometry (and parent
    transform ``transform_id``, as :func:`prepare_output_volume`); ``what="noise map"`` names it ``"<input> noise
    map"`` (the local standard deviation of the residual)."""
    scene = input_node.GetScene()
    class_name = "vtkMRMLVectorVolumeNode" if len(template_shape) == 4 else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(class_name, scene.GenerateUniqueName(f"{input_node.GetName()} {what}"))
    prepare_output_volume(node, np.zeros(template_shape, np.float32), ijk_to_ras, transform_id)
    node.CreateDefaultDisplayNodes()
    place_next_to(input_node, node)
    return node


def report_rows(report: dict, strength: float | None = None, notes: dict | None = None) -> list[tuple[str, str]]:
    """``(quantity, value)`` rows for the QA table: known quantities first, then everything else the library
    reported (e.g. why the automatic choice picked a model), then the module's own notes."""
    values = dict(report)
    values.update(notes or {})
    rows, seen = [], set()
    for key, label in _KNOWN_ROWS:
        if key in values:
            rows.append((label, _text(values[key])))
            seen.add(key)
    for key, value in values.items():
        if key not in seen and key not in _HIDDEN:
            rows.append((key.replace("_", " "), _text(value)))
    if strength is not None:
        rows.append(("strength (blend with the input)", f"{strength:.2f}"))
    return rows


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return (
            " x ".join(_text(v) for v in value)
            if all(isinstance(v, int) for v in value)
            else ", ".join(_text(v) for v in value)
        )
    return str(value)


def fill_report_table(table, rows: list[tuple[str, str]]) -> None:
    """Replace the table's content with two string columns, ``quantity`` and ``value``."""
    was_modifying = table.StartModify()
    try:
        table.RemoveAllColumns()
        for name in ("quantity", "value"):
            column = vtk.vtkStringArray()
            column.SetName(name)
            table.AddColumn(column)
        for quantity, value in rows:
            row = table.AddEmptyRow()
            table.SetCellText(row, 0, quantity)
            table.SetCellText(row, 1, value)
    finally:
        table.EndModify(was_modifying)
