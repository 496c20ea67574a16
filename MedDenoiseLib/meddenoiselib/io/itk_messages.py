"""ITK and GDCM messages go to the library log, never to the user's terminal.

ITK writes its warnings (e.g. GDCM's "GDCMSeriesFileNames (0x...): No Series were found" for every folder probed
for a DICOM series that holds none) straight to the process's stderr, past Python's ``sys.stderr`` and past
``--quiet``. Around the calls that probe and read through SimpleITK, :func:`itk_messages_logged` installs a
SimpleITK logger that hands each message to ``logging`` at DEBUG level (``--debug`` shows them); failures still
arrive as the ``RuntimeError`` SimpleITK raises, which the callers turn into the library's errors.

Some decoders under ITK print to file descriptor 2 themselves (libpng: ``libpng error: Read Error``), which no
logger reaches. :func:`c_stderr_logged` points descriptor 2 at a temporary file around a read and hands what
arrived to ``logging`` at DEBUG. Redirecting a descriptor is process-wide: any other thread writing to stderr in
that moment would be logged at DEBUG too. So it is off for library use and switched on by the command line
(:func:`capture_c_stderr`), which reads in its main thread only. :func:`itk_reason` turns SimpleITK's exception
text into a reason without source locations and object addresses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

__all__ = ["c_stderr_logged", "capture_c_stderr", "itk_messages_logged", "itk_reason"]

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


# fd 2 redirection is process-wide; the command line switches it on (see the module docstring)
_CAPTURE = False


def capture_c_stderr(enabled: bool = True) -> bool:
    """Switch :func:`c_stderr_logged` on or off for this process; returns the previous setting."""
    global _CAPTURE
    previous, _CAPTURE = _CAPTURE, bool(enabled)
    return previous


@contextlib.contextmanager
def c_stderr_logged() -> Iterator[None]:
    """Log (DEBUG) what C code writes to file descriptor 2 during the block instead of showing it.

    A no-op unless :func:`capture_c_stderr` switched it on, or where descriptor 2 cannot be duplicated. Descriptor 2
    is restored however the block ends (an exception, SIGINT/SIGTERM turned into exceptions). Keep the block to the
    C call: Python's own stderr writes inside it (logging!) are captured too.
    """
    if not _CAPTURE:
        yield
        return
    with _LOCK:
        try:
            sys.stderr.flush()  # what Python buffered so far belongs before the redirect
        except Exception:  # noqa: BLE001 - a closed or odd sys.stderr: nothing to flush
            pass
        try:
            saved = os.dup(2)
        except OSError:
            yield  # no descriptor 2 (an embedding host): nothing to redirect
            return
        try:
            sink = tempfile.TemporaryFile()
        except OSError:
            os.close(saved)
            yield
            return
        try:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
            try:
                sink.seek(0)
                text = sink.read(65536).decode("utf-8", errors="replace")
            finally:
                sink.close()
            for line in text.splitlines():
                if line.strip():
                    logger.debug("C library stderr: %s", line.strip())


_LOCATION = re.compile(r"^(Exception thrown in SimpleITK \w+: )?\S+\.(cxx|cpp|h|hxx):\d+:$")
_PREFIX = re.compile(r"^(ITK ERROR|itk::ERROR|itk::ExceptionObject)?:?\s*\w+\(0x[0-9a-fA-F]+\):\s*")


def itk_reason(exc: BaseException, path: str | os.PathLike | None = None) -> str:
    """SimpleITK's exception text as a short reason: no source location, class name, object address or path."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not _LOCATION.match(line.strip())]
    text = _PREFIX.sub("", lines[0] if lines else "")
    if len(lines) > 1:
        text = f"{text} {lines[-1]}" if text.endswith(":") else text
    if path is not None:
        text = re.sub(r"\s*(?:\b(?:in|of|from)\s+)?" + re.escape(os.fspath(path)) + r"\"?", "", text)
    text = re.sub(r"^ReadImageInformation:\s*", "", text)
    text = " ".join(text.split()).rstrip(":").strip()
    return text[:300] or type(exc).__name__
