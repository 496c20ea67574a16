"""The ``demo`` subcommand."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .options import (
    EXIT_OK,
    add_common_options,
)

__all__ = ["add_parser", "cmd_demo"]

logger = logging.getLogger("meddenoiselib.cli")


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(Path(args.output), model=args.model, overwrite=args.overwrite, device=args.device, quiet=args.quiet)
    return EXIT_OK


def add_parser(sub) -> None:
    """Register the ``demo`` subcommand on the top-level parser's subparsers."""
    p = sub.add_parser("demo", help="denoise the bundled sample CT and MR, write outputs, figure and metrics")
    p.add_argument("--output", "-o", default="demo-output", help="output folder (demo-output)")
    p.add_argument(
        "--model", default="auto", help="auto (default: the model for each sample's modality), default, or a name"
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--overwrite", action="store_true")
    add_common_options(p)
    p.set_defaults(handler=cmd_demo)
