"""Paired fracture test (training.evaluation.twins): pairs, win rate, the command on a tiny twin set."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from training.evaluation import metrics
from training.evaluation.twins import main, paired_win_rate, twin_pairs
from training.phantoms.dataset import GenerateOptions, generate_dataset
from training.phantoms.findings import Finding

DEMO = Path(__file__).resolve().parents[2] / "assets" / "models" / "cxrclip-demo"


def _fracture(side: str, rib: int) -> list[Finding]:
    return [Finding("Fracture", side=side, zone="mid", severity="severe", kind="rib", params={"rib": rib})]


def test_pairs_and_win_rate_on_known_scores() -> None:
    ids = ["a", "b", "a-intact", "c", "b-intact"]
    pairs = twin_pairs(ids)
    assert pairs == [(0, 2), (1, 4)]
    scores = np.array([0.9, 0.4, 0.2, 0.5, 0.4])
    assert paired_win_rate(scores, pairs) == pytest.approx(0.75)    # a beats its twin, b ties
    with pytest.raises(ValueError, match="--fracture-twins"):
        paired_win_rate(scores, [])


def test_wilson_interval_known_values() -> None:
    assert metrics.wilson_interval(16, 16) == pytest.approx([0.8064, 1.0], abs=1e-4)  # all pairs won
    assert metrics.wilson_interval(8, 16) == pytest.approx([0.2800, 0.7200], abs=1e-4)
    assert metrics.wilson_interval(0, 10) == pytest.approx([0.0, 0.2775], abs=1e-4)
    with pytest.raises(ValueError, match="wilson_interval"):
        metrics.wilson_interval(3, 2)


def test_confounders_compare_fracture_negatives_with_and_without_each_finding() -> None:
    from training.evaluation.twins import confounders

    labels = ([{"Fracture": 0, "Pleural Other": 1}] * 2 + [{"Fracture": 0, "Pleural Other": 0, "Edema": 1}] * 2
              + [{"Fracture": 1, "Pleural Other": 1}])
    scores = np.array([0.8, 0.6, 0.2, 0.4, 0.99])
    rows = confounders(scores, labels, minimum=2)
    assert [r["finding"] for r in rows] == ["Pleural Other", "Edema"]
    assert rows[0]["mean_with"] == pytest.approx(0.7) and rows[0]["mean_without"] == pytest.approx(0.3)
    assert rows[0]["gap"] == pytest.approx(0.4) and rows[0]["studies"] == 2
    assert rows[1]["gap"] == pytest.approx(-0.4)
    assert confounders(scores, labels, minimum=3) == []


def test_the_command_reports_both_figures_on_a_twin_set(tmp_path: Path, capsys) -> None:
    forced = {0: _fracture("left", 6), 1: _fracture("right", 5), 2: [], 3: [Finding("Cardiomegaly")]}
    generate_dataset(GenerateOptions(out=tmp_path / "set", seed=4, size=160, dicom=False, split="validate",
                                     fracture_twins=True), studies=4, forced=forced)
    assert main(["--model", str(DEMO), "--data", str(tmp_path / "set"), "--out", str(tmp_path / "r.json")]) == 0
    result = json.loads((tmp_path / "r.json").read_text())
    from training.data.manifest import read_manifest
    labelled = [r for r in read_manifest(tmp_path / "set").records
                if not r.study_id.endswith("-intact") and r.labels.get("Fracture") in (0, 1)]
    assert result["pairs"] == 2 and result["studies_across_patients"] == len(labelled) >= 2
    assert result["paired_win_rate"] in (0.0, 0.5, 1.0) and 0.0 <= result["auroc_across_patients"] <= 1.0
    assert result["paired_win_rate_ci95"] == metrics.wilson_interval(2 * result["paired_win_rate"], 2)
    out = capsys.readouterr().out
    assert "paired win rate" in out and "95 % intervals: Wilson, study bootstrap" in out
    generate_dataset(GenerateOptions(out=tmp_path / "plain", seed=4, size=160, dicom=False, split="validate"),
                     studies=2, forced={0: _fracture("left", 6), 1: []})
    with pytest.raises(SystemExit, match="2"):
        main(["--model", str(DEMO), "--data", str(tmp_path / "plain")])
    assert "--fracture-twins" in capsys.readouterr().err
