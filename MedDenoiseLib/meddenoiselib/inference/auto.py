"""``--model auto``: the shipped model for a scan's modality."""

from __future__ import annotations

from dataclasses import dataclass

from ..io.modality import Modality, ModalityGuess, detect_modality
from ..io.volume import Volume
from ..transforms.estimate import magnitude_floor_ratio

__all__ = ["AUTO_MODELS", "MULTI_COIL_MR_MODELS", "AutoChoice", "choose_model"]

#: per modality, shipped models in order of preference (the first one installed wins).
AUTO_MODELS: dict[Modality, tuple[str, ...]] = {
    Modality.CT: ("kpn-ct-burst5", "kpn-ct-burst3", "kpn-burst3", "kpn-small"),
    Modality.MR: ("kpn-mr-burst3", "kpn-small-rician-mr", "kpn-mr", "kpn-small"),
    Modality.US: ("kpn-us", "kpn-small-speckle-us", "kpn-small"),
    Modality.XRAY: ("kpn-general", "kpn-small"),
    Modality.OTHER: ("kpn-general", "kpn-small"),
}

#: magnitude MR whose background looks like several coils' noise floor (non-central chi) gets these first: the
#: Rician model leaves most of that floor in place (benchmark: bias 3.4 sigma left at 8 coils).
MULTI_COIL_MR_MODELS: tuple[str, ...] = ("kpn-mr",)

#: above this background ratio (median / 1.4826 MAD: 1.78 for one coil, 3.86 for four, 5.56 for eight in theory) the
#: floor is taken as several coils'. Set between one and four coils with room on both sides: faint anatomy among
#: the darkest tiles raises a one-coil image's ratio (2.0 measured at Rician 3 %), and lowers an 8-coil one (4.7).
MULTI_COIL_RATIO = 3.0


@dataclass(frozen=True)
class AutoChoice:
    """The model ``auto`` picked for a volume, and why."""

    model: str
    modality: Modality
    reason: str

    def describe(self) -> str:
        """One line for logs and reports."""
        return f"{self.model} for {self.modality.value.upper()} ({self.reason})"


def choose_model(volume: Volume, hint: Modality | str | None = None, shipped: list[str] | None = None) -> AutoChoice:
    """Pick the shipped model for ``volume``'s modality (see :func:`~meddenoiselib.io.modality.detect_modality`)."""
    from ..weights import list_shipped_weights

    guess: ModalityGuess = detect_modality(volume, hint)
    available = set(list_shipped_weights() if shipped is None else shipped)
    if guess.modality == Modality.MR and volume.num_components == 1:
        ratio = magnitude_floor_ratio(volume.array)
        multi = [name for name in MULTI_COIL_MR_MODELS if name in available]
        if ratio is not None and ratio > MULTI_COIL_RATIO and multi:
            return AutoChoice(
                multi[0],
                guess.modality,
                f"{guess.reason}; its background looks like the noise floor "
                f"of several receive coils (median/MAD {ratio:.1f}; one coil gives 1.8)",
            )
    for name in AUTO_MODELS[guess.modality]:
        if name in available:
            return AutoChoice(name, guess.modality, guess.reason)
    fallback = sorted(available)[0] if available else "nlm"
    return AutoChoice(fallback, guess.modality, guess.reason + "; no model for it is installed")
