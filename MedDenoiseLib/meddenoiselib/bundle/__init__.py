"""The MedDenoise MONAI bundle, shipped inside the package.

The folder holding this file *is* the bundle root (``configs/``, ``models/``, ``docs/``, ``LICENSE``), so a
``pip install meddenoiselib`` carries the configs along with the code and the weights they use::

    B=$(python -c "import meddenoiselib.bundle as b; print(b.BUNDLE_ROOT)")
    python -m monai.bundle run --config_file "$B/configs/inference.json" --bundle_root "$B" \\
        --dataset_dir scans/ --output_dir denoised/

The bundle is a thin front end over the library: ``configs/inference.json`` builds a
:class:`~meddenoiselib.inference.Denoiser` (whose network comes from the shipped ``.safetensors`` through
:func:`~meddenoiselib.weights.load_pretrained`, hash-checked, no pickle), reads volumes with the library's reader
(:mod:`meddenoiselib.bundle.readers`) and denoises them with :class:`~meddenoiselib.bundle.inferer.DenoiserInferer`,
so every shipped model, ``auto`` and the baselines are served with the library's defaults and results.
``models/model.pt`` is the default model's state_dict, kept because the bundle specification requires it.
This module holds the small helpers the configs call (:func:`network_of`, :func:`find_dataset`,
:func:`output_root`, :func:`output_name_formatter`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..inference import Denoiser

__all__ = [
    "flag",
    "BUNDLE_ROOT",
    "DEFAULT_MODEL_FILE",
    "VOLUME_FORMATS",
    "find_dataset",
    "network_of",
    "noise_level",
    "output_name_formatter",
    "output_root",
    "output_stem",
    "served_models",
]

#: the bundle root: pass it as ``--bundle_root`` (a ``str``, so configs can join paths onto it).
BUNDLE_ROOT: str = str(Path(__file__).resolve().parent)

#: the default model's state_dict (the file the bundle specification requires), relative to the bundle root.
DEFAULT_MODEL_FILE = os.path.join("models", "model.pt")

#: file formats (as named by :func:`meddenoiselib.io.detect_format`) that :func:`find_dataset` picks up as volumes,
#: besides DICOM series folders.
VOLUME_FORMATS = ("nifti", "nrrd", "metaimage", "mgh", "parrec", "minc")


def served_models() -> list[str]:
    """What ``--model_name`` accepts: ``auto``, ``default``, every shipped model and every baseline."""
    from ..baselines import BASELINES
    from ..weights import list_shipped_weights

    return ["auto", "default", *list_shipped_weights(), *sorted(BASELINES)]


def network_of(denoiser: Denoiser) -> torch.nn.Module:
    """The bundle's ``network_def``: the network ``denoiser`` loaded from the shipped safetensors (in eval mode).

    ``auto`` chooses a model per volume inside the Denoiser, and baselines have no network; then an ``nn.Identity``
    stands in, only because MONAI's evaluator needs a module to put in eval mode (``verify_net_in_out`` on it checks
    nothing: name a model with ``--model_name`` to verify a network).
    """
    import torch

    model = getattr(denoiser, "model", None)
    return model if model is not None else torch.nn.Identity()


def flag(value: bool | str) -> bool:
    """A config switch as the bundle's command line hands it over: ``--save_noise_map True`` arrives as a bool,
    ``--correct_tilt false`` as the string ``"false"``, which Python would take as true.

    Raises:
        ValueError: a string that is not one of true / false, yes / no, on / off, 1 / 0.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    return bool(value)


def noise_level(sigma: float | str | None, noise_sd: float | str | None):
    """The ``sigma`` the inferer hands the Denoiser: ``noise_sd`` (the noise's SD in the image's units, HU for CT)
    as a :class:`~meddenoiselib.transforms.NoiseSD`, else ``sigma`` (normalized units, or ``"auto"``).

    Raises:
        ValueError: both given, or a ``noise_sd`` that is not a positive number.
    """
    from ..transforms import NoiseSD

    if noise_sd is None or (isinstance(noise_sd, str) and noise_sd.strip().lower() in ("", "none", "null")):
        return sigma
    if sigma not in ("auto", None):
        raise ValueError(f"sigma ({sigma!r}) and noise_sd ({noise_sd!r}) both give the noise level: give one")
    try:
        value = float(noise_sd)
    except (TypeError, ValueError):
        raise ValueError(f"noise_sd must be a number in the image's units (HU for CT), got {noise_sd!r}") from None
    return NoiseSD(value)


def find_dataset(dataset_dir: str | os.PathLike, recursive: bool | str = False) -> list[dict[str, str]]:
    """The bundle's datalist: every NIfTI/NRRD/MetaImage file and every DICOM series folder in ``dataset_dir``.

    ``dataset_dir`` may itself be a DICOM series folder (then it is the only input). Other files (PNG, TIFF, lone
    ``.dcm`` files, text) are ignored. Paths are absolute and sorted, so every rank of a distributed run sees the
    same list in the same order.

    Args:
        dataset_dir: the folder to scan.
        recursive: also scan sub-folders (outputs then mirror the sub-folder layout); the strings ``"true"``/``"false"``
            are accepted too. Defaults to False.

    Returns:
        ``[{"image": path}, ...]``.

    Raises:
        FileNotFoundError: ``dataset_dir`` is not a folder, or it holds no volume.
    """
    from ..io import detect_format, find_inputs

    recursive = flag(recursive)  # "--recursive true" arrives as a string from the command line
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: `dataset_dir` is not a folder")
    found = find_inputs(folder, recursive=recursive)
    inputs = [p for p in found if p.is_dir() or detect_format(p) in VOLUME_FORMATS]
    if not inputs:
        raise FileNotFoundError(f"{folder}: no NIfTI/NRRD/MetaImage/MGH/PAR/MINC files or DICOM series folders found")
    root = Path(output_root(folder))
    seen: dict[Path, Path] = {}
    for path in inputs:
        target = path.resolve().parent.relative_to(root) / output_stem(path)
        if target in seen:
            raise ValueError(f"{seen[target]} and {path} would both be written as {target}_<postfix>: rename one")
        seen[target] = path
    return [{"image": str(p.resolve())} for p in inputs]


def output_root(dataset_dir: str | os.PathLike) -> str:
    """The folder that output paths are made relative to (``SaveImaged(data_root_dir=...)``).

    It is ``dataset_dir`` itself, so ``dataset_dir/a.nii.gz`` becomes ``output_dir/a_denoised.nii.gz`` and
    ``dataset_dir/sub/b.nii.gz`` (with ``recursive``) ``output_dir/sub/b_denoised.nii.gz``; when ``dataset_dir`` is
    a DICOM series folder, its parent, so the output lands in ``output_dir`` and not beside it.
    """
    from ..io import is_dicom_folder

    folder = Path(dataset_dir).resolve()
    is_series = is_dicom_folder(folder)
    return str(folder.parent if is_series else folder)


def output_stem(path: str | os.PathLike) -> str:
    """The name an input's output starts with: a file loses its extension (``.gz`` and the one before it, as MONAI's
    ``SaveImage`` strips them); a DICOM series folder keeps its whole name, dots included (UID-named folders)."""
    path = Path(path)
    if path.is_dir():
        return path.name
    stem, extension = os.path.splitext(path.name)
    if extension == ".gz":
        stem = os.path.splitext(stem)[0]
    return stem


def output_name_formatter(metadict: dict, saver: Any) -> dict:
    """``SaveImaged(output_name_formatter=...)``: MONAI's default naming, except that a DICOM series folder keeps its
    whole name (MONAI would strip ``.5`` from a folder named ``1.2.3.4.5`` as if it were an extension, and two
    series folders ``...4.5`` and ``...4.6`` would overwrite each other's output)."""
    from monai.data.folder_layout import default_name_formatter

    names = default_name_formatter(metadict, saver)
    subject = names["subject"]
    if os.path.isdir(subject):
        names["subject"] = subject.rstrip("/\\") + ".series"  # the one "extension" SaveImage strips
    return names
