"""Label images as regions: a label map's values, or the segments of a 3D Slicer segmentation, overlapping ones too.

Slicer saves a segmentation whose segments overlap (a lesion inside an organ, a ring around a region) as several
layers, the components of its ``.seg.nrrd``: a segment is the voxels of its layer at its label value. As a mask
(``--mask``, ``--exclude``) a segmentation counts as the union of all its segments; measured (``--measure``) each
segment is a region of its own, whole even where it overlaps another.
"""

from __future__ import annotations

import numpy as np

from ..errors import MedDenoiseError
from .probe import Segment
from .volume import Volume

__all__ = ["label_regions", "read_mask_image", "union_of_labels"]


def union_of_labels(labels: Volume) -> Volume:
    """``labels`` as one label image: non-zero where any layer (component) is; a single-component image as it is."""
    if labels.num_components == 1:
        return labels
    return labels.with_array((np.asarray(labels.array) != 0).any(axis=-1).astype(np.uint8))


def read_mask_image(path) -> Volume:
    """A mask file (``--mask``, ``--exclude``, a bundle datalist's ``mask`` / ``exclude``) as one label image: a
    label map as it is, a Slicer segmentation whose segments overlap (several layers) as the union of its segments."""
    from .probe import slicer_segments
    from .readers import read_volume

    labels = read_volume(path)
    return union_of_labels(labels) if labels.num_components > 1 and slicer_segments(path) else labels


def label_regions(labels: Volume, segments: list[Segment] | None = None) -> list[tuple[int, str, np.ndarray]]:
    """``(label, name, inside)`` per region, ``inside`` boolean ``(Z, Y, X)``; regions with no voxel left out.

    Args:
        labels: a label map ``(Z, Y, X)``, or a layered segmentation ``(Z, Y, X, layers)``.
        segments: the file's segments (:func:`~meddenoiselib.io.probe.slicer_segments`): each one is a region,
            named, with its label value. Without them each non-zero value of a label map is one (no name).

    Raises:
        MedDenoiseError: several components without segments (not a label map).
    """
    array = np.asarray(labels.array)
    layers = array[..., np.newaxis] if labels.num_components == 1 else array
    if segments:
        found = [
            (segment.value, segment.name, layers[..., segment.layer] == segment.value)
            for segment in segments
            if segment.layer < layers.shape[-1]
        ]
    elif labels.num_components > 1:
        raise MedDenoiseError(
            f"the regions have {labels.num_components} components and no segments: a label map has one component "
            "(or is a 3D Slicer segmentation, whose layers its header names)"
        )
    else:
        found = [(int(value), "", array == value) for value in np.unique(array[array != 0])]
    return [(label, name, inside) for label, name, inside in found if inside.any()]
