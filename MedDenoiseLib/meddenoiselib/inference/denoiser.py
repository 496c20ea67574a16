"""The ``Denoiser``: one object that denoises a volume with a shipped network or a classical baseline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from ..baselines import BASELINES, BaselineSpec
from ..blend import apply_mask, blend, mask_array
from ..errors import InputError, MedDenoiseError, OptionError
from ..io.modality import Modality, detect_modality
from ..io.series import (
    VolumeSeries,
    frames_description,
    frames_of_slices,
    series_of_repeated_frames,
    stacked_frames,
)
from ..io.volume import Volume
from ..transforms.anscombe import GeneralizedAnscombe
from ..transforms.background import background_level
from ..transforms.colour import luma, with_new_luma
from ..transforms.ct_padding import fill_outside_reconstruction, outside_reconstruction
from ..transforms.estimate import (
    NoiseEstimate,
    estimate_dct_noise,
    estimate_noise,
    estimate_sigma,
    sampled_slice_indices,
)
from ..transforms.intensity import IntensityScaling, NoiseSD, ScalingMode, fit_scaling
from ..transforms.magnitude import MagnitudeFloor, correct_magnitude_bias
from ..transforms.metal import METAL_HU, metal_region
from ..transforms.missing import fill_left_out, fill_missing, missing_values
from ..transforms.noise import BODY_THRESHOLD_HU
from ..transforms.noise_level import estimate_photon_noise
from ..transforms.noise_sd_map import NoiseSDMap
from .auto import AutoChoice, choose_model, masked_background_of, nan_mask_as_zeros, nan_mask_of_series_as_zeros
from .baseline_runner import BaselineRunner
from .collaborative_wiener import REFINED_MODELS, NoiseSpectrum, Refinement, refine_slices, slices_noise_sigma
from .device import resolve_device
from .network_runner import NetworkRunner, load_network
from .progress import Progress, ProgressCallback

__all__ = [
    "Denoiser",
    "DenoiseCancelled",
    "DenoiseReport",
    "default_model_name",
    "preview_slab",
    "slice_axis",
    "PREFERRED_MODELS",
]

logger = logging.getLogger(__name__)

#: allowed ``ensemble`` sizes: how many of :data:`~.network_runner.GEOMETRIC_TRANSFORMS` are averaged.
ENSEMBLE_SIZES = (1, 2, 4, 8)

#: ``ensemble="auto"`` averages all 8 views for a single 2D image of up to this many pixels and none for volumes and
#: series. 8 views gain ~0.15 dB (kpn-small through the CLI on 14 held-out 2D references: 36.97 / 34.56 / 31.02 ->
#: 37.12 / 34.70 / 31.17 dB at sigma 15 / 25 / 50) for 7x the time: on a 2-core AVX2 CPU 0.5 -> 3.8 s at 512x512
#: and 7.6 -> 43 s at 1024x1024 (2048x2048 would take 160 s); a 512x512x300 CT would take 8x its ~3.5 min, and
#: 2.5D models already average across slices.
AUTO_ENSEMBLE_MAX_PIXELS = 1024 * 1024

#: shipped models in order of preference for the default (best first, by the measured benchmark in docs/).
PREFERRED_MODELS = ("kpn-general", "kpn-small", "irunet-32", "rdn-small", "conv-dae-skip", "dran-small", "dncnn-small")


#: the accepted values of ``Denoiser(precision=...)``.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: the accepted values of ``Denoiser(refine=...)``.
REFINE_CHOICES = ("auto", "on", "off")

#: ``magnitude_floor``: remove a magnitude MR's noise floor where ``auto`` finds one, with any method, or never
MAGNITUDE_FLOOR_MODES = ("auto", "remove", "keep")
#: ``stabilize`` settings: the generalized Anscombe transform around a baseline where the noise grows with the signal
STABILIZE_MODES = ("auto", "off")
#: the modalities whose pixel values can hold photon-counting noise: CT (correlated, in HU), MR (Rician) and
#: ultrasound (multiplicative speckle) have noise models of their own
PHOTON_NOISE_MODALITIES = (Modality.XRAY, Modality.OTHER)
#: slices of a volume whose transform's noise level is measured (:func:`~meddenoiselib.transforms.estimate_noise`'s)
STABILIZED_NOISE_SLICES = 16

#: share of the collaborative Wiener filtering in the average when ``refine="on"`` for a model without a measured one
DEFAULT_REFINE_SHARE = 0.3

#: slices on each side of a previewed slice that stand in for the whole volume for volumetric baselines (BM4D)
PREVIEW_VOLUMETRIC_REACH = 8

#: ``frame_label`` of series whose adjacent frames are another contrast (diffusion gradients, often another b-value;
#: echoes; unknown repeats of a DICOM series): a burst model reads each frame's own adjacent slices there, not the
#: adjacent frames (on a held-out masked DWI 0.1-0.6 dB better at 2 mm, a wash at 6 mm; docs/benchmarks_masked_dwi.md)
FRAMES_OF_OTHER_CONTRAST = ("gradient", "echo", "repeat")


def _check_options(
    overlap,
    strength,
    slice_axis,
    sw_batch_size,
    batch_slices,
    ensemble,
    window,
    roi_size,
    precision="auto",
    refine="auto",
    clip_to_input_range=True,
) -> None:
    """Refuse out-of-range or non-finite settings with :class:`OptionError` naming the argument."""

    def number(value, name: str) -> float:
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise OptionError(f"{name} must be a number, got {value!r}", parameter=name) from None
        if not np.isfinite(value):
            raise OptionError(f"{name} must be finite, got {value!r}", parameter=name)
        return value

    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise OptionError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}", parameter="precision")
    if not 0 <= number(overlap, "overlap") < 1:
        raise OptionError(f"overlap must be in [0, 1), got {overlap}", parameter="overlap")
    if not 0 <= number(strength, "strength") <= 1:
        raise OptionError(f"strength must be in [0, 1], got {strength}", parameter="strength")
    if slice_axis not in (None, 0, 1, 2):
        raise OptionError(f"slice_axis must be 0, 1 or 2, got {slice_axis}", parameter="slice_axis")
    if not isinstance(sw_batch_size, (int, np.integer)) or sw_batch_size < 1:
        raise OptionError(f"sw_batch_size must be a positive integer, got {sw_batch_size!r}", parameter="sw_batch_size")
    if not isinstance(batch_slices, (int, np.integer)) or batch_slices < 1:
        raise OptionError(f"batch_slices must be a positive integer, got {batch_slices!r}", parameter="batch_slices")
    if ensemble != "auto" and (isinstance(ensemble, (bool, str)) or ensemble not in ENSEMBLE_SIZES):
        raise OptionError(
            f"ensemble must be 'auto' or one of {', '.join(map(str, ENSEMBLE_SIZES))}, got {ensemble!r}",
            parameter="ensemble",
        )
    if not isinstance(refine, str) or refine not in REFINE_CHOICES:
        raise OptionError(f"refine must be one of {', '.join(REFINE_CHOICES)}, got {refine!r}", parameter="refine")
    if not isinstance(clip_to_input_range, (bool, np.bool_)):  # the string "false" would read as true
        raise OptionError(
            f"clip_to_input_range must be True or False, got {clip_to_input_range!r}", parameter="clip_to_input_range"
        )
    if window is not None:
        try:
            center, width = window
        except (TypeError, ValueError):
            raise OptionError(f"window must be (center, width), got {window!r}", parameter="window") from None
        number(center, "window")
        if number(width, "window") <= 0:
            raise OptionError(f"the window width must be positive, got {width}", parameter="window")
    if roi_size is not None:
        values = (roi_size,) if isinstance(roi_size, (int, np.integer)) else tuple(roi_size)
        if not values or any(not isinstance(v, (int, np.integer)) or v < 1 for v in values):
            raise OptionError(f"roi_size must be positive integers, got {roi_size!r}", parameter="roi_size")


def default_model_name() -> str:
    """The best shipped model (the CLI's default ``--model``)."""
    from ..weights import list_shipped_weights

    shipped = list_shipped_weights()
    for name in PREFERRED_MODELS:
        if name in shipped:
            return name
    if shipped:
        return shipped[0]
    return "nlm"


class DenoiseCancelled(MedDenoiseError):
    """Raised by :meth:`Denoiser.denoise` when :meth:`Denoiser.cancel` was called during the run."""


@dataclass
class DenoiseReport:
    """What the last :meth:`Denoiser.denoise` call did.

    Attributes:
        method: model or baseline name (for ``auto``, the model it chose).
        sigma: the noise level used or estimated, normalized units (None for blind models without estimate).
        sigma_estimated: whether ``sigma`` was estimated (``"auto"``).
        sigma_used: whether the method used a noise level at all (baselines, noise-aware networks, the
            refinement of white noise); a blind network whose refinement measures a CT's noise spectrum uses none.
        noise_correlated: the estimate found spatially correlated noise (then BM3D was given its PSD).
        seconds: wall time of the denoising step.
        device: the device used.
        scaling: the intensity scaling used per component.
        modality: the modality the volume was taken for (``ct``, ``mr``, ``us``, ``xray``, ``other``).
        choice: for ``auto``, which model was chosen and why; for a method named with ``magnitude_floor="remove"``,
            the floor it removed (else empty).
        ensemble: geometric views the network averaged (1 for baselines and without self-ensemble).
        refined: share of the collaborative Wiener filtering averaged into the network's output (0: not refined).
        refine_detail: the refinement's noise model and block search (empty when not refined).
        missing_voxels: voxels that held no data (NaN), denoised around and given back as NaN.
        left_out_voxels: voxels of the region left out (``exclude``), given back as they were.
        metal_voxels: CT voxels ``auto`` took for metal and left out (:mod:`~meddenoiselib.transforms.metal`).
        preview: for :meth:`Denoiser.preview`, which slice of how many along which axis (else empty).
        frames: for a DICOM volume whose slices are the frames of a series (several images at every position,
            enhanced files, Siemens mosaics), how they were grouped into the 4D series that was denoised (else
            empty).
        floor_sigma: for magnitude MR whose noise floor ``auto`` removed, the floor's per-channel sigma in the
            image's units (read from its air, or given as a :class:`~meddenoiselib.transforms.NoiseSD`); else None.
        noise_sd_map: the label of the :class:`~meddenoiselib.transforms.NoiseSDMap` the image was divided by, else
            empty.
        stabilized: the photon noise a baseline was run under the generalized Anscombe transform for (``stabilize``),
            else empty.
    """

    method: str
    sigma: float | None = None
    sigma_estimated: bool = False
    sigma_used: bool = False
    noise_correlated: bool = False
    seconds: float = 0.0
    device: str = "cpu"
    scaling: list[dict[str, Any]] = field(default_factory=list)
    modality: str = ""
    choice: str = ""
    ensemble: int = 1
    refined: float = 0.0
    refine_detail: str = ""
    missing_voxels: int = 0
    left_out_voxels: int = 0
    metal_voxels: int = 0
    preview: str = ""
    frames: str = ""
    floor_sigma: float | None = None
    noise_sd_map: str = ""
    stabilized: str = ""

    def described_method(self, requested: str) -> str:
        """What denoised the volume, for a sidecar or provenance record: ``requested`` (the Denoiser's ``method``)
        and, for ``auto``, its choice and why (``"auto: kpn-ct-burst3 for CT (DICOM Modality tag)"``)."""
        return requested + (f": {self.choice}" if self.choice else "")


class Denoiser:
    """Denoise volumes with a network (through sliding windows) or a classical baseline.

    The Denoiser is the volume-level orchestrator: it chooses the model (``auto``), fits and inverts the intensity
    scaling, estimates the noise, picks the slice axis, handles components, 4D series, masks, cancellation and the
    report. The pixels are computed by a :class:`~.network_runner.NetworkRunner` or a
    :class:`~.baseline_runner.BaselineRunner`.

    Args:
        method: ``"auto"`` (the shipped model for each volume's modality: DICOM Modality tag, else ``modality``,
            else CT if the values look like HU, else the general model), a shipped model name (see
            ``python -m meddenoiselib models``), a baseline name (``median``, ``nlm``, ``bm3d``, ``bm4d``,
            ``diffusion``), or ``"default"`` for the best general shipped model. Defaults to ``"auto"``, as in the
            CLI, the Slicer module and the MONAI bundle.
        weights: a ``.safetensors`` file (with its ``.json`` model card beside it) to use instead of shipped
            weights. Defaults to None.
        device: ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``. Defaults to ``"auto"``.
        roi_size: sliding-window edge in voxels (per axis); defaults to the model's preset (512 for small 2D models,
            64 for 3D).
        overlap: window overlap fraction in [0, 1). Defaults to 0.25.
        sw_batch_size: windows per forward pass. Defaults to 4.
        slice_axis: array axis (0 = z, 1 = y, 2 = x) along which 2D models and 2D baselines run on a volume;
            None picks the axis with the largest voxel spacing (the through-plane axis), z when isotropic.
        batch_slices: slices processed together by a 2D model. Defaults to 2: with the freed memory kept for the
            next batch (``inference/allocator.py``) the CPU is as fast per slice as with 8, for ~0.5 GB less memory
            on a 512x512 2.5D CT (docs/memory.md); a GPU may want more.
        precision: ``"auto"`` (bf16 on CPUs that support it, fp16 on CUDA), ``"fp32"``, ``"bf16"``, ``"fp16"``.
        scaling_mode: intensity normalization (see :class:`~meddenoiselib.transforms.ScalingMode`). Defaults to
            None: for a network, the scaling its training images had (``input_scaling`` in the model card, min-max
            ``ct_window`` for the CT models), so inputs look like what it learned from; ``"percentile"`` for baselines.
            A min-max model trained on clean images' ranges gets the level of its input's flat background as the
            minimum where the input has one (:func:`~meddenoiselib.transforms.background.background_level`; not
            where ``auto`` finds a magnitude MR floor or ultrasound speckle), not the noisy minimum ~4 sigma below it.
        window: ``(center, width)`` of a CT window in HU. For baselines, normalization uses it (``ct_window``);
            networks trained in HU (their card's ``input_scaling`` is ``ct_window``) always use their training
            map, so that noise in HU looks as it did in training; refused for networks trained on min-max scaled
            images. Values outside the window are never clipped. Defaults to None.
        strength: blend ``noisy + strength * (denoised - noisy)``; 1 is full denoising, 0 returns the input.
        clip_to_input_range: keep denoised values within the input's minimum and maximum (a denoiser should not
            invent intensities below air in CT or negative magnitudes in MR). Defaults to True.
        ensemble: geometric self-ensemble for networks: 1 (off), 2, 4 or 8 in-plane flips/90-degree rotations of each
            window, each denoised and mapped back, then averaged. Noise is independent of orientation but the
            network's errors partly are not, so averaging lowers them (about +0.1 to +0.3 dB for 8) at 2-8x the
            time. ``"auto"``: 8 for a single 2D image of up to :data:`AUTO_ENSEMBLE_MAX_PIXELS` pixels (seconds),
            for a volume the refinement below runs on by default, its ``pilot_views`` (for the CT model 8 up to 8
            slices of 512x512, 4 up to 64 and on a CUDA device), else 1 for volumes and series. Ignored by
            baselines. Defaults to ``"auto"``.
        refine: average a network's output with its collaborative Wiener filtering (BM3D's second stage with the
            network's output as the pilot, :mod:`~meddenoiselib.inference.collaborative_wiener`): ``"auto"`` for the
            models with a measured share (:data:`~.collaborative_wiener.REFINED_MODELS`): the general model on a single
            2D image (sharper edges; the noise uncorrelated, its variance fitted per slice as a line in the
            intensity, or ``sigma`` when given; the share following that noise; above
            :data:`AUTO_ENSEMBLE_MAX_PIXELS` pixels, up to 64 megapixels, with a cheaper search), the burst model
            ``kpn-burst3`` (what ``auto`` gives fine magnitude MR) on 2D images of up to 512x512 with BM3D's search and
            on volumes of up to 1024 slices of 512x512 with a cheaper search on 3 slices
            (:data:`~.collaborative_wiener.MR_VOLUME_SEARCH`; its output is then the filtered image alone), the CT model
            on CT slices and volumes of up to 8 slices of 512x512 with BM3D's search (less low-frequency noise; the
            noise's variance per DCT coefficient measured in flat body tissue), longer CT volumes with cheaper block
            searches: up to 64 slices of 512x512 with :data:`~.collaborative_wiener.CT_MEDIUM_VOLUME_SEARCH` (~0.3 s
            per 512x512 slice on 2 CPU cores) and the network's 4 views as the pilot, up to 128 with the same search
            from one view, up to 1024 with the ~20x cheaper :data:`~.collaborative_wiener.CT_VOLUME_SEARCH` (~0.08 s
            per slice) from one view; on a CUDA device BM3D's search takes CT volumes of up to 1024 slices of 512x512
            (a 512x512x300 CT refined in ~26 s on an H200); ``"on"`` refines every slice with any network,
            ``"off"`` never. Not for the frames of a 4D series. Ignored by baselines. Defaults to ``"auto"``.
        progress: draw a tqdm bar on stderr. Defaults to False.
        progress_callback: ``callback(fraction, message)`` for machine-readable progress. Defaults to None.
        modality: for ``auto`` and noise estimation, the modality of inputs without a DICOM Modality tag
            (``ct``, ``mr``, ``us``, ``xray``, ``other``). Defaults to None (detected).
        metal_hu: for ``auto`` on a CT volume, clusters of voxels at or above this value (HU) are taken for metal
            and left out of the denoising as ``exclude`` leaves a region out: they keep their values and leave no
            halo in the tissue around them (:mod:`~meddenoiselib.transforms.metal`). None denoises them too.
            Defaults to :data:`~meddenoiselib.transforms.metal.METAL_HU` (2500 HU). Of a 4D series, each frame's.
        magnitude_floor: the noise floor of magnitude MR (Rician, or non-central chi for several coils: air reads
            about 1.25 sigma instead of 0 and dark tissue is biased up): ``"auto"`` removes it where ``auto`` finds
            one in the air and leaves it for a method named explicitly; ``"remove"`` removes it with any method (a
            Rician-corrected NLM or BM3D; the floor read from the air, refused where there is none); ``"keep"``
            leaves it with ``auto`` too (the magnitude's mean, for pipelines that correct it themselves).
            Defaults to ``"auto"``.
        coils: the number of receive coils ``N`` a magnitude MR was combined from (root sum of squares; 1 for a
            SENSE/GRAPPA-combined or single-channel image), for the floor's removal: the floor is then read as
            non-central chi of ``N`` coils, not as the count the air's spread suggests. Defaults to None (read
            from the air).
        stabilize: for NLM, BM3D and BM4D with the noise level estimated (``sigma="auto"``) on X-ray and other
            images (microscopy, photographs; not CT, MR or ultrasound): ``"auto"`` measures whether the noise grows
            with the signal (photon counting: :func:`~meddenoiselib.transforms.noise_level.estimate_photon_noise`)
            and then runs the method on the image's generalized Anscombe transform, which makes that noise white
            with one level, and maps the result back with the exact unbiased inverse
            (:class:`~meddenoiselib.transforms.anscombe.GeneralizedAnscombe`); ``"off"`` never. Ignored by networks.
            Defaults to ``"auto"``.

    Example::

        denoiser = Denoiser("auto")
        clean = denoiser.denoise(read_volume("scan.nii.gz"))
    """

    def __init__(
        self,
        method: str = "auto",
        weights: str | Path | None = None,
        device: str | torch.device = "auto",
        roi_size: int | tuple[int, ...] | None = None,
        overlap: float = 0.25,
        sw_batch_size: int = 4,
        slice_axis: int | None = None,
        batch_slices: int = 2,
        precision: str = "auto",
        scaling_mode: ScalingMode | str | None = None,
        window: tuple[float, float] | None = None,
        strength: float = 1.0,
        clip_to_input_range: bool = True,
        progress: bool = False,
        progress_callback: ProgressCallback | None = None,
        ensemble: int | str = "auto",
        modality: Modality | str | None = None,
        refine: str = "auto",
        metal_hu: float | None = METAL_HU,
        magnitude_floor: str = "auto",
        coils: int | None = None,
        stabilize: str = "auto",
    ) -> None:
        _check_options(
            overlap,
            strength,
            slice_axis,
            sw_batch_size,
            batch_slices,
            ensemble,
            window,
            roi_size,
            precision,
            refine,
            clip_to_input_range,
        )
        self.modality_hint = modality
        if modality is not None and not isinstance(modality, Modality):
            from ..io.modality import parse_modality

            try:
                self.modality_hint = parse_modality(modality)
            except ValueError as exc:
                raise OptionError(str(exc), parameter="modality") from None
        self.auto = weights is None and method in (None, "", "auto")
        if metal_hu is not None and not np.isfinite(metal_hu):
            raise OptionError(f"metal_hu must be a finite HU value or None, got {metal_hu!r}", parameter="metal_hu")
        self.metal_hu = None if metal_hu is None else float(metal_hu)
        if magnitude_floor not in MAGNITUDE_FLOOR_MODES:
            raise OptionError(
                f"magnitude_floor must be one of {', '.join(MAGNITUDE_FLOOR_MODES)}, got {magnitude_floor!r}",
                parameter="magnitude_floor",
            )
        if coils is not None and (
            isinstance(coils, bool) or not isinstance(coils, (int, np.integer)) or not 1 <= coils <= 64
        ):
            raise OptionError(f"coils must be a whole number from 1 to 64, got {coils!r}", parameter="coils")
        if stabilize not in STABILIZE_MODES:
            raise OptionError(
                f"stabilize must be one of {', '.join(STABILIZE_MODES)}, got {stabilize!r}", parameter="stabilize"
            )
        self.stabilize = stabilize
        self._stabilizer: _Stabilizer | None = None
        self._stabilized = ""  # what the last call's stabilizer was fitted to, for the report
        self.magnitude_floor = magnitude_floor
        self.coils = None if coils is None else int(coils)
        self._floor_pass = False  # inside the removal of the floor with an explicitly named method
        self._options = dict(
            device=device,
            roi_size=roi_size,
            overlap=overlap,
            sw_batch_size=sw_batch_size,
            slice_axis=slice_axis,
            batch_slices=batch_slices,
            precision=precision,
            scaling_mode=scaling_mode,
            window=window,
            strength=strength,
            clip_to_input_range=clip_to_input_range,
            progress=progress,
            progress_callback=progress_callback,
            ensemble=ensemble,
            modality=modality,
            refine=refine,
            stabilize=stabilize,
        )
        self._delegates: dict[str, Denoiser] = {}
        self._active: Denoiser | None = None
        self._estimate: NoiseEstimate | None = None
        if self.auto:
            method = "auto"
        self.method = default_model_name() if method in (None, "", "default") else str(method)
        self.device = resolve_device(device)
        self.slice_axis = slice_axis
        self.scaling_options = {"center": float(window[0]), "width": float(window[1])} if window is not None else {}
        self.strength = float(strength)
        self.clip_to_input_range = bool(clip_to_input_range)
        self.show_progress = progress
        self.progress_callback = progress_callback
        self.ensemble = ensemble
        self.refine = refine
        self._views_used = 1
        self._sigma_used = False
        self._refined, self._refine_detail = 0.0, ""
        # a network trained on min-max scaled images gets its input's flat background at 0, not its noisy minimum
        # (transforms/background.py); not where the user chose the scaling, nor where ``auto`` finds noise that is
        # not zero-mean around the signal (a magnitude MR floor, ultrasound speckle)
        self._background_to_zero, self._biased_noise = False, False
        # the noise standard deviation (original units) that ``auto`` read from a magnitude MR floor: the refinement's
        # fitted noise level, which reads a small image's fine detail as noise too, is capped at it
        self._known_noise: float | None = None
        self.last_report: DenoiseReport | None = None
        self._cancel = threading.Event()

        self.runner: NetworkRunner | BaselineRunner | None = None
        if self.auto:
            pass  # the model is chosen per volume in denoise()
        elif weights is None and self.method in BASELINES:
            self.runner = BaselineRunner(self.method)
        else:
            model, card = load_network(self.method, weights, self.device)
            if weights is not None:
                self.method = str(card.get("name", Path(weights).stem))
            self.runner = NetworkRunner(
                model,
                card,
                self.device,
                precision=precision,
                roi_size=roi_size,
                overlap=overlap,
                sw_batch_size=sw_batch_size,
                batch_slices=batch_slices,
            )
        trained_scaling = self.card.get("input_scaling", ScalingMode.MINMAX.value) if self.model is not None else ""
        if window is not None and self.model is not None and trained_scaling != ScalingMode.CT_WINDOW.value:
            # a window maps air to about -2.6 and bone to +4 or more; a network that only ever saw [0, 1] inputs
            # answers such values with garbage (the whole image saturated), so refuse instead
            raise OptionError(
                f"model '{self.method}' was trained on images scaled to [0, 1] by their own range, so a CT window "
                "would feed it values far outside what it learned; use a CT model (model 'auto' on CT picks one) "
                "or leave the window out"
            )
        hu_network = trained_scaling == ScalingMode.CT_WINDOW.value
        if window is not None and not hu_network:
            self.scaling_mode = ScalingMode.CT_WINDOW
        elif scaling_mode is not None and window is None:
            try:
                self.scaling_mode = ScalingMode(scaling_mode)
            except ValueError:
                choices = ", ".join(m.value for m in ScalingMode)
                raise OptionError(
                    f"unknown scaling mode {scaling_mode!r}; choose one of {choices}", parameter="scaling_mode"
                ) from None
        elif self.model is not None:
            self.scaling_mode = ScalingMode(trained_scaling)
            self._background_to_zero = self.scaling_mode == ScalingMode.MINMAX
            if hu_network:
                # a network trained in HU learned noise levels on its own fixed map; another window would rescale
                # the noise it sees (a lung window shrinks 25 HU of noise fourfold), so its map is kept whatever
                # the window. Nothing is clipped either way: the map only chooses a normalization.
                center, width = self.card.get("input_window", (40.0, 400.0))
                self.scaling_options = {"center": float(center), "width": float(width)}
                if window is not None and (float(window[0]), float(window[1])) != (float(center), float(width)):
                    logger.info(
                        "model '%s' normalizes with its training map (center %g, width %g HU), not the window (%g, %g)",
                        self.method,
                        center,
                        width,
                        window[0],
                        window[1],
                    )
        else:
            self.scaling_mode = ScalingMode.PERCENTILE

    # ------------------------------------------------------------------------------ what the runner holds
    @property
    def model(self) -> torch.nn.Module | None:
        """The loaded network (None for baselines and for ``auto`` before its first volume)."""
        return self.runner.model if isinstance(self.runner, NetworkRunner) else None

    @property
    def card(self) -> dict[str, Any]:
        """The network's model card (empty for baselines and ``auto``)."""
        return self.runner.card if isinstance(self.runner, NetworkRunner) else {}

    @property
    def baseline(self) -> BaselineSpec | None:
        """The classical baseline (None for networks)."""
        return self.runner.spec if isinstance(self.runner, BaselineRunner) else None

    @property
    def burst(self) -> int:
        """Slices a network sees at once (burst KPN: 3); 1 for baselines and single-slice models."""
        return self.runner.burst if isinstance(self.runner, NetworkRunner) else 1

    @property
    def spatial_dims(self) -> int:
        """2 or 3 for networks; 2 for baselines (volumetric baselines decide for themselves)."""
        return self.runner.spatial_dims if isinstance(self.runner, NetworkRunner) else 2

    # ------------------------------------------------------------------------------------------- public API
    def cancel(self) -> None:
        """Ask a running :meth:`denoise` (e.g. in another thread) to stop at the next slice or window; it then
        raises :class:`DenoiseCancelled`. Safe to call from any thread."""
        self._cancel.set()
        if self._active is not None:
            self._active.cancel()

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise DenoiseCancelled("denoising was cancelled")

    @property
    def needs_sigma(self) -> bool:
        """Whether the method uses a noise level (baselines, noise-map networks); blind networks do not."""
        return self.runner is not None and self.runner.needs_sigma

    def choose(self, volume: Volume) -> AutoChoice:
        """What ``auto`` picks for ``volume`` (the model, its modality and why)."""
        return choose_model(volume, self.modality_hint)

    def _delegate(self, name: str) -> Denoiser:
        if name not in self._delegates:
            self._delegates[name] = Denoiser(name, **self._options)
        return self._delegates[name]

    def _delegate_for(self, choice: AutoChoice) -> Denoiser:
        """The model ``auto`` chose (a method named explicitly whose floor is removed: this Denoiser itself, for one
        pass), told whether its input's noise is zero-mean around the signal (else it keeps the minimum as the
        scaling's 0: a magnitude MR floor, ultrasound speckle)."""
        if self.auto:
            active = self._delegate(choice.model)
        else:
            active, self._floor_pass = self, True
        active._biased_noise = choice.magnitude_floor is not None or choice.modality == Modality.US
        active._known_noise = None if choice.magnitude_floor is None else choice.magnitude_floor.sigma
        return active

    def _after_delegate(self) -> None:
        """Undo what :meth:`_delegate_for` set on this Denoiser itself for a floor's removal."""
        if not self.auto and self._floor_pass:
            self._floor_pass, self._biased_noise, self._known_noise = False, False, None

    def _chooses(self) -> bool:
        """Whether a volume goes through the choice: ``auto``, or a method named explicitly whose magnitude floor is
        removed (``magnitude_floor="remove"``), outside that removal's own pass."""
        return self.auto or (self.magnitude_floor == "remove" and not self._floor_pass)

    def _choice_for(self, volume: Volume, sigma) -> AutoChoice:
        """What ``auto`` chose for ``volume`` (or, for a method named explicitly, that method with the volume's
        magnitude floor), with the coil count and noise SD the caller gave, and whether the floor stays."""
        choice = self.choose(volume) if self.auto else self._floor_choice(volume)
        choice = choice.with_coils(self.coils)
        if isinstance(sigma, NoiseSD):  # the user's SD is the magnitude floor's sigma too
            choice = choice.with_floor_sigma(sigma.value)
        if self.magnitude_floor == "keep" and choice.magnitude_floor is not None:
            choice = replace(choice, floor_kept=True)
        return choice

    def _floor_choice(self, volume: Volume) -> AutoChoice:
        """The method named explicitly, with the magnitude floor read from ``volume``'s air (``remove``).

        Raises:
            InputError: not a one-component image without negative values, or no floor in its air, named.
        """
        from ..transforms.magnitude import estimate_magnitude_floor

        label = volume.source.path or "the volume"
        if volume.num_components != 1 or float(np.nanmin(volume.array)) < 0:
            raise InputError(
                f"{label}: removing a magnitude noise floor needs a magnitude image (one component, no negative "
                "values); this one is not"
            )
        floor = estimate_magnitude_floor(volume.array)
        if floor is None:
            raise InputError(
                f"{label}: no magnitude noise floor was found in its air to remove (no air around the object, air "
                "set to one value by the scanner or a mask, or too little of it); leave the floor (magnitude floor "
                "auto or keep)"
            )
        guess = detect_modality(volume, self.modality_hint)
        return AutoChoice(self.method, guess.modality, guess.reason, floor)

    def denoise(
        self,
        volume: Volume | VolumeSeries,
        sigma: float | str | None = "auto",
        mask: Volume | np.ndarray | None = None,
        exclude: Volume | np.ndarray | None = None,
    ) -> Volume | VolumeSeries:
        """Denoise a volume (or a 4D series) and return it in its original units, dtype and geometry.

        Args:
            volume: the noisy :class:`~meddenoiselib.io.Volume` (any dtype, ``(Z, Y, X)`` or ``(Z, Y, X, C)``;
                components are denoised independently; of colour ultrasound only the luma, whose change every
                channel gets, :mod:`~meddenoiselib.transforms.colour`), or a
                :class:`~meddenoiselib.io.VolumeSeries` (see :meth:`denoise_series`).
            sigma: noise level in normalized units (fraction of the intensity range chosen by the scaling), a
                :class:`~meddenoiselib.transforms.NoiseSD` in the image's own units (HU for CT), converted to each
                scaling's, a :class:`~meddenoiselib.transforms.NoiseSDMap` of the SD per voxel (the image is
                denoised divided by it: :func:`~meddenoiselib.inference.unit_noise.denoise_on_unit_noise`), or
                ``"auto"``/None to estimate it where the method needs one.
            mask: restrict denoising to a region: a single-component volume on the same voxel grid (checked:
                shape, spacing, origin, direction), or a boolean ``(Z, Y, X)`` array. Voxels outside keep the
                input's values exactly. Defaults to None (the whole volume).
            exclude: a region left out of the denoising (metal, an implant, a device), given as ``mask`` is: its
                voxels keep their values exactly, and they do not spread into their neighbours either, which are
                denoised as if the region held the tissue around it (mirrored into it, as around missing data).
                A filter that sees a 3000 HU screw leaves a bright halo in the tissue next to it. Defaults to None.

        Returns:
            A volume with the input's geometry, metadata, source and dtype (integers rounded and clipped).

        Raises:
            MedDenoiseError: the mask or the excluded region does not fit the volume, the region covers all of it,
                or the run was cancelled (:class:`DenoiseCancelled`).
        """
        sigma = self._noise_map_for(volume, sigma)
        if isinstance(sigma, NoiseSDMap):
            from .unit_noise import denoise_on_unit_noise

            return denoise_on_unit_noise(self, volume, sigma, mask, exclude)
        if isinstance(volume, VolumeSeries):
            return self.denoise_series(volume, sigma, mask, exclude)
        repeated = self._as_frames(volume, mask, exclude)
        if repeated is not None:
            series, mask, exclude, description = repeated
            result = self.denoise_series(series, sigma, mask, exclude).array
            self.last_report.frames = description
            return volume.with_array(stacked_frames(result, volume))
        if exclude is not None:
            return self._around_left_out(volume, exclude, lambda filled: self.denoise(filled, sigma, mask))
        return self._denoise_volume(volume, sigma, mask, None)

    def _noise_map_for(self, volume: Volume | VolumeSeries, sigma, preview: bool = False):
        """``sigma``, or, for ``auto`` left to estimate the noise of a magnitude MR image whose noise floor differs
        across the image (:func:`~meddenoiselib.transforms.magnitude.floor_variation`: parallel imaging's g-factor, a
        coil array on one side), a noise SD map estimated from the image (:meth:`NoiseSDMap.estimated`), which one
        level cannot stand for: one level leaves the noisy side noisy and the floor's removal biased; likewise where
        the noise inside the image is well above the floor's in the air
        (:func:`~meddenoiselib.transforms.magnitude.interior_variation`: a g-factor that peaks between the coils, in
        the middle of the image). Not for the ``preview`` of a volume whose slices are a DICOM series' frames
        (previewed frame by frame).

        Only where the noise is seen to vary: where it does not, a map read from the image matched one level's PSNR
        but moved the floor's removal off (held-out MNI T1 template, Rician 3 %: background bias 0.015 -> 0.14 sigma;
        8 coils 0.03 -> 0.78; docs/benchmarks_noise_sd_map.md)."""
        if not self.auto or sigma not in ("auto", None):
            return sigma
        if preview and isinstance(volume, Volume) and series_of_repeated_frames(volume) is not None:
            return sigma
        from ..transforms.magnitude import describe_floor_sigmas, floor_variation, interior_variation

        first = volume.frame(0) if isinstance(volume, VolumeSeries) else volume
        if first.num_components != 1 or missing_values(first.array, "the volume") is not None:
            return sigma
        floor = self.choose(first).magnitude_floor
        if floor is None:
            return sigma
        varies = floor_variation(first.array, floor)
        if varies is not None:
            logger.info("the magnitude noise floor varies across the image: denoised with a noise SD map read from it")
            return NoiseSDMap.estimated(f"the noise floor varies: {describe_floor_sigmas(varies)}")
        inside = interior_variation(first.array, floor)
        if inside is None:
            return sigma
        logger.info(
            "the noise inside the image is %.2f times its floor's: denoised with a noise SD map read from it", inside
        )
        return NoiseSDMap.estimated(
            f"the noise inside the image is {inside:.2f} times the floor's sigma {floor.sigma:.4g} in the air"
        )

    def _as_frames(self, volume: Volume, mask, exclude):
        """``(series, mask, exclude, description)`` for a volume whose slices are the frames of a DICOM series
        (:func:`~meddenoiselib.io.series.series_of_repeated_frames`: a classic DWI, fMRI or multi-echo series with
        several images at every slice position, enhanced files holding such frames, or Siemens mosaics), so that it
        is denoised as a 4D series is (one frame's slices as a burst model's neighbours, not the other frames at the
        same position or the tiles beside it); the masks as one ``(P, Y, X)`` region of every frame; the grouping in
        words. None for any other volume, or where a mask differs between the frames (then the slices are denoised
        as they lie)."""
        series = series_of_repeated_frames(volume)
        if series is None:
            return None
        regions = []
        for region in (mask, exclude):
            if region is None:
                regions.append(None)
                continue
            inside = frames_of_slices(volume, mask_array(volume, region))
            if not (inside == inside[:1]).all():
                return None
            regions.append(inside[0])
        description = frames_description(volume, series)
        logger.info("%s: denoised as a 4D series", description)
        return series, regions[0], regions[1], description

    def preview(
        self,
        volume: Volume | VolumeSeries,
        index: int | None = None,
        sigma: float | str | None = "auto",
        mask: Volume | np.ndarray | None = None,
        frame: int | None = None,
        exclude: Volume | np.ndarray | None = None,
    ) -> Volume:
        """One slice of what :meth:`denoise` gives ``volume``, computed from the few slices around it (seconds, where
        the whole volume takes a minute): a preview that predicts the full run, not a run on a crop.

        What the slice depends on beyond its neighbours is taken from the whole volume as :meth:`denoise` takes it:
        ``auto``'s choice (modality, MR noise floor, masked background), the intensity scaling, the noise estimate,
        the CT padding, the slice axis, and the refinement's tier and the network's views (both chosen by the
        volume's size). The network and the refinement then run on the slice and the two on each side that they
        read, so the slice is the full run's, except for what the full run measures on its output across the
        volume: the CT refinement's noise spectrum is measured in the flat tissue of those (up to 5) slices instead
        of up to 16 sampled across the volume (within 1 HU up to 8 slices, a few HU at a few voxels beyond; RMS
        below 0.7 HU), the residual noise in air that the MR floor's removal allows for in the slice's own air, and
        3D networks and volumetric baselines (BM4D) see a slab around the slice instead of the whole volume.
        Measured against full runs in docs/preview.md.

        A 4D series is previewed as :meth:`denoise_series` runs it: one slice of one frame, with the scaling and
        noise estimate of the whole series and, for a burst model, the same slice of the adjacent frames (where they
        are another contrast, :data:`FRAMES_OF_OTHER_CONTRAST`, the frame's adjacent slices).

        Args:
            volume: as :meth:`denoise`: a volume or a 4D series.
            index: the slice along :meth:`slice_axis_for` (0-based). Defaults to None: the middle one.
            sigma: as :meth:`denoise`.
            mask: as :meth:`denoise`, for the whole volume.
            frame: of a series, the frame (0-based). Defaults to None: the first.
            exclude: as :meth:`denoise`, for the whole volume.

        Returns:
            A volume of that one slice (size 1 along the slice axis) with the input's dtype and metadata, placed
            where the slice lies in the input (:meth:`~meddenoiselib.io.Volume.slab`).

        Raises:
            OptionError: ``index`` or ``frame`` is outside the volume or series, or ``volume`` is neither.
        """
        sigma = self._noise_map_for(volume, sigma, preview=True)
        if isinstance(sigma, NoiseSDMap):
            from .unit_noise import preview_on_unit_noise

            return preview_on_unit_noise(self, volume, sigma, index, mask, frame, exclude)
        one_volume = not isinstance(volume, VolumeSeries) and frame is None
        repeated = self._as_frames(volume, mask, exclude) if one_volume else None
        if repeated is not None and volume.source.mosaic is not None:
            return self._preview_mosaic(volume, repeated, index, sigma)
        if repeated is not None and self.slice_axis_for(volume) == 0 and self.slice_axis_for(repeated[0]) == 0:
            series, frame_mask, frame_exclude, _ = repeated  # the slice's frame at its position, as the whole run
            count = volume.shape[0]
            index = count // 2 if index is None else index
            _check_slice(index, count, 0)
            order = volume.source.frame_order  # a multi-frame file's frames: the slice's rank in position order
            rank = order.index(int(index)) if order else int(index)
            position, frame_index = divmod(rank, series.num_frames)
            result = self.preview(series, position, sigma, frame_mask, frame_index, frame_exclude)
            return volume.slab(0, int(index), int(index) + 1).with_array(result.array)
        image = self._preview_frame(volume, frame)
        axis = self.slice_axis_for(image)
        count = image.shape[axis]
        index = count // 2 if index is None else index
        _check_slice(index, count, axis)
        slab = _Slab(axis, int(index), int(index) + 1)
        if exclude is not None:
            if isinstance(volume, VolumeSeries):
                frame_index = 0 if frame is None else int(frame)
                part = lambda array: slab.take(array[frame_index])  # noqa: E731
            else:
                part = slab.take
            return self._around_left_out(
                volume,
                exclude,
                lambda filled: self.preview(filled, index, sigma, mask, frame),
                part=part,
                region_part=slab.take,
            )
        if isinstance(volume, VolumeSeries):
            frame = 0 if frame is None else int(frame)
            result = self._denoise_series(volume, sigma, mask, (frame, slab))
            where = f"frame {frame} of {volume.num_frames}, "
        else:
            result = self._denoise_volume(volume, sigma, mask, slab)
            where = ""
        self.last_report.preview = f"{where}slice {index} of {count} along array axis {axis}"
        return result

    def _preview_mosaic(self, volume: Volume, repeated, index: int | None, sigma) -> Volume:
        """:meth:`preview` of a Siemens mosaic volume: image ``index`` (a frame) as the whole run gives it, all of its
        tiles (a mosaic's slices are one volume: a preview of one would be a tile of the image)."""
        series, mask, exclude, _ = repeated
        count = volume.shape[0]
        index = count // 2 if index is None else index
        _check_slice(index, count, 0)
        frame = int(index)
        slab = _Slab(0, 0, series.shape[0])
        part = (frame, slab)
        if exclude is not None:
            result = self._around_left_out(
                series,
                exclude,
                lambda filled: self._denoise_series(filled, sigma, mask, part),
                part=lambda array: array[frame],
            )
        else:
            result = self._denoise_series(series, sigma, mask, part)
        self.last_report.preview = f"image {frame} of {count} (a Siemens mosaic: all of its {series.shape[0]} slices)"
        image = volume.slab(0, frame, frame + 1)
        return image.with_array(stacked_frames(result.array[np.newaxis], image))

    @staticmethod
    def _preview_frame(volume: Volume | VolumeSeries, frame: int | None) -> Volume:
        """The volume a preview counts slices in: ``volume``, or frame ``frame`` of a series (checked)."""
        if isinstance(volume, VolumeSeries):
            index = 0 if frame is None else frame
            if not isinstance(index, (int, np.integer)) or not 0 <= index < volume.num_frames:
                raise OptionError(
                    f"frame {index!r} is outside the series: it has {volume.num_frames} frames, 0 to "
                    f"{volume.num_frames - 1}",
                    parameter="frame",
                )
            return volume.frame(int(index))
        if frame is not None:
            raise OptionError("`frame` is for a 4D series; this is one volume", parameter="frame")
        return volume

    def slice_axis_for(self, volume: Volume) -> int:
        """The array axis along which :meth:`denoise` runs 2D models and 2D baselines over ``volume`` (and along
        which :meth:`preview` counts slices): :func:`slice_axis` with this denoiser's ``slice_axis``."""
        if isinstance(volume, VolumeSeries):
            volume = volume.frame(0)  # every frame is denoised along the same axis
        if not isinstance(volume, Volume):
            raise OptionError(f"`volume` must be a Volume or a VolumeSeries, got {type(volume).__name__}.")
        return slice_axis(volume, self.slice_axis)

    def _denoise_volume(
        self,
        volume: Volume,
        sigma: float | str | None,
        mask: Volume | np.ndarray | None,
        slab: _Slab | None,
        find_metal: bool = True,
    ) -> Volume:
        """:meth:`denoise` of one volume; with ``slab``, only those slices are computed and returned
        (:meth:`preview`), everything else measured on the whole volume. ``find_metal``: ``auto`` leaves out the
        metal of a CT volume (False once it has)."""
        if not isinstance(volume, Volume):
            raise OptionError(f"`volume` must be a Volume, got {type(volume).__name__}.")
        if volume.array.dtype.kind not in "iufb" or volume.array.size == 0:
            raise InputError(f"cannot denoise {volume.array.dtype} pixels of shape {volume.array.shape}")
        take = _Slab.whole if slab is None else slab.take
        missing = missing_values(volume.array, "the volume")
        if missing is not None:
            zeroed = nan_mask_as_zeros(volume, missing, self.modality_hint) if self.auto else None
            if zeroed is not None:
                return self._around_nan_mask(
                    zeroed, missing, lambda image: self._denoise_volume(image, sigma, mask, slab), take
                )
            return self._around_missing(
                volume, missing, lambda filled: self._denoise_volume(filled, sigma, mask, slab), take
            )
        inside = None if mask is None else mask_array(volume, mask)
        if self._chooses():
            choice = self._choice_for(volume, sigma)
            rerun = lambda filled: self._denoise_volume(filled, sigma, mask, slab, find_metal=False)  # noqa: E731
            result = self._around_metal(volume, choice, rerun, take) if find_metal and self.auto else None
            if result is not None:
                return result
            logger.debug("auto: %s", choice.describe())
            self._active = self._delegate_for(choice)
            try:
                keep = self._without_masked_background(inside, choice.masked)
                result = self._active._denoise_volume(self._unrounded(volume, choice), sigma, keep, slab)
            finally:
                self.last_report = self._active.last_report
                self._active = None
                self._after_delegate()
            self.last_report.choice = choice.describe()
            if choice.magnitude_floor is not None and not choice.floor_kept:
                self.last_report.floor_sigma = choice.magnitude_floor.sigma
                noisy = take(volume.array)
                array = self._remove_magnitude_floor(noisy, result.array, choice.magnitude_floor, slab is not None)
                result = result.with_array(array if inside is None else apply_mask(noisy, array, take(inside)))
            return result
        start = time.perf_counter()
        self._cancel.clear()
        axis = self.slice_axis_for(volume)
        guess = detect_modality(volume, self.modality_hint)
        components, luma_only = _components(volume.array, volume.num_components, guess.modality)
        outputs, scalings, used_sigma = [], [], None
        self._estimate, self._stabilized = None, ""
        for index, component in enumerate(components):
            original = component
            component, outside, scaling = self._prepare(component, guess.modality)
            normalized = scaling.apply(component)
            # Normalized values are float32: a float64 outlier far beyond the image's range (1e300 in a
            # unit-range image) overflows to inf. Such voxels cannot be filtered meaningfully; they are held at
            # the range of the others while denoising and given back unchanged.
            overflow = ~np.isfinite(normalized)
            if overflow.any():
                finite = normalized[~overflow]
                low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
                normalized[overflow] = np.where(component[overflow] > 0, high, low)
                logger.warning(
                    "%d voxels lie too far outside the image's range to denoise; kept unchanged", int(overflow.sum())
                )
            level = sigma
            if isinstance(sigma, NoiseSD):
                on_ct = guess.modality == Modality.CT and self.needs_sigma
                level = self._given_level(sigma, scaling, normalized, self._body(component, outside) if on_ct else None)
            if sigma in (None, "auto") and self.needs_sigma:
                # CT noise is correlated and lives in the body: estimate it there, with its spectrum
                # elsewhere noise is close to white, and flat-region estimates read tissue texture as noise
                body = self._body(component, outside) if guess.modality == Modality.CT else None
                self._estimate = estimate_noise(normalized, correlated=body is not None, mask=body)
                body = None
            self._stabilizer = self._stabilizer_for(normalized, sigma, guess.modality)
            component = None  # a filled copy of a padded CT is not needed past here: free it before the network runs
            label = "denoising" if len(components) == 1 else f"denoising channel {index + 1}/{len(components)}"
            region = self._normalized_body(normalized, outside, scaling) if guess.modality == Modality.CT else None
            known = None if self._known_noise is None else self._known_noise / scaling.scale
            denoised, used_sigma = self._denoise_normalized(
                normalized,
                level,
                axis,
                label,
                region=region,
                slab=slab,
                known_noise=known,
                neighbour_shift=neighbour_shift(volume.spacing, volume.direction),
            )
            region = None  # it holds `normalized`, freed below before the output is made
            if self.clip_to_input_range:
                np.clip(denoised, normalized.min(), normalized.max(), out=denoised)
            del normalized
            restored = scaling.invert(denoised)
            original, overflow = take(original), take(overflow)
            if overflow.any():
                restored[overflow] = original[overflow]
            if outside is not None:
                outside = take(outside)
                restored[outside] = original[outside]
            outputs.append(restored)
            scalings.append(scaling.to_dict())
        noisy = take(volume.array)
        array = _combined(noisy, [take(c) for c in components], outputs, luma_only)
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            # only possible when the value range overflows float arithmetic (e.g. values near 1e308)
            raise InputError("denoising produced non-finite values: the image's value range is too large")
        if inside is not None:
            array = apply_mask(noisy, array, take(inside))
        self._set_report(sigma, used_sigma, start, scalings, guess.modality.value)
        return (volume if slab is None else volume.slab(*slab)).with_array(array)

    def denoise_series(
        self,
        series: VolumeSeries,
        sigma: float | str | None = "auto",
        mask: Volume | np.ndarray | None = None,
        exclude: Volume | np.ndarray | None = None,
    ) -> VolumeSeries:
        """Denoise every frame of a 4D series (time, gradient directions, a Slicer sequence).

        All frames share one intensity scaling (fitted on the whole series) and one noise estimate, so they stay
        comparable. A burst model (``burst`` > 1, e.g. ``kpn-burst3``) sees the same slice of the adjacent frames
        ``t-1, t, t+1`` as its burst (the series' ends repeat), except where adjacent frames are another contrast
        (``frame_label`` in :data:`FRAMES_OF_OTHER_CONTRAST`: diffusion gradients, echoes, a DICOM series' unnamed
        repeats): there, as every other method, it denoises each frame as a volume (its burst the adjacent slices).
        ``auto`` chooses the model from the first frame.

        Args:
            series: the noisy series, ``(T, Z, Y, X)`` or ``(T, Z, Y, X, C)``.
            sigma: as in :meth:`denoise`.
            mask: one 3D mask for every frame, as in :meth:`denoise`.
            exclude: one 3D region left out in every frame, as in :meth:`denoise`.

        Returns:
            The series with the input's geometry, frame axis, layout and dtype.
        """
        if isinstance(sigma, NoiseSDMap):  # one 3D map for every frame
            from .unit_noise import denoise_on_unit_noise

            return denoise_on_unit_noise(self, series, sigma, mask, exclude)
        if exclude is not None:
            return self._around_left_out(series, exclude, lambda filled: self.denoise_series(filled, sigma, mask))
        return self._denoise_series(series, sigma, mask, None)

    def _denoise_series(
        self,
        series: VolumeSeries,
        sigma: float | str | None,
        mask: Volume | np.ndarray | None,
        part: tuple[int, _Slab] | None,
        find_metal: bool = True,
    ) -> VolumeSeries | Volume:
        """:meth:`denoise_series`; with ``part`` ``(frame, slab)``, only those slices of that frame are computed and
        returned as a volume (:meth:`preview`), everything else measured on the whole series. ``find_metal``:
        ``auto`` leaves out the metal of a CT series, frame by frame (False once it has)."""
        if not isinstance(series, VolumeSeries):
            raise OptionError(f"`series` must be a VolumeSeries, got {type(series).__name__}.")
        if series.array.dtype.kind not in "iufb" or series.array.size == 0:
            raise InputError(f"cannot denoise {series.array.dtype} pixels of shape {series.array.shape}")
        slab = None if part is None else part[1]
        take = _Slab.whole if slab is None else slab.take  # of a (Z, Y, X) mask

        def frames_of(array: np.ndarray) -> np.ndarray:
            """What is computed of a ``(T, Z, Y, X[, C])`` array: all of it, or the part's slices of its frame."""
            return array if part is None else slab.take(array[part[0]])

        missing = missing_values(series.array, "the series")
        if missing is not None:
            zeroed = nan_mask_of_series_as_zeros(series, missing, self.modality_hint) if self.auto else None
            if zeroed is not None:
                return self._around_nan_mask(
                    zeroed, missing, lambda image: self._denoise_series(image, sigma, mask, part), frames_of
                )
            return self._around_missing(
                series, missing, lambda filled: self._denoise_series(filled, sigma, mask, part), frames_of
            )
        inside = None if mask is None else mask_array(series, mask)
        frame_axes = 1 if part is None else 0
        if self._chooses():
            choice = self._choice_for(series.frame(0), sigma)
            rerun = lambda filled: self._denoise_series(filled, sigma, mask, part, find_metal=False)  # noqa: E731
            result = self._around_metal(series, choice, rerun, frames_of) if find_metal and self.auto else None
            if result is not None:
                return result
            if choice.masked is not None:  # the background masked in every frame, not only in the first
                choice = replace(choice, masked=masked_background_of(series.array, choice.modality))
            self._active = self._delegate_for(choice)
            try:
                keep = self._without_masked_background(inside, choice.masked)
                result = self._active._denoise_series(self._unrounded(series, choice), sigma, keep, part)
            finally:
                self.last_report = self._active.last_report
                self._active = None
                self._after_delegate()
            self.last_report.choice = choice.describe()
            if choice.magnitude_floor is not None and not choice.floor_kept:
                self.last_report.floor_sigma = choice.magnitude_floor.sigma
                noisy = frames_of(series.array)
                array = self._remove_magnitude_floor(noisy, result.array, choice.magnitude_floor, True)
                if inside is not None:
                    array = apply_mask(noisy, array, take(inside), frame_axes=frame_axes)
                result = result.with_array(array)
            return result
        start = time.perf_counter()
        self._cancel.clear()
        guess = detect_modality(series.frame(0), self.modality_hint)
        axis = self.slice_axis_for(series)
        frames, count = series.array, series.num_frames
        components, luma_only = _components(frames, series.num_components, guess.modality)
        computed = range(count) if part is None else (part[0],)
        callback, outputs, scalings, used_sigma = self.progress_callback, [], [], None
        self._stabilized = ""
        for index, component in enumerate(components):
            original = component
            component, outside, scaling = self._prepare(component, guess.modality)
            normalized = scaling.apply(component)
            low, high = float(normalized.min()), float(normalized.max())
            slices = normalized.reshape(-1, *normalized.shape[-2:])  # every frame's slices, for one noise estimate
            self._estimate = None
            level: float | str | NoiseEstimate | None = sigma
            if isinstance(sigma, NoiseSD):
                on_ct = guess.modality == Modality.CT and self.needs_sigma
                body = self._body(component, outside).reshape(slices.shape) if on_ct else None
                level = self._given_level(sigma, scaling, slices, body)
            if sigma in (None, "auto") and self.needs_sigma:
                body = self._body(component, outside).reshape(slices.shape) if guess.modality == Modality.CT else None
                level = self._estimate = estimate_noise(
                    slices, correlated=True if body is not None else None, mask=body
                )
            self._stabilizer = self._stabilizer_for(slices, sigma, guess.modality)
            result = np.empty_like(normalized) if part is None else None
            known = None if self._known_noise is None else self._known_noise / scaling.scale
            try:
                for t in computed:
                    self._check_cancel()
                    done, total = index * len(computed) + computed.index(t), len(components) * len(computed)
                    if callback is not None:
                        self.progress_callback = lambda f, m, done=done, total=total: callback((done + f) / total, m)
                    label = f"denoising frame {t + 1}/{count}" + (
                        f", channel {index + 1}/{len(components)}" if len(components) > 1 else ""
                    )
                    burst = None  # a burst model then reads the frame's adjacent slices
                    # a diffusion series' adjacent frames are other gradients, often another b-value (b = 0 beside
                    # b = 1000), an echo series' other echoes: the frame's own adjacent slices are the better burst
                    # there (+0.1-0.6 dB at 2 mm, a wash at 6 mm; docs/benchmarks_masked_dwi.md)
                    if self.burst > 1 and self.spatial_dims == 2 and series.frame_label not in FRAMES_OF_OTHER_CONTRAST:
                        half = self.burst // 2
                        burst = normalized[np.clip(np.arange(t - half, t + half + 1), 0, count - 1)]
                    frame, region = normalized[t], None
                    if guess.modality == Modality.CT:  # where the refinement measures the noise: this frame's body
                        region = self._normalized_body(frame, None if outside is None else outside[t], scaling)
                    denoised, used_sigma = self._denoise_normalized(
                        frame,
                        level,
                        axis,
                        label,
                        burst,
                        count,
                        region,
                        slab,
                        known_noise=known,
                        neighbour_shift=neighbour_shift(series.spacing, series.direction),
                    )
                    if part is None:
                        result[t] = denoised
                    else:
                        result = denoised
            finally:
                self.progress_callback = callback
            if self.clip_to_input_range:
                np.clip(result, low, high, out=result)
            del normalized
            restored = scaling.invert(result)
            if outside is not None:
                outside, original = frames_of(outside), frames_of(original)
                restored[outside] = original[outside]
            outputs.append(restored)
            scalings.append(scaling.to_dict())
        noisy = frames_of(series.array)
        array = _combined(noisy, [frames_of(c) for c in components], outputs, luma_only)
        if inside is not None:
            array = apply_mask(noisy, array, take(inside), frame_axes=frame_axes)
        self._set_report(sigma, used_sigma, start, scalings, guess.modality.value)
        if part is None:
            return series.with_array(array)
        return series.frame(part[0]).slab(*slab).with_array(array)

    def _around_missing(
        self,
        image: Volume | VolumeSeries,
        missing: np.ndarray,
        run: Callable[[Volume | VolumeSeries], Any],
        take: Callable[[np.ndarray], np.ndarray] = lambda array: array,
    ) -> Volume | VolumeSeries:
        """Denoise an image holding NaN (no data, e.g. outside the field of view after resampling): ``run`` on a copy
        whose NaN are filled by mirroring the data of their slice across the region's edge
        (:func:`~meddenoiselib.transforms.missing.fill_missing`), NaN given back in the output, so nothing that was
        no data becomes data. ``take``: the part of the image that ``run`` returns (a preview's slice)."""
        components = image.array.ndim == (5 if isinstance(image, VolumeSeries) else 4)
        count = int(missing.any(axis=-1).sum() if components else missing.sum())
        logger.info("%d voxels hold no data (NaN): denoised around them, and NaN in the output", count)
        logger.warning(
            "regions without data mark a resampled volume: resampling blurs and correlates the scanner's noise, which "
            "denoisers remove less well; where you can, denoise the scan before resampling or registration"
        )
        filled = image.with_array(fill_missing(image.array, missing, components))
        return self._with_nan_given_back(filled, missing, count, run, take)

    def _around_nan_mask(
        self,
        zeroed: Volume | VolumeSeries,
        missing: np.ndarray,
        run: Callable[[Volume | VolumeSeries], Volume | VolumeSeries],
        take: Callable[[np.ndarray], np.ndarray],
    ) -> Volume | VolumeSeries:
        """``auto`` on a volume or series whose NaN are a mask around the object (:func:`~.auto.nan_mask_as_zeros`,
        :func:`~.auto.nan_mask_of_series_as_zeros`): ``run`` on ``zeroed``, where they are 0 and so a masked
        background that ``auto`` keeps as it is (a skull-stripped MR of fine voxels is MR), NaN given back in the
        output."""
        count = int(missing.sum())
        logger.info("%d voxels hold no data (NaN) around the object: taken for a mask, and NaN in the output", count)
        return self._with_nan_given_back(zeroed, missing, count, run, take)

    def _with_nan_given_back(
        self,
        image: Volume | VolumeSeries,
        missing: np.ndarray,
        count: int,
        run: Callable[[Volume | VolumeSeries], Any],
        take: Callable[[np.ndarray], np.ndarray],
    ) -> Volume | VolumeSeries:
        """``run`` on ``image`` (its NaN filled or zeroed), NaN given back where ``missing`` holds them (``take``:
        the part of it ``run`` returns), and their ``count`` in the report."""
        result = run(image)
        array = result.array
        array[take(missing)] = np.nan
        self.last_report.missing_voxels = count
        return result.with_array(array)

    def _around_left_out(
        self,
        image: Volume | VolumeSeries,
        exclude: Volume | np.ndarray,
        run: Callable[[Volume | VolumeSeries], Volume | VolumeSeries],
        part: Callable[[np.ndarray], np.ndarray] = lambda array: array,
        region_part: Callable[[np.ndarray], np.ndarray] = lambda array: array,
        metal: bool = False,
    ) -> Volume | VolumeSeries:
        """Denoise ``image`` with the ``exclude`` region left out: ``run`` on a copy in which the region holds its
        neighbours mirrored into it (:func:`~meddenoiselib.transforms.missing.fill_left_out`), then the input's own
        values given back there. ``part``: what ``run`` returns of an input array (a preview's slice, of its
        frame), ``region_part`` of the region; ``metal``: the region is the metal ``auto`` found, boolean
        ``(Z, Y, X)`` or, of a series, ``(T, Z, Y, X)`` (else one region on the image's grid, checked)."""
        region = exclude if metal else mask_array(image, exclude, "the region left out", allow_empty=True)
        series = isinstance(image, VolumeSeries)
        count = int(region.sum())
        if count == region.size:
            raise MedDenoiseError("the region left out covers the whole image: nothing would be denoised")
        if count == 0:
            logger.info("the region left out has no voxel: the whole image is denoised")
            return run(image)
        components = image.array.ndim == (5 if series else 4)
        what = f"voxels of metal (at or above {self.metal_hu:g} HU)" if metal else "voxels"
        logger.info(
            "%d %s left out: kept as they are, their neighbours denoised as if they were not there", count, what
        )
        frames = int(series and region.ndim == 3)  # one region for every frame
        result = run(image.with_array(fill_left_out(image.array, region, frames, components)))
        noisy, denoised = part(image.array), result.array
        if metal:
            self.last_report.metal_voxels = count
        else:
            self.last_report.left_out_voxels = count
        kept = region_part(region)
        kept = kept.reshape(kept.shape + (1,) * int(components))  # broadcast over the frames and components
        return result.with_array(np.where(kept, noisy.astype(denoised.dtype, copy=False), denoised))

    def _around_metal(
        self,
        image: Volume | VolumeSeries,
        choice: AutoChoice,
        run: Callable[[Volume | VolumeSeries], Volume | VolumeSeries],
        part: Callable[[np.ndarray], np.ndarray],
    ) -> Volume | VolumeSeries | None:
        """``run`` with the metal ``auto`` finds in ``image`` left out (:meth:`_around_left_out`; ``part``: what
        ``run`` returns of an array), or None when there is none to leave out."""
        metal = self._metal(image, choice)
        if metal is None:
            return None
        return self._around_left_out(image, metal, run, part=part, region_part=part, metal=True)

    def _metal(self, image: Volume | VolumeSeries, choice: AutoChoice) -> np.ndarray | None:
        """The metal ``auto`` leaves out of a CT volume, ``(Z, Y, X)``, or of each frame of a CT series,
        ``(T, Z, Y, X)`` (:func:`~meddenoiselib.transforms.metal.metal_region`); None for another modality, colour,
        ``metal_hu`` None, or no metal."""
        if self.metal_hu is None or choice.modality != Modality.CT or image.num_components != 1:
            return None
        metal = metal_region(image.array, self.metal_hu)
        return None if metal is None or metal.all() else metal  # all metal: nothing around it to protect

    @staticmethod
    def _normalized_body(
        normalized: np.ndarray, outside: np.ndarray | None, scaling: IntensityScaling
    ) -> Callable[[], np.ndarray]:
        """The CT body of a normalized volume, computed when called (the refinement's noise spectrum): a volume's
        worth of booleans is not held while the network runs."""
        threshold = float(scaling.apply(np.array([BODY_THRESHOLD_HU], dtype=np.float32))[0])
        return lambda: Denoiser._body(normalized, outside, threshold)

    @staticmethod
    def _body(values: np.ndarray, outside: np.ndarray | None, threshold: float = BODY_THRESHOLD_HU) -> np.ndarray:
        """CT voxels where the noise is estimated: the body (above ``threshold``: -500 HU in HU, or that value on a
        normalized scale), not the padding's filled stand-ins."""
        body = values > threshold
        return body if outside is None else body & ~outside

    def _prepare(
        self, component: np.ndarray, modality: Modality
    ) -> tuple[np.ndarray, np.ndarray | None, IntensityScaling]:
        """A component as the method sees it, before normalization.

        Returns:
            ``(values, outside, scaling)``: for CT the voxels outside the reconstructed field of view (``outside``,
            else None) filled from the nearest voxel inside, in a float copy, to be given back unchanged after
            denoising; the method's scaling of ``values``, inverting to the input's dtype.
        """
        outside = outside_reconstruction(component) if modality == Modality.CT else None
        values = component if outside is None else fill_outside_reconstruction(component, outside)
        scaling = fit_scaling(values, self.scaling_mode, **self.scaling_options)
        if self._background_to_zero and not self._biased_noise:
            level = background_level(values)
            if level is not None and scaling.low < level < scaling.high:
                logger.debug("minimum %g -> flat background's level %g", scaling.low, level)
                scaling = replace(scaling, low=level)
        if scaling.dtype != component.dtype.name:
            scaling = replace(scaling, dtype=component.dtype.name)
        return values, outside, scaling

    @staticmethod
    def _without_masked_background(inside: np.ndarray | None, masked: np.ndarray | None) -> np.ndarray | None:
        """The region to denoise: the user's mask (None: everything) less a background a mask set to one value
        (``auto`` on MR without a noise floor and on ultrasound), which is given back exactly as it was."""
        if masked is None:
            return inside
        return ~masked if inside is None else inside & ~masked

    @staticmethod
    def _unrounded(volume: Volume | VolumeSeries, choice: AutoChoice) -> Volume | VolumeSeries:
        """What ``auto``'s model denoises: a float32 copy of integer magnitude MR whose floor is removed afterwards,
        so that the removal sees the model's output unrounded (with sigma a few units, rounding to integers hid the
        residual noise in air that the removal measures: the removal's bias on the real-noise benchmark's brain at
        Rician 3 % was 0.127 sigma through integer DICOM against -0.39 in float), else ``volume`` itself."""
        if choice.magnitude_floor is None or choice.floor_kept or volume.array.dtype.kind == "f":
            return volume
        return volume.with_array(volume.array.astype(np.float32))

    def _remove_magnitude_floor(
        self, noisy: np.ndarray, denoised: np.ndarray, floor: MagnitudeFloor, own_air: bool = False
    ) -> np.ndarray:
        """``auto`` on magnitude MR: map the model's estimate of the magnitude's mean to the signal (air to 0, so
        below the input's minimum where the input's air held the floor), in the input's units and dtype.

        With ``strength`` < 1 the model's full output is recovered from the blend, corrected and blended again.
        ``own_air``: the images are not the volume the floor was read from (a preview's slice of it, every frame of
        a series whose first frame it was read from), so their own air tiles measure the residual noise the
        correction allows for."""
        if self.strength == 0:
            return denoised
        values = denoised.astype(np.float32)
        if self.strength < 1:
            values = noisy + (values - noisy) / self.strength
        return blend(noisy, correct_magnitude_bias(values, floor, noisy if own_air else None), self.strength)

    def _views(self, shape: tuple[int, ...], axis: int, in_series: int, refinement: Refinement | None) -> int:
        """Geometric views to average for a normalized volume of ``shape`` run along ``axis`` (``ensemble``): for
        ``"auto"``, 8 for a single 2D image, the refinement's ``pilot_views`` for a refined volume."""
        if self.ensemble != "auto":
            return int(self.ensemble)
        if not isinstance(self.runner, NetworkRunner) or self.runner.spatial_dims != 2 or in_series:
            return 1
        if self._single_image(shape, axis):
            return 8
        return refinement.pilot_views if refinement is not None else 1

    @staticmethod
    def _single_image(shape: tuple[int, ...], axis: int) -> bool:
        """One 2D image (a single slice along ``axis``) of up to :data:`AUTO_ENSEMBLE_MAX_PIXELS` pixels: what the
        ``"auto"`` settings of ``ensemble`` and ``refine`` spend seconds on."""
        pixels = int(np.prod([size for a, size in enumerate(shape) if a != axis]))
        return shape[axis] == 1 and pixels <= AUTO_ENSEMBLE_MAX_PIXELS

    def _refinement(self, shape: tuple[int, ...], axis: int, in_series: int) -> Refinement | None:
        """How to refine a normalized volume's output (``refine``); None: not at all. ``in_series``: the volume is
        one of this many frames of a 4D series (0: it is not), whose tier is chosen by the whole series' pixels:
        every frame is refined, so the time limits hold for them all together."""
        if self.refine == "off" or not isinstance(self.runner, NetworkRunner) or self.runner.spatial_dims != 2:
            return None
        measured = REFINED_MODELS.get(self.method)
        if self.refine == "on":
            return measured or Refinement(DEFAULT_REFINE_SHARE)
        if measured is None or (in_series and not measured.series):
            return None
        if not (measured.volumes or shape[axis] == 1):  # a 2D image of any size: its tiers by pixels below
            return None
        pixels, largest = int(np.prod(shape)) * max(in_series, 1), 0
        candidate: Refinement | None = measured
        while candidate is not None:  # the first of the model's refinements, cheaper ones last, that takes the volume
            limit = self._refine_limit(candidate)
            if pixels <= limit:
                return candidate
            largest = max(largest, limit)
            candidate = candidate.larger
        logger.info(
            "not refined: %d pixels exceed the %d the collaborative Wiener filtering takes by default on %s "
            "(time); refine='on' (--refine on) filters them all, ~2.5 s per 512x512 slice on 2 CPU cores",
            pixels,
            largest,
            self.device.type.upper(),
        )
        return None

    def _refine_limit(self, refinement: Refinement) -> int:
        """The most pixels ``refinement`` takes by default on this device (for time)."""
        if self.device.type == "cuda" and refinement.cuda_max_pixels is not None:
            return refinement.cuda_max_pixels
        return refinement.max_pixels

    def _refine(
        self,
        normalized: np.ndarray,
        denoised: np.ndarray,
        axis: int,
        sigma: float | None,
        refinement: Refinement,
        region: Callable[[], np.ndarray] | None,
        only: range | None = None,
        known_noise: float | None = None,
    ) -> np.ndarray:
        """Average the network's output with its collaborative Wiener filtering, slice by slice along ``axis``
        (``only``: just those slices, a preview's).

        The noise: for a model of correlated noise (CT) its variance per DCT coefficient, measured in the flat
        tissue of ``region``, the flattest blocks chosen on the network's output; else ``sigma`` when given, or a
        variance line fitted per slice, capped at ``known_noise`` (a magnitude MR floor's sigma) when given."""
        noisy, pilot = np.moveaxis(normalized, axis, 0), np.moveaxis(denoised, axis, 0)
        noise: float | NoiseSpectrum | None = sigma
        if refinement.correlated:
            body = None if region is None else np.moveaxis(region(), axis, 0)
            variances = estimate_dct_noise(noisy, pilot, body)
            if variances is None:
                logger.info("refinement skipped: too little flat tissue to measure the noise spectrum")
                return denoised
            noise = NoiseSpectrum(variances * refinement.noise_factor)
        search = refinement.search
        share, noise_note = refinement.share, ""
        if refinement.share_by_noise and not refinement.correlated:
            level = sigma if sigma is not None else slices_noise_sigma(noisy, pilot, only)
            share = refinement.share_for(level * 255.0)
            noise_note = f"; the share for noise sigma {level * 255.0:.3g} on the 0-255 scale"
        count = noisy.shape[0] if only is None else len(only)
        with Progress(count, "refining (collaborative Wiener)", self.show_progress, self.progress_callback) as bar:
            refine_slices(
                noisy, pilot, share, self.device, self._check_cancel, noise, search, out=pilot,
                on_slice=bar.update, neighbours=refinement.neighbours, slices=only,
                threshold_pilot=refinement.threshold_pilot, noise_ceiling=known_noise,
            )  # fmt: skip
        self._refined = share
        self._sigma_used = self._sigma_used or not refinement.correlated
        window = 2 * search.radius + 1
        noise_model = "noise level"
        if sigma is None and known_noise is not None:
            noise_model = "noise level, at most the floor's sigma"
        if refinement.correlated:
            factor = refinement.noise_factor
            noise_model = "noise spectrum" + (f" x{factor:g}" if factor != 1 else "")
        slices = min(2 * refinement.neighbours + 1, noisy.shape[0])
        where = f"{window}x{window} px" + (f" on {slices} adjacent slices" if slices > 1 else "")
        self._refine_detail = f"{noise_model}; {search.matches} blocks matched within {where}{noise_note}"
        if refinement.threshold_pilot:
            self._refine_detail += "; pilot averaged with collaborative hard thresholding"
        return denoised

    def _set_report(self, sigma, used_sigma, start: float, scalings: list[dict[str, Any]], modality: str) -> None:
        self.last_report = DenoiseReport(
            method=self.method,
            sigma=used_sigma,
            sigma_estimated=sigma in (None, "auto") and used_sigma is not None,
            sigma_used=self._sigma_used,
            seconds=time.perf_counter() - start,
            device=str(self.device),
            scaling=scalings,
            noise_correlated=bool(self._estimate is not None and self._estimate.correlated),
            modality=modality,
            ensemble=self._views_used,
            refined=self._refined,
            refine_detail=self._refine_detail if self._refined else "",
            stabilized=self._stabilized,
        )

    def denoise_array(self, array: np.ndarray, sigma: float | str | None = "auto") -> np.ndarray:
        """Denoise an already normalized float image: ``(Y, X)`` or ``(Z, Y, X)``, nominally in [0, 1].

        This is the step between intensity scaling and its inverse, used by the evaluation tools, where the clean
        reference and the noise live on the normalized scale.

        Args:
            array: normalized noisy image.
            sigma: noise level (normalized units), or ``"auto"``/None to estimate it where needed.

        Returns:
            The denoised image, float32, same shape.
        """
        if self.auto:
            hint = self.modality_hint or Modality.OTHER
            placeholder = Volume(np.zeros((1, 1, 1), np.float32))
            self._active = self._delegate(choose_model(placeholder, hint).model)
            try:
                return self._active.denoise_array(array, sigma)
            finally:
                self._active = None
        self._estimate = None
        array = np.asarray(array, dtype=np.float32)
        squeeze = array.ndim == 2
        volume = array[np.newaxis] if squeeze else array
        if volume.ndim != 3:
            raise OptionError(f"`array` must be 2D or 3D, got shape {array.shape}.")
        if not np.all(np.isfinite(volume)):
            raise InputError("the image contains NaN/Inf values; fix or mask them first")
        axis = 0 if self.slice_axis is None else self.slice_axis  # no spacing: taken as isotropic, so z
        self._stabilized = ""
        self._stabilizer = self._stabilizer_for(volume, sigma, self.modality_hint or Modality.OTHER)
        denoised, _ = self._denoise_normalized(volume, sigma, axis, "denoising")
        return denoised[0] if squeeze else denoised

    # -------------------------------------------------------------------------------------------- internals
    def _given_level(
        self, sigma: NoiseSD, scaling: IntensityScaling, normalized: np.ndarray, body: np.ndarray | None
    ) -> float | NoiseEstimate:
        """A noise SD in the image's units on ``scaling``'s normalized scale; on CT (``body``: where its tissue is,
        given for methods that take a noise level) with the shape of the noise spectrum measured in flat body
        tissue, so that BM3D filters correlated noise by its texture at the level the user gave."""
        level = sigma.normalized(scaling)
        if body is None:
            return level
        estimate = estimate_noise(normalized, correlated=True, mask=body)
        return replace(estimate, sigma=level) if estimate.correlated else level

    def _resolve_sigma(self, normalized: np.ndarray, sigma: float | str | NoiseEstimate | None) -> float | None:
        if isinstance(sigma, NoiseEstimate):
            self._estimate = sigma
            return sigma.sigma
        if isinstance(sigma, (NoiseSD, NoiseSDMap)):
            raise OptionError(
                "a noise SD in the image's units needs the image's scaling: give an image to denoise(), or a "
                "normalized sigma here",
                parameter="sigma",
            )
        if sigma in (None, "auto"):
            if not self.needs_sigma:
                return None
            if self._estimate is None:
                self._estimate = estimate_noise(normalized, correlated=False)
            estimate = self._estimate
            logger.info(
                "estimated noise sigma: %.4f (%.1f on the 0-255 scale)%s",
                estimate.sigma,
                estimate.sigma * 255,
                "; spatially correlated" if estimate.correlated else "",
            )
            return estimate.sigma
        try:
            value = float(sigma)
        except (TypeError, ValueError):
            raise OptionError(f"sigma must be a number or 'auto', got {sigma!r}", parameter="sigma") from None
        if not np.isfinite(value) or value < 0:
            raise OptionError(f"sigma must be a finite non-negative number, got {sigma!r}", parameter="sigma")
        return value

    def _denoise_normalized(
        self,
        normalized: np.ndarray,
        sigma: float | str | NoiseEstimate | None,
        axis: int,
        label: str,
        burst: np.ndarray | None = None,
        in_series: int = 0,
        region: Callable[[], np.ndarray] | None = None,
        slab: _Slab | None = None,
        known_noise: float | None = None,
        neighbour_shift: tuple[float, float] | None = None,
    ) -> tuple[np.ndarray, float | None]:
        """Denoise one normalized volume along array ``axis`` (:meth:`slice_axis_for`, for 2D models and 2D
        baselines); ``burst`` ``(B, Z, Y, X)`` gives a burst model its frames (4D series)
        instead of the adjacent slices; ``in_series``: the volume is one frame of a 4D series of this many frames
        (0: not a frame); ``region``: gives where correlated noise is measured for the refinement (the CT body),
        boolean, ``normalized``'s shape;
        ``slab``: compute and return only those slices (a preview), from the slices around them that the method
        reads, with the settings the whole volume gets; ``known_noise``: the most the noise's standard deviation can
        be, in normalized units, measured elsewhere (a magnitude MR floor's sigma): the refinement's ceiling;
        ``neighbour_shift``: a sheared grid's in-plane step between slices (:func:`neighbour_shift`), for a burst
        model's adjacent slices."""
        used_sigma = self._resolve_sigma(normalized, sigma)
        self._sigma_used = self.needs_sigma  # and the refinement of white noise, below
        self._views_used = 1
        self._refined, self._refine_detail = 0.0, ""
        take = _Slab.whole if slab is None else slab.take
        if self.strength == 0:  # the blend would return the input whatever the method computes
            return take(normalized).astype(np.float32, copy=True), used_sigma

        def progress(total: int) -> Progress:
            return Progress(total, label, self.show_progress, self.progress_callback)

        refinement = None
        if isinstance(self.runner, NetworkRunner):
            refinement = self._refinement(normalized.shape, axis, in_series)
            self._views_used = self._views(normalized.shape, axis, in_series, refinement)
        lo, hi = (
            (0, normalized.shape[axis])
            if slab is None
            else slab.around(normalized.shape[axis], self._reach(axis, refinement))
        )
        work = normalized if slab is None else slab.take(normalized, lo, hi)
        if isinstance(self.runner, BaselineRunner):
            denoised = self._run_baseline(work, used_sigma, axis, progress)
        else:
            if slab is not None and burst is not None:  # (B, Z, Y, X): the same slices of each burst frame
                burst = _Slab(axis + 1, lo, hi).take(burst)
            denoised = self.runner.run(
                work,
                used_sigma,
                axis,
                progress,
                self._check_cancel,
                burst,
                views=self._views_used,
                neighbour_shift=neighbour_shift,
            )
            if refinement is not None:
                if slab is not None:
                    region = None if region is None else (lambda whole=region: slab.take(whole(), lo, hi))
                only = None if slab is None else range(slab.start - lo, slab.stop - lo)
                denoised = self._refine(work, denoised, axis, used_sigma, refinement, region, only, known_noise)
        if slab is not None:
            denoised = slab.take(denoised, slab.start - lo, slab.stop - lo)
        if self.strength < 1:
            noisy = take(normalized)
            denoised = noisy + self.strength * (denoised - noisy)
        return denoised.astype(np.float32, copy=False), used_sigma

    def _stabilizer_for(
        self, normalized: np.ndarray, sigma: float | str | NoiseEstimate | None, modality: Modality
    ) -> _Stabilizer | None:
        """The generalized Anscombe transform for a baseline on ``normalized`` ``(Z, Y, X)`` where ``stabilize``
        allows it and its noise grows with the signal (see the class's ``stabilize``), else None. Its scale and
        noise level are the whole volume's, so that a preview's slab is filtered as the whole volume is."""
        spec = self.baseline
        if (
            self.stabilize == "off"
            or spec is None
            or not spec.stabilizes
            or sigma not in (None, "auto")
            or modality not in PHOTON_NOISE_MODALITIES
        ):
            return None
        level = estimate_photon_noise(normalized)
        if level is None:
            return None
        self._stabilized = (
            f"photon noise, variance {level.gain:.3g} * x {'-' if level.floor < 0 else '+'} {abs(level.floor):.3g} "
            "on the normalized scale: "
            "denoised under the generalized Anscombe transform, mapped back with its exact unbiased inverse"
        )
        logger.info("%s", self._stabilized)
        transform = GeneralizedAnscombe(level)
        # the transform rises with the value: the volume's extremes give the transformed range without transforming it
        low, high = (float(transform.forward(np.float64(v))) for v in (normalized.min(), normalized.max()))
        span = max(high - low, 1e-12)
        sampled = normalized[sampled_slice_indices(normalized.shape[0], STABILIZED_NOISE_SLICES)]
        unit_sigma = estimate_sigma(
            ((transform.forward(sampled) - low) / span).astype(np.float32), STABILIZED_NOISE_SLICES
        )
        return _Stabilizer(transform, low, span, unit_sigma)

    def _run_baseline(
        self, work: np.ndarray, sigma: float | None, axis: int, progress: Callable[[int], Progress]
    ) -> np.ndarray:
        """The baseline on ``work`` (normalized ``(Z, Y, X)``), under the generalized Anscombe transform where
        :meth:`_stabilizer_for` gave one."""
        stabilizer = self._stabilizer
        if stabilizer is None:
            return self.runner.run(work, sigma or 0.0, axis, self._estimate, progress, self._check_cancel)
        denoised = self.runner.run(stabilizer.unit(work), stabilizer.sigma, axis, None, progress, self._check_cancel)
        return stabilizer.back(denoised)

    def _reach(self, axis: int, refinement: Refinement | None) -> int:
        """Slices on each side of a slice that its output depends on (a preview computes them): the burst's and the
        refinement's neighbours' for 2D networks, none for 2D baselines; 3D networks and volumetric baselines read the
        whole volume, of which a window's depth (3D network) or :data:`PREVIEW_VOLUMETRIC_REACH` slices stand in."""
        if isinstance(self.runner, BaselineRunner):
            return PREVIEW_VOLUMETRIC_REACH if self.runner.spec.volumetric else 0
        if self.runner.spatial_dims == 3:
            return self.runner.roi(3)[axis]
        # the refinement reads its neighbours' network outputs, each of which reads its own burst; with a thresholded
        # pilot, each neighbour's pilot reads the network outputs of its own neighbours too
        if refinement is None:
            return self.runner.burst // 2
        return self.runner.burst // 2 + refinement.neighbours * (2 if refinement.threshold_pilot else 1)


def neighbour_shift(spacing, direction) -> tuple[float, float] | None:
    """The in-plane part of the step from one slice to the next along array axis 0, in pixels ``(rows, columns)``,
    of a grid whose slice axis is not the image plane's normal (a CT taken on a tilted gantry: each slice sits
    a few pixels along its column direction from the one before); None for an orthogonal grid (below a tenth of a
    pixel). A burst model's adjacent slices are moved by it (:meth:`NetworkRunner.run`)."""
    from ..io.geometry import in_plane_step

    rows, columns = (float(v) for v in in_plane_step(spacing, direction))
    if max(abs(rows), abs(columns)) < 0.1:
        return None
    return rows, columns


def slice_axis(volume: Volume, chosen: int | None = None) -> int:
    """The array axis (0 = z, 1 = y, 2 = x) along which a :class:`Denoiser` runs 2D models and 2D baselines over
    ``volume``: ``chosen`` when given, z for slices off one grid (gaps, repeated positions), else the axis of the
    largest spacing (z when it ties)."""
    if chosen is not None:
        return chosen
    return 0 if volume.source.grid_problem else _through_plane_axis(volume.shape, volume.spacing)


def preview_slab(
    volume: Volume | VolumeSeries, index: int, chosen_axis: int | None = None, frame: int | None = None
) -> Volume:
    """Slice ``index`` of ``volume`` (of frame ``frame`` of a series, default 0) along the axis a :class:`Denoiser`
    with ``slice_axis=chosen_axis`` runs on (see :func:`slice_axis`), placed where it lies: what
    :meth:`Denoiser.preview` returns the denoised version of.

    Raises:
        OptionError: ``index`` is not a slice of the volume, or ``frame`` not a frame of the series (the message
            gives the range).
    """
    volume = Denoiser._preview_frame(volume, frame)
    axis = slice_axis(volume, chosen_axis)
    _check_slice(index, volume.shape[axis], axis)
    return volume.slab(axis, int(index), int(index) + 1)


def _check_slice(index: int, count: int, axis: int) -> None:
    """Refuse a preview's ``index`` that is not one of the ``count`` slices along ``axis`` (the message gives the
    range)."""
    if not isinstance(index, (int, np.integer)) or not 0 <= index < count:
        slices = "1 slice" if count == 1 else f"{count} slices"
        within = "only 0" if count == 1 else f"0 to {count - 1}"
        raise OptionError(
            f"slice {index!r} is outside the volume: it has {slices} along array axis {axis} (the slice axis), "
            f"{within}",
            parameter="index",
        )


def _through_plane_axis(shape: tuple[int, ...], spacing: tuple[float, float, float]) -> int:
    """The array axis of the largest voxel spacing (z when it ties or the volume is one slice)."""
    if shape[0] == 1:
        return 0
    # spacing is (x, y, z); array axis a has spacing[2 - a]
    axis_spacing = [spacing[2 - a] for a in range(3)]
    largest = max(axis_spacing)
    return 0 if axis_spacing[0] == largest else int(np.argmax(axis_spacing))


class _Stabilizer(NamedTuple):
    """A baseline's generalized Anscombe transform for one volume: the transformed volume scaled to [0, 1] (``low``:
    the transform of its lowest value, ``span``: of its range), where its noise has the level ``sigma`` (estimated
    there: the transform's noise is white, its level ~1 before the scaling)."""

    transform: GeneralizedAnscombe
    low: float
    span: float
    sigma: float

    def unit(self, normalized: np.ndarray) -> np.ndarray:
        """Normalized voxels (any shape) -> the transformed scale in [0, 1], float32."""
        return ((self.transform.forward(normalized) - self.low) / self.span).astype(np.float32)

    def back(self, denoised: np.ndarray) -> np.ndarray:
        """Denoised voxels on the transformed [0, 1] scale -> normalized units (the unbiased inverse), float32."""
        return self.transform.inverse(denoised.astype(np.float64) * self.span + self.low).astype(np.float32)


class _Slab(NamedTuple):
    """Slices ``start:stop`` along array ``axis``: what a :meth:`Denoiser.preview` computes."""

    axis: int
    start: int
    stop: int

    def take(self, array: np.ndarray, start: int | None = None, stop: int | None = None) -> np.ndarray:
        """``array``'s slices ``start:stop`` (default: the slab's) along the axis, a view."""
        start = self.start if start is None else start
        stop = self.stop if stop is None else stop
        return array[(slice(None),) * self.axis + (slice(start, stop),)]

    def around(self, count: int, margin: int) -> tuple[int, int]:
        """The slab widened by ``margin`` slices on each side, within ``count`` slices."""
        return max(0, self.start - margin), min(count, self.stop + margin)

    @staticmethod
    def whole(array: np.ndarray) -> np.ndarray:
        """All of ``array`` (no slab)."""
        return array


def _components(array: np.ndarray, count: int, modality: Modality) -> tuple[list[np.ndarray], bool]:
    """What is denoised of ``array`` (``(..., C)`` when ``count`` > 1): itself; each channel; or, for colour
    ultrasound (grey B-mode stored as RGB, coloured overlays), its luma alone (then True; see :func:`_combined`)."""
    if count == 1:
        return [array], False
    if modality == Modality.US and count == 3:
        logger.info("colour ultrasound: denoising the brightness (luma); the colours are kept")
        return [luma(array)], True
    return [array[..., c] for c in range(count)], False


def _combined(
    array: np.ndarray, components: list[np.ndarray], outputs: list[np.ndarray], luma_only: bool
) -> np.ndarray:
    """The denoised ``outputs`` of :func:`_components` back in ``array``'s layout: one output as it is, channels
    stacked, or the luma's change added to every channel of ``array`` (in its dtype)."""
    if luma_only:
        return with_new_luma(array, components[0], outputs[0])
    return outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=-1)
