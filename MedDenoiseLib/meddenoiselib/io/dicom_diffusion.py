"""The diffusion encoding of a DICOM series of frames: each frame's b-value and gradient direction, for the FSL tables
(``.bval``, ``.bvec``) that FSL, MRtrix, DIPY and BIDS read beside a 4D NIfTI.

Where scanners put the values, in the order they are looked for, per image (or per frame of an enhanced file):

- the standard elements: an enhanced file's per-frame (else shared) MR Diffusion functional group (DiffusionBValue,
  DiffusionDirectionality, DiffusionGradientDirectionSequence > DiffusionGradientOrientation), or the same elements at
  the top level of a classic image (GE, Philips, Canon and newer Siemens write them there);
- Siemens' private ``SIEMENS MR HEADER`` block of group 0019: B_value (xx0C), DiffusionGradientDirection (xx0E);
- the b-value only from GE's ``GEMS_PARM_01`` (0043,xx39; its first value, which may carry 10^9 offsets) and
  Philips' ``Philips Imaging DD 001`` (2001,xx03). Their private directions are in the scanner's logical or
  (AP, FH, RL) frames, which vary with software version: not read, so such a series gets its ``.bval`` only.

Directions are unit vectors in the patient's coordinates (LPS), as DICOM stores them; :meth:`DiffusionTable.fsl_bvecs`
turns them into FSL's convention, relative to the image's voxel axes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .dicom_private import private_numbers, private_text

__all__ = ["PRIVATE_B_VALUE_KEY", "DiffusionTable", "dicom_diffusion_table", "private_b_value"]

logger = logging.getLogger(__name__)

#: the :attr:`~meddenoiselib.io.Volume.metadata` key under which the DICOM reader keeps a vendor's private b-value
#: (s/mm^2, as text), so that the images at one position are told apart as diffusion gradients where no standard
#: element says so (private elements are otherwise left out of the metadata)
PRIVATE_B_VALUE_KEY = "dicom_private_b_value"

#: the same frame's b-values at two slice positions differ by less than this (s/mm^2)
_B_TOLERANCE = 1.0
#: ... and its directions by less than this (unit vectors' component difference)
_DIRECTION_TOLERANCE = 1e-3


@dataclass(frozen=True)
class DiffusionTable:
    """The diffusion encoding of a series' frames.

    Attributes:
        b_values: ``(F,)`` b-values in s/mm^2.
        directions: ``(F, 3)`` unit gradient directions in the patient's LPS coordinates (zero vectors for b = 0 and
            for isotropic (trace) images), or None when a weighted frame's header holds no direction.
        source: where the values were found, in words (for logs).
    """

    b_values: np.ndarray
    directions: np.ndarray | None
    source: str

    def fsl_bvecs(self, direction: np.ndarray) -> np.ndarray:
        """``(3, F)`` directions as FSL's ``.bvec`` has them for an image of voxel axes ``direction`` (the columns:
        the LPS directions of the i, j, k axes, as :class:`~meddenoiselib.io.Volume` holds them, written by
        this library's NIfTI writer with the same voxel order): relative to the voxel axes, the first one negated
        when the NIfTI affine's determinant is positive (FSL works in a left-handed, "radiological" voxel frame,
        as FSL, MRtrix and dcm2niix define the format)."""
        if self.directions is None:
            raise ValueError("the series' headers hold no gradient directions")
        axes = np.asarray(direction, dtype=np.float64).reshape(3, 3)
        vectors = axes.T @ self.directions.T  # each column: a direction's components along i, j, k
        # the NIfTI affine is diag(-1, -1, 1) @ axes @ diag(spacing): the sign of its determinant is det(axes)'s
        if np.linalg.det(axes) > 0:
            vectors[0] = -vectors[0]
        vectors[np.abs(vectors) < 1e-12] = 0.0  # no "-0" in the file
        return vectors

    def bval_text(self) -> str:
        """The ``.bval`` file: one line of b-values."""
        return " ".join(f"{b:g}" for b in self.b_values) + "\n"

    def bvec_text(self, direction: np.ndarray) -> str:
        """The ``.bvec`` file for voxel axes ``direction``: three lines (x, y, z), one value per frame."""
        return "".join(" ".join(f"{v:.6f}" for v in row) + "\n" for row in self.fsl_bvecs(direction))


def dicom_diffusion_table(
    files: Sequence[str], frames_per_position: int, frame_order: Sequence[int] = (), label: str = "the series"
) -> DiffusionTable | None:
    """The b-value and gradient direction of each frame of a DICOM series of frames.

    Args:
        files: the series' files in the order of its slices (:attr:`~meddenoiselib.io.SourceInfo.dicom_files`; a
            multi-frame file once).
        frames_per_position: ``F``, the images at each slice position (each position's consecutive in slice order).
        frame_order: for multi-frame files, the files' frames (in file order, file after file) in slice order
            (:attr:`~meddenoiselib.io.SourceInfo.frame_order`); empty when the files are the slices.
        label: the input, named in the warnings.

    Returns:
        The table of the ``F`` frames; None (with a warning saying why) when an image has no b-value, or the same
        frame's values differ between slice positions.
    """
    import pydicom

    encodings: list[tuple[float | None, np.ndarray | None, str]] = []
    for path in dict.fromkeys(files):  # a multi-frame file once, its frames in file order
        dataset = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
        encodings.extend(_encodings_of(dataset))
    if frame_order:
        if len(frame_order) != len(encodings):
            return None
        encodings = [encodings[index] for index in frame_order]
    if not encodings or len(encodings) % frames_per_position:
        return None
    if any(b is None for b, _, _ in encodings):
        logger.warning("%s: not every image's header holds a b-value, so no gradient table is written", label)
        return None
    b_values = np.array([b for b, _, _ in encodings], dtype=np.float64).reshape(-1, frames_per_position)
    if np.ptp(b_values, axis=0).max() >= _B_TOLERANCE:
        logger.warning("%s: a frame's b-value differs between slice positions, so no gradient table is written", label)
        return None
    directions = _directions([(b, d) for b, d, _ in encodings], frames_per_position)
    if directions is not None and np.abs(directions - directions[:1]).max() >= _DIRECTION_TOLERANCE:
        logger.warning(
            "%s: a frame's gradient direction differs between slice positions, so no gradient table is written",
            label,
        )
        return None
    found = {source for _, _, source in encodings}
    # "X" (b = 0 images) and "X and Y" (weighted ones) of one vendor read as "X and Y"
    where = sorted(s for s in found if not any(other != s and other.startswith(s) for other in found))
    return DiffusionTable(b_values[0], None if directions is None else directions[0], ", ".join(where))


def _directions(encodings, frames_per_position: int) -> np.ndarray | None:
    """``(P, F, 3)`` unit directions (zero for b = 0 and for isotropic images); None when a weighted image that is
    not isotropic has none."""
    if any(b > 0 and direction is None for b, direction in encodings):
        return None
    vectors = []
    for b, direction in encodings:
        norm = 0.0 if b == 0 else float(np.linalg.norm(direction))
        vectors.append(direction / norm if norm > 1e-6 else np.zeros(3))
    return np.asarray(vectors).reshape(-1, frames_per_position, 3)


def _encodings_of(dataset) -> list[tuple[float | None, np.ndarray | None, str]]:
    """``(b-value, direction or None, where found)`` of each frame of a pydicom data set. An isotropic (trace)
    image's direction is a zero vector; an image without any b-value has None."""
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if per_frame and len(per_frame) == frames:
        shared = _first(dataset, "SharedFunctionalGroupsSequence")
        found = []
        for item in per_frame:
            group = _first(item, "MRDiffusionSequence")
            if group is None and shared is not None:
                group = _first(shared, "MRDiffusionSequence")
            found.append(_standard(group) if group is not None else (None, None, ""))
        if all(b is not None for b, _, _ in found):
            return found
    return [_classic(dataset)] * frames


def _first(dataset, keyword: str):
    sequence = dataset.get(keyword)
    return sequence[0] if sequence else None


def _standard(group) -> tuple[float | None, np.ndarray | None, str]:
    """The DICOM diffusion elements of a functional group or a classic image's top level."""
    b = group.get("DiffusionBValue")
    if b is None or b == "":
        return None, None, ""
    directionality = str(group.get("DiffusionDirectionality", "")).upper()
    if directionality in ("ISOTROPIC", "NONE"):
        return float(b), np.zeros(3), "DICOM DiffusionBValue"
    orientation = group.get("DiffusionGradientOrientation")
    nested = _first(group, "DiffusionGradientDirectionSequence")
    if orientation is None and nested is not None:
        orientation = nested.get("DiffusionGradientOrientation")
    vector = _vector(orientation)
    return (
        float(b),
        vector,
        "DICOM DiffusionBValue" + (" and DiffusionGradientOrientation" if vector is not None else ""),
    )


def _vector(values) -> np.ndarray | None:
    try:
        vector = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return vector if vector.shape == (3,) and np.all(np.isfinite(vector)) else None


def _classic(dataset) -> tuple[float | None, np.ndarray | None, str]:
    """One classic image's encoding: the standard elements, else the vendors' private ones."""
    b, direction, source = _standard(dataset)
    if b is not None:
        return b, direction, source
    b, vendor = _private_b(dataset)
    if vendor == "Siemens":
        directionality = private_text(dataset, 0x0019, "SIEMENS MR HEADER", 0x0D).upper()
        if b == 0 or directionality in ("ISOTROPIC", "NONE"):
            return b, np.zeros(3), "Siemens' private B_value"
        vector = _vector(private_numbers(dataset, 0x0019, "SIEMENS MR HEADER", 0x0E) or ())
        found = "Siemens' private B_value and DiffusionGradientDirection" if vector is not None else "Siemens' B_value"
        return b, vector, found
    if b is not None:
        return b, None, f"{vendor}'s private b-value"
    return None, None, ""


def _private_b(dataset) -> tuple[float | None, str]:
    """A vendor's private b-value of a classic image and the vendor; ``(None, "")`` without one."""
    siemens = private_numbers(dataset, 0x0019, "SIEMENS MR HEADER", 0x0C)
    if siemens:
        return float(siemens[0]), "Siemens"
    ge = private_numbers(dataset, 0x0043, "GEMS_PARM_01", 0x39)
    if ge:  # GE adds multiples of 10^9 to flag the value
        return float(ge[0] % 1_000_000_000), "GE"
    philips = private_numbers(dataset, 0x2001, "Philips Imaging DD 001", 0x03)
    if philips:
        return float(philips[0]), "Philips"
    return None, ""


def private_b_value(dataset) -> float | None:
    """The b-value (s/mm^2) a classic image's vendor stores privately (Siemens, GE, Philips); None without one."""
    return _private_b(dataset)[0]
