"""A noise level that varies across the image, given per voxel: what MR reconstructions with parallel imaging
(SENSE / GRAPPA g-factor maps), MP-PCA (MRtrix ``dwidenoise -noise``, dipy) and PIESNO-per-slice pipelines hand on.

The image is divided by the map, which makes the noise's SD 1 everywhere, denoised as an image of that known level,
and multiplied back (a variance-stabilizing transform for additive noise of known local SD). The map is used
smoothed (a Gaussian of :data:`SMOOTHING_PX` pixels in each slice): a map estimated from the data is itself noisy,
and its pixel-to-pixel scatter would otherwise come back into the result through the multiplication.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NoiseSDMap", "SMOOTHING_PX"]

#: the in-plane Gaussian (pixels) the map is smoothed with before use
SMOOTHING_PX = 2.0


@dataclass(frozen=True, eq=False)
class NoiseSDMap:
    """The noise's standard deviation per voxel, in the image's units (HU for CT, the stored grey values else; for
    magnitude MR the per-channel sigma of the Gaussian noise under the magnitude).

    Attributes:
        values: ``(Z, Y, X)`` array or :class:`~meddenoiselib.io.Volume` on the image's grid (its geometry is then
            checked); for a 4D series one map for every frame. Voxels without a positive finite value (air that an
            MP-PCA map leaves at 0, NaN) take the map's median.
        label: how messages name it (its file).
    """

    values: object
    label: str = "the noise SD map"

    def on_grid(self, image) -> np.ndarray:
        """The map as used for ``image`` (a ``Volume`` or ``VolumeSeries``): float32 ``(Z, Y, X)``, every voxel
        positive, smoothed in-plane.

        Raises:
            MedDenoiseError: the map's components, shape or geometry differ from the image's, or it holds no
                positive value (or a negative one).
        """
        from scipy import ndimage

        from ..blend import check_same_grid
        from ..errors import MedDenoiseError

        given = self.values
        if hasattr(given, "array"):
            if given.num_components != 1:
                raise MedDenoiseError(f"{self.label} has {given.num_components} components; a noise SD map has one")
            if tuple(given.shape) == tuple(image.shape):
                check_same_grid(given, image, self.label, "noise SD map")
        values = self._array()
        if values.shape != tuple(image.shape):
            raise MedDenoiseError(
                f"{self.label} has shape {values.shape} (z, y, x) but the image has {tuple(image.shape)}; the noise "
                "SD map must be on the image's voxel grid"
            )
        if (values[np.isfinite(values)] < 0).any():
            raise MedDenoiseError(f"{self.label} holds negative values; a noise SD map holds standard deviations")
        usable = _usable(values)
        if not usable.any():
            raise MedDenoiseError(f"{self.label} holds no positive value")
        filled = np.where(usable, values, np.median(values[usable]))
        smoothed = ndimage.gaussian_filter(filled, (0.0, SMOOTHING_PX, SMOOTHING_PX), mode="nearest")
        return np.maximum(smoothed, 1e-6 * float(smoothed.max())).astype(np.float32)

    def median(self) -> float:
        """The median of the map's positive values (for logs and reports)."""
        values = self._array()
        usable = values[_usable(values)]
        return float(np.median(usable)) if usable.size else 0.0

    def _array(self) -> np.ndarray:
        """The map's values as float64, from a volume or an array."""
        return np.asarray(self.values.array if hasattr(self.values, "array") else self.values, dtype=np.float64)


def _usable(values: np.ndarray) -> np.ndarray:
    """Where a map holds a noise SD: finite and positive (air an MP-PCA map leaves at 0 and NaN do not)."""
    return np.isfinite(values) & (values > 0)
