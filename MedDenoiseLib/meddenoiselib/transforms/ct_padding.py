"""CT voxels outside the reconstructed field of view (the scanner's padding), kept out of denoising.

Scanners store what lies outside the reconstruction circle as a padding value far below air: -3024 HU (GE, Canon),
-2048 or -2000 (others), -1500 (older GE heads). It is not a measurement. Where the body fills the field of view
(a targeted spine or cardiac reconstruction) the padding meets skin in a ~3000 HU step; a denoiser smears that step
into the body (a KPN's output is a weighted sum of its input: hundreds of HU along the circle on a 130 mm lumbar
spine FOV). So denoising sees every padding voxel replaced by the nearest voxel inside the reconstruction, the
output gives the padding back unchanged, and simulated scanner noise leaves it alone, as a scanner does.
"""

from __future__ import annotations

import numpy as np

from .missing import fill_from_nearest

__all__ = ["OUTSIDE_RECONSTRUCTION_HU", "outside_reconstruction", "fill_outside_reconstruction"]

#: voxels below this (HU) are padding: 400 HU below air, beyond what noise in air reaches (7 sigma at 60 HU), and
#: above every padding value in use (-1500 the highest)
OUTSIDE_RECONSTRUCTION_HU = -1400.0

#: what a slice that is padding throughout is filled with (air)
_AIR_HU = -1000.0


def outside_reconstruction(hu: np.ndarray) -> np.ndarray | None:
    """The padding voxels of a CT image.

    Args:
        hu: ``(..., Y, X)`` values in HU (any real dtype).

    Returns:
        A boolean array of ``hu``'s shape, True outside the reconstruction; None when there is no padding (most
        scans that store air at -1024), so callers skip the work.
    """
    outside = hu < OUTSIDE_RECONSTRUCTION_HU
    return outside if outside.any() else None


def fill_outside_reconstruction(hu: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """A float copy of ``hu`` with each padding voxel set to the nearest voxel inside the reconstruction of its
    own slice (``hu`` itself is not modified).

    Args:
        hu: ``(..., Y, X)`` values in HU.
        outside: boolean mask of ``hu``'s shape (:func:`outside_reconstruction`).

    Returns:
        ``(..., Y, X)`` float32 (float64 for float64 input); a slice that is padding throughout becomes air
        (-1000 HU).
    """
    # float64 stays float64: values beyond float32's range must reach the Denoiser's own overflow handling
    filled = np.array(hu, dtype=np.float64 if hu.dtype == np.float64 else np.float32, copy=True)
    fill_from_nearest(filled, outside, _AIR_HU)
    return filled
