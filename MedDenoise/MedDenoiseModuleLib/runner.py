"""Running the denoising CLI in a child process: output lines on a reader thread, progress, process-tree kill.

The task talks to its process through the small :class:`ProcessRunner` protocol, so that tests and scripts can
inject another implementation (the same idea as SlicerNNUnet's ``ProcessProtocol``).
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "PROGRESS_PREFIX",
    "ProcessRunner",
    "SubprocessRunner",
    "kill_process_tree",
    "parse_progress_line",
    "run_to_completion",
]

logger = logging.getLogger(__name__)

#: ``meddenoiselib denoise --progress-format lines`` writes ``PROGRESS <fraction> <message>`` lines on stderr.
PROGRESS_PREFIX = "PROGRESS "


def parse_progress_line(line: str) -> tuple[float, str] | None:
    """``(fraction in [0, 1], message)`` for a ``PROGRESS`` line, None for any other line."""
    if not line.startswith(PROGRESS_PREFIX):
        return None
    parts = line[len(PROGRESS_PREFIX) :].strip().split(maxsplit=1)
    if not parts:
        return None
    try:
        fraction = float(parts[0])
    except ValueError:
        return None
    if fraction != fraction:  # NaN
        return None
    return min(max(fraction, 0.0), 1.0), parts[1] if len(parts) > 1 else ""


class ProcessRunner(Protocol):
    """What a denoising task needs from a child process."""

    def start(self, command: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        """Start ``command``; raises OSError when it cannot be started."""

    def read_lines(self) -> list[str]:
        """The output lines (stdout and stderr merged) received since the last call; never blocks."""

    def exit_code(self) -> int | None:
        """None while running (or while output is still being read), else the exit status."""

    def kill(self) -> None:
        """Stop the process and everything it started; returns without waiting for them to end."""


class SubprocessRunner:
    """A :class:`ProcessRunner` on :class:`subprocess.Popen` with one reader thread.

    The child gets its own session (POSIX) or process group (Windows) and no console window. ``kill`` ends the
    whole process tree: ``PythonSlicer`` is a launcher on some platforms, so killing only the direct child would
    leave the Python process that does the work running.
    """

    #: seconds to keep reading after the process exited while a grandchild still holds the output pipe.
    PIPE_GRACE_SECONDS = 2.0

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._exited_at: float | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id (None before start)."""
        return self.process.pid if self.process is not None else None

    def start(self, command: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        if self.process is not None:
            raise RuntimeError("this runner already started a process")
        options: dict = {
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.STDOUT,
            "text": True,
            "encoding": "utf-8",
            "errors": "replace",
            "bufsize": 1,
            "env": env,
            "cwd": cwd,
        }
        if os.name == "nt":
            options["creationflags"] = subprocess.CREATE_NO_WINDOW | subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            options["start_new_session"] = True
        logger.info("starting: %s", subprocess.list2cmdline(command))
        self.process = subprocess.Popen(command, **options)
        self._reader = threading.Thread(target=self._read, name="MedDenoise output reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self.process.stdout
        try:
            for line in stream:
                self._lines.put(line.rstrip("\r\n"))
        except (OSError, ValueError):  # pipe closed under us by kill()
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    def read_lines(self) -> list[str]:
        lines = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                return lines

    def exit_code(self) -> int | None:
        if self.process is None:
            return None
        code = self.process.poll()
        if code is None:
            return None
        if self._reader is not None and self._reader.is_alive():
            # the output may not be fully read yet; a grandchild holding the pipe must not hang us forever
            self._exited_at = self._exited_at or time.monotonic()
            if time.monotonic() - self._exited_at < self.PIPE_GRACE_SECONDS:
                return None
        return code

    def kill(self) -> None:
        """Kill the process tree and return at once (well under a second): a daemon thread reaps the processes and
        closes the output pipe, so the GUI never waits for a dying process."""
        if self.process is None:
            return
        kill_process_tree(self.process.pid, timeout=0)
        process, reader = self.process, self._reader

        def reap() -> None:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                logger.error("process %d did not end after kill", process.pid)
            if reader is not None:
                reader.join(timeout=5)

        threading.Thread(target=reap, name="MedDenoise process reaper", daemon=True).start()

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until the process ends (for scripts); returns its exit code, None on timeout."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


def kill_process_tree(pid: int, timeout: float = 5.0) -> None:
    """Kill process ``pid`` and all its descendants: the children (recursively) first, then the parent.

    Uses psutil when installed (it is a meddenoiselib requirement); otherwise, on POSIX, the process group that
    :class:`SubprocessRunner` created, and on Windows ``taskkill /T``. Waits up to ``timeout`` seconds for them to
    end (0: send the kill and return).
    """
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            parent = psutil.Process(pid)
            children = parent.children(recursive=True)
        except psutil.NoSuchProcess:
            parent, children = None, []
        for process in children:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        if parent is not None:
            try:
                parent.kill()
            except psutil.NoSuchProcess:
                pass
        if timeout > 0:
            psutil.wait_procs(children + ([parent] if parent is not None else []), timeout=timeout)
    if os.name == "nt":
        if psutil is None:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
        return
    try:  # anything left in the child's session, e.g. started between listing and killing
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def run_to_completion(
    runner: ProcessRunner,
    command: list[str],
    env: dict[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    idle: Callable[[], None] | None = None,
    interval: float = 0.05,
) -> int:
    """Run ``command`` with ``runner`` until it exits, handing every output line to ``on_line`` as it arrives and
    calling ``idle()`` between polls (Slicer passes ``processEvents``, so its window keeps repainting).

    Returns:
        The exit code.
    """
    runner.start(command, env=env)
    while True:
        for line in runner.read_lines():
            if on_line is not None:
                on_line(line)
        code = runner.exit_code()
        if code is not None:
            for line in runner.read_lines():
                if on_line is not None:
                    on_line(line)
            return code
        if idle is not None:
            idle()
        time.sleep(interval)
