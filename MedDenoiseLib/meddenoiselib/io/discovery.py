"""Finding the inputs in a folder: image files and DICOM series folders."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from ..errors import InputError
from .formats import detect_format
from .itk_messages import itk_messages_logged

__all__ = ["find_inputs", "is_dicom_folder"]


def is_dicom_folder(folder: str | Path) -> bool:
    """Whether GDCM finds at least one DICOM series directly inside ``folder``."""
    try:
        with itk_messages_logged():  # GDCM says "No Series were found" for every folder without one
            return len(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))) > 0
    except RuntimeError:
        return False


def find_inputs(folder: str | Path, recursive: bool = False) -> list[Path]:
    """The readable inputs in a folder, sorted: supported image files and DICOM series sub-folders.

    A folder that itself holds a DICOM series is one input (the folder). Otherwise every file with a supported
    suffix is an input (``.dcm`` files only when they are not part of a series folder), and with ``recursive``
    sub-folders are searched too, each DICOM series sub-folder counting as one input.

    Args:
        folder: the folder to scan.
        recursive: also scan sub-folders. Defaults to False.

    Raises:
        InputError: the folder is missing or cannot be listed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder" if folder.exists() else f"{folder}: no such file or folder")
    if is_dicom_folder(folder):
        return [folder]
    found: list[Path] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise InputError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_file() and detect_format(entry) is not None:
            found.append(entry)
        elif entry.is_dir():
            if is_dicom_folder(entry):
                found.append(entry)
            elif recursive:
                found.extend(find_inputs(entry, recursive=True))
    return found
