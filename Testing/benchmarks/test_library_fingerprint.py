"""Benchmarks reuse CLI outputs of a ``--work`` folder only when the library that wrote them is the library now."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import library_fingerprint as lf  # noqa: E402


def test_outputs_are_reused_only_from_the_same_library(tmp_path, monkeypatch):
    out = tmp_path / "out" / "auto"
    assert not lf.made_by_this_library(out)  # nothing there
    out.mkdir(parents=True)
    assert not lf.made_by_this_library(out)  # left by a run before fingerprints: not trusted
    lf.mark_made_by_this_library(out)
    assert lf.made_by_this_library(out)
    # another version of the code or weights (a changed model, refinement, default): stale
    monkeypatch.setattr(lf, "library_fingerprint", lambda: "0123456789abcdef")
    assert not lf.made_by_this_library(out)


def test_the_fingerprint_covers_code_and_shipped_weights():
    first = lf.library_fingerprint()
    assert len(first) == 16 and first == lf.library_fingerprint()
    assert any(p.suffix == ".safetensors" for p in lf.LIBRARY.rglob("*"))  # the weights are among what it hashes
