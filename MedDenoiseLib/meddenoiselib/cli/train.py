"""The ``train`` subcommand."""

from __future__ import annotations

import argparse
import json
import logging

from ..errors import MedDenoiseError, OptionError
from .options import (
    EXIT_OK,
    add_common_options,
    parse_float_list,
    parse_fraction,
    parse_int_list,
    parse_non_negative_float,
    parse_non_negative_int,
    parse_open_fraction,
    parse_positive_float,
    parse_positive_int,
    parse_unit_interval,
    parse_window,
)

__all__ = ["add_parser", "cmd_train"]

logger = logging.getLogger("meddenoiselib.cli")


def cmd_train(args: argparse.Namespace) -> int:
    from ..training import TrainConfig, train

    if args.config:
        try:
            config = TrainConfig.from_json(args.config)
        except OSError as exc:
            raise MedDenoiseError(f"{args.config}: cannot read the configuration ({exc.strerror or exc})") from None
        except (ValueError, TypeError) as exc:
            raise OptionError(f"{args.config}: not a training configuration ({exc})", parameter="config") from None
    else:
        config = TrainConfig()
    for key, value in vars(args).items():
        if key in TrainConfig.__dataclass_fields__ and value is not None and value != []:
            keep_tuple = key in ("noise_range", "window")
            setattr(config, key, list(value) if isinstance(value, tuple) and not keep_tuple else value)
    if args.overrides_json:
        try:
            config.overrides = json.loads(args.overrides_json)
        except ValueError as exc:
            raise OptionError(f"--overrides-json is not valid JSON ({exc})") from None
    try:
        config.validate()
    except ValueError as exc:
        raise OptionError(f"train: {exc}") from None
    path = train(config, resume=args.resume, show_progress=not (args.quiet or args.no_progress))
    if path is not None:
        logger.info("Wrote %s and %s", path, path.with_suffix(".json"))
    return EXIT_OK


def add_parser(sub) -> None:
    """Register the ``train`` subcommand on the top-level parser's subparsers."""
    p = sub.add_parser(
        "train",
        help="train or fine-tune a network (supervised or self-supervised)",
        description="Train a registry network on images and volumes (folders searched recursively). "
        "Launch with `torchrun --nproc_per_node=N -m meddenoiselib train ...` for several processes.",
    )
    p.add_argument("inputs", nargs="*", help="training files or folders")
    p.add_argument("--config", help="a config.json from an earlier run (options given here override it)")
    p.add_argument("--output", "-o", help="run folder (checkpoint, log, model.safetensors + model.json)")
    p.add_argument("--network", help="registry preset (see `models`)")
    p.add_argument("--overrides-json", help="constructor overrides as JSON, e.g. '{\"features\": 32}'")
    p.add_argument("--spatial-dims", dest="spatial_dims", type=int, choices=[2, 3])
    p.add_argument("--mode", choices=["supervised", "self-supervised"])
    p.add_argument("--val-inputs", dest="val_inputs", nargs="+", help="validation files (held out by file)")
    p.add_argument(
        "--val-fraction", dest="val_fraction", type=parse_fraction, help="files held out when no --val-inputs"
    )
    p.add_argument(
        "--noise",
        nargs="+",
        metavar="MODEL:LOW-HIGH",
        help="noise models with level ranges in each model's units, drawn per sample: gaussian:0-50, "
        "rician:0-50, speckle:0.05-0.5, poisson:10-1000, ct-lowdose:5HU-100HU[,kernel=a|b,views=lo|hi,"
        "electronic=lo|hi] (default gaussian:0-50)",
    )
    p.add_argument(
        "--noise-range",
        dest="noise_range",
        type=parse_float_list,
        help="LOW,HIGH for --noise entries given without a range (0,50)",
    )
    p.add_argument(
        "--store-8bit-fraction",
        dest="store_8bit_fraction",
        type=parse_unit_interval,
        help="share of noisy samples clipped and rounded to 8 bits, as noisy PNG/JPEG files are (0)",
    )
    p.add_argument(
        "--noisy-range-fraction",
        dest="noisy_range_fraction",
        type=parse_unit_interval,
        help="share of noisy samples rescaled by the noisy file's min-max, as the CLI scales a user's file (0)",
    )
    p.add_argument(
        "--scaling",
        choices=["minmax", "ct_window"],
        help="training (and inference) normalization: per-image minmax, or ct_window, the fixed HU map "
        "of --window (CT models)",
    )
    p.add_argument(
        "--window", type=parse_window, metavar="CENTER,WIDTH", help="HU map for --scaling ct_window (40,400)"
    )
    p.add_argument(
        "--simulate-noise",
        dest="simulate_noise",
        type=parse_non_negative_float,
        help="self-supervised: corrupt inputs once with this Gaussian sigma (0-255)",
    )
    p.add_argument(
        "--val-levels",
        dest="val_sigmas",
        type=parse_float_list,
        help="validation noise levels in the first noise model's units (15,25,50)",
    )
    p.add_argument("--mask-fraction", dest="mask_fraction", type=parse_open_fraction)
    p.add_argument("--patch", type=parse_positive_int)
    p.add_argument(
        "--slice-strides",
        dest="slice_strides",
        type=parse_int_list,
        metavar="S[,S...]",
        help="burst models: slice steps between a training stack's frames, one drawn per stack (1)",
    )
    p.add_argument("--batch-size", dest="batch_size", type=parse_positive_int)
    p.add_argument("--steps", type=parse_positive_int)
    p.add_argument(
        "--stop-after",
        dest="stop_after",
        type=parse_positive_int,
        help="pause after this many steps (resume later with --resume)",
    )
    p.add_argument(
        "--time-budget",
        dest="time_budget",
        type=parse_non_negative_float,
        help="seconds to train; the step count is fitted after 50 steps and refitted every 100 from the latest pace "
        "(0: no limit)",
    )
    p.add_argument("--lr", type=parse_positive_float)
    p.add_argument("--schedule", choices=["cosine", "step", "constant"])
    p.add_argument("--warmup-steps", dest="warmup_steps", type=parse_non_negative_int)
    p.add_argument("--loss", choices=["l1", "mse"])
    p.add_argument("--grad-clip", dest="grad_clip", type=parse_non_negative_float)
    p.add_argument("--init", help="fine-tune from shipped weights (name) or a .safetensors file")
    p.add_argument(
        "--grow",
        metavar="NETWORK",
        help="fine-tuning: build this larger network (e.g. kpn-ms-burst3) from the --init weights; it starts with "
        "their exact output",
    )
    p.add_argument("--freeze", type=parse_non_negative_int, help="fine-tuning: freeze this many leading layers")
    p.add_argument("--seed", type=parse_non_negative_int)
    p.add_argument("--checkpoint-every", dest="checkpoint_every", type=parse_positive_int)
    p.add_argument("--val-every", dest="val_every", type=parse_positive_int)
    p.add_argument(
        "--early-stop",
        dest="early_stop",
        type=parse_non_negative_int,
        help="validations without improvement before stop",
    )
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=parse_positive_int)
    p.add_argument(
        "--cache-dir",
        dest="cache_dir",
        help="keep per-image training maps (CT noise maps) here between runs (default: OUTPUT/cache)",
    )
    p.add_argument("--name", help="model name written into the model card")
    p.add_argument("--description", help="description written into the model card")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    add_common_options(p)
    p.set_defaults(handler=cmd_train)
