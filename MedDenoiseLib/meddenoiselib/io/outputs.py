"""Output planning: one check of every output path, run before any computation and again by every writer.

:func:`plan_output` decides what an output path will be (format, and every file it will create or replace) and
refuses it when:

- the name gives no known format (an image needs a known suffix, or a folder name for a derived DICOM series;
  :func:`check_typed_output_name` also refuses a typed folder name that ends like a file extension);
- the format cannot hold the image: a volume to a 2D format (PNG/JPEG/BMP), pixels the format cannot store
  (int16 to PNG, RGB to NIfTI or DICOM), DICOM output without DICOM input, a residual (signed, fractional
  values) to DICOM, or slices that are not on one regular grid to a format with a single affine;
- its folder is missing or not writable, or the path is a folder where a file is expected (or the reverse);
- it resolves to an input (or lies inside an input folder), or to a file another output of the same run writes;
- a file it would replace exists and ``overwrite`` is not set.

An existing output folder is merged into: only the files the output writes count as "existing".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OutputError
from .formats import IMAGE_2D_FORMATS, READ_ONLY_FORMATS, as_path, detect_format, format_name

__all__ = [
    "ImageSpec",
    "PlannedOutput",
    "check_format_holds",
    "check_typed_output_name",
    "input_paths",
    "plan_file",
    "plan_output",
    "refuse_read_only",
]

#: a name ending like a file extension (a letter, then up to 4 letters or digits: ``.xyz``, ``.gzz``, ``.nrd``)
_FILE_LIKE_SUFFIX = re.compile(r"^\.[a-z][a-z0-9]{0,4}$", re.IGNORECASE)

#: formats that place every voxel with one affine (or none): they cannot hold an irregular slice stack.
SINGLE_GRID_FORMATS = ("nifti", "nrrd", "mgh", "metaimage", "tiff")
_WRITABLE_DTYPES = {
    "png": ("uint8", "uint16"),
    "jpeg": ("uint8",),
    "bmp": ("uint8",),
    "tiff": ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32"),
    "mgh": ("uint8", "int16", "int32", "float32"),
}


@dataclass(frozen=True)
class ImageSpec:
    """What an image output will hold, known before it is computed.

    Attributes:
        shape: ``(Z, Y, X)``.
        components: 1 or 3.
        dtype: the dtype that will be written.
        is_2d: the source was a 2D image.
        source_format: the input's format (``"memory"`` for arrays built in code).
        dicom_files: DICOM source files in slice order (needed for DICOM output).
        grid_problem: why one affine cannot place the slices (empty when it can).
    """

    shape: tuple[int, int, int]
    components: int = 1
    dtype: np.dtype = np.dtype(np.float32)
    is_2d: bool = False
    source_format: str = "memory"
    dicom_files: tuple[str, ...] = ()
    grid_problem: str = ""

    @staticmethod
    def of(image, dtype: np.dtype | str | None = None) -> ImageSpec:
        """The spec of a :class:`~meddenoiselib.io.Volume` or :class:`~meddenoiselib.io.probe.VolumeHeader`,
        optionally with another output dtype (a float32 residual of an int16 scan)."""
        if hasattr(image, "array"):  # a Volume
            source = image.source
            return ImageSpec(
                shape=image.shape,
                components=image.num_components,
                dtype=np.dtype(dtype if dtype is not None else image.array.dtype),
                is_2d=source.is_2d,
                source_format=source.format,
                dicom_files=source.dicom_files,
                grid_problem=source.grid_problem,
            )
        return ImageSpec(
            shape=image.shape,
            components=image.components,
            dtype=np.dtype(dtype if dtype is not None else image.dtype),
            is_2d=image.is_2d,
            source_format=image.format,
            dicom_files=image.dicom.files if image.dicom is not None else (),
            grid_problem=image.grid_problem,
        )


@dataclass(frozen=True)
class PlannedOutput:
    """An output path that passed every check.

    Attributes:
        path: the path as given.
        format: the format written (``"nifti"``, ..., ``"dicom-series"`` for a folder, ``"json"``/``"text"``...).
        role: what it is (``"image"``, ``"residual"``, ``"report"``, ...), used in messages.
        files: the resolved paths of every file it creates or replaces.
        folder: for a folder output (DICOM series), the folder; else None.
    """

    path: Path
    format: str
    role: str
    files: tuple[Path, ...]
    folder: Path | None = None


def input_paths(paths: Iterable[str | Path]) -> tuple[Path, ...]:
    """Every path an input consists of, resolved: the paths themselves and the data files their headers name."""
    from .probe import text_header_data_files

    found: list[Path] = []
    for path in paths:
        if not str(path):
            continue
        path = Path(path)
        found.append(path.resolve())
        if path.is_file() and detect_format(path) in ("nrrd", "metaimage"):
            found.extend(Path(p) for p in text_header_data_files(path))
    return tuple(dict.fromkeys(found))


def refuse_read_only(label: str, fmt: str | None) -> None:
    """Refuse to write a format the library reads but never writes (PAR/REC, MINC: their results are NIfTI).

    Raises:
        OutputError: naming ``label`` and the formats to write instead.
    """
    if fmt in READ_ONLY_FORMATS:
        raise OutputError(f"{label}: {format_name(fmt)} files are read, not written; write .nii.gz (or .nii, .nrrd)")


def check_format_holds(fmt: str, spec: ImageSpec, label: str, role: str = "image") -> None:
    """Refuse a format that cannot hold the image described by ``spec``.

    Raises:
        OutputError: naming ``label`` and what the format cannot hold, with a format that can.
    """
    dtype = np.dtype(spec.dtype)
    z = spec.shape[0]
    if fmt in IMAGE_2D_FORMATS and z != 1:
        raise OutputError(
            f"{label}: {fmt.upper()} holds one 2D image but the {role} has {z} slices; "
            "write .nii.gz, .nrrd, .mha or .tif instead"
        )
    if fmt in _WRITABLE_DTYPES and dtype.name not in _WRITABLE_DTYPES[fmt]:
        allowed = ", ".join(_WRITABLE_DTYPES[fmt])
        instead = ".nrrd or .nii.gz" if fmt == "tiff" else ".tif, .nrrd or .nii.gz"
        raise OutputError(
            f"{label}: {fmt.upper()} cannot store {dtype} pixels (only {allowed}); write {instead} instead"
        )
    if fmt == "mgh" and spec.components != 1:
        raise OutputError(
            f"{label}: MGH output holds scalar images; this {role} has {spec.components} components; write .nrrd, "
            ".mha or .tif instead"
        )
    if fmt == "nifti" and spec.components != 1:
        raise OutputError(
            f"{label}: NIfTI output holds scalar images; this {role} has {spec.components} components (colour "
            "or channels); write .nrrd, .mha or .tif instead" + (" (or .png)" if spec.components in (3, 4) else "")
        )
    if fmt in ("dicom-series", "dicom-file"):
        if not spec.dicom_files:
            raise OutputError(
                f"{label}: DICOM output needs DICOM input (its patient, study and geometry headers); "
                "write .nii.gz, .nrrd or .mha instead"
            )
        if role == "residual":
            raise OutputError(
                f"{label}: a residual holds negative and fractional values, which the input's DICOM "
                "pixel storage cannot hold; write the residual as .nii.gz, .nrrd or .mha"
            )
        if role == "noise map":
            raise OutputError(
                f"{label}: a noise map holds fractional values (a standard deviation per voxel), which the "
                "input's DICOM pixel storage cannot hold; write the noise map as .nii.gz, .nrrd or .mha"
            )
        if spec.components not in (1, 3):
            raise OutputError(
                f"{label}: only grayscale and RGB images can be written as DICOM; write .nrrd, .mha or .tif instead"
            )
        if fmt == "dicom-file" and len(spec.dicom_files) != 1:
            raise OutputError(
                f"{label}: the input is a {len(spec.dicom_files)}-file DICOM series; give a folder name "
                "(no suffix) as output"
            )
        if dtype.kind not in "iufb":
            raise OutputError(f"{label}: cannot write {dtype} pixels as DICOM")
    if fmt in SINGLE_GRID_FORMATS and spec.grid_problem and z > 1:
        raise OutputError(
            f"{label}: {spec.grid_problem}, so a {fmt.upper()} affine would put slices in the wrong "
            "place; write a DICOM series (a folder name) instead"
        )
    if dtype.kind not in "iufb":
        raise OutputError(f"{label}: cannot write {dtype} pixels")


def _companion_files(path: Path, fmt: str, compress: bool) -> tuple[Path, ...]:
    """The data file a detached header (``.nhdr``/``.mhd``) is written with (named as SimpleITK names it)."""
    name = path.name
    lower = name.lower()
    if fmt == "nrrd" and lower.endswith(".nhdr"):
        return (path.parent / (name[:-5] + (".raw.gz" if compress else ".raw")),)
    if fmt == "metaimage" and lower.endswith(".mhd"):
        return (path.parent / (name[:-4] + (".zraw" if compress else ".raw")),)
    return ()


def _check_folder_writable(folder: Path, label: str) -> None:
    if not folder.exists():
        raise OutputError(f"{label}: the output folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"{label}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{label}: the output folder {folder} is not writable")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_against(
    label: str,
    role: str,
    files: Sequence[Path],
    folder: Path | None,
    protected: Sequence[Path],
    others: Sequence[PlannedOutput],
) -> None:
    protected = [Path(p).resolve() for p in protected]
    input_folders = [p for p in protected if p.is_dir()]
    for file in files:
        for source in protected:
            if file == source or _same_file(file, source):
                raise OutputError(f"{label}: the {role} output would overwrite the input {source}; choose another path")
        for source in input_folders:
            if source in file.parents:
                raise OutputError(
                    f"{label}: the {role} output would be written inside the input folder {source}; choose another path"
                )
    if folder is not None:
        for source in protected:
            if folder == source:
                raise OutputError(f"{label}: the {role} output folder is the input {source}; choose another path")
    for other in others:
        shared = set(files) & set(other.files)
        same_folder = folder is not None and other.folder is not None and folder == other.folder
        if shared or same_folder or (other.folder is not None and other.folder in files):
            raise OutputError(
                f"{label}: the {role} output resolves to the same path as the {other.role} output "
                f"{other.path}; give each output its own name"
            )


def _check_existing(label: str, files: Sequence[Path], overwrite: bool) -> None:
    for file in files:
        if file.is_dir():
            raise OutputError(f"{label}: {file} is a folder; the output needs a file name")
        if (file.exists() or file.is_symlink()) and not overwrite:
            what = "output already exists" if len(files) == 1 else f"output file {file.name} already exists"
            raise OutputError(f"{label}: {what}", parameter="overwrite")


def check_typed_output_name(path: str | Path, spec: ImageSpec) -> None:
    """Refuse an output name a user typed that :func:`plan_output` would make a derived DICOM series folder of,
    though it ends like a file extension (``out.nii.gzz``, ``out.nrd``): more likely a mistyped image name than a
    folder's. Folders named after a UID (``1.2.840.10008``, ending in digits), longer endings (``out.denoised``) and
    existing folders pass. For names typed at the command line only: a folder run's outputs are named after its
    inputs, whose folder names may end in anything.

    Raises:
        OutputError: naming the path and the formats that can be written.
    """
    path = as_path(path)
    dicom_input = spec.dicom_files and spec.source_format in ("dicom-series", "dicom-file")
    if dicom_input and detect_format(path) is None and _FILE_LIKE_SUFFIX.match(path.suffix) and not path.is_dir():
        raise OutputError(
            f"{path}: {path.suffix!r} is not an image format this library writes (.nii.gz, .nii, .nrrd, .mha, .mgz, "
            ".png, .tif); a derived DICOM series needs a folder name without a file suffix, or an existing folder"
        )


def plan_output(
    path: str | Path,
    spec: ImageSpec,
    role: str = "image",
    overwrite: bool = False,
    protected: Iterable[str | Path] = (),
    others: Iterable[PlannedOutput] = (),
    compress: bool = True,
) -> PlannedOutput:
    """Check an image output path and say what will be written there.

    Args:
        path: a file name with an image suffix, or a folder name (derived DICOM series, DICOM input only).
        spec: what will be written (see :meth:`ImageSpec.of`).
        role: ``"image"``, ``"residual"`` or ``"noise map"`` (neither of the last two can be DICOM). Defaults to
            ``"image"``.
        overwrite: allow replacing files this output writes. Defaults to False.
        protected: input paths (see :func:`input_paths`) that must never be written.
        others: outputs already planned in the same run; they must not share a file.
        compress: the writer will compress (decides a detached header's data file name). Defaults to True.

    Raises:
        OutputError: see the module docstring; ``parameter`` is ``"overwrite"`` when only that is in the way.
    """
    path = as_path(path)
    label = str(path)
    fmt = detect_format(path)
    if fmt is None:
        if spec.dicom_files and spec.source_format in ("dicom-series", "dicom-file"):
            fmt = "dicom-series"
        else:
            raise OutputError(
                f"{label}: cannot tell the output format from the name; use .nii.gz, .nrrd, .mha, .png, .tif, .npy or "
                ".dcm (a folder name is only valid for DICOM input)"
            )
    if fmt == "nifti" and path.name.lower().endswith((".hdr", ".hdr.gz")):
        raise OutputError(f"{label}: NIfTI pairs (.hdr/.img) are read, not written; write .nii or .nii.gz")
    refuse_read_only(label, fmt)
    check_format_holds(fmt, spec, label, role)
    resolved = path.resolve()
    others = list(others)
    if fmt == "dicom-series":
        from .dicom_write import derived_file_names

        if resolved.exists() and not resolved.is_dir():
            raise OutputError(f"{label}: a file of that name exists; a DICOM series output needs a folder name")
        _check_folder_writable(resolved if resolved.exists() else resolved.parent, label)
        files = tuple(resolved / name for name in derived_file_names(spec.dicom_files))
        _check_against(label, role, files, resolved, input_paths(protected), others)
        _check_existing(label, files, overwrite)
        return PlannedOutput(path, fmt, role, files, folder=resolved)
    if resolved.is_dir():
        raise OutputError(f"{label}: a folder of that name exists; the {role} output needs a file name")
    _check_folder_writable(resolved.parent, label)
    files = (resolved, *_companion_files(resolved, fmt, compress))
    _check_against(label, role, files, None, input_paths(protected), others)
    _check_existing(label, files, overwrite)
    return PlannedOutput(path, fmt, role, files)


def plan_file(
    path: str | Path,
    role: str,
    suffixes: Sequence[str],
    overwrite: bool = False,
    protected: Iterable[str | Path] = (),
    others: Iterable[PlannedOutput] = (),
) -> PlannedOutput:
    """Check a non-image output (a JSON report, a table, a figure) like :func:`plan_output`.

    Args:
        path: the file.
        role: what it is, for messages (``"report"``).
        suffixes: allowed suffixes (e.g. ``(".json",)``).
        overwrite: allow replacing an existing file. Defaults to False.
        protected: input paths that must never be written.
        others: outputs already planned in the same run.
    """
    path = as_path(path)
    label = str(path)
    if not any(path.name.lower().endswith(s) for s in suffixes) or path.name.lower() in suffixes:
        raise OutputError(f"{label}: the {role} must be a {' or '.join(suffixes)} file")
    resolved = path.resolve()
    if resolved.is_dir():
        raise OutputError(f"{label}: a folder of that name exists; the {role} needs a file name")
    _check_folder_writable(resolved.parent, label)
    files = (resolved,)
    _check_against(label, role, files, None, input_paths(protected), list(others))
    _check_existing(label, files, overwrite)
    return PlannedOutput(path, path.suffix.lower().lstrip("."), role, files)
