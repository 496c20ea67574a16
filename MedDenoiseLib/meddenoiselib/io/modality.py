"""Which kind of scan a volume is: from the DICOM Modality tag, the user's hint, or what the values look like."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from .volume import Volume

__all__ = ["Modality", "ModalityGuess", "detect_modality", "parse_modality"]


class Modality(str, enum.Enum):
    """Scan families that need different noise models (and models)."""

    CT = "ct"
    MR = "mr"
    US = "us"
    XRAY = "xray"
    OTHER = "other"


#: DICOM Modality (0008,0060) values per family; everything else (SM, OT, ...) is ``other``.
_DICOM_MODALITIES = {
    Modality.CT: {"CT"},
    Modality.MR: {"MR"},
    Modality.US: {"US", "IVUS"},
    Modality.XRAY: {"CR", "DX", "DR", "MG", "RF", "XA", "RG", "IO", "PX"},
}


@dataclass(frozen=True)
class ModalityGuess:
    """A modality and why it was chosen (shown to the user and written into reports)."""

    modality: Modality
    reason: str


def parse_modality(text: str) -> Modality:
    """``"ct"``, ``"MR"``, ``"xray"`` ... -> :class:`Modality` (``ValueError`` naming the choices otherwise)."""
    try:
        return Modality(str(text).strip().lower().replace("-", ""))
    except ValueError:
        raise ValueError(f"unknown modality {text!r}; choose one of {', '.join(m.value for m in Modality)}") from None


def _looks_like_ct_hu(array: np.ndarray) -> str | None:
    """A reason if the values look like CT in HU (air near -1000 and dense tissue above +300), else None."""
    sample = np.asarray(array).reshape(-1)
    sample = sample[:: max(1, sample.size // 1_000_000)].astype(np.float32)
    low, high = float(sample.min()), float(sample.max())
    air = float(np.mean((sample > -1050) & (sample < -900)))
    if -3100 <= low <= -900 and high >= 300 and air >= 0.02:
        return f"values look like CT in HU (minimum {low:.0f}, {air:.0%} of voxels near -1000 HU, maximum {high:.0f})"
    return None


def detect_modality(volume: Volume, hint: Modality | str | None = None) -> ModalityGuess:
    """The modality of a volume.

    Order: the DICOM Modality tag; else ``hint`` (e.g. ``--modality``); else values that look like CT in HU; else
    :attr:`Modality.OTHER`. A hint that contradicts the DICOM tag loses to the tag (the file knows best).
    """
    tag = volume.metadata.get("0008|0060", "").strip().upper()
    if tag:
        for modality, values in _DICOM_MODALITIES.items():
            if tag in values:
                return ModalityGuess(modality, f"DICOM Modality is {tag}")
        return ModalityGuess(Modality.OTHER, f"DICOM Modality is {tag}")
    if hint is not None:
        modality = hint if isinstance(hint, Modality) else parse_modality(hint)
        return ModalityGuess(modality, f"modality given as {modality.value}")
    if volume.num_components == 1:
        reason = _looks_like_ct_hu(volume.array)
        if reason:
            return ModalityGuess(Modality.CT, reason)
    return ModalityGuess(Modality.OTHER, "no DICOM Modality and no modality given")
