"""Sentence agreement of the demo model's nearest sentences on a few phantoms."""
from __future__ import annotations

from pathlib import Path

from training.evaluation.sentence_agreement import main, truth_mentions
from training.phantoms.dataset import GenerateOptions, generate_dataset
from training.phantoms.findings import Finding

DEMO = Path(__file__).resolve().parents[2] / "assets" / "models" / "cxrclip-demo"


def test_truth_mentions_of_a_phantom_row() -> None:
    row = {"findings": [{"name": "Pleural Effusion", "side": "bilateral"}]}
    facts = {(m.finding, m.polarity, m.side) for m in truth_mentions(row)}
    assert ("Pleural Effusion", "present", "both") in facts
    assert ("Pneumothorax", "absent", None) in facts


def test_cli_measures_both_rankings(tmp_path: Path, capsys) -> None:
    forced = {0: [], 1: [Finding("Pneumothorax", side="right", zone="upper", ap="anterior",
                                 location="apical", severity="severe")]}
    generate_dataset(GenerateOptions(out=tmp_path, seed=13, size=160, dicom=False), studies=2,
                     forced=forced)
    out = tmp_path / "agreement.json"
    assert main(["--model", str(DEMO), "--data", str(tmp_path), "--out", str(out)]) == 0
    import json

    result = json.loads(out.read_text())
    assert result["studies"] == 2 and result["normal_studies"] == 1
    assert 0.0 <= result["nearest"] <= 1.0 and 0.0 <= result["agreeing"] <= 1.0
    assert result["agreeing"] >= result["nearest"]
