"""Export the shipped weights into the MONAI bundle as plain state_dicts, and index them.

    python scripts/export_bundle_weights.py            # (re)write bundle/models/ and metadata.json's eval_metrics
    python scripts/export_bundle_weights.py --check    # exit 1 if the bundle is out of date with the shipped weights

For every shipped model (``meddenoiselib/weights/<name>.safetensors`` with its ``<name>.json`` model card) this
checks the file's sha256 against the card, loads it into the network the card describes (strict), and writes the
same tensors with ``torch.save`` as a plain ``{name: tensor}`` dict, loadable with ``torch.load(...,
weights_only=True)`` and by MONAI's ``CheckpointLoader``:

- ``bundle/models/model.pt``: the default model (the library's ``default_model_name()``, the CLI's default);
- ``bundle/models/<name>.pt``: every other shipped model, served with ``--model_name <name>``;
- ``bundle/models/models.json``: the index the configs read: default name, and per model its file, architecture
  (network preset, spatial_dims, in/out channels, burst), description, validation metrics and hashes.

It also copies the default model's validation metrics into ``configs/metadata.json`` (``eval_metrics``) and removes
``.pt`` files of models that are no longer shipped. Output is byte-for-byte reproducible. Re-run it whenever
weights are added to or replaced in ``meddenoiselib/weights/`` (``Testing/bundle`` fails until you do).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from meddenoiselib.bundle import BUNDLE_ROOT, MODELS_INDEX
from meddenoiselib.inference.denoiser import default_model_name
from meddenoiselib.weights import WEIGHTS_DIR, list_shipped_weights, load_model_card, load_pretrained

DEFAULT_FILE = "model.pt"
INDEX_COMMENT = (
    "Written by scripts/export_bundle_weights.py from meddenoiselib/weights/*.safetensors and their model cards; "
    "do not edit by hand."
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_servable(name: str, arch: dict[str, Any]) -> None:
    """The bundle's pipeline handles 2D models (single slice or burst) and 3D single-volume models, blind."""
    problems = []
    if arch.get("noise_map"):
        problems.append("it takes a noise-level map channel, which the bundle's pipeline does not build")
    if arch.get("overrides"):
        problems.append(
            f"its card has constructor overrides {arch['overrides']}, which configs/inference.json cannot pass "
            "(network_def is create_network(name, spatial_dims, in_channels, out_channels))"
        )
    if int(arch.get("spatial_dims", 2)) == 3 and int(arch.get("burst", 1)) > 1:
        problems.append("3D burst models are not supported by the bundle")
    if problems:
        raise SystemExit(f"error: model {name!r} cannot be served by the bundle: " + "; ".join(problems) + ".")


def export(bundle_root: Path) -> tuple[dict[str, bytes], dict[str, Any], dict[str, Any]]:
    """Build every output in memory: ``({file name: .pt bytes}, models index, default model's eval_metrics)``."""
    shipped = list_shipped_weights()
    if not shipped:
        raise SystemExit(f"error: no shipped weights in {WEIGHTS_DIR}")
    default = default_model_name()
    if default not in shipped:
        default = shipped[0]
    files: dict[str, bytes] = {}
    models: dict[str, Any] = {}
    for name in shipped:
        card = load_model_card(name)
        arch = card["architecture"]
        _check_servable(name, arch)
        model, _ = load_pretrained(name)  # checks the sha256 against the card and loads strictly
        tensors = load_file(str(WEIGHTS_DIR / f"{name}.safetensors"), device="cpu")
        order = list(model.state_dict())
        if sorted(order) != sorted(tensors):
            raise SystemExit(f"error: {name}: the state_dict keys differ from the network's")
        state = {key: tensors[key].contiguous() for key in order}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        file_name = DEFAULT_FILE if name == default else f"{name}.pt"
        files[file_name] = buffer.getvalue()
        models[name] = {
            "file": file_name,
            "network": arch["network"],
            "spatial_dims": int(arch.get("spatial_dims", 2)),
            "in_channels": int(arch.get("in_channels", arch.get("burst", 1))),
            "out_channels": int(arch.get("out_channels", 1)),
            "burst": int(arch.get("burst", 1)),
            "noise_map": bool(arch.get("noise_map", False)),
            "input_scaling": card.get("input_scaling", "minmax"),
            "parameters": int(arch.get("parameters", sum(t.numel() for t in state.values()))),
            "description": card.get("description", ""),
            "noise": card.get("training", {}).get("noise"),
            "noise_units": card.get("training", {}).get("noise_units"),
            "validation": card.get("validation", {}),
            "source": f"{name}.safetensors",
            "source_sha256": card.get("sha256", ""),
            "sha256": _sha256(files[file_name]),
        }
    index = {"_comment": INDEX_COMMENT, "default": default, "models": models}
    validation = models[default]["validation"]
    metrics = {key: value for key, value in validation.items() if isinstance(value, (int, float))}
    eval_metrics = {"model": default, "protocol": validation.get("protocol", ""), **metrics}
    return files, index, eval_metrics


def _index_text(index: dict[str, Any]) -> str:
    return json.dumps(index, indent=2) + "\n"


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
    models_dir = root / "models"
    metadata_path = root / "configs" / "metadata.json"
    files, index, eval_metrics = export(root)
    metadata = json.loads(metadata_path.read_text())

    stale = sorted(p.name for p in models_dir.glob("*.pt") if p.name not in files) if models_dir.is_dir() else []
    if args.check:
        problems = [f"{name}: missing or different" for name, data in files.items()
                    if not (models_dir / name).is_file() or (models_dir / name).read_bytes() != data]
        index_path = root / MODELS_INDEX
        if not index_path.is_file() or index_path.read_text() != _index_text(index):
            problems.append(f"{MODELS_INDEX}: missing or different")
        problems += [f"{name}: no longer shipped" for name in stale]
        if metadata.get("eval_metrics") != eval_metrics:
            problems.append("configs/metadata.json: eval_metrics differ from the default model's card")
        if problems:
            print("bundle weights are out of date (run python scripts/export_bundle_weights.py):\n  "
                  + "\n  ".join(problems), file=sys.stderr)
            return 1
        print(f"bundle weights are up to date: {', '.join(sorted(index['models']))} (default {index['default']})")
        return 0

    models_dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        _write_atomic(models_dir / name, data)
        print(f"wrote {models_dir / name} ({len(data) / 1e6:.2f} MB)")
    for name in stale:
        (models_dir / name).unlink()
        print(f"removed {models_dir / name} (no longer shipped)")
    _write_atomic(root / MODELS_INDEX, _index_text(index).encode())
    print(f"wrote {root / MODELS_INDEX}: default {index['default']}, models {', '.join(sorted(index['models']))}")
    if metadata.get("eval_metrics") != eval_metrics:
        metadata["eval_metrics"] = eval_metrics
        _write_atomic(metadata_path, (json.dumps(metadata, indent=4) + "\n").encode())
        print(f"updated eval_metrics in {metadata_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
