"""The bundle's JSON sidecar beside each NIfTI output, as the CLI writes it (:mod:`meddenoiselib.io.sidecar`).

A DICOM input's acquisition values (BIDS names and units) travel from :class:`~.readers.VolumeReader` in the
metadata (:data:`BIDS_SIDECAR_KEY`, JSON text); a NIfTI input's own sidecar is found beside it. :class:`Sidecard`,
after the ``SaveImaged`` that wrote the output (``savepath_in_metadict: true``), writes ``NAME.json`` beside
``NAME.nii.gz`` with them and what denoised the image.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable, Mapping

import torch
from monai.transforms import MapTransform

from .. import __version__
from ..io.atomic import write_text_atomic
from ..io.sidecar import input_sidecar, sidecar_path, sidecar_text
from .inferer import DENOISING_METHOD_KEY

__all__ = ["BIDS_SIDECAR_KEY", "Sidecard"]

logger = logging.getLogger(__name__)

#: metadata key of a DICOM input's BIDS values (JSON text of :func:`~meddenoiselib.io.sidecar.dicom_sidecar`)
BIDS_SIDECAR_KEY = "bids_sidecar"


class Sidecard(MapTransform):
    """Write a NIfTI output's sidecar (inputs that are neither DICOM nor a NIfTI with a sidecar pass unchanged).

    Args:
        pred_key: the saved denoised image, whose metadata ``SaveImaged(savepath_in_metadict=True)`` gave
            ``saved_to``. Defaults to ``"pred"``.
        method: what denoised it where the result does not say (the bundle's ``model_name``), recorded as
            ``DenoisingMethod``; :class:`~.inferer.DenoiserInferer` records on each result the method and, for
            ``auto``, the model it chose for that volume and why, which is written instead.
    """

    def __init__(self, pred_key: str = "pred", method: str = "auto") -> None:
        super().__init__([pred_key])
        self.pred_key = pred_key
        self.method = method

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        meta = getattr(d[self.pred_key], "meta", None) or {}
        saved = meta.get("saved_to")
        path = sidecar_path(saved) if saved else None
        if path is None:
            return d
        dicom_values = meta.get(BIDS_SIDECAR_KEY) or ""
        source = meta.get("filename_or_obj") or ""
        found = None if dicom_values or not source else input_sidecar(source)
        if not dicom_values and found is None:
            return d
        if found is not None and path.resolve() == found[0].resolve():
            logger.warning("%s: the input's own sidecar; not replaced (give the output a postfix)", path)
            return d
        values = json.loads(dicom_values) if dicom_values else found[1]
        method = meta.get(DENOISING_METHOD_KEY) or self.method
        write_text_atomic(path, sidecar_text(values, __version__, str(method), converted=bool(dicom_values)))
        logger.info("Wrote the sidecar %s", path)
        return d
