"""Keep the MONAI bundle in step with the shipped weights: ``models/model.pt`` and ``eval_metrics``, checked.

    python scripts/export_bundle_weights.py            # (re)write bundle/models/model.pt and metadata's eval_metrics
    python scripts/export_bundle_weights.py --check    # exit 1 if the bundle is out of date with the shipped weights

The bundle runs every model through the library (``Denoiser`` -> ``load_pretrained`` on
``meddenoiselib/weights/<name>.safetensors``, sha256-checked, never unpickled), so it needs no copy of the weights.
The MONAI bundle specification still requires ``models/model.pt``, "the state dictionary of a saved model": this
script writes it from the default model's safetensors (the library's ``default_model_name()``, the bundle's
``model_name`` default) as a plain ``{name: tensor}`` dict, byte-for-byte reproducibly, loadable with
``torch.load(..., weights_only=True)``. It also

- checks that every shipped model loads strictly into the network its card describes (what ``--model_name`` serves);
- checks that ``configs/inference.json`` builds, with ``model_name`` ``default`` (its own default is ``auto``), the
  default model's network with exactly the tensors of ``model.pt``;
- copies the default model's validation metrics into ``configs/metadata.json`` (``eval_metrics``);
- removes anything else from ``models/`` (the per-model ``.pt`` copies and index of bundle versions <= 0.3).

``scripts/train_shipped.py install`` runs it after installing weights; ``Testing/bundle`` fails until it has run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from meddenoiselib.bundle import BUNDLE_ROOT, DEFAULT_MODEL_FILE
from meddenoiselib.inference.denoiser import default_model_name
from meddenoiselib.weights import WEIGHTS_DIR, list_shipped_weights, load_model_card, load_pretrained


def default_state_dict_bytes() -> tuple[str, bytes]:
    """``(default model name, model.pt bytes)``: its safetensors in the network's state_dict order, torch.save'd."""
    shipped = list_shipped_weights()
    if not shipped:
        raise SystemExit(f"error: no shipped weights in {WEIGHTS_DIR}")
    default = default_model_name()
    model, _ = load_pretrained(default)  # checks the sha256 against the card and loads strictly
    tensors = load_file(str(WEIGHTS_DIR / f"{default}.safetensors"), device="cpu")
    state = {key: tensors[key].contiguous() for key in model.state_dict()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return default, buffer.getvalue()


def check_served_models() -> list[str]:
    """Problems with shipped models the bundle would serve by name (each must load into its card's network)."""
    problems = []
    for name in list_shipped_weights():
        try:
            load_pretrained(name)
        except Exception as error:  # report every broken model, not only the first
            problems.append(f"{name}: {error}")
    return problems


def check_config(bundle_root: Path, state_bytes: bytes) -> list[str]:
    """Problems with ``configs/inference.json``: its ``network_def`` for ``--model_name default`` must hold
    ``model.pt``'s tensors (the default ``auto`` chooses a network per volume)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle_root / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle_root)
    parser["device"] = "$torch.device('cpu')"
    parser["model_name"] = "default"
    network = parser.get_parsed_content("network_def")
    expected = torch.load(io.BytesIO(state_bytes), map_location="cpu", weights_only=True)
    actual = network.state_dict()
    if sorted(actual) != sorted(expected) or any(not torch.equal(actual[k].cpu(), expected[k]) for k in expected):
        return ["configs/inference.json: its network_def for model_name default does not hold models/model.pt"]
    return []


def eval_metrics_of(name: str) -> dict[str, Any]:
    validation = load_model_card(name).get("validation", {})
    metrics = {key: value for key, value in validation.items() if isinstance(value, (int, float))}
    return {"model": name, "protocol": validation.get("protocol", ""), **metrics}


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.chmod(0o644)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle-root", type=Path, default=Path(BUNDLE_ROOT), help="the bundle folder to write")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if anything is out of date")
    args = parser.parse_args(argv)
    root = args.bundle_root
    model_path = root / DEFAULT_MODEL_FILE
    metadata_path = root / "configs" / "metadata.json"
    default, data = default_state_dict_bytes()
    eval_metrics = eval_metrics_of(default)
    metadata = json.loads(metadata_path.read_text())
    stale = sorted(p.name for p in model_path.parent.iterdir() if p != model_path) if model_path.parent.is_dir() else []

    problems = check_served_models()
    if args.check:
        if not model_path.is_file() or model_path.read_bytes() != data:
            problems.append(f"{DEFAULT_MODEL_FILE}: missing or not the default model {default!r}")
        problems += [
            f"models/{name}: not part of the bundle (the library serves every model from safetensors)" for name in stale
        ]
        if metadata.get("eval_metrics") != eval_metrics:
            problems.append("configs/metadata.json: eval_metrics differ from the default model's card")
        problems += check_config(root, data)
        if problems:
            print(
                "the bundle is out of date (run python scripts/export_bundle_weights.py):\n  " + "\n  ".join(problems),
                file=sys.stderr,
            )
            return 1
        print(f"bundle is up to date: model.pt = {default}; serves {', '.join(list_shipped_weights())}")
        return 0

    if problems:
        print("error: shipped models the bundle cannot serve:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    model_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(model_path, data)
    print(f"wrote {model_path} ({default}, {len(data) / 1e6:.2f} MB)")
    for name in stale:
        (model_path.parent / name).unlink()
        print(f"removed {model_path.parent / name} (the library serves every model from its safetensors)")
    if metadata.get("eval_metrics") != eval_metrics:
        metadata["eval_metrics"] = eval_metrics
        _write_atomic(metadata_path, (json.dumps(metadata, indent=4) + "\n").encode())
        print(f"updated eval_metrics in {metadata_path}")
    problems = check_config(root, data)
    if problems:
        print("error: " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
