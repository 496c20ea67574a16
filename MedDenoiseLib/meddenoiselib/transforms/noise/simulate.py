"""Simulate noise on a whole :class:`~meddenoiselib.io.Volume`, in the volume's own units (HU stay HU)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from ...io.volume import Volume
from ..intensity import IntensityScaling, ScalingMode, fit_scaling
from ..missing import fill_missing, missing_values
from .apply import add_noise
from .spec import NoiseKind, NoiseSpec

__all__ = ["simulate_volume", "in_plane_pixel_mm"]

logger = logging.getLogger(__name__)


def in_plane_pixel_mm(volume: Volume) -> float:
    """The in-plane (x, y) pixel spacing in mm; the geometric mean when the two differ (logged)."""
    x, y = volume.spacing[0], volume.spacing[1]
    if abs(x - y) > 0.01 * max(x, y):
        logger.warning("pixels are not square (%.4g x %.4g mm); CT noise uses their geometric mean", x, y)
    return float(np.sqrt(x * y))


def simulate_volume(
    volume: Volume,
    spec: NoiseSpec,
    seed: int = 0,
    scaling_mode: ScalingMode | str = ScalingMode.PERCENTILE,
    float_output: bool = False,
    on_slice: Callable[[], None] | None = None,
) -> Volume:
    """Add seeded noise to a volume and return it in the input's units and geometry.

    ``ct-lowdose`` works on the values as HU, slice by slice in the (y, x) plane; the other models work on the
    image normalized with ``scaling_mode`` (levels such as ``gaussian:25`` refer to that normalized scale) and
    the result is mapped back. Every component of a multi-component image gets its own noise.

    Args:
        volume: the clean volume (CT in HU for ``ct-lowdose``).
        spec: the noise model and level.
        seed: fixes the noise.
        scaling_mode: the normalization that intensity-relative levels refer to. Defaults to ``percentile``.
        float_output: return float32 instead of the input's dtype (integers are rounded and clipped otherwise).
        on_slice: ``ct-lowdose`` projection method: called after each slice.

    Returns:
        The noisy volume, same geometry, metadata and source.

    Raises:
        ValueError: ``ct-lowdose`` on a volume whose DICOM Modality is not CT.
    """
    missing = missing_values(volume.array, volume.source.path or "the volume")
    if missing is not None:  # no data (NaN) stays no data: noise is simulated on a filled copy, then NaN put back
        filled = volume.with_array(fill_missing(volume.array, missing, volume.num_components > 1))
        array = simulate_volume(filled, spec, seed, scaling_mode, float_output, on_slice).array
        array[missing] = np.nan
        return volume.with_array(array)
    modality = volume.metadata.get("0008|0060", "").strip().upper()
    if spec.kind == NoiseKind.CT_LOWDOSE and modality and modality != "CT":
        raise ValueError(f"ct-lowdose noise needs a CT image in HU, but the DICOM Modality is {modality}")
    generator = torch.Generator().manual_seed(int(seed))
    dtype = "float32" if float_output else volume.array.dtype.name
    components = (
        [volume.array] if volume.num_components == 1 else [volume.array[..., c] for c in range(volume.num_components)]
    )
    outputs = []
    for component in components:
        if spec.kind == NoiseKind.CT_LOWDOSE:
            scaling = IntensityScaling(low=0.0, high=1.0, dtype=component.dtype.name, mode=ScalingMode.FIXED.value)
            normalized = torch.from_numpy(np.asarray(component, dtype=np.float32))
            noisy = add_noise(normalized[None], spec, None, in_plane_pixel_mm(volume), generator, on_slice)[0]
        else:
            scaling = fit_scaling(component, scaling_mode)
            noisy = add_noise(torch.from_numpy(scaling.apply(component))[None], spec, scaling, None, generator)[0]
        outputs.append(scaling.invert(noisy.numpy(), dtype=dtype))
    array = outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=-1)
    return volume.with_array(array)
