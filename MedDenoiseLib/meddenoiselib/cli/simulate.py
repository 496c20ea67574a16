"""The ``simulate`` subcommand: add a noise model to an image or series, geometry and tags kept."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import MedDenoiseError
from .options import (
    EXIT_OK,
    add_common_options,
    add_progress_format_option,
    add_scaling_options,
    check_series_uid,
    parse_noise,
    parse_non_negative_int,
    progress_options,
)

__all__ = ["add_parser", "cmd_simulate"]

logger = logging.getLogger("meddenoiselib.cli")


def cmd_simulate(args: argparse.Namespace) -> int:
    from ..inference import Progress
    from ..io import (
        ImageSpec,
        check_typed_output_name,
        input_paths,
        plan_output,
        probe_volume,
        read_volume,
        write_volume,
    )
    from ..transforms import parse_noise_spec, simulate_volume
    from ..transforms.noise import NoiseKind

    spec = parse_noise_spec(args.noise)  # checked by the option's validator
    check_series_uid(Path(args.input), args)
    header = probe_volume(args.input, series_uid=args.series_uid)
    written = ImageSpec.of(header, dtype="float32" if args.float else None)
    check_typed_output_name(args.output, written)
    plan_output(
        args.output,
        written,
        overwrite=args.overwrite,
        protected=input_paths([args.input, *header.files]),
    )
    volume = read_volume(args.input, series_uid=args.series_uid)
    if spec.kind == NoiseKind.CT_LOWDOSE:
        _check_ct_in_hu(volume, args.input)
    if args.window:
        mode = "ct_window"
    else:
        mode = args.scaling or "percentile"
    show_bar, callback = progress_options(args)
    slices = volume.shape[0] if spec.kind == NoiseKind.CT_LOWDOSE and spec.method == "projection" else 0
    with Progress(slices, f"simulating {spec}", show_bar and slices > 1, callback) as progress:
        try:
            result = simulate_volume(
                volume,
                spec,
                seed=args.seed,
                scaling_mode=mode,
                float_output=args.float,
                on_slice=progress.update if slices else None,
            )
        except ValueError as exc:
            raise MedDenoiseError(f"{args.input}: {exc}") from None
    write_volume(
        result,
        args.output,
        overwrite=args.overwrite,
        inputs=(Path(args.input),),
        description_suffix=f" {spec.kind.value} noise",
        derivation=f"Simulated noise {spec}",
    )
    logger.info("Wrote %s (%s, seed %d)", args.output, spec.describe(), args.seed)
    return EXIT_OK


def _check_ct_in_hu(volume, label) -> None:
    """Without a Modality tag, warn when the values do not look like HU (air near -1000)."""
    modality = volume.metadata.get("0008|0060", "").strip().upper()
    low = float(volume.array.min())
    if not modality and not -1100 <= low <= -900 and low > -3100:
        logger.warning(
            "%s: no CT Modality tag and the minimum is %.0f, not about -1000 HU (air); treating the "
            "values as HU anyway",
            label,
            low,
        )


def add_parser(sub) -> None:
    """Register the ``simulate`` subcommand on the top-level parser's subparsers."""
    p = sub.add_parser(
        "simulate",
        help="add seeded synthetic noise to an image",
        description="Add noise of a given model and level, in the image's own units: "
        "gaussian:SIGMA, rician:SIGMA and noncentral-chi:SIGMA,COILS (SIGMA on the 0-255 scale of "
        "the normalized image, or N%% of its 99th percentile), speckle:SIGMA (relative, Gamma), "
        "poisson-gaussian:PEAK[,READ] (counts at intensity 1, read noise in counts), "
        "ct-lowdose:DOSE or ct-lowdose:NHU (CT in HU: Poisson noise on simulated projections, "
        "filtered back-projection; options kernel=, views=, counts=, electronic=, method=fast).",
    )
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument(
        "--noise",
        type=parse_noise,
        default="gaussian:25",
        help="MODEL:LEVEL[,...] (default gaussian:25), e.g. ct-lowdose:0.25, rician:3%%, speckle:0.2",
    )
    p.add_argument("--seed", type=parse_non_negative_int, default=0, help="random seed (0)")
    p.add_argument("--float", action="store_true", help="write float32 instead of the input's dtype")
    p.add_argument("--series-uid")
    p.add_argument("--overwrite", action="store_true")
    add_progress_format_option(p)
    add_scaling_options(p)
    add_common_options(p)
    p.set_defaults(handler=cmd_simulate)
