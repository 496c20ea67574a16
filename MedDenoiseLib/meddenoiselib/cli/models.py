"""The ``models`` subcommand: networks, shipped weights and baselines."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .options import (
    add_common_options,
)

__all__ = ["add_parser", "cmd_models"]

logger = logging.getLogger("meddenoiselib.cli")


def cmd_models(args: argparse.Namespace) -> int:
    from ..baselines import list_baselines
    from ..networks import get_network_spec, list_networks, parameter_count
    from ..weights import list_shipped_weights, load_model_card

    entries = []
    shipped = list_shipped_weights()
    for spec in list_networks():
        entries.append(
            {
                "name": spec.name,
                "kind": "network",
                "parameters": parameter_count(spec.name),
                "spatial_dims": list(spec.spatial_dims),
                "weights": spec.name in shipped,
                "description": spec.description,
            }
        )
    for name in shipped:
        card = load_model_card(name)
        arch = card["architecture"]
        if name in {e["name"] for e in entries}:
            continue
        spec = get_network_spec(arch["network"])
        entries.append(
            {
                "name": name,
                "kind": "network",
                "parameters": int(arch.get("parameters") or parameter_count(spec.name)),
                "spatial_dims": [int(arch.get("spatial_dims", 2))],
                "weights": True,
                "description": card.get("description") or spec.description,
            }
        )
    for baseline in list_baselines():
        entries.append(
            {
                "name": baseline.name,
                "kind": "baseline",
                "parameters": 0,
                "spatial_dims": [2, 3] if baseline.volumetric else [2],
                "weights": False,
                "available": baseline.available(),
                "description": baseline.description,
            }
        )
    if args.json:
        sys.stdout.write(json.dumps(entries, indent=2) + "\n")
        return 0
    sys.stdout.write(f"{'name':<16} {'kind':<9} {'params':>11} {'dims':<5} {'weights':<8} description\n")
    for e in entries:
        dims = "/".join(str(d) for d in e["spatial_dims"])
        weights = (
            "shipped"
            if e["weights"]
            else ("-" if e["kind"] == "network" else ("ready" if e.get("available", True) else "missing"))
        )
        sys.stdout.write(
            f"{e['name']:<16} {e['kind']:<9} {e['parameters']:>11,} {dims:<5} {weights:<8} {e['description']}\n"
        )
    return 0


def add_parser(sub) -> None:
    """Register the ``models`` subcommand on the top-level parser's subparsers."""
    p = sub.add_parser("models", help="list networks, shipped weights and baselines")
    p.add_argument("--json", action="store_true", help="machine-readable list")
    add_common_options(p)
    p.set_defaults(handler=cmd_models)
