"""Shipped weights (``<name>.safetensors``) and their model cards (``<name>.json``).

Weights load only through :func:`load_pretrained`, never in a network constructor, and never by unpickling:
they are ``safetensors`` files whose sha256 is checked against the model card before use. Listing and reading
model cards does not import torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MedDenoiseError

if TYPE_CHECKING:  # torch is imported only where weights are loaded, so listing models stays light (Slicer GUI)
    import torch

__all__ = [
    "WEIGHTS_DIR",
    "list_shipped_weights",
    "load_model_card",
    "load_pretrained",
    "resolve_weights",
    "save_weights",
    "sha256_of",
]

WEIGHTS_DIR = Path(__file__).resolve().parent


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_shipped_weights() -> list[str]:
    """Names of the weights shipped with the package (those with both a ``.safetensors`` and a ``.json``)."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors") if p.with_suffix(".json").is_file())


def resolve_weights(name_or_path: str | Path) -> tuple[Path, Path]:
    """The ``(weights, model_card)`` paths for a shipped name (``"dncnn"``) or a ``.safetensors`` path.

    Raises:
        MedDenoiseError: neither a shipped name nor an existing file, or the model card is missing.
    """
    candidate = Path(name_or_path)
    if candidate.suffix == ".safetensors" or candidate.is_file():
        weights = candidate
    else:
        weights = WEIGHTS_DIR / f"{name_or_path}.safetensors"
        if not weights.is_file():
            shipped = ", ".join(list_shipped_weights()) or "none"
            raise MedDenoiseError(f"{name_or_path}: no shipped weights of that name (shipped: {shipped})")
    if not weights.is_file():
        raise MedDenoiseError(f"{weights}: weights file not found")
    card = weights.with_suffix(".json")
    if not card.is_file():
        raise MedDenoiseError(f"{weights}: model card {card.name} not found beside the weights")
    return weights, card


def load_model_card(name_or_path: str | Path) -> dict[str, Any]:
    """The model card (JSON) of shipped or user weights."""
    _, card = resolve_weights(name_or_path)
    try:
        return json.loads(card.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MedDenoiseError(f"{card}: cannot read the model card ({exc})") from exc


def load_pretrained(
    name_or_path: str | Path, device: str | torch.device = "cpu", verify_hash: bool = True
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build the network a model card describes and load its weights (``safetensors``, no pickle).

    Args:
        name_or_path: a shipped name (see :func:`list_shipped_weights`) or a ``.safetensors`` path with its
            ``.json`` model card beside it.
        device: where to put the model. Defaults to ``"cpu"``.
        verify_hash: check the file's sha256 against the card. Defaults to True.

    Returns:
        ``(model in eval mode, model card dict)``.

    Raises:
        MedDenoiseError: missing files, hash mismatch, or weights that do not fit the described network.
    """
    from safetensors.torch import load_file

    from ..networks import create_network

    weights, card_path = resolve_weights(name_or_path)
    card = load_model_card(weights)
    expected = card.get("sha256")
    if verify_hash and expected and sha256_of(weights) != expected:
        raise MedDenoiseError(f"{weights}: sha256 does not match its model card; the file is corrupt or was changed")
    arch = card.get("architecture", {})
    try:
        model = create_network(
            arch["network"],
            spatial_dims=int(arch.get("spatial_dims", 2)),
            in_channels=int(arch["in_channels"]) if "in_channels" in arch else None,
            out_channels=int(arch.get("out_channels", 1)),
            **arch.get("overrides", {}),
        )
        state = load_file(str(weights), device="cpu")
        model.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise MedDenoiseError(f"{weights}: weights do not match the network in {card_path.name} ({exc})") from exc
    return model.to(device).eval(), card


def save_weights(model: torch.nn.Module, path: str | Path, card: dict[str, Any]) -> Path:
    """Save a model's state_dict as ``.safetensors`` and its card (sha256 filled in) as ``.json``, atomically.

    Args:
        model: the trained network.
        path: the ``.safetensors`` path to write.
        card: the model card; must contain ``architecture`` (``network``, ``spatial_dims``, ``in_channels``,
            ``out_channels``, ``overrides``).

    Returns:
        The weights path.
    """
    from safetensors.torch import save_file

    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    temporary = path.with_name(f".{path.name}.tmp")
    save_file(state, str(temporary))
    temporary.chmod(0o644)
    os.replace(temporary, path)
    card = dict(card, sha256=sha256_of(path), weights_file=path.name)
    card_path = path.with_suffix(".json")
    temporary_card = card_path.with_name(f".{card_path.name}.tmp")
    temporary_card.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(temporary_card, card_path)
    return path
