"""The ``denoise`` subcommand: plan every output before computing, denoise files, DICOM series, folders and 4D
series, write outputs, residuals and QA reports."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError, MedDenoiseError, OptionError, OutputError
from ..io.gradients import gradient_table_files
from .companions import (
    copy_gradient_tables,
    plan_diffusion_table,
    plan_gradient_copies,
    plan_sidecar,
    write_diffusion_table,
    write_sidecar,
)
from .options import (
    EXIT_FAILED,
    EXIT_OK,
    add_common_options,
    add_magnitude_floor_options,
    add_modality_option,
    add_progress_format_option,
    add_scaling_options,
    check_series_uid,
    error_line,
    parse_ensemble,
    parse_fraction,
    parse_int_list,
    parse_noise_sd,
    parse_non_negative_int,
    parse_number,
    parse_positive_int,
    parse_sigma,
    parse_unit_interval,
    progress_options,
)

__all__ = ["add_parser", "cmd_denoise"]

logger = logging.getLogger("meddenoiselib.cli")


def _named_output(option: str, source: Path) -> Path:
    """An extra output's path; '{name}' is replaced by the input's name (for folders of inputs)."""
    from ..io import strip_suffix

    return Path(option.replace("{name}", strip_suffix(source.name)))


def _output_name(source: Path, output_dir: Path, fmt: str | None, root: Path | None = None) -> Path:
    """The output for one input of a folder ``root``: the input's name, or for an input in a sub-folder (DICOM
    media's patient / study / series folders) its path below ``root`` joined by ``_``, so that every series of
    every study gets its own name. ``fmt`` (``--format``) names every output's format, a DICOM series' too (a
    series folder of a folder run became a DICOM series whatever ``--format`` said)."""
    from ..io import detect_format, format_suffix, strip_suffix
    from ..io.formats import READ_ONLY_FORMATS

    parts = source.relative_to(root).parts if root is not None and source.is_relative_to(root) else (source.name,)
    name = "_".join(parts) if parts else source.name
    if source.is_dir():
        return output_dir / (name + format_suffix(fmt) if fmt else name)
    source = source.with_name(name)
    if fmt:
        return output_dir / (strip_suffix(source.name) + format_suffix(fmt))
    if source.name.lower().endswith((".hdr", ".hdr.gz")) or detect_format(source) in READ_ONLY_FORMATS:
        # a NIfTI pair becomes one file; what is read but not written (PAR/REC, MINC) becomes NIfTI
        return output_dir / (strip_suffix(source.name) + format_suffix("nifti"))
    return output_dir / source.name  # same format (an extension-less DICOM file keeps its name)


@dataclass
class _Job:
    """One input of a denoise run with its checked outputs."""

    source: Path
    header: object
    image: object
    residual: object | None = None
    noise_map: object | None = None
    report: object | None = None
    series: bool = False
    # --preview-slice: (the volume or series, read while planning as its slice axis needs it; the noisy slice)
    preview: tuple | None = None
    # a diffusion NIfTI's FSL gradient table: (the input's .bval / .bvec, its planned copy beside the output)
    gradients: tuple = ()
    # a DICOM series of frames (several images at every slice position) written as a 4D file
    dicom_frames: bool = False
    # its diffusion encoding written beside a NIfTI output: (the DiffusionTable, the planned .bval, .bvec or None)
    diffusion: tuple | None = None
    # a NIfTI output's JSON sidecar: (the planned file, the input's sidecar values or None for a DICOM input)
    sidecar: tuple | None = None
    # --split-uneven: the evenly spaced part of an uneven DICOM series this job writes (io.uneven.UnevenPart), and
    # the read shared by the series' parts (the series is read once)
    part: object | None = None
    shared_read: dict | None = None
    # --correct-tilt: the gantry tilt (degrees) the written grid was corrected for; 0 when there was none
    tilt_corrected: float = 0.0
    # --dicom-like: the DICOM series the input was converted from, whose grid and headers the result is written on
    dicom_like: Path | None = None


def _plan_job(
    source: Path,
    target: Path,
    args: argparse.Namespace,
    planned: list,
    typed: bool = False,
    part=None,
    probed=None,
    name_of: Path | None = None,
) -> list[_Job]:
    """Probe one input and plan its image, residual and report outputs, before any computation (``typed``: the
    image output's name is the one given on the command line, not derived from the input's in a folder run;
    ``name_of``: what '{name}' in the extra outputs' paths stands for, the input by default, the output for one of
    several series of a folder, ``--all-series``).

    One job, or with ``--split-uneven`` one per evenly spaced part of a DICOM series whose slices one affine cannot
    place (``part``: the part a job writes, ``probed``: the series' header, probed once)."""
    from ..io import (
        ImageSpec,
        check_typed_output_name,
        detect_format,
        input_paths,
        is_series_file,
        plan_file,
        plan_output,
        probe_volume,
    )
    from ..io.series import plan_series_output, probe_series

    check_series_uid(source, args)
    series = is_series_file(source)
    if probed is not None:
        header = probed
    else:
        header = probe_series(source) if series else probe_volume(source, series_uid=args.series_uid)
    if header.mask_kind:
        raise InputError(
            f"{source}: {header.mask_kind}, not an image to denoise (as --mask it restricts denoising to its inside)"
        )
    labels = [path for path in (getattr(args, name, None) for name in _LABEL_OPTIONS) if path]
    tables = gradient_table_files(source) if series else ()
    noise_map = [args.noise_sd_map] if _noise_map_file(args) else []
    protected = input_paths([source, *header.files, *labels, *tables, *noise_map])
    if getattr(args, "dicom_like", None):
        header = _dicom_like_header(source, header, Path(args.dicom_like), series)
        protected = input_paths([*protected, *header.files])
    preview, written = None, header
    if getattr(args, "preview_slice", None) is not None:
        preview = _preview_slab(source, header, args, series)
        written = preview[1]
        if header.format == "dicom-file" and header.shape[0] > 1 and detect_format(target) is None:
            raise OutputError(
                f"{target}: a preview of one frame of the multi-frame DICOM file {source} is not written as DICOM; "
                "name a .nii.gz, .nrrd or .mha output"
            )
    elif getattr(args, "preview_frame", None) is not None:
        raise OptionError("--preview-frame picks the frame of --preview-slice; give --preview-slice too")
    if series and preview is None and getattr(args, "measure", None):
        raise OptionError(f"{source}: --measure measures one volume; of a 4D series, measure a frame's preview")
    spec = ImageSpec.of(written)
    dicom_frames = preview is None and _frames_written_as_series(header, source, target)
    if dicom_frames:
        series, spec = True, _frame_spec(header)
    plan = plan_series_output if series and preview is None else plan_output  # a preview is one slice of a volume
    if typed:
        check_typed_output_name(target, spec)
    if part is None and preview is None and not series:
        parts = _uneven_parts_written(header, source, target, args)
        if parts:
            shared: dict = {}
            jobs = []
            for each in parts:
                jobs += _plan_job(
                    source, _part_path(target, each), args, planned, typed, part=each, probed=header, name_of=name_of
                )
                jobs[-1].shared_read = shared
            return jobs
    if part is not None:
        spec = replace(
            spec,
            shape=(part.slices, *spec.shape[1:]),
            dicom_files=spec.dicom_files[part.start : part.stop],
            grid_problem="",
        )
    image = plan(target, spec, role="image", overwrite=args.overwrite, protected=protected, others=planned)
    if getattr(args, "correct_tilt", False) and image.format in ("dicom-series", "dicom-file"):
        raise OptionError(
            f"{target}: --correct-tilt resamples a tilted-gantry grid for a volume file (.nii.gz, .nrrd, ...); "
            "a DICOM output keeps every slice's own position, which needs no correction"
        )
    job = _Job(source, header, image, series=series, preview=preview, dicom_frames=dicom_frames, part=part)
    if getattr(args, "dicom_like", None):
        job.dicom_like = Path(args.dicom_like)
    if tables and preview is None:
        job.gradients = plan_gradient_copies(tables, image.path, args, protected, [*planned, image])
    if dicom_frames:
        job.diffusion = plan_diffusion_table(header, source, image.path, args, protected, [*planned, image])
    if args.residual:
        job.residual = plan(
            _part_path(_named_output(args.residual, name_of or source), part),
            replace(spec, dtype=_FLOAT32),
            role="residual",
            overwrite=args.overwrite,
            protected=protected,
            others=[*planned, image],
        )
    if getattr(args, "noise_map", None):
        job.noise_map = plan(
            _part_path(_named_output(args.noise_map, name_of or source), part),
            replace(spec, dtype=_FLOAT32),
            role="noise map",
            overwrite=args.overwrite,
            protected=protected,
            others=[*planned, image] + ([job.residual] if job.residual else []),
        )
    if args.report:
        job.report = plan_file(
            _part_path(_named_output(args.report, name_of or source), part),
            "report",
            (".json",),
            overwrite=args.overwrite,
            protected=protected,
            others=[*planned, image] + [p for p in (job.residual, job.noise_map) if p is not None],
        )
    if preview is None:
        job.sidecar = plan_sidecar(header, source, image.path, args, protected, [*planned, image], job.report)
    outputs = (job.image, job.residual, job.noise_map, job.report, job.sidecar and job.sidecar[0])
    planned.extend(p for p in outputs if p is not None)
    planned.extend(copy for _, copy in job.gradients)
    if job.diffusion is not None:
        planned.extend(table for table in job.diffusion[1:] if table is not None)
    return [job]


def _dicom_like_header(source: Path, header, series_path: Path, series: bool):
    """``--dicom-like``: the header of the DICOM series a volume file was converted from, which the job's outputs are
    planned on (its shape, files and DICOM output), after the checks a header allows; the grids and values are
    matched when the input is read (:func:`~meddenoiselib.io.dicom_like.on_dicom_grid`)."""
    from ..io import probe_volume

    if header.dicom is not None:
        raise OptionError(f"{source}: --dicom-like is for a volume file converted from DICOM; this input is DICOM")
    if series:
        raise OptionError(f"{source}: --dicom-like takes one 3D volume; this is a 4D series")
    template = probe_volume(series_path)
    if template.dicom is None:
        raise OptionError(f"{series_path}: --dicom-like names the DICOM series (a folder or file) the input came from")
    if template.grid_problem:
        raise InputError(f"{series_path}: {template.grid_problem}; a volume file converted from it cannot match it")
    if sorted(template.shape) != sorted(header.shape) or template.components != header.components:
        raise InputError(
            f"{source}: {'x'.join(map(str, header.shape))} voxels, the DICOM series {series_path} "
            f"{'x'.join(map(str, template.shape))}: not converted from it, or cropped or resampled since"
        )
    return replace(template, dtype=header.dtype)


def _uneven_parts_written(header, source: Path, target: Path, args: argparse.Namespace) -> list:
    """The evenly spaced parts an uneven DICOM series is written as (``--split-uneven``, a file output of one affine:
    NIfTI, NRRD, MGH, MetaImage, TIFF); empty when the output is a DICOM series or the slices lie on one grid.

    Raises:
        OutputError: such an output without ``--split-uneven`` (the message says what the flag would write).
        OptionError: ``--split-uneven`` with label maps on the whole series' grid (``--mask``, ``--exclude``,
            ``--measure``).
    """
    from ..io import detect_format
    from ..io.outputs import SINGLE_GRID_FORMATS
    from ..io.uneven import uneven_parts

    fmt = detect_format(target)
    if fmt not in SINGLE_GRID_FORMATS:
        return []
    parts = uneven_parts(header)
    if not parts:
        return []
    described = ", ".join(
        f"{part.slices} slices {part.step:.4g} mm apart" if part.slices > 1 else "1 slice" for part in parts
    )
    if not getattr(args, "split_uneven", False):
        raise OutputError(
            f"{target}: {header.grid_problem}, so a {fmt.upper()} affine would put slices in the wrong place; write "
            f"a DICOM series (a folder name) instead, or give --split-uneven to write its {len(parts)} evenly "
            f"spaced parts ({described}) as {_part_path(target, parts[0]).name} ... "
            f"{_part_path(target, parts[-1]).name}"
        )
    labels = [f"--{name}" for name in _LABEL_OPTIONS if getattr(args, name, None)]
    if labels:
        raise OptionError(
            f"{source}: {' and '.join(labels)} label the whole series' grid, which the evenly spaced parts of "
            "--split-uneven do not share; write a DICOM series (a folder name) instead"
        )
    logger.info("%s: %s; written as %d evenly spaced parts (%s)", source, header.grid_problem, len(parts), described)
    return parts


def _part_path(path: Path, part) -> Path:
    """``out.nii.gz`` -> ``out_part2.nii.gz`` for the second evenly spaced part; ``path`` itself without a part."""
    if part is None:
        return path
    from ..io import strip_suffix

    stem = strip_suffix(path.name)
    return path.with_name(f"{stem}_part{part.number}{path.name[len(stem) :]}")


#: residuals and noise maps are written as float32
_FLOAT32 = np.dtype("float32")

#: the formats a 4D series is written in
_SERIES_FORMATS = ("nifti", "nrrd", "mgh", "tiff")


def _frames_written_as_series(header, source: Path, target: Path) -> bool:
    """Whether a DICOM input holds several images at every slice position (a DWI, fMRI, multi-echo series, or an
    enhanced file of one) and ``target`` names a 4D file: it is then written as the 4D series it is denoised as.

    Raises:
        OutputError: Siemens mosaics without their CSA header (anonymised) to a 4D file: the direction in which a
            mosaic's slices follow each other is only there, so an affine could put them upside down.
    """
    from ..io import detect_format

    stack = header.dicom
    if stack is None or detect_format(target) not in _SERIES_FORMATS:
        return False
    if stack.mosaic is not None and stack.mosaic.slice_normal is None:
        raise OutputError(
            f"{target}: {source} holds Siemens mosaics without their CSA header, whose slice normal says which way "
            "their slices run, so a 4D file's affine could put them upside down; give a folder name to write "
            "denoised mosaics"
        )
    return stack.repeated_frames > 1 or stack.mosaic is not None


def _frame_spec(header):
    """The spec of one frame of a DICOM series of frames: ``(P, Y, X)`` on the positions' grid (a mosaic's tiles)."""
    from ..io import ImageSpec

    stack = header.dicom
    if stack.mosaic is not None:
        shape = (stack.mosaic.images, stack.mosaic.tile_rows, stack.mosaic.tile_columns)
    else:
        shape = (header.shape[0] // stack.repeated_frames, *header.shape[1:3])
    return ImageSpec(
        shape=shape,
        components=header.components,
        dtype=header.dtype,
        source_format=header.format,
    )


def _preview_slab(source: Path, header, args: argparse.Namespace, series: bool):
    """For ``--preview-slice K`` (and ``--preview-frame T`` of a 4D series): the input volume or series and its
    noisy slice K (along the axis the denoiser runs on; of frame T), whose denoised version is what is written.

    Raises:
        OptionError: K or T is outside the input, or T is given for one volume.
    """
    from ..inference import preview_slab
    from ..io import read_series, read_volume

    frame = getattr(args, "preview_frame", None)
    if not series and frame is not None:
        raise OptionError(f"--preview-frame {frame}: {source} is one volume, not a 4D series")
    image = read_series(source) if series else read_volume(source, series_uid=args.series_uid)
    try:
        return image, preview_slab(image, args.preview_slice, args.slice_axis, frame)
    except OptionError as exc:
        raise OptionError(f"--preview-slice {args.preview_slice}: {source}: {exc}") from None


def _metal_hu(text: str) -> float | str:
    """``--metal``: a finite HU value, or ``"off"``."""
    return "off" if text.strip().lower() == "off" else parse_number(text, "an HU value or 'off'")


def _warn_if_resampled(image, source: Path) -> None:
    """Say so when the input's header shows it was resampled (user need 21: denoise the rawest data)."""
    from ..io.provenance import resampling_warning

    warning = resampling_warning(image, source)
    if warning:
        logger.warning("%s", warning)


#: the options naming a label image on the input's grid
_LABEL_OPTIONS = ("mask", "exclude", "measure")


def _read_masks(args: argparse.Namespace) -> dict:
    """``mask=`` and ``exclude=`` of the denoiser: the ``--mask`` and ``--exclude`` volumes, or None."""
    from ..io.segmentation import read_mask_image

    paths = {name: getattr(args, name, None) for name in ("mask", "exclude")}
    return {name: read_mask_image(path) if path else None for name, path in paths.items()}


def _read_regions(args: argparse.Namespace, volume) -> list | None:
    """``--measure``'s regions ``(label, name, inside)`` (each segment of a Slicer segmentation, overlapping ones
    whole; else each label value), checked against ``volume``'s grid before anything is computed; None without it."""
    if not getattr(args, "measure", None):
        return None
    from ..blend import mask_array
    from ..inference import preview_slab
    from ..io import read_volume
    from ..io.probe import slicer_segments
    from ..io.segmentation import label_regions, union_of_labels

    labels = read_volume(args.measure)
    mask_array(volume, union_of_labels(labels), "the regions")
    if getattr(args, "preview_slice", None) is not None:
        labels = preview_slab(labels, args.preview_slice, args.slice_axis)  # the previewed slice's regions
    return label_regions(labels, slicer_segments(args.measure))


def _measure(args: argparse.Namespace, regions: list | None, noisy, result) -> dict:
    """``--measure``: mean, SD and SNR per region before and after (logged; returned for the report), or empty."""
    if regions is None:
        return {}
    from ..evaluation.regions import CNR_DEFINITION, contrast_to_noise, statistics_in_regions

    rows = statistics_in_regions(noisy, result, regions)
    for row in rows:
        logger.info(
            "  region %d%s: SD %.4g -> %.4g, mean %.4g -> %.4g (%d voxels)",
            row["label"],
            f" ({row['name']})" if row["name"] else "",
            row["sd_before"],
            row["sd_after"],
            row["mean_before"],
            row["mean_after"],
            row["voxels"],
        )
    values: dict = {"regions": rows}
    if len(rows) >= 2:
        cnr = {when: contrast_to_noise(rows[0], rows[1], when) for when in ("before", "after")}
        values["cnr"] = {**cnr, "definition": CNR_DEFINITION}
        logger.info("  CNR of regions %d and %d: %.3g -> %.3g", rows[0]["label"], rows[1]["label"], *cnr.values())
    return values


def _write_report(denoiser, job: _Job, noisy, result, measured: dict, args: argparse.Namespace) -> None:
    from ..evaluation import run_report
    from ..io.atomic import write_text_atomic

    values = run_report(denoiser, noisy, result)
    values.update(measured)
    if getattr(args, "noise_sd", None) is not None:
        report = denoiser.last_report
        values.update(noise_sd_given=args.noise_sd, noise_sd_units=_noise_units(report.modality if report else ""))
    values.update(input=str(job.source), output=str(job.image.path), meddenoiselib_version=__version__)
    if job.tilt_corrected:
        values["gantry_tilt_corrected_degrees"] = round(job.tilt_corrected, 3)
    write_text_atomic(job.report.path, json.dumps(values, indent=2) + "\n")
    if "noise_before_hu" in values:
        logger.info(
            "  noise in flat body tissue %.1f -> %.1f HU (%d blocks of 24x24 px); finest detail %.2f -> %.2f on the "
            "0-255 scale; report %s",
            values["noise_before_hu"],
            values["noise_after_hu"],
            values["noise_hu_blocks"],
            values["noise_sigma_before_0_255"],
            values["noise_sigma_after_0_255"],
            job.report.path,
        )
        return
    logger.info(
        "  noise estimate %.4g -> %.4g (image units: %s; %.2f -> %.2f on the 0-255 scale); report %s",
        values["noise_sd_before"],
        values["noise_sd_after"],
        values["noise_sd_measure"],
        values["noise_sigma_before_0_255"],
        values["noise_sigma_after_0_255"],
        job.report.path,
    )


def _denoise_one(denoiser, job: _Job, args: argparse.Namespace) -> None:
    from ..io import write_volume

    if job.series and job.preview is None:
        _denoise_series(denoiser, job, args)
        return
    start = time.perf_counter()
    if job.preview is None:
        volume = _read_job_volume(job, args)
    else:
        volume = job.preview[0]
    _warn_if_resampled(volume, job.source)
    masks = _read_masks(args)
    regions = _read_regions(args, volume)
    if job.preview is None:
        logger.info("Denoising %s voxels with %s...", "x".join(map(str, volume.shape)), denoiser.method)
    else:
        logger.info(
            "Previewing slice %d%s of %s voxels (along axis %d) with %s...",
            args.preview_slice,
            f" of frame {args.preview_frame or 0}" if job.series else "",
            "x".join(map(str, volume.shape)),
            denoiser.slice_axis_for(volume),
            denoiser.method,
        )
    result = _run_denoiser(denoiser, volume, args, masks)
    if job.preview is not None:
        volume = job.preview[1]  # the noisy slice, for the residual and the report
    target = job.image.path
    write_volume(
        _on_written_grid(result, args, job=job),
        target,
        overwrite=args.overwrite,
        inputs=(job.source,),
        derivation=f"Denoised with MedDenoise {__version__} ({denoiser.method})",
    )
    if job.sidecar is not None:
        write_sidecar(job.sidecar, denoiser, volume.metadata)
    if job.residual is not None or job.noise_map is not None:
        from ..evaluation import noise_map_volume, residual_volume

        removed = residual_volume(volume, result)
        if job.residual is not None:
            _write_qa_volume(_on_written_grid(removed, args, fill=0.0), job.residual.path, job, args, "residual")
        if job.noise_map is not None:
            noise = _on_written_grid(noise_map_volume(removed), args, fill=0.0)
            _write_qa_volume(noise, job.noise_map.path, job, args, "noise map")
    measured = _measure(args, regions, volume, result)
    if job.report is not None:
        _write_report(denoiser, job, volume, result, measured, args)
    logger.info("Wrote %s in %.2fs total", target, time.perf_counter() - start)


def _on_written_grid(data, args: argparse.Namespace, fill: float | None = None, job: _Job | None = None):
    """``data`` (a volume or series) on the grid it is written on: with ``--correct-tilt`` a tilted-gantry grid
    resampled onto its planes' orthogonal grid (``fill`` outside: default the data's minimum; 0 for a residual or a
    noise map), else as it is. ``job``: the job whose image this is (what was done is logged and kept for its
    report)."""
    if not getattr(args, "correct_tilt", False):
        return data
    from ..io.tilt import correct_tilt, gantry_tilt_degrees

    corrected = correct_tilt(data, fill=fill)
    if job is not None and corrected is data:
        logger.info("  --correct-tilt: no gantry tilt to correct (one slice, or slices square to their planes)")
    elif job is not None:
        job.tilt_corrected = gantry_tilt_degrees(data.direction)
        logger.info(
            "  corrected a gantry tilt of %.3g degrees: resampled onto an orthogonal grid of %s voxels, slices %.4g "
            "mm apart",
            job.tilt_corrected,
            "x".join(map(str, corrected.shape)),
            corrected.spacing[2],
        )
    return corrected


def _read_job_volume(job: _Job, args: argparse.Namespace):
    """The volume a job denoises: its input, or with ``--split-uneven`` its part of the series (read once for all
    the parts: the first part's job keeps it for the others, the last lets it go)."""
    from ..io import read_volume
    from ..io.uneven import volume_part

    if job.dicom_like is not None:
        from ..io.dicom_like import on_dicom_grid

        logger.info("Reading %s, on the grid of the DICOM series %s", job.source, job.dicom_like)
        return on_dicom_grid(read_volume(job.source), read_volume(job.dicom_like), str(job.source))
    if job.part is None:
        logger.info("Reading %s", job.source)
        return read_volume(job.source, series_uid=args.series_uid)
    shared = job.shared_read if job.shared_read is not None else {}
    if "volume" not in shared:
        logger.info("Reading %s", job.source)
        shared["volume"] = read_volume(job.source, series_uid=args.series_uid)
    whole = shared["volume"]
    part = job.part
    if part.stop == whole.shape[0]:
        shared.pop("volume", None)
    logger.info("Part %d: slices %d-%d, %.4g mm apart", part.number, part.start, part.stop - 1, part.step)
    return volume_part(whole, job.header, part)


#: DICOM DerivationDescription of the QA volumes written beside a result
_QA_DERIVATIONS = {
    "residual": "Residual (input minus denoised), MedDenoise",
    "noise map": "Noise map (local standard deviation of input minus denoised), MedDenoise",
}


def _write_qa_volume(volume, path: Path, job: _Job, args: argparse.Namespace, role: str) -> None:
    """Write a residual or noise map beside the result (float32, the input's geometry, never over an input)."""
    from ..io import write_volume

    write_volume(
        volume,
        path,
        overwrite=args.overwrite,
        inputs=(job.source,),
        role=role,
        description_suffix=f" {role}",
        derivation=_QA_DERIVATIONS[role],
    )
    logger.info("Wrote the %s %s", role, path)


def _given_noise(args: argparse.Namespace):
    """``sigma`` for the Denoiser: ``--noise-sd`` in the image's units, ``--sigma`` (the 0-255 scale of the CLI,
    converted here) or ``"auto"``."""
    from ..transforms.intensity import NoiseSD, sigma_from_255

    if getattr(args, "noise_sd_map", None):
        from ..transforms.noise_sd_map import NoiseSDMap

        return NoiseSDMap.named_by(args.noise_sd_map)
    if getattr(args, "noise_sd", None) is not None:
        return NoiseSD(args.noise_sd)
    return args.sigma if args.sigma == "auto" else sigma_from_255(float(args.sigma))


def _noise_units(modality: str) -> str:
    return "HU" if modality == "ct" else "(image units)"


def _run_denoiser(denoiser, data, args: argparse.Namespace, masks: dict):
    """Denoise a volume or series with ``--sigma`` or ``--noise-sd`` and ``masks`` (:func:`_read_masks`), and log
    the model chosen, the noise level and the time."""
    sigma = _given_noise(args)
    if getattr(args, "preview_slice", None) is not None:  # --preview-frame is refused for one volume when planning
        frame = getattr(args, "preview_frame", None)
        result = denoiser.preview(data, args.preview_slice, sigma=sigma, frame=frame, **masks)
    else:
        result = denoiser.denoise(data, sigma=sigma, **masks)
    report = denoiser.last_report
    if report is not None and report.choice:
        logger.info("  model: %s", report.choice)
    if report is not None and report.stabilized:
        logger.info("  %s", report.stabilized)
    if report is not None and report.refined > 0:
        logger.info(
            "  refined: averaged with %d %% of its collaborative Wiener filtering (%s)",
            round(report.refined * 100),
            report.refine_detail,
        )
    given = sigma != "auto" and not getattr(args, "noise_sd_map", None)  # a map is used by every method
    if report is not None and given and not report.sigma_used:
        option = "--noise-sd" if getattr(args, "noise_sd", None) is not None else "--sigma"
        logger.warning(
            "  %s was not used: %s is a blind network%s",
            option,
            report.method,
            ", and its refinement measures the CT's noise spectrum itself" if report.refined else "",
        )
    elif report is not None and report.sigma is not None:
        how = "estimated" if report.sigma_estimated else "given"
        if getattr(args, "noise_sd", None) is not None:
            units = _noise_units(report.modality)
            logger.info(
                "  noise SD %g %s given: sigma %.2f on the 0-255 scale of the method's scaling",
                args.noise_sd,
                units,
                report.sigma * 255,
            )
        else:
            logger.info("  noise sigma %.2f on the 0-255 scale (%s)", report.sigma * 255, how)
    logger.info("  denoised in %.2fs on %s", report.seconds if report else 0.0, denoiser.device)
    if report is not None and report.modality == "mr" and not report.noise_sd_map:  # auto reads a map where it varies
        _warn_if_the_floor_varies(data)
    return result


def _warn_if_the_floor_varies(data) -> None:
    """Magnitude MR whose floor differs between two halves of the image: one level fits neither (a warning)."""
    from ..io.series import VolumeSeries
    from ..transforms.magnitude import varying_floor_note

    note = varying_floor_note(data.frame(0).array if isinstance(data, VolumeSeries) else data.array)
    if note is not None:
        logger.warning("  the magnitude noise floor varies across the image: %s", note)


def _denoise_series(denoiser, job: _Job, args: argparse.Namespace) -> None:
    """A 4D NIfTI/NRRD: every frame denoised, written in the input's layout (see ``io.series``)."""
    from ..blend import residual
    from ..io import read_series, write_series

    start = time.perf_counter()
    source, target = job.source, job.image.path
    if job.dicom_frames:
        from ..io import read_volume
        from ..io.series import series_of_repeated_frames

        logger.info("Reading %s", source)
        series = series_of_repeated_frames(read_volume(source, series_uid=args.series_uid))
    else:
        logger.info("Reading %s (4D: frames along the 4th axis)", source)
        series = read_series(source)
    _warn_if_resampled(series, source)
    masks = _read_masks(args)
    logger.info(
        "Denoising %d frames of %s voxels (%s) with %s...",
        series.num_frames,
        "x".join(map(str, series.shape)),
        series.frame_label,
        denoiser.method,
    )
    result = _run_denoiser(denoiser, series, args, masks)
    table = job.diffusion[0] if job.diffusion is not None else None
    gradients = None if table is None or table.directions is None else (table.b_values, table.directions)
    write_series(
        _on_written_grid(result, args, job=job), target, overwrite=args.overwrite, inputs=(source,), gradients=gradients
    )
    copy_gradient_tables(job.gradients)
    if job.diffusion is not None:
        write_diffusion_table(job.diffusion, result)
    if job.sidecar is not None:
        write_sidecar(job.sidecar, denoiser, series.metadata)
    removed = None
    if job.residual is not None or job.noise_map is not None:
        removed = result.with_array(residual(series.array, result.array))
    if job.residual is not None:
        write_series(
            _on_written_grid(removed, args, fill=0.0),
            job.residual.path,
            overwrite=args.overwrite,
            inputs=(source,),
            role="residual",
        )
        logger.info("Wrote the residual %s", job.residual.path)
    if job.noise_map is not None:
        from ..evaluation import noise_map_volume

        write_series(
            _on_written_grid(noise_map_volume(removed), args, fill=0.0),
            job.noise_map.path,
            overwrite=args.overwrite,
            inputs=(source,),
            role="noise map",
        )
        logger.info("Wrote the noise map %s", job.noise_map.path)
    if job.report is not None:
        _write_report(denoiser, job, series, result, {}, args)
    logger.info("Wrote %s in %.2fs total", target, time.perf_counter() - start)


def _noise_map_file(args: argparse.Namespace) -> bool:
    """``--noise-sd-map`` names a file (``auto`` estimates a map from each image)."""
    from ..transforms.noise_sd_map import ESTIMATED_OPTION

    return bool(getattr(args, "noise_sd_map", None)) and args.noise_sd_map != ESTIMATED_OPTION


def _check_noise_map_options(source: Path, noise_map: Path, args: argparse.Namespace) -> None:
    """``--noise-sd-map`` gives one image's noise per voxel: not with another noise level, nor (a file) with a folder
    (``auto``, a map per image, takes folders)."""
    if getattr(args, "noise_sd", None) is not None or args.sigma != "auto":
        raise OptionError("--noise-sd-map gives the noise level voxel by voxel: leave out --sigma and --noise-sd")
    from ..io import is_dicom_folder

    if not _noise_map_file(args):
        return
    if source.is_dir() and (getattr(args, "all_series", False) or not is_dicom_folder(source)):
        raise OptionError(
            f"{source}: --noise-sd-map FILE lies on one image's voxel grid; give that image, not a folder (or "
            "--noise-sd-map auto, which reads a map from each image)"
        )
    if not noise_map.is_file():
        raise OptionError(f"{noise_map}: no such file (--noise-sd-map)")


def _check_all_series_options(source: Path, args: argparse.Namespace) -> None:
    """``--all-series`` denoises every series of a folder (each on its own grid): one series' options refused."""
    if not source.is_dir():
        raise OptionError(f"{source}: --all-series denoises every DICOM series of a folder; this is a file")
    if args.series_uid:
        raise OptionError("--all-series denoises every series of a folder, --series-uid one of them: give one")
    labels = [f"--{name.replace('_', '-')}" for name in _LABEL_OPTIONS if getattr(args, name, None)]
    if labels:
        raise OptionError(
            f"{' and '.join(labels)} lie on one series' voxel grid, and --all-series denoises several: denoise that "
            "series alone (--series-uid)"
        )


def _every_series(pairs: list, root: Path, target: Path, fmt: str | None) -> list[tuple[Path, Path, str | None]]:
    """``--all-series``: every folder of ``pairs`` that holds several DICOM series (a PACS export, a CD's study
    folder) as one ``(folder, output, series UID)`` per series, largest first; other inputs as they are. A series'
    output is named by its number and description (``io.dicom.DicomSeries.file_name``): ``OUTPUT/3_HELICAL_CHEST``
    for the series of the folder given, after the sub-folder's name for one found inside it. The series of the folder
    given are listed that way even when there is one."""
    from ..io import format_suffix, list_dicom_series
    from ..io.dicom import series_file_names

    expanded = []
    for item, output, _ in pairs:
        series = list_dicom_series(item) if item.is_dir() else []
        if len(series) < 2 and item != root:
            expanded.append((item, output, None))
            continue
        prefix = () if item == root else item.relative_to(root).parts
        for each, name in zip(series, series_file_names(series), strict=True):
            stem = "_".join((*prefix, name))
            expanded.append((item, target / (stem + format_suffix(fmt) if fmt else stem), each.uid))
        logger.info("%s: %d DICOM series, each denoised into its own output", item, len(series))
    return expanded


def _hint_all_series(error: MedDenoiseError, source: Path) -> None:
    """A folder whose largest series is ambiguous: name --all-series beside --series-uid."""
    if getattr(error, "parameter", None) == "series_uid" and source.is_dir() and error.args:
        error.args = (
            f"{error.args[0]}; choose one with --series-uid, or denoise every series into an output folder with "
            "--all-series",
        )
        error.parameter = None  # the hint is in the message


def cmd_denoise(args: argparse.Namespace) -> int:
    from ..inference import Denoiser
    from ..io import detect_format, find_inputs, format_suffix, is_dicom_folder

    source, target = Path(args.input), Path(args.output)
    if not source.exists():
        raise MedDenoiseError(f"{source}: no such file or folder")
    if getattr(args, "noise_sd", None) is not None and args.sigma != "auto":
        raise OptionError("--sigma and --noise-sd both give the noise level: give one")
    if getattr(args, "noise_sd_map", None):
        _check_noise_map_options(source, Path(args.noise_sd_map), args)
    all_series = getattr(args, "all_series", False)
    if all_series:
        _check_all_series_options(source, args)
    if getattr(args, "dicom_like", None) and (source.is_dir() or getattr(args, "preview_slice", None) is not None):
        raise OptionError(
            f"{source}: --dicom-like writes one whole volume file on the grid of its DICOM series; give that file "
            "(and no --preview-slice)"
        )
    dicom_folder = source.is_dir() and is_dicom_folder(source)
    batch = source.is_dir() and (not dicom_folder or all_series)
    if batch and getattr(args, "preview_slice", None) is not None:
        raise OptionError(f"{source}: --preview-slice previews one volume; give one file or DICOM series, not a folder")
    if batch:
        items = [source] if dicom_folder else find_inputs(source, recursive=getattr(args, "recursive", False))
        # an output folder inside the input folder holds the results of an earlier run, not inputs
        items = [item for item in items if not item.resolve().is_relative_to(target.resolve())]
        if not items:
            hint = "" if getattr(args, "recursive", False) else " (--recursive searches its sub-folders too)"
            raise MedDenoiseError(f"{source}: no images or DICOM series found in this folder{hint}")
        if target.exists() and not target.is_dir():
            raise OutputError(f"{target}: the input is a folder, so the output must be a folder")
        if not target.exists() and detect_format(target) is not None:
            what = "DICOM series, each written" if all_series else "images"
            raise OutputError(
                f"{target}: the input is a folder of {what}, so the output must be a folder name (this one names a "
                "file)"
            )
        if target.resolve() == source.resolve():
            raise OutputError(f"{target}: the output folder is the input folder; choose another")
        if not target.exists() and not target.parent.is_dir():
            raise OutputError(f"{target}: the output folder {target.parent} does not exist")
        pairs = [(item, _output_name(item, target, args.format, source), None) for item in items]
        if all_series:
            pairs = _every_series(pairs, source, target, args.format)
        for option, value in (
            ("--residual", args.residual),
            ("--noise-map", args.noise_map),
            ("--report", args.report),
        ):
            if value and len(pairs) > 1 and "{name}" not in value:
                raise OptionError(
                    f"{option} {value} would be the same file for all {len(pairs)} inputs; put "
                    "'{name}' in it (replaced by each input's name)"
                )
    else:
        if args.format and target.suffix == "" and not source.is_dir():
            target = target.with_name(target.name + format_suffix(args.format))
        pairs = [(source, target, None)]

    # every output is checked before the model is loaded or a voxel is computed
    for labels in (getattr(args, name, None) for name in _LABEL_OPTIONS):
        if labels:
            from ..io import probe_volume

            probe_volume(labels)  # a missing or unreadable mask fails now, not after the first denoising
    show_bar, callback = progress_options(args)
    created = False
    if batch and not target.exists():
        target.mkdir()
        created = True
    jobs: list[tuple[_Job, argparse.Namespace]] = []  # each with the options it runs with (its series' UID)
    failures: list[tuple[tuple, BaseException]] = []  # keyed by (input, series UID)
    planned: list = []
    for item, output, uid in pairs:
        job_args = args if uid is None else argparse.Namespace(**{**vars(args), "series_uid": uid})
        try:
            planned_jobs = _plan_job(
                item, output, job_args, planned, typed=not batch, name_of=None if uid is None else output
            )
            jobs.extend((job, job_args) for job in planned_jobs)
        except MedDenoiseError as exc:
            if not batch:
                _hint_all_series(exc, item)
                raise
            failures.append(((item, uid), exc))
            sys.stderr.write(f"error: {error_line(exc)}\n")
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
                refine=args.refine,
                magnitude_floor=args.magnitude_floor,
                coils=args.coils,
                stabilize=args.stabilize,
                **({} if args.metal is None else {"metal_hu": None if args.metal == "off" else args.metal}),
            )
            if jobs
            else None
        )
        for index, (job, job_args) in enumerate(jobs, 1):
            if batch:
                what = job.source.name if job_args.series_uid is None else f"{job.source.name}: {job.image.path.name}"
                logger.info("[%d/%d] %s", index, len(jobs), what)
            try:
                _denoise_one(denoiser, job, job_args)
            except MedDenoiseError as exc:
                if not batch:
                    raise
                failures.append(((job.source, job_args.series_uid), exc))
                sys.stderr.write(f"error: {error_line(exc)}\n")
    finally:
        if created and not any(target.iterdir()):
            target.rmdir()  # the folder this run made holds nothing: leave no trace
    if batch:
        failed = len({key for key, _ in failures})  # the parts of one --split-uneven input are one input
        inputs = "inputs (every DICOM series one)" if all_series else "inputs"
        summary = f"denoised {len(pairs) - failed} of {len(pairs)} {inputs} into {target}"
        if failures:
            sys.stderr.write(f"{summary}; {failed} failed\n")
            return EXIT_FAILED
        logger.info("%s", summary)
    return EXIT_OK


def add_parser(sub) -> None:
    """Register the ``denoise`` subcommand on the top-level parser's subparsers."""
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
        "(DICOM Modality tag, a BIDS sidecar's, MR for a PAR/REC; else --modality; else MR for a BIDS MR name, CT "
        "if the values look like HU, MR for an MGZ or a volume file whose air around the object holds a magnitude-MR "
        "noise floor, else the general model); "
        "or a shipped model or baseline (see `models`)",
    )
    add_modality_option(
        p,
        "modality of inputs without a DICOM Modality tag (NIfTI, NRRD, PNG...), for --model auto and noise estimation",
    )
    p.add_argument("--weights", help="a trained .safetensors file (with its .json model card) instead of --model")
    p.add_argument(
        "--sigma",
        type=parse_sigma,
        default="auto",
        help="noise level on the 0-255 scale of the image as the method normalizes it (its intensity range, e.g. "
        "the noisy file's min-max or percentiles, mapped to 0-255; a level measured in the image's own units, HU "
        "for CT, goes in as --noise-sd), or 'auto' to estimate it from the file (used by baselines and noise-aware "
        "models; default)",
    )
    p.add_argument(
        "--noise-sd",
        type=parse_noise_sd,
        metavar="SD",
        help="the noise's standard deviation in the image's own units instead of --sigma: HU for CT (after the "
        "rescale slope and intercept), the stored grey values otherwise (for magnitude MR the per-channel sigma), "
        "e.g. the SD measured in a flat region of the noisy image; converted to each method's scaling (used by "
        "baselines, noise-aware models and the refinement of white noise; a CT's refinement measures its own noise "
        "spectrum)",
    )
    p.add_argument(
        "--noise-sd-map",
        metavar="FILE|auto",
        help="the noise's SD per voxel, in the image's units, on its grid (an MR g-factor-scaled noise map, "
        "MRtrix dwidenoise -noise, dipy's MP-PCA sigma; one 3D map for every frame of a 4D series): the image is "
        "denoised divided by it (noise of SD 1 everywhere) and multiplied back; 'auto' estimates the map from each "
        "image's finest detail (noise that varies across it, without a measured map); not for CT",
    )
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="compute device")
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="auto: bf16 on CPUs with native bf16, fp16 on CUDA",
    )
    p.add_argument(
        "--roi", type=parse_int_list, help="sliding-window size, e.g. 256 or 64,64,64 (default: model preset)"
    )
    p.add_argument("--overlap", type=parse_fraction, default=0.25, help="sliding-window overlap in [0, 1) (0.25)")
    p.add_argument("--sw-batch-size", type=parse_positive_int, default=4, help="windows per forward pass (4)")
    p.add_argument(
        "--slice-axis",
        type=int,
        choices=[0, 1, 2],
        help="array axis for 2D models on volumes (0=z, 1=y, 2=x; default: the largest spacing)",
    )
    p.add_argument(
        "--strength", type=parse_unit_interval, default=1.0, help="blend: noisy + strength*(denoised-noisy), 0..1 (1)"
    )
    p.add_argument(
        "--ensemble",
        type=parse_ensemble,
        default="auto",
        metavar="{auto,1,2,4,8}",
        help="networks: average over this many in-plane flips/rotations (8: about +0.15 dB, 8x time); auto: 8 for "
        "a single 2D image of up to 1024x1024 pixels and a CT series of up to 8 slices of 512x512, 4 for one of up to "
        "64 the CT model refines (the refinement's pilot), else 1 for volumes and series (auto)",
    )
    p.add_argument(
        "--refine",
        choices=["auto", "on", "off"],
        default="auto",
        help="networks: average the output with its collaborative Wiener filtering (BM3D's second stage guided by "
        "the network; sharper edges, less low-frequency CT noise; noise: a variance line in the intensity fitted per "
        "slice, or for CT its spectrum measured in flat tissue; ~1-5 s per 512x512 slice on 2 cores); auto: for a "
        "single 2D image with the general model, for fine magnitude MR with the burst model and for CT with the CT "
        "model (up to 8 slices of 512x512 with BM3D's search and 8 views of the network; longer volumes with "
        "cheaper block searches on 3 slices: up to 128 slices ~0.3 s (up to 64 with 4 views of the network), up to "
        "1024 slices ~0.08 s per 512x512 CT slice; the frames of a 4D MR or CT each as a volume, the search chosen "
        "by the whole series' size) (auto)",
    )
    p.add_argument(
        "--metal",
        type=_metal_hu,
        default=None,
        metavar="HU|off",
        help="model auto on CT: clusters of voxels at or above HU are taken for metal and left out as --exclude leaves "
        "a region out (they keep their values; no bright halo in the tissue around them); 'off' denoises them too "
        "(default: 2500, meddenoiselib.transforms.metal.METAL_HU)",
    )
    add_magnitude_floor_options(p)
    p.add_argument(
        "--stabilize",
        choices=["auto", "off"],
        default="auto",
        help="NLM, BM3D and BM4D with the noise estimated, on X-ray and other images (not CT, MR or ultrasound): auto "
        "measures whether the noise grows with the signal (photon counting: microscopy, detector images) and then "
        "denoises the image's generalized Anscombe transform, whose noise has one level, and maps it back with the "
        "exact unbiased inverse; off gives the method one noise level for the whole image (auto)",
    )
    p.add_argument(
        "--preview-slice",
        type=parse_non_negative_int,
        metavar="K",
        help="denoise and write only slice K (0-based, along the slice axis: the largest spacing, or --slice-axis), "
        "placed where it lies in the input: in seconds, what the full run gives at that slice (the model, scaling, "
        "noise level and refinement are chosen on the whole volume; docs/preview.md). One input, not a folder",
    )
    p.add_argument(
        "--preview-frame",
        type=parse_non_negative_int,
        metavar="T",
        help="with --preview-slice on a 4D series: the frame (0-based; default 0), denoised as the whole series "
        "denoises it (its scaling; a burst model sees the adjacent frames)",
    )
    p.add_argument(
        "--format",
        choices=["nifti", "nrrd", "mgh", "metaimage", "png", "tiff", "npy"],
        help="output format for folder inputs (default: same as each input)",
    )
    p.add_argument("--series-uid", help="DICOM SeriesInstanceUID to read when a folder holds several series")
    p.add_argument(
        "--dicom-like",
        metavar="SERIES",
        help="the DICOM series (folder or file) a NIfTI / NRRD / MHA input was converted from: the input is matched "
        "to its grid (axes reordered, nothing interpolated; refused if cropped, resampled or rescaled) and denoised "
        "as that series, so an output name without suffix writes a derived series of the original study",
    )
    p.add_argument(
        "--recursive",
        action="store_true",
        help="a folder of inputs: search its sub-folders too (the patient / study / series folders of an export "
        "without a DICOMDIR, which is always searched so); each output is named by its path below INPUT joined by "
        "'_' (patient1_study2_series3)",
    )
    p.add_argument(
        "--all-series",
        action="store_true",
        help="a folder holding several DICOM series (a PACS export, a study folder; without this the largest is "
        "read): denoise every one, each into its own output in the OUTPUT folder, named by its series number and "
        "description (OUTPUT/3_HELICAL_CHEST; a DICOM series, or NAME.nii.gz with --format nifti). In a folder of "
        "inputs, each sub-folder's series are named after it. Not with --series-uid, --mask, --exclude or --measure",
    )
    p.add_argument(
        "--split-uneven",
        action="store_true",
        help="a DICOM series whose slices are unevenly spaced (e.g. a head CT with thinner slices through the "
        "posterior fossa), written to a NIfTI, NRRD, MGH, MetaImage or TIFF file, which one affine cannot hold: "
        "write each evenly spaced part as its own file (OUT_part1.nii.gz, OUT_part2.nii.gz, ...; nothing resampled). "
        "Without it such an output is refused; a DICOM series output keeps every slice's position",
    )
    p.add_argument(
        "--correct-tilt",
        action="store_true",
        help="a CT taken with the gantry tilted (sheared slices), written to a NIfTI, NRRD, MGH, MetaImage or TIFF "
        "file: resample it (after denoising) onto the orthogonal grid of its image planes, each slice moved within "
        "its plane (bilinear; the grid grows so that nothing is cut), as dcm2niix and Slicer's DICOM loader do. "
        "Without it the file keeps the sheared grid exactly, which NIfTI holds only in its sform and ITK-based "
        "tools (3D Slicer, ITK-SNAP, ANTs) misplace; not for DICOM outputs, which keep every slice's position",
    )
    p.add_argument(
        "--mask",
        metavar="FILE",
        help="denoise only where this label image is non-zero (same voxel grid "
        "as the input: shape, spacing, origin, direction); voxels outside keep their input values exactly",
    )
    p.add_argument(
        "--exclude",
        metavar="FILE",
        help="leave the non-zero voxels of this label image (same voxel grid) out of the denoising, e.g. metal or "
        "an implant: they keep their values exactly and do not spread into the tissue around them, which is "
        "denoised as if they were not there",
    )
    p.add_argument(
        "--residual",
        metavar="FILE",
        help="also write input minus denoised (float32, same geometry), "
        "e.g. residual.nii.gz (not DICOM: a residual is signed); '{name}' is replaced by each input's "
        "name for folders",
    )
    p.add_argument(
        "--noise-map",
        metavar="FILE",
        help="also write a noise map: the local standard deviation of input minus denoised in the input's units "
        "(HU for CT; float32, same geometry; a 4-pixel in-plane Gaussian window), e.g. noise.nii.gz (not DICOM); "
        "'{name}' as for --residual",
    )
    p.add_argument(
        "--measure",
        metavar="LABELS",
        help="a label map on the input's grid (a 3D Slicer segmentation, a NIfTI label map): for each label, the "
        "mean, standard deviation and SNR before and after denoising in the input's units (HU for CT), and the CNR "
        "of the first two, printed and written to --report",
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
    add_progress_format_option(p)
    add_scaling_options(p)
    add_common_options(p)
    p.set_defaults(handler=cmd_denoise)
