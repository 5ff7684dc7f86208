"""The Convert dialog writes the converted model's ONNX exports when torch, onnx and onnxscript
are installed; a failed or impossible export warns, and the converted model is kept and offered."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cxrclip import onnx_export
from cxrclip.checkpoint import check_model_folder
from plugins.cxrclip_findings import convert_dialog as cd
from tests.cxrclip_model.conftest import (TINYBERT, official_shapes, random_state, save_official,
                                          to_legacy, write_bert_dir)

KEYS = Path(__file__).resolve().parents[2] / "tests" / "cxrclip_model" / "official_cxrclip_checkpoint_keys.json"
SIZE = 64  # evaluation size written into the checkpoint's config: the export runs in seconds


@pytest.fixture
def official(tmp_path: Path) -> tuple[Path, Path]:
    """A published-layout r50 checkpoint with a tiny BERT, and that BERT's directory."""
    bert = write_bert_dir(tmp_path / "bert", TINYBERT)
    shapes = official_shapes(json.loads(KEYS.read_text()), "r50", bert)
    tar = save_official(tmp_path / "r50_m.tar", to_legacy(random_state(shapes)), "r50", image_size=SIZE)
    return tar, bert


def run_now(fn, done, fail):
    """Run a dialog job on this thread (the viewer runs it in its pool)."""
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001 - handed to the dialog like the pool does
        fail(exc)
    else:
        done(value)


def _dialog(qtbot, tar: Path, bert: Path, out: Path, converted: list) -> cd.ConvertDialog:
    dialog = cd.ConvertDialog(runner=run_now, on_converted=converted.append)
    qtbot.addWidget(dialog)
    dialog.checkpoint.setText(str(tar))
    dialog.text_encoder.setText(str(bert))
    dialog.out_dir.setText(str(out))
    return dialog


def test_failed_export_warns_names_the_retry_and_keeps_the_model(qtbot, official, tmp_path, monkeypatch):
    def broken_export(model_dir, opset=onnx_export.DEFAULT_OPSET):
        raise RuntimeError("parity check failed: text embeddings differ by 0.3\nmore detail")

    monkeypatch.setattr(onnx_export, "export_onnx", broken_export)
    out, converted = tmp_path / "model", []
    dialog = _dialog(qtbot, *official, out, converted)
    dialog.start()
    text = dialog.message.text()
    assert text.startswith("Converted: model id ") and "ONNX export failed (RuntimeError: parity" in text
    assert "more detail" not in text and f"Retry with: cxrclip export-onnx {out}" in text
    assert dialog.message.styleSheet() == cd.WARNING_STYLE and dialog.convert_button.isEnabled()
    assert converted == [out] and not (out / "onnx").exists()
    check_model_folder(out)  # the converted weights are intact


def test_without_onnxscript_the_model_is_kept_and_the_extra_named(qtbot, official, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    out, converted = tmp_path / "model", []
    dialog = _dialog(qtbot, *official, out, converted)
    dialog.start()
    text = dialog.message.text()
    assert "ONNX exports not written (onnxscript is not installed: " in text
    assert "pip install 'cxrclip-viewer[train]'" in text
    assert converted == [out] and not (out / "onnx").exists()


@pytest.mark.slow  # a ResNet50 export and its parity check: about a minute on 2 shared cores
def test_dialog_writes_the_onnx_exports_and_onnx_runtime_loads_them(qtbot, official, tmp_path, monkeypatch):
    from cxrclip.engine import Engine

    out, converted, steps = tmp_path / "model", [], []
    dialog = _dialog(qtbot, *official, out, converted)
    export = cd.export_onnx

    def observed_export(model_dir):  # the real export; remember what the dialog showed meanwhile
        steps.append((dialog.message.text(), dialog.progress.isVisible()))
        return export(model_dir)

    monkeypatch.setattr(cd, "export_onnx", observed_export)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.start()
    assert steps and "Writing the ONNX exports" in steps[0][0] and steps[0][1]
    assert dialog.message.text().endswith(", with ONNX exports") and converted == [out]
    assert (out / "onnx" / "export.json").is_file()
    assert Engine.load(out, runtime="onnx", device="cpu").runtime == "onnx"
