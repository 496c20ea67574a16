"""The library's error hierarchy: every public function raises one of these, never a bare ValueError/TypeError.

``MedDenoiseError`` is the base. Its subclasses say whose fault a failure is, so front ends can react:

- :class:`InputError` — an input cannot be used (missing, unreadable, corrupt, an object that is not an image,
  a size that does not fit in memory, geometry that is not one volume).
- :class:`OutputError` — an output cannot be written where asked (folder missing or read-only, name taken,
  unknown extension, a format that cannot hold this image, a path that is an input or another output).
- :class:`OptionError` — an argument is out of range or not finite. It is also a ``ValueError``, so code
  written against the usual Python contract keeps working.

Messages are one line, name the file or the argument, and use the library's words (no command-line flags).
``parameter`` names the argument that would change the outcome (e.g. ``"overwrite"``, ``"series_uid"``), so a
front end can add its own hint ("pass --overwrite to replace it").
"""

from __future__ import annotations

__all__ = ["InputError", "MedDenoiseError", "OptionError", "OutputError"]


class MedDenoiseError(Exception):
    """Base of the library's errors: bad input, unwritable output, bad argument, failed I/O.

    The message always names the file (or argument) and the problem, in one line, so that front ends can print
    it as is: the CLI prints ``error: <message>``, the Slicer module shows it in a dialog.

    Args:
        message: the one-line description.
        parameter: the library argument that would change the outcome, if any (e.g. ``"overwrite"``).
            Defaults to None.
    """

    def __init__(self, message: str = "", *, parameter: str | None = None) -> None:
        # One line, always: a message built from a third-party exception may carry newlines.
        message = " ".join(str(message).split("\n")).strip()
        super().__init__(message)
        self.parameter = parameter


class InputError(MedDenoiseError):
    """An input file or folder cannot be read as an image volume (the message names it and says why)."""


class OutputError(MedDenoiseError):
    """An output cannot be written where asked; raised before any computation whenever it can be foreseen."""


class OptionError(MedDenoiseError, ValueError):
    """An argument is invalid: out of range, not finite, unknown name, or inconsistent with another argument."""
