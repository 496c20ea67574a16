"""Bounded reads: the size a header claims is checked against the file and a memory budget before allocation.

A corrupt or hostile header can claim any size (a 64 KB ``.nii.gz`` claiming 8 GB). Every reader calls
:func:`check_claimed_size` with what the header says before it decodes a single voxel, so the claim is refused
with one line instead of the process allocating it.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError

__all__ = ["DEFLATE_MAX_RATIO", "Encoding", "check_claimed_size", "memory_budget"]

#: zlib/gzip cannot expand more than about 1032:1 (one 258-byte match per 2 bits); a margin on top.
DEFLATE_MAX_RATIO = 1100

#: environment variable that sets the read budget in bytes (for batch hosts that share memory between jobs).
BUDGET_VARIABLE = "MEDDENOISE_MAX_READ_BYTES"


class Encoding:
    """How pixel bytes are stored after the header, which bounds what a file of a given size can hold."""

    RAW = "raw"  #: uncompressed: the file must hold every byte
    DEFLATE = "deflate"  #: gzip/zlib: at most DEFLATE_MAX_RATIO times the file size
    OTHER = "other"  #: codecs without a useful bound (JPEG 2000, bzip2, LZW...): memory budget only


def memory_budget() -> int:
    """The largest decoded image, in bytes, a read may allocate.

    Half of the memory available now (decoding, the reorientation copy and the float working copies of
    denoising need several times the image), or ``MEDDENOISE_MAX_READ_BYTES`` when set.
    """
    configured = os.environ.get(BUDGET_VARIABLE, "").strip()
    if configured:
        try:
            return max(int(float(configured)), 0)
        except ValueError:
            pass  # an unusable setting falls back to the measured budget rather than failing every read
    import psutil

    return int(psutil.virtual_memory().available // 2)


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{nbytes} bytes"


def check_claimed_size(
    label: str,
    shape: tuple[int, ...],
    dtype: np.dtype | str,
    data_bytes: int | None = None,
    encoding: str = Encoding.OTHER,
    stored_bytes: int | None = None,
    max_bytes: int | None = None,
) -> int:
    """Refuse a header whose claimed image size the file cannot hold or memory cannot afford.

    Args:
        label: the file named in messages.
        shape: the claimed array shape (all axes, components included).
        dtype: the dtype the decoded array will have (decides the memory needed).
        data_bytes: bytes available for pixel data in the file (file size minus header); None skips the file check.
        encoding: one of :class:`Encoding`. Defaults to ``"other"``.
        stored_bytes: bytes of pixel data the file must hold, when it differs from the decoded size (e.g. uint16
            stored, int32 decoded; chroma-subsampled colour). Defaults to the decoded size.
        max_bytes: the memory budget in bytes. Defaults to :func:`memory_budget`.

    Returns:
        The decoded size in bytes.

    Raises:
        InputError: a negative axis, or a claim larger than the file can hold or than the budget.
    """
    if any(int(n) < 0 for n in shape):
        raise InputError(f"{label}: the header claims a negative image size {tuple(shape)}")
    count = int(np.prod([int(n) for n in shape], dtype=object))
    decoded = count * np.dtype(dtype).itemsize
    stored = decoded if stored_bytes is None else int(stored_bytes)
    if data_bytes is not None:
        if encoding == Encoding.RAW and stored > data_bytes:
            raise InputError(
                f"{label}: the header claims {_size(stored)} of pixel data but the file holds {_size(data_bytes)} "
                "(truncated file or corrupt header)"
            )
        if encoding == Encoding.DEFLATE and stored > max(data_bytes, 1) * DEFLATE_MAX_RATIO:
            raise InputError(
                f"{label}: the header claims {_size(stored)} of pixel data, more than {_size(data_bytes)} of "
                "compressed data can hold (corrupt header)"
            )
    budget = memory_budget() if max_bytes is None else int(max_bytes)
    if decoded > budget:
        raise InputError(
            f"{label}: the image would need {_size(decoded)} of memory, more than the {_size(budget)} available "
            f"for reading (set {BUDGET_VARIABLE} to change the limit)"
        )
    return decoded
