"""The inference loop keeps freed memory for the next batch, and gives it back afterwards.

The page-fault counts are measured in a fresh interpreter: how many 64 MB batches glibc places anew depends on how
fragmented the heap already is, and a pytest process that has decoded images before (Testing/io) places several of
them afresh (5 of 8 measured) where a fresh process places none, which says nothing about the loop's setting.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from meddenoiselib.inference.allocator import freed_memory_kept

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")

_MEASURE = textwrap.dedent(
    """
    import resource
    import torch
    from meddenoiselib.inference.allocator import freed_memory_kept

    MB = 2**20
    PAGES = 64 * MB // resource.getpagesize()

    def faults_of_a_fresh_tensor(megabytes):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        tensor = torch.empty(megabytes * MB // 4)
        tensor.fill_(1.0)
        del tensor
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    def resident_mb():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / MB

    outside = sum(faults_of_a_fresh_tensor(64) for _ in range(4))
    with freed_memory_kept() as applied:
        for _ in range(3):
            faults_of_a_fresh_tensor(64)
        inside = sum(faults_of_a_fresh_tensor(64) for _ in range(8))
        with freed_memory_kept():
            nested = sum(faults_of_a_fresh_tensor(64) for _ in range(8))
        kept = resident_mb()
    print(applied, outside / PAGES, inside / PAGES, nested / PAGES, kept - resident_mb())
    """
)


def test_freed_batches_are_reused_inside_and_given_back_on_leaving():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")
    }
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run([sys.executable, "-c", _MEASURE], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    applied, outside, inside, nested, given_back_mb = run.stdout.split()
    assert applied == "True"
    # glibc's default maps every 64 MB batch afresh and faults all its pages (4 batches: ~4 x the pages) ...
    assert float(outside) > 3.5
    # ... inside the block the heap keeps the freed batch: 8 more batches fault far less than one batch's pages each
    # (a busy heap may still place one block anew), also in a nested block (a caller's loop inside another's)
    assert float(inside) < 3 and float(nested) < 3
    # on leaving, the freed block goes back to the system: a host application (Slicer) gets its memory back
    assert float(given_back_mb) > 48


def test_users_own_malloc_tuning_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "0")
    with freed_memory_kept() as applied:
        assert not applied
