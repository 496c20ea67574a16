"""Noise in painted regions, before and after: the standard deviation Slicer users measure in a segment to show what
denoising did without a clean image (user need 12), as ``denoise --measure`` gives it.

Each segment of a segmentation (segments may overlap: each is exported on its own) or each label value of a label
map is one region on the input's voxel grid. The numbers are ``meddenoiselib.evaluation.regions``'s, computed on
the output node's voxels as they are shown, so they follow the strength slider; a preview measures its one slice.
"""

from __future__ import annotations

import numpy as np
import vtk

from .masks import labels_on_input_grid

__all__ = ["RegionMeasurement", "fill_region_table", "regions_of_node"]

#: the region table's columns and the keys of ``statistics_in_regions`` rows they show.
_COLUMNS = (
    ("region", "name"),
    ("voxels", "voxels"),
    ("mean before", "mean_before"),
    ("mean after", "mean_after"),
    ("SD before", "sd_before"),
    ("SD after", "sd_after"),
    ("SNR before", "snr_before"),
    ("SNR after", "snr_after"),
)


def _label_names(labelmap) -> dict[int, str]:
    """Label value -> name from the label map's colour table (Slicer names label values there)."""
    display = labelmap.GetDisplayNode()
    colors = display.GetColorNode() if display is not None else None
    if colors is None:
        return {}
    names = {value: colors.GetColorName(value) for value in range(1, colors.GetNumberOfColors())}
    return {value: name for value, name in names.items() if name and name != "(none)"}


def regions_of_node(node, reference_node) -> list[tuple[str, np.ndarray]]:
    """``(name, inside)`` per region of ``node`` on ``reference_node``'s voxel grid; ``inside`` is bool ``(K, J, I)``.

    Args:
        node: a segmentation (one region per segment, named as in the Segment Editor; of more than
            ``MAX_REGIONS`` segments, the visible ones) or a label map (one region per non-zero value, named from its
            colour table, else ``label <value>``).
        reference_node: the input volume (its proxy node for a sequence).

    Raises:
        ValueError: an unsupported node, a label map off the grid, no region with a voxel on the grid, or more
            regions than ``meddenoiselib.evaluation.regions.MAX_REGIONS``.
    """
    from meddenoiselib.evaluation.regions import MAX_REGIONS

    name = node.GetName()
    if node.GetClassName() == "vtkMRMLSegmentationNode":
        segmentation = node.GetSegmentation()
        ids = vtk.vtkStringArray()
        segmentation.GetSegmentIDs(ids)
        segment_ids = [ids.GetValue(index) for index in range(ids.GetNumberOfValues())]
        if not segment_ids:
            raise ValueError(f"The segmentation '{name}' has no segments to measure.")
        display = node.GetDisplayNode()
        if len(segment_ids) > MAX_REGIONS and display is not None:
            # an atlas or TotalSegmentator result: the segments the user shows are the ones meant
            segment_ids = [segment_id for segment_id in segment_ids if display.GetSegmentVisibility(segment_id)]
        if len(segment_ids) > MAX_REGIONS:
            raise ValueError(
                f"'{name}' has {len(segment_ids)} visible segments; measure at most {MAX_REGIONS} (hide the others "
                "in the Segmentations module)."
            )
        regions = [
            (segmentation.GetSegment(segment_id).GetName(), labels_on_input_grid(node, reference_node, [segment_id]))
            for segment_id in segment_ids
        ]
        regions = [(segment, labels != 0) for segment, labels in regions]
    else:
        labels = labels_on_input_grid(node, reference_node)
        values = [int(value) for value in np.unique(labels) if value != 0]
        if len(values) > MAX_REGIONS:
            raise ValueError(f"'{name}' holds {len(values)} label values; measure at most {MAX_REGIONS}.")
        names = _label_names(node)
        regions = [(names.get(value) or f"label {value}", labels == value) for value in values]
    regions = [(segment, inside) for segment, inside in regions if inside.any()]
    if not regions:
        raise ValueError(f"'{name}' has no voxel on the grid of '{reference_node.GetName()}' to measure.")
    return regions


class RegionMeasurement:
    """The regions to measure on one image grid, and the latest numbers.

    Args:
        regions: ``(name, inside)`` pairs, ``inside`` bool on the measured image's grid ``(K, J, I)``; regions with
            no voxel there (e.g. outside a previewed slice) are left out and listed in :attr:`missing`.
        ijk_to_ras: that grid's geometry (4x4).
        where: what is measured, for the report (e.g. ``"slice 12"``, ``"item 3 of the sequence"``); "" for all.

    Attributes:
        rows: the latest ``meddenoiselib.evaluation.regions.statistics_in_regions`` rows (name, voxels, mean, SD and
            SNR before and after, in the input's units).
    """

    def __init__(self, regions: list[tuple[str, np.ndarray]], ijk_to_ras: np.ndarray, where: str = "") -> None:
        self.regions = [(name, inside) for name, inside in regions if inside.any()]
        self.missing = [name for name, inside in regions if not inside.any()]
        self.ijk_to_ras = np.asarray(ijk_to_ras, dtype=np.float64)
        self.where = where
        self.rows: list[dict] = []

    def measure(self, noisy: np.ndarray, shown: np.ndarray) -> list[dict]:
        """Statistics of every region in ``noisy`` (the input) and ``shown`` (the output at the current strength),
        both ``(K, J, I[, C])`` in the input's units."""
        from meddenoiselib.evaluation.regions import statistics_in_regions
        from meddenoiselib.io.volume import Volume

        before, after = (Volume.from_ijk_to_ras(np.asarray(array), self.ijk_to_ras) for array in (noisy, shown))
        regions = [(index + 1, name, inside) for index, (name, inside) in enumerate(self.regions)]
        self.rows = statistics_in_regions(before, after, regions)
        return self.rows

    def notes(self) -> dict[str, str]:
        """Report rows: the contrast-to-noise ratio of the first two regions (with its definition), what was
        measured, and the regions left out."""
        from meddenoiselib.evaluation.regions import CNR_DEFINITION, contrast_to_noise

        notes = {}
        if len(self.rows) >= 2:
            first, second = self.rows[:2]
            before, after = (contrast_to_noise(first, second, when) for when in ("before", "after"))
            notes[f"CNR of '{first['name']}' and '{second['name']}'"] = f"{before:.3g} -> {after:.3g}"
            notes["CNR definition"] = CNR_DEFINITION
        if self.where:
            notes["regions measured in"] = self.where
        if self.missing:
            notes["regions with no voxel there"] = ", ".join(self.missing)
        return notes


def fill_region_table(table, rows: list[dict]) -> None:
    """Replace the table's content: one row per region, :data:`_COLUMNS` (numbers in the input's units)."""
    was_modifying = table.StartModify()
    try:
        table.RemoveAllColumns()
        for title, _key in _COLUMNS:
            column = vtk.vtkStringArray()
            column.SetName(title)
            table.AddColumn(column)
        for values in rows:
            row = table.AddEmptyRow()
            for index, (_title, key) in enumerate(_COLUMNS):
                value = values[key]
                table.SetCellText(row, index, f"{value:.4g}" if isinstance(value, float) else str(value))
    finally:
        table.EndModify(was_modifying)
