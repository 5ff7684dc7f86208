"""Findings panel: CheXpert-14 zero-shot probabilities, per view, and the heatmap controls.

A calibrated model shows calibrated probabilities, a tick at each finding's operating point
and "▲" after findings at or above it; an uncalibrated one says so above the table. Views
outside the model's experience (`cxrclip.ood`) grey their findings, with a note.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QFont
from PySide6.QtWidgets import (
    QCheckBox, QHBoxLayout, QHeaderView, QLabel, QSlider, QTreeWidget, QTreeWidgetItem,
    QVBoxLayout, QWidget)

from plugins.cxrclip_findings.controller import FindingsController, HeatmapTarget
from plugins.cxrclip_findings.ui_common import (
    MUTED, MUTED_ROLE, POINT_ROLE, SCORE_ROLE, ScoreBarDelegate, StatusLine, demo_banner)


LONGEST_NAME = "Enlarged Cardiomediastinum ▲"
POSITIVE_MARK = " ▲"
CALIBRATED_TEXT = ("Calibrated probabilities; ▲ = at or above the finding's operating point "
                   "(tick on the bar).")
UNCALIBRATED_TEXT = "Uncalibrated: raw zero-shot scores, no operating points — read them as rankings."
OOD_NOTE = ("Outside this model's experience: {views} {verb} unlike the images it was trained on; "
            "the findings are greyed and should not be read.")
MIN_ROWS = 8


class FindingsPanel(QWidget):
    """Findings sorted by study probability with a column per view; click to see its heatmap."""

    def __init__(self, controller: FindingsController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.banner = demo_banner(self)
        self._problems = ""
        self.status = StatusLine(self)
        self.calibration_label = QLabel("", self)
        self.calibration_label.setWordWrap(True)
        self.calibration_label.hide()
        self.ood_label = QLabel("", self)
        self.ood_label.setWordWrap(True)
        self.ood_label.setStyleSheet("QLabel { background: #5a4a1a; color: #ffe9a8; padding: 4px; }")
        self.ood_label.hide()
        self.tree = QTreeWidget(self)
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        self.tree.setItemDelegate(ScoreBarDelegate(self.tree))
        self.tree.itemClicked.connect(self._clicked)
        self.tree.setMinimumHeight(MIN_ROWS * 22 + 28)
        self._set_columns([])
        self.heatmap_label = QLabel("Heatmap: click a finding", self)
        self.show_box = QCheckBox("Show (Shift+H)", self)
        self.show_box.setChecked(controller.heatmap_visible)
        self.show_box.toggled.connect(controller.set_heatmap_visible)
        self.opacity = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(round(controller.opacity * 100))
        self.opacity.setToolTip("Heatmap opacity")
        self.opacity.valueChanged.connect(lambda v: controller.set_opacity(v / 100.0))
        self._layout()
        self._connect()
        self.status.show_message("Waiting for a study.")

    def _layout(self) -> None:
        controls = QHBoxLayout()
        controls.addWidget(self.show_box)
        controls.addWidget(QLabel("Opacity", self))
        controls.addWidget(self.opacity, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.banner)
        layout.addWidget(self.status)
        layout.addWidget(self.calibration_label)
        layout.addWidget(self.ood_label)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.heatmap_label)
        layout.addLayout(controls)

    def _connect(self) -> None:
        c = self.controller
        c.study_changed.connect(self._study_changed)
        c.model_loading.connect(lambda _d: self._busy_if_study("Loading the model…"))
        c.model_ready.connect(self._model_ready)
        c.model_failed.connect(self._model_failed)
        c.findings_ready.connect(self.show_findings)
        c.findings_failed.connect(lambda msg: self.status.show_message(
            f"Could not compute findings: {msg}", error=True))
        c.view_problems.connect(self._view_problems)
        c.heatmap_ready.connect(self._heatmap_ready)
        c.heatmap_failed.connect(lambda msg: self.heatmap_label.setText(f"Heatmap failed: {msg}"))
        c.heatmap_style.connect(self._style_changed)

    def _model_failed(self, message: str) -> None:
        if self.controller.service is not None:  # the earlier model is still in use
            return
        self.banner.hide()
        self.status.show_message(f"Model not available: {message}", error=True)

    def _set_columns(self, view_labels: list[str]) -> None:
        self.tree.setColumnCount(2 + len(view_labels))
        self.tree.setHeaderLabels(["Finding", "Study"] + view_labels)
        header = self.tree.header()
        header.setMinimumSectionSize(40)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(0, self.fontMetrics().horizontalAdvance(LONGEST_NAME) + 16)
        for col in range(1, 2 + len(view_labels)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Stretch)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def _model_ready(self, summary: Any) -> None:
        self.banner.setVisible(bool(summary.synthetic))
        calibrated = bool(getattr(summary, "calibrated", False) or getattr(summary, "operating_points", None))
        self.calibration_label.setText(CALIBRATED_TEXT if calibrated else UNCALIBRATED_TEXT)
        self.calibration_label.show()
        self._busy_if_study("Computing findings…")

    def _busy_if_study(self, text: str) -> None:
        if self.controller.study is not None:
            self.status.show_message(text, busy=True)

    def _study_changed(self, handle: Any, reason: str) -> None:
        self.tree.clear()
        self._problems = ""
        self.ood_label.hide()
        self.heatmap_label.setText("Heatmap: click a finding")
        if handle is None or reason:
            self.status.show_message(f"Idle: {reason}." if reason else "Waiting for a study.")
            return
        labels = [v.meta.display_label for v in self.controller.study.views]
        self._set_columns(labels)
        if self.controller.service is None:
            text = (f"Model not available: {self.controller.model_error}"
                    if self.controller.model_error else "Loading the model…")
            self.status.show_message(text, busy=not self.controller.model_error,
                                     error=bool(self.controller.model_error))
        else:
            self.status.show_message("Computing findings…", busy=True)

    def show_findings(self, findings: list[Any]) -> None:
        """Fill the table (findings arrive sorted by probability)."""
        self.tree.clear()
        state = self.controller.study
        view_ids = [v.view_id for v in state.views] if state else []
        for f in findings:
            self.tree.addTopLevelItem(self._finding_item(f, view_ids))
        self._show_ood(findings)
        if self._problems:
            self.status.show_message(self._problems, error=True)
        else:
            self.status.show_message("" if findings else "No readable views in this study.")

    def _finding_item(self, f: Any, view_ids: list[str]) -> QTreeWidgetItem:
        positive = getattr(f, "positive", None)
        item = QTreeWidgetItem([f.finding + (POSITIVE_MARK if positive else ""), ""] + [""] * len(view_ids))
        item.setData(0, Qt.ItemDataRole.UserRole, f.finding)
        item.setData(1, SCORE_ROLE, float(f.probability))
        point = getattr(f, "operating_point", None)
        item.setData(1, POINT_ROLE, point)
        item.setToolTip(1, _tooltip(f))
        flagged = {v.view_id for v in getattr(f, "ood", ()) if v.flag}
        muted = bool(flagged)
        item.setData(1, MUTED_ROLE, muted)
        if positive and not muted:
            font = QFont(item.font(0))
            font.setBold(True)
            item.setFont(0, font)
        if muted:
            item.setForeground(0, QBrush(MUTED))
        per_view = {v.view_id: v for v in f.views}
        for col, view_id in enumerate(view_ids, start=2):
            if view_id in per_view:
                item.setData(col, SCORE_ROLE, float(per_view[view_id].probability))
                item.setData(col, POINT_ROLE, point)
                item.setData(col, MUTED_ROLE, view_id in flagged or muted)
        return item

    def _show_ood(self, findings: list[Any]) -> None:
        verdicts = [v for v in (getattr(findings[0], "ood", ()) if findings else ()) if v.flag]
        if not verdicts:
            self.ood_label.hide()
            return
        labels = {v.view_id: v.meta.display_label for v in self.controller.study.views} \
            if self.controller.study else {}
        names = ", ".join(labels.get(v.view_id, v.view_id) for v in verdicts)
        self.ood_label.setText(OOD_NOTE.format(views=names, verb="is" if len(verdicts) == 1 else "are"))
        self.ood_label.setToolTip("\n".join(f"{labels.get(v.view_id, v.view_id)}: distance {v.score:.2f} "
                                             f"> threshold {v.threshold:.2f}" for v in verdicts))
        self.ood_label.show()

    def _view_problems(self, problems: list[Any]) -> None:
        text = "; ".join(f"{p.label}: {p.reason}" for p in problems)
        self._problems = f"Some views could not be read by the model: {text}" if text else ""

    def _clicked(self, item: QTreeWidgetItem, _column: int) -> None:
        finding = item.data(0, Qt.ItemDataRole.UserRole)
        if finding:
            self.heatmap_label.setText(f"Heatmap: computing {finding}…")
            self.controller.select_finding(finding)

    def _heatmap_ready(self, target: HeatmapTarget) -> None:
        if target.kind == "finding":
            self.heatmap_label.setText(f"Heatmap: {target.label} (its class prompts against their negatives)")
        else:
            self.heatmap_label.setText(f"Heatmap: {target.label} (\u201c{target.prompt}\u201d)")

    def _style_changed(self, visible: bool, opacity: float) -> None:
        if self.show_box.isChecked() != visible:
            self.show_box.blockSignals(True)
            self.show_box.setChecked(visible)
            self.show_box.blockSignals(False)
        if self.opacity.value() != round(opacity * 100):
            self.opacity.blockSignals(True)
            self.opacity.setValue(round(opacity * 100))
            self.opacity.blockSignals(False)

    def row_findings(self) -> list[str]:
        """Finding names in display order (for tests)."""
        return [self.tree.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole)
                for i in range(self.tree.topLevelItemCount())]


def _tooltip(f: Any) -> str:
    """Study probability, raw score, operating point and cosine of a finding."""
    parts = [f"study probability {f.probability:.3f}"]
    raw = getattr(f, "raw_probability", None)
    if getattr(f, "calibrated", False) and raw is not None:
        parts[0] = f"calibrated probability {f.probability:.3f} (raw {raw:.3f})"
    point = getattr(f, "operating_point", None)
    if point is not None:
        parts.append(f"operating point {point:.3f}: {'positive' if f.positive else 'negative'}")
    parts.append(f"cosine {f.similarity:.3f}")
    return ", ".join(parts)
