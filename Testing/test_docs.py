"""The generated parts of docs/ match their generators (``scripts/model_table.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from meddenoiselib.inference.auto import AUTO_MODELS
from meddenoiselib.io import Modality
from meddenoiselib.weights import list_shipped_weights, load_model_card

REPO = Path(__file__).resolve().parents[1]


def _model_table():
    spec = importlib.util.spec_from_file_location("model_table", REPO / "scripts" / "model_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_architecture_model_tables_are_the_scripts_output():
    table = _model_table()
    text = (REPO / "docs" / "architecture.md").read_text()
    assert table.tables() in text, "docs/architecture.md is out of date: run python scripts/model_table.py --write"


def test_model_table_rows_come_from_the_model_cards():
    table = _model_table().shipped_table()
    rows = {line.split("|")[1].strip().strip("`"): line for line in table.splitlines()[2:]}
    assert sorted(rows) == list_shipped_weights()
    for name, row in rows.items():
        card = load_model_card(name)
        assert f"| {card['architecture']['network']} |" in row
        assert f"{int(card['architecture']['parameters']):,}" in row
        if "psnr_25" in card.get("validation", {}):
            assert f"{card['validation']['psnr_25']:.2f} dB" in row
    # auto's choice per modality: the first shipped model of its list
    shipped = list_shipped_weights()
    for modality, label in ((Modality.CT, "CT"), (Modality.MR, "MR"), (Modality.US, "US")):
        choice = next(m for m in AUTO_MODELS[modality] if m in shipped)
        assert f"| {label} |" in rows[choice] or f" {label}," in rows[choice] or f", {label} |" in rows[choice]
