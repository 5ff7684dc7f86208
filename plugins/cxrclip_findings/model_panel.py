"""Model panel: what the loaded model is (from its card), a banner for the synthetic demo
model, and buttons to load another model or convert an official checkpoint."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from plugins.cxrclip_findings.controller import FindingsController
from plugins.cxrclip_findings.ui_common import StatusLine, demo_banner

FIELDS = (("name", "Name"), ("backbone", "Backbone"), ("text_encoder", "Text encoder"),
          ("data", "Training data"), ("intended_use", "Intended use"), ("device", "Device"),
          ("path", "Directory"), ("model_id", "Model id"))


class ModelPanel(QWidget):
    """Model card summary, demo banner, load and convert buttons."""

    def __init__(self, controller: FindingsController, on_load: Callable[[], None] | None = None,
                 on_convert: Callable[[], None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.banner = demo_banner(self)
        self.status = StatusLine(self)
        self.values: dict[str, QLabel] = {}
        form = QFormLayout()
        for key, title in FIELDS:
            label = QLabel("\u2014", self)
            label.setWordWrap(True)
            self.values[key] = label
            form.addRow(title, label)
        self.load_button = QPushButton("Load model…", self)
        self.convert_button = QPushButton("Convert official checkpoint…", self)
        if on_load is not None:
            self.load_button.clicked.connect(on_load)
        if on_convert is not None:
            self.convert_button.clicked.connect(on_convert)
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.convert_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.banner)
        layout.addWidget(self.status)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addStretch(1)
        controller.model_loading.connect(
            lambda path: self.status.show_message(f"Loading {path}…", busy=True))
        controller.model_ready.connect(self.show_summary)
        controller.model_failed.connect(self.show_error)

    def show_summary(self, summary: Any) -> None:
        """Fill the fields from a `ModelSummary`; show the banner for a synthetic model."""
        self.status.show_message("")
        for key, label in self.values.items():
            label.setText(str(getattr(summary, key, "")) or "\u2014")
        self.values["backbone"].setText(f"{summary.backbone} @ {summary.image_size} px")
        self.banner.setVisible(bool(summary.synthetic))

    def show_error(self, message: str) -> None:
        """A model that failed to load: say why; the viewer keeps working. When an earlier
        model is still loaded its details stay."""
        self.status.show_message(f"Model failed to load: {message}", error=True)
        if self.controller.service is not None:
            return
        self.banner.hide()
        for label in self.values.values():
            label.setText("\u2014")
