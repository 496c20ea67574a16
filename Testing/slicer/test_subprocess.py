"""The separate-process path run for real: the task starts ``python -m meddenoiselib denoise`` on a temporary NRRD.

Real MRML (slicer-core), the real CLI in a real child process (``sys.executable`` stands in for PythonSlicer),
real progress lines, real process-tree kill checked with psutil. Nothing is faked.
"""

from __future__ import annotations

import os
import stat
import sys
import time

import numpy as np
import psutil
import pytest
import torch

import slicer
from meddenoiselib.demo import sample_path
from meddenoiselib.io import read_volume
from MedDenoiseModuleLib import DenoiseSettings, DenoiseTask, SubprocessRunner, TaskState, parse_progress_line

from .conftest import add_volume_node, node_matrix, oblique_ijk_to_ras

TIMEOUT = 120  # seconds; the CLI needs ~5-10 s on a busy 2-core machine


def _psnr(image: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    error = np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float(10 * np.log10(data_range**2 / error))


def test_parse_progress_line():
    assert parse_progress_line("PROGRESS 0.5000 denoising") == (0.5, "denoising")
    assert parse_progress_line("PROGRESS 1.0000 denoising channel 1/2") == (1.0, "denoising channel 1/2")
    assert parse_progress_line("PROGRESS 1.5") == (1.0, "")
    assert parse_progress_line("PROGRESS nan x") is None
    assert parse_progress_line("Reading /tmp/x.nrrd") is None
    assert parse_progress_line("error: PROGRESS") is None


def test_child_process_denoises_real_mr_and_keeps_geometry(scene, temp_root):
    """Clean = the bundled head MR; noisy = clean + seeded Gaussian noise; PSNR must rise, geometry must not move."""
    clean_volume = read_volume(sample_path("mr_head"))
    clean = clean_volume.array.astype(np.float32)
    data_range = float(clean.max() - clean.min())
    noisy = clean + np.random.default_rng(42).normal(0.0, 0.08 * data_range, clean.shape).astype(np.float32)
    # the MR's own spacing on a deliberately oblique grid
    matrix = oblique_ijk_to_ras(spacing=clean_volume.spacing, origin=(-30.0, 12.5, 40.0), angles_deg=(12, -7, 33))
    node = add_volume_node(scene, noisy, matrix, name="MR noisy")

    progress, states = [], []
    task = DenoiseTask(
        node,
        DenoiseSettings(model="default", device="cpu"),
        temp_root=temp_root,
        on_progress=lambda f, m: progress.append((f, m)),
        on_state_changed=lambda t: states.append(t.state),
    )
    task.start()
    assert task.state is TaskState.RUNNING, task.error
    assert task.command[1:4] == ["-m", "meddenoiselib", "denoise"] and "--progress-format" in task.command
    assert task.wait(timeout=TIMEOUT) is TaskState.DONE, task.error
    assert states == [TaskState.RUNNING, TaskState.DONE]

    child_fractions = [f for f, m in progress if m == "denoising"]
    assert child_fractions and child_fractions[-1] == 1.0  # the CLI's PROGRESS lines drove the progress
    assert child_fractions == sorted(child_fractions)

    output = task.output_node
    assert output.GetName() == "MR noisy denoised"
    np.testing.assert_allclose(node_matrix(output), matrix, rtol=0, atol=1e-9)
    denoised = slicer.util.arrayFromVolume(output)
    assert denoised.shape == noisy.shape and denoised.dtype == noisy.dtype
    psnr_noisy, psnr_denoised = _psnr(noisy, clean, data_range), _psnr(denoised, clean, data_range)
    assert psnr_denoised > psnr_noisy + 1.0, (psnr_noisy, psnr_denoised)
    assert list(temp_root.iterdir()) == [], "the temporary folder must be removed"


def _launcher(tmp_path) -> str:
    """A stand-in for the PythonSlicer launcher: a shell that runs the real Python as its *child* (no exec)."""
    script = tmp_path / "PythonLauncher"
    script.write_text(f'#!/bin/sh\n"{sys.executable}" "$@"\nexit $?\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.skipif(os.name == "nt", reason="uses a POSIX shell script as the launcher")
def test_cancel_kills_the_process_tree_and_leaves_nothing_behind(scene, temp_root, tmp_path):
    # large enough that non-local means (per slice) is still running when the first progress line arrives
    rng = np.random.default_rng(0)
    noisy = rng.normal(500.0, 50.0, size=(160, 128, 128)).astype(np.float32)
    node = add_volume_node(scene, noisy, oblique_ijk_to_ras(), name="big")
    nodes_before = scene.GetNumberOfNodes()
    runners = []

    def runner_factory():
        runners.append(SubprocessRunner())
        return runners[-1]

    task = DenoiseTask(
        node,
        DenoiseSettings(model="nlm", noise_level=20.0, device="cpu"),
        python_executable=_launcher(tmp_path),
        runner_factory=runner_factory,
        temp_root=temp_root,
    )
    task.start()
    assert task.state is TaskState.RUNNING, task.error
    deadline = time.monotonic() + TIMEOUT
    while task.poll() is TaskState.RUNNING and not (0 < task.progress < 1) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert task.state is TaskState.RUNNING and 0 < task.progress < 1, (task.state, task.progress, list(task.log))

    launcher = psutil.Process(runners[0].pid)
    tree = [launcher] + launcher.children(recursive=True)
    assert len(tree) >= 2, "the launcher should have started Python as a child"
    assert any("meddenoiselib" in " ".join(p.cmdline()) for p in tree[1:])

    began = time.monotonic()
    task.cancel()
    assert time.monotonic() - began < 1.0, "Cancel must return within a second"  # the GUI never waits for a kill
    assert task.state is TaskState.CANCELLED

    def gone(process) -> bool:
        if not psutil.pid_exists(process.pid):
            return True
        try:  # an orphan may linger as a zombie until init reaps it; it runs nothing any more
            return process.status() == psutil.STATUS_ZOMBIE or not process.is_running()
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 10
    while not all(gone(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(p) for p in tree), [p.pid for p in tree if not gone(p)]
    assert list(temp_root.iterdir()) == [], "the temporary folder must be removed"
    assert scene.GetNumberOfNodes() == nodes_before and task.output_node is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_forcing_cuda_without_a_gpu_fails_with_one_clear_message(scene, temp_root):
    node = add_volume_node(scene, np.zeros((2, 16, 16), np.int16), oblique_ijk_to_ras(), name="ct")
    nodes_before = scene.GetNumberOfNodes()
    task = DenoiseTask(node, DenoiseSettings(model="median", device="cuda"), temp_root=temp_root)
    assert task.start().wait(timeout=TIMEOUT) is TaskState.FAILED
    assert task.error == "device 'cuda' was requested but no CUDA GPU is available; use --device cpu or auto"
    assert scene.GetNumberOfNodes() == nodes_before and task.output_node is None
    assert list(temp_root.iterdir()) == []
