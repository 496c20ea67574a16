"""Noise and signal in regions the user names: what Slicer users measure by hand as the standard deviation in a
painted segment, before and after denoising, in the image's own units (HU for CT).

Without a clean image this is the usual proof of improvement: in a region of uniform tissue the standard deviation
is the noise, and the mean must not move; between two tissues the contrast-to-noise ratio says whether they became
easier to tell apart. CNR definitions differ between tools; the one here is stated with every number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MedDenoiseError
from ..io.volume import Volume

__all__ = ["CNR_DEFINITION", "MAX_REGIONS", "contrast_to_noise", "statistics_in_regions"]

#: the most label values measured (a label map of an atlas would otherwise give hundreds of rows)
MAX_REGIONS = 32
CNR_DEFINITION = "|mean1 - mean2| / sqrt((sd1^2 + sd2^2) / 2), the first two regions"


def _values(volume: Volume, region: np.ndarray) -> np.ndarray:
    """The voxels of ``region`` as float64 (the mean of the components for a multi-component image), NaN (no data)
    left out."""
    values = volume.array[region].astype(np.float64)
    if values.ndim > 1:
        values = values.mean(axis=-1)
    return values[~np.isnan(values)]


def statistics_in_regions(
    noisy: Volume, denoised: Volume, regions: list[tuple[int, str, np.ndarray]]
) -> list[dict[str, Any]]:
    """Voxel count, mean, standard deviation and SNR (mean / SD) before and after in each region.

    Args:
        noisy: the input, ``(Z, Y, X[, C])``, in its units. denoised: the output, the same grid.
        regions: ``(label, name, inside)``, ``inside`` boolean ``(Z, Y, X)`` on that grid; regions may overlap (the
            segments of a Slicer segmentation, :func:`~meddenoiselib.io.segmentation.label_regions`).

    Returns:
        One dict per region, in order: ``label``, ``name``, ``voxels``, ``mean_before``, ``sd_before``,
        ``snr_before``, ``mean_after``, ``sd_after``, ``snr_after`` (units of the image).

    Raises:
        MedDenoiseError: more than :data:`MAX_REGIONS` regions, or none.
    """
    if not regions:
        raise MedDenoiseError("the regions label nothing on the image's grid")
    if len(regions) > MAX_REGIONS:
        raise MedDenoiseError(
            f"the regions hold {len(regions)} label values; measure at most {MAX_REGIONS} (merge or pick labels first)"
        )
    rows = []
    for label, name, region in regions:
        row: dict[str, Any] = {"label": int(label), "name": name, "voxels": int(np.count_nonzero(region))}
        for when, image in (("before", noisy), ("after", denoised)):
            data = _values(image, region)
            mean = float(data.mean()) if data.size else float("nan")
            sd = float(data.std(ddof=1)) if data.size > 1 else float("nan")
            row[f"mean_{when}"], row[f"sd_{when}"] = mean, sd
            row[f"snr_{when}"] = mean / sd if sd > 0 else float("nan")
        rows.append(row)
    return rows


def contrast_to_noise(first: dict[str, Any], second: dict[str, Any], when: str) -> float:
    """:data:`CNR_DEFINITION` of two rows of :func:`statistics_in_regions`, ``when`` ``"before"`` or ``"after"``."""
    pooled = np.sqrt((first[f"sd_{when}"] ** 2 + second[f"sd_{when}"] ** 2) / 2)
    return float(abs(first[f"mean_{when}"] - second[f"mean_{when}"]) / pooled) if pooled > 0 else float("nan")
