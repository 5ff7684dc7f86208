"""Pointing game of heatmaps on phantoms with recorded regions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.evaluation.pointing import (area_share, grown, is_hit, load_cases, main, peak,
                                          pointing_game)
from training.phantoms.dataset import GenerateOptions, generate_dataset
from training.phantoms.findings import Finding

DEMO = Path(__file__).resolve().parents[2] / "assets" / "models" / "cxrclip-demo"
EFFUSION = Finding("Pleural Effusion", side="left", zone="lower", ap="posterior", location="base",
                   severity="severe")


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pointing")
    forced = {0: [Finding("Cardiomegaly", severity="severe")], 1: [EFFUSION], 2: []}
    generate_dataset(GenerateOptions(out=out, seed=12, size=160, dicom=False), studies=3,
                     forced=forced)
    return out


def test_geometry_helpers() -> None:
    heatmap = np.full((10, 10), np.nan)
    heatmap[2:8, 2:8] = 0.0
    heatmap[6, 3] = 1.0
    assert peak(heatmap) == (6, 3)
    boxes = [(2, 5, 4, 7)]
    assert is_hit((6, 3), boxes) and not is_hit((6, 4), boxes)
    assert is_hit((6, 5), grown(boxes, 2)) and not is_hit((6, 7), grown(boxes, 2))
    assert area_share(boxes, 10, 10) == pytest.approx(0.04)
    assert area_share(grown(boxes, 100), 10, 10) == pytest.approx(1.0)


def test_cases_come_from_the_recorded_regions(phantoms: Path) -> None:
    cases = load_cases(phantoms)
    assert {(c.study_id, c.finding) for c in cases} == {("phantom-12-000000", "Cardiomegaly"),
                                                         ("phantom-12-000001", "Pleural Effusion")}
    assert all(c.view in ("PA", "AP") and c.image.is_file() for c in cases)
    both = load_cases(phantoms, views=("frontal", "lateral"))
    assert {c.view for c in both} >= {"LATERAL"}


def test_the_demo_model_points_at_a_severe_effusion_and_heart(phantoms: Path) -> None:
    from cxrclip.engine import Engine

    result = pointing_game(Engine.load(DEMO), load_cases(phantoms), ["similarity", "contribution"])
    table = result["findings"]
    assert table["all"]["n"] == 2
    assert table["all"]["contribution_tol1"] == 1.0      # within one 40 px cell of the region
    assert 0.0 < table["all"]["chance_tol0"] < table["all"]["chance_tol1"] <= 1.0
    assert set(result["ms_per_map"]) == {"similarity", "contribution"}


def test_cli_reports_a_folder_without_ground_truth(tmp_path: Path, capsys) -> None:
    assert main(["--model", str(DEMO), "--data", str(tmp_path)]) == 1
    assert "ground_truth.jsonl is missing" in capsys.readouterr().out
