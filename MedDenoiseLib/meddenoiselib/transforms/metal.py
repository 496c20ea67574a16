"""Metal in CT: the voxels ``auto`` leaves out of the denoising, so that a screw, a wire or an electrode neither
changes nor spreads into the tissue around it.

A denoiser averages a voxel with its neighbours (a kernel, a block match, a Wiener filter): next to an object at
3000 HU a few per cent of weight on it is a bright halo of tens of HU in the tissue. Tissue seldom reaches
:data:`METAL_HU` (cortical bone ~1000-2000 HU; tooth enamel can, and is then left out too, at no cost in a bone
window), while scanners store metal at ~3000 HU or above (some saturate at 2976), so what reaches it is left out, as
``exclude=`` leaves a region out. A voxel counts when it touches another one at the threshold (in 3D, 26-connected):
a wire one voxel wide or an electrode of a few voxels is metal, a lone noise spike in dense bone is not.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["METAL_HU", "metal_region"]

#: CT voxels at or above this value (HU), in a cluster, are taken for metal.
METAL_HU = 2500.0


def metal_region(hu: np.ndarray, threshold: float = METAL_HU) -> np.ndarray | None:
    """The metal voxels of a CT volume, or of each frame of a 4D CT series, or None when it has none.

    Args:
        hu: ``(Z, Y, X)``, or ``(T, Z, Y, X)`` for a series (each frame on its own), in HU, any real dtype.
        threshold: the HU value metal reaches (:data:`METAL_HU`).

    Returns:
        Boolean, ``hu``'s shape: voxels at or above ``threshold`` in 26-connected clusters (within their frame) of at
        least two; None when there is none.
    """
    if hu.ndim == 4:
        frames = [metal_region(frame, threshold) for frame in hu]
        if all(frame is None for frame in frames):
            return None
        return np.stack([np.zeros(hu.shape[1:], bool) if frame is None else frame for frame in frames])
    bright = hu >= threshold
    if not bright.any():
        return None
    # labelled within the bright voxels' bounding box: a whole CT's labels would take 4 bytes a voxel
    box = tuple(slice(int(np.argmax(a)), len(a) - int(np.argmax(a[::-1]))) for a in _occupied(bright))
    labels, _ = ndimage.label(bright[box], structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    region = np.zeros_like(bright)
    region[box] = sizes[labels] >= 2
    return region if region.any() else None


def _occupied(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whether each index along z, y and x holds a True voxel of ``mask``."""
    return mask.any(axis=(1, 2)), mask.any(axis=(0, 2)), mask.any(axis=(0, 1))
