"""Reading and writing volumes: NIfTI, NRRD, MetaImage, DICOM series and files, 2D images; 4D series (NIfTI, NRRD)."""

from __future__ import annotations

from .dicom import DicomSeries, list_dicom_series, select_dicom_series
from .discovery import find_inputs, is_dicom_folder
from .formats import detect_format, format_suffix, is_supported_file, strip_suffix
from .modality import Modality, ModalityGuess, detect_modality, parse_modality
from .readers import check_volume, read_volume, volume_from_sitk
from .series import VolumeSeries, is_series_file, read_series, write_series
from .volume import SourceInfo, Volume
from .writers import output_format_for, volume_to_sitk, write_volume

__all__ = [
    "DicomSeries",
    "Modality",
    "ModalityGuess",
    "SourceInfo",
    "Volume",
    "VolumeSeries",
    "check_volume",
    "detect_format",
    "detect_modality",
    "find_inputs",
    "format_suffix",
    "is_dicom_folder",
    "is_series_file",
    "is_supported_file",
    "list_dicom_series",
    "output_format_for",
    "parse_modality",
    "read_series",
    "read_volume",
    "select_dicom_series",
    "strip_suffix",
    "volume_from_sitk",
    "volume_to_sitk",
    "write_series",
    "write_volume",
]
