"""What every subcommand shares: exit codes, argument validators (one clear usage error each), the progress
option, how library errors are worded on the terminal."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..errors import OptionError

__all__ = [
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "parse_number",
    "parse_positive_int",
    "parse_non_negative_int",
    "parse_fraction",
    "parse_open_fraction",
    "parse_unit_interval",
    "parse_positive_float",
    "parse_non_negative_float",
    "parse_noise_sd",
    "parse_sigma",
    "parse_int_list",
    "parse_float_list",
    "parse_noise_levels",
    "parse_window",
    "parse_noise",
    "scaling_options",
    "progress_options",
    "error_line",
    "add_common_options",
    "add_scaling_options",
    "add_magnitude_floor_options",
    "add_modality_option",
    "check_series_uid",
    "add_progress_format_option",
    "Parser",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143

#: how the CLI names the library arguments an error's ``parameter`` refers to.
OPTION_HINTS = {
    "overwrite": "pass --overwrite to replace it",
    "device": "use --device cpu or auto",
    "series_uid": "choose one with --series-uid",
    "method": "see --model and `python -m meddenoiselib models`",
    "roi_size": "see --roi",
    "sigma": "see --sigma",
    "window": "see --window",
    "scaling_mode": "see --scaling",
}


# ------------------------------------------------------------------------------------------------ validators


def parse_number(text: str, what: str) -> float:
    """A finite float, or an argparse error naming what was expected."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what} (a finite number), got {text!r}")
    return value


def parse_positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def parse_fraction(text: str) -> float:
    value = parse_number(text, "a number in [0, 1)")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def parse_open_fraction(text: str) -> float:
    value = parse_number(text, "a number in (0, 1)")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def parse_unit_interval(text: str) -> float:
    value = parse_number(text, "a number in [0, 1]")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def parse_positive_float(text: str) -> float:
    value = parse_number(text, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def parse_non_negative_float(text: str) -> float:
    value = parse_number(text, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def parse_sigma(text: str) -> str | float:
    if text == "auto":
        return "auto"
    value = parse_number(text, "'auto' or a noise level on the 0-255 scale")
    if value < 0:
        raise argparse.ArgumentTypeError(f"noise level must be non-negative, got {text!r}")
    return value


def parse_noise_sd(text: str) -> float:
    value = parse_number(text, "the noise's standard deviation in the image's units (HU for CT)")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the noise SD must be positive, got {text!r}")
    return value


def parse_ensemble(text: str) -> str | int:
    if text == "auto":
        return "auto"
    if text not in ("1", "2", "4", "8"):
        raise argparse.ArgumentTypeError(f"expected auto, 1, 2, 4 or 8, got {text!r}")
    return int(text)


def parse_int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 256 or 128,128, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_float_list(text: str) -> tuple[float, ...]:
    values = tuple(parse_number(v, "numbers like 15,25,50") for v in text.split(",") if v.strip())
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return values


def parse_noise_levels(text: str) -> tuple[float, ...]:
    """Gaussian noise levels on the 0-255 scale, each in the range the noise model accepts."""
    from ..transforms import parse_noise_spec

    values = parse_float_list(text)
    for value in values:
        try:
            parse_noise_spec(f"gaussian:{value!r}")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None
    return values


def parse_window(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected CENTER,WIDTH in HU (e.g. 40,400), got {text!r}")
    center, width = (parse_number(v, "CENTER,WIDTH in HU (e.g. 40,400)") for v in parts)
    if width <= 0:
        raise argparse.ArgumentTypeError(f"window width must be positive, got {text!r}")
    return center, width


def parse_noise(text: str) -> str:
    """``MODEL:LEVEL[,...]`` as the library parses it; every number in it must be finite and in range."""
    from ..transforms import parse_noise_spec

    try:
        spec = parse_noise_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None
    for value in (spec.level, spec.read_noise):
        if not math.isfinite(float(value)):
            raise argparse.ArgumentTypeError(f"noise levels in {text!r} must be finite")
    return text


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2): the usage block is one ``--help`` away."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def scaling_options(args: argparse.Namespace) -> dict:
    """fit_scaling keyword arguments from --scaling / --window."""
    if getattr(args, "window", None):
        return {"mode": "ct_window", "center": args.window[0], "width": args.window[1]}
    return {"mode": args.scaling or "percentile"}


def progress_options(args: argparse.Namespace):
    """(show_bar, callback) from --progress-format / --quiet / --no-progress."""
    from ..inference import line_progress_printer

    fmt = args.progress_format
    if args.quiet or args.no_progress:
        fmt = "none" if fmt == "bar" else fmt
    if fmt == "lines":
        return False, line_progress_printer(sys.stderr)
    return fmt == "bar", None


def error_line(exc: BaseException) -> str:
    """One line for the user: the library's message plus the option that would change the outcome."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    parameter = getattr(exc, "parameter", None)
    hint = OPTION_HINTS.get(parameter) if parameter else None
    if hint is None and parameter and isinstance(exc, OptionError):
        hint = f"see --{parameter.replace('_', '-')}"
    return f"{text}; {hint}" if hint else text


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def add_scaling_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scaling",
        choices=["percentile", "minmax"],
        default=None,
        help="intensity normalization to [0, 1]: minmax (the file's own minimum and maximum), or percentile"
        " (0.5-99.5, robust to outliers). Default: what the model was trained with, percentile for baselines; a"
        " min-max model then takes a flat background's level as 0 instead of the noisy minimum below it",
    )
    parser.add_argument(
        "--window",
        type=parse_window,
        metavar="CENTER,WIDTH",
        help="normalize with a CT window in HU instead (e.g. 40,400); values outside survive",
    )


def check_series_uid(source: Path, args: argparse.Namespace) -> None:
    """``--series-uid`` picks a series of DICOM input; given for any other input it is a usage error."""
    from ..io import detect_format
    from ..io.formats import format_name

    if not getattr(args, "series_uid", None) or not Path(source).is_file():
        return
    fmt = detect_format(source)
    if fmt not in (None, "dicom-file"):
        raise OptionError(
            f"{source}: --series-uid applies only to DICOM input (a series folder or a DICOM file); "
            f"this is a {format_name(fmt)} file, leave the option out"
        )


def add_progress_format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress-format",
        choices=["bar", "lines", "none"],
        default="bar",
        help="'lines' prints 'PROGRESS <fraction> <message>' lines on stderr for other programs",
    )


#: the ``--modality`` words
MODALITIES = ("ct", "mr", "us", "xray", "other")


def add_modality_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--modality ct|mr|us|xray|other`` for inputs without a DICOM Modality tag."""
    parser.add_argument("--modality", choices=list(MODALITIES), help=help_text)


def add_magnitude_floor_options(parser: argparse.ArgumentParser, when: str = "", default: str | None = "auto") -> None:
    """``--magnitude-floor auto|remove|keep`` and ``--coils N`` (the Denoiser's ``magnitude_floor`` and ``coils``);
    ``when`` prefixes their help (e.g. "with --noise: ")."""
    parser.add_argument(
        "--magnitude-floor",
        choices=["auto", "remove", "keep"],
        default=default,
        help=f"{when}magnitude MR's Rician / non-central chi noise floor (air ~1.25 sigma above 0, dark tissue biased "
        "up): auto removes it where --model auto finds one in the air; remove removes it with any method (a "
        "Rician-corrected NLM or BM3D; refused where the air shows no floor); keep leaves it with auto too (auto)",
    )
    parser.add_argument(
        "--coils",
        type=parse_positive_int,
        metavar="N",
        help=f"{when}magnitude MR: the receive coils the image was combined from by root sum of squares (1 for a "
        "SENSE/GRAPPA-combined or single-channel image), for removing the floor (default: read from the air)",
    )
