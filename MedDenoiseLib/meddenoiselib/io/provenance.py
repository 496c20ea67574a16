"""Signs in an image's header that it was resampled before it reached the denoiser.

Resampling (registration into a template, reformatting into other planes) interpolates between voxels: the
scanner's noise is blurred and correlated between neighbours, which denoisers trained on the scanner's own noise
remove less well, and which no denoiser can undo. Pipelines should denoise the rawest data (before registration,
eddy-current correction, reformatting); a tool should say so when its input was resampled (user need 21). The header
says so in two common cases: a DICOM series reformatted by the scanner or a workstation (``ImageType``), and a NIfTI
image whose sform places it in a standard space (``sform_code`` 3-5: Talairach, MNI 152, a template), as
registration to an atlas writes it. Code 2 ("aligned to another image") is left out: older converters wrote it for
scans as they came from the scanner (5 of the 8 NIfTI MR files of the data folder have it). Resampled float images
also often hold NaN outside the field of view, which the denoiser reports on its own.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "SFORM_CODE_KEY",
    "header_resampling_sign",
    "image_type_sign",
    "resampling_message",
    "resampling_sign",
    "resampling_warning",
]

#: the ``Volume.metadata`` key under which the NIfTI reader keeps the file's sform code
SFORM_CODE_KEY = "nifti_sform_code"
#: DICOM ``ImageType`` values of reformatted images (CT and MR image types, enhanced and classic)
_REFORMATTED = ("REFORMATTED", "MPR", "RESAMPLED", "CURVED", "MIP", "MINIP")
#: NIfTI sform codes of an image resampled into a standard space
_SPACES = {3: "Talairach space", 4: "MNI 152 space", 5: "a template's space"}


def image_type_sign(image_type: str | None) -> str:
    """Why a DICOM ImageType (``ORIGINAL\\PRIMARY\\AXIAL``, as stored, values separated by backslashes) names a
    reformat, or ``""``."""
    image_type = image_type or ""
    found = [value.strip().upper() for value in image_type.split("\\") if value.strip().upper() in _REFORMATTED]
    return f"its DICOM ImageType is {image_type} ({found[0]}: a reformatted series)" if found else ""


def _sform_sign(code) -> str:
    try:
        code = int(code) if code is not None else 0
    except (TypeError, ValueError):
        return ""
    return f"its NIfTI sform code is {code} ({_SPACES[code]}): it was registered to an atlas" if code in _SPACES else ""


def resampling_sign(image) -> str:
    """Why ``image``'s header says it was resampled, or ``""`` when it does not.

    Args:
        image: a :class:`~meddenoiselib.io.Volume` (its DICOM ``0008|0008`` ImageType or NIfTI sform code in
            ``metadata``) or :class:`~meddenoiselib.io.VolumeSeries` (a NIfTI header as its ``layout``).
    """
    metadata = getattr(image, "metadata", None) or {}
    sign = image_type_sign(metadata.get("0008|0008", ""))
    if sign:
        return sign
    code = metadata.get(SFORM_CODE_KEY)
    layout = getattr(image, "layout", None)
    if code is None and layout is not None and hasattr(layout, "get_sform"):
        code = layout["sform_code"]
    return _sform_sign(code)


def header_resampling_sign(path: str | Path) -> str:
    """What :func:`resampling_sign` says of the image in the file ``path``, from its header alone (no voxels read):
    a NIfTI file's sform code, a DICOM file's ImageType. ``""`` for other formats and for files that cannot be read
    (this is advice; reading the image itself reports what is wrong with it)."""
    path = Path(path)
    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            import nibabel

            return _sform_sign(nibabel.load(path).header["sform_code"])
        if name.endswith((".dcm", ".dicom", ".ima")):
            import pydicom

            dataset = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["ImageType"])
            value = dataset.get("ImageType")
            if value is None:
                return ""
            return image_type_sign("\\".join(value) if not isinstance(value, str) else value)
    except Exception:  # noqa: BLE001 - an unreadable header gives no advice; the reader names the problem
        return ""
    return ""


def resampling_message(sign: str, label) -> str:
    """The warning a front end logs for an input (``label``: its file or name) whose header gave ``sign``."""
    return (
        f"{label} looks resampled: {sign}. Resampling blurs and correlates the scanner's noise, which denoisers "
        "remove less well; where you can, denoise the original acquisition before registration or reformatting"
    )


def resampling_warning(image, label) -> str:
    """The warning a front end logs for a resampled input (``label``: its file), or ``""``."""
    sign = resampling_sign(image)
    return resampling_message(sign, label) if sign else ""
