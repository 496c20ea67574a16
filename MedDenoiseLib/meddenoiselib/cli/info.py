"""The ``info`` subcommand: geometry and metadata of an image, a DICOM series or a folder."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..errors import InputError, MedDenoiseError
from .options import (
    EXIT_FAILED,
    EXIT_OK,
    add_common_options,
    check_series_uid,
)

__all__ = ["add_parser", "cmd_info"]

logger = logging.getLogger("meddenoiselib.cli")


def _info_of_folder(path: Path, args: argparse.Namespace) -> int:
    """``info`` on a folder of images: one line per input (what ``denoise`` would process), from headers only."""
    from ..io import find_inputs, is_series_file, probe_volume
    from ..io.series import probe_series

    recursive = getattr(args, "recursive", False)
    items = find_inputs(path, recursive=recursive)
    if not items:
        hint = "" if recursive else " (--recursive searches its sub-folders too)"
        raise MedDenoiseError(f"{path}: no images or DICOM series found in this folder{hint}")
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
            if header.mask_kind:
                entries[-1]["mask"] = header.mask_kind
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
                sys.stdout.write(f"{Path(entry['path']).relative_to(path)}  error: {entry['error']}\n")
            else:
                shape = "x".join(map(str, entry["shape_zyx"])) + (
                    f", {entry['frames']} frames" if "frames" in entry else ""
                )
                mask = f"  ({entry['mask']}: not denoised)" if "mask" in entry else ""
                name = Path(entry["path"]).relative_to(path)
                sys.stdout.write(f"{name}  {entry['format']}  {shape}  {entry['dtype']}{mask}\n")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io import is_series_file, probe_volume, read_series, read_volume
    from ..io.discovery import is_dicom_folder
    from ..io.series import VolumeSeries, frames_description, probe_series, series_of_repeated_frames
    from ..io.tiff import TiffLayout

    path = Path(args.input)
    if path.is_dir() and not is_dicom_folder(path):
        return _info_of_folder(path, args)
    check_series_uid(path, args)
    if is_series_file(path):
        header, volume = probe_series(path), read_series(path)
    else:
        try:
            header = probe_volume(path, series_uid=args.series_uid)
        except InputError as error:
            if error.parameter != "series_uid" or not path.is_dir():
                raise
            lines = _series_lines(path)
            choice = f"{len(lines)} DICOM series, the largest two equally large: --series-uid UID describes one"
            return _print_info({"path": str(path), "series": choice, "series_in_folder": lines}, args)
        volume = read_volume(path, series_uid=args.series_uid)
    array = volume.array
    if isinstance(volume, VolumeSeries):  # a series keeps its file's layout (a TIFF's as metadata), no tags
        metadata = volume.layout.metadata() if isinstance(volume.layout, TiffLayout) else {}
    else:
        metadata = volume.metadata
    missing = int(np.count_nonzero(np.isnan(array))) if array.dtype.kind == "f" else 0
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
        "min": float(np.nanmin(array)),
        "max": float(np.nanmax(array)),
        "mean": float(np.nanmean(array, dtype=np.float64)),
        "is_2d": volume.source.is_2d,
        "dicom": {name: metadata[key] for key, name in keys.items() if key in metadata},
    }
    if isinstance(volume, VolumeSeries):
        info["frames"] = volume.num_frames
        info["frame_axis"] = volume.frame_label + (
            f" ({', '.join(volume.frame_values[:4])}{', ...' if volume.num_frames > 4 else ''})"
            if volume.frame_values
            else ""
        )
    frames = None if isinstance(volume, VolumeSeries) else series_of_repeated_frames(volume)
    if frames is not None:  # a DICOM series of frames: denoised as the 4D series it is
        info["frames"] = frames.num_frames
        info["frame_axis"] = frames_description(volume, frames)
        diffusion = _dicom_diffusion(volume) if frames.frame_label == "gradient" else ""
        if diffusion:
            info["diffusion"] = diffusion
    elif not isinstance(volume, VolumeSeries) and not volume.source.is_2d:
        from ..inference import slice_axis

        axis = slice_axis(volume)  # where denoise runs 2D models, and what --preview-slice counts
        info["slice_axis"] = f"{axis} (array axis, {volume.spacing[2 - axis]:g} mm): {volume.shape[axis]} slices"
    if missing:
        info["voxels_without_data_nan"] = missing  # left out of min, max and mean; denoise keeps them NaN
    info.update(_denoising_notes(volume if frames is None else frames))
    if header.mask_kind:
        info["mask"] = f"{header.mask_kind}: usable as --mask, not as an image to denoise"
    if volume.source.format == "tiff" and metadata.get("tiff_kind", "plain") != "plain":
        unit = metadata.get("tiff_unit")
        size = f"pixel sizes in {unit}" if unit else "no pixel size (1 mm assumed)"
        frames = ", a time-lapse (frames as slices)" if metadata.get("tiff_stack") == "T" else ""
        info["tiff"] = f"{metadata['tiff_kind']} layout, {size}{frames}"
    if volume.source.grid_problem:
        info["grid_problem"] = volume.source.grid_problem
        from ..io.uneven import uneven_parts

        parts = uneven_parts(header)
        if parts:
            listed = ", ".join(
                f"slices {p.start}-{p.stop - 1} {p.step:.4g} mm apart" if p.slices > 1 else f"slice {p.start}"
                for p in parts
            )
            info["evenly_spaced_parts"] = f"{listed} (denoise --split-uneven writes each as its own file)"
    if volume.shape[0] > 1:
        from ..io.tilt import gantry_tilt_degrees, orthogonal_grid

        if orthogonal_grid(volume.shape, volume.spacing, volume.origin, volume.direction) is not None:
            info["gantry_tilt"] = (
                f"{gantry_tilt_degrees(volume.direction):.3g} degrees: a sheared grid, which a NIfTI holds only in its "
                "sform (ITK-based tools misplace it); denoise --correct-tilt resamples onto an orthogonal grid"
            )
    if path.is_dir() and is_dicom_folder(path):
        info["series_in_folder"] = _series_lines(path)
    return _print_info(info, args)


def _series_lines(folder: Path) -> list[str]:
    """One line per DICOM series in ``folder``, largest first; of several, with the output ``denoise --all-series``
    writes it to."""
    from ..io import list_dicom_series
    from ..io.dicom import series_file_names

    series = list_dicom_series(folder)
    if len(series) < 2:
        return [s.summary() for s in series]
    names = series_file_names(series)
    return [f"{s.summary()} -> OUTPUT/{name} with denoise --all-series" for s, name in zip(series, names, strict=True)]


#: numbers for scripts (``--json``) that a line of the text output already gives in words
_JSON_ONLY = ("noise_sd", "noise_sd_units", "noise_sd_varies")


def _print_info(info: dict, args: argparse.Namespace) -> int:
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return EXIT_OK
    info = {key: value for key, value in info.items() if key not in _JSON_ONLY}
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


def _denoising_notes(volume) -> dict:
    """What ``denoise`` will do with this input: the model ``auto`` picks and why (without ``--modality``), a
    resampled input named, a CT's metal left out."""
    from ..inference.auto import choose_model
    from ..io.modality import Modality
    from ..io.provenance import resampling_sign
    from ..io.series import VolumeSeries

    notes = {}
    frame = volume.frame(0) if isinstance(volume, VolumeSeries) else volume
    try:
        choice = choose_model(frame)  # a series' frames all get the first frame's choice
    except MedDenoiseError as exc:  # an image `auto` does not denoise (an MR phase image)
        notes["auto"] = f"nothing: {exc}"
        return notes
    notes["auto"] = choice.describe()
    sign = resampling_sign(volume)
    if sign:
        notes["resampled"] = f"{sign}; denoise the acquisition before resampling where you can"
    if volume.num_components == 1 and choice.modality == Modality.CT:
        from ..evaluation.report import ct_body_noise_estimate
        from ..transforms.metal import METAL_HU, metal_region

        noise = ct_body_noise_estimate(volume.frame(0) if isinstance(volume, VolumeSeries) else volume)
        if noise:
            notes["noise"] = (
                f"{noise['noise_hu']:g} HU in flat body tissue ({noise['noise_hu_blocks']} blocks of 24x24 px on "
                f"{noise['noise_hu_slices']} slices; the scan's own noise, before denoising)"
            )
            notes.update(noise_sd=noise["noise_hu"], noise_sd_units="HU")

        region = metal_region(volume.array)  # of each frame of a series
        count = 0 if region is None else int(region.sum())
        if count:
            notes["metal"] = (
                f"{count} voxels at or above {METAL_HU:g} HU in clusters: denoise (model auto) leaves them out "
                "(--metal off denoises them too)"
            )
    elif volume.num_components == 1 and choice.modality != Modality.US:  # speckle has no one SD
        notes.update(_noise_sd_notes(frame, choice))
        if "noise_sd_varies" in notes:  # as Denoiser._noise_map_for decides it
            read = "; all on the image divided by the noise SD map estimated from the image (its floor varies)"
            notes["auto"] += read
    return notes


def _noise_sd_notes(volume, choice) -> dict:
    """The noise SD in the image's units, for ``--noise-sd``: a magnitude MR floor's sigma where ``auto`` read one,
    else a white-noise estimate from the finest detail; in words (``noise``) and as a number (``noise_sd``)."""
    from ..evaluation.report import image_noise_sd

    if choice.magnitude_floor is not None:
        from ..transforms.magnitude import describe_floor_variation, floor_variation

        sd = choice.magnitude_floor.sigma
        text = f"{sd:.4g} (image units; the per-channel sigma of the magnitude floor in the background, what "
        text += "--noise-sd takes)"
        varies = floor_variation(volume.array, choice.magnitude_floor)
    else:
        sd, varies = image_noise_sd(volume), None
        if sd is None:
            return {"noise": "none (a constant image)"}
        text = f"{sd:.4g} (image units; a white-noise estimate from the finest detail, what --noise-sd takes)"
    notes = {"noise": text, "noise_sd": float(f"{sd:.4g}"), "noise_sd_units": "image units"}
    if varies is not None:
        axis, first, second = varies
        notes["noise"] += f"; it varies across the image: {describe_floor_variation(varies)}"
        halves = {"first_half": float(f"{first:.4g}"), "last_half": float(f"{second:.4g}")}
        notes["noise_sd_varies"] = {"along": axis, **halves}
    return notes


def add_parser(sub) -> None:
    """Register the ``info`` subcommand on the top-level parser's subparsers."""
    p = sub.add_parser("info", help="geometry and metadata of an image or DICOM series")
    p.add_argument("input")
    p.add_argument("--series-uid")
    p.add_argument("--recursive", action="store_true", help="a folder of inputs: list its sub-folders' inputs too")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_common_options(p)
    p.set_defaults(handler=cmd_info)


def _dicom_diffusion(volume) -> str:
    """A DICOM diffusion series' encoding in words (the table a 4D NIfTI output gets beside it), or ""."""
    from collections import Counter

    from ..io.dicom_diffusion import dicom_diffusion_table

    source = volume.source
    table = dicom_diffusion_table(source.dicom_files, source.repeated_frames, source.frame_order, str(source.path))
    if table is None:
        return "no b-value in the headers of every image: a 4D NIfTI output gets no .bval"
    counts = Counter(float(b) for b in table.b_values)
    shells = ", ".join(f"{b:g} x{n}" for b, n in sorted(counts.items()))
    directions = "with gradient directions" if table.directions is not None else "no gradient directions (.bval only)"
    return f"b-values {shells}; {directions}; from {table.source}"
