"""Package hygiene: importing is silent and side-effect free; every public module declares ``__all__``."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_importing_every_module_prints_nothing_and_keeps_environment():
    """In a fresh interpreter: importing every module and building a network writes nothing (Python or C level)
    and leaves os.environ alone."""
    code = textwrap.dedent(
        """
        import contextlib, io, os, pkgutil, importlib, json
        before = dict(os.environ)
        buffer = io.StringIO()
        names = []
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            import meddenoiselib
            for info in pkgutil.walk_packages(meddenoiselib.__path__, "meddenoiselib."):
                if ".bundle." in info.name or info.name.endswith("__main__"):
                    continue
                module = importlib.import_module(info.name)
                names.append((info.name, hasattr(module, "__all__")))
            meddenoiselib.networks.create_network("dncnn-small")  # building a network is silent too
        print(json.dumps({"output": buffer.getvalue(), "env_changed": dict(os.environ) != before, "modules": names}))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["output"] == ""
    assert not report["env_changed"]
    missing = [name for name, has_all in report["modules"] if not has_all]
    assert missing == []
    assert len(report["modules"]) > 30


def test_weights_load_without_pickle():
    """torch.load appears only with weights_only=True; weights ship as safetensors."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "MedDenoiseLib" / "meddenoiselib"
    for path in root.rglob("*.py"):
        text = path.read_text()
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}: {line.strip()}"
