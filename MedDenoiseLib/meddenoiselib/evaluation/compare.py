"""Compare denoising methods on clean references with seeded synthetic noise: tables and a figure."""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, OptionError
from ..io import read_volume
from ..io.atomic import write_text_atomic
from ..io.volume import Volume
from ..transforms.colour import grey_images
from ..transforms.intensity import fit_scaling, sigma_from_255
from ..transforms.missing import require_complete
from ..transforms.noise import make_noise_transform
from .metrics import psnr, ssim

__all__ = [
    "EvaluationRow",
    "add_noise",
    "evaluate",
    "load_references",
    "reference_slices",
    "summarize",
    "write_csv",
    "write_markdown",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationRow:
    """One method on one image at one noise level.

    Attributes:
        image: the reference's name (file, plus ``[k]`` for a slice of a volume).
        sigma255: Gaussian σ on the 0-255 scale.
        method: ``"noisy"`` for the noisy input, else the method name.
        psnr: dB, data range 1 on the min-max normalized reference.
        ssim: 11×11 Gaussian-window SSIM, data range 1.
        seconds: wall time of the method on this image.
        pixels: pixels in the image (to normalize timings).
    """

    image: str
    sigma255: float
    method: str
    psnr: float
    ssim: float
    seconds: float
    pixels: int


def reference_slices(volume: Volume, name: str, max_slices: int = 3) -> list[tuple[str, np.ndarray]]:
    """Clean 2D references from a volume, normalized to [0, 1] by the volume's min and max.

    Volumes give up to ``max_slices`` evenly spaced axial slices; RGB images give their luminance, and images of
    other channel counts (a 2-channel microscopy stack) each channel's slices
    (:func:`~meddenoiselib.transforms.colour.grey_images`).
    """
    references = []
    for suffix, array in grey_images(volume.array, volume.num_components):
        references += _slices_of(array, f"{name}{suffix}", max_slices)
    return references


def _slices_of(array: np.ndarray, name: str, max_slices: int) -> list[tuple[str, np.ndarray]]:
    """:func:`reference_slices` of one grey ``(Z, Y, X)`` image."""
    scaling = fit_scaling(array, "minmax")
    normalized = scaling.apply(array)
    if normalized.shape[0] == 1:
        return [(name, normalized[0])]
    count = min(max_slices, normalized.shape[0])
    # avoid the first and last slices, which are often partial or empty
    indices = np.linspace(0, normalized.shape[0] - 1, count + 2)[1:-1].round().astype(int)
    return [(f"{name}[{k}]", normalized[k]) for k in indices]


def add_noise(clean: np.ndarray, sigma255: float, seed: int) -> np.ndarray:
    """Add Gaussian noise of σ = ``sigma255``/255 with MONAI's ``RandGaussianNoise``, seeded (float32, unclipped)."""
    transform = make_noise_transform("gaussian", sigma255)
    transform.set_random_state(seed)
    return np.asarray(transform(clean[np.newaxis]), dtype=np.float32)[0]


def evaluate(
    references: Sequence[tuple[str, np.ndarray]],
    methods: Sequence[str],
    sigmas255: Sequence[float] = (15, 25, 50),
    seed: int = 0,
    oracle_sigma: bool = True,
    denoiser_factory: Callable[[str], object] | None = None,
    on_result: Callable[[EvaluationRow], None] | None = None,
) -> list[EvaluationRow]:
    """Run every method on every reference at every noise level.

    Args:
        references: ``(name, clean 2D image in [0, 1])`` pairs (see :func:`reference_slices`).
        methods: model or baseline names (anything :class:`~meddenoiselib.inference.Denoiser` accepts).
        sigmas255: Gaussian σ values on the 0-255 scale. Defaults to (15, 25, 50).
        seed: base seed; image ``i`` at σ index ``j`` uses ``seed + 1000 * i + j``. Defaults to 0.
        oracle_sigma: give σ-aware methods (baselines) the true σ, as is usual when benchmarking them; when
            False they estimate it. Blind networks never get it. Defaults to True.
        denoiser_factory: builds a denoiser from a method name. Defaults to ``Denoiser(name)``.
        on_result: called with each row as it is produced (progress).

    Returns:
        One row per (image, σ, method), plus a ``"noisy"`` row per (image, σ).
    """

    for sigma255 in sigmas255:
        try:
            valid = math.isfinite(float(sigma255)) and float(sigma255) >= 0
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise OptionError(f"noise levels must be finite non-negative numbers, got {sigma255!r}", parameter="sigma")
    if not references:
        raise OptionError("no reference images to evaluate on", parameter="references")
    denoisers = build_denoisers(methods, denoiser_factory)
    rows: list[EvaluationRow] = []
    record = recorder(rows, on_result)

    for i, (name, clean) in enumerate(references):
        for j, sigma255 in enumerate(sigmas255):
            noisy = add_noise(clean, sigma255, seed + 1000 * i + j)
            noisy_row = EvaluationRow(
                name, float(sigma255), "noisy", psnr(clean, noisy), ssim(clean, noisy), 0.0, clean.size
            )
            record(noisy_row)
            for method, denoiser in denoisers.items():
                start = time.perf_counter()
                denoised = denoiser.denoise_array(noisy, sigma=sigma_from_255(sigma255) if oracle_sigma else "auto")
                seconds = time.perf_counter() - start
                record(
                    EvaluationRow(
                        name, float(sigma255), method, psnr(clean, denoised), ssim(clean, denoised), seconds, clean.size
                    )
                )
    return rows


def build_denoisers(methods: Sequence[str], denoiser_factory: Callable[[str], object] | None = None) -> dict:
    """``{method: denoiser}``, each from ``denoiser_factory`` (default ``Denoiser(name)``)."""
    from ..inference import Denoiser

    factory = denoiser_factory or (lambda name: Denoiser(name))
    return {name: factory(name) for name in methods}


def recorder(rows: list, on_result: Callable | None) -> Callable:
    """A function that appends a row to ``rows`` and hands it to ``on_result`` (progress), if given."""

    def record(row) -> None:
        rows.append(row)
        if on_result is not None:
            on_result(row)

    return record


def summarize(rows: Sequence[EvaluationRow]) -> list[dict[str, float | str]]:
    """Mean PSNR/SSIM per (method, σ), in first-seen method order."""
    groups: dict[tuple[str, float], list[EvaluationRow]] = {}
    for row in rows:
        groups.setdefault((row.method, row.sigma255), []).append(row)
    summary = []
    for (method, sigma), items in groups.items():
        summary.append(
            {
                "method": method,
                "sigma255": sigma,
                "psnr": float(np.mean([r.psnr for r in items])),
                "ssim": float(np.mean([r.ssim for r in items])),
                "seconds_per_megapixel": float(
                    sum(r.seconds for r in items) / max(sum(r.pixels for r in items), 1) * 1e6
                ),
                "images": len(items),
            }
        )
    return summary


def write_csv(rows: Sequence[EvaluationRow], path: str | Path) -> Path:
    """All rows as CSV (written through a temporary: complete or absent)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(EvaluationRow.__dataclass_fields__))
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return write_text_atomic(Path(path), buffer.getvalue())


def write_markdown(rows: Sequence[EvaluationRow], path: str | Path | None = None) -> str:
    """A Markdown table: one row per method, PSNR / SSIM per σ. Written to ``path`` if given."""
    summary = summarize(rows)
    sigmas = sorted({s["sigma255"] for s in summary})
    methods = list(dict.fromkeys(s["method"] for s in summary))
    cells = {(s["method"], s["sigma255"]): s for s in summary}
    header = "| method | " + " | ".join(f"σ={g:g} PSNR / SSIM" for g in sigmas) + " |"
    lines = [header, "|---|" + "---|" * len(sigmas)]
    for method in methods:
        values = []
        for g in sigmas:
            cell = cells.get((method, g))
            values.append(f"{cell['psnr']:.2f} / {cell['ssim']:.4f}" if cell else "–")
        lines.append(f"| {method} | " + " | ".join(values) + " |")
    text = "\n".join(lines) + "\n"
    if path is not None:
        write_text_atomic(Path(path), text)
    return text


def reference_volumes(paths: Sequence[str | Path]):
    """``(file, volume)`` of every clean reference file, DICOM series folder or folder of images in ``paths``.

    Raises:
        InputError: a folder without images, missing values (NaN), or slices smaller than the 11 x 11 SSIM window,
            named.
    """
    from ..io import find_inputs

    for path in paths:
        path = Path(path)
        items = find_inputs(path) if path.is_dir() else [path]
        if not items:
            raise InputError(f"{path}: no images or DICOM series found in this folder")
        for item in items:
            volume = read_volume(item)
            require_complete(volume.array, str(item), "a clean reference")
            if min(volume.shape[1:]) < 11:
                raise InputError(
                    f"{item}: a {volume.shape[1]}x{volume.shape[2]} image is smaller than the 11x11 "
                    "SSIM window; references need at least 11x11 pixels"
                )
            yield item, volume


def load_references(paths: Sequence[str | Path], max_slices: int = 3) -> list[tuple[str, np.ndarray]]:
    """Read clean reference files/folders into normalized 2D references (see :func:`reference_slices`)."""
    references: list[tuple[str, np.ndarray]] = []
    for item, volume in reference_volumes(paths):
        references.extend(reference_slices(volume, item.name, max_slices))
    return references
