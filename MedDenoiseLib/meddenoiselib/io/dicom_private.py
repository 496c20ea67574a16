"""Vendors' private DICOM elements the reader needs: an integer found by its block's creator, whatever block it lies in.

Private elements live in blocks that a creator string reserves (``(0019,0010) SIEMENS MR HEADER`` makes ``(0019,10xx)``
Siemens' elements); the block can move between files, so elements are looked up by creator, not by fixed tag. In an
implicit-VR file pydicom may not know the element's VR and gives its raw bytes.
"""

from __future__ import annotations

__all__ = ["private_integer"]


def private_integer(dataset, group: int, creator: str, element: int, signed: bool = False) -> int | None:
    """The (first) integer value of private element ``element`` of ``creator``'s block in ``group`` of a pydicom
    ``dataset``; None where the block, the element or a readable integer is missing. ``signed``: raw bytes (an
    implicit-VR value of unknown VR) are a signed short (SS) rather than an unsigned one (US)."""
    try:
        value = dataset.private_block(group, creator)[element].value
    except (KeyError, ValueError):
        return None
    if isinstance(value, bytes):
        return int.from_bytes(value[:2], "little", signed=signed) if len(value) >= 2 else None
    if not isinstance(value, (int, str)):  # a multi-valued element: its first value
        value = next(iter(value), None)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
