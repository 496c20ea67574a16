"""Reading and writing volumes: NIfTI, NRRD, MetaImage, MGH / MGZ, DICOM series and files, 2D images; read only:
Philips PAR/REC and MINC; 4D series (NIfTI, NRRD, MGH, PAR/REC, TIFF)."""

from __future__ import annotations

from .dicom import DicomSeries, list_dicom_series, select_dicom_series
from .discovery import find_inputs, is_dicom_folder
from .formats import detect_format, format_suffix, is_supported_file, strip_suffix
from .limits import memory_budget
from .modality import (
    Modality,
    ModalityGuess,
    detect_modality,
    modality_from_dicom_code,
    modality_from_file,
    parse_modality,
)
from .outputs import ImageSpec, PlannedOutput, check_typed_output_name, input_paths, plan_file, plan_output
from .probe import VolumeHeader, probe_volume
from .readers import check_volume, read_volume, volume_from_sitk
from .series import VolumeSeries, is_series_file, read_series, write_series
from .volume import SourceInfo, Volume
from .writers import output_format_for, volume_to_sitk, write_volume

__all__ = [
    "DicomSeries",
    "ImageSpec",
    "Modality",
    "ModalityGuess",
    "PlannedOutput",
    "SourceInfo",
    "Volume",
    "VolumeHeader",
    "VolumeSeries",
    "check_volume",
    "detect_format",
    "detect_modality",
    "modality_from_dicom_code",
    "modality_from_file",
    "find_inputs",
    "format_suffix",
    "check_typed_output_name",
    "input_paths",
    "is_dicom_folder",
    "is_series_file",
    "is_supported_file",
    "list_dicom_series",
    "memory_budget",
    "output_format_for",
    "parse_modality",
    "plan_file",
    "plan_output",
    "probe_volume",
    "read_series",
    "read_volume",
    "select_dicom_series",
    "strip_suffix",
    "volume_from_sitk",
    "volume_to_sitk",
    "write_series",
    "write_volume",
]
