"""Vendors' private DICOM elements the reader needs: an integer found by its block's creator, whatever block it lies in.

Private elements live in blocks that a creator string reserves (``(0019,0010) SIEMENS MR HEADER`` makes ``(0019,10xx)``
Siemens' elements); the block can move between files, so elements are looked up by creator, not by fixed tag. In an
implicit-VR file pydicom may not know the element's VR and gives its raw bytes.
"""

from __future__ import annotations

__all__ = ["GE_COMPLEX_COMPONENT_KEY", "private_integer", "private_numbers", "private_text"]

#: GE's private "image type" (0043,xx2F of the GEMS_PARM_01 block: 0 magnitude, 1 phase, 2 real, 3 imaginary), kept
#: in the metadata under its tag's key although private elements are otherwise left out
GE_COMPLEX_COMPONENT_KEY = "0043|102f"


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


def private_numbers(dataset, group: int, creator: str, element: int) -> tuple[float, ...] | None:
    """The decimal values of private element ``element`` of ``creator``'s block in ``group`` (an FD, FL, DS or IS
    element: Siemens' b-value and gradient direction); None where the block, the element or readable numbers are
    missing. Raw bytes (an implicit-VR value of unknown VR) are read as little-endian doubles (FD, the VR of the
    vectors vendors store) when their length is a multiple of 8, else as text."""
    try:
        value = dataset.private_block(group, creator)[element].value
    except (KeyError, ValueError):
        return None
    if isinstance(value, bytes):
        if value and len(value) % 8 == 0:
            import struct

            return struct.unpack(f"<{len(value) // 8}d", value)
        value = value.decode("ascii", errors="replace").strip("\0 ").split("\\")
    values = [value] if isinstance(value, (int, float, str)) else list(value)
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None


def private_text(dataset, group: int, creator: str, element: int) -> str:
    """The value of private element ``element`` of ``creator``'s block in ``group`` as text, its padding
    stripped; "" where the block or the element is missing."""
    try:
        value = dataset.private_block(group, creator)[element].value
    except (KeyError, ValueError):
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    return str(value).strip("\0 ")
