"""The files written beside a denoised image, each planned before any computation and written after the image.

- a diffusion NIfTI's FSL gradient table (``.bval`` / ``.bvec``), copied beside a NIfTI output of the same name;
- a DICOM diffusion series' encoding, as FSL's tables beside a 4D NIfTI or in a Slicer DWI NRRD's header
  (:mod:`meddenoiselib.io.dicom_diffusion`);
- a NIfTI output's BIDS / dcm2niix JSON sidecar (:mod:`meddenoiselib.io.sidecar`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .. import __version__
from ..io.gradients import copy_gradient_table, gradient_table_copies, gradient_table_not_kept

__all__ = [
    "copy_gradient_tables",
    "plan_diffusion_table",
    "plan_gradient_copies",
    "plan_sidecar",
    "write_diffusion_table",
    "write_sidecar",
]

logger = logging.getLogger("meddenoiselib.cli")


def plan_sidecar(header, source: Path, target: Path, args: argparse.Namespace, protected, others: list, report):
    """A NIfTI output's JSON sidecar (``out.json`` beside ``out.nii.gz``, as BIDS and dcm2niix write it): from a
    DICOM input's header, or a copy of a NIfTI input's sidecar; planned like any output. None for other inputs or
    formats, or when ``--report`` already names that file (the report is written there, as asked).

    Returns:
        ``(the planned sidecar, the input's sidecar values or None for a DICOM input)``, or None.
    """
    from ..io import detect_format, plan_file
    from ..io.sidecar import input_sidecar, sidecar_path

    path = sidecar_path(target)
    if path is None:
        return None
    if header.format.startswith("dicom"):
        values = None
    else:
        found = input_sidecar(source) if detect_format(source) == "nifti" else None
        if found is None:
            return None
        values = found[1]
    if report is not None and report.path.resolve() == path.resolve():
        logger.info("%s: the report is written where the NIfTI's sidecar would be; no sidecar", path)
        return None
    planned = plan_file(path, "sidecar", (".json",), overwrite=args.overwrite, protected=protected, others=others)
    return planned, values


def write_sidecar(sidecar: tuple, denoiser, metadata: dict) -> None:
    """Write the sidecar :func:`plan_sidecar` planned: the DICOM header's BIDS values (``metadata``) or the input's
    sidecar, and what denoised the image (``denoiser``'s method and its last choice)."""
    from ..io.atomic import write_text_atomic
    from ..io.sidecar import dicom_sidecar, sidecar_text

    planned, values = sidecar
    converted = values is None
    report = denoiser.last_report
    method = report.described_method(denoiser.method) if report is not None else denoiser.method
    text = sidecar_text(dicom_sidecar(metadata) if converted else values, __version__, method, converted)
    write_text_atomic(planned.path, text)
    logger.info("Wrote the sidecar %s", planned.path)


def plan_diffusion_table(header, source: Path, target: Path, args: argparse.Namespace, protected, others: list):
    """For a diffusion-weighted DICOM series written as a 4D NIfTI: its b-values and gradient directions as FSL's
    ``.bval`` and ``.bvec`` beside it (``out.bval`` beside ``out.nii.gz``), planned like any output; as a NRRD: the
    table, written into its header as 3D Slicer's DWI NRRD (``.bval`` / ``.bvec`` None). None for other frames,
    another format (a warning), or headers without b-values (a warning from the table's reader).

    Returns:
        ``(DiffusionTable, the planned .bval or None, the planned .bvec or None)``, or None.
    """
    from ..io import detect_format, plan_file, strip_suffix
    from ..io.dicom_diffusion import dicom_diffusion_table

    stack = header.dicom
    if stack.repeated_frame_label != "gradient":
        return None
    fmt = detect_format(target)
    if fmt not in ("nifti", "nrrd"):
        logger.warning(
            "%s: the b-values and gradient directions of %s are written beside a NIfTI output (.bval, .bvec) or into "
            "a NRRD only; name a .nii.gz or .nrrd output to keep them",
            target,
            source,
        )
        return None
    table = dicom_diffusion_table(stack.files, stack.repeated_frames, stack.frame_order, label=str(source))
    if table is None:
        return None
    if fmt == "nrrd":
        if table.directions is None:
            logger.warning(
                "%s: the headers hold b-values but no gradient directions (%s), which a diffusion-weighted NRRD needs; "
                "name a .nii.gz output to keep the b-values as a .bval",
                source,
                table.source,
            )
            return None
        return table, None, None
    stem = target.with_name(strip_suffix(target.name))
    bval = plan_file(
        stem.with_name(stem.name + ".bval"), "b-values", (".bval",), overwrite=args.overwrite, protected=protected,
        others=others,
    )  # fmt: skip
    if table.directions is None:
        logger.warning(
            "%s: the headers hold b-values but no gradient directions (%s), so only %s is written",
            source,
            table.source,
            bval.path.name,
        )
        return table, bval, None
    bvec = plan_file(
        stem.with_name(stem.name + ".bvec"), "gradient directions", (".bvec",), overwrite=args.overwrite,
        protected=protected, others=[*others, bval],
    )  # fmt: skip
    return table, bval, bvec


def write_diffusion_table(diffusion: tuple, series) -> None:
    """Write the ``.bval`` / ``.bvec`` :func:`plan_diffusion_table` planned beside a DICOM diffusion series' 4D NIfTI
    (the b-vectors for ``series``' voxel axes), atomically."""
    from ..io.atomic import write_text_atomic

    table, bval, bvec = diffusion
    if bval is None:  # a NRRD holds them in its header
        return
    write_text_atomic(bval.path, table.bval_text())
    if bvec is not None:
        write_text_atomic(bvec.path, table.bvec_text(series.direction))
    logger.info("Wrote the gradient table %s (%s)", ", ".join(str(p.path) for p in (bval, bvec) if p), table.source)


def plan_gradient_copies(tables, target: Path, args: argparse.Namespace, protected, others: list) -> tuple:
    """Plan a copy of a diffusion series' gradient table beside a NIfTI output of the same name (``out.bval``
    beside ``out.nii.gz``): FSL, MRtrix and BIDS read the output with it, and ``auto`` knows it again for MR.
    The output's voxel axes are the input's, so the b-vectors stay valid; another format gets no copy (a warning)."""
    from ..io import plan_file

    warning = gradient_table_not_kept(target, tables, "name a .nii.gz output to keep it")
    if warning:
        logger.warning("%s", warning)
        return ()
    copies = []
    for table, path in gradient_table_copies(tables, target):
        planned = plan_file(
            path,
            "gradient table",
            (table.suffix,),
            overwrite=args.overwrite,
            protected=protected,
            others=[*others, *(copy for _, copy in copies)],
        )
        copies.append((table, planned))
    return tuple(copies)


def copy_gradient_tables(gradients: tuple) -> None:
    """Copy the tables :func:`plan_gradient_copies` planned, atomically."""
    copy_gradient_table(tuple((table, planned.path) for table, planned in gradients))
    for _, planned in gradients:
        logger.info("Wrote the gradient table %s", planned.path)
