"""A NIfTI output's JSON sidecar (``NAME.json`` beside ``NAME.nii.gz``), as BIDS and dcm2niix write it.

A NIfTI header has no room for what the scan was: its modality, the scanner, the sequence's timing, the image type.
Converters (dcm2niix) and BIDS keep those values in a JSON file beside the image, and the tools downstream (BIDS apps,
fMRIPrep, QSIPrep, MRtrix, this library's own ``auto``, which reads its ``Modality`` and ``ImageType``) read them there.
A denoised NIfTI written from DICOM gets such a sidecar from the DICOM header; one written from a NIfTI that had a
sidecar gets a copy of it. Both say which software wrote the image, and with which model.

The values copied are the acquisition's, never the patient's (no names, IDs or dates), under their BIDS names and
units (times in seconds).
"""

from __future__ import annotations

import json
from pathlib import Path

from .formats import detect_format, strip_suffix

__all__ = ["dicom_sidecar", "input_sidecar", "sidecar_path", "sidecar_text"]

#: BIDS name -> (GDCM key of the DICOM element, how its text becomes the BIDS value)
_TEXT, _NUMBER, _SECONDS, _LIST = "text", "number", "seconds", "list"
_DICOM_FIELDS = {
    "Modality": ("0008|0060", _TEXT),
    "Manufacturer": ("0008|0070", _TEXT),
    "ManufacturersModelName": ("0008|1090", _TEXT),
    "MagneticFieldStrength": ("0018|0087", _NUMBER),
    "ImagingFrequency": ("0018|0084", _NUMBER),
    "BodyPartExamined": ("0018|0015", _TEXT),
    "SeriesDescription": ("0008|103e", _TEXT),
    "ProtocolName": ("0018|1030", _TEXT),
    "SeriesNumber": ("0020|0011", _NUMBER),
    "ImageType": ("0008|0008", _LIST),
    "ScanningSequence": ("0018|0020", _TEXT),
    "SequenceVariant": ("0018|0021", _TEXT),
    "ScanOptions": ("0018|0022", _TEXT),
    "SequenceName": ("0018|0024", _TEXT),
    "EchoTime": ("0018|0081", _SECONDS),
    "RepetitionTime": ("0018|0080", _SECONDS),
    "InversionTime": ("0018|0082", _SECONDS),
    "FlipAngle": ("0018|1314", _NUMBER),
    "EchoTrainLength": ("0018|0091", _NUMBER),
    "PixelBandwidth": ("0018|0095", _NUMBER),
    "SliceThickness": ("0018|0050", _NUMBER),
    "SpacingBetweenSlices": ("0018|0088", _NUMBER),
    "KVP": ("0018|0060", _NUMBER),
    "XRayTubeCurrent": ("0018|1151", _NUMBER),
    "ExposureTime": ("0018|1150", _NUMBER),
    "ConvolutionKernel": ("0018|1210", _TEXT),
    "ReconstructionDiameter": ("0018|1100", _NUMBER),
}


def sidecar_path(nifti: str | Path) -> Path | None:
    """``NAME.json`` beside the NIfTI ``NAME.nii[.gz]``; None for another format."""
    nifti = Path(nifti)
    return nifti.with_name(strip_suffix(nifti.name) + ".json") if detect_format(nifti) == "nifti" else None


def input_sidecar(path: str | Path) -> tuple[Path, dict] | None:
    """A NIfTI input's sidecar and its values; None without a readable one (a file that is not a JSON object)."""
    sidecar = sidecar_path(path)
    if sidecar is None or not sidecar.is_file():
        return None
    try:
        values = json.loads(sidecar.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return None
    return (sidecar, values) if isinstance(values, dict) else None


def dicom_sidecar(metadata: dict[str, str]) -> dict:
    """The BIDS values of a DICOM image's header (GDCM keys, as :attr:`~meddenoiselib.io.Volume.metadata` holds
    them): only those present and readable."""
    values: dict = {}
    for name, (key, kind) in _DICOM_FIELDS.items():
        text = metadata.get(key, "").strip()
        if not text:
            continue
        if kind == _TEXT:
            values[name] = text
        elif kind == _LIST:
            values[name] = [part.strip() for part in text.split("\\")]
        else:
            try:
                number = float(text.split("\\")[0])
            except ValueError:
                continue
            if kind == _SECONDS:
                values[name] = round(number / 1000.0, 9)
            else:
                values[name] = int(number) if number.is_integer() else number
    return values


def sidecar_text(values: dict, version: str, method: str, converted: bool) -> str:
    """The sidecar's text: ``values`` (a DICOM header's, or the input's sidecar's), then what denoised the image
    (``DenoisingSoftware``, its version, the model or filter), and for an image ``converted`` from DICOM also as
    the converter (``ConversionSoftware``; a copied sidecar keeps its converter's, dcm2niix's)."""
    values = dict(values)
    if converted:
        values.update(ConversionSoftware="MedDenoise", ConversionSoftwareVersion=version)
    values.update(DenoisingSoftware="MedDenoise", DenoisingSoftwareVersion=version, DenoisingMethod=method)
    return json.dumps(values, indent=2, ensure_ascii=False) + "\n"
