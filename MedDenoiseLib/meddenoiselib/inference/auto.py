"""``--model auto``: the shipped model for a scan's modality."""

from __future__ import annotations

from dataclasses import dataclass

from ..io.modality import Modality, ModalityGuess, detect_modality
from ..io.volume import Volume

__all__ = ["AUTO_MODELS", "AutoChoice", "choose_model"]

#: per modality, shipped models in order of preference (the first one installed wins).
AUTO_MODELS: dict[Modality, tuple[str, ...]] = {
    Modality.CT: ("kpn-ct-burst5", "kpn-ct-burst3", "kpn-burst3", "kpn-small"),
    Modality.MR: ("kpn-mr-burst3", "kpn-small-rician-mr", "kpn-small"),
    Modality.US: ("kpn-us", "kpn-small-speckle-us", "kpn-small"),
    Modality.XRAY: ("kpn-general", "kpn-small"),
    Modality.OTHER: ("kpn-general", "kpn-small"),
}


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
    for name in AUTO_MODELS[guess.modality]:
        if name in available:
            return AutoChoice(name, guess.modality, guess.reason)
    fallback = sorted(available)[0] if available else "nlm"
    return AutoChoice(fallback, guess.modality, guess.reason + "; no model for it is installed")
