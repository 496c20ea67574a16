"""Progress reporting shared by the library, the CLI and the Slicer module."""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["ProgressCallback", "Progress", "line_progress_printer"]

#: ``callback(fraction_done in [0, 1], message)``
ProgressCallback = Callable[[float, str], None]


class Progress:
    """Counts work units and forwards them to a tqdm bar and/or a callback.

    Args:
        total: number of units (slices, windows, files).
        description: what is being done ("denoising").
        show_bar: draw a tqdm bar on stderr. Defaults to False.
        callback: called with ``(fraction, description)`` after every update. Defaults to None.
    """

    def __init__(
        self, total: int, description: str, show_bar: bool = False, callback: ProgressCallback | None = None
    ) -> None:
        self.total = max(int(total), 1)
        self.done = 0
        self.description = description
        self.callback = callback
        self._bar = None
        if show_bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=description, unit="step", leave=False, file=sys.stderr)

    def update(self, units: int = 1) -> None:
        """Record ``units`` more units of work."""
        self.done = min(self.done + units, self.total)
        if self._bar is not None:
            self._bar.update(units)
        if self.callback is not None:
            self.callback(self.done / self.total, self.description)

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def line_progress_printer(stream=None) -> ProgressCallback:
    """A callback printing machine-readable lines ``PROGRESS <fraction> <message>`` (flushed at once).

    The Slicer module parses these lines from the CLI's output to drive its progress bar.
    """

    def _print(fraction: float, message: str) -> None:
        out = stream or sys.stdout
        out.write(f"PROGRESS {fraction:.4f} {message}\n")
        out.flush()

    return _print
