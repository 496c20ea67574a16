"""Finding the inputs in a folder: image files and DICOM series folders."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import SimpleITK as sitk

from ..errors import InputError
from .formats import detect_format
from .itk_messages import itk_messages_logged

__all__ = ["SEGMENTATION_SUFFIX", "check_links", "find_inputs", "is_dicom_folder"]

logger = logging.getLogger(__name__)

#: 3D Slicer's segmentation files: label maps with segment names, not images
SEGMENTATION_SUFFIX = ".seg.nrrd"


def check_links(folder: str | Path) -> None:
    """Refuse a folder that holds links whose target is gone (a series assembled from links to files since moved).

    GDCM's scan of such a folder leaves out files next to a broken link, or finds no series at all, so a DICOM
    series would lose slices or be read as single slices without a word.

    Raises:
        InputError: naming the first broken link (hidden entries are ignored, as everywhere).
    """
    folder = Path(folder)
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return  # the caller reports a folder it cannot list
    broken = [e for e in entries if not e.name.startswith(".") and e.is_symlink() and not e.exists()]
    if broken:
        more = f" (and {len(broken) - 1} more broken link{'s' if len(broken) > 2 else ''})" if len(broken) > 1 else ""
        raise InputError(
            f"{broken[0]}: a link to {os.readlink(broken[0])}, which does not exist{more}; remove the link or restore "
            "the file (with it in the folder a DICOM series cannot be read completely)"
        )


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
    suffix is an input (``.dcm`` files only when they are not part of a series folder; not 3D Slicer's
    segmentations, ``.seg.nrrd``, which a saved Slicer scene keeps beside its volumes), and with ``recursive``
    sub-folders are searched too, each DICOM series sub-folder counting as one input; a folder holding a
    ``DICOMDIR`` (DICOM media: a CD, a PACS export) is always searched so.

    Args:
        folder: the folder to scan.
        recursive: also scan sub-folders. Defaults to False.

    Raises:
        InputError: the folder is missing or cannot be listed, or holds a broken link (:func:`check_links`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder" if folder.exists() else f"{folder}: no such file or folder")
    check_links(folder)
    if is_dicom_folder(folder):
        return [folder]
    # DICOM media (a CD, a PACS export): a DICOMDIR beside patient / study / series folders, nested a few levels deep
    recursive = recursive or (folder / "DICOMDIR").is_file()
    found: list[Path] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise InputError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.name.lower().endswith(SEGMENTATION_SUFFIX):
            logger.info("%s: a 3D Slicer segmentation, not an image to denoise; skipped", entry)
        elif entry.is_file() and detect_format(entry) is not None:
            found.append(entry)
        elif entry.is_dir():
            if is_dicom_folder(entry):
                found.append(entry)
            elif recursive:
                found.extend(find_inputs(entry, recursive=True))
    return found
