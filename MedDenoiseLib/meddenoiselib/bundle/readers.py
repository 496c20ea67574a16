"""A MONAI ``ImageReader`` over the library's own reader, so the bundle reads volumes exactly as the CLI does.

Why not MONAI's ``ITKReader`` for DICOM series folders: it builds the volume with ITK's ``ImageSeriesReader``,
which by default keeps the slice direction that GDCM derives from the *first file alone*. On real series whose
``SpacingBetweenSlices`` tag is negative (the chest CT sample shipped with the library is one) that direction comes
out flipped while the slices stay stacked in ascending position, so the affine puts slice k at z0 - k*dz instead of
z0 + k*dz (seen with itk 5.4.7 on ``samples/ct_chest``: direction z = -1, the files' z = -86.5, -84.5, ... mm).
``PydicomReader`` returns float64 (rescaled) data instead of the stored integer type. The library's
:func:`meddenoiselib.io.read_volume` (pydicom, slice positions from every file, rescale slope/intercept
applied per frame, the stored integer type kept, series with missing or corrupt slices
refused) is what every other front end
uses, and needs no extra package.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import ImageReader
from monai.transforms import LoadImaged
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from ..io.provenance import resampling_warning
from .gradients import DICOM_BVAL_KEY, DICOM_BVEC_KEY
from .inferer import (
    FRAME_LABEL_KEY,
    GRID_FILE_KEYS,
    MODALITY_KEY,
    SERIES_NAME_KEY,
    SERIES_PART_KEY,
    SERIES_UID_KEY,
    SOURCE_DTYPE_KEY,
)
from .sidecar import BIDS_SIDECAR_KEY
from .writers import FRAME_INTERVAL_KEY

logger = logging.getLogger(__name__)

__all__ = ["LoadVolumed", "VolumeReader"]

_SUPPORTED_FORMATS = ("nifti", "nrrd", "metaimage", "mgh", "parrec", "minc", "dicom-file")


class VolumeReader(ImageReader):
    """Read NIfTI, NRRD, MetaImage, MGH, PAR/REC, MINC, DICOM files and DICOM series folders with
    :func:`meddenoiselib.io.read_volume`, and 4D series (a diffusion-weighted or functional MR, a perfusion CT as 4D
    NIfTI, NRRD or MGH) with :func:`meddenoiselib.io.read_series`.

    The array is returned in MONAI's (and nibabel's) index order ``(x, y, z)`` (``(x, y, z, c)`` for multi-component
    pixels, and ``(x, y, z, t)`` for a series' frames, with ``original_channel_dim = -1``; a series also carries what
    its frames are, ``frame_label``: ``"time"``, ``"gradient"``, ...), in the stored dtype (``int16`` for CT in HU),
    with ``affine = original_affine`` = the volume's IJK-to-RAS matrix, so ``SaveImaged`` writes the input's
    geometry, and with the volume's exact ``spacing`` and DICOM Modality tag (``modality``), which
    :class:`~meddenoiselib.bundle.inferer.DenoiserInferer` hands back to the library's ``Denoiser``.

    Args:
        series_uid: the DICOM series to read from a folder holding several; None reads the largest (the library
            refuses an ambiguous choice). Defaults to None.
        series_part: ``"start:stop"``, the evenly spaced part to read of a DICOM series whose slices one affine
            cannot place (:func:`~meddenoiselib.io.uneven.uneven_parts`), on its own grid. Defaults to None: all.
    """

    def __init__(self, series_uid: str | None = None, series_part: str | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.series_uid = series_uid
        self.series_part = series_part

    def verify_suffix(self, filename: Sequence[str] | str) -> bool:
        from ..io import detect_format

        return all(Path(name).is_dir() or detect_format(name) in _SUPPORTED_FORMATS for name in ensure_tuple(filename))

    def read(self, data: Sequence[str] | str, **kwargs: Any) -> Any:
        from ..errors import MedDenoiseError
        from ..io import read_volume
        from ..io.dicom import dicom_listings_kept
        from ..io.series import is_series_file, read_series

        names = ensure_tuple(data)
        if len(names) != 1:
            raise ValueError(f"VolumeReader reads one volume (a file or a DICOM series folder) at a time, got {names}.")
        if not self.verify_suffix(names[0]):
            raise ValueError(f"{names[0]}: not a format VolumeReader reads")  # LoadImage then tries its other readers
        try:
            if is_series_file(names[0]):  # the frames travel as channels and are denoised as the CLI does a series
                return read_series(names[0])
            series_uid = kwargs.get("series_uid", self.series_uid)
            if not self.series_part:
                return read_volume(names[0], series_uid=series_uid)
            with dicom_listings_kept():  # the series is read, then probed for its parts
                return _part_of(read_volume(names[0], series_uid=series_uid), names[0], series_uid, self.series_part)
        except MedDenoiseError as error:
            # The library refused the input on purpose (a folder with two equally large series, a series with a
            # missing or corrupt slice, 4D data...). Raising here would make LoadImage silently try MONAI's other
            # readers, which would read it anyway; get_data raises outside that fallback loop instead.
            return _Refused(error)

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        from ..io.series import VolumeSeries

        if isinstance(img, _Refused):
            raise img.error
        if isinstance(img, VolumeSeries):
            return self._series_data(img)
        volume = img
        frames = self._frames_of_dicom(volume)
        if frames is not None:
            return self._series_data(frames)
        if volume.source.grid_problem:
            from ..errors import InputError

            # the bundle writes NIfTI, whose single affine cannot place these slices (find_dataset lists the evenly
            # spaced parts of an uneven series, each on its grid, as items of their own)
            raise InputError(
                f"{volume.source.path}: {volume.source.grid_problem}; a NIfTI output would put slices "
                "in the wrong place (denoise it with the command line into a DICOM series instead; the datalist of "
                "find_dataset gives an unevenly spaced series' evenly spaced parts as items of their own)"
            )
        if volume.num_components == 1:
            array = np.transpose(volume.array, (2, 1, 0))
            channel_dim: float | int = float("nan")
        else:
            array = np.transpose(volume.array, (2, 1, 0, 3))
            channel_dim = -1
        # the DICOM Modality tag, for the Denoiser's modality detection (``auto`` model choice, noise estimate)
        modality = volume.metadata.get("0008|0060", "").strip()
        extra = {MODALITY_KEY: modality, **_dicom_sidecar(volume)}
        return np.ascontiguousarray(array), _meta(volume, array, channel_dim, extra)

    @staticmethod
    def _frames_of_dicom(volume):
        """A DICOM series of frames (several images at every position, an enhanced file of a whole 4D run) as the
        4D series the CLI denoises it as, which the bundle writes as a 4D NIfTI; None for any other volume.

        Raises:
            InputError: Siemens mosaics without their CSA header (anonymised): the direction in which the tiles'
                slices follow each other is only there, so a NIfTI affine could put the slices upside down.
        """
        from ..errors import InputError
        from ..io.series import series_of_repeated_frames

        if volume.source.mosaic is not None and volume.source.mosaic.slice_normal is None:
            raise InputError(
                f"{volume.source.path}: Siemens mosaics without their CSA header; the bundle writes NIfTI, and the "
                "direction in which the tiles' slices run is only in that header, so its affine could be upside down "
                "(denoise them with the command line, which writes mosaics back)"
            )
        return series_of_repeated_frames(volume)

    @staticmethod
    def _series_data(series) -> tuple[np.ndarray, dict]:
        """A 4D series as ``(x, y, z, t)``, its frames the channels (``EnsureChannelFirstd`` puts them first)."""
        from ..errors import InputError
        from ..io.series import frame_interval_seconds

        if series.array.ndim == 5:
            raise InputError(
                f"{series.source.path}: a 4D series of {series.num_components}-component frames; the bundle writes "
                "frames as channels and cannot keep components too (denoise it with the command line)"
            )
        array = np.transpose(series.array, (3, 2, 1, 0))
        # a DICOM series of frames keeps its Modality tag (a 4D file has none)
        extra = {MODALITY_KEY: series.metadata.get("0008|0060", "").strip(), FRAME_LABEL_KEY: series.frame_label}
        extra.update(_dicom_gradient_table(series))
        extra.update(_dicom_sidecar(series))
        interval = frame_interval_seconds(series)
        if interval is not None:
            extra[FRAME_INTERVAL_KEY] = interval
        return np.ascontiguousarray(array), _meta(series, array, -1, extra)


def _dicom_sidecar(image) -> dict:
    """A DICOM volume's or series' BIDS sidecar values for :class:`~.sidecar.Sidecard` (JSON text); empty for other
    inputs."""
    from ..io.sidecar import dicom_sidecar

    if not image.source.format.startswith("dicom"):
        return {}
    return {BIDS_SIDECAR_KEY: json.dumps(dicom_sidecar(image.metadata))}


def _dicom_gradient_table(series) -> dict:
    """A DICOM diffusion series' FSL ``.bval`` / ``.bvec`` texts for :class:`~.gradients.GradientTabled` to write
    beside the NIfTI output (``.bvec`` "" without directions); empty for any other series."""
    from ..io.dicom_diffusion import dicom_diffusion_table

    source = series.source
    if series.frame_label != "gradient" or not source.dicom_files:
        return {}
    table = dicom_diffusion_table(
        source.dicom_files, max(source.repeated_frames, 1), source.frame_order, label=str(source.path)
    )
    if table is None:
        return {}
    bvec = table.bvec_text(series.direction) if table.directions is not None else ""
    return {DICOM_BVAL_KEY: table.bval_text(), DICOM_BVEC_KEY: bvec}


def _meta(image, array: np.ndarray, channel_dim: float | int, extra: dict) -> dict:
    """MONAI's metadata of a volume or series read as ``array`` (MONAI's index order), after logging the warning for
    a resampled input: its IJK-to-RAS as affine and original affine, its exact spacing, its format, and ``extra``."""
    warning = resampling_warning(image, image.source.path)
    if warning:
        logger.warning("%s", warning)
    affine = np.asarray(image.ijk_to_ras(), dtype=np.float64)
    return {
        MetaKeys.AFFINE: affine,
        MetaKeys.ORIGINAL_AFFINE: affine.copy(),
        MetaKeys.SPATIAL_SHAPE: np.asarray(array.shape[:3]),
        MetaKeys.SPACE: SpaceKeys.RAS,
        MetaKeys.ORIGINAL_CHANNEL_DIM: channel_dim,
        "spacing": np.asarray(image.spacing, dtype=np.float64),
        "source_format": image.source.format if image.source is not None else "",
        SOURCE_DTYPE_KEY: array.dtype.name,
        **extra,
    }


class LoadVolumed(LoadImaged):
    """``LoadImaged`` with :class:`VolumeReader`, taking a datalist item's other keys along.

    An item of a folder holding several DICOM series names one of them (``series_uid``; the reader would read the
    largest) and its output name's part (``series_name``), as :func:`~meddenoiselib.bundle.find_dataset` lists every
    series of such a folder; an item of an unevenly spaced series names its evenly spaced part (``series_part``); an
    item may give a noise SD map (``noise_sd_map``: a volume file on the image's grid, the noise's SD per voxel in the
    image's units, or ``"auto"``), a ``mask`` and a region to leave out (``exclude``: label files on the image's grid)
    for :class:`~.inferer.DenoiserInferer`. The series name, the map and the masks travel in the image's metadata
    (``""`` where the item gives none, so that a batch's metadata always has the same keys).

    Args:
        keys: the image key(s) of the datalist. Defaults to ``"image"``.
        kwargs: ``LoadImaged``'s; the reader defaults to :class:`VolumeReader`, ``image_only`` to True and ``dtype``
            to None (the file's own type).
    """

    def __init__(self, keys="image", **kwargs: Any) -> None:
        kwargs.setdefault("reader", VolumeReader)
        kwargs.setdefault("image_only", True)
        kwargs.setdefault("dtype", None)
        super().__init__(keys, **kwargs)

    def __call__(self, data, reader: ImageReader | None = None):
        series_uid = str(data.get(SERIES_UID_KEY) or "")
        part = str(data.get(SERIES_PART_KEY) or "")
        if reader is None and (series_uid or part):
            reader = VolumeReader(series_uid=series_uid or None, series_part=part or None)
        d = super().__call__(data, reader)
        for key in self.key_iterator(d):
            meta = getattr(d[key], "meta", None)
            if meta is not None:
                meta[SERIES_NAME_KEY] = str(data.get(SERIES_NAME_KEY) or "")
                for name in GRID_FILE_KEYS:
                    meta[name] = str(data.get(name) or "")
        return d


def _part_of(volume, name: str, series_uid: str | None, part: str):
    """The evenly spaced part ``"start:stop"`` of the uneven DICOM series ``volume`` (read from ``name``), on its own
    grid (:func:`~meddenoiselib.io.uneven.volume_part`).

    Raises:
        InputError: the series has no such part (it changed since the datalist was made, or the part is wrong).
    """
    from ..errors import InputError
    from ..io import probe_volume
    from ..io.uneven import uneven_parts, volume_part

    header = probe_volume(name, series_uid=series_uid)
    for each in uneven_parts(header):
        if f"{each.start}:{each.stop}" == part:
            return volume_part(volume, header, each)
    found = ", ".join(f"{each.start}:{each.stop}" for each in uneven_parts(header)) or "none: its slices are even"
    raise InputError(f"{name}: no evenly spaced part {part} of its slices (its parts: {found})")


class _Refused:
    """The library's refusal of an input, carried from :meth:`VolumeReader.read` to :meth:`VolumeReader.get_data`."""

    def __init__(self, error: Exception) -> None:
        self.error = error
