"""Atomic output: write to a temporary name next to the target, then rename into place."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import MedDenoiseError

__all__ = ["atomic_file", "atomic_folder", "check_output_path"]


def check_output_path(path: Path, overwrite: bool, inputs: tuple[Path, ...] = ()) -> None:
    """Refuse to write onto an input, or onto an existing output unless ``overwrite`` is set."""
    resolved = path.resolve()
    for source in inputs:
        source_resolved = Path(source).resolve()
        if resolved == source_resolved or (source_resolved.is_dir() and source_resolved in resolved.parents):
            raise MedDenoiseError(f"{path}: output would overwrite the input; choose another output path")
    if path.exists() and not overwrite:
        raise MedDenoiseError(f"{path}: output already exists; pass --overwrite to replace it")
    if not path.parent.exists():
        raise MedDenoiseError(f"{path}: output folder {path.parent} does not exist")


def _temporary_sibling(path: Path, suffix: str = "") -> Path:
    return path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}{suffix}"


@contextmanager
def atomic_file(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on failure delete it.

    Args:
        path: the final file.
        suffix: appended to the temporary name so writers that pick the format by extension still work
            (e.g. ``".nii.gz"``).
    """
    temporary = _temporary_sibling(path, suffix)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield a new empty temporary folder beside ``path``; on success it replaces ``path`` as a whole."""
    temporary = _temporary_sibling(path)
    temporary.mkdir()
    try:
        yield temporary
        if path.exists():
            backup = _temporary_sibling(path, ".old")
            os.replace(path, backup)
            os.replace(temporary, path)
            if backup.is_dir():
                shutil.rmtree(backup)
            else:
                backup.unlink()
        else:
            os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
