"""What installing meddenoiselib into Slicer's Python would change, and the pip command that never downgrades.

Slicer's Python is shared by every extension. Before installing, :func:`plan_library_install` compares the
library's requirements (read from the bundled ``pyproject.toml``) with what is installed:

- a package that is installed at a version the library does not allow *because it is newer* (e.g. MONAI 1.7 from
  another extension, where the library asks ``monai<1.7``) would be downgraded: the plan is blocked and says so;
- a package installed at an older version is listed as an upgrade, flagged when Slicer has it imported already
  (a restart is needed before the new version is used);
- every installed distribution goes into a pip constraints file as ``name>=installed`` (torch as ``==``), so
  neither the library's own requirements nor their dependencies can downgrade anything or replace torch in
  place (torch upgrades go through the PyTorch Utils module).

Only the standard library and ``packaging`` (vendored by pip when not installed on its own) are used.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - Slicer's Python always has pip, which vendors packaging
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.version import InvalidVersion, Version

from .dependencies import packaged_library_version

__all__ = [
    "InstallPlan",
    "installed_distributions",
    "library_requirements",
    "pip_install_command",
    "plan_library_install",
]

#: pinned exactly: replacing an imported torch in place fails on Windows or leaves the old one loaded.
PINNED_EXACTLY = ("torch",)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Change:
    """One requirement of the library that the installed version does not satisfy."""

    name: str
    installed: str
    required: str
    imported: bool = False

    def describe(self) -> str:
        return f"{self.name} {self.installed} -> {self.name}{self.required}"


@dataclass(frozen=True)
class InstallPlan:
    """What ``pip install <source>`` with :attr:`constraints` would do to Slicer's Python.

    Attributes:
        source: the folder holding the library's ``pyproject.toml``.
        version: the library version in that folder.
        requirements: the library's requirement strings.
        new: requirements not installed at all.
        upgrades: installed too old; pip upgrades them.
        downgrades: installed newer than allowed; installing would downgrade them, so the plan is blocked.
        constraints: the lines of the pip constraints file.
    """

    source: Path
    version: str | None
    requirements: tuple[str, ...]
    new: tuple[str, ...] = ()
    upgrades: tuple[Change, ...] = ()
    downgrades: tuple[Change, ...] = ()
    constraints: tuple[str, ...] = field(default=(), repr=False)

    @property
    def blocked(self) -> str | None:
        """Why the installation must not run (it would downgrade packages other extensions use), else None."""
        if not self.downgrades:
            return None
        items = "; ".join(
            f"{c.name} {c.installed} is installed, meddenoiselib {self.version or ''} needs {c.name}{c.required}"
            for c in self.downgrades
        )
        return (
            f"Installing meddenoiselib would downgrade packages in Slicer's Python ({items}). Nothing was "
            "installed. Another extension probably installed the newer version; use a Slicer without it, or a "
            "MedDenoise release that supports it."
        )

    @property
    def restart_needed(self) -> tuple[str, ...]:
        """Upgraded packages that Slicer has already imported (the new version is used after a restart)."""
        return tuple(c.name for c in self.upgrades if c.imported)

    def summary(self) -> str:
        """What will change, for the confirmation dialog and the log."""
        lines = [f"Install meddenoiselib {self.version or ''} from {self.source}".rstrip()]
        if self.new:
            lines.append("New packages: " + ", ".join(self.new))
        if self.upgrades:
            lines.append("Upgrades: " + ", ".join(c.describe() for c in self.upgrades))
        if self.restart_needed:
            lines.append("Already in use by Slicer (restart Slicer afterwards): " + ", ".join(self.restart_needed))
        lines.append("Nothing already installed is downgraded, and torch is not changed.")
        return "\n".join(lines)


def library_requirements(source: str | Path) -> tuple[str, ...]:
    """The ``dependencies`` of ``<source>/pyproject.toml``."""
    text = (Path(source) / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib

        return tuple(tomllib.loads(text)["project"].get("dependencies", ()))
    except ImportError:  # Python 3.10: read the array with a regular expression
        match = re.search(r"^dependencies\s*=\s*\[(.*?)^\]", text, flags=re.MULTILINE | re.DOTALL)
        return tuple(re.findall(r'"([^"]+)"', match.group(1))) if match else ()


def installed_distributions() -> dict[str, str]:
    """``{canonical name: version}`` of every distribution installed in this Python."""
    found = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata.get("Name") if distribution.metadata else None
        if name:
            found.setdefault(_canonical(name), distribution.version)
    return found


def _release(version: str) -> Version | None:
    try:
        return Version(Version(version).base_version)
    except InvalidVersion:
        return None


def _is_downgrade(requirement: Requirement, installed: Version) -> bool:
    """Not satisfied, yet every lower bound is: the installed version is too new."""
    lower = [s for s in requirement.specifier if s.operator in (">=", ">", "~=")]
    pins = [s for s in requirement.specifier if s.operator in ("==", "===")]
    if pins:
        return any(installed > _release(s.version.rstrip(".*")) for s in pins if _release(s.version.rstrip(".*")))
    return all(s.contains(installed, prereleases=True) for s in lower)


def plan_library_install(
    source: str | Path, installed: Mapping[str, str] | None = None, imported: Iterable[str] | None = None
) -> InstallPlan:
    """Compare the library's requirements with the installed distributions.

    Args:
        source: folder with the library's ``pyproject.toml`` (see ``find_library_source``).
        installed: ``{name: version}``; defaults to this Python's distributions.
        imported: top-level module names already imported; defaults to ``sys.modules``.
    """
    installed = {_canonical(k): v for k, v in (installed_distributions() if installed is None else installed).items()}
    imported = {_canonical(n.split(".")[0]) for n in (sys.modules if imported is None else imported)}
    requirements = library_requirements(source)
    new, upgrades, downgrades = [], [], []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = _canonical(requirement.name)
        version = installed.get(name)
        if version is None:
            new.append(text)
            continue
        release = _release(version)
        if release is None or requirement.specifier.contains(release, prereleases=True):
            continue
        change = Change(requirement.name, version, str(requirement.specifier), imported=name in imported)
        (downgrades if _is_downgrade(requirement, release) else upgrades).append(change)

    constraints = []
    for name, version in sorted(installed.items()):
        if name == "meddenoiselib" or _release(version) is None:
            continue
        if name in PINNED_EXACTLY:
            constraints.append(f"{name}=={version}")
        else:
            constraints.append(f"{name}>={_release(version)}")
    return InstallPlan(
        Path(source),
        packaged_library_version(source),
        requirements,
        tuple(new),
        tuple(upgrades),
        tuple(downgrades),
        tuple(constraints),
    )


def pip_install_command(python: str, plan: InstallPlan, constraints_file: str | Path) -> list[str]:
    """``python -m pip install`` of the library folder under the plan's constraints (written to ``constraints_file``
    by the caller). ``--upgrade`` replaces an older meddenoiselib; dependencies change only where needed."""
    return [
        str(python),
        "-m",
        "pip",
        "install",
        "--upgrade",
        "--upgrade-strategy",
        "only-if-needed",
        "--constraint",
        str(constraints_file),
        str(plan.source),
    ]
