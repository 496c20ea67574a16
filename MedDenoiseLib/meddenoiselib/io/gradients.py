"""A diffusion NIfTI's FSL gradient table (``dwi.bval`` / ``dwi.bvec`` beside ``dwi.nii.gz``, as dcm2niix, FSL,
MRtrix and BIDS write it): found beside an input, and copied beside a denoised output of the same frames, so those
tools read the output with its gradients and ``auto`` knows it again for MR. The output's voxel axes and frame order
are the input's, so the b-vectors stay valid as they are. The CLI and the MONAI bundle both copy it from here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import OutputError
from .atomic import atomic_file
from .formats import detect_format, strip_suffix
from .modality import diffusion_table

__all__ = ["copy_gradient_table", "gradient_table_copies", "gradient_table_files", "gradient_table_not_kept"]


def gradient_table_files(path: str | Path) -> tuple[Path, ...]:
    """The ``.bval`` (and ``.bvec``, when there is one) beside a diffusion NIfTI; empty for any other file."""
    table = diffusion_table(path)
    if table is None:
        return ()
    vectors = table.with_suffix(".bvec")
    return (table, vectors) if vectors.is_file() else (table,)


def gradient_table_not_kept(target: str | Path, tables: tuple[Path, ...], advice: str) -> str | None:
    """The warning for an output whose format gets no copy of the table (only NIfTI, whose voxel axes and frames are
    the input's, does), ending in ``advice``; None for a NIfTI output."""
    fmt = detect_format(target)
    if fmt == "nifti":
        return None
    names = ", ".join(Path(table).name for table in tables)
    kind = fmt or "DICOM"
    return f"{target}: the gradient table beside the input ({names}) is not written beside a {kind} output; {advice}"


def gradient_table_copies(tables: tuple[Path, ...], target: str | Path) -> tuple[tuple[Path, Path], ...]:
    """``(table, copy)`` pairs: each table's copy beside the NIfTI ``target`` (``out.bval`` beside ``out.nii.gz``).

    Raises:
        OutputError: a copy would replace the input's own table (``dwi.nii`` written beside ``dwi.nii.gz``).
    """
    target = Path(target)
    copies = []
    for table in tables:
        copy = target.with_name(strip_suffix(target.name) + table.suffix)
        if copy.resolve() == Path(table).resolve():
            raise OutputError(
                f"{target}: the output's gradient table {copy.name} would replace the input's; name the output "
                "differently (its .bval / .bvec are written beside it)"
            )
        copies.append((Path(table), copy))
    return tuple(copies)


def copy_gradient_table(copies: tuple[tuple[Path, Path], ...]) -> None:
    """Copy each ``(table, copy)`` pair, atomically (a reader never sees half a table)."""
    for table, copy in copies:
        with atomic_file(copy) as temporary:
            shutil.copyfile(table, temporary)
