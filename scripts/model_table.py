"""Print the model tables of ``docs/architecture.md`` from the registry and the shipped model cards.

    python scripts/model_table.py            # print both tables (markdown)
    python scripts/model_table.py --write    # replace them in docs/architecture.md (between the markers)

Shipped models come from ``meddenoiselib/weights/<name>.json`` (architecture, training noise, validation), the
``auto`` column from :data:`meddenoiselib.inference.auto.AUTO_MODELS`, and the presets from
:func:`meddenoiselib.networks.list_networks`. ``Testing/test_docs.py`` fails when the docs differ from this output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from meddenoiselib.inference.auto import AUTO_MODELS, MAGNITUDE_MR_MODELS, MULTI_COIL_MR_MODELS
from meddenoiselib.networks import list_networks, parameter_count
from meddenoiselib.weights import list_shipped_weights, load_model_card

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
START, END = "<!-- model-table:start (scripts/model_table.py --write) -->", "<!-- model-table:end -->"


def _auto_for(name: str) -> str:
    """The modalities for which ``auto`` picks ``name`` with the shipped weights."""
    shipped = list_shipped_weights()
    chosen = []
    for modality in AUTO_MODELS:
        pick = next((m for m in AUTO_MODELS[modality] if m in shipped), None)
        if pick == name:
            chosen.append(modality.value.upper())
    if next((m for m in MAGNITUDE_MR_MODELS if m in shipped), None) == name:
        chosen.append("MR magnitude (floor removed after)")
    if next((m for m in MULTI_COIL_MR_MODELS if m in shipped), None) == name:
        chosen.append("MR multi-coil (without the burst model)")
    return ", ".join(chosen) or "-"


def shipped_table() -> str:
    """One row per shipped weights file."""
    lines = [
        "| model | network | dims | input | trained on noise | auto for | val. PSNR / SSIM at 25 | parameters |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in list_shipped_weights():
        card = load_model_card(name)
        arch, training, validation = card["architecture"], card.get("training", {}), card.get("validation", {})
        burst, noise_map = int(arch.get("burst", 1)), bool(arch.get("noise_map", False))
        channels = (f"{burst} adjacent slices" if burst > 1 else "1 slice") + (" + noise map" if noise_map else "")
        noise = training.get("noise")
        noise = ", ".join(noise) if isinstance(noise, list) else str(noise or "-")
        quality = "-"
        if "psnr_25" in validation and "ssim_25" in validation:
            quality = f"{validation['psnr_25']:.2f} dB / {validation['ssim_25']:.3f}"
        lines.append(
            f"| `{name}` | {arch['network']} | {int(arch.get('spatial_dims', 2))}D | {channels} | {noise} "
            f"| {_auto_for(name)} | {quality} | {int(arch.get('parameters', 0)):,} |"
        )
    return "\n".join(lines)


def preset_table() -> str:
    """One row per registry preset (what ``train --network`` and ``create_network`` accept)."""
    shipped = set(list_shipped_weights())
    lines = [
        "| preset | class | dims | input | parameters (2D) | weights | description |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in list_networks():
        layout = (f"{spec.burst} frames" if spec.burst > 1 else "1 frame") + (" + noise map" if spec.noise_map else "")
        dims = "/".join(f"{d}D" for d in spec.spatial_dims)
        params = parameter_count(spec.name, 2 if 2 in spec.spatial_dims else spec.spatial_dims[0])
        lines.append(
            f"| `{spec.name}` | `{spec.cls.__name__}` | {dims} | {layout} | {params:,} | "
            f"{'shipped' if spec.name in shipped else '-'} | {spec.description} |"
        )
    return "\n".join(lines)


def tables() -> str:
    """Both tables as the markdown block between the markers."""
    return f"{START}\n\n### Shipped models\n\n{shipped_table()}\n\n### Network presets\n\n{preset_table()}\n\n{END}"


def replace_block(text: str, block: str) -> str:
    """``text`` with the block between the markers replaced by ``block``."""
    start, end = text.index(START), text.index(END) + len(END)
    return text[:start] + block + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"replace the tables in {DOC.name}")
    args = parser.parse_args(argv)
    block = tables()
    if args.write:
        DOC.write_text(replace_block(DOC.read_text(), block))
        print(f"updated {DOC}")
    else:
        print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
