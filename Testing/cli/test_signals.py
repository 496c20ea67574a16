"""SIGTERM (what schedulers and the Slicer module's Cancel send) and SIGINT during a write leave nothing behind.

These are the only CLI tests that need a real child process: a signal has to arrive while the output is being
written. The child denoises a volume large enough that writing its compressed output takes a while; the test
waits until the hidden temporary appears, then signals the process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest

from ..conftest import digest_tree, leftover_temporaries

CASES = [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")]


def _hear_sigint() -> None:
    """A test run started in the background of a shell without job control (``cmd &`` in a script, some CI
    runners) ignores SIGINT, and its children inherit that: Python then installs no KeyboardInterrupt handler and
    the child would finish its write as if never interrupted. A user's terminal delivers SIGINT; so does this."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum, code, word", CASES, ids=["SIGTERM", "SIGINT"])
def test_signal_during_write_removes_temporaries(tmp_path, signum, code, word):
    source = tmp_path / "big.nii"  # stored uncompressed: only the output needs to be slow to write
    data = np.random.default_rng(0).normal(size=(160, 192, 192)).astype(np.float32)  # 22 MB, slow to gzip
    nib.save(nib.Nifti1Image(data, np.eye(4)), source)
    before = digest_tree(source)
    out = tmp_path / "out.nii.gz"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "meddenoiselib",
            "denoise",
            str(source),
            str(out),
            "--model",
            "median",
            "--strength",
            "0",
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_hear_sigint,
    )
    deadline = time.monotonic() + 300
    try:
        while not leftover_temporaries(tmp_path):
            if child.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the write was not caught in progress (exit {child.returncode})")
            time.sleep(0.005)
        child.send_signal(signum)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == code, err
    assert err.strip().splitlines()[-1] == word and "Traceback" not in err
    assert leftover_temporaries(tmp_path) == [] and not out.exists()
    assert digest_tree(source) == before
