"""Compare methods on clean references with realistic noise, scored in the image's own units.

The protocol of ``evaluate --noise``: each clean reference (a DICOM series, NIfTI, NRRD, a 2D image) is cut to a
slab of adjacent slices at its centre, the noise model is simulated on it as ``simulate`` does (``ct-lowdose`` in
HU, Rician and non-central chi relative to the 99th percentile, speckle, Poisson-Gaussian), stored in the
reference's own data type as a scanner file would hold it, and every method denoises the slab as
``denoise`` does with default flags (the modality from the reference's DICOM tag or ``modality``, every method
estimating the noise itself). The scores are the ones a physicist reads, in the modality's units:

- CT (``ct-lowdose`` noise or a CT reference): PSNR and SSIM in the soft-tissue window W400/L40 over the body
  (clean > -500 HU), the body's RMSE and the noise left in it (SD of result - clean) in HU, and the resolution
  kept: the 10-90 % width of the air-skin edge (profiles normal to the body outline, averaged) over the clean
  image's (1.0: no blur; none where the slab shows no clean air-skin edge).
- Magnitude MR (``rician``, ``noncentral-chi``): PSNR and SSIM over the head (data range: the clean maximum), RMSE,
  and the bias in the background (outside the head dilated by 5 pixels) in units of the noise sigma.
- Anything else: PSNR and SSIM over the image (data range: the clean minimum to maximum) and RMSE.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InputError, OptionError
from ..io.atomic import write_text_atomic
from ..io.volume import Volume
from .compare import build_denoisers, recorder, reference_volumes
from .physical import (
    SOFT_TISSUE_WINDOW,
    body_mask,
    edge_levels,
    edge_sampler,
    edge_width_mm,
    head_mask,
    masked_psnr,
    masked_ssim,
    rmse,
    window_psnr,
    window_ssim,
)

__all__ = [
    "RealisticRow",
    "ScoredReference",
    "display_slice",
    "evaluate_realistic",
    "load_volume_references",
    "noise_sigma_in_units",
    "summarize_realistic",
    "write_realistic_csv",
    "write_realistic_markdown",
]

logger = logging.getLogger(__name__)

#: pixels the MR head is dilated by before its outside counts as background (ringing and partial volume stay out)
BACKGROUND_MARGIN = 5


@dataclass(frozen=True)
class RealisticRow:
    """One method on one reference with one noise model.

    Attributes:
        image: the reference's name (file or folder, ``[a:b]`` for the slab of a volume).
        noise: the noise model as ``simulate`` takes it (``ct-lowdose:25HU``, ``rician:3%``).
        method: ``"noisy"`` for the noisy input, else the method as asked (``auto``, ``bm3d``...).
        model: what ran (for ``auto``, the model it chose; else the method).
        region: where the scores are taken (``body, W400/L40``, ``head``, ``image``).
        units: the image's units (``HU`` for CT, else ``image units``).
        psnr: dB over ``region``.
        ssim: mean SSIM over ``region``.
        rmse: root-mean-square error over ``region`` in ``units``.
        noise_left: CT: SD of result - clean over the body (HU); None otherwise.
        bias_sigma: magnitude MR: mean of result - clean in the background, in units of the noise sigma; None
            otherwise.
        edge_ratio: CT: the air-skin edge's 10-90 % width over the clean image's (1.0: no blur); None otherwise or
            where no edge profile was found.
        seconds: wall time of the method on the slab.
        voxels: voxels in the slab.
    """

    image: str
    noise: str
    method: str
    model: str
    region: str
    units: str
    psnr: float
    ssim: float
    rmse: float
    noise_left: float | None
    bias_sigma: float | None
    edge_ratio: float | None
    seconds: float
    voxels: int


@dataclass(frozen=True)
class ScoredReference:
    """A clean slab and what it is scored on (found once, on the clean image, for every noise model of its kind).

    Attributes:
        name: as in :attr:`RealisticRow.image`.
        clean: the clean slab ``(Z, Y, X)`` in its own units, float64.
        kind: ``"ct"``, ``"mr"`` or ``"image"``: which metrics apply.
        region: ``(Z, Y, X)`` bool, where PSNR/SSIM/RMSE are taken.
        background: MR only: ``(Z, Y, X)`` bool, where the bias is measured.
        data_range: PSNR's peak (window width for CT).
        sigma: MR only: the noise sigma in the image's units the bias is measured in (0: not known, for a real
            noisy scan).
        edges: CT only: ``(sampler, clean edge levels, clean 10-90 % width in mm)`` of the air-skin edge, or None
            where the slab shows no such edge.
    """

    name: str
    clean: np.ndarray = field(repr=False)
    kind: str
    region: np.ndarray = field(repr=False)
    background: np.ndarray | None = field(default=None, repr=False)
    data_range: float = 1.0
    sigma: float = 0.0
    edges: tuple | None = field(default=None, repr=False)


def load_volume_references(paths: Sequence[str | Path], max_slices: int = 3) -> list[tuple[str, Volume]]:
    """Clean references as volumes in their own units: each file, DICOM series folder or folder of images, cut to
    its ``max_slices`` central adjacent slices (2.5D models see real neighbours).

    Raises:
        InputError: a folder without images, a colour image (scored on grey images only), missing values, or
            slices smaller than the 11 x 11 SSIM window.
    """
    references: list[tuple[str, Volume]] = []
    for item, volume in reference_volumes(paths):
        if volume.num_components != 1:
            raise InputError(
                f"{item}: a {volume.num_components}-component image; realistic noise is evaluated on grey images "
                "(use --sigma for the Gaussian protocol on colour)"
            )
        count = min(int(max_slices), volume.shape[0])
        start = (volume.shape[0] - count) // 2
        name = item.name if volume.shape[0] == count else f"{item.name}[{start}:{start + count}]"
        references.append((name, volume.slab(0, start, start + count) if volume.shape[0] > count else volume))
    return references


def noise_sigma_in_units(clean: np.ndarray, spec) -> float:
    """The sigma of an intensity-relative noise ``spec`` (``rician:3%``, ``gaussian:25``) in ``clean``'s units, as
    ``simulate`` resolves it on the image normalized by its percentiles."""
    import torch

    from ..transforms import fit_scaling
    from ..transforms.noise import normalized_sigma

    scaling = fit_scaling(np.asarray(clean), "percentile")
    return normalized_sigma(spec, torch.from_numpy(scaling.apply(np.asarray(clean)))) * scaling.scale


def _scoring_kind(name: str, volume: Volume, spec, modality_hint: str | None = None) -> str:
    """Which scores ``volume`` gets (``"ct"``, ``"mr"``, ``"image"``): by the noise model (``spec``), else (a real
    noisy scan beside it, ``spec`` None) by its modality: the DICOM tag, else ``modality_hint`` (``ct``, ``mr``...).

    Raises:
        InputError: ``ct-lowdose`` noise on a reference that is not CT in HU.
    """
    from ..transforms.noise import NoiseKind

    modality = volume.metadata.get("0008|0060", "").strip().upper() or (modality_hint or "").upper()
    kind = spec.kind if spec is not None else None
    low = float(np.min(volume.array))
    if kind == NoiseKind.CT_LOWDOSE and modality != "CT" and low > -900.0:
        raise InputError(
            f"{name}: ct-lowdose noise needs CT in HU, with air near -1000; this reference's minimum is {low:.0f}"
            + (f" and its DICOM Modality is {modality}" if modality else "")
        )
    if kind == NoiseKind.CT_LOWDOSE or modality == "CT":
        return "ct"
    if kind in (NoiseKind.RICIAN, NoiseKind.NONCENTRAL_CHI) or (kind is None and modality == "MR"):
        return "mr"
    return "image"


def _scored(name: str, volume: Volume, kind: str) -> ScoredReference:
    """What ``volume`` is scored on for scores of ``kind``: the body and its air-skin edge (CT), the head and the
    background (MR), or the whole image.

    Raises:
        InputError: a CT without a body, a constant image.
    """
    clean = np.asarray(volume.array, dtype=np.float64)
    if kind == "ct":
        body = body_mask(clean)
        if not body.any():
            raise InputError(f"{name}: no voxel above -500 HU; a CT reference in HU has a body to score on")
        edges = None
        sampler = edge_sampler(clean, float(np.sqrt(volume.spacing[0] * volume.spacing[1])))
        if sampler.count:
            profile = sampler.mean_profile(clean)
            levels = edge_levels(sampler.t_mm, profile)
            width = edge_width_mm(sampler.t_mm, profile, levels)
            if np.isfinite(width) and width > 0:
                edges = (sampler, levels, width)
        window = SOFT_TISSUE_WINDOW[1] - SOFT_TISSUE_WINDOW[0]
        return ScoredReference(name, clean, "ct", body, data_range=window, edges=edges)
    if kind == "mr":
        from scipy import ndimage

        head = head_mask(clean)
        background = ~np.stack([ndimage.binary_dilation(h, iterations=BACKGROUND_MARGIN) for h in head])
        return ScoredReference(
            name, clean, "mr", head, background if background.any() else None, data_range=float(clean.max())
        )
    low, high = float(clean.min()), float(clean.max())
    if not high > low:
        raise InputError(f"{name}: a constant image has nothing to score")
    return ScoredReference(name, clean, "image", np.ones(clean.shape, bool), data_range=high - low)


REGION_NAMES = {"ct": "body, W400/L40", "mr": "head", "image": "image"}


def _scores(reference: ScoredReference, result: np.ndarray) -> dict:
    clean, result = reference.clean, np.asarray(result, dtype=np.float64)
    region = reference.region
    if reference.kind == "ct":
        return {
            "psnr": window_psnr(clean, result, region),
            "ssim": window_ssim(clean, result, region),
            "rmse": rmse(clean, result, region),
            "noise_left": float(np.std((result - clean)[region])),
            "bias_sigma": None,
            "edge_ratio": _edge_ratio(reference, result),
        }
    scores = {
        "psnr": masked_psnr(clean, result, region, reference.data_range),
        "ssim": masked_ssim(clean, result, region, reference.data_range),
        "rmse": rmse(clean, result, region),
        "noise_left": None,
        "bias_sigma": None,
        "edge_ratio": None,
    }
    if reference.kind == "mr" and reference.background is not None and reference.sigma > 0:
        scores["bias_sigma"] = float(np.mean((result - clean)[reference.background])) / reference.sigma
    return scores


def _edge_ratio(reference: ScoredReference, result: np.ndarray) -> float | None:
    """The result's air-skin edge width over the clean one's, at the clean edge's HU levels."""
    if reference.edges is None:
        return None
    sampler, levels, clean_width = reference.edges
    width = edge_width_mm(sampler.t_mm, sampler.mean_profile(result), levels)
    return float(width / clean_width) if np.isfinite(width) else None


def _check_same_grid(name: str, volume: Volume, noisy_name: str, noisy: Volume) -> None:
    """A real noisy scan must lie voxel for voxel on its reference's grid (same shape, spacing within 1 %, origin
    within half a voxel): scores of misaligned scans measure the misalignment."""
    problem = None
    if noisy.shape != volume.shape or noisy.num_components != volume.num_components:
        problem = f"its shape {noisy.shape} is not the reference's {volume.shape}"
    elif not np.allclose(noisy.spacing, volume.spacing, rtol=0.01):
        problem = f"its voxels ({_mm(noisy.spacing)} mm) are not the reference's ({_mm(volume.spacing)} mm)"
    elif np.any(np.abs(np.subtract(noisy.origin, volume.origin)) > 0.5 * np.asarray(volume.spacing)):
        problem = f"its origin ({_mm(noisy.origin)} mm) is not the reference's ({_mm(volume.origin)} mm)"
    if problem is not None:
        raise InputError(
            f"{noisy_name}: not on the grid of its reference {name}: {problem}; register or resample it first"
        )


def _mm(values) -> str:
    return " x ".join(f"{float(v):g}" for v in values)


def evaluate_realistic(
    references: Sequence[tuple[str, Volume]],
    methods: Sequence[str],
    noises: Sequence[str] = (),
    seed: int = 0,
    denoiser_factory: Callable[[str], object] | None = None,
    on_result: Callable[[RealisticRow], None] | None = None,
    on_outputs: Callable[[str, str, str, dict[str, np.ndarray]], None] | None = None,
    noisy: Sequence[tuple[str, Volume]] | None = None,
    modality: str | None = None,
) -> list[RealisticRow]:
    """Run every method on every reference with every noise model (or on the real noisy scan of each reference),
    scored in the image's units.

    Args:
        references: ``(name, clean volume)`` pairs (see :func:`load_volume_references`); CT in HU.
        methods: anything :class:`~meddenoiselib.inference.Denoiser` accepts (``auto``, a model, a baseline).
        noises: noise models as ``simulate --noise`` takes them (``ct-lowdose:25HU``, ``rician:3%``,
            ``speckle:0.2``, ``gaussian:25``).
        seed: base seed; reference ``i`` with noise ``j`` uses ``seed + 1000 * i + j``. Defaults to 0.
        denoiser_factory: builds a denoiser from a method name. Defaults to ``Denoiser(name)``.
        on_result: called with each row as it is produced (progress).
        on_outputs: called per (reference, noise) with its name, the noise, the kind of scores (``"ct"``, ``"mr"``,
            ``"image"``) and ``{"clean", "noisy", method...: (Z, Y, X) arrays}`` in the image's units (for a figure).
        noisy: instead of ``noises``, one real noisy scan per reference, in the same order and on the same grid (a
            low-dose scan beside its full-dose one, a phantom scanned twice; see :func:`load_volume_references`):
            nothing is simulated, and the reference's own noise stays in the scores. The row's ``noise`` is
            ``"paired: <noisy name>"``; a magnitude MR gets no background bias (its noise level is not known).
        modality: ``ct``, ``mr``... for scoring references without a DICOM Modality tag beside ``noisy`` (the
            noise model decides otherwise). Defaults to None.

    Returns:
        One row per (reference, noise, method), plus a ``"noisy"`` row per (reference, noise).

    Raises:
        OptionError: no references, methods or noise models, a noise model that does not parse, or noise models
            and noisy scans both (or a different number of noisy scans than references).
        InputError: a reference the noise or the scores do not apply to (``ct-lowdose`` on a non-CT series, a CT
            without a body, a constant image), or a noisy scan on another grid than its reference, named.
    """
    from ..transforms import parse_noise_spec, simulate_volume

    if not references:
        raise OptionError("no reference images to evaluate on", parameter="references")
    if not methods:
        raise OptionError("no method to evaluate", parameter="methods")
    if noisy is not None and noises:
        raise OptionError("give noise models to simulate or real noisy scans, not both", parameter="noisy")
    if noisy is None and not noises:
        raise OptionError("no noise model to evaluate with", parameter="noises")
    if noisy is not None and len(noisy) != len(references):
        raise OptionError(
            f"{len(noisy)} noisy scans for {len(references)} references: give one noisy scan per reference, in the "
            "same order",
            parameter="noisy",
        )
    try:
        specs = [parse_noise_spec(text) for text in noises]
    except ValueError as exc:
        raise OptionError(str(exc), parameter="noises") from None
    # every case is checked before anything runs: a refusal costs no time. A case: (name, noise label, what it is
    # scored on, its noisy volume made when it runs)
    cases: list[tuple[str, str, ScoredReference, Callable[[], Volume]]] = []
    for i, (name, volume) in enumerate(references):
        scored_as: dict[str, ScoredReference] = {}  # one per kind of scores: masks and edges found once

        def scored(spec, name=name, volume=volume, scored_as=scored_as) -> ScoredReference:
            kind = _scoring_kind(name, volume, spec, modality)
            if kind not in scored_as:
                scored_as[kind] = _scored(name, volume, kind)
            reference = scored_as[kind]
            if kind == "mr" and spec is not None:  # the bias in units of the simulated sigma
                reference = replace(reference, sigma=noise_sigma_in_units(reference.clean, spec))
            return reference

        if noisy is not None:
            noisy_name, noisy_volume = noisy[i]
            _check_same_grid(name, volume, noisy_name, noisy_volume)
            cases.append((name, f"paired: {noisy_name}", scored(None), lambda v=noisy_volume: v))
            continue
        for j, (text, spec) in enumerate(zip(noises, specs, strict=True)):

            def simulated(volume=volume, spec=spec, case_seed=seed + 1000 * i + j, name=name) -> Volume:
                try:
                    return simulate_volume(volume, spec, seed=case_seed)
                except ValueError as exc:
                    raise InputError(f"{name}: {exc}") from None

            cases.append((name, text, scored(spec), simulated))
    denoisers = build_denoisers(methods, denoiser_factory)
    rows: list[RealisticRow] = []
    record = recorder(rows, on_result)

    for name, text, reference, make_noisy in cases:
        units = "HU" if reference.kind == "ct" else "image units"
        region = REGION_NAMES[reference.kind]
        noisy_volume = make_noisy()
        scores = _scores(reference, noisy_volume.array)
        record(
            RealisticRow(name, text, "noisy", "", region, units, **scores, seconds=0.0, voxels=noisy_volume.array.size)
        )
        outputs = {"clean": reference.clean, "noisy": noisy_volume.array}
        for method, denoiser in denoisers.items():
            start = time.perf_counter()
            result = denoiser.denoise(noisy_volume)
            seconds = time.perf_counter() - start
            report = getattr(denoiser, "last_report", None)
            used = getattr(report, "method", None) or method
            outputs[method] = result.array
            record(
                RealisticRow(
                    name,
                    text,
                    method,
                    used,
                    region,
                    units,
                    **_scores(reference, result.array),
                    seconds=seconds,
                    voxels=noisy_volume.array.size,
                )
            )
        if on_outputs is not None:
            on_outputs(name, text, reference.kind, outputs)
    return rows


def summarize_realistic(rows: Sequence[RealisticRow]) -> list[dict]:
    """Means per (noise, method) over the references, with each method's gain over the noisy input."""
    groups: dict[tuple[str, str], list[RealisticRow]] = {}
    for row in rows:
        groups.setdefault((row.noise, row.method), []).append(row)

    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    summary = []
    for (noise, method), items in groups.items():
        noisy = groups.get((noise, "noisy"), [])
        summary.append(
            {
                "noise": noise,
                "method": method,
                "models": ", ".join(dict.fromkeys(r.model for r in items if r.model)),
                "regions": ", ".join(dict.fromkeys(r.region for r in items)),
                "units": ", ".join(dict.fromkeys(r.units for r in items)),
                "psnr": mean([r.psnr for r in items]),
                "gain": None if method == "noisy" else mean([r.psnr for r in items]) - mean([r.psnr for r in noisy]),
                "ssim": mean([r.ssim for r in items]),
                "rmse": mean([r.rmse for r in items]),
                "noise_left": mean([r.noise_left for r in items]),
                "bias_sigma": mean([r.bias_sigma for r in items]),
                "edge_ratio": mean([r.edge_ratio for r in items]),
                "seconds_per_megavoxel": sum(r.seconds for r in items) / max(sum(r.voxels for r in items), 1) * 1e6,
                "images": len(items),
            }
        )
    return summary


def write_realistic_csv(rows: Sequence[RealisticRow], path: str | Path) -> Path:
    """All rows as CSV (written through a temporary: complete or absent; empty cells where a score does not
    apply)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(RealisticRow.__dataclass_fields__))
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in asdict(row).items()})
    return write_text_atomic(Path(path), buffer.getvalue())


def write_realistic_markdown(rows: Sequence[RealisticRow], path: str | Path | None = None) -> str:
    """One Markdown table per noise model: each method's mean scores over the references. Written to ``path`` if
    given."""

    def cell(value, digits=2):
        return "–" if value is None else f"{value:.{digits}f}"

    summary = summarize_realistic(rows)
    lines: list[str] = []
    for noise in dict.fromkeys(s["noise"] for s in summary):
        items = [s for s in summary if s["noise"] == noise]
        first = items[0]
        lines += [
            f"### {noise} ({first['images']} reference(s); scored over the {first['regions']}, {first['units']})",
            "",
            "| method | model used | PSNR (dB) | gain (dB) | SSIM | RMSE | noise left (SD) | background bias (σ) "
            "| edge width / clean | s / Mvoxel |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in items:
            lines.append(
                f"| {s['method']} | {s['models'] or '–'} | {cell(s['psnr'])} | {cell(s['gain'])} | "
                f"{cell(s['ssim'], 4)} | {cell(s['rmse'])} | {cell(s['noise_left'])} | {cell(s['bias_sigma'], 3)} | "
                f"{cell(s['edge_ratio'], 3)} | "
                f"{cell(s['seconds_per_megavoxel'], 1) if s['method'] != 'noisy' else '–'} |"
            )
        lines.append("")
    text = "\n".join(lines)
    if path is not None:
        write_text_atomic(Path(path), text)
    return text


def display_slice(reference_kind: str, clean: np.ndarray, image: np.ndarray) -> np.ndarray:
    """The central slice of ``image`` (``(Z, Y, X)``) in [0, 1] for a figure: CT in W400/L40, anything else by the
    clean image's minimum and maximum."""
    k = image.shape[0] // 2
    if reference_kind == "ct":
        low, high = SOFT_TISSUE_WINDOW
    else:
        low, high = float(clean.min()), float(clean.max())
    return np.clip((np.asarray(image[k], dtype=np.float64) - low) / max(high - low, 1e-12), 0.0, 1.0)
