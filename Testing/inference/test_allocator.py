"""The inference loop keeps freed memory for the next batch, and gives it back afterwards."""

import resource
import sys

import pytest
import torch

from meddenoiselib.inference.allocator import freed_memory_kept

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")

MB = 2**20


def _faults_of_a_fresh_tensor(megabytes: int) -> int:
    """Minor page faults while a tensor of ``megabytes`` is allocated, written and freed."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tensor = torch.empty(megabytes * MB // 4)
    tensor.fill_(1.0)
    del tensor
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / MB


def test_freed_batches_are_reused_inside_and_given_back_on_leaving(monkeypatch):
    for name in ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    pages = 64 * MB // resource.getpagesize()
    with freed_memory_kept() as applied:
        assert applied
        # the heap grows once or twice (small objects may settle above the first block) ...
        for _ in range(3):
            _faults_of_a_fresh_tensor(64)
        # ... then further 64 MB batches reuse it, mostly without page faults or zero-filling (glibc's default
        # faults every page of every batch: 8 x pages here; a busy process may still place one block anew)
        assert sum(_faults_of_a_fresh_tensor(64) for _ in range(8)) < 3 * pages
        with freed_memory_kept():  # nested (a caller's loop inside another's, threads): still kept
            assert sum(_faults_of_a_fresh_tensor(64) for _ in range(8)) < 3 * pages
        kept = _resident_mb()
    # on leaving, the freed block goes back to the system: a host application (Slicer) gets its memory back
    assert _resident_mb() < kept - 48


def test_users_own_malloc_tuning_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "0")
    with freed_memory_kept() as applied:
        assert not applied
