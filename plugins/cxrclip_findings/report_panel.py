"""Report panel: nearest bank sentences, a draft built from them with contradictions flagged,
and the export buttons (JSON, DICOM SR).

The draft belongs to the open study: the panel shows the draft the controller
keeps for that study (`FindingsController.draft_loaded`) and hands every edit
back (`FindingsController.set_draft`); it holds no draft of its own.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPlainTextEdit,
    QPushButton, QSpinBox, QTextEdit, QVBoxLayout, QWidget)

from plugins.cxrclip_findings.contradictions import find_contradictions
from plugins.cxrclip_findings.controller import SELECTED_VIEW, FindingsController
from plugins.cxrclip_findings.study_state import study_key
from plugins.cxrclip_findings.ui_common import ERROR_STYLE, StatusLine

FLAG_COLOR = QColor(120, 40, 40)
MIN_LIST_HEIGHT, MIN_DRAFT_HEIGHT = 60, 56


class ReportPanel(QWidget):
    """Nearest sentences (study or one view); click adds to the draft; export the result."""

    def __init__(self, controller: FindingsController,
                 export_json: Callable[[bool], None] | None = None,
                 export_sr: Callable[[], None] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self._phi_hidden = False
        self.scope = QComboBox(self)
        self.scope.addItem("Study", None)
        self.scope.addItem("Selected view", SELECTED_VIEW)
        self.k = QSpinBox(self)
        self.k.setRange(1, 30)
        self.k.setValue(controller.sentence_k)
        self.k.setPrefix("k = ")
        self.status = StatusLine(self)
        self.sentences = QListWidget(self)
        self.sentences.setWordWrap(True)
        self.sentences.setToolTip("Click a sentence to add it to the draft")
        self.sentences.setMinimumHeight(MIN_LIST_HEIGHT)  # the dock may be short: draft stays
        self.draft_title = QLabel("Draft", self)
        self.draft = QPlainTextEdit(self)
        self.draft.setMinimumHeight(MIN_DRAFT_HEIGHT)
        self._loading_draft = False
        self.flags = QLabel("", self)
        self.flags.setWordWrap(True)
        self.flags.setStyleSheet(ERROR_STYLE)
        self.copy_button = QPushButton("Copy draft", self)
        self.clear_button = QPushButton("Clear", self)
        self.include_ids = QCheckBox("Include patient identifiers", self)
        self.json_button = QPushButton("Export JSON…", self)
        self.sr_button = QPushButton("Export DICOM SR…", self)
        self._layout()
        self._connect(export_json, export_sr)
        self.status.show_message("Waiting for a study.")
        self._draft_enabled(False)

    def _layout(self) -> None:
        top = QHBoxLayout()
        top.addWidget(QLabel("Nearest to", self))
        top.addWidget(self.scope, 1)
        top.addWidget(self.k)
        draft_buttons = QHBoxLayout()
        draft_buttons.addWidget(self.copy_button)
        draft_buttons.addWidget(self.clear_button)
        draft_buttons.addStretch(1)
        export = QHBoxLayout()
        export.addWidget(self.json_button)
        export.addWidget(self.sr_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.sentences, 3)
        layout.addWidget(self.draft_title)
        layout.addWidget(self.draft, 2)
        layout.addWidget(self.flags)
        layout.addLayout(draft_buttons)
        layout.addWidget(self.include_ids)
        layout.addLayout(export)

    def _connect(self, export_json: Callable[[bool], None] | None,
                 export_sr: Callable[[], None] | None) -> None:
        self.scope.currentIndexChanged.connect(lambda _i: self._request())
        self.k.valueChanged.connect(lambda _v: self._request())
        self.sentences.itemClicked.connect(lambda item: self.add_sentence(
            item.data(Qt.ItemDataRole.UserRole)))
        self.draft.textChanged.connect(self.check_draft)
        self.draft.textChanged.connect(self._draft_edited)
        self.copy_button.clicked.connect(
            lambda: QGuiApplication.clipboard().setText(self.draft.toPlainText()))
        self.clear_button.clicked.connect(self.draft.clear)
        if export_json is not None:
            self.json_button.clicked.connect(lambda: export_json(self.include_ids.isChecked()))
        if export_sr is not None:
            self.sr_button.clicked.connect(export_sr)
        c = self.controller
        c.study_changed.connect(self._study_changed)
        c.draft_loaded.connect(self.show_draft)
        c.sentences_ready.connect(self.show_sentences)
        c.sentences_failed.connect(lambda msg: self.status.show_message(
            f"Sentences unavailable: {msg}", error=True))
        c.model_failed.connect(lambda msg: c.service is None and self.status.show_message(
            f"Model not available: {msg}", error=True))

    def _request(self) -> None:
        if self.controller.study is not None and self.controller.service is not None:
            self.status.show_message("Searching the sentence bank…", busy=True)
        self.controller.request_sentences(self.scope.currentData(), self.k.value())

    def _study_changed(self, handle: Any, reason: str) -> None:
        self.sentences.clear()
        state = self.controller.study
        self._draft_enabled(state is not None)
        self._show_draft_title()
        self.scope.blockSignals(True)
        self.scope.clear()
        self.scope.addItem("Study", None)
        self.scope.addItem("Selected view", SELECTED_VIEW)
        if handle is not None and not reason and self.controller.study is not None:
            for view in self.controller.study.views:
                self.scope.addItem(view.meta.display_label, view.view_id)
        if self.controller.sentence_scope_view == SELECTED_VIEW:
            self.scope.setCurrentIndex(1)
        self.scope.blockSignals(False)
        if handle is None or reason:
            self.status.show_message(f"Idle: {reason}." if reason else "Waiting for a study.")
        else:
            busy = self.controller.service is not None or not self.controller.model_error
            self.status.show_message("Searching the sentence bank…", busy=busy)

    def show_sentences(self, neighbours: list[Any]) -> None:
        """List (similarity, sentence) best first."""
        self.sentences.clear()
        self.status.show_message("" if neighbours else "No sentences.")
        for n in neighbours:
            item = QListWidgetItem(f"{n.similarity:+.3f}   {n.sentence}")
            item.setData(Qt.ItemDataRole.UserRole, n.sentence)
            self.sentences.addItem(item)

    def _draft_enabled(self, enabled: bool) -> None:
        self.draft.setReadOnly(not enabled)
        self.draft.setPlaceholderText("Draft: click sentences above, then edit" if enabled
                                      else "Open a study to write its draft")
        if not enabled:
            self.draft_title.setText("Draft")
        for button in (self.json_button, self.sr_button, self.clear_button):
            button.setEnabled(enabled)

    def show_draft(self, text: str) -> None:
        """Show the open study's draft (from the controller; not echoed back as an edit)."""
        self._loading_draft = True
        try:
            self.draft.setPlainText(text)
            self.draft.moveCursor(QTextCursor.MoveOperation.End)
        finally:
            self._loading_draft = False

    def _draft_edited(self) -> None:
        if not self._loading_draft:
            self.controller.set_draft(self.draft.toPlainText())

    def _show_draft_title(self) -> None:
        """'Draft for study <date> · <key>'; the study date is an identifier, left out under Hide-PHI."""
        state = self.controller.study
        if state is None:
            return
        key = study_key(state.uid, 8)
        if self._phi_hidden:
            self.draft_title.setText(f"Draft for study {key}")
        else:
            date = getattr(state.handle.study, "date", "") or "no date"
            self.draft_title.setText(f"Draft for study {date} · {key}")

    def set_phi_hidden(self, hidden: bool) -> None:
        """With Hide-PHI on, exports leave identifiers out unless the user ticks the box,
        and the draft title shows no study date."""
        self._phi_hidden = hidden
        if hidden:
            self.include_ids.setChecked(False)
        self._show_draft_title()

    def add_sentence(self, sentence: str) -> None:
        """Append a sentence to the open study's draft on its own line."""
        if self.controller.study is None:
            return
        text = self.draft.toPlainText().rstrip()
        self.draft.setPlainText(f"{text}\n{sentence}" if text else sentence)
        self.draft.moveCursor(QTextCursor.MoveOperation.End)

    def draft_lines(self) -> list[str]:
        """The draft's non-empty lines (one sentence per line as added)."""
        return [line.strip() for line in self.draft.toPlainText().splitlines() if line.strip()]

    def check_draft(self) -> list[int]:
        """Flag contradicting lines (red background + a message); returns their line numbers."""
        lines = self.draft.toPlainText().splitlines()
        indexed = [(i, line.strip()) for i, line in enumerate(lines) if line.strip()]
        found = find_contradictions([text for _, text in indexed])
        flagged = sorted({indexed[c.first][0] for c in found} | {indexed[c.second][0] for c in found})
        selections = []
        for line_no in flagged:
            sel = QTextEdit.ExtraSelection()
            sel.format.setBackground(FLAG_COLOR)
            sel.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            sel.cursor = QTextCursor(self.draft.document().findBlockByNumber(line_no))
            selections.append(sel)
        self.draft.setExtraSelections(selections)
        self.flags.setText("\n".join(f"\u26a0 {c.reason}" for c in found))
        return flagged
