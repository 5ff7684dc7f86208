"""Prompt embeddings shipped in a model folder (cxrclip.prompt_cache) on the tiny random model."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from cxrclip.manifest import check_manifest, write_manifest
from cxrclip.prompt_cache import (
    PROMPT_EMBEDDINGS_FILE, engine_fingerprint, read_prompt_embeddings, text_fingerprint,
    write_prompt_embeddings, zero_shot_prompts)

PROMPTS = ["No pleural effusion.", "Small left pleural effusion", "cardiomegaly",
           "There is a large right pneumothorax with mediastinal shift."]


@pytest.fixture()
def model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny model folder, with a manifest."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    write_manifest(folder)
    return folder


def test_round_trip_equals_fresh_encoding(engine, model_copy):
    path = write_prompt_embeddings(engine, model_copy, PROMPTS)
    write_manifest(model_copy)
    assert path.name == PROMPT_EMBEDDINGS_FILE and check_manifest(model_copy) is None
    assert PROMPT_EMBEDDINGS_FILE in (model_copy / "MANIFEST.sha256").read_text()

    read = read_prompt_embeddings(model_copy, engine_fingerprint(engine, model_copy))
    assert list(read) == PROMPTS
    fresh = engine.embed_texts(PROMPTS)
    stored = np.stack([read[p] for p in PROMPTS])
    assert stored.dtype == np.float32
    assert np.abs(stored - fresh).max() <= 1e-5


def test_fingerprint_names_runtime_and_text_tower_files(engine, model_copy):
    torch_print = engine_fingerprint(engine, model_copy)
    assert torch_print == text_fingerprint(model_copy, "torch", "float32")
    assert torch_print != text_fingerprint(model_copy, "onnx")
    assert torch_print != text_fingerprint(model_copy, "torch", "bfloat16")
    config = model_copy / "text_encoder" / "tokenizer_config.json"
    data = json.loads(config.read_text())
    config.write_text(json.dumps({**data, "note": "edited"}))
    write_manifest(model_copy)
    assert text_fingerprint(model_copy, "torch") != torch_print
    with pytest.raises(ValueError, match="runtime must be one of"):
        text_fingerprint(model_copy, "tensorrt")


def test_stale_file_is_ignored_with_a_log_line(engine, model_copy, caplog):
    write_prompt_embeddings(engine, model_copy, PROMPTS)
    with caplog.at_level(logging.INFO, logger="cxrclip.prompt_cache"):
        assert read_prompt_embeddings(model_copy, text_fingerprint(model_copy, "onnx")) == {}
    assert "another text tower" in caplog.text and PROMPT_EMBEDDINGS_FILE in caplog.text


def test_changed_text_tower_makes_the_file_stale(engine, model_copy):
    write_prompt_embeddings(engine, model_copy, PROMPTS)
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes() + b" ")  # any change to the tower's files
    write_manifest(model_copy)
    assert read_prompt_embeddings(model_copy, engine_fingerprint(engine, model_copy)) == {}


def test_missing_or_corrupt_file_reads_as_empty(engine, model_copy, caplog):
    fingerprint = engine_fingerprint(engine, model_copy)
    assert read_prompt_embeddings(model_copy, fingerprint) == {}
    (model_copy / PROMPT_EMBEDDINGS_FILE).write_bytes(b"not numpy")
    with caplog.at_level(logging.WARNING, logger="cxrclip.prompt_cache"):
        assert read_prompt_embeddings(model_copy, fingerprint) == {}
    assert "unreadable" in caplog.text and "cxrclip export-onnx" in caplog.text


def test_default_prompts_are_the_zero_shot_ensembles():
    from cxrclip import zero_shot

    prompts = zero_shot_prompts()
    ensembles = zero_shot.finding_ensembles(zero_shot.scored_findings(None, "complement"))
    expected = {p for e in ensembles for p in e.positives + e.negatives}
    assert set(prompts) == expected and len(prompts) == len(expected)
    assert [len(p) for p in prompts] == sorted(len(p) for p in prompts)



DEMO = Path(__file__).resolve().parents[2] / "assets" / "models" / "cxrclip-demo"


@pytest.fixture(scope="module")
def demo_onnx_engine():
    from cxrclip.engine import Engine

    return Engine.load(DEMO, device="cpu", runtime="onnx")


def test_demo_model_ships_current_prompt_embeddings(demo_onnx_engine):
    read = read_prompt_embeddings(DEMO, engine_fingerprint(demo_onnx_engine, DEMO))
    assert set(read) == set(zero_shot_prompts())  # not stale: rewrite it after re-exporting the demo
    sample = zero_shot_prompts()[::53]
    assert np.abs(np.stack([read[p] for p in sample]) - demo_onnx_engine.embed_texts(sample)).max() <= 1e-5


def test_export_onnx_step_writes_file_and_manifest(tmp_path, capsys):
    """The step `cxrclip export-onnx` runs after exporting (the export itself is tested in
    test_onnx_runtime.py; here on the demo folder, already exported, without its file)."""
    from cxrclip.cli import _write_prompt_embeddings
    from cxrclip.engine import Engine

    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    (folder / PROMPT_EMBEDDINGS_FILE).unlink()
    write_manifest(folder)
    _write_prompt_embeddings(str(folder))
    assert "zero-shot prompt embeddings" in capsys.readouterr().out
    assert check_manifest(folder) is None
    assert PROMPT_EMBEDDINGS_FILE in (folder / "MANIFEST.sha256").read_text()
    engine = Engine.load(folder, device="cpu", runtime="onnx")
    assert len(read_prompt_embeddings(folder, engine_fingerprint(engine, folder))) == len(zero_shot_prompts())
