"""`cxrclip eval` on a tiny trained model: all tasks run and write consistent JSON."""
from __future__ import annotations

import json

import numpy as np
import pytest

from training.cli import main
from training.config import load_config
from training.trainer.loop import Trainer


def test_train_then_eval(overrides_for, toy_manifest, tmp_path, capsys):
    out = tmp_path / "run"
    trainer = Trainer(load_config(None, overrides_for(toy_manifest, out, **{"train.epochs": 1})))
    trainer.fit()
    trainer.close()
    model_dir = out / "best"
    assert (model_dir / "config.json").is_file()
    result_file = tmp_path / "results.json"
    rc = main(["eval", str(model_dir), "--data", str(toy_manifest), "--split", "test",
               "--tasks", "zeroshot,binary,retrieval,linear_probe", "--batch-size", "4",
               "--device", "cpu", "--out", str(result_file)])
    assert rc == 0
    res = json.loads(result_file.read_text())
    assert res["n_studies"] == 8 and res["unreadable_images"] == 0
    assert res["zeroshot"]["classes"] == ["Edema", "Pleural Effusion"]
    assert 0.0 <= res["zeroshot"]["accuracy"] <= 1.0
    r = res["retrieval"]["image_to_text"]
    assert r["R@1"] <= r["R@5"] <= r["R@10"] == 1.0  # only 6 texts: R@10 must be 1
    assert set(res["binary"]) == {"Edema", "Pleural Effusion"}
    macro = res["binary_macro"]
    scored = [f for f in ("Edema", "Pleural Effusion") if "auroc" in res["binary"][f]]
    assert scored and macro["findings"] == scored and macro["n_findings"] == len(scored)
    assert macro["auroc"] == np.mean([res["binary"][f]["auroc"] for f in macro["findings"]])
    for entry in [macro] + [res["binary"][f] for f in macro["findings"]]:
        lo, hi = entry["ci95"] if entry is macro else entry["auroc_ci95"]
        assert 0.0 <= lo <= hi <= 1.0
    printed = capsys.readouterr().out
    assert "retrieval.image_to_text.R@1" in printed and "binary_macro.ci95" in printed
    # Every view of each study, as the viewer scores a study: same studies, other numbers.
    assert main(["eval", str(model_dir), "--data", str(toy_manifest), "--split", "test", "--tasks", "binary",
                 "--views", "study", "--device", "cpu", "--out", str(tmp_path / "study.json")]) == 0
    study = json.loads((tmp_path / "study.json").read_text())
    assert res["views"] == "frontal" and study["views"] == "study" and study["n_studies"] == 8


class _PixelEngine:
    """image_vectors: a unit vector made from each image's mean and first pixel (the API the
    embedding helper uses)."""

    def image_vectors(self, pixels):
        vecs = np.array([[float(p.mean()), float(p.flat[0]) + 1.0, 1.0] for p in pixels])
        return vecs / np.linalg.norm(vecs, axis=1, keepdims=True), np.zeros_like(vecs)


def test_study_embeddings_frontal_or_all_views(toy_manifest):
    from PIL import Image

    from training.data.manifest import read_manifest
    from training.evaluation.embedding import study_embeddings

    manifest = read_manifest(toy_manifest)
    engine = _PixelEngine()
    frontal = study_embeddings(engine, [manifest], "test")
    study = study_embeddings(engine, [manifest], "test", views="study")
    assert [r.study_id for r in frontal.records] == [r.study_id for r in study.records]
    for i, record in enumerate(study.records):
        own = engine.image_vectors([np.asarray(Image.open(manifest.image_path(p))) for p in record.images])[0]
        expected = own.mean(axis=0) / np.linalg.norm(own.mean(axis=0))
        np.testing.assert_allclose(study.embeddings[i], expected, atol=1e-6)
        np.testing.assert_allclose(frontal.embeddings[i], own[0], atol=1e-6)  # the PA view comes first
    assert any(len(r.images) == 2 for r in study.records)
    with pytest.raises(ValueError, match="views must be one of"):
        study_embeddings(engine, [manifest], "test", views="lateral")


class _HashEngine:
    """Texts -> fixed unit vectors (one per distinct string); the engine API the runner uses."""

    logit_scale = 20.0
    calibration = None

    def __init__(self):
        self.vectors: dict[str, np.ndarray] = {}

    def embed_texts(self, texts):
        for t in texts:
            if t not in self.vectors:
                v = np.random.default_rng(len(self.vectors)).normal(size=8)
                self.vectors[t] = (v / np.linalg.norm(v)).astype(np.float32)
        return np.stack([self.vectors[t] for t in texts])

    encode_text = embed_texts

    def zero_shot_classifier(self, findings):
        from cxrclip.zero_shot import ZeroShotClassifier

        return ZeroShotClassifier.build(self.encode_text, self.logit_scale, findings)


def _unit(x):
    return x / np.linalg.norm(x)


def test_binary_classifier_pair_and_ensemble():
    from cxrclip.prompts import class_prompts
    from training.evaluation.runner import binary_classifier

    eng = _HashEngine()
    pair = binary_classifier(eng, ["Edema"], "pair", rsna=False)
    np.testing.assert_allclose(pair.negative[0], eng.vectors["no pulmonary edema"], atol=1e-6)
    np.testing.assert_allclose(pair.positive[0], eng.vectors["pulmonary edema"], atol=1e-6)
    ensemble = binary_classifier(eng, ["Edema"], "ensemble", rsna=False)
    mean = np.stack([eng.vectors[p] for p in class_prompts("Edema")]).mean(axis=0)
    np.testing.assert_allclose(ensemble.positive[0], _unit(mean), atol=1e-6)
    np.testing.assert_allclose(ensemble.negative[0], eng.vectors["no pulmonary edema"], atol=1e-6)
    rsna = binary_classifier(eng, ["Pneumonia"], "ensemble", rsna=True)  # RSNA keeps its pair
    np.testing.assert_allclose(rsna.positive[0], eng.vectors["Findings suggesting pneumonia"], atol=1e-6)
