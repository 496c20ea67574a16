"""Which Python packages the module still needs, and where the bundled ``meddenoiselib`` sources are.

Nothing is installed here: the scripted module asks the user and installs through Slicer's helpers
(``PyTorchUtils`` for torch, ``slicer.util.pip_install`` for the rest) on the first Apply, never at import.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from pathlib import Path

__all__ = ["LIBRARY_SOURCE_FOLDER", "TORCH_REQUIREMENT", "find_library_source", "missing_modules", "torch_too_old"]

#: the torch requirement handed to ``PyTorchUtilsLogic.installTorch`` (MONAI 1.6 needs torch >= 2.8).
TORCH_REQUIREMENT = ">=2.8"
_TORCH_MINIMUM = (2, 8)

#: folder beside the module file where the extension's CMake installs the library sources (pyproject.toml,
#: README.md and MedDenoiseLib/), so that ``pip install <folder>`` installs meddenoiselib and its requirements.
LIBRARY_SOURCE_FOLDER = "MedDenoiseLibrarySource"

#: the modules the denoising needs, in installation order.
REQUIRED_MODULES = ("torch", "monai", "meddenoiselib")


def missing_modules(names: tuple[str, ...] = REQUIRED_MODULES) -> list[str]:
    """The names in ``names`` that cannot be imported (checked without importing them)."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def torch_too_old() -> bool:
    """Whether an installed torch is older than :data:`TORCH_REQUIREMENT` (read from its metadata, not imported)."""
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False
    numbers = [int(n) for n in re.findall(r"\d+", version)[:2]]
    return tuple(numbers) < _TORCH_MINIMUM


def find_library_source(module_dir: str | Path) -> Path | None:
    """The folder to ``pip install`` meddenoiselib from, or None.

    Looks for the copy the extension installs beside the module (:data:`LIBRARY_SOURCE_FOLDER`), then for a
    source checkout (the module folder's parent holding a ``pyproject.toml`` of the ``meddenoiselib`` project).
    """
    module_dir = Path(module_dir).resolve()
    for candidate in (module_dir / LIBRARY_SOURCE_FOLDER, module_dir.parent):
        project = candidate / "pyproject.toml"
        try:
            text = project.read_text(encoding="utf-8")
        except OSError:
            continue
        if re.search(r'^name\s*=\s*"meddenoiselib"', text, flags=re.MULTILINE):
            return candidate
    return None
