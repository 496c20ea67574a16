"""Denoising under a noise SD map: the image divided by the map, denoised at a noise SD of 1, multiplied back
(:class:`~meddenoiselib.transforms.noise_sd_map.NoiseSDMap`)."""

from __future__ import annotations

import logging

import numpy as np

from ..baselines import BASELINES
from ..blend import cast_values
from ..errors import OptionError
from ..io.modality import Modality, detect_modality
from ..io.series import VolumeSeries, series_of_repeated_frames
from ..transforms.intensity import NoiseSD
from ..transforms.noise_sd_map import NoiseSDMap

__all__ = ["denoise_on_unit_noise", "preview_on_unit_noise"]

logger = logging.getLogger(__name__)


def denoise_on_unit_noise(denoiser, image, noise_map: NoiseSDMap, mask=None, exclude=None):
    """``denoiser.denoise(image)`` where the noise's SD is ``noise_map`` voxel by voxel.

    The image over the (smoothed) map has noise of SD 1 everywhere; that image is denoised with
    ``NoiseSD(1.0)`` as its level (a method that takes a level uses it; for magnitude MR it is the floor's sigma,
    whose removal then works on a uniform floor), and the result is multiplied by the map and cast to the input's
    dtype. A strength below 1 blends in the divided image, which is the same blend after the multiplication.

    Args:
        denoiser: a :class:`~meddenoiselib.inference.Denoiser`.
        image: a ``Volume`` or ``VolumeSeries`` (the map then applies to every frame).
        noise_map: the noise's SD per voxel, in the image's units.
        mask, exclude: as :meth:`~meddenoiselib.inference.Denoiser.denoise`.

    Raises:
        OptionError: a CT denoised by ``auto`` or a network: its model works on fixed HU, which the division would
            change (BM3D and NLM take the map).
        MedDenoiseError: the map does not fit the image (:meth:`NoiseSDMap.on_grid`).
    """
    stabilized, spread = _divided(denoiser, image, noise_map)
    result = denoiser.denoise(stabilized, NoiseSD(1.0), mask, exclude)
    _note_map(denoiser, noise_map)
    values = result.array.astype(np.float32) * spread
    return image.with_array(cast_values(values, image.array.dtype))


def preview_on_unit_noise(denoiser, image, noise_map: NoiseSDMap, index, mask=None, frame=None, exclude=None):
    """``denoiser.preview(image, index, ...)`` where the noise's SD is ``noise_map``: the slice that
    :func:`denoise_on_unit_noise` gives, from the image divided by the map (read, or estimated, on the whole image as
    the full run reads it) and the map's slice. Arguments as :meth:`~meddenoiselib.inference.Denoiser.preview`.

    Raises:
        OptionError: as :func:`denoise_on_unit_noise`; a volume whose slices are the frames of a DICOM series
            (previewed frame by frame, on another grid than the map's).
    """
    if not isinstance(image, VolumeSeries) and series_of_repeated_frames(image) is not None:
        raise OptionError(
            f"{noise_map.label}: a preview of a DICOM series of frames takes no noise SD map; denoise the whole series"
        )
    stabilized, spread = _divided(denoiser, image, noise_map)
    result = denoiser.preview(stabilized, index, NoiseSD(1.0), mask, frame, exclude)
    _note_map(denoiser, noise_map)
    first = image.frame(0) if isinstance(image, VolumeSeries) else image
    axis = denoiser.slice_axis_for(first)
    index = first.shape[axis] // 2 if index is None else int(index)
    plane = spread[0] if isinstance(image, VolumeSeries) else spread  # (Z, Y, X[, 1])
    part = np.take(plane, [index], axis=axis)
    values = result.array.astype(np.float32) * part
    return result.with_array(cast_values(values, image.array.dtype))


def _divided(denoiser, image, noise_map: NoiseSDMap):
    """``(image / map, map)``: the image with noise of SD 1 (float32) and the map as used, broadcast to the image's
    frames and components. Raises what :func:`denoise_on_unit_noise` documents."""
    first = image.frame(0) if isinstance(image, VolumeSeries) else image
    is_ct = detect_modality(first, denoiser.modality_hint).modality == Modality.CT
    if is_ct and noise_map.is_estimated:
        raise OptionError(
            f"{noise_map.label} is read from the finest detail, which misses most of a CT's noise (correlated by "
            "the reconstruction); give the CT's noise as one SD (--noise-sd), or leave it to auto"
        )
    if is_ct and (denoiser.auto or denoiser.method not in BASELINES):
        raise OptionError(
            f"{noise_map.label}: a noise SD map divides the image by it, and a CT's model works on HU: give the CT's "
            "noise as one SD (--noise-sd), or use the map with a classical method (--model bm3d or nlm)"
        )
    spread = noise_map.on_grid(image)
    if isinstance(image, VolumeSeries):
        spread = spread[np.newaxis]
    if image.array.ndim > spread.ndim:  # components share the map
        spread = spread[..., np.newaxis]
    logger.info(
        "%s (median %.4g): denoised at SD 1 after dividing by it, multiplied back",
        noise_map.named,
        float(np.median(spread)),
    )
    return image.with_array(image.array.astype(np.float32) / spread), spread


def _note_map(denoiser, noise_map: NoiseSDMap) -> None:
    """Say in the run's report that it ran on the image divided by ``noise_map``."""
    report = denoiser.last_report
    if report is not None:
        # levels in the report are the divided image's (SD 1), not the image's
        report.floor_sigma = None
        report.noise_sd_map = noise_map.label
        if report.choice:
            report.choice += f"; all on the image divided by {noise_map.named}"
