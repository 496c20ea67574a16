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

__all__ = ["NoiseSDMap", "SMOOTHING_PX", "estimate_noise_sd_map"]

#: the in-plane Gaussian (pixels) the map is smoothed with before use
SMOOTHING_PX = 2.0
#: edge, in coefficients of the finest wavelet band (twice as many pixels), of the tiles an estimated map is read in:
#: 256 coefficients give each tile's SD within ~8 %, and 32 pixels follow a g-factor's variation across a head
ESTIMATE_TILE = 16
#: the relative standard error of an SD read as ``median(|c|) / 0.6745`` from ``n`` Gaussian coefficients is this
#: over ``sqrt(n)`` (the median absolute deviation's asymptotic efficiency, 37 %): 7.3 % for a tile of 256
MAD_RELATIVE_ERROR = 1.17
#: a magnitude tile whose median reads a sigma (as the median of a pure floor) within this factor of the one its spread
#: reads is air, and takes the median's: tissue at an SNR of 2.5 or more reads 1.2x or more by its median (8 coils;
#: at one coil 1.9x already at an SNR of 2)
AIR_AGREEMENT = 1.15
#: what a front end's option gives for a map estimated from the image (:meth:`NoiseSDMap.named_by`)
ESTIMATED_OPTION = "auto"
#: the label of a map estimated from the image (:meth:`NoiseSDMap.estimated`)
ESTIMATED_LABEL = "the noise SD map estimated from the image"


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

    @classmethod
    def estimated(cls, reason: str = "") -> NoiseSDMap:
        """A map read from the image it is used with (:func:`estimate_noise_sd_map`), for noise that varies across
        the image where no map was given (the CLI's ``--noise-sd-map auto``); ``reason``, why, ends its label."""
        return cls(values=None, label=f"{ESTIMATED_LABEL} ({reason})" if reason else ESTIMATED_LABEL)

    @classmethod
    def named_by(cls, given) -> NoiseSDMap:
        """The map a front end's option names: a volume file (read with the library's reader, labelled by its path),
        or ``"auto"`` for :meth:`estimated` (the CLI's ``--noise-sd-map``, a bundle datalist's ``noise_sd_map``)."""
        if str(given) == ESTIMATED_OPTION:
            return cls.estimated()
        from ..io import read_volume

        return cls(read_volume(given), label=str(given))

    @property
    def is_estimated(self) -> bool:
        return self.values is None

    @property
    def named(self) -> str:
        """How a sentence names the map: ``the noise SD map <file>``, or the estimated map's label."""
        return self.label if self.is_estimated else f"the noise SD map {self.label}"

    def on_grid(self, image) -> np.ndarray:
        """The map as used for ``image`` (a ``Volume`` or ``VolumeSeries``): float32 ``(Z, Y, X)``, every voxel
        positive, smoothed in-plane.

        Raises:
            MedDenoiseError: the map's components, shape or geometry differ from the image's, or it holds no
                positive value (or a negative one).
        """
        from ..blend import check_same_grid
        from ..errors import MedDenoiseError

        if self.is_estimated:
            first = image.frame(0) if hasattr(image, "frame") else image  # one map for every frame of a series
            if first.num_components != 1:
                raise MedDenoiseError(
                    f"{self.label}: the image has {first.num_components} components; a noise SD map is estimated "
                    "from one"
                )
            estimated = estimate_noise_sd_map(first.array)
            if not (estimated > 0).any():
                raise MedDenoiseError(f"{self.label}: the image shows no noise to read it from (a constant image)")
            return _smoothed(estimated)
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
        return _smoothed(np.where(usable, values, np.median(values[usable])))

    def _array(self) -> np.ndarray:
        """The map's values as float64, from a volume or an array."""
        return np.asarray(self.values.array if hasattr(self.values, "array") else self.values, dtype=np.float64)


def _usable(values: np.ndarray) -> np.ndarray:
    """Where a map holds a noise SD: finite and positive (air an MP-PCA map leaves at 0 and NaN do not)."""
    return np.isfinite(values) & (values > 0)


def _smoothed(values: np.ndarray) -> np.ndarray:
    """A map with a positive value everywhere, smoothed in-plane by :data:`SMOOTHING_PX`: float32, every voxel > 0."""
    from scipy import ndimage

    smoothed = ndimage.gaussian_filter(values.astype(np.float64), (0.0, SMOOTHING_PX, SMOOTHING_PX), mode="nearest")
    return np.maximum(smoothed, 1e-6 * float(smoothed.max())).astype(np.float32)


def estimate_noise_sd_map(array: np.ndarray, coils: int | None = None) -> np.ndarray:
    """The noise's SD per voxel, read from the image itself: for noise whose level varies across the image (MR with
    parallel imaging, a surface coil) when no map was measured.

    Each slice ``array[z]`` is cut into tiles of :data:`ESTIMATE_TILE` coefficients of its finest diagonal wavelet band
    (where smooth anatomy nearly vanishes and white noise keeps its SD); each tile's SD is the band's median absolute
    value / 0.6745, robust to the edges a tile holds. For a magnitude image (a noise floor found, or ``coils`` given)
    a tile's SD is that of the magnitude, which in air is 0.66 of the per-channel sigma: it is turned into sigma from
    the tile's mean and SD with the non-central chi moments (Koay & Basser's correction). Tiles of a masked background
    (the image's minimum, no noise to read) take their nearest tiles' values; a 3 x 3 median then removes tiles that an
    edge dominates, and the tiles are smoothed (one tile in-plane, one slice through the volume) and interpolated to
    the voxels. Only the finest detail is read, so noise that is correlated (CT after reconstruction) is missed.

    Args:
        array: ``(Z, Y, X)`` in the image's units (one component).
        coils: the coil count of a magnitude image's noise (non-central chi with ``2 coils`` degrees of freedom);
            None: read from the image's noise floor (:func:`~.magnitude.estimate_magnitude_floor`), Gaussian noise
            where it has none.

    Returns:
        float32 ``(Z, Y, X)``, >= 0, the image's units (the per-channel sigma for a magnitude image).
    """
    from scipy import ndimage

    from .magnitude import estimate_magnitude_floor

    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"expected (Z, Y, X), got shape {array.shape}")
    if coils is None:
        floor = estimate_magnitude_floor(array)
        coils = floor.coils if floor is not None else None
    tiles = np.stack([_tile_sigma(image, coils) for image in array])
    tiles = ndimage.gaussian_filter(tiles, (1.0 if len(tiles) > 1 else 0.0, 1.0, 1.0), mode="nearest")
    zoom = (1.0, array.shape[1] / tiles.shape[1], array.shape[2] / tiles.shape[2])
    full = ndimage.zoom(tiles, zoom, order=1, mode="nearest", grid_mode=True)
    return np.maximum(full[:, : array.shape[1], : array.shape[2]], 0.0).astype(np.float32)


def _tile_sigma(image: np.ndarray, coils: int | None) -> np.ndarray:
    """One slice's noise SD per tile of :func:`estimate_noise_sd_map`, ``(tiles down, tiles across)``."""
    from scipy import ndimage

    from .estimate import finest_diagonal_band, unmasked_coefficients
    from .magnitude import floor_median, magnitude_sd_to_sigma
    from .quantization import interval_median

    band = finest_diagonal_band(image)
    signal = unmasked_coefficients(image)
    rows = np.linspace(0, band.shape[0], max(band.shape[0] // ESTIMATE_TILE, 1) + 1).astype(int)
    columns = np.linspace(0, band.shape[1], max(band.shape[1] // ESTIMATE_TILE, 1) + 1).astype(int)
    spread = np.full((len(rows) - 1, len(columns) - 1), np.nan)
    mean, median, counts = np.zeros_like(spread), np.zeros_like(spread), np.zeros_like(spread)
    for i in range(len(rows) - 1):
        for j in range(len(columns) - 1):
            part = (slice(rows[i], rows[i + 1]), slice(columns[j], columns[j + 1]))
            kept = band[part][signal[part]]
            if kept.size and kept.size >= band[part].size // 2:
                spread[i, j] = float(np.median(np.abs(kept))) / 0.6745
                counts[i, j] = kept.size
                pixels = image[2 * rows[i] : 2 * rows[i + 1], 2 * columns[j] : 2 * columns[j + 1]]
                mean[i, j] = float(pixels.mean())
                if coils is not None:
                    median[i, j] = interval_median(pixels)
    valid = np.isfinite(spread) & (spread > 0)
    if not valid.any():
        return np.zeros_like(spread)
    if coils is not None:
        error = MAD_RELATIVE_ERROR / np.sqrt(np.median(counts[valid]))
        spread[valid] = magnitude_sd_to_sigma(mean[valid], spread[valid], coils, error)
        # a tile of air holds sigma in its median far more precisely than in its spread (1024 pixels: ~0.7 %
        # against ~7 %), and a floor of several coils is removed only as well as its sigma is known (8 coils: its
        # mean lies at 3.9 sigma, and 2 % off leaves the air ~0.5 sigma bright)
        as_air = median / floor_median(coils)
        air = valid & (np.abs(np.log(np.maximum(as_air, 1e-12) / np.maximum(spread, 1e-12))) < np.log(AIR_AGREEMENT))
        spread[air] = as_air[air]
    nearest = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    spread = spread[tuple(nearest)]
    if min(spread.shape) >= 3:
        spread = ndimage.median_filter(spread, size=3, mode="nearest")
    return spread
