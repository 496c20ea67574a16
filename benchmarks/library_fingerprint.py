"""What a ``--work`` folder's CLI outputs were made with: a fingerprint of the library's code and shipped weights.

The benchmarks reuse the CLI outputs an earlier run left in ``--work`` (hours of CPU time); outputs are reused only
when the library that wrote them is the library now, so a changed model, refinement or default is never scored from
stale files.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "MedDenoiseLib" / "meddenoiselib"
#: what decides an output: the code and the shipped weights with their cards (not the samples or the docs)
SUFFIXES = (".py", ".json", ".safetensors")


@cache
def library_fingerprint() -> str:
    """sha256 (16 hex digits) over the path and bytes of every ``.py``, ``.json`` and ``.safetensors`` file of the
    package, in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in LIBRARY.rglob("*") if p.suffix in SUFFIXES and "__pycache__" not in p.parts):
        digest.update(path.relative_to(LIBRARY).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def stamp(folder: Path) -> Path:
    """The file beside ``folder`` that records the fingerprint its contents were made with."""
    return folder.with_name(folder.name + ".library")


def made_by_this_library(folder: Path) -> bool:
    """``folder`` exists and was written by the library as it is now."""
    marker = stamp(folder)
    return folder.is_dir() and marker.is_file() and marker.read_text().strip() == library_fingerprint()


def mark_made_by_this_library(folder: Path) -> None:
    stamp(folder).write_text(library_fingerprint() + "\n")
