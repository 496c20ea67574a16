"""The ``evaluate`` subcommand: methods against clean references, at Gaussian noise levels on min-max normalized
slices (``--sigma``, the seed papers' protocol) or with realistic noise models in the image's own units
(``--noise``: low-dose CT in HU, Rician MR, speckle), scored as a physicist reads them."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from ..errors import MedDenoiseError, OptionError, OutputError
from .options import (
    EXIT_OK,
    add_common_options,
    add_magnitude_floor_options,
    add_modality_option,
    parse_noise,
    parse_noise_levels,
    parse_non_negative_int,
    parse_positive_int,
)

__all__ = ["add_parser", "cmd_evaluate"]

logger = logging.getLogger("meddenoiselib.cli")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..inference import Denoiser

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise OptionError("--methods names no method")
    protocols = [
        option for option, given in (("--sigma", args.sigma), ("--noise", args.noise), ("--noisy", args.noisy)) if given
    ]
    if len(protocols) > 1:
        raise OptionError(
            f"give one of --sigma (Gaussian noise on min-max normalized slices), --noise (noise models in the "
            f"image's units) or --noisy (real noisy scans), not {' and '.join(protocols)}"
        )
    realistic = bool(args.noise or args.noisy)
    if realistic and args.estimate_sigma:
        raise OptionError(
            "with --noise or --noisy every method estimates the noise, as denoise does by default; drop "
            "--estimate-sigma"
        )
    for given, option in (
        (args.modality, "--modality"),
        (args.magnitude_floor, "--magnitude-floor"),
        (args.coils, "--coils"),
    ):
        if given and not realistic:
            raise OptionError(
                f"{option} is for --noise and --noisy, whose references are denoised as volumes as denoise does"
            )
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output}: a file of that name exists; the evaluation writes into a folder")
    if not output.exists() and not output.parent.is_dir():
        raise OutputError(f"{output}: the folder {output.parent} does not exist")
    options = dict(device=args.device, precision=args.precision)
    if realistic:
        from ..evaluation.realistic import load_volume_references

        references = load_volume_references(args.references, max_slices=args.max_slices)
        noisy = load_volume_references(args.noisy, max_slices=args.max_slices) if args.noisy else None
        floor = dict(magnitude_floor=args.magnitude_floor or "auto", coils=args.coils)
        denoisers = {m: Denoiser(m, modality=args.modality, **floor, **options) for m in methods}
        protocol = functools.partial(_evaluate_realistic, noisy=noisy)
        return _run(args, output, methods, references, denoisers, protocol)
    from ..evaluation import load_references

    args.sigma = args.sigma if args.sigma is not None else (15.0, 25.0, 50.0)
    references = load_references(args.references, max_slices=args.max_slices)
    denoisers = {m: Denoiser(m, **options) for m in methods}
    return _run(args, output, methods, references, denoisers, _evaluate_gaussian)


def _run(args, output: Path, methods, references, denoisers, protocol) -> int:
    """Plan the three outputs (none may overwrite an input), run ``protocol``, and leave no empty folder of our
    own behind on failure."""
    from ..io import input_paths, plan_file

    created = not output.exists()
    output.mkdir(exist_ok=True)
    try:
        planned: list = []
        for name, role, suffix in (
            ("summary.md", "table", ".md"),
            ("results.csv", "table", ".csv"),
            ("comparison.png", "figure", ".png"),
        ):
            planned.append(
                plan_file(
                    output / name,
                    role,
                    (suffix,),
                    overwrite=args.overwrite,
                    protected=input_paths(args.references),
                    others=planned,
                )
            )
    except MedDenoiseError:
        if created:
            output.rmdir()
        raise
    try:
        table = protocol(args, output, methods, references, denoisers)
        if not args.quiet:  # the same table is in summary.md
            sys.stdout.write(table)
        logger.info("Wrote %s, %s and %s", output / "summary.md", output / "results.csv", output / "comparison.png")
        return EXIT_OK
    except BaseException:
        if created and output.is_dir() and not any(output.iterdir()):
            output.rmdir()  # a failed run leaves no empty folder of its own behind
        raise


def _evaluate_realistic(args, output: Path, methods, references, denoisers, noisy=None) -> str:
    """``--noise`` (or ``--noisy``, the real noisy scans ``noisy``): realistic noise in the image's units, each
    reference a slab denoised as a volume."""
    from ..evaluation import comparison_figure
    from ..evaluation.realistic import (
        display_slice,
        evaluate_realistic,
        write_realistic_csv,
        write_realistic_markdown,
    )

    logger.info(
        "Evaluating %d methods on %d references with %s (scores in the image's units)",
        len(methods),
        len(references),
        ", ".join(args.noise) if args.noise else f"their real noisy scans ({', '.join(args.noisy)})",
    )

    def report(row) -> None:
        extra = ""
        if row.noise_left is not None:
            extra = f"  noise left {row.noise_left:6.1f} {row.units}"
        if row.bias_sigma is not None:
            extra += f"  background bias {row.bias_sigma:+.3f} sigma"
        if row.edge_ratio is not None:
            extra += f"  edge width x{row.edge_ratio:.3f}"
        logger.info(
            "  %-28s %-18s %-14s PSNR %6.2f  SSIM %.4f  RMSE %8.2f%s  %.2fs",
            row.image,
            row.noise,
            row.method if row.method == row.model or not row.model else f"{row.method} ({row.model})",
            row.psnr,
            row.ssim,
            row.rmse,
            extra,
            row.seconds,
        )

    figure: list = []

    def keep_first(name, noise, kind, outputs) -> None:
        if not figure:
            clean = outputs["clean"]
            figure.append(
                (name, noise, [(label, display_slice(kind, clean, image)) for label, image in outputs.items()])
            )

    rows = evaluate_realistic(
        references,
        methods,
        args.noise or (),
        seed=args.seed,
        denoiser_factory=lambda m: denoisers[m],
        on_result=report,
        on_outputs=keep_first,
        noisy=noisy,
        modality=args.modality,
    )
    table = write_realistic_markdown(rows, output / "summary.md")
    write_realistic_csv(rows, output / "results.csv")
    name, noise, panels = figure[0]
    panels = [(f"noisy {noise}" if label == "noisy" else label, image) for label, image in panels]
    panels = panels[1:] + panels[:1]  # noisy, methods..., clean
    comparison_figure(
        panels, output / "comparison.png", crop=_figure_crop(panels[0][1].shape), title=f"{name}, central slice"
    )
    return table


def _evaluate_gaussian(args, output: Path, methods, references, denoisers) -> str:
    """``--sigma``: white Gaussian noise on min-max normalized 2D slices."""
    from ..evaluation import comparison_figure, evaluate, write_csv, write_markdown
    from ..evaluation.compare import add_noise
    from ..transforms.intensity import sigma_from_255

    logger.info(
        "Evaluating %d methods on %d reference images at sigma %s",
        len(methods),
        len(references),
        ",".join(f"{s:g}" for s in args.sigma),
    )

    def report(row) -> None:
        if row.method != "noisy":
            logger.info(
                "  %-28s sigma %-4g %-14s PSNR %6.2f  SSIM %.4f  %.2fs",
                row.image,
                row.sigma255,
                row.method,
                row.psnr,
                row.ssim,
                row.seconds,
            )

    rows = evaluate(
        references,
        methods,
        args.sigma,
        seed=args.seed,
        oracle_sigma=not args.estimate_sigma,
        denoiser_factory=lambda m: denoisers[m],
        on_result=report,
    )
    table = write_markdown(rows, output / "summary.md")
    write_csv(rows, output / "results.csv")
    name, clean = references[0]
    sigma = args.sigma[len(args.sigma) // 2]
    noisy = add_noise(clean, sigma, args.seed)
    panels = [(f"noisy σ={sigma:g}", noisy)]
    for method, denoiser in denoisers.items():
        panels.append((method, denoiser.denoise_array(noisy, sigma=sigma_from_255(sigma))))
    panels.append(("clean", clean))
    comparison_figure(panels, output / "comparison.png", crop=_figure_crop(clean.shape), title=name)
    return table


def _figure_crop(shape: tuple[int, int]) -> tuple[slice, slice]:
    """The comparison figure's crop of a ``(Y, X)`` slice: from its first quarter, up to 192 pixels or half of it."""
    h, w = shape
    return slice(h // 4, h // 4 + min(h // 2, 192)), slice(w // 4, w // 4 + min(w // 2, 192))


def add_parser(sub) -> None:
    """Register the ``evaluate`` subcommand on the top-level parser's subparsers."""
    p = sub.add_parser(
        "evaluate",
        help="compare methods on clean references with seeded noise (PSNR/SSIM)",
        description="With --sigma (the default, 15,25,50): normalize slices of each clean reference to [0, 1] "
        "(min-max), add Gaussian noise of each sigma (0-255 scale, seeded), run each method, and report PSNR (data "
        "range 1) and SSIM. With --noise: add a realistic noise model to the central slices of each reference in "
        "its own units (as simulate does; e.g. ct-lowdose:25HU, rician:3%%, speckle:0.2), denoise them as denoise "
        "does by default, and score in those units: CT in the soft-tissue window W400/L40 over the body with RMSE "
        "and noise left in HU, magnitude MR over the head with the background bias in sigma.",
    )
    p.add_argument("references", nargs="+", help="clean image files, DICOM series folders or folders of images")
    p.add_argument("--methods", default="median,nlm,default", help="comma-separated models/baselines")
    p.add_argument(
        "--sigma", type=parse_noise_levels, default=None, help="Gaussian noise levels, 0-255 scale (15,25,50)"
    )
    p.add_argument(
        "--noise",
        type=parse_noise,
        action="append",
        metavar="MODEL:LEVEL",
        help="a realistic noise model in the image's units, as simulate --noise takes it (repeat for several): "
        "ct-lowdose:25HU, rician:3%%, noncentral-chi:3%%,8, speckle:0.2, poisson-gaussian:PEAK",
    )
    p.add_argument(
        "--noisy",
        action="append",
        metavar="PATH",
        help="instead of --noise: a real noisy scan of each reference, in the same order and on the same grid (a "
        "low-dose scan beside its full-dose reference, a phantom scanned twice): file, DICOM folder or folder "
        "(repeat for several references)",
    )
    add_modality_option(
        p,
        "with --noise or --noisy: the modality of references without a DICOM Modality tag, for --model auto (and "
        "with --noisy for the scores: ct scores in HU over the body)",
    )
    add_magnitude_floor_options(p, when="with --noise or --noisy, for every method: ", default=None)
    p.add_argument("--seed", type=parse_non_negative_int, default=0)
    p.add_argument(
        "--max-slices",
        type=parse_positive_int,
        default=3,
        help="slices per volume (3): evenly spaced, or with --noise the central adjacent ones",
    )
    p.add_argument("--estimate-sigma", action="store_true", help="baselines estimate sigma instead of being told")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--output", "-o", default="evaluation", help="folder for summary.md, results.csv, comparison.png")
    p.add_argument("--overwrite", action="store_true", help="replace summary.md, results.csv, comparison.png")
    add_common_options(p)
    p.set_defaults(handler=cmd_evaluate)
