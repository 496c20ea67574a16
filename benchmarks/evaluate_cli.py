"""Run the CLI's ``evaluate --noise`` from a benchmark script, on this checkout's library (the user's path)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_evaluate(references: Sequence[Path], noises: Sequence[str], out: Path, *options: str) -> Path:
    """``python -m meddenoiselib evaluate REFERENCES --noise N... OPTIONS -o OUT --overwrite -q``; returns ``out``
    (``summary.md``, ``results.csv``, ``comparison.png``)."""
    command = [sys.executable, "-m", "meddenoiselib", "evaluate", *map(str, references)]
    for noise in noises:
        command += ["--noise", noise]
    command += [*options, "-o", str(out), "--overwrite", "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "MedDenoiseLib")}
    subprocess.run(command, check=True, env=env)
    return out


def write_evaluate_page(
    output: Path,
    title: str,
    command: str,
    description: str,
    references_in: Callable[[Path], Sequence[Path]],
    noises: Sequence[str],
    *options: str,
) -> str:
    """A benchmark page: :func:`run_evaluate` on the references ``references_in(folder)`` makes in a temporary folder,
    its summary table under ``# title`` and a line saying ``command``, the machine, the time taken and
    ``description``; written to ``output`` and returned."""
    from quality import cpu_name

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="evaluate-") as work:
        work = Path(work)
        table = (run_evaluate(references_in(work), noises, work / "out", *options) / "summary.md").read_text()
    text = "\n".join(
        [f"# {title}", "", f"`{command}` on {cpu_name()}, {time.time() - started:.0f} s: {description}", "", table]
    )
    Path(output).write_text(text)
    return text
