"""`cxrclip convert-official` writes the ONNX exports too (unless --no-onnx); a failed export only warns."""
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from cxrclip import onnx_export
from cxrclip.checkpoint import check_model_folder, load_model
from cxrclip.cli import main
from cxrclip.engine import Engine
from cxrclip.manifest import check_manifest

SIZE = 64  # the official test transform's Resize/CenterCrop, shrunk so the export runs in seconds


def _small_official(tmp_path: Path, manifest, tinybert_dir, helpers) -> Path:
    """An r50 checkpoint (full image layout, tiny BERT) whose config evaluates at 64 px."""
    state = helpers.random_state(helpers.official_shapes(manifest, "r50", tinybert_dir))
    return helpers.save_official(tmp_path / "r50_m.tar", helpers.to_legacy(state), "r50", image_size=SIZE)


@pytest.fixture
def official_tar(tmp_path, manifest, tinybert_dir, helpers) -> Path:
    return _small_official(tmp_path, manifest, tinybert_dir, helpers)


def _convert(tar: Path, out: Path, tinybert_dir: Path, *extra: str) -> int:
    return main(["convert-official", str(tar), str(out), "--text-encoder", str(tinybert_dir), *extra])


@pytest.mark.slow  # a ResNet50 export and parity check: about 50 s on 2 shared cores
def test_convert_writes_onnx_within_parity_and_engine_loads_it(official_tar, tinybert_dir, tmp_path, capsys):
    out = tmp_path / "model"
    assert _convert(official_tar, out, tinybert_dir) == 0
    assert "with ONNX exports" in capsys.readouterr().out
    info = json.loads((out / "onnx" / "export.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert info["model_id"] == config["model_id"] and info["image_size"] == SIZE
    parity, tol = info["parity"], onnx_export.PARITY_TOLERANCE
    assert parity["token_ids_identical"]
    assert parity["image_embedding_max_abs"] <= tol["embedding_max_abs"]
    assert parity["text_embedding_max_abs"] <= tol["embedding_max_abs"]
    assert parity["probability_max_abs"] <= tol["probability_max_abs"]
    manifest_text = (out / "MANIFEST.sha256").read_text()  # rewritten after the export
    assert "onnx/image.onnx" in manifest_text and check_manifest(out) is None
    onnx_engine = Engine.load(out, runtime="onnx", device="cpu")
    torch_engine = Engine.load(out, runtime="torch", device="cpu")
    assert onnx_engine.runtime == "onnx"
    texts = ["small left pleural effusion", "no pneumonia"]
    np.testing.assert_allclose(onnx_engine.encode_text(texts), torch_engine.encode_text(texts), rtol=0, atol=1e-4)


def test_no_onnx_writes_no_exports(official_tar, tinybert_dir, tmp_path, capsys):
    out = tmp_path / "model"
    assert _convert(official_tar, out, tinybert_dir, "--no-onnx") == 0
    assert not (out / "onnx").exists()
    assert "ONNX" not in capsys.readouterr().out
    check_model_folder(out)


def test_failed_export_keeps_the_model_and_warns_once(official_tar, tinybert_dir, tmp_path, monkeypatch, caplog):
    def broken(model_dir, opset=onnx_export.DEFAULT_OPSET):
        raise ModuleNotFoundError("No module named 'onnxscript'")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)
    out = tmp_path / "model"
    with caplog.at_level(logging.WARNING):
        assert _convert(official_tar, out, tinybert_dir) == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "ONNX export failed" in r.getMessage()]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert f"cxrclip export-onnx {out}" in message and "onnxscript" in message
    assert not (out / "onnx").exists()
    assert load_model(out).model_id == json.loads((out / "config.json").read_text())["model_id"]
    assert check_manifest(out) is None
