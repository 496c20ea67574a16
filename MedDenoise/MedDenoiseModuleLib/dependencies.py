"""Can this Slicer run MedDenoise, which Python packages are missing or outdated, and where the library sources are.

Nothing is installed here (see :mod:`.install` for the plan and the pip command). Every check works without
importing torch, MONAI or meddenoiselib, so it can run before they are installed and on a Slicer whose Python is
too old for them.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

__all__ = [
    "LIBRARY_SOURCE_FOLDER",
    "MINIMUM_PYTHON",
    "MINIMUM_SLICER",
    "TORCH_REQUIREMENT",
    "find_library_source",
    "installed_version",
    "library_update_needed",
    "missing_modules",
    "packaged_library_version",
    "runtime_problem",
    "torch_too_old",
    "version_tuple",
]

#: meddenoiselib, MONAI 1.6 and pydicom 3 need Python 3.10; Slicer ships 3.9 up to 5.8 and 3.12 from 5.10.
MINIMUM_PYTHON = (3, 10)
MINIMUM_SLICER = "5.10"

#: the torch requirement handed to ``PyTorchUtilsLogic.installTorch`` (MONAI 1.6 needs torch >= 2.8).
TORCH_REQUIREMENT = ">=2.8"
_TORCH_MINIMUM = (2, 8)

#: folder beside the module file where the extension's CMake installs the library sources (pyproject.toml,
#: README.md and MedDenoiseLib/), so that ``pip install <folder>`` installs meddenoiselib and its requirements.
LIBRARY_SOURCE_FOLDER = "MedDenoiseLibrarySource"

#: the modules the denoising needs, in installation order.
REQUIRED_MODULES = ("torch", "monai", "meddenoiselib")


def runtime_problem(python_version: tuple[int, ...] | None = None, slicer_version: str | None = None) -> str | None:
    """A plain sentence when this Slicer cannot run MedDenoise at all, else None.

    Checked before anything is installed: on Slicer 5.6/5.8 (Python 3.9) installing would fetch torch and then
    fail inside pip, so the panel says which Slicer is needed instead.

    Args:
        python_version: ``sys.version_info`` of Slicer's Python. Defaults to the running interpreter's.
        slicer_version: Slicer's version text (``slicer.app.applicationVersion``), named in the message.
    """
    version = tuple(sys.version_info[:3] if python_version is None else python_version)
    if version[:2] >= MINIMUM_PYTHON:
        return None
    python = ".".join(str(part) for part in version[:3])
    this_slicer = f"This Slicer ({slicer_version}) has" if slicer_version else "This Slicer has"
    return (
        f"MedDenoise needs 3D Slicer {MINIMUM_SLICER} or later. {this_slicer} Python {python}; MedDenoise, MONAI 1.6 "
        f"and pydicom 3 need Python {MINIMUM_PYTHON[0]}.{MINIMUM_PYTHON[1]} or later. Install Slicer "
        f"{MINIMUM_SLICER} or later from download.slicer.org. Nothing was installed."
    )


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


def version_tuple(text: str) -> tuple[int, ...]:
    """The leading release numbers of a version string: ``"2.8.0+cu128"`` -> ``(2, 8, 0)``."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", text or "")
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (from its metadata; nothing is imported), or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_too_old() -> bool:
    """Whether an installed torch is older than :data:`TORCH_REQUIREMENT` (read from its metadata, not imported)."""
    version = installed_version("torch")
    return version is not None and version_tuple(version)[:2] < _TORCH_MINIMUM


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


def packaged_library_version(source: str | Path) -> str | None:
    """The ``version`` in the ``[project]`` table of ``<source>/pyproject.toml``, or None."""
    try:
        text = (Path(source) / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, flags=re.MULTILINE | re.DOTALL)
    match = re.search(r'^version\s*=\s*"([^"]+)"', project.group(1) if project else "", flags=re.MULTILINE)
    return match.group(1) if match else None


#: ``denoise`` options (with a valid value) the module passes; an installed library that refuses one is outdated
#: whatever its version number.
REQUIRED_CLI_OPTIONS = (("--mask", "mask.nrrd"), ("--report", "report.json"), ("--progress-format", "lines"))


def library_update_needed(
    source: str | Path | None,
    required_options: tuple[tuple[str, str], ...] = REQUIRED_CLI_OPTIONS,
) -> tuple[str, str] | None:
    """``(installed, packaged)`` when the installed meddenoiselib is older than the bundled sources.

    After an extension update the module brings newer library sources; an older installed library would keep
    running. Older means a lower version number, or a ``denoise`` command without an option the module passes
    (a development install of the same version). None when not installed ("missing", not "outdated"), up to
    date, or no sources are known.
    """
    if source is None:
        return None
    installed, packaged = installed_version("meddenoiselib"), packaged_library_version(source)
    if installed is None or packaged is None:
        return None
    if version_tuple(installed) < version_tuple(packaged):
        return installed, packaged
    from .settings import cli_supports

    lacking = [option for option, value in required_options if not cli_supports(option, value)]
    if lacking:
        return f"{installed} (without {', '.join(lacking)})", packaged
    return None
