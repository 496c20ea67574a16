"""The held-out references of the real-noise benchmarks stay out of every training list and every shipped model's
card, and the real-MR report grades issue 13's MR acceptance from its rows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from data_split import REAL_MR, REAL_NOISE_CT, TRAIN, VALIDATION  # noqa: E402
from real_mr import report  # noqa: E402


def _card_files(keys: tuple[str, ...] = ("data", "validation_data")) -> set[str]:
    """Every file a shipped card lists under ``keys`` (training data, validation data; any nesting), relative to its
    modality folder, without the card's comment."""
    names: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in keys and isinstance(value, list):
                    names.update(str(v).split(" (")[0] for v in value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for card in (ROOT / "MedDenoiseLib" / "meddenoiselib" / "weights").glob("*.json"):
        walk(json.loads(card.read_text()))
    return names


def test_real_mr_references_are_in_no_training_or_validation_list_and_no_card() -> None:
    sources = {source for _, source, _ in REAL_MR}
    assert len(sources) == 3 and len(REAL_MR) == 7
    assert not sources & set(TRAIN) and not sources & set(VALIDATION)
    listed = _card_files()
    assert listed, "no card lists its training data"
    for source in sources:
        assert source.split("/", 1)[1] not in listed, source  # cards name files relative to the modality folder


def test_real_noise_ct_series_never_train() -> None:
    held_out = {f for _, files, _ in REAL_NOISE_CT for f in files}
    assert not held_out & set(TRAIN)
    trained_on = _card_files(("data",))
    assert "itkelastix_chest_ct_series00/00-slice038.dcm" in trained_on  # the CT model's first training slice
    assert not {f.split("/", 1)[1] for f in held_out} & trained_on


def _rows(gain_auto: float, bias_auto: float) -> list[dict]:
    rows = []
    for case in ("a", "b"):
        rows.append(
            {"case": case, "level": "rician:3%", "method": "noisy", "psnr": 30.0, "ssim": 0.9, "bias_sigma": 1.0}
        )
        rows.append(
            {
                "case": case,
                "level": "rician:3%",
                "method": "auto",
                "psnr": 30.0 + gain_auto,
                "ssim": 0.95,
                "bias_sigma": bias_auto,
            }
        )
    return rows


def test_real_mr_report_grades_the_acceptance_from_the_mean_gain_and_bias() -> None:
    passing = "\n".join(report(_rows(5.5, 0.05), ["auto"]))
    assert "**+5.50 dB**" in passing and "**0.050 σ**" in passing and "**pass**" in passing
    assert "**fail**" in "\n".join(report(_rows(5.5, 0.2), ["auto"]))  # bias too large
    assert "**fail**" in "\n".join(report(_rows(2.2, 0.05), ["auto"]))  # gain too small
