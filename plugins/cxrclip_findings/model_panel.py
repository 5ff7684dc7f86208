"""Model panel: what the loaded model is (from its card), a banner for the synthetic demo
model, and buttons to load another model or convert an official checkpoint."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFormLayout, QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSizePolicy, QVBoxLayout,
    QWidget)

from plugins.cxrclip_findings.controller import FindingsController
from plugins.cxrclip_findings.ui_common import ERROR_STYLE, StatusLine, demo_banner

FIELDS = (("name", "Name"), ("backbone", "Backbone"), ("text_encoder", "Text encoder"),
          ("data", "Training data"), ("intended_use", "Intended use"), ("device", "Device"),
          ("path", "Directory"), ("model_id", "Model id"))


def _wrapped_label(text: str, parent: QWidget) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    return label


class ModelPanel(QWidget):
    """Model card summary, demo banner, load and convert buttons.

    The content sits in a scroll area: word-wrapped labels need their height,
    and a short dock would otherwise squeeze them on top of each other. A load
    error gets its own wrapped label above the fields (never over them).
    """

    def __init__(self, controller: FindingsController, on_load: Callable[[], None] | None = None,
                 on_convert: Callable[[], None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        inner = QWidget(self)
        self.banner = demo_banner(inner)
        self.status = StatusLine(inner)
        self.error = _wrapped_label("", inner)
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.hide()
        self.values: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for key, title in FIELDS:
            self.values[key] = _wrapped_label("\u2014", inner)
            form.addRow(title, self.values[key])
        self.load_button = QPushButton("Load model…", inner)
        self.convert_button = QPushButton("Convert official checkpoint…", inner)
        if on_load is not None:
            self.load_button.clicked.connect(on_load)
        if on_convert is not None:
            self.convert_button.clicked.connect(on_convert)
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.convert_button)
        layout = QVBoxLayout(inner)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.banner)
        layout.addWidget(self.status)
        layout.addWidget(self.error)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        controller.model_loading.connect(self.show_loading)
        controller.model_ready.connect(self.show_summary)
        controller.model_failed.connect(self.show_error)
        if controller.loading_dir is not None:  # the load started before this panel existed
            self.show_loading(str(controller.loading_dir))

    def show_loading(self, path: str) -> None:
        """Say which model folder is loading (busy indicator)."""
        self.status.show_message(f"Loading {path}…", busy=True)

    def show_summary(self, summary: Any) -> None:
        """Fill the fields from a `ModelSummary`; show the banner for a synthetic model."""
        self.status.show_message("")
        self.error.hide()
        for key, label in self.values.items():
            label.setText(str(getattr(summary, key, "")) or "\u2014")
        self.values["backbone"].setText(f"{summary.backbone} @ {summary.image_size} px")
        self.banner.setVisible(bool(summary.synthetic))

    def show_error(self, message: str) -> None:
        """A model that failed to load: say why; the viewer keeps working. When an earlier
        model is still loaded its details stay."""
        self.status.show_message("")
        self.error.setText(f"Model failed to load: {message}")
        self.error.show()
        if self.controller.service is not None:
            return
        self.banner.hide()
        for label in self.values.values():
            label.setText("\u2014")
