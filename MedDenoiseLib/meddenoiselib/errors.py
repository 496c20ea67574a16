"""The library's single exception type for bad input and failed I/O."""

from __future__ import annotations

__all__ = ["MedDenoiseError"]


class MedDenoiseError(Exception):
    """Raised for bad input (missing or unreadable files, unsupported data) and failed I/O.

    The message always names the file (or argument) and the problem, in one line, so that front ends can print
    it as is: the CLI prints ``error: <message>`` and exits with status 1, the Slicer module shows it in a dialog.
    """
