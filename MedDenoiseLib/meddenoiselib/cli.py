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
import json
import logging
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .errors import MedDenoiseError, OptionError, OutputError

__all__ = ["main", "build_parser"]

logger = logging.getLogger("meddenoiselib.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143

#: how the CLI names the library arguments an error's ``parameter`` refers to.
_OPTION_NAMES = {
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
def _number(text: str, what: str) -> float:
    """A finite float, or an argparse error naming what was expected."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what} (a finite number), got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _number(text, "a number in [0, 1)")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def _open_fraction(text: str) -> float:
    value = _number(text, "a number in (0, 1)")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def _unit_interval(text: str) -> float:
    value = _number(text, "a number in [0, 1]")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _number(text, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    value = _number(text, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _sigma(text: str) -> str | float:
    if text == "auto":
        return "auto"
    value = _number(text, "'auto' or a noise level on the 0-255 scale")
    if value < 0:
        raise argparse.ArgumentTypeError(f"noise level must be non-negative, got {text!r}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 256 or 128,128, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _float_list(text: str) -> tuple[float, ...]:
    values = tuple(_number(v, "numbers like 15,25,50") for v in text.split(",") if v.strip())
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative numbers, got {text!r}")
    return values


def _noise_levels(text: str) -> tuple[float, ...]:
    """Gaussian noise levels on the 0-255 scale, each in the range the noise model accepts."""
    from .transforms import parse_noise_spec

    values = _float_list(text)
    for value in values:
        try:
            parse_noise_spec(f"gaussian:{value!r}")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None
    return values


def _window(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected CENTER,WIDTH in HU (e.g. 40,400), got {text!r}")
    center, width = (_number(v, "CENTER,WIDTH in HU (e.g. 40,400)") for v in parts)
    if width <= 0:
        raise argparse.ArgumentTypeError(f"window width must be positive, got {text!r}")
    return center, width


def _noise(text: str) -> str:
    """``MODEL:LEVEL[,...]`` as the library parses it; every number in it must be finite and in range."""
    from .transforms import parse_noise_spec

    try:
        spec = parse_noise_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None
    for value in (spec.level, spec.read_noise):
        if not math.isfinite(float(value)):
            raise argparse.ArgumentTypeError(f"noise levels in {text!r} must be finite")
    return text


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2): the usage block is one ``--help`` away."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


# ------------------------------------------------------------------------------------------------- helpers
def _scaling_options(args: argparse.Namespace) -> dict:
    """fit_scaling keyword arguments from --scaling / --window."""
    if getattr(args, "window", None):
        return {"mode": "ct_window", "center": args.window[0], "width": args.window[1]}
    return {"mode": args.scaling or "percentile"}


def _progress(args: argparse.Namespace):
    """(show_bar, callback) from --progress-format / --quiet / --no-progress."""
    from .inference import line_progress_printer

    fmt = args.progress_format
    if args.quiet or args.no_progress:
        fmt = "none" if fmt == "bar" else fmt
    if fmt == "lines":
        return False, line_progress_printer(sys.stderr)
    return fmt == "bar", None


def _named_output(option: str, source: Path) -> Path:
    """An extra output's path; '{name}' is replaced by the input's name (for folders of inputs)."""
    from .io import strip_suffix

    return Path(option.replace("{name}", strip_suffix(source.name)))


def _output_name(source: Path, output_dir: Path, fmt: str | None) -> Path:
    from .io import format_suffix, strip_suffix

    if source.is_dir():
        return output_dir / source.name
    if fmt:
        return output_dir / (strip_suffix(source.name) + format_suffix(fmt))
    return output_dir / source.name  # same format (an extension-less DICOM file keeps its name)


@dataclass
class _Job:
    """One input of a denoise run with its checked outputs."""

    source: Path
    header: object
    image: object
    residual: object | None = None
    report: object | None = None
    series: bool = False


def _check_series_uid(source: Path, args: argparse.Namespace) -> None:
    """``--series-uid`` picks a series of DICOM input; given for any other input it is a usage error."""
    from .io import detect_format
    from .io.formats import format_name

    if not getattr(args, "series_uid", None) or not Path(source).is_file():
        return
    fmt = detect_format(source)
    if fmt not in (None, "dicom-file"):
        raise OptionError(
            f"{source}: --series-uid applies only to DICOM input (a series folder or a DICOM file); "
            f"this is a {format_name(fmt)} file, leave the option out"
        )


def _plan_job(source: Path, target: Path, args: argparse.Namespace, planned: list) -> _Job:
    """Probe one input and plan its image, residual and report outputs, before any computation."""
    from .io import ImageSpec, input_paths, is_series_file, plan_file, plan_output, probe_volume
    from .io.series import plan_series_output, probe_series

    _check_series_uid(source, args)
    series = is_series_file(source)
    header = probe_series(source) if series else probe_volume(source, series_uid=args.series_uid)
    plan = plan_series_output if series else plan_output
    protected = input_paths([source, *header.files, *([args.mask] if getattr(args, "mask", None) else [])])
    image = plan(
        target, ImageSpec.of(header), role="image", overwrite=args.overwrite, protected=protected, others=planned
    )
    job = _Job(source, header, image, series=series)
    if args.residual:
        job.residual = plan(
            _named_output(args.residual, source),
            ImageSpec.of(header, dtype="float32"),
            role="residual",
            overwrite=args.overwrite,
            protected=protected,
            others=[*planned, image],
        )
    if args.report:
        job.report = plan_file(
            _named_output(args.report, source),
            "report",
            (".json",),
            overwrite=args.overwrite,
            protected=protected,
            others=[*planned, image] + ([job.residual] if job.residual else []),
        )
    planned.extend(p for p in (job.image, job.residual, job.report) if p is not None)
    return job


def _read_mask(args: argparse.Namespace):
    """The ``--mask`` volume, or None."""
    from .io import read_volume

    return read_volume(args.mask) if getattr(args, "mask", None) else None


def _write_report(denoiser, job: _Job, noisy, result) -> None:
    from .evaluation import run_report
    from .io.atomic import write_text_atomic

    values = run_report(denoiser, noisy, result)
    values.update(input=str(job.source), output=str(job.image.path), meddenoiselib_version=__version__)
    write_text_atomic(job.report.path, json.dumps(values, indent=2) + "\n")
    logger.info(
        "  noise estimate %.2f -> %.2f (0-255 scale); report %s",
        values["noise_sigma_before_0_255"],
        values["noise_sigma_after_0_255"],
        job.report.path,
    )


def _denoise_one(denoiser, job: _Job, args: argparse.Namespace) -> None:
    from .io import read_volume, write_volume

    if job.series:
        _denoise_series(denoiser, job, args)
        return
    start = time.perf_counter()
    logger.info("Reading %s", job.source)
    volume = read_volume(job.source, series_uid=args.series_uid)
    mask = _read_mask(args)
    logger.info("Denoising %s voxels with %s...", "x".join(map(str, volume.shape)), denoiser.method)
    result = _run_denoiser(denoiser, volume, args, mask)
    target = job.image.path
    write_volume(
        result,
        target,
        overwrite=args.overwrite,
        inputs=(job.source,),
        derivation=f"Denoised with MedDenoise {__version__} ({denoiser.method})",
    )
    if job.residual is not None:
        from .evaluation import residual_volume

        write_volume(
            residual_volume(volume, result),
            job.residual.path,
            overwrite=args.overwrite,
            inputs=(job.source,),
            role="residual",
            description_suffix=" residual",
            derivation="Residual (input minus denoised), MedDenoise",
        )
        logger.info("Wrote the residual %s", job.residual.path)
    if job.report is not None:
        _write_report(denoiser, job, volume, result)
    logger.info("Wrote %s in %.2fs total", target, time.perf_counter() - start)


def _run_denoiser(denoiser, data, args: argparse.Namespace, mask):
    """Denoise a volume or series with ``--sigma`` (the 0-255 scale of the CLI, converted here) and log the
    model chosen, the noise level and the time."""
    from .transforms.intensity import sigma_from_255

    sigma = args.sigma if args.sigma == "auto" else sigma_from_255(float(args.sigma))
    result = denoiser.denoise(data, sigma=sigma, mask=mask)
    report = denoiser.last_report
    if report is not None and report.choice:
        logger.info("  model: %s", report.choice)
    if report is not None and report.sigma is not None:
        how = "estimated" if report.sigma_estimated else "given"
        logger.info("  noise sigma %.2f on the 0-255 scale (%s)", report.sigma * 255, how)
    logger.info("  denoised in %.2fs on %s", report.seconds if report else 0.0, denoiser.device)
    return result


def _denoise_series(denoiser, job: _Job, args: argparse.Namespace) -> None:
    """A 4D NIfTI/NRRD: every frame denoised, written in the input's layout (see ``io.series``)."""
    from .blend import residual
    from .io import read_series, write_series

    start = time.perf_counter()
    source, target = job.source, job.image.path
    logger.info("Reading %s (4D: frames along the 4th axis)", source)
    series = read_series(source)
    mask = _read_mask(args)
    logger.info(
        "Denoising %d frames of %s voxels (%s) with %s...",
        series.num_frames,
        "x".join(map(str, series.shape)),
        series.frame_label,
        denoiser.method,
    )
    result = _run_denoiser(denoiser, series, args, mask)
    write_series(result, target, overwrite=args.overwrite, inputs=(source,))
    if job.residual is not None:
        removed = result.with_array(residual(series.array, result.array))
        write_series(removed, job.residual.path, overwrite=args.overwrite, inputs=(source,))
        logger.info("Wrote the residual %s", job.residual.path)
    if job.report is not None:
        _write_report(denoiser, job, series, result)
    logger.info("Wrote %s in %.2fs total", target, time.perf_counter() - start)


def _error_line(exc: BaseException) -> str:
    """One line for the user: the library's message plus the option that would change the outcome."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    parameter = getattr(exc, "parameter", None)
    hint = _OPTION_NAMES.get(parameter) if parameter else None
    if hint is None and parameter and isinstance(exc, OptionError):
        hint = f"see --{parameter.replace('_', '-')}"
    return f"{text}; {hint}" if hint else text


# ------------------------------------------------------------------------------------------------ commands
def cmd_denoise(args: argparse.Namespace) -> int:
    from .inference import Denoiser
    from .io import detect_format, find_inputs, format_suffix, is_dicom_folder

    source, target = Path(args.input), Path(args.output)
    if not source.exists():
        raise MedDenoiseError(f"{source}: no such file or folder")
    batch = source.is_dir() and not is_dicom_folder(source)
    if batch:
        items = find_inputs(source)
        if not items:
            raise MedDenoiseError(f"{source}: no images or DICOM series found in this folder")
        if target.exists() and not target.is_dir():
            raise OutputError(f"{target}: the input is a folder, so the output must be a folder")
        if not target.exists() and detect_format(target) is not None:
            raise OutputError(
                f"{target}: the input is a folder of images, so the output must be a folder name "
                "(this one names a file)"
            )
        if target.resolve() == source.resolve():
            raise OutputError(f"{target}: the output folder is the input folder; choose another")
        if not target.exists() and not target.parent.is_dir():
            raise OutputError(f"{target}: the output folder {target.parent} does not exist")
        for option, value in (("--residual", args.residual), ("--report", args.report)):
            if value and len(items) > 1 and "{name}" not in value:
                raise OptionError(
                    f"{option} {value} would be the same file for all {len(items)} inputs; put "
                    "'{name}' in it (replaced by each input's name)"
                )
        pairs = [(item, _output_name(item, target, args.format)) for item in items]
    else:
        if args.format and target.suffix == "" and not source.is_dir():
            target = target.with_name(target.name + format_suffix(args.format))
        pairs = [(source, target)]

    # every output is checked before the model is loaded or a voxel is computed
    if getattr(args, "mask", None):
        from .io import probe_volume

        probe_volume(args.mask)  # a missing or unreadable mask fails now, not after the first denoising
    show_bar, callback = _progress(args)
    created = False
    if batch and not target.exists():
        target.mkdir()
        created = True
    jobs: list[_Job] = []
    failures: list[tuple[Path, BaseException]] = []
    planned: list = []
    for item, output in pairs:
        try:
            jobs.append(_plan_job(item, output, args, planned))
        except MedDenoiseError as exc:
            if not batch:
                raise
            failures.append((item, exc))
            sys.stderr.write(f"error: {_error_line(exc)}\n")
    try:
        denoiser = (
            Denoiser(
                method=args.model,
                weights=args.weights,
                device=args.device,
                roi_size=args.roi,
                overlap=args.overlap,
                sw_batch_size=args.sw_batch_size,
                slice_axis=args.slice_axis,
                precision=args.precision,
                scaling_mode=args.scaling,
                window=args.window,
                strength=args.strength,
                progress=show_bar,
                progress_callback=callback,
                ensemble=args.ensemble,
                modality=args.modality,
            )
            if jobs
            else None
        )
        for index, job in enumerate(jobs, 1):
            if batch:
                logger.info("[%d/%d] %s", index, len(jobs), job.source.name)
            try:
                _denoise_one(denoiser, job, args)
            except MedDenoiseError as exc:
                if not batch:
                    raise
                failures.append((job.source, exc))
                sys.stderr.write(f"error: {_error_line(exc)}\n")
    finally:
        if created and not any(target.iterdir()):
            target.rmdir()  # the folder this run made holds nothing: leave no trace
    if batch:
        done = len(pairs) - len(failures)
        summary = f"denoised {done} of {len(pairs)} inputs into {target}"
        if failures:
            sys.stderr.write(f"{summary}; {len(failures)} failed\n")
            return EXIT_FAILED
        logger.info("%s", summary)
    return EXIT_OK


def cmd_simulate(args: argparse.Namespace) -> int:
    from .inference import Progress
    from .io import ImageSpec, input_paths, plan_output, probe_volume, read_volume, write_volume
    from .transforms import parse_noise_spec, simulate_volume
    from .transforms.noise import NoiseKind

    spec = parse_noise_spec(args.noise)  # checked by the option's validator
    _check_series_uid(Path(args.input), args)
    header = probe_volume(args.input, series_uid=args.series_uid)
    plan_output(
        args.output,
        ImageSpec.of(header, dtype="float32" if args.float else None),
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
    show_bar, callback = _progress(args)
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import comparison_figure, evaluate, load_references, write_csv, write_markdown
    from .evaluation.compare import add_noise
    from .inference import Denoiser
    from .io import input_paths, plan_file
    from .transforms.intensity import sigma_from_255

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
        sys.stdout.write(table)
        logger.info("Wrote %s, %s and %s", output / "summary.md", output / "results.csv", output / "comparison.png")
        return EXIT_OK
    except BaseException:
        if created and output.is_dir() and not any(output.iterdir()):
            output.rmdir()  # a failed run leaves no empty folder of its own behind
        raise


def _info_of_folder(path: Path, args: argparse.Namespace) -> int:
    """``info`` on a folder of images: one line per input (what ``denoise`` would process), from headers only."""
    from .io import find_inputs, is_series_file, probe_volume
    from .io.series import probe_series

    items = find_inputs(path)
    if not items:
        raise MedDenoiseError(f"{path}: no images or DICOM series found in this folder")
    entries, failed = [], 0
    for item in items:
        try:
            header = probe_series(item) if is_series_file(item) else probe_volume(item)
            entries.append(
                {
                    "path": str(item),
                    "format": header.format,
                    "shape_zyx": list(header.shape),
                    "components": header.components,
                    "dtype": str(header.dtype),
                }
            )
            if header.frames > 1:
                entries[-1]["frames"] = header.frames
        except MedDenoiseError as exc:
            failed += 1
            entries.append({"path": str(item), "error": str(exc)})
    if args.json:
        sys.stdout.write(json.dumps({"path": str(path), "inputs": entries}, indent=2) + "\n")
    else:
        for entry in entries:
            if "error" in entry:
                sys.stdout.write(f"{Path(entry['path']).name}  error: {entry['error']}\n")
            else:
                shape = "x".join(map(str, entry["shape_zyx"])) + (
                    f", {entry['frames']} frames" if "frames" in entry else ""
                )
                sys.stdout.write(f"{Path(entry['path']).name}  {entry['format']}  {shape}  {entry['dtype']}\n")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    import numpy as np

    from .io import list_dicom_series, read_volume
    from .io.discovery import is_dicom_folder

    path = Path(args.input)
    if path.is_dir() and not is_dicom_folder(path):
        return _info_of_folder(path, args)
    _check_series_uid(path, args)
    volume = read_volume(path, series_uid=args.series_uid)
    array = volume.array
    keys = {
        "0008|0060": "Modality",
        "0008|103e": "SeriesDescription",
        "0020|000e": "SeriesInstanceUID",
        "0020|000d": "StudyInstanceUID",
        "0010|0020": "PatientID",
        "0008|0070": "Manufacturer",
        "0018|0050": "SliceThickness",
        "0028|1052": "RescaleIntercept",
        "0028|1053": "RescaleSlope",
        "0028|0004": "PhotometricInterpretation",
    }
    info = {
        "path": str(path),
        "format": volume.source.format,
        "shape_zyx": list(volume.shape),
        "components": volume.num_components,
        "dtype": str(array.dtype),
        "spacing_xyz_mm": list(volume.spacing),
        "origin_lps_mm": list(volume.origin),
        "direction": volume.direction.round(6).tolist(),
        "min": float(array.min()),
        "max": float(array.max()),
        "mean": float(np.mean(array, dtype=np.float64)),
        "is_2d": volume.source.is_2d,
        "dicom": {name: volume.metadata[key] for key, name in keys.items() if key in volume.metadata},
    }
    if volume.source.grid_problem:
        info["grid_problem"] = volume.source.grid_problem
    if path.is_dir() and is_dicom_folder(path):
        info["series_in_folder"] = [s.summary() for s in list_dicom_series(path)]
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return EXIT_OK
    width = max(len(k) for k in info)
    for key, value in info.items():
        if key == "dicom":
            for tag, text in value.items():
                sys.stdout.write(f"{tag:<{width}}  {text}\n")
        elif key == "series_in_folder":
            for line in value:
                sys.stdout.write(f"{'series':<{width}}  {line}\n")
        else:
            sys.stdout.write(f"{key:<{width}}  {value}\n")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from .baselines import list_baselines
    from .networks import get_network_spec, list_networks, parameter_count
    from .weights import list_shipped_weights, load_model_card

    entries = []
    shipped = list_shipped_weights()
    for spec in list_networks():
        entries.append(
            {
                "name": spec.name,
                "kind": "network",
                "parameters": parameter_count(spec.name),
                "spatial_dims": list(spec.spatial_dims),
                "weights": spec.name in shipped,
                "description": spec.description,
            }
        )
    for name in shipped:
        card = load_model_card(name)
        arch = card["architecture"]
        if name in {e["name"] for e in entries}:
            continue
        spec = get_network_spec(arch["network"])
        entries.append(
            {
                "name": name,
                "kind": "network",
                "parameters": int(arch.get("parameters") or parameter_count(spec.name)),
                "spatial_dims": [int(arch.get("spatial_dims", 2))],
                "weights": True,
                "description": card.get("description") or spec.description,
            }
        )
    for baseline in list_baselines():
        entries.append(
            {
                "name": baseline.name,
                "kind": "baseline",
                "parameters": 0,
                "spatial_dims": [2, 3] if baseline.volumetric else [2],
                "weights": False,
                "available": baseline.available(),
                "description": baseline.description,
            }
        )
    if args.json:
        sys.stdout.write(json.dumps(entries, indent=2) + "\n")
        return 0
    sys.stdout.write(f"{'name':<16} {'kind':<9} {'params':>11} {'dims':<5} {'weights':<8} description\n")
    for e in entries:
        dims = "/".join(str(d) for d in e["spatial_dims"])
        weights = (
            "shipped"
            if e["weights"]
            else ("-" if e["kind"] == "network" else ("ready" if e.get("available", True) else "missing"))
        )
        sys.stdout.write(
            f"{e['name']:<16} {e['kind']:<9} {e['parameters']:>11,} {dims:<5} {weights:<8} {e['description']}\n"
        )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(Path(args.output), model=args.model, overwrite=args.overwrite, device=args.device)
    return EXIT_OK


def cmd_train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, train

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


# -------------------------------------------------------------------------------------------------- parser
def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="only print warnings and errors")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _add_scaling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scaling",
        choices=["percentile", "minmax"],
        default=None,
        help="intensity normalization to [0, 1]: minmax, or percentile (0.5-99.5, robust to outliers)."
        " Default: what the model was trained with (minmax), percentile for baselines",
    )
    parser.add_argument(
        "--window",
        type=_window,
        metavar="CENTER,WIDTH",
        help="normalize with a CT window in HU instead (e.g. 40,400); values outside survive",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m meddenoiselib``."""
    parser = _Parser(
        prog="meddenoiselib",
        description="Medical image denoising: networks with shipped weights and classical baselines, on NIfTI, "
        "NRRD, MHA, DICOM series and 2D images.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "denoise",
        help="denoise a file, a DICOM series folder or a folder of images",
        description="Denoise INPUT into OUTPUT. INPUT: an image file, a DICOM series folder (output: "
        "a derived DICOM series folder, or a file such as out.nii.gz), or a folder of images (OUTPUT "
        "is then a folder). A 4D NIfTI or NRRD (time or gradient direction as the 4th axis) is "
        "denoised frame by frame and written in the input's layout (.nii.gz or .nrrd).",
    )
    p.add_argument("input", help="image file, DICOM series folder, or folder of images")
    p.add_argument("output", help="output file or folder (format from the suffix; no suffix = DICOM series)")
    p.add_argument(
        "--model",
        default="auto",
        help="'auto' (default): the shipped model for the scan's modality "
        "(DICOM Modality tag, else --modality, else CT if the values look like HU, else the general model); "
        "or a shipped model or baseline (see `models`)",
    )
    p.add_argument(
        "--modality",
        choices=["ct", "mr", "us", "xray", "other"],
        help="modality of inputs without a DICOM Modality tag (NIfTI, NRRD, PNG...), for --model auto "
        "and noise estimation",
    )
    p.add_argument("--weights", help="a trained .safetensors file (with its .json model card) instead of --model")
    p.add_argument(
        "--sigma",
        type=_sigma,
        default="auto",
        help="noise level on the 0-255 scale of the normalized "
        "image, or 'auto' to estimate it (used by baselines and noise-aware models)",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="compute device")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="auto: bf16 on CPUs with native bf16, fp16 on CUDA",
    )
    p.add_argument("--roi", type=_int_list, help="sliding-window size, e.g. 256 or 64,64,64 (default: model preset)")
    p.add_argument("--overlap", type=_fraction, default=0.25, help="sliding-window overlap in [0, 1) (0.25)")
    p.add_argument("--sw-batch-size", type=_positive_int, default=4, help="windows per forward pass (4)")
    p.add_argument(
        "--slice-axis",
        type=int,
        choices=[0, 1, 2],
        help="array axis for 2D models on volumes (0=z, 1=y, 2=x; default: the largest spacing)",
    )
    p.add_argument(
        "--strength", type=_unit_interval, default=1.0, help="blend: noisy + strength*(denoised-noisy), 0..1 (1)"
    )
    p.add_argument(
        "--ensemble",
        type=int,
        choices=[1, 2, 4, 8],
        default=1,
        help="networks: average over this many in-plane flips/rotations (8: about +0.2 dB, 8x time) (1)",
    )
    p.add_argument(
        "--format",
        choices=["nifti", "nrrd", "metaimage", "png", "tiff"],
        help="output format for folder inputs (default: same as each input)",
    )
    p.add_argument("--series-uid", help="DICOM SeriesInstanceUID to read when a folder holds several series")
    p.add_argument(
        "--mask",
        metavar="FILE",
        help="denoise only where this label image is non-zero (same voxel grid "
        "as the input: shape, spacing, origin, direction); voxels outside keep their input values exactly",
    )
    p.add_argument(
        "--residual",
        metavar="FILE",
        help="also write input minus denoised (float32, same geometry), "
        "e.g. residual.nii.gz (not DICOM: a residual is signed); '{name}' is replaced by each input's "
        "name for folders",
    )
    p.add_argument(
        "--report",
        metavar="FILE.json",
        help="write a reference-free quality report: noise estimate "
        "before/after, residual statistics, runtime, device ('{name}' as for --residual)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs of the same name (an existing output folder is merged into, never emptied)",
    )
    p.add_argument(
        "--progress-format",
        choices=["bar", "lines", "none"],
        default="bar",
        help="'lines' prints 'PROGRESS <fraction> <message>' lines on stderr for other programs",
    )
    _add_scaling(p)
    _add_common(p)
    p.set_defaults(handler=cmd_denoise)

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
        type=_noise,
        default="gaussian:25",
        help="MODEL:LEVEL[,...] (default gaussian:25), e.g. ct-lowdose:0.25, rician:3%%, speckle:0.2",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (0)")
    p.add_argument("--float", action="store_true", help="write float32 instead of the input's dtype")
    p.add_argument("--series-uid")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument(
        "--progress-format",
        choices=["bar", "lines", "none"],
        default="bar",
        help="'lines' prints 'PROGRESS <fraction> <message>' lines on stderr for other programs",
    )
    _add_scaling(p)
    _add_common(p)
    p.set_defaults(handler=cmd_simulate)

    p = sub.add_parser(
        "evaluate",
        help="compare methods on clean references with seeded noise (PSNR/SSIM)",
        description="Normalize each clean reference to [0, 1] (min-max), add Gaussian noise of each "
        "sigma (0-255 scale, seeded), run each method, and report PSNR (data range 1) and SSIM.",
    )
    p.add_argument("references", nargs="+", help="clean image files, DICOM series folders or folders of images")
    p.add_argument("--methods", default="median,nlm,default", help="comma-separated models/baselines")
    p.add_argument("--sigma", type=_noise_levels, default=(15.0, 25.0, 50.0), help="noise levels (15,25,50)")
    p.add_argument("--seed", type=_non_negative_int, default=0)
    p.add_argument("--max-slices", type=_positive_int, default=3, help="slices per volume (3)")
    p.add_argument("--estimate-sigma", action="store_true", help="baselines estimate sigma instead of being told")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--output", "-o", default="evaluation", help="folder for summary.md, results.csv, comparison.png")
    p.add_argument("--overwrite", action="store_true", help="replace summary.md, results.csv, comparison.png")
    _add_common(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("info", help="geometry and metadata of an image or DICOM series")
    p.add_argument("input")
    p.add_argument("--series-uid")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _add_common(p)
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser("demo", help="denoise the bundled sample CT and MR, write outputs, figure and metrics")
    p.add_argument("--output", "-o", default="demo-output", help="output folder (demo-output)")
    p.add_argument("--model", default="default")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--overwrite", action="store_true")
    _add_common(p)
    p.set_defaults(handler=cmd_demo)

    p = sub.add_parser("models", help="list networks, shipped weights and baselines")
    p.add_argument("--json", action="store_true", help="machine-readable list")
    _add_common(p)
    p.set_defaults(handler=cmd_models)

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
    p.add_argument("--val-fraction", dest="val_fraction", type=_fraction, help="files held out when no --val-inputs")
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
        type=_float_list,
        help="LOW,HIGH for --noise entries given without a range (0,50)",
    )
    p.add_argument(
        "--store-8bit-fraction",
        dest="store_8bit_fraction",
        type=_unit_interval,
        help="share of noisy samples clipped and rounded to 8 bits, as noisy PNG/JPEG files are (0)",
    )
    p.add_argument(
        "--scaling",
        choices=["minmax", "ct_window"],
        help="training (and inference) normalization: per-image minmax, or ct_window, the fixed HU map "
        "of --window (CT models)",
    )
    p.add_argument("--window", type=_window, metavar="CENTER,WIDTH", help="HU map for --scaling ct_window (40,400)")
    p.add_argument(
        "--simulate-noise",
        dest="simulate_noise",
        type=_non_negative_float,
        help="self-supervised: corrupt inputs once with this Gaussian sigma (0-255)",
    )
    p.add_argument(
        "--val-levels",
        dest="val_sigmas",
        type=_float_list,
        help="validation noise levels in the first noise model's units (15,25,50)",
    )
    p.add_argument("--mask-fraction", dest="mask_fraction", type=_open_fraction)
    p.add_argument("--patch", type=_positive_int)
    p.add_argument("--batch-size", dest="batch_size", type=_positive_int)
    p.add_argument("--steps", type=_positive_int)
    p.add_argument(
        "--stop-after",
        dest="stop_after",
        type=_positive_int,
        help="pause after this many steps (resume later with --resume)",
    )
    p.add_argument(
        "--time-budget",
        dest="time_budget",
        type=_non_negative_float,
        help="seconds to train; the step count is fitted after 50 steps (0: no limit)",
    )
    p.add_argument("--lr", type=_positive_float)
    p.add_argument("--schedule", choices=["cosine", "step", "constant"])
    p.add_argument("--warmup-steps", dest="warmup_steps", type=_non_negative_int)
    p.add_argument("--loss", choices=["l1", "mse"])
    p.add_argument("--grad-clip", dest="grad_clip", type=_non_negative_float)
    p.add_argument("--init", help="fine-tune from shipped weights (name) or a .safetensors file")
    p.add_argument("--freeze", type=_non_negative_int, help="fine-tuning: freeze this many leading layers")
    p.add_argument("--seed", type=_non_negative_int)
    p.add_argument("--checkpoint-every", dest="checkpoint_every", type=_positive_int)
    p.add_argument("--val-every", dest="val_every", type=_positive_int)
    p.add_argument(
        "--early-stop", dest="early_stop", type=_non_negative_int, help="validations without improvement before stop"
    )
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=_positive_int)
    p.add_argument(
        "--cache-dir",
        dest="cache_dir",
        help="keep per-image training maps (CT noise maps) here between runs (default: OUTPUT/cache)",
    )
    p.add_argument("--name", help="model name written into the model card")
    p.add_argument("--description", help="description written into the model card")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    _add_common(p)
    p.set_defaults(handler=cmd_train)
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
    from .io.atomic import remove_temporaries

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
        level=logging.WARNING if args.quiet else logging.INFO,
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
    from .io.itk_messages import capture_c_stderr

    previous_capture = capture_c_stderr(in_main_thread)
    try:
        with warnings.catch_warnings():
            if not args.debug:
                # third-party warnings about odd headers are for developers; problems reach users as errors
                warnings.simplefilter("ignore")
            return int(args.handler(args) or 0)
    except MedDenoiseError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"error: {_error_line(exc)}\n")
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
