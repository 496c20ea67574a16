"""Which kind of scan a volume is: from the DICOM Modality tag, the user's hint, or what the values look like."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MedDenoiseError
from .dicom_private import GE_COMPLEX_COMPONENT_KEY
from .formats import detect_format, strip_suffix
from .sidecar import input_sidecar
from .volume import Volume

__all__ = [
    "Modality",
    "ModalityGuess",
    "detect_modality",
    "dicom_signal_component",
    "modality_from_file",
    "parse_modality",
    "signal_component",
    "signal_component_of_dicom",
]


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


#: BIDS file-name suffixes of MR images (magnitude contrasts, functional and diffusion runs, field-map magnitudes):
#: ``sub-01_T1w.nii.gz`` is an MR image whatever its values (BIDS specification, "Magnetic Resonance Imaging")
_BIDS_MR_SUFFIXES = frozenset(
    {
        "T1w",
        "T2w",
        "PDw",
        "T2starw",
        "FLAIR",
        "inplaneT1",
        "inplaneT2",
        "PDT2",
        "angio",
        "UNIT1",
        "bold",
        "cbv",
        "sbref",
        "dwi",
        "epi",
        "magnitude",
        "magnitude1",
        "magnitude2",
        "MESE",
        "MEGRE",
        "VFA",
        "IRT1",
        "MP2RAGE",
        "MPM",
        "MTS",
        "MTR",
    }
)


#: BIDS file-name suffixes of images that are not MR, with what they are: a BIDS-PET run (``sub-01_pet.nii.gz``)
#: has a noisy, non-negative background that must not be read as an MR floor
_BIDS_OTHER_SUFFIXES = {"pet": "a PET image"}


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


#: a CT reconstruction padded outside its round field of view: at least this share of the voxels at one value below
#: :data:`~meddenoiselib.transforms.ct_padding.OUTSIDE_RECONSTRUCTION_HU` (-3024, -2048, -1500 as scanners store it;
#: the corners outside the circle are 21 % of a square slice) ...
CT_PADDING_SHARE = 0.05
#: ... and nearly every other voxel within CT's range, air (-1000 HU, noise below it) to metal: all but this share,
#: the field of view's edge blended with the padding where a volume was resampled (0.3-0.6 % of the voxels of a
#: spine and a phantom shifted by linear interpolation)
CT_VALUE_RANGE = (-1200.0, 4000.0)
CT_OUTSIDE_RANGE_SHARE = 0.02


def _looks_like_ct_hu(array: np.ndarray) -> str | None:
    """A reason if the values look like CT in HU, else None: air near -1000 and dense tissue above +300, or a field
    of view padded with one value far below air around values in CT's range. The second finds CT with little air
    or bone: a 130 mm spine reconstruction inside the body (1.8 % of its voxels near -1000 HU), a water phantom
    (nothing above +125 HU); MR, PET and ultrasound store no such values."""
    from ..transforms.ct_padding import OUTSIDE_RECONSTRUCTION_HU

    sample = np.asarray(array).reshape(-1)
    sample = sample[:: max(1, sample.size // 1_000_000)].astype(np.float32)
    low, high = float(sample.min()), float(sample.max())
    air = float(np.mean((sample > -1050) & (sample < -900)))
    if -3100 <= low <= -900 and high >= 300 and air >= 0.02:
        return f"values look like CT in HU (minimum {low:.0f}, {air:.0%} of voxels near -1000 HU, maximum {high:.0f})"
    padding = sample == low
    share = float(np.mean(padding))
    if -3100 <= low < OUTSIDE_RECONSTRUCTION_HU and CT_PADDING_SHARE <= share < 1:
        inside = sample[~padding]
        lowest, highest = np.percentile(inside, (1, 99))
        outside_range = float(np.mean((inside < CT_VALUE_RANGE[0]) | (inside > CT_VALUE_RANGE[1])))
        if outside_range <= CT_OUTSIDE_RANGE_SHARE:
            return (
                f"values look like CT in HU padded outside the field of view ({share:.0%} of voxels at {low:.0f}, "
                f"98 % of the others from {lowest:.0f} to {highest:.0f})"
            )
    return None


#: a background whose median / (1.4826 MAD) is below one coil's (Rayleigh's) by more than this factor is more skewed
#: than any magnitude floor and makes no file MR (real one-coil floors: 1.02 of it; the air of simulated PET, MLEM's,
#: skewed towards 0: 0.77-0.84, docs/benchmarks_modality_guess.md; removing a known MR's floor allows 1.3)
MOST_SKEWED_FLOOR_TOLERANCE = 1.15
#: the files whose background may be read as an MR floor: medical volume formats. Not 2D raster or TIFF images, where
#: a dark, noisy background is as likely a microscope's low photon counts (clipped at 0) as an MR floor, and not
#: arrays without a file
_FLOOR_READ_FROM = ("nifti", "nrrd", "metaimage", "mgh", "minc", "dicom-series", "dicom-file")


def _magnitude_floor_reason(volume: Volume) -> str | None:
    """A reason if the volume's background is the noise floor of a magnitude MR image, else None.

    A magnitude image's air holds Rayleigh (one coil) or non-central chi noise, whose median / MAD ratio fits a coil
    count (:func:`~meddenoiselib.transforms.magnitude.estimate_magnitude_floor`, which ``auto`` reads anyway to
    remove that floor). Measured on the data folder: found in both real MR volumes whose air is as the scanner wrote
    it (dipy's b0 EPI, the 4 x 4 x 5 mm head), in none of 90 other images (CT, ultrasound, X-ray, microscopy,
    histology, masked or processed MR), nor in 18 simulated PET volumes, as reconstructed or cropped
    (docs/benchmarks_modality_guess.md). Only for the files of :data:`_FLOOR_READ_FROM` (a frame of a 4D file by that
    file's format): a synthetic microscopy time series (Gaussian noise clipped at 0) looked like a floor.
    """
    from ..transforms.background import surrounds_the_image
    from ..transforms.magnitude import FLOOR_TILE, estimate_magnitude_floor, floor_ratio_for_coils

    source = volume.source
    fmt = (detect_format(source.path) if source.path else None) or source.format
    if volume.num_components != 1 or fmt not in _FLOOR_READ_FROM or volume.array.dtype.kind not in "iuf":
        return None
    if volume.array.size == 0 or float(np.nanmin(volume.array)) < 0:
        return None  # magnitude is never negative
    floor = estimate_magnitude_floor(volume.array)
    # only on the 16-px grid the rules below were measured on: a small image's floor, read on finer tiles for the
    # floor's removal from a known MR, is no evidence of MR (a 3 x 3 grid of a small crop barely has an edge)
    if floor is None or floor.tile != FLOOR_TILE:
        return None
    # Nothing more skewed than a one-coil floor: between the coil counts' values any ratio can be a floor (magnitude
    # averaged into thick slices fits "4 coils" at 1.10x), below the one-coil value none is
    if floor.ratio < floor_ratio_for_coils(1) / MOST_SKEWED_FLOOR_TOLERANCE:
        return None
    # Air surrounds the object, so the floor's tiles lie on the image's edge at least as often as tiles do at all.
    # Dark tissue inside it fits a multi-coil floor as well as air does: the lungs of a simulated PET cropped to the
    # body ("3-8 coils") lie on the edge in 0-14 % of cases where 64 % of its tiles do; the floors of the MR volumes
    # above in 69-100 %, where 29-89 % of their tiles do
    if not surrounds_the_image(volume.array.shape, floor.air, FLOOR_TILE):
        return None
    coils = "1 coil" if floor.coils == 1 else f"{floor.coils} coils"
    # the weakest rule here (a PET cropped tightly to a brain can pass it): say how to overrule it
    return (
        f"its background is the noise floor of a magnitude MR image ({coils}): a guess from its voxels, name the "
        "modality if it is not MR"
    )


def _from_dicom_value(value: str) -> Modality:
    """The family of a DICOM Modality value (``"MR"`` -> MR; unknown values -> OTHER)."""
    for modality, values in _DICOM_MODALITIES.items():
        if value in values:
            return modality
    return Modality.OTHER


def _nifti_stem(path: Path) -> str | None:
    """``sub-01_T1w`` for ``sub-01_T1w.nii.gz`` or ``.nii``; None for other files."""
    return strip_suffix(path.name) if detect_format(path) == "nifti" else None


def _sidecar(path: Path) -> tuple[Path, dict] | None:
    """A NIfTI's BIDS / dcm2niix JSON sidecar (``NAME.json`` beside ``NAME.nii[.gz]``: DICOM header values copied)
    and its contents; None without a readable one."""
    return input_sidecar(path)


def _bids_sidecar_modality(path: Path) -> ModalityGuess | None:
    """The ``Modality`` a BIDS / dcm2niix JSON sidecar copied from the DICOM header; None without one."""
    found = _sidecar(path)
    value = None if found is None else found[1].get("Modality")
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip().upper()
    return ModalityGuess(_from_dicom_value(value), f"its sidecar {found[0].name} gives Modality {value}")


#: the part of the complex MR signal an image holds, by the DICOM values that name it: ComplexImageComponent
#: (0008,9208) and the vendors' ImageType values (Siemens ``ORIGINAL\PRIMARY\P\ND``, Philips
#: ``ORIGINAL\PRIMARY\P_FFE\P\FFE``, ``PHASE MAP``)
_SIGNAL_COMPONENTS = {
    "M": "magnitude",
    "MAGNITUDE": "magnitude",
    "P": "phase",
    "PHASE": "phase",
    "PHASE MAP": "phase",
    "R": "real",
    "REAL": "real",
    "I": "imaginary",
    "IMAGINARY": "imaginary",
}
#: BIDS ``part-`` entity values, and the field-map suffixes that are phase images
_BIDS_PARTS = {"mag": "magnitude", "phase": "phase", "real": "real", "imag": "imaginary"}
_BIDS_PHASE_SUFFIXES = frozenset({"phase", "phasediff", "phase1", "phase2"})


#: GE's private code of the same (0043,102F): 0 magnitude, 1 phase, 2 real, 3 imaginary
_GE_COMPONENTS = {"0": "magnitude", "1": "phase", "2": "real", "3": "imaginary"}


def signal_component_of_dicom(complex_component: str, image_type: str, ge_code: str = "") -> str:
    """``"magnitude"``, ``"phase"``, ``"real"`` or ``"imaginary"`` from a ComplexImageComponent value, else GE's
    private code, else ImageType (as stored, backslash-separated: its values from the third on, where vendors name
    it); ``""`` where none says, or ImageType names more than one."""
    named = _SIGNAL_COMPONENTS.get(complex_component.strip().upper(), "") or _GE_COMPONENTS.get(ge_code.strip(), "")
    if named:
        return named
    found = {_SIGNAL_COMPONENTS.get(v.strip().upper(), "") for v in image_type.split("\\")[2:]} - {""}
    return found.pop() if len(found) == 1 else ""


def dicom_signal_component(metadata: dict[str, str]) -> str:
    """:func:`signal_component_of_dicom` of one image's header values (GDCM keys, as the reader gives them)."""
    return signal_component_of_dicom(
        metadata.get("0008|9208", ""), metadata.get("0008|0008", ""), metadata.get(GE_COMPLEX_COMPONENT_KEY, "")
    )


def signal_component(volume: Volume) -> str:
    """What an MR volume holds of the complex MR signal: ``"magnitude"``, ``"phase"``, ``"real"`` or ``"imaginary"``;
    ``""`` where nothing says (most files: magnitude images). From the DICOM header
    (:func:`signal_component_of_dicom`); for a NIfTI, from its sidecar's ``ImageType`` (dcm2niix copies it), else a
    BIDS name's ``part-`` entity or phase field-map suffix (``_phasediff``)."""
    metadata = volume.metadata
    if any(key in metadata for key in ("0008|9208", "0008|0008", GE_COMPLEX_COMPONENT_KEY)):
        return dicom_signal_component(metadata)
    path = Path(volume.source.path) if volume.source.path else None
    found = None if path is None else _sidecar(path)
    image_type = None if found is None else found[1].get("ImageType")
    if isinstance(image_type, list) and all(isinstance(v, str) for v in image_type):
        component = signal_component_of_dicom("", "\\".join(image_type))
        if component:
            return component
    stem = None if path is None else _nifti_stem(path)
    if not stem:
        return ""
    parts = stem.split("_")
    for entity in parts[1:]:
        if entity.startswith("part-"):
            return _BIDS_PARTS.get(entity[5:], "")
    return "phase" if parts[-1] in _BIDS_PHASE_SUFFIXES else ""


def _bids_name_modality(path: Path) -> ModalityGuess | None:
    """MR for a NIfTI file named with a BIDS MR suffix (``sub-01_T1w.nii.gz``, ``..._bold.nii``), OTHER for a BIDS
    PET file (``sub-01_pet.nii.gz``); else None."""
    stem = _nifti_stem(path)
    suffix = None if stem is None or "_" not in stem else stem.rsplit("_", 1)[1]
    if suffix in _BIDS_MR_SUFFIXES:
        return ModalityGuess(Modality.MR, f"its BIDS file name ends in _{suffix}, an MR image")
    if suffix in _BIDS_OTHER_SUFFIXES:
        return ModalityGuess(Modality.OTHER, f"its BIDS file name ends in _{suffix}, {_BIDS_OTHER_SUFFIXES[suffix]}")
    return None


def diffusion_table(path: str | Path) -> Path | None:
    """The FSL b-values file beside a NIfTI (``dwi.bval`` beside ``dwi.nii.gz``, as dcm2niix, FSL, MRtrix and BIDS
    write it); None for other files or without one."""
    path = Path(path)
    stem = _nifti_stem(path)
    table = None if stem is None else path.with_name(stem + ".bval")
    return table if table is not None and table.is_file() else None


def _diffusion_table_modality(path: Path) -> ModalityGuess | None:
    """MR for a NIfTI with its b-values file beside it (only MR measures diffusion this way); else None."""
    table = diffusion_table(path)
    if table is None:
        return None
    return ModalityGuess(Modality.MR, f"the b-values file {table.name} beside it makes it a diffusion-weighted MR")


def _nrrd_diffusion_modality(path: Path) -> ModalityGuess | None:
    """MR for a NRRD whose header describes a diffusion-weighted MR (``modality:=DWMRI``, ``DWMRI_b-value``,
    ``DWMRI_gradient_0000``: the keys 3D Slicer and DWIConvert write); else None."""
    from .nrrd import read_nrrd_header

    if detect_format(path) != "nrrd" or not path.is_file():
        return None
    try:
        key_values = read_nrrd_header(path)[1]
    except (OSError, MedDenoiseError):
        return None  # unreadable: the reader says why
    for key, value in key_values:
        key = key.strip()
        if (key.lower() == "modality" and value.strip().upper() == "DWMRI") or key.startswith("DWMRI_"):
            said = f"{key}:={value.strip()}" if key.lower() == "modality" else key
            return ModalityGuess(Modality.MR, f"its NRRD header describes a diffusion-weighted MR ({said})")
    return None


def _parrec_modality(path: Path) -> ModalityGuess | None:
    """MR for a Philips PAR/REC file (only MR scanners write it); else None."""
    if detect_format(path) == "parrec":
        return ModalityGuess(Modality.MR, "a Philips PAR/REC file is an MR scanner's export")
    return None


def _mgh_modality(path: Path) -> ModalityGuess | None:
    """MR for a FreeSurfer MGH / MGZ file; else None."""
    if detect_format(path) == "mgh":
        return ModalityGuess(Modality.MR, "a FreeSurfer MGH/MGZ file (FreeSurfer processes MR)")
    return None


def modality_from_dicom_code(value: str | None) -> Modality | None:
    """The family of a DICOM Modality (0008,0060) value as ``auto`` reads the tag (``"MR"`` -> MR, ``"DX"`` ->
    XRAY, ``"PT"`` or an unknown code -> OTHER); None for an empty or missing one."""
    value = (value or "").strip().upper()
    return _from_dicom_value(value) if value else None


def _dicom_tag_guess(value: str) -> ModalityGuess | None:
    """The guess a DICOM Modality value (``"MR"``) gives; None for an empty one."""
    modality = modality_from_dicom_code(value)
    return None if modality is None else ModalityGuess(modality, f"DICOM Modality is {value.strip().upper()}")


def _metaimage_guess(value: str) -> ModalityGuess | None:
    """The guess a MetaImage ``Modality`` value (``MET_MOD_CT``, ...) gives; None for an empty, other or unknown one."""
    value = value.strip().upper()
    if not value.startswith("MET_MOD_") or value in ("MET_MOD_OTHER", "MET_MOD_UNKNOWN"):
        return None
    return ModalityGuess(_from_dicom_value(value[len("MET_MOD_") :]), f"MetaImage Modality is {value}")


def _dicom_header_modality(path: Path) -> ModalityGuess | None:
    """The Modality tag of a DICOM file's header (the pixels are not read); None without a readable one."""
    from .dicom import header_value

    return _dicom_tag_guess(header_value(path, "Modality")) if detect_format(path) == "dicom-file" else None


def _metaimage_header_modality(path: Path) -> ModalityGuess | None:
    """The ``Modality`` field of a MetaImage header; None without one."""
    from .probe import text_header_values

    if detect_format(path) != "metaimage" or not path.is_file():
        return None
    try:
        return _metaimage_guess(text_header_values(path).get("modality", ""))
    except OSError:
        return None


def modality_from_file(path: str | Path) -> ModalityGuess | None:
    """What a file says its modality is without its voxels being read: the Modality tag of a DICOM file's header, the
    ``Modality`` field of a MetaImage header, MR for a NRRD whose header describes a diffusion-weighted MR, MR for a
    Philips PAR/REC, the ``Modality`` of a NIfTI's BIDS / dcm2niix JSON sidecar, MR or OTHER (PET) for a BIDS file
    name, MR for a NIfTI with its FSL b-values file (``.bval``) beside it, MR for a FreeSurfer MGH / MGZ; None when
    it says nothing.

    For a front end that hands the library a copy of the voxels rather than the file, and would lose these hints with
    it (the Slicer module writes the node it denoises to a NRRD): it passes the answer as the modality hint, which
    :func:`detect_modality` then follows as it follows the file itself.
    """
    path = Path(path)
    for read in (
        _dicom_header_modality,
        _metaimage_header_modality,
        _nrrd_diffusion_modality,
        _parrec_modality,
        _bids_sidecar_modality,
        _bids_name_modality,
        _diffusion_table_modality,
        _mgh_modality,
    ):
        guess = read(path)
        if guess is not None:
            return guess
    return None


#: a volume masked to 0 outside the object is taken for MR only with voxels this fine in-plane (mm): structural MR,
#: which skull-stripping and brain masks are made for, is acquired at ~0.5-1.2 mm; PET and SPECT, whose
#: reconstructions are 0 outside the field of view as well, at 2-5 mm (the simulated PET of
#: docs/benchmarks_modality_guess.md: 2.6-2.8 mm)
MASKED_MR_MAX_SPACING_MM = 1.5
#: ... and only where that background holds at least this share of the pixels on the slices' edges: all of them
#: around a skull-stripped brain (MR_Gd, the masked MNI template: 1.0), fewer where the object reaches the edge, as a
#: 3D ultrasound's cone reaches the probe (a 70-degree sector: 0.95) and a CT field of view stored with an offset
#: and 0 outside touches its four sides (0.94), or a crop inside the object (0.0-0.3)
MASKED_MR_EDGE_SHARE = 0.99


def _masked_mr_reason(volume: Volume) -> str | None:
    """A reason if the volume is a masked MR (skull-stripped, or a scanner's or a pipeline's brain mask applied):
    a volume file of fine voxels, never negative, whose background around the object is exactly 0 over whole
    regions (:func:`~meddenoiselib.transforms.background.masked_background` with the 4x4-pixel patches it asks of
    images of unknown modality, so photon-count zeros are no mask); else None.

    Such a volume has no noise floor to tell it by (:func:`_magnitude_floor_reason`). As MR it gets the burst model
    with its refinement, the masked background kept as it is; as OTHER the general model, which does not refine
    volumes: on the MNI T1 template (held out; air exactly 0, 24 slices of 1 mm, Rician 3 % / 6 % and 8 coils at 3 %,
    as NIfTI through the CLI) 35.38 / 31.87 / 34.44 dB as OTHER against 37.94 / 33.84 / 36.37 as MR over the head.
    """
    from ..transforms.background import OTHER_MASK_PATCH, edge_share, masked_background

    source = volume.source
    fmt = (detect_format(source.path) if source.path else None) or source.format
    array = volume.array
    if volume.num_components != 1 or fmt not in _FLOOR_READ_FROM or array.dtype.kind not in "iuf":
        return None
    if array.ndim != 3 or array.shape[0] < 2 or max(volume.spacing[:2]) > MASKED_MR_MAX_SPACING_MM:
        return None
    if array.size == 0 or float(np.nanmin(array)) != 0:
        return None  # magnitude is never negative, and a mask sets 0
    masked = masked_background(array, patch=OTHER_MASK_PATCH)
    if masked is None or edge_share(masked) < MASKED_MR_EDGE_SHARE:
        return None
    x, y = volume.spacing[:2]
    return (
        f"a volume of {x:.3g} x {y:.3g} mm pixels masked to 0 around the object, as skull-stripping leaves an MR: a "
        "guess from its voxels, name the modality if it is not MR"
    )


def detect_modality(volume: Volume, hint: Modality | str | None = None) -> ModalityGuess:
    """The modality of a volume.

    Order: the DICOM Modality tag, a MetaImage's ``Modality`` field (``MET_MOD_CT``, ``MET_MOD_MR``, ...), MR for a
    NRRD whose header describes a diffusion-weighted MR (``modality:=DWMRI``, ``DWMRI_gradient_0000``, as 3D Slicer
    writes it), MR for a Philips PAR/REC file (only MR scanners write it), or for NIfTI the ``Modality`` of its
    BIDS / dcm2niix JSON sidecar (the same tag, copied); else ``hint`` (e.g. ``--modality``); else a BIDS MR file
    name (``sub-01_T1w.nii.gz``; a BIDS PET name, ``_pet``, gives OTHER) or a NIfTI with its b-values file beside it
    (``dwi.bval``: a diffusion MR); else values that look like CT in HU; else MR
    for a FreeSurfer MGH/MGZ file or a background on the image's edge that is a magnitude-MR noise floor (of a medical
    volume file), or a volume file of fine voxels masked to 0 around the object (:func:`_masked_mr_reason`); else
    :attr:`Modality.OTHER`.
    A hint that contradicts the tag loses to it (the file knows best).
    """
    tagged = _dicom_tag_guess(volume.metadata.get("0008|0060", "")) or (
        _metaimage_guess(volume.metadata.get("Modality", "")) if volume.source.format == "metaimage" else None
    )
    if tagged is not None:
        return tagged
    path = Path(volume.source.path) if volume.source.path else None  # a file (or a frame of a series file)
    known = (
        None
        if path is None
        else _nrrd_diffusion_modality(path) or _parrec_modality(path) or _bids_sidecar_modality(path)
    )
    if known is not None:
        return known
    if hint is not None:
        modality = hint if isinstance(hint, Modality) else parse_modality(hint)
        return ModalityGuess(modality, f"modality given as {modality.value}")
    named = None if path is None else _bids_name_modality(path) or _diffusion_table_modality(path)
    if named is not None:
        return named
    if volume.num_components == 1:
        reason = _looks_like_ct_hu(volume.array)
        if reason:
            return ModalityGuess(Modality.CT, reason)
    mgh = None if path is None else _mgh_modality(path)
    if mgh is not None:
        return mgh
    floor = _magnitude_floor_reason(volume)
    if floor:
        return ModalityGuess(Modality.MR, floor)
    masked = _masked_mr_reason(volume)
    if masked:
        return ModalityGuess(Modality.MR, masked)
    # the one place a user can learn that a PNG of an ultrasound or MR scan gets the general model (e.g. on an HC18
    # ultrasound frame kpn-general 40.6 dB against the ultrasound model's 41.3): say how to pick the modality's own
    return ModalityGuess(
        Modality.OTHER, "no DICOM Modality and no modality given; a modality (ct, mr, us, xray) picks its own model"
    )
