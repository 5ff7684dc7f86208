"""Dialog to convert a published CXR-CLIP checkpoint (.tar) with `cxrclip.convert_official`.

The conversion runs in a pool thread (it loads a few hundred MB); then, when
torch, onnx and onnxscript are installed, a second job writes the folder's
ONNX exports (`cxrclip.onnx_export`, as ``cxrclip convert-official`` does), so
the converted model runs on ONNX Runtime. The dialog shows a busy bar, the step
and the elapsed time, then the new model id or the error. A failed (or
impossible) export only warns: the converted model is kept and offered for
loading (it runs on the torch runtime), with the command that retries the export.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
    QLineEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from cxrclip.extras import TRAIN_INSTALL, require_train
from plugins.cxrclip_findings.ui_common import ERROR_STYLE

Runner = Callable[[Callable[[], Any], Callable[[Any], None], Callable[[BaseException], None]], None]
EXPORT_MODULES = ("torch", "onnx", "onnxscript")  # what `cxrclip.onnx_export` needs
WARNING_STYLE = "color: #f2c94c;"


def convert(checkpoint: str, text_encoder: str, out_dir: str, backbone: str) -> str:
    """Run the conversion (worker thread); returns the model id."""
    require_train("torch", "Converting a checkpoint")
    from cxrclip.convert_official import convert_official

    for what, path, check in (("checkpoint file", checkpoint, Path.is_file),
                              ("text-encoder directory", text_encoder, Path.is_dir)):
        if not path or not check(Path(path)):
            raise FileNotFoundError(f"{what} not found: {path!r}")
    if not out_dir:
        raise ValueError("choose an output directory for the converted model")
    return convert_official(checkpoint, out_dir, text_encoder, backbone=backbone)


def export_onnx(model_dir: str) -> dict[str, Any]:
    """Write ``model_dir``'s ONNX exports (worker thread); returns their export record."""
    from cxrclip.onnx_export import export_onnx as write_exports

    return write_exports(model_dir)


def missing_export_module() -> str | None:
    """The first of `EXPORT_MODULES` that is not installed, else None."""
    import importlib.util

    return next((name for name in EXPORT_MODULES if importlib.util.find_spec(name) is None), None)


def _default_runner(fn: Callable[[], Any], done: Callable[[Any], None],
                    fail: Callable[[BaseException], None]) -> None:
    from viewer.qt.workers import run_in_pool

    run_in_pool(fn, done, fail)


class ConvertDialog(QDialog):
    """Checkpoint file, text-encoder dir, output dir -> converted model directory."""

    def __init__(self, parent: QWidget | None = None, runner: Runner | None = None,
                 on_converted: Callable[[Path], None] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Convert official CXR-CLIP checkpoint")
        self.setMinimumWidth(560)
        self._runner = runner or _default_runner
        self._on_converted = on_converted
        self.checkpoint = self._path_row("Checkpoint (.tar)", file=True)
        self.text_encoder = self._path_row("Text encoder directory (Bio_ClinicalBERT)")
        self.out_dir = self._path_row("Output directory")
        self.backbone = QComboBox(self)
        self.backbone.addItems(["auto", "r50", "swint"])
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)
        self.progress.hide()
        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.convert_button = self.buttons.addButton("Convert", QDialogButtonBox.ButtonRole.ApplyRole)
        self.convert_button.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        self._started, self._step = 0.0, "Converting"
        self._model_id = ""
        self._tick = QTimer(self)
        self._tick.timeout.connect(self._show_elapsed)
        form = QFormLayout()
        for title, row in (("Checkpoint", self.checkpoint), ("Text encoder", self.text_encoder),
                           ("Output", self.out_dir)):
            form.addRow(title, row.parentWidget())
        form.addRow("Backbone", self.backbone)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.buttons)
        self.result_dir: Path | None = None

    def _path_row(self, placeholder: str, file: bool = False) -> QLineEdit:
        holder = QWidget(self)
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        edit = QLineEdit(holder)
        edit.setPlaceholderText(placeholder)
        browse = QPushButton("Browse…", holder)
        browse.clicked.connect(lambda: self._browse(edit, file))
        row.addWidget(edit, 1)
        row.addWidget(browse)
        return edit

    def _browse(self, edit: QLineEdit, file: bool) -> None:
        if file:
            path, _ = QFileDialog.getOpenFileName(self, "Checkpoint", "", "Checkpoints (*.tar *.pt *.pth)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Directory")
        if path:
            edit.setText(path)

    def start(self) -> None:
        """Validate nothing here (the worker does, with clear messages) and run."""
        args = (self.checkpoint.text().strip(), self.text_encoder.text().strip(),
                self.out_dir.text().strip(), self.backbone.currentText())
        self.convert_button.setEnabled(False)
        self.progress.show()
        self.message.setStyleSheet("")
        self._begin("Converting")
        self._runner(lambda: convert(*args), self._converted, self._failed)

    def _begin(self, step: str) -> None:
        self._step, self._started = step, time.monotonic()
        self._tick.start(500)
        self._show_elapsed()

    def _show_elapsed(self) -> None:
        done = f"Converted: model id {self._model_id}. " if self._step != "Converting" else ""
        self.message.setText(f"{done}{self._step}… {time.monotonic() - self._started:.0f} s")

    def _finish(self) -> None:
        self._tick.stop()
        self.progress.hide()
        self.convert_button.setEnabled(True)

    def _converted(self, model_id: Any) -> None:
        """The weights are converted: write the ONNX exports next, when that is possible."""
        self._model_id, self.result_dir = str(model_id), Path(self.out_dir.text().strip())
        missing = missing_export_module()
        if missing is not None:
            self._done(f"ONNX exports not written ({missing} is not installed: "
                       f"{TRAIN_INSTALL}); the model runs on the torch runtime")
            return
        folder = str(self.result_dir)
        self._begin("Writing the ONNX exports (for ONNX Runtime)")
        self._runner(lambda: export_onnx(folder), lambda _info: self._done(),
                     self._export_failed)

    def _export_failed(self, exc: BaseException) -> None:
        reason = str(exc).splitlines()[0] if str(exc) else ""
        self._done(f"but the ONNX export failed ({type(exc).__name__}: {reason}); the model "
                   f"runs on the torch runtime. Retry with: cxrclip export-onnx {self.result_dir}")

    def _done(self, warning: str = "") -> None:
        """Say what was written (a warning when the exports are missing) and offer the model."""
        self._finish()
        text = f"Converted: model id {self._model_id} in {self.result_dir}"
        self.message.setStyleSheet(WARNING_STYLE if warning else "")
        self.message.setText(f"{text}, {warning}" if warning else f"{text}, with ONNX exports")
        if self._on_converted is not None:
            self._on_converted(self.result_dir)

    def _failed(self, exc: BaseException) -> None:
        self._finish()
        self.message.setStyleSheet(ERROR_STYLE)
        self.message.setText(f"Conversion failed: {type(exc).__name__}: {exc}")
