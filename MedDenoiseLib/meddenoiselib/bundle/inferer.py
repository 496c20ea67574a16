"""The bundle's inferer: MONAI's ``Inferer`` interface over the library's :class:`~meddenoiselib.inference.Denoiser`.

The bundle does not rebuild the library's pipeline out of MONAI transforms. ``LoadImaged`` (with the library's
reader) hands each volume to :class:`DenoiserInferer`, which gives it to ``Denoiser.denoise``: modality detection
and ``auto`` model choice, the scaling the model was trained with, the slice axis, burst frames, the noise-level
map, sliding windows with real-image halos, the self-ensemble, clipping to the input's range and the return to the
input's units and dtype are all the library's own code, so the bundle's result is the library's result.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.data import MetaTensor, decollate_batch
from monai.inferers import Inferer
from monai.utils import convert_to_dst_type

if TYPE_CHECKING:
    from ..inference import Denoiser
    from ..io import Volume, VolumeSeries

__all__ = [
    "DENOISING_METHOD_KEY",
    "DenoiserInferer",
    "FRAME_LABEL_KEY",
    "MODALITY_KEY",
    "NOISE_SD_MAP_KEY",
    "SERIES_NAME_KEY",
    "SERIES_PART_KEY",
    "SERIES_UID_KEY",
    "SOURCE_DTYPE_KEY",
    "image_from_item",
    "item_from_array",
    "item_from_image",
    "volume_from_item",
]

logger = logging.getLogger(__name__)

#: the metadata key under which :class:`~meddenoiselib.bundle.readers.VolumeReader` keeps the DICOM Modality tag.
MODALITY_KEY = "modality"
#: the metadata key under which it marks a 4D series (frames as channels): what the frames are (``"time"``,
#: ``"gradient"``, ...); absent for a volume.
FRAME_LABEL_KEY = "frame_label"
#: a datalist item's key naming the DICOM series to read from a folder that holds several (its SeriesInstanceUID)
SERIES_UID_KEY = "series_uid"
#: a datalist item's key giving that series' part of the output's name (``3_HELICAL_CHEST``), kept in the image's
#: metadata (``""`` for any other input) for :func:`~meddenoiselib.bundle.output_name_formatter` and the log
SERIES_NAME_KEY = "series_name"
#: a datalist item's key naming the evenly spaced part (``"start:stop"``, slices in position order) to read of a DICOM
#: series whose slices one affine cannot place (a head CT of thin and thick slices; :mod:`meddenoiselib.io.uneven`)
SERIES_PART_KEY = "series_part"
#: the datalist and metadata key of an image's noise SD map: a volume file on the image's grid holding the noise's SD
#: per voxel in the image's units (the CLI's ``--noise-sd-map``), ``"auto"`` to read one from the image; ``""``: none.
NOISE_SD_MAP_KEY = "noise_sd_map"
#: the datalist and metadata keys of an image's mask (only voxels inside are denoised; the CLI's ``--mask``) and of a
#: region left out of the denoising (metal, an implant; the CLI's ``--exclude``): label files (a label map, a Slicer
#: segmentation) on the image's grid; ``""``: none
MASK_KEY = "mask"
EXCLUDE_KEY = "exclude"
#: the datalist keys whose values are files on the image's grid, carried into the image's metadata
GRID_FILE_KEYS = (NOISE_SD_MAP_KEY, MASK_KEY, EXCLUDE_KEY)
#: how messages name them
GRID_FILE_NAMES = {NOISE_SD_MAP_KEY: "noise SD map", MASK_KEY: "mask", EXCLUDE_KEY: "region to leave out"}
#: the metadata key under which :class:`DenoiserInferer` records on each result what denoised it (the Denoiser's
#: method and, for ``auto``, the model it chose for that volume and why), for the sidecar.
DENOISING_METHOD_KEY = "denoising_method"
#: the metadata key under which the reader keeps the file's voxel type (``"uint16"``): MONAI's tensors widen unsigned
#: integers (uint16 to int32), and the library and the writer give the file's type back.
SOURCE_DTYPE_KEY = "source_dtype"


def volume_from_item(item: torch.Tensor) -> Volume:
    """The library :class:`~meddenoiselib.io.Volume` behind one channel-first MONAI image.

    Args:
        item: ``(C, I, J, K)`` in MONAI's index order, in the file's units and dtype (as ``LoadImaged`` +
            ``EnsureChannelFirstd`` give it); a ``MetaTensor`` carries the affine, the reader's exact ``spacing``
            and the DICOM Modality tag (``modality``).

    Returns:
        A volume ``(K, J, I)`` (``(K, J, I, C)`` for several channels) with the item's dtype, spacing, geometry and
        Modality tag: what :func:`~meddenoiselib.io.read_volume` returned for the file, as far as denoising needs.
    """
    from ..io import Volume

    array = np.asarray(item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else item)
    if array.ndim != 4:
        raise ValueError(f"expected a channel-first 3D image (C, I, J, K), got shape {array.shape}")
    array = np.transpose(array, (3, 2, 1, 0))  # (K, J, I, C): the library's (z, y, x, components)
    if array.shape[-1] == 1:
        array = array[..., 0]
    meta = item.meta if isinstance(item, MetaTensor) else {}
    array = np.ascontiguousarray(source_dtype_of(array, meta.get(SOURCE_DTYPE_KEY)))
    affine = np.asarray(meta.get("affine", np.eye(4)), dtype=np.float64)
    volume = Volume.from_ijk_to_ras(array, affine)
    # the reader's spacing, not the affine's column norms: the Denoiser picks the slice axis by comparing spacings,
    # and norms that differ in the last bit would break ties differently than the library does
    spacing = meta.get("spacing")
    modality = meta.get(MODALITY_KEY) or ""
    return Volume(
        array=array,
        spacing=tuple(np.asarray(spacing, dtype=np.float64).reshape(3)) if spacing is not None else volume.spacing,
        origin=volume.origin,
        direction=volume.direction,
        metadata={"0008|0060": str(modality)} if modality else {},
        source=_source_of(meta),
    )


def source_dtype_of(array: np.ndarray, source_dtype: str | None) -> np.ndarray:
    """``array`` back in the file's unsigned type where MONAI widened it into a signed one (uint16 voxels held as
    int32: the values are the file's, so the cast is exact); any other array (a type the user asked ``LoadImaged``
    for, a float) unchanged."""
    if not source_dtype:
        return array
    source = np.dtype(str(source_dtype))
    if source.kind == "u" and array.dtype.kind == "i" and array.dtype.itemsize > source.itemsize:
        return array.astype(source)
    return array


def image_from_item(item: torch.Tensor) -> Volume | VolumeSeries:
    """:func:`volume_from_item`, or for an item the reader marked as a 4D series (``frame_label`` in its metadata),
    the :class:`~meddenoiselib.io.VolumeSeries` ``(T, K, J, I)`` of its channels, which the library denoises as the CLI
    does a series (one scaling and noise estimate for all frames; a diffusion series frame by frame)."""
    from ..io import VolumeSeries

    volume = volume_from_item(item)
    label = (item.meta if isinstance(item, MetaTensor) else {}).get(FRAME_LABEL_KEY)
    if not label:
        return volume
    frames = np.moveaxis(volume.array, -1, 0) if volume.array.ndim == 4 else volume.array[np.newaxis]
    return VolumeSeries(
        np.ascontiguousarray(frames),
        volume.spacing,
        volume.origin,
        volume.direction,
        frame_label=str(label),
        source=volume.source,
        metadata=dict(volume.metadata),  # a DICOM series of frames: its Modality tag
    )


def _source_of(meta: dict):
    """The file an item was read from, as the library's reader names it: ``auto`` reads the same hints from it (a
    BIDS name or sidecar, a FreeSurfer or PAR/REC file, an MR floor in a volume file) as the CLI."""
    from ..io import SourceInfo, detect_format

    name = str(meta.get("filename_or_obj", "") or "")
    if not name:
        return SourceInfo()
    fmt = detect_format(name) or ("dicom-series" if Path(name).is_dir() else "memory")
    return SourceInfo(path=name, format=fmt)


def item_from_array(array: np.ndarray) -> torch.Tensor:
    """The channel-first MONAI image ``(C, I, J, K)`` of a library array ``(K, J, I)`` or ``(K, J, I, C)``: the
    inverse of :func:`volume_from_item`'s reordering, same dtype, no metadata."""
    channels = array[..., np.newaxis] if array.ndim == 3 else array
    return torch.from_numpy(np.ascontiguousarray(np.transpose(channels, (3, 2, 1, 0))))


def item_from_image(image: Volume | VolumeSeries) -> torch.Tensor:
    """The channel-first MONAI image of a library volume (:func:`item_from_array`) or series (its frames as the
    channels, ``(T, I, J, K)``): the inverse of :func:`image_from_item`."""
    from ..io import VolumeSeries

    if isinstance(image, VolumeSeries):
        return torch.from_numpy(np.ascontiguousarray(np.transpose(image.array, (0, 3, 2, 1))))
    return item_from_array(image.array)


class DenoiserInferer(Inferer):
    """Denoise each whole volume of a batch with the library's ``Denoiser``.

    The MONAI evaluator calls ``inferer(inputs, network)``; here ``inputs`` are whole volumes in their original units
    and the result is too: the Denoiser's network path (slice axis, burst, noise map, halo windows, ensemble,
    clipping) and its intensity scaling run inside. ``network`` is the Denoiser's own network (the bundle's
    ``network_def`` is :func:`~meddenoiselib.bundle.network_of` the Denoiser), accepted so that MONAI's engine can
    put it in eval mode; a different network is refused, because windows, halo, burst and noise map are settings of
    the network the Denoiser loaded with its model card.

    Args:
        denoiser: the library's denoiser, e.g. ``Denoiser("auto")`` or ``Denoiser("kpn-burst3", device="cuda")``.
        sigma: noise level in normalized units (fraction of the intensity range the model's scaling maps to
            [0, 1]), a :class:`~meddenoiselib.transforms.NoiseSD` in the image's own units (HU for CT), or
            ``"auto"`` to estimate it where the method needs one (noise-map models, baselines). Defaults to
            ``"auto"``.

    Example::

        inferer = DenoiserInferer(Denoiser("default"))
        pred = inferer(image_batch, network_of(inferer.denoiser))  # (B, C, I, J, K), the input's units and dtype
    """

    def __init__(self, denoiser: Denoiser, sigma: float | str | None = "auto") -> None:
        super().__init__()
        self.denoiser = denoiser
        self.sigma = sigma

    def __call__(self, inputs: torch.Tensor, network: torch.nn.Module | None = None, *args: Any, **kwargs: Any):
        """Denoise a batch.

        Args:
            inputs: ``(B, C, I, J, K)`` volumes in their file's units and dtype (a ``MetaTensor`` from
                ``LoadImaged`` with :class:`~meddenoiselib.bundle.readers.VolumeReader`).
            network: None, or the Denoiser's own network (see the class docstring).

        Returns:
            ``(B, C, I, J, K)`` denoised volumes in the input's units and dtype (integers rounded and clipped by the
            library), with the input's metadata, so ``SaveImaged`` writes them on the input's grid.

        Raises:
            ValueError: ``network`` is a network other than the Denoiser's.
        """
        own = getattr(self.denoiser, "model", None)
        if network is not None and own is not None and network is not own:
            raise ValueError(
                "DenoiserInferer runs the Denoiser's own network; `network` must be that network "
                "(bundle: network_def = meddenoiselib.bundle.network_of(@denoiser)) or None."
            )
        items = decollate_batch(inputs, detach=True) if isinstance(inputs, MetaTensor) else list(inputs)
        outputs, methods = [], []
        for item in items:
            denoised = self.denoiser.denoise(image_from_item(item), self.noise_level_of(item), **self.regions_of(item))
            report = self.denoiser.last_report
            requested = str(getattr(self.denoiser, "method", ""))
            methods.append(report.described_method(requested) if report is not None else requested)
            if report is not None:
                name = _input_name(item)
                logger.info(
                    "%s: %s%s in %.2f s on %s",
                    name,
                    report.method,
                    f" ({report.choice})" if report.choice else "",
                    report.seconds,
                    report.device,
                )
            outputs.append(item_from_image(denoised))
        result = torch.stack(outputs)
        if not isinstance(inputs, MetaTensor):
            return result
        # the input's metadata (affine, file name, batch flag) on the result, in the result's own dtype, and per
        # volume what denoised it (a batch's metadata holds one value per item; decollating splits them)
        result = convert_to_dst_type(result, inputs, dtype=result.dtype)[0]
        result.meta = {**result.meta, DENOISING_METHOD_KEY: methods if inputs.is_batch else methods[0]}
        return result

    def noise_level_of(self, item: torch.Tensor):
        """The noise level ``item`` is denoised with: its noise SD map where its datalist item gave one
        (:data:`NOISE_SD_MAP_KEY` in its metadata; read with the library's reader, its grid checked against the
        image's by the library; ``"auto"``: read from the image, :meth:`NoiseSDMap.estimated`), else the inferer's
        ``sigma``.

        Raises:
            ValueError: a map, and a ``sigma`` other than ``"auto"`` (or a ``noise_sd``): two noise levels.
        """
        path = str(item.meta.get(NOISE_SD_MAP_KEY) or "") if isinstance(item, MetaTensor) else ""
        if not path:
            return self.sigma
        name = _input_name(item)
        if self.sigma not in ("auto", None):
            given = f"noise_sd {self.sigma.value:g}" if hasattr(self.sigma, "value") else f"sigma {self.sigma}"
            raise ValueError(
                f"{name}: its datalist item gives a noise SD map ({path}) and the bundle a noise level ({given}): "
                "give one"
            )
        from ..transforms import NoiseSDMap

        noise_map = NoiseSDMap.named_by(path)
        logger.info("%s: denoised with %s", name, noise_map.named)
        return noise_map

    @staticmethod
    def regions_of(item: torch.Tensor) -> dict:
        """``mask=`` and ``exclude=`` for the Denoiser: the label files ``item``'s datalist item gave
        (:data:`MASK_KEY`, :data:`EXCLUDE_KEY` in its metadata), read as the CLI reads ``--mask`` and ``--exclude``
        (a segmentation's overlapping segments as their union; the grid checked against the image's by the
        library); only those it gave."""
        regions = {}
        for key in (MASK_KEY, EXCLUDE_KEY):
            path = str(item.meta.get(key) or "") if isinstance(item, MetaTensor) else ""
            if path:
                from ..io.segmentation import read_mask_image

                logger.info("%s: %s %s", _input_name(item), "only inside" if key == MASK_KEY else "left out:", path)
                regions[key] = read_mask_image(path)
        return regions


def _input_name(item: torch.Tensor) -> str:
    """How the log and messages name an item: its file or folder, and the series where the folder holds several."""
    if not isinstance(item, MetaTensor):
        return ""
    name, series = str(item.meta.get("filename_or_obj", "") or ""), str(item.meta.get(SERIES_NAME_KEY, "") or "")
    return f"{name} (series {series})" if series else name
