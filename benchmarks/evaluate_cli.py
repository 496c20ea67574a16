"""Run the CLI's ``evaluate --noise`` from a benchmark script, on this checkout's library (the user's path)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
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
