"""Training packs: the training and validation images of several recipes in one compressed ``.npz`` file.

A pack lets training run where the data folder is not (a lent GPU machine receives only the repository and up
to 64 MiB of carried files): every image is stored once, in its own units (CT in HU as int16, 8-bit images as
uint8), CT cropped to the body's bounding box (air outside the body attenuates nothing, so the CT noise model
is unchanged), with its voxel spacing and DICOM Modality. An input ``PACK.npz:RECIPE:SPLIT`` (split ``train`` or
``val``) names one recipe's images in a pack; :func:`~meddenoiselib.training.data.load_training_images` accepts it
like a file, without any image-file reader.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import MedDenoiseError
from ..io.volume import SourceInfo, Volume
from ..transforms.colour import grey_images

__all__ = ["write_pack", "is_pack_selection", "pack_volumes"]

_INDEX = "__index__"
_MARGIN = 4


def _crop_ct_to_body(array: np.ndarray) -> np.ndarray:
    """CT ``(Z, Y, X)`` in HU cropped to the rows and columns holding anything denser than air (plus a margin)."""
    dense = (array > -900).any(axis=0)
    rows, cols = np.flatnonzero(dense.any(axis=1)), np.flatnonzero(dense.any(axis=0))
    if not rows.size:
        return array
    y0, y1 = max(rows[0] - _MARGIN, 0), min(rows[-1] + _MARGIN + 1, array.shape[1])
    x0, x1 = max(cols[0] - _MARGIN, 0), min(cols[-1] + _MARGIN + 1, array.shape[2])
    return array[:, y0:y1, x0:x1]


def write_pack(
    path: str | Path, volumes: Mapping[str, Volume], recipes: Mapping[str, Mapping[str, Sequence[str]]]
) -> Path:
    """Write a pack.

    Args:
        path: the ``.npz`` file to write.
        volumes: every image by name (each stored once).
        recipes: per recipe, ``{"train": [names], "val": [names]}``.

    Returns:
        The path written.
    """
    arrays, index = {}, {"images": {}, "recipes": {k: {s: list(v) for s, v in r.items()} for k, r in recipes.items()}}
    for i, (name, volume) in enumerate(volumes.items()):
        modality = volume.metadata.get("0008|0060", "").strip().upper()
        array = volume.array
        if volume.num_components > 1:
            grey = grey_images(array, volume.num_components)
            if len(grey) > 1:
                raise MedDenoiseError(f"{name}: a pack holds grey or RGB images, not {volume.num_components} channels")
            array = grey[0][1]
        if modality == "CT":
            array = _crop_ct_to_body(array)
            if array.min() >= -32768 and array.max() <= 32767:
                array = np.rint(array).astype(np.int16)
        key = f"image{i}"
        arrays[key] = np.ascontiguousarray(array)
        index["images"][name] = {"key": key, "spacing": list(volume.spacing), "modality": modality}
    arrays[_INDEX] = np.frombuffer(json.dumps(index).encode(), dtype=np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # LZMA instead of np.savez_compressed's deflate: CT in HU packs ~25 % smaller, which is what lets the pack
    # travel with the repository within the GPU machine's 64 MiB; np.load reads either
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
    return path


def is_pack_selection(item: str | Path) -> bool:
    """Whether an input names a pack's recipe split (``PACK.npz:RECIPE:SPLIT``)."""
    text = str(item)
    return ".npz:" in text and text.count(":") >= 2


def pack_volumes(selection: str) -> Iterator[tuple[str, Volume]]:
    """The ``(name, Volume)`` pairs of ``PACK.npz:RECIPE:SPLIT``, in the pack's order.

    Raises:
        MedDenoiseError: missing pack, unknown recipe or split.
    """
    path, recipe, split = str(selection).rsplit(":", 2)
    if not Path(path).is_file():
        raise MedDenoiseError(f"{path}: no such training pack")
    with np.load(path) as pack:
        index = json.loads(pack[_INDEX].tobytes().decode())
        if recipe not in index["recipes"] or split not in index["recipes"][recipe]:
            known = ", ".join(f"{r}:{s}" for r, splits in index["recipes"].items() for s in splits)
            raise MedDenoiseError(f"{path}: the pack has no {recipe}:{split}; it holds {known}")
        for name in index["recipes"][recipe][split]:
            entry = index["images"][name]
            metadata = {"0008|0060": entry["modality"]} if entry["modality"] else {}
            volume = Volume(
                pack[entry["key"]],
                spacing=tuple(entry["spacing"]),
                metadata=metadata,
                source=SourceInfo(path=name, format="memory"),
            )
            yield name, volume
