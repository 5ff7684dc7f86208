"""Prompt panel: free-text prompt scored while typing, history, named prompt sets."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QStringListModel, Qt, QTimer
from PySide6.QtWidgets import (
    QComboBox, QCompleter, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
    QListWidget, QListWidgetItem, QMessageBox, QPushButton, QTabWidget, QTreeWidget,
    QTreeWidgetItem, QVBoxLayout, QWidget)

from plugins.cxrclip_findings.controller import FindingsController, HeatmapTarget
from plugins.cxrclip_findings.prior_change import match_views
from plugins.cxrclip_findings.prompt_sets import (
    Prompt, PromptHistory, PromptSet, PromptSetError, bundled_prompt_sets, load_prompt_set,
    save_prompt_set)
from plugins.cxrclip_findings.ui_common import SCORE_ROLE, ScoreBarDelegate, StatusLine

DEBOUNCE_MS = 150
PRIOR_COLUMN = 3


class PromptPanel(QWidget):
    """Type a prompt; its study and per-view probability update ~150 ms after the last key."""

    def __init__(self, controller: FindingsController, parent: QWidget | None = None,
                 debounce_ms: int = DEBOUNCE_MS) -> None:
        super().__init__(parent)
        self.controller = controller
        self._score: Any = None  # the open study's latest PromptScore
        self.history = PromptHistory()
        self.sets: list[PromptSet] = bundled_prompt_sets()
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(debounce_ms)
        self.timer.timeout.connect(self.submit)
        self._build()
        self._connect()

    def _build(self) -> None:
        self.prompt = QLineEdit(self)
        self.prompt.setPlaceholderText("Type a finding, e.g. small left pleural effusion")
        self.prompt.setClearButtonEnabled(True)
        self._completions = QStringListModel(self)
        self.completer = QCompleter(self._completions, self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.prompt.setCompleter(self.completer)
        self.negative = QLineEdit(self)
        self.negative.setPlaceholderText("Negative prompt (default: \u201cno \u2026\u201d)")
        self.status = StatusLine(self)
        self.study_label = QLabel("", self)
        self.study_label.setTextFormat(Qt.TextFormat.RichText)
        self.prior_label = QLabel("", self)
        self.prior_label.setTextFormat(Qt.TextFormat.RichText)
        self.prior_label.hide()
        self.views = QTreeWidget(self)
        self.views.setHeaderLabels(["View", "Probability", "Cosine", "Prior"])
        self.views.setColumnHidden(PRIOR_COLUMN, True)  # shown while a prior is compared
        self.views.setRootIsDecorated(False)
        self.views.setItemDelegate(ScoreBarDelegate(self.views))
        self.views.header().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.views.setMaximumHeight(76)
        self.heatmap_button = QPushButton("Heatmap", self)
        self.heatmap_button.setToolTip("Show this prompt's heatmap on each view")
        self.history_list = QListWidget(self)
        self.set_combo = QComboBox(self)
        self.open_button = QPushButton("Open…", self)
        self.save_button = QPushButton("Save…", self)
        self.set_list = QListWidget(self)
        self._layout()
        self._refresh_sets()
        self.status.show_message("Waiting for a study.")

    def _layout(self) -> None:
        top = QHBoxLayout()
        top.addWidget(self.study_label, 1)
        top.addWidget(self.heatmap_button)
        sets_page = QWidget(self)
        sets_layout = QVBoxLayout(sets_page)
        sets_layout.setContentsMargins(0, 4, 0, 0)
        sets_row = QHBoxLayout()
        sets_row.addWidget(self.set_combo, 1)
        sets_row.addWidget(self.open_button)
        sets_row.addWidget(self.save_button)
        sets_layout.addLayout(sets_row)
        sets_layout.addWidget(self.set_list, 1)
        self.tabs = QTabWidget(self)
        self.tabs.addTab(self.history_list, "History (Enter adds)")
        self.tabs.addTab(sets_page, "Prompt sets")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        for widget in (self.prompt, self.negative, self.status):
            layout.addWidget(widget)
        layout.addLayout(top)
        layout.addWidget(self.prior_label)
        layout.addWidget(self.views)
        layout.addWidget(self.tabs, 1)

    def _connect(self) -> None:
        self.prompt.textEdited.connect(lambda _t: self.timer.start())
        # QLineEdit opens the popup after textEdited is emitted: check once it is up
        self.prompt.textEdited.connect(lambda _t: QTimer.singleShot(0, self._drop_exact_popup))
        self.negative.textEdited.connect(lambda _t: self.timer.start())
        self.prompt.returnPressed.connect(self._commit)
        self.heatmap_button.clicked.connect(self._heatmap)
        self.history_list.itemClicked.connect(lambda it: self.set_prompt(it.text()))
        self.set_list.itemClicked.connect(self._set_item_clicked)
        self.set_combo.currentIndexChanged.connect(self._show_set)
        self.open_button.clicked.connect(self._open_set)
        self.save_button.clicked.connect(self._save_set)
        c = self.controller
        c.prompt_ready.connect(self.show_score)
        c.prompt_failed.connect(lambda msg: self.status.show_message(f"Scoring failed: {msg}",
                                                                     error=True))
        c.study_changed.connect(self._study_changed)
        c.prior.prompt_ready.connect(lambda _s: self._show_prior())
        c.prior.changed.connect(lambda _h: self._show_prior())
        c.model_failed.connect(lambda msg: c.service is None and self.status.show_message(
            f"Model not available: {msg}", error=True))

    # ----- prompt ---------------------------------------------------------------
    def set_prompt(self, text: str, negative: str | None = None) -> None:
        """Put a prompt in the fields and score it now."""
        self.prompt.setText(text)
        self.negative.setText(negative or "")
        self.submit()

    def submit(self) -> None:
        """Send the current prompt to the controller (the debounce timer calls this)."""
        self.timer.stop()
        text = self.prompt.text().strip()
        if text and self.controller.study is not None and self.controller.service is not None:
            self.status.show_message("Scoring…", busy=True)
        self.controller.request_prompt(text, self.negative.text())
        if not text:
            self.study_label.clear()
            self.views.clear()
            self._score = None
            self._show_prior()

    def _drop_exact_popup(self) -> None:
        """Close the completion popup when the text already equals a history entry: it has
        nothing left to offer, and an open popup would swallow the next click (the
        Heatmap button, a tab)."""
        popup = self.completer.popup()
        text = self.prompt.text().strip().lower()
        if popup.isVisible() and text in {t.lower() for t in self.history.items()}:
            popup.hide()

    def _commit(self) -> None:
        self.submit()
        self.history.add(self.prompt.text())
        self._refresh_history()

    def show_score(self, score: Any) -> None:
        """Show the study probability and the per-view breakdown of the latest prompt."""
        self.views.clear()
        self._score = score
        if score is None:
            self.status.show_message("No readable views to score.", error=True)
            return
        self.status.show_message(unfamiliar_hint(score))
        self.study_label.setText(f"Study: <b>{score.probability:.2f}</b> "
                                 f"<span style='color:#9aa0a6'>vs \u201c{score.negative}\u201d, "
                                 f"cos {score.similarity:.3f}</span>")
        for v in score.views:
            item = QTreeWidgetItem([v.label or v.view_id, "", f"{v.similarity:.3f}", ""])
            item.setData(1, SCORE_ROLE, float(v.probability))
            item.setData(0, Qt.ItemDataRole.UserRole, v.view_id)
            self.views.addTopLevelItem(item)
        self._show_prior()

    def _show_prior(self) -> None:
        """The Prior column (the prior's score of the same prompt on the view with the same
        label) and the prior's study score, while a prior is compared."""
        prior = self.controller.prior
        self.views.setColumnHidden(PRIOR_COLUMN, prior.handle is None)
        self.prior_label.setVisible(prior.handle is not None)
        score = self._score
        then = prior.prompt_score(score.prompt) if score is not None and prior.handle else None
        self.prior_label.setText(prior_summary(score, then) if prior.handle is not None else "")
        matched = match_views(score.views, then.views) if then is not None else {}
        for i in range(self.views.topLevelItemCount()):
            item = self.views.topLevelItem(i)
            view = matched.get(item.data(0, Qt.ItemDataRole.UserRole))
            item.setText(PRIOR_COLUMN, f"{view.probability:.2f}" if view is not None else "")

    def _heatmap(self) -> None:
        text = self.prompt.text().strip()
        if text:
            self.history.add(text)
            self._refresh_history()
            negative = self.negative.text().strip() or None
            self.controller.show_heatmap(HeatmapTarget("prompt", text, text, negative))

    def _study_changed(self, handle: Any, reason: str) -> None:
        self.study_label.clear()
        self.views.clear()
        self._score = None
        self._show_prior()
        if handle is None or reason:
            self.status.show_message(f"Idle: {reason}." if reason else "Waiting for a study.")
        elif self.prompt.text().strip():
            self.status.show_message("Scoring…", busy=True)
        else:
            self.status.show_message("")

    def _refresh_history(self) -> None:
        items = list(self.history.items())
        self.history_list.clear()
        self.history_list.addItems(items)
        self._completions.setStringList(items)

    # ----- prompt sets -----------------------------------------------------------
    def _refresh_sets(self, select: int | None = None) -> None:
        self.set_combo.blockSignals(True)
        self.set_combo.clear()
        self.set_combo.addItems([s.name for s in self.sets])
        self.set_combo.blockSignals(False)
        if self.sets:
            self.set_combo.setCurrentIndex(select if select is not None else 0)
            self._show_set(self.set_combo.currentIndex())

    def _show_set(self, index: int) -> None:
        self.set_list.clear()
        if 0 <= index < len(self.sets):
            for p in self.sets[index].prompts:
                item = QListWidgetItem(p.text + (f"   [vs {p.negative}]" if p.negative else ""))
                item.setData(Qt.ItemDataRole.UserRole, (p.text, p.negative))
                self.set_list.addItem(item)

    def _set_item_clicked(self, item: QListWidgetItem) -> None:
        text, negative = item.data(Qt.ItemDataRole.UserRole)
        self.set_prompt(text, negative)

    def add_set(self, prompt_set: PromptSet) -> None:
        """Add (or replace by name) a prompt set and select it."""
        self.sets = [s for s in self.sets if s.name != prompt_set.name] + [prompt_set]
        self._refresh_sets(len(self.sets) - 1)

    def load_set_file(self, path: str | Path) -> PromptSet:
        """Load a prompt set file into the list (raises `PromptSetError`)."""
        prompt_set = load_prompt_set(path)
        self.add_set(prompt_set)
        return prompt_set

    def history_as_set(self, name: str) -> PromptSet:
        """The prompt history as a named set (what Save… writes)."""
        current = self.prompt.text().strip()
        texts = list(self.history.items()) or ([current] if current else [])
        return PromptSet(name, tuple(Prompt(t) for t in texts))

    def _open_set(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open prompt set", "", "Prompt sets (*.json)")
        if path:
            try:
                self.load_set_file(path)
            except PromptSetError as exc:
                QMessageBox.warning(self, "Prompt set", str(exc))

    def _save_set(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save history as prompt set", "prompts.json",
                                              "Prompt sets (*.json)")
        if path:
            prompt_set = self.history_as_set(Path(path).stem)
            if not prompt_set.prompts:
                QMessageBox.information(self, "Prompt set", "Type a prompt first.")
                return
            save_prompt_set(prompt_set, path)
            self.add_set(prompt_set)


def prior_summary(score: Any, prior: Any) -> str:
    """The prior's study score of the prompt and the change, e.g. ``Prior: 0.31 (+0.40)``."""
    if score is None:
        return ""
    if prior is None:
        return "Prior: <span style='color:#9aa0a6'>scoring\u2026</span>"
    return (f"Prior: <b>{prior.probability:.2f}</b> <span style='color:#9aa0a6'>"
            f"(change {score.probability - prior.probability:+.2f})</span>")


UNFAMILIAR_HINT = "Hint: this wording is far from anything the model was trained on ({why}); its score may mean little."


def unfamiliar_hint(score: Any) -> str:
    """The hint for a prompt unlike the model's training text ("" otherwise)."""
    if not getattr(score, "unfamiliar", False):
        return ""
    unknown = tuple(getattr(score, "unknown_words", ()) or ())
    if unknown:
        why = "words it never saw: " + ", ".join(f"\u201c{w}\u201d" for w in unknown)
    else:
        why = f"closest training sentence: cosine {float(getattr(score, 'familiarity', 0.0) or 0.0):.2f}"
    hint = UNFAMILIAR_HINT.format(why=why)
    suggestion = getattr(score, "suggestion", None)
    return f"{hint} Try \u201c{suggestion}\u201d." if suggestion else hint
