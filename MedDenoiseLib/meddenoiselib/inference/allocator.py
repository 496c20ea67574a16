"""While a network or the refinement runs over a volume, keep the memory each step frees for the next (glibc).

A 2.5D CT batch of 512x512 slices allocates and frees tensors of hundreds of MB per forward pass (the per-pixel
kernel maps of 4 slices are 4 x 75 x 512 x 512 float32, 315 MB). glibc serves allocations above its mmap threshold
(at most 32 MB) with fresh ``mmap`` calls and unmaps them on free, so every batch page-faults and zero-fills all of
that memory again. Measured on the 2-core AVX2 EPYC with ``kpn-ct-burst3`` (forward passes only, 24 slices):
0.73 s per slice and 2.0 GB peak with 8-slice batches as glibc does it by default; 0.53 s and 1.6 GB with 2-slice
batches (the default now) and the freed memory kept in the heap (docs/memory.md: the whole volume through the CLI).

The collaborative Wiener refinement's loop (``refine_slices``) does the same per slice: it allocates and frees
~100s of MB of groups and spectra each time, and outside such a block paid the page faults on every slice (a 128-slice
512x512 CT: 0.69 s per slice instead of 0.31; docs/memory.md).

Kept for these loops only: set for the whole process, the heap also keeps the holes that reading, scaling
and writing a volume leave, and the peak grows by ~0.9 GB on a 512x512x300 CT. On leaving, glibc's settings are
restored and the heap's free pages are handed back (``malloc_trim``), so a host application (Slicer, a notebook)
gets its memory back after each call. (Once any of these settings was made, glibc no longer raises its mmap
threshold on its own; blocks over the default 128 kB are then always mapped afresh, which costs nothing outside
such loops.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["freed_memory_kept"]

# mallopt parameters and glibc's defaults for them (malloc.h, mallopt(3))
_M_TRIM_THRESHOLD, _DEFAULT_TRIM = -1, 128 * 1024
_M_MMAP_MAX, _DEFAULT_MMAP_MAX = -4, 65536
# the largest trim threshold mallopt takes (an int)
_MAX_TRIM = 2**31 - 1
# the user's own malloc tuning, which this leaves alone
_USER_TUNING = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")

_lock = threading.Lock()
_depth = 0
_applied = False


def _glibc():
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_TUNING):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return mallopt, malloc_trim


@contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """Within the block, glibc serves large allocations from the heap and keeps freed memory there for reuse.

    Process-wide while inside (nested and concurrent blocks share one setting, restored when the last leaves).
    Does nothing off Linux, with a C library without ``mallopt``, or when the user tuned malloc through its
    environment variables.

    Yields:
        True when glibc took the settings.
    """
    global _depth, _applied
    libc = _glibc()
    if libc is None:
        yield False
        return
    mallopt, malloc_trim = libc
    with _lock:
        if _depth == 0:
            # mallopt returns 1 on success; the trim threshold first, so the heap is never trimmed mid-batch
            _applied = bool(mallopt(_M_TRIM_THRESHOLD, _MAX_TRIM)) and bool(mallopt(_M_MMAP_MAX, 0))
        _depth += 1
        applied = _applied
    try:
        yield applied
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM)
                malloc_trim(0)
