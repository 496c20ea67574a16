"""The bundle's copy of a diffusion input's gradient table: MONAI's dictionary-transform interface over the library's
:mod:`meddenoiselib.io.gradients`, as the CLI copies it.

A DWI as 4D NIfTI comes with its FSL ``dwi.bval`` / ``dwi.bvec`` beside it; the bundle writes
``dwi_denoised.nii.gz`` with the same frames in the same order, and :class:`GradientTabled`, after the ``SaveImaged``
that wrote it (``savepath_in_metadict: true``, which records where), writes ``dwi_denoised.bval`` / ``.bvec`` beside
it, so FSL, MRtrix and BIDS tools read the output with its gradients. A DICOM diffusion series has no table beside
it: the reader puts the one its headers give (:mod:`meddenoiselib.io.dicom_diffusion`) in the metadata
(:data:`DICOM_BVAL_KEY`, :data:`DICOM_BVEC_KEY`), and :class:`GradientTabled` writes that.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from pathlib import Path

import torch
from monai.transforms import MapTransform

from ..io.gradients import copy_gradient_table, gradient_table_copies, gradient_table_files, gradient_table_not_kept

__all__ = ["DICOM_BVAL_KEY", "DICOM_BVEC_KEY", "GradientTabled"]

#: metadata keys of a DICOM diffusion series' FSL tables, as text (the ``.bvec`` "" where the headers hold no
#: directions)
DICOM_BVAL_KEY = "dicom_bval"
DICOM_BVEC_KEY = "dicom_bvec"

logger = logging.getLogger(__name__)


class GradientTabled(MapTransform):
    """Copy the gradient table beside the input (``filename_or_obj`` in ``pred``'s metadata) beside the saved output
    (``saved_to``); inputs without one pass unchanged.

    Args:
        pred_key: the saved denoised image, whose metadata ``SaveImaged(savepath_in_metadict=True)`` gave
            ``saved_to``. Defaults to ``"pred"``.

    Raises:
        OutputError: the copy would replace the input's own table (output written beside the input, no postfix).
    """

    def __init__(self, pred_key: str = "pred") -> None:
        super().__init__([pred_key])
        self.pred_key = pred_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        meta = getattr(d[self.pred_key], "meta", None) or {}
        source, saved = meta.get("filename_or_obj"), meta.get("saved_to")
        tables = gradient_table_files(source) if source else ()
        if not saved:
            return d
        if not tables:
            _write_dicom_table(meta, Path(saved))
            return d
        warning = gradient_table_not_kept(saved, tables, "use output_ext .nii.gz to keep it")
        if warning:
            logger.warning("%s", warning)
            return d
        copies = gradient_table_copies(tables, Path(saved))
        copy_gradient_table(copies)
        logger.info("Wrote the gradient table %s", ", ".join(str(copy) for _, copy in copies))
        return d


def _write_dicom_table(meta: Mapping, saved: Path) -> None:
    """Write a DICOM diffusion series' ``.bval`` / ``.bvec`` (from ``meta``) beside its saved NIfTI, atomically."""
    from ..io import detect_format, strip_suffix
    from ..io.atomic import write_text_atomic

    texts = {".bval": meta.get(DICOM_BVAL_KEY) or "", ".bvec": meta.get(DICOM_BVEC_KEY) or ""}
    if not texts[".bval"]:
        return
    if detect_format(saved) != "nifti":
        logger.warning(
            "%s: the DICOM series' b-values are written beside a NIfTI output only (output_ext .nii.gz)", saved
        )
        return
    written = []
    for suffix, text in texts.items():
        if text:
            path = saved.with_name(strip_suffix(saved.name) + suffix)
            write_text_atomic(path, text)
            written.append(str(path))
    logger.info("Wrote the gradient table %s", ", ".join(written))
