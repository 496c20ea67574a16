"""The command line: ``python -m meddenoiselib {denoise,simulate,evaluate,info,demo,models,train}``.

Every subcommand parses its options and calls the library with keyword arguments; all front ends share the
same data path. Before any computation, every input is probed (header only) and every output path is planned
(:func:`meddenoiselib.io.plan_output`), so a bad name, a missing folder or a format that cannot hold the image
fails in a second, not after the denoising.

Exit codes: 0 success; 1 an input or output problem (one line on stderr naming the file, no traceback unless
``--debug``), also when any file of a folder batch failed; 2 a usage error (unknown or missing option, a value
out of range or not finite); 3 an internal error (a bug: one line, ``--debug`` shows the traceback);
130 interrupted (SIGINT), 143 terminated (SIGTERM). Temporaries are removed in every case.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Sequence

from .. import __version__
from ..errors import MedDenoiseError, OptionError
from . import demo, denoise, evaluate, info, models, simulate, train
from .options import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Parser,
    error_line,
)

__all__ = [
    "main",
    "build_parser",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
]

logger = logging.getLogger("meddenoiselib.cli")

#: one module per subcommand, each registering its options and handler (in --help order)
COMMANDS = (denoise, simulate, evaluate, info, demo, models, train)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m meddenoiselib``."""
    parser = Parser(
        prog="meddenoiselib",
        description="Medical image denoising: networks with shipped weights and classical baselines, on NIfTI, "
        "NRRD, MHA, DICOM series and 2D images.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    for command in COMMANDS:
        command.add_parser(sub)
    return parser


class _WarnOnce(logging.Filter):
    """Let each distinct warning through once per run (they name their file, so repeats say nothing new)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


class _Terminated(KeyboardInterrupt):
    """SIGTERM (schedulers, the Slicer module's Cancel) turned into an exception, so cleanup code runs."""


def _raise_terminated(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
    raise _Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    from ..io.atomic import remove_temporaries

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "train" and not args.inputs and not args.config:
            parser.error("train: give training inputs or --config")
    except SystemExit as exit_:  # usage errors (2), --help and --version (0): a code, as for every other outcome
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_USAGE
    root = logging.getLogger()
    saved_logging = (root.handlers[:], root.level)  # restored on return: main() may run in-process (tests, hosts)
    logging.basicConfig(
        level=logging.ERROR if args.quiet else logging.INFO,  # --quiet: nothing on the terminal but errors
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WarnOnce())  # inputs are probed before the run and read again: one warning each
    # pydicom logs (besides warning) about odd but readable headers, and nibabel logs the header fixes it makes
    # ("setting qfac to 1") through a stderr handler of its own; problems reach the user as errors instead.
    # pydicom sets its logger's level when first imported, so import it before setting the level here.
    import pydicom.config  # noqa: F401

    for name in ("pydicom", "nibabel"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.debug else logging.CRITICAL)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    # libpng & co. print to fd 2 themselves; the CLI reads in its main thread, so fd 2 may be redirected there
    from ..io.itk_messages import capture_c_stderr

    previous_capture = capture_c_stderr(in_main_thread)
    try:
        from ..io.dicom import dicom_listings_kept

        # a command lists a DICOM folder's series to plan, then probes and reads each: GDCM scans it once
        with warnings.catch_warnings(), dicom_listings_kept():
            if not args.debug:
                # third-party warnings about odd headers are for developers; problems reach users as errors
                warnings.simplefilter("ignore")
            return int(args.handler(args) or 0)
    except MedDenoiseError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"error: {error_line(exc)}\n")
        return EXIT_USAGE if isinstance(exc, OptionError) else EXIT_FAILED
    except _Terminated:
        remove_temporaries()
        sys.stderr.write("terminated\n")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        remove_temporaries()
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except MemoryError:
        if args.debug:
            raise
        sys.stderr.write("error: out of memory (try a smaller --roi or --sw-batch-size, or --device cpu)\n")
        return EXIT_FAILED
    except OSError as exc:
        if args.debug:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        sys.stderr.write(f"error: {where}{exc.strerror or exc}\n")
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback without --debug
        if args.debug:
            raise
        text = " ".join(str(exc).split())[:300]
        sys.stderr.write(
            f"error: internal error ({type(exc).__name__}: {text}); rerun with --debug for the "
            "traceback and please report it\n"
        )
        return EXIT_INTERNAL
    finally:
        remove_temporaries()
        capture_c_stderr(previous_capture)
        for handler in root.handlers[:]:
            if handler not in saved_logging[0]:
                root.removeHandler(handler)
        for handler in saved_logging[0]:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(saved_logging[1])
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
