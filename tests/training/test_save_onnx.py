"""`cxrclip train` writes ONNX exports of the model folder users load (best/), not of resume checkpoints."""
import json
import logging

import numpy as np

from cxrclip import onnx_export
from cxrclip.checkpoint import load_model
from cxrclip.engine import Engine
from cxrclip.manifest import check_manifest
from training.config import load_config
from training.trainer.loop import Trainer


def _train(overrides_for, data, out, **extra):
    trainer = Trainer(load_config(None, overrides_for(data, out, **{"train.epochs": 1, **extra})))
    trainer.fit()
    trainer.close()
    return trainer


def test_training_run_exports_its_best_model(overrides_for, toy_manifest, tmp_path):
    out = tmp_path / "run"
    _train(overrides_for, toy_manifest, out, **{"train.export_onnx": True})
    best = out / "best"
    info = json.loads((best / "onnx" / "export.json").read_text())
    assert info["model_id"] == json.loads((best / "config.json").read_text())["model_id"]
    assert info["parity"]["probability_max_abs"] <= onnx_export.PARITY_TOLERANCE["probability_max_abs"]
    assert check_manifest(best) is None and "onnx/text.onnx" in (best / "MANIFEST.sha256").read_text()
    engine = Engine.load(best, runtime="onnx", device="cpu")
    assert engine.runtime == "onnx"
    # the zero-shot prompt embeddings of the exported text tower ship with it (first launch encodes none)
    from cxrclip.prompt_cache import engine_fingerprint, read_prompt_embeddings, zero_shot_prompts

    assert "prompt_embeddings.npz" in (best / "MANIFEST.sha256").read_text()
    shipped = read_prompt_embeddings(best, engine_fingerprint(engine, best))
    assert set(shipped) == set(zero_shot_prompts())
    prompt = zero_shot_prompts()[0]
    np.testing.assert_allclose(shipped[prompt], engine.embed_texts([prompt])[0], atol=1e-5)
    steps = sorted((out / "checkpoints").glob("step_*"))
    assert steps and not any((step / "onnx").exists() for step in steps)  # resume checkpoints: no exports


def test_export_switch_off_writes_none(overrides_for, toy_manifest, tmp_path):
    out = tmp_path / "run"
    _train(overrides_for, toy_manifest, out, **{"train.export_onnx": False})
    assert (out / "best" / "config.json").is_file() and not (out / "best" / "onnx").exists()


def test_failed_export_keeps_the_model_and_warns(overrides_for, toy_manifest, tmp_path, monkeypatch, caplog):
    def broken(model_dir, opset=onnx_export.DEFAULT_OPSET):
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        _train(overrides_for, toy_manifest, out, **{"train.export_onnx": True})
    best = out / "best"
    warnings = [r.getMessage() for r in caplog.records if "ONNX export failed" in r.getMessage()]
    assert len(warnings) == 1 and f"cxrclip export-onnx {best}" in warnings[0] and "exporter crashed" in warnings[0]
    assert not (best / "onnx").exists()
    assert load_model(best).model_id == json.loads((best / "config.json").read_text())["model_id"]
