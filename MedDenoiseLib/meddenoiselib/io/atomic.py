"""Safe output: everything is written under a hidden temporary name beside its target, then moved into place.

- A file is written to ``.<name>.tmp-<hex><suffix>`` and renamed onto its target (``os.replace``, atomic).
- Several files that belong together (a ``.nhdr`` header and its data file, a derived DICOM series) are written
  into a hidden staging folder ``.<name>.tmp-<hex>/`` under their final names, then moved one by one, the file
  that references the others last. An existing output folder is merged into file by file: only files of the same
  name are replaced, nothing else in it is touched, and the folder itself is never removed.
- Every temporary that exists is registered, so :func:`remove_temporaries` can delete them when the process is
  told to stop (the CLI calls it on SIGTERM/SIGINT); on any exception the context managers delete their own.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "TEMPORARY_MARK",
    "atomic_file",
    "commit_files",
    "live_temporaries",
    "remove_temporaries",
    "staging_folder",
    "write_text_atomic",
]

#: every temporary name contains this, so leftovers are easy to recognise (and tests can look for them).
TEMPORARY_MARK = ".tmp-"

_LIVE: set[Path] = set()
_LOCK = threading.Lock()


def _register(path: Path) -> None:
    with _LOCK:
        _LIVE.add(path)


def _forget(path: Path) -> None:
    with _LOCK:
        _LIVE.discard(path)


def _delete(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass  # best effort: a temporary that cannot be deleted must not hide the original error


def live_temporaries() -> list[Path]:
    """The temporaries that exist right now (written but not yet moved into place)."""
    with _LOCK:
        return sorted(_LIVE)


def remove_temporaries() -> None:
    """Delete every registered temporary; safe to call from a signal handler's exception path or at exit."""
    with _LOCK:
        paths = list(_LIVE)
        _LIVE.clear()
    for path in paths:
        _delete(path)


def temporary_sibling(path: Path, suffix: str = "") -> Path:
    """A hidden, unique name beside ``path`` (same folder, so renaming onto ``path`` is atomic)."""
    return path.parent / f".{path.name}{TEMPORARY_MARK}{uuid.uuid4().hex[:8]}{suffix}"


@contextmanager
def atomic_file(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on failure delete it.

    Args:
        path: the final file.
        suffix: appended to the temporary name so writers that pick the format by extension still work
            (e.g. ``".nii.gz"``).
    """
    path = Path(path)
    temporary = temporary_sibling(path, suffix)
    _register(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        _forget(temporary)
        if temporary.exists():
            _delete(temporary)


@contextmanager
def staging_folder(target: Path) -> Iterator[Path]:
    """Yield a new, empty hidden folder beside ``target`` for files that are written together; always removed.

    The caller moves the finished files out with :func:`commit_files` inside the ``with`` block.
    """
    target = Path(target)
    folder = temporary_sibling(target)
    folder.mkdir()
    _register(folder)
    try:
        yield folder
    finally:
        _forget(folder)
        _delete(folder)


def commit_files(moves: Sequence[tuple[Path, Path]], folder: Path | None = None) -> None:
    """Move finished files into place, in the given order (put a header that names data files last).

    Args:
        moves: ``(finished file, final path)`` pairs; each final path is replaced if it exists.
        folder: the folder receiving the files when it is an output of its own (a DICOM series); created if
            missing, merged into if present (never removed or emptied).
    """
    if folder is not None:
        folder.mkdir(exist_ok=True)
    for source, target in moves:
        os.replace(source, target)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write a text file through a temporary (a report or table is either complete or absent)."""
    path = Path(path)
    with atomic_file(path, suffix=path.suffix) as temporary:
        temporary.write_text(text)
    return path
