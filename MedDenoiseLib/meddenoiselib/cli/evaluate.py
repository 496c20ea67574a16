"""The ``evaluate`` subcommand: methods against clean references at Gaussian noise levels."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import MedDenoiseError, OptionError, OutputError
from .options import (
    EXIT_OK,
    add_common_options,
    parse_noise_levels,
    parse_non_negative_int,
    parse_positive_int,
)

__all__ = ["add_parser", "cmd_evaluate"]

logger = logging.getLogger("meddenoiselib.cli")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation import comparison_figure, evaluate, load_references, write_csv, write_markdown
    from ..evaluation.compare import add_noise
    from ..inference import Denoiser
    from ..io import input_paths, plan_file
    from ..transforms.intensity import sigma_from_255

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise OptionError("--methods names no method")
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output}: a file of that name exists; the evaluation writes into a folder")
    if not output.exists() and not output.parent.is_dir():
        raise OutputError(f"{output}: the folder {output.parent} does not exist")
    references = load_references(args.references, max_slices=args.max_slices)
    denoisers = {m: Denoiser(m, device=args.device, precision=args.precision) for m in methods}
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
        h, w = clean.shape
        crop = (slice(h // 4, h // 4 + min(h // 2, 192)), slice(w // 4, w // 4 + min(w // 2, 192)))
        comparison_figure(panels, output / "comparison.png", crop=crop, title=name)
        if not args.quiet:  # the same table is in summary.md
            sys.stdout.write(table)
        logger.info("Wrote %s, %s and %s", output / "summary.md", output / "results.csv", output / "comparison.png")
        return EXIT_OK
    except BaseException:
        if created and output.is_dir() and not any(output.iterdir()):
            output.rmdir()  # a failed run leaves no empty folder of its own behind
        raise


def add_parser(sub) -> None:
    """Register the ``evaluate`` subcommand on the top-level parser's subparsers."""
    p = sub.add_parser(
        "evaluate",
        help="compare methods on clean references with seeded noise (PSNR/SSIM)",
        description="Normalize each clean reference to [0, 1] (min-max), add Gaussian noise of each "
        "sigma (0-255 scale, seeded), run each method, and report PSNR (data range 1) and SSIM.",
    )
    p.add_argument("references", nargs="+", help="clean image files, DICOM series folders or folders of images")
    p.add_argument("--methods", default="median,nlm,default", help="comma-separated models/baselines")
    p.add_argument("--sigma", type=parse_noise_levels, default=(15.0, 25.0, 50.0), help="noise levels (15,25,50)")
    p.add_argument("--seed", type=parse_non_negative_int, default=0)
    p.add_argument("--max-slices", type=parse_positive_int, default=3, help="slices per volume (3)")
    p.add_argument("--estimate-sigma", action="store_true", help="baselines estimate sigma instead of being told")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--output", "-o", default="evaluation", help="folder for summary.md, results.csv, comparison.png")
    p.add_argument("--overwrite", action="store_true", help="replace summary.md, results.csv, comparison.png")
    add_common_options(p)
    p.set_defaults(handler=cmd_evaluate)
