"""``--model auto``: the shipped model for a scan's modality."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError
from ..io.modality import Modality, ModalityGuess, detect_modality, signal_component
from ..io.series import VolumeSeries
from ..io.volume import Volume
from ..transforms.background import OTHER_MASK_PATCH, edge_share, masked_background
from ..transforms.magnitude import MagnitudeFloor, estimate_magnitude_floor
from ..transforms.missing import fill_missing

__all__ = [
    "AUTO_MODELS",
    "MAGNITUDE_MR_MODELS",
    "MULTI_COIL_MR_MODELS",
    "AutoChoice",
    "choose_model",
    "masked_background_of",
    "nan_mask_as_zeros",
    "nan_mask_of_series_as_zeros",
]

#: per modality, shipped models in order of preference (the first one installed wins).
AUTO_MODELS: dict[Modality, tuple[str, ...]] = {
    Modality.CT: ("kpn-ct-burst5", "kpn-ct-burst3", "kpn-burst3", "kpn-small"),
    Modality.MR: ("kpn-small-rician-mr", "kpn-mr", "kpn-small"),
    Modality.US: ("kpn-us", "kpn-small-speckle-us", "kpn-small"),
    Modality.XRAY: ("kpn-general", "kpn-small"),
    Modality.OTHER: ("kpn-general", "kpn-small"),
}

#: magnitude MR with a noise floor in its background gets these first, followed by the removal of that floor
#: (:func:`~meddenoiselib.transforms.correct_magnitude_bias`, with sigma and the coil count read from the background).
#: The Gaussian burst model (refined: collaborative_wiener.py) estimates the local mean of the magnitude, which the
#: correction maps to the signal: on the real-noise benchmark's CT-like brain (CLI) +8.1 / +10.1 dB at Rician 3 % /
#: 6 % and +9.6 dB at 8 coils, where the Rician-trained model gains +4.4 / +6.7 / +2.6 (docs/benchmarks_real_noise.md);
#: on real MR slices docs/benchmarks_real_mr.md.
#: At any voxel size, and for MR whose background a mask set to one value too (nothing removed then): on thick or
#: coarse slabs of the training MR_Gd volume (Rician 3 % / 6 %, 8 coils) the burst model and the floor's removal beat
#: the Rician / multi-coil models by +0.8 / +1.2 / +1.4 dB at 1 x 1 x 5 mm, +1.3 / +1.4 / +1.0 at 2 x 2 x 5 mm and
#: +1.2 / +1.2 / +0.9 at 3 x 3 x 5 mm, with a background bias of 0.01-0.05 sigma where those models left the whole
#: floor (1.25 sigma; 3.9 at 8 coils: trained to remove it, they do not where the air is empty); with the noisy
#: background masked to 0, by +0.2 to +1.5 dB in all 9 cases. Until 2026-12-05 MR with a voxel edge above 3 mm got
#: the Rician / multi-coil models: a limit that came from the 4 x 4 x 5 mm sample head, whose reference carries noise
#: of its own, so that denoising less scored better there (``python benchmarks/mr_voxel_size.py [--masked]``).
MAGNITUDE_MR_MODELS: tuple[str, ...] = ("kpn-burst3",)

#: magnitude MR whose floor is that of several coils gets these when no burst model is installed: the Rician model
#: leaves most of that floor in place (benchmark: bias 3.4 sigma left at 8 coils)
MULTI_COIL_MR_MODELS: tuple[str, ...] = ("kpn-mr",)


@dataclass(frozen=True)
class AutoChoice:
    """The model ``auto`` picked for a volume, and why."""

    model: str
    modality: Modality
    reason: str
    #: for magnitude MR: the noise floor to remove from the model's output (None: nothing to remove)
    magnitude_floor: MagnitudeFloor | None = None
    #: for MR without a noise floor in its background and for ultrasound: the background a mask set to one value
    #: (the image's minimum), boolean ``(Z, Y, X)``, given back exactly as it is
    #: (:func:`~meddenoiselib.transforms.background.masked_background`; None: no such background)
    masked: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: the floor's sigma is the one the caller gave (a noise SD in the image's units), not the background's
    floor_sigma_given: bool = False
    #: the floor's coil count is the one the caller gave (``coils``), not the one its spread suggested
    coils_given: bool = False
    #: the floor is known but left in the output (``magnitude_floor="keep"``)
    floor_kept: bool = False

    def describe(self) -> str:
        """One line for logs and reports."""
        text = f"{self.model} for {self.modality.value.upper()} ({self.reason})"
        if self.magnitude_floor is not None:
            floor = self.magnitude_floor
            coils = "1 coil" if floor.coils == 1 else f"{floor.coils} coils"
            coils += " as given" if self.coils_given else ""
            if self.floor_sigma_given:
                where = f"sigma {floor.sigma:.4g} as given, {coils}" + (
                    "" if self.coils_given else " from the background"
                )
            else:
                where = f"sigma {floor.sigma:.4g}, {coils}, from the background"
            if self.floor_kept:
                text += f", its magnitude noise floor kept as asked ({where})"
            else:
                text += f", then its magnitude noise floor removed ({where})"
        return text

    def with_coils(self, coils: int | None) -> AutoChoice:
        """The same choice with the floor read for ``coils`` coils (None: unchanged; unchanged without a floor)."""
        if coils is None or self.magnitude_floor is None:
            return self
        return replace(self, magnitude_floor=self.magnitude_floor.with_coils(coils), coils_given=True)

    def with_floor_sigma(self, sigma: float) -> AutoChoice:
        """The same choice with the magnitude floor's sigma the caller gave (image units); unchanged without a
        floor. The background still tells the coil count and where the air is."""
        if self.magnitude_floor is None:
            return self
        return replace(self, magnitude_floor=replace(self.magnitude_floor, sigma=float(sigma)), floor_sigma_given=True)


def choose_model(volume: Volume, hint: Modality | str | None = None, shipped: list[str] | None = None) -> AutoChoice:
    """Pick the shipped model for ``volume``'s modality (see :func:`~meddenoiselib.io.modality.detect_modality`)."""
    from ..weights import list_shipped_weights

    guess: ModalityGuess = detect_modality(volume, hint)
    available = set(list_shipped_weights() if shipped is None else shipped)
    masked = None
    component = signal_component(volume) if guess.modality in (Modality.MR, Modality.OTHER) else ""
    if component == "phase":
        raise InputError(
            f"{volume.source.path or 'the volume'}: an MR phase image (its header says so): its values are angles "
            "that wrap around at +-pi, and its noise is not the magnitude noise the MR models remove, so `auto` "
            "leaves it alone. Denoise the magnitude images; to denoise the phase anyway (best after unwrapping), "
            "choose a model with --model"
        )
    gaussian_mr = [name for name in MAGNITUDE_MR_MODELS if name in available]
    if guess.modality == Modality.MR and component in ("real", "imaginary") and gaussian_mr:
        # the real or imaginary part of the complex signal: Gaussian noise of zero mean, signed, no floor to remove
        reason = f"{guess.reason}; the {component} part of the complex MR signal: Gaussian noise, no magnitude floor"
        return AutoChoice(gaussian_mr[0], guess.modality, reason)
    if guess.modality == Modality.MR and volume.num_components == 1 and volume.array.min() >= 0:
        # magnitude MR (no negative values): its background holds a noise floor whose sigma and coil count it tells
        floor = estimate_magnitude_floor(volume.array)
        models = [name for name in MAGNITUDE_MR_MODELS if name in available]
        if floor is not None and models:
            return AutoChoice(models[0], guess.modality, guess.reason, magnitude_floor=floor)
        masked = masked_background_of(volume.array, guess.modality) if floor is None else None
        if masked is not None and models:
            # tissue noise is still magnitude noise, but at tissue SNR close to Gaussian, where the burst model and
            # its refinement are the stronger (training MR_Gd, masked: docs/benchmarks_real_mr_masked.md)
            return AutoChoice(models[0], guess.modality, _masked_reason(guess.reason, masked), masked=masked)
        multi = [name for name in MULTI_COIL_MR_MODELS if name in available]
        if floor is not None and floor.coils >= 3 and multi:
            reason = f"{guess.reason}; its background is the noise floor of {floor.coils} coils"
            return AutoChoice(multi[0], guess.modality, reason)
    elif guess.modality == Modality.US and volume.num_components == 1:
        # the black around the sector: no speckle there, nothing to restore
        masked = masked_background_of(volume.array, guess.modality)
    elif guess.modality == Modality.OTHER and volume.num_components == 1 and volume.shape[0] > 1:
        # a volume of unknown modality masked to one value outside the object (a skull-stripped MR of coarse voxels
        # as NIfTI without a modality; of pixels up to 1.5 mm it is MR, io/modality.py): the general model smeared
        # tissue values into ~3 % of MR_Gd's masked air, up to 13 % of its 99th percentile. 2D images are left alone
        # (8-bit files clip dark noise to whole patches of 0)
        masked = masked_background_of(volume.array, guess.modality)
    reason = guess.reason if masked is None else _masked_reason(guess.reason, masked)
    for name in AUTO_MODELS[guess.modality]:
        if name in available:
            return AutoChoice(name, guess.modality, reason, masked=masked)
    fallback = sorted(available)[0] if available else "nlm"
    return AutoChoice(fallback, guess.modality, reason + "; no model for it is installed", masked=masked)


def masked_background_of(array: np.ndarray, modality: Modality) -> np.ndarray | None:
    """:func:`~meddenoiselib.transforms.background.masked_background` of an image ``auto`` took for ``modality``:
    ``(Z, Y, X)`` or ``(T, Z, Y, X)`` in; boolean ``(Z, Y, X)`` or None out. Of unknown modality only a background
    that fills 4x4-pixel patches counts (:data:`~meddenoiselib.transforms.background.OTHER_MASK_PATCH`)."""
    return masked_background(array, patch=OTHER_MASK_PATCH if modality == Modality.OTHER else 2)


#: NaN around the object is read as a mask only where it holds at least this share of the slices' edge pixels
NAN_MASK_EDGE_SHARE = 0.5


def nan_mask_as_zeros(volume: Volume, missing: np.ndarray, hint: Modality | str | None = None) -> Volume | None:
    """``volume`` with its NaN set to 0 where they are a mask around the object (a skull-stripped MR written as a
    float file with NaN outside the brain), for ``auto`` to take as a masked background; None where they are not.

    A mask: a volume of one component, no negative value, whose NaN fill whole 4x4-pixel patches
    (:func:`~meddenoiselib.transforms.background.masked_background` of the zeroed copy takes them all) and at least
    :data:`NAN_MASK_EDGE_SHARE` of the slices' edge pixels, and whose data, filled across the NaN as a resampled
    volume is (:func:`~meddenoiselib.transforms.missing.fill_missing`), would not have a magnitude noise floor removed
    (:func:`choose_model`): a magnitude MR resampled with NaN outside its field of view keeps air with its floor and
    stays on that path.

    Args:
        volume: ``(Z, Y, X)`` float volume. missing: its NaN, boolean, the same shape.
        hint: the modality given for it (``--modality``). Defaults to None.
    """
    array = volume.array
    if volume.num_components != 1 or array.ndim != 3 or array.shape[0] < 2 or float(np.nanmin(array)) < 0:
        return None
    if edge_share(missing) < NAN_MASK_EDGE_SHARE:
        return None
    zeroed = np.where(missing, 0, array).astype(array.dtype)
    masked = masked_background(zeroed, patch=OTHER_MASK_PATCH)
    if masked is None or np.count_nonzero(masked & missing) < 0.9 * np.count_nonzero(missing):
        return None
    if choose_model(volume.with_array(fill_missing(array, missing)), hint).magnitude_floor is not None:
        return None
    return volume.with_array(zeroed)


def nan_mask_of_series_as_zeros(
    series: VolumeSeries, missing: np.ndarray, hint: Modality | str | None = None
) -> VolumeSeries | None:
    """``series`` with its NaN set to 0 where they are one mask around the object in every frame (a masked diffusion
    or functional MR written as float with NaN outside the brain), as :func:`nan_mask_as_zeros` decides it on the
    first frame; None where they are not (NaN that differ from frame to frame, colour frames, no mask).

    Args:
        series: ``(T, Z, Y, X)`` float series. missing: its NaN, boolean, the same shape.
        hint: the modality given for it (``--modality``). Defaults to None.
    """
    if series.array.ndim != 4 or not np.array_equal(missing.all(axis=0), missing.any(axis=0)):
        return None
    if nan_mask_as_zeros(series.frame(0), missing[0], hint) is None:
        return None
    return series.with_array(np.where(missing, 0, series.array).astype(series.array.dtype))


def _masked_reason(reason: str, masked: np.ndarray) -> str:
    """``reason`` and the share of the image that is a masked background, kept as it is."""
    share = np.count_nonzero(masked) / masked.size
    return f"{reason}; {share:.0%} of it is a masked background of one value, kept as it is"
