"""``python -m meddenoiselib demo``: denoise the bundled real CT and MR samples and compare methods."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np

from .baselines import bm3d_available
from .errors import OptionError, OutputError
from .evaluation import comparison_figure, evaluate, reference_slices, write_csv, write_markdown
from .evaluation.compare import add_noise
from .inference import Denoiser
from .io import read_volume, write_volume
from .transforms import estimate_sigma, fit_scaling

__all__ = ["SAMPLES_DIR", "run_demo", "sample_path"]

logger = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def sample_path(name: str) -> Path:
    """Path of a bundled sample: ``"ct_chest"`` (DICOM series folder) or ``"mr_head"`` (NIfTI file)."""
    paths = {"ct_chest": SAMPLES_DIR / "ct_chest", "mr_head": SAMPLES_DIR / "mr_head" / "aniso_vox.nii.gz"}
    if name not in paths:
        raise OptionError(f"unknown sample {name!r}; choose one of {sorted(paths)}.")
    return paths[name]


def _air_around_head(array: np.ndarray) -> np.ndarray:
    """``(Z, Y, X)`` True in the air of an MR head: below 10 % of the 99th percentile, 3 voxels away from the head.

    A noise estimate says little about magnitude MR, whose noise lies mostly in its air as a floor above 0: the floor
    is what the MR path removes (the wavelet estimate of the output leaves its air out, now exactly 0)."""
    from scipy import ndimage

    head = array > 0.1 * np.percentile(array, 99)
    grown = [ndimage.binary_fill_holes(ndimage.binary_dilation(s, iterations=3)) for s in head]
    return ~np.stack(grown)


def _noise_estimate_255(array: np.ndarray) -> float:
    return estimate_sigma(fit_scaling(array, "minmax").apply(array)) * 255.0


def run_demo(
    output: Path, model: str = "auto", overwrite: bool = False, device: str = "auto", quiet: bool = False
) -> Path:
    """Denoise the samples into ``output`` and write a comparison at σ = 25, narrating on stdout unless ``quiet``.

    With ``model="auto"`` (the default, as everywhere) each sample gets the model for its modality, and the
    comparison on synthetic Gaussian noise the general model, which ``auto`` gives an image without a modality.

    Writes: ``ct_chest_denoised/`` (derived DICOM series), ``ct_chest_denoised.nii.gz``,
    ``mr_head_denoised.nii.gz``, ``metrics.md``/``metrics.csv`` (noisy, median, NLM, BM3D when installed, and the
    model at σ = 25 on one sample slice) and ``comparison.png``.

    Returns:
        The output folder.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output}: a file of that name exists; the demo writes into a folder")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise OutputError(f"{output}: demo output folder is not empty; choose another", parameter="overwrite")
    if not output.exists() and not output.parent.is_dir():
        raise OutputError(f"{output}: the folder {output.parent} does not exist")
    output.mkdir(exist_ok=True)
    denoiser = Denoiser(model, device=device)

    def say(text: str) -> None:  # the demo narrates on stdout (the same numbers are in metrics.md)
        if not quiet:
            sys.stdout.write(text + "\n")

    say(f"MedDenoise demo, model: {denoiser.method} on {denoiser.device}")
    ct = read_volume(sample_path("ct_chest"))
    start = time.perf_counter()
    ct_denoised = denoiser.denoise(ct)
    seconds = time.perf_counter() - start
    write_volume(ct_denoised, output / "ct_chest_denoised", overwrite=True)
    write_volume(ct_denoised, output / "ct_chest_denoised.nii.gz", overwrite=True)
    say(
        f"1. real chest CT ({ct.shape[0]} slices, {ct.array.dtype}, HU {ct.array.min()}..{ct.array.max()}): "
        f"denoised with {denoiser.last_report.method} in {seconds:.1f}s; noise estimate "
        f"{_noise_estimate_255(ct.array):.2f} -> "
        f"{_noise_estimate_255(ct_denoised.array):.2f} (0-255 scale); HU range kept "
        f"{ct_denoised.array.min()}..{ct_denoised.array.max()}; wrote a derived DICOM series and NIfTI"
    )

    mr = read_volume(sample_path("mr_head"))
    # a NIfTI carries no modality tag: say it is MR, as a user would with --modality mr
    mr_denoiser = Denoiser(model, device=device, modality="mr") if denoiser.auto else denoiser
    mr_denoised = mr_denoiser.denoise(mr)
    write_volume(mr_denoised, output / "mr_head_denoised.nii.gz", overwrite=True)
    air = _air_around_head(mr.array)
    say(
        f"2. real head MR ({'x'.join(map(str, mr.shape))}, {mr.spacing[0]:g}x{mr.spacing[1]:g}x{mr.spacing[2]:g} mm): "
        f"denoised with {mr_denoiser.last_report.method}; the magnitude noise floor in the air around the head, "
        f"mean {float(np.mean(mr.array[air])):.1f} -> {float(np.mean(mr_denoised.array[air])):.1f}"
    )

    references = reference_slices(ct, "ct_chest", max_slices=1)
    # a min-max scaled slice has no modality: auto would run the general model on it, so name that model
    network = Denoiser("default", device=device) if denoiser.auto else denoiser
    methods = ["median", "nlm"] + (["bm3d"] if bm3d_available() else []) + [network.method]
    factories = {name: Denoiser(name, device=device) for name in methods if name != network.method}
    factories[network.method] = network
    say(f"3. synthetic Gaussian noise sigma 25 on a CT slice: {', '.join(methods)}")
    rows = evaluate(references, methods, (25.0,), seed=0, denoiser_factory=lambda name: factories[name])
    table = write_markdown(rows, output / "metrics.md")
    write_csv(rows, output / "metrics.csv")
    name, clean = references[0]
    noisy = add_noise(clean, 25.0, 0)
    panels = (
        [("noisy σ=25", noisy)]
        + [(m, factories[m].denoise_array(noisy, sigma=25.0 / 255.0)) for m in methods]
        + [("clean", clean)]
    )
    comparison_figure(panels, output / "comparison.png", crop=(slice(140, 340), slice(120, 320)), title=name)
    say(table.rstrip())
    say(f"Outputs in {output}/")
    return output
