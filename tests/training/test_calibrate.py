"""`cxrclip calibrate` end to end on a tiny trained model, then `cxrclip eval` reporting reliability."""
from __future__ import annotations

import json

import pytest

from training.cli import main
from training.config import load_config
from training.trainer.loop import Trainer


@pytest.fixture
def tiny_model(overrides_for, toy_manifest, tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(load_config(None, overrides_for(toy_manifest, out, **{"train.epochs": 1})))
    trainer.fit()
    trainer.close()
    return out / "best"


def test_calibrate_writes_files_card_and_manifest_then_eval_reports_reliability(
        tiny_model, manifest_factory, tmp_path, capsys):
    from cxrclip.calibration import Calibration
    from cxrclip.engine import Engine
    from cxrclip.manifest import check_manifest

    val = manifest_factory(tmp_path / "val", n=60, seed=3, splits=("validate",), labels_only=60)
    ood = manifest_factory(tmp_path / "ood", n=30, seed=4, splits=("validate",), labels_only=30)
    rc = main(["calibrate", str(tiny_model), "--data", str(val), "--split", "validate",
               "--ood-data", str(ood), "--blank-as-negative", "--device", "cpu"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    cal = Calibration.load(tiny_model)
    edema = cal.findings["Edema"]  # labels: Edema on every third study, 20 of 60
    assert (edema.method, edema.n_positive, edema.n_negative) == ("platt", 20, 40)
    assert 0.0 <= edema.operating_point <= 1.0
    assert "Pleural Effusion" not in cal.findings  # positive in every study: nothing to fit
    assert summary["operating_points"] == cal.operating_points() and cal.split == "validate"
    assert cal.views == "frontal" and "(split `validate`, each study's frontal view)" in (
        tiny_model / "MODEL_CARD.md").read_text()
    assert set(cal.reliability["Edema"]) == {"ece_before", "brier_before", "ece_after", "brier_after"}
    card = json.loads((tiny_model / "model_card.json").read_text())
    assert card["extra"]["operating_points"] == cal.operating_points()
    assert card["extra"]["ood"]["threshold"] == pytest.approx(summary["ood"]["threshold"])
    assert card["extra"]["ood"]["representation"] == "mean_feature_map"
    card_text = (tiny_model / "MODEL_CARD.md").read_text()
    assert "## Calibration and operating points" in card_text
    assert "spatial mean of the projected feature map (not normalised)" in card_text
    assert check_manifest(tiny_model) is None  # the new files are in MANIFEST.sha256

    engine = Engine.load(tiny_model, device="cpu", runtime="torch")
    assert engine.calibration == cal and engine.ood_guard is not None
    assert engine.ood_guard.representation == "mean_feature_map"
    assert summary["ood"]["n_statistics"] == 45 and summary["ood"]["n_threshold"] == 90  # views
    # no --ood-data study is labelled No Finding = 1: no heatmap reference, and the summary says why
    assert "No Finding" in summary["ood"]["heatmap_reference"]["skipped"] and engine.heatmap_reference is None

    out = tmp_path / "eval.json"
    assert main(["eval", str(tiny_model), "--data", str(val), "--split", "validate", "--tasks", "binary,ood",
                 "--blank-as-negative", "--binary-prompts", "ensemble", "--device", "cpu",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["calibrated"] is True
    row = res["binary"]["Edema"]
    assert row["operating_point"] == edema.operating_point and row["ece"] == cal.reliability["Edema"]["ece_after"]
    # Platt is monotone: the ranking is kept (or reversed, should the slope come out negative)
    assert min(abs(row["auroc"] - row["auroc_raw"]), abs(row["auroc"] + row["auroc_raw"] - 1)) < 1e-9
    assert res["ood"]["n_views"] == 90
    assert res["ood"]["flagged"] <= 1  # the threshold is their own 99.5th percentile


def test_calibrate_on_the_viewer_study_scores_matches_eval_views_study(tiny_model, manifest_factory, tmp_path,
                                                                      capsys):
    from cxrclip.calibration import Calibration

    val = manifest_factory(tmp_path / "val", n=60, seed=3, splits=("validate",), labels_only=60)
    assert main(["calibrate", str(tiny_model), "--data", str(val), "--views", "study", "--blank-as-negative",
                 "--device", "cpu"]) == 0
    capsys.readouterr()
    cal = Calibration.load(tiny_model)
    assert cal.views == "study" and json.loads((tiny_model / "model_card.json").read_text())[
        "extra"]["calibration"]["views"] == "study"
    out = tmp_path / "eval.json"
    for views in ("study", "frontal"):
        assert main(["eval", str(tiny_model), "--data", str(val), "--split", "validate", "--tasks", "binary",
                     "--blank-as-negative", "--binary-prompts", "ensemble", "--views", views, "--device", "cpu",
                     "--out", str(out)]) == 0
        ece = json.loads(out.read_text())["binary"]["Edema"]["ece"]
        if views == "study":  # the fitting data, scored the way it was fitted: calibrate's own figure
            assert ece == pytest.approx(cal.reliability["Edema"]["ece_after"], abs=1e-12)
        else:  # half the studies have a second view, so the frontal scores differ
            assert ece != pytest.approx(cal.reliability["Edema"]["ece_after"], abs=1e-12)


def test_calibrate_writes_the_heatmap_reference_from_the_normal_studies(
        tiny_model, manifest_factory, tmp_path, capsys):
    """Studies labelled No Finding = 1 give the reference: one mean map per view kind."""
    import dataclasses

    import numpy as np

    from cxrclip.engine import Engine, ViewInput
    from cxrclip.manifest import check_manifest
    from training.data.image_cache import read_gray_uint8
    from training.data.manifest import read_manifest, write_manifest

    val = manifest_factory(tmp_path / "val", n=60, seed=3, splits=("validate",), labels_only=60)
    ood_dir = manifest_factory(tmp_path / "ood", n=10, seed=4, splits=("validate",), labels_only=10)
    ood = read_manifest(ood_dir)
    normal = {r.study_id for r in ood.records[:4]}   # 2 with PA + LATERAL, 2 with PA only
    records = [dataclasses.replace(r, labels={**r.labels, "No Finding": int(r.study_id in normal)})
               for r in ood.records]
    write_manifest(ood_dir, ood.header, records)
    assert main(["calibrate", str(tiny_model), "--data", str(val), "--split", "validate",
                 "--ood-data", str(ood_dir), "--blank-as-negative", "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ood"]["heatmap_reference"]["n_views"] == {"frontal": 4, "lateral": 2}
    assert check_manifest(tiny_model) is None
    engine = Engine.load(tiny_model, device="cpu", runtime="torch")
    frontal = [engine.feature_map(ViewInput(p, read_gray_uint8(ood.image_path(r.images[0]))))
               for r in records[:4] for p in [r.images[0]]]
    np.testing.assert_allclose(engine.heatmap_reference.maps["frontal"], np.mean(frontal, axis=0),
                               rtol=1e-4, atol=1e-5)
    card = json.loads((tiny_model / "model_card.json").read_text())
    assert card["extra"]["heatmap_reference"]["n_views"] == {"frontal": 4, "lateral": 2}
    assert "## Heatmap reference" in (tiny_model / "MODEL_CARD.md").read_text()


def test_view_kind_of_positions() -> None:
    """What the heatmap reference groups views by (the training package's view positions)."""
    from training.data.dataset import view_kind

    assert [view_kind(p) for p in ("PA", "ap", "LATERAL", "LL", "", None, "OBLIQUE")] == [
        "frontal", "frontal", "lateral", "lateral", None, None, None]


def test_ood_threshold_data_joins_the_threshold_views(tiny_model, manifest_factory, tmp_path, capsys) -> None:
    """--ood-threshold-data adds every view of its studies to the --data split's views for the
    threshold (the demo build adds phantoms drawn at 1024 px); without --ood-data it is refused."""
    from training.data.manifest import read_manifest

    val = manifest_factory(tmp_path / "val", n=20, seed=3, splits=("validate",), labels_only=20)
    ood = manifest_factory(tmp_path / "ood", n=30, seed=4, splits=("validate",), labels_only=30)
    extra = manifest_factory(tmp_path / "extra", n=6, seed=5, splits=("test",), labels_only=6)
    extra_views = sum(len(r.images) for r in read_manifest(extra).records)
    val_views = sum(len(r.images) for r in read_manifest(val).records)
    assert main(["calibrate", str(tiny_model), "--data", str(val), "--ood-data", str(ood),
                 "--ood-threshold-data", str(extra), "--blank-as-negative", "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)["ood"]
    assert summary["n_threshold"] == val_views + extra_views
    assert str(extra) in summary["threshold_data"] and "(validate)" in summary["threshold_data"]
    with pytest.raises(SystemExit, match="--ood-threshold-data needs --ood-data"):
        main(["calibrate", str(tiny_model), "--data", str(val), "--ood-threshold-data", str(extra)])
