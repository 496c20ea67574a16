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
    "datalist_root",
    "find_dataset",
    "load_datalist",
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


def find_dataset(
    dataset_dir: str | os.PathLike, recursive: bool | str = False, all_series: bool | str = True
) -> list[dict[str, str]]:
    """The bundle's datalist: every NIfTI/NRRD/MetaImage file and every DICOM series in ``dataset_dir``.

    ``dataset_dir`` may itself be a DICOM series folder (then it is the only input). A folder holding several DICOM
    series (a study folder, a PACS export) gives one item per series, largest first, each naming its series
    (``series_uid``) and its output name's part (``series_name``, the number and description: the CLI's
    ``--all-series`` names), so that no series is left out. A series whose slices are unevenly spaced (a head CT of
    thin and thick slices), which one NIfTI affine cannot place, gives one item per evenly spaced part
    (``series_part``, named ``..._part<k>``: the CLI's ``--split-uneven``). Other files (PNG, TIFF, lone ``.dcm``
    files, text) are ignored. Paths are absolute and sorted, so every rank of a distributed run sees the same list in
    the same order.

    Args:
        dataset_dir: the folder to scan.
        recursive: also scan sub-folders (outputs then mirror the sub-folder layout); the strings ``"true"``/``"false"``
            are accepted too. Defaults to False.
        all_series: every series of a folder holding several; False: one item for the folder, whose largest series
            the reader takes (the library's choice for a folder, refused where two are equally large). Defaults to
            True.

    Returns:
        ``[{"image": path}, {"image": folder, "series_uid": uid, "series_name": name}, ...]``.

    Raises:
        FileNotFoundError: ``dataset_dir`` is not a folder, or it holds no volume.
        ValueError: two inputs would be written to one output name.
    """
    from ..io import detect_format, find_inputs
    from ..io.dicom import dicom_listings_kept

    recursive = flag(recursive)  # "--recursive true" arrives as a string from the command line
    folder = Path(dataset_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: `dataset_dir` is not a folder")
    found = find_inputs(folder, recursive=recursive)
    inputs = [p for p in found if p.is_dir() or detect_format(p) in VOLUME_FORMATS]
    if not inputs:
        raise FileNotFoundError(f"{folder}: no NIfTI/NRRD/MetaImage/MGH/PAR/MINC files or DICOM series folders found")
    with dicom_listings_kept():  # a folder is listed for its series, then probed for each series' parts
        items = [
            part
            for path in inputs
            for item in _series_items({"image": str(path.resolve())}, flag(all_series))
            for part in _part_items(item)
        ]
    _check_output_names(items, Path(output_root(folder)))
    return items


def load_datalist(
    datalist_file: str | os.PathLike, key: str = "testing", all_series: bool | str = True
) -> list[dict[str, str]]:
    """The bundle's datalist from a JSON file in the Medical Segmentation Decathlon layout (MONAI's
    ``load_decathlon_datalist``), for inputs that are not in one folder or that bring a noise SD map::

        {"testing": [{"image": "scans/a.nii.gz", "noise_sd_map": "maps/a_sd.nii.gz"},
                     {"image": "study/", "series_uid": "1.2.840..."}, {"image": "b.nrrd"}]}

    Relative paths are relative to the JSON file's folder. An item's keys: ``image`` (a volume file or a DICOM
    folder), optionally ``noise_sd_map`` (a volume on the image's grid: the noise's SD per voxel in the image's units,
    the CLI's ``--noise-sd-map``; ``"auto"`` reads one from the image, ``--noise-sd-map auto``), ``mask`` (a label
    map or Slicer segmentation on the image's grid: only voxels inside are denoised, the CLI's ``--mask``),
    ``exclude`` (one left out of the denoising, metal or an implant: ``--exclude``), ``series_uid`` (the series to read
    from a folder holding several). An item naming
    a folder of several series without ``series_uid`` gives every series (``all_series``), as :func:`find_dataset`.

    Raises:
        FileNotFoundError: the file, or a file an item names, does not exist.
        ValueError: the file is not such a datalist (no list under ``key``, an item without ``image``), a noise SD map
            or a mask for a folder of several series, or two inputs that would be written to one output name.
    """
    from monai.data import load_decathlon_datalist

    from ..io import is_dicom_folder
    from ..io.dicom import dicom_listings_kept
    from ..transforms.noise_sd_map import ESTIMATED_OPTION
    from .inferer import GRID_FILE_KEYS, GRID_FILE_NAMES, NOISE_SD_MAP_KEY

    path = Path(datalist_file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such datalist file")
    try:
        listed = load_decathlon_datalist(path, is_segmentation=False, data_list_key=key, base_dir=path.resolve().parent)
    except (ValueError, TypeError, KeyError, IndexError) as error:  # MONAI's words for a malformed list
        raise ValueError(f"{path}: not a datalist with a list of items under {key!r} ({error})") from None
    items = []
    for number, item in enumerate(listed, 1):
        if not item.get("image"):
            raise ValueError(f"{path}: item {number} has no 'image'")
        for name in ("image", *GRID_FILE_KEYS):
            estimated = name == NOISE_SD_MAP_KEY and item.get(name) == ESTIMATED_OPTION
            if item.get(name) and not estimated and not Path(item[name]).exists():
                raise FileNotFoundError(f"{path}: item {number}'s {name} {item[name]}: no such file or folder")
        if Path(item["image"]).is_dir() and not is_dicom_folder(item["image"]):
            raise ValueError(f"{path}: item {number}'s image {item['image']} is a folder without DICOM images")
        given = {k: str(v) for k, v in item.items()}
        with dicom_listings_kept():
            expanded = [part for each in _series_items(given, flag(all_series)) for part in _part_items(each)]
        on_one_grid = [k for k in GRID_FILE_KEYS if item.get(k) not in (None, "", ESTIMATED_OPTION)]
        if len(expanded) > 1 and on_one_grid:
            what = " and one ".join(GRID_FILE_NAMES[k] for k in on_one_grid)
            hint = ", or give a map read from each (auto)" if on_one_grid == [NOISE_SD_MAP_KEY] else ""
            raise ValueError(
                f"{path}: item {number}'s folder {item['image']} gives {len(expanded)} volumes (DICOM series, or "
                f"evenly spaced parts of an uneven one) and one {what}; name the series it belongs to (series_uid)"
                + hint
            )
        items.extend(expanded)
    if not items:
        raise ValueError(f"{path}: the list under {key!r} is empty")
    _check_output_names(items, Path(datalist_root(items)))
    return items


def datalist_root(datalist: list[dict[str, str]]) -> str:
    """The folder outputs are made relative to for a datalist from a file (:func:`load_datalist`): the deepest
    folder holding every input (a DICOM series folder counts as the file it is), so outputs mirror the inputs'
    layout below it and none is written outside ``output_dir``."""
    return os.path.commonpath([str(Path(item["image"]).resolve().parent) for item in datalist])


def _series_items(item: dict[str, str], all_series: bool) -> list[dict[str, str]]:
    """``item``, or one copy per DICOM series where it names a folder of several and no series (``all_series``)."""
    from ..io import list_dicom_series
    from ..io.dicom import series_file_names
    from .inferer import SERIES_NAME_KEY, SERIES_UID_KEY

    image = Path(item["image"])
    if not all_series or item.get(SERIES_UID_KEY) or not image.is_dir():
        return [item]
    series = list_dicom_series(image)
    if len(series) < 2:
        return [item]
    names = series_file_names(series)
    return [{**item, SERIES_UID_KEY: s.uid, SERIES_NAME_KEY: name} for s, name in zip(series, names, strict=True)]


def _part_items(item: dict[str, str]) -> list[dict[str, str]]:
    """``item``, or one copy per evenly spaced part where it names a DICOM series whose slices one affine cannot
    place (:func:`~meddenoiselib.io.uneven.uneven_parts`: the bundle writes NIfTI), each part's output named
    ``..._part<k>`` as the CLI's ``--split-uneven`` names it. A series the library cannot probe is left as it is: the
    reader names the problem."""
    from ..errors import MedDenoiseError
    from ..io import probe_volume
    from ..io.uneven import uneven_parts
    from .inferer import SERIES_NAME_KEY, SERIES_PART_KEY, SERIES_UID_KEY

    image = Path(item["image"])
    if not image.is_dir() or item.get(SERIES_PART_KEY):
        return [item]
    try:
        parts = uneven_parts(probe_volume(image, series_uid=item.get(SERIES_UID_KEY) or None))
    except MedDenoiseError:
        return [item]
    named = item.get(SERIES_NAME_KEY, "")
    return [
        {
            **item,
            SERIES_PART_KEY: f"{part.start}:{part.stop}",
            SERIES_NAME_KEY: f"{named}_part{part.number}" if named else f"part{part.number}",
        }
        for part in parts
    ] or [item]


def _check_output_names(items: list[dict[str, str]], root: Path) -> None:
    """Refuse two items that would be written to one output name below ``root``."""
    from .inferer import SERIES_NAME_KEY

    seen: dict[Path, str] = {}
    for item in items:
        path = Path(item["image"])
        stem = output_stem(path) + (f"_{item[SERIES_NAME_KEY]}" if item.get(SERIES_NAME_KEY) else "")
        target = path.resolve().parent.relative_to(root) / stem
        if target in seen:
            raise ValueError(f"{seen[target]} and {path} would both be written as {target}_<postfix>: rename one")
        seen[target] = str(path)


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
    series folders ``...4.5`` and ``...4.6`` would overwrite each other's output), followed by the series' name where
    the folder holds several (``study_3_HELICAL_CHEST``)."""
    from monai.data.folder_layout import default_name_formatter

    from .inferer import SERIES_NAME_KEY

    names = default_name_formatter(metadict, saver)
    subject = names["subject"]
    if os.path.isdir(subject):
        series_name = metadict.get(SERIES_NAME_KEY) if metadict else ""
        subject = subject.rstrip("/\\") + (f"_{series_name}" if series_name else "")
        names["subject"] = subject + ".series"  # the one "extension" SaveImage strips
    return names
