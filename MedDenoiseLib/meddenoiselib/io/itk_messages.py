"""ITK and GDCM messages go to the library log, never to the user's terminal.

ITK writes its warnings (e.g. GDCM's "GDCMSeriesFileNames (0x...): No Series were found" for every folder probed
for a DICOM series that holds none) straight to the process's stderr, past Python's ``sys.stderr`` and past
``--quiet``. Around the calls that probe and read through SimpleITK, :func:`itk_messages_logged` installs a
SimpleITK logger that hands each message to ``logging`` at DEBUG level (``--debug`` shows them); failures still
arrive as the ``RuntimeError`` SimpleITK raises, which the callers turn into the library's errors.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

__all__ = ["itk_messages_logged"]

logger = logging.getLogger(__name__)

# ITK's output window is process-global: one swap at a time; re-entrant so that nested helpers may use it too
_LOCK = threading.RLock()


def _make_logger():
    import SimpleITK as sitk

    class _ToLogging(sitk.LoggerBase):
        """SimpleITK's ``itk::OutputWindow`` adaptor: every kind of message to ``logger.debug``."""

        def _log(self, kind: str, text: str) -> None:
            logger.debug("ITK %s: %s", kind, " ".join(str(text).split()))

        def DisplayText(self, text):  # noqa: N802 - SimpleITK's method names
            self._log("text", text)

        def DisplayErrorText(self, text):  # noqa: N802
            self._log("error", text)

        def DisplayWarningText(self, text):  # noqa: N802
            self._log("warning", text)

        def DisplayGenericOutputText(self, text):  # noqa: N802
            self._log("output", text)

        def DisplayDebugText(self, text):  # noqa: N802
            self._log("debug", text)

    return _ToLogging()


@contextlib.contextmanager
def itk_messages_logged() -> Iterator[None]:
    """Route ITK/GDCM messages to this module's logger (DEBUG) for the duration of the block.

    SimpleITK < 2.4 has no logger interface; there the messages are switched off instead
    (``ProcessObject.SetGlobalWarningDisplay(False)``). Either way the previous state is restored on exit.
    """
    import SimpleITK as sitk

    with _LOCK:
        if not hasattr(sitk, "LoggerBase"):
            previous_display = sitk.ProcessObject.GetGlobalWarningDisplay()
            sitk.ProcessObject.SetGlobalWarningDisplay(False)
            try:
                yield
            finally:
                sitk.ProcessObject.SetGlobalWarningDisplay(previous_display)
            return
        adaptor = _make_logger()
        previous = adaptor.SetAsGlobalITKLogger()
        try:
            yield
        finally:
            previous.SetAsGlobalITKLogger()
