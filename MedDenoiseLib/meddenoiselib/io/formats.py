"""File-format detection by name."""

from __future__ import annotations

from pathlib import Path

from ..errors import OptionError

__all__ = [
    "IMAGE_2D_FORMATS",
    "READ_ONLY_FORMATS",
    "as_path",
    "detect_format",
    "format_name",
    "format_suffix",
    "is_supported_file",
    "strip_suffix",
]

_SUFFIXES: dict[str, str] = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".hdr": "nifti",  # a NIfTI pair's header (its data in the .img beside it); read, not written
    ".hdr.gz": "nifti",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mgz": "mgh",  # FreeSurfer (compressed)
    ".mgh": "mgh",
    ".par": "parrec",  # a Philips PAR/REC pair's header (its data in the .REC beside it); read, not written
    ".mnc": "minc",  # MINC 1 or 2; read, not written
    ".mha": "metaimage",
    ".mhd": "metaimage",
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".bmp": "bmp",
    ".dcm": "dicom-file",
    ".dicom": "dicom-file",
    ".ima": "dicom-file",
    ".npy": "npy",  # a NumPy array: no geometry (1 mm voxels at the origin), axes (Z, Y, X)
}

#: formats that hold a single 2D image (TIFF may hold several pages, so it is not listed here).
IMAGE_2D_FORMATS = ("png", "jpeg", "bmp")

#: formats read but never written: a scanner's raw export (PAR/REC) and MINC; their results are written as NIfTI.
READ_ONLY_FORMATS = ("parrec", "minc")

#: the default file suffix written for each format.
_DEFAULT_SUFFIX = {
    "nifti": ".nii.gz",
    "nrrd": ".nrrd",
    "mgh": ".mgz",
    "metaimage": ".mha",
    "png": ".png",
    "tiff": ".tif",
    "jpeg": ".jpg",
    "bmp": ".bmp",
    "dicom-file": ".dcm",
    "npy": ".npy",
}


def as_path(value: str | Path, name: str = "path") -> Path:
    """``value`` as a :class:`~pathlib.Path`; anything that is not a path raises :class:`OptionError`."""
    if isinstance(value, Path):
        return value
    if isinstance(value, str) and value and "\0" not in value:
        return Path(value)
    raise OptionError(f"`{name}` must be a file or folder path, got {value!r}", parameter=name)


def detect_format(path: str | Path) -> str | None:
    """The format named by a file's suffix (``"nifti"``, ``"nrrd"``, ...), or ``None`` if unknown."""
    name = Path(path).name.lower()
    for suffix, fmt in _SUFFIXES.items():
        if name.endswith(suffix):
            return fmt
    return None


#: how messages name each format.
_DISPLAY_NAMES = {
    "nifti": "NIfTI",
    "nrrd": "NRRD",
    "mgh": "MGH",
    "parrec": "PAR/REC",
    "minc": "MINC",
    "metaimage": "MetaImage",
    "png": "PNG",
    "tiff": "TIFF",
    "jpeg": "JPEG",
    "bmp": "BMP",
    "dicom-file": "DICOM",
    "dicom-series": "DICOM series",
    "npy": "NumPy .npy",
}


def format_name(fmt: str) -> str:
    """The name messages use for a format (``"nifti"`` -> ``"NIfTI"``); unknown names are returned as given."""
    return _DISPLAY_NAMES.get(fmt, fmt)


def format_suffix(fmt: str) -> str:
    """The file suffix written for a format name (``"nifti"`` -> ``".nii.gz"``)."""
    if fmt not in _DEFAULT_SUFFIX:
        raise OptionError(f"unknown format {fmt!r}; choose one of {sorted(_DEFAULT_SUFFIX)}.")
    return _DEFAULT_SUFFIX[fmt]


def is_supported_file(path: str | Path) -> bool:
    """Whether a file name has a suffix this library reads."""
    return detect_format(path) is not None


def strip_suffix(name: str) -> str:
    """``"scan.nii.gz"`` -> ``"scan"``: the name without its (possibly double) image suffix; a name without one
    whole (a DICOM file named by its UID, ``1.2.840.113619.2.55``, or a series folder ``t1.5mm``: what follows its
    last dot is no suffix, and dropping it would give different inputs one name)."""
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name
