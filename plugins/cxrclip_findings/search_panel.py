"""The Search panel: choose or build an archive index, query it by text or by the open study,
and open a result in the viewer.

The panel only presents `SearchController` (index, build, queries, all off the
UI thread) and `ThumbnailCache` (result thumbnails, decoded in the pool).
Results are drawn from ``StudyHit.to_dict(hide_phi)``: while the viewer hides
PHI, patient identifiers and every path or file name are replaced by the
index's non-identifying study key. `install_search_panel` adds the dock and
the menu actions to the CXR-CLIP plugin. See docs/plugin_cxrclip.md, "Search".
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QSize, Qt, QTimer
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QFileDialog, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QProgressBar,
    QPushButton, QSpinBox, QVBoxLayout, QWidget)

from plugins.cxrclip_findings.search_build_dialog import BuildIndexDialog
from plugins.cxrclip_findings.search_controller import (
    BuildProgress, SearchController, SearchRequest, check_filters, split_filters)
from plugins.cxrclip_findings.search_thumbnails import THUMB_SIDE, ThumbnailCache
from plugins.cxrclip_findings.ui_common import ERROR_STYLE, StatusLine
from viewer.model.phi import mask_paths, path_label

SETTINGS_KEY_INDEX = "cxrclip_findings/index_dir"
SETTINGS_KEY_SOURCES = "cxrclip_findings/index_sources"
HIT_ROLE = Qt.ItemDataRole.UserRole + 10
DEFAULT_K, MAX_K = 20, 500
TOP_FINDINGS = 3
PRELOAD_AFTER_MS = 1000  # the Search panel imports cxrclip.index once shown this long
FILTER_HINT = "filters, e.g. Pleural Effusion>0.8; view=PA; date>=20200101"
RESUME_HINT = ("Build cancelled after {done} of {total} files. Build again into the same folder to "
               "resume: finished files are kept and not embedded again.")
MISMATCH_HINT = (" In the viewer: load the model this index was built with (CXR-CLIP ▸ Load Model…), "
                 "or build a new index into another folder.")


def study_folder(handle: Any) -> Path | None:
    """The folder holding every file of an open study (the example for "More like this")."""
    paths = [str(Path(v.meta.path).parent) for v in getattr(handle, "views", []) if v.meta.path]
    return Path(os.path.commonpath(paths)) if paths else None


def format_date(value: str | None) -> str:
    """DICOM ``YYYYMMDD`` as ``YYYY-MM-DD``; other values as they are, missing as a dash."""
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text or "\u2014"


def top_findings(findings: dict[str, float], n: int = TOP_FINDINGS) -> str:
    """The ``n`` most probable findings as "Name 0.93 · Name 0.81"."""
    ranked = sorted(findings.items(), key=lambda item: -item[1])[:n]
    return " \u00b7 ".join(f"{name} {value:.2f}" for name, value in ranked)


def result_text(row: dict[str, Any]) -> str:
    """Three lines for one result: rank, score, date, view; top findings; where it is."""
    view = row.get("matching_view") or {}
    head = (f"#{row['rank']}  {row['score']:.3f}  \u00b7  {format_date(row.get('study_date'))}"
            f"  \u00b7  {view.get('view_position') or '?'}")
    who = " \u00b7 ".join(str(x) for x in (row.get("patient_id"), Path(str(row["folder"])).name) if x)
    return "\n".join([head, top_findings(row.get("findings") or {}) or "\u2014", who])


def result_tooltip(row: dict[str, Any]) -> str:
    """Study UID, folder and files (those are hidden by ``to_dict(hide_phi=True)`` already)."""
    files = "\n".join(str(f) for f in row.get("files") or [])
    return f"Study {row.get('study_uid') or row['study_key']}\n{row['folder']}\n{files}".strip()


class SearchPanel(QWidget):
    """Index choice and build progress, query and filters, the ranked studies."""

    def __init__(self, controller: SearchController, host: Any = None,
                 settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller, self.host, self.settings = controller, host, settings
        self.thumbnails = ThumbnailCache(parent=self)
        self.phi_hidden = bool(getattr(host, "phi_hidden", False))
        self.hits: list[Any] = []
        self.last_progress: BuildProgress | None = None
        self.searching = False
        self._index_error_shown = False
        self._message: tuple[str, bool] = ("", False)
        self._index_text = ("No index open", "")
        self._status_shown: tuple[str, dict[str, bool]] = ("", {})
        self._build_widgets()
        self._lay_out()
        self._connect()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        """Still shown a second later (the user chose the tab; at start-up the dock shows
        briefly before it is tabbed under Findings): import the index package in the
        background (see `SearchController.preload`)."""
        QTimer.singleShot(PRELOAD_AFTER_MS, self._preload_if_shown)
        super().showEvent(event)

    def _preload_if_shown(self) -> None:
        if self.isVisible():
            self.controller.preload()

    # ----- construction ---------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.index_label = QLabel("No index open", self)
        self.index_label.setWordWrap(True)
        self.choose_button = QPushButton("Choose index…", self)
        self.build_button = QPushButton("Build index…", self)
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.rate_label = QLabel("", self)
        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        self.query = QLineEdit(self)
        self.query.setPlaceholderText("free text, e.g. large right pneumothorax")
        self.k = QSpinBox(self)
        self.k.setRange(1, MAX_K)
        self.k.setValue(DEFAULT_K)
        self.k.setPrefix("k ")
        self.search_button = QPushButton("Search", self)
        self.filters = QLineEdit(self)
        self.filters.setPlaceholderText(FILTER_HINT)
        self.filter_error = QLabel("", self)
        self.filter_error.setStyleSheet(ERROR_STYLE)
        self.filter_error.setWordWrap(True)
        self.filter_error.hide()
        self.like_button = QPushButton("More like this", self)
        self.like_button.setToolTip("Studies most similar to the open study")
        self.open_button = QPushButton("Open", self)
        self.status = StatusLine(self)
        self.results = QListWidget(self)
        self.results.setIconSize(QSize(THUMB_SIDE, THUMB_SIDE))
        self.results.setWordWrap(True)
        self.results.setSpacing(2)
        self.results.setMinimumHeight(2 * (THUMB_SIDE + 8))
        self._set_building(False)

    def _lay_out(self) -> None:
        index_row = _row(self.choose_button, self.build_button, stretch_last=True)
        build_row = _row(self.progress, self.cancel_button)
        query_row = _row(self.query, self.k, self.search_button)
        action_row = _row(self.like_button, self.open_button, stretch_last=True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.index_label)
        layout.addLayout(index_row)
        layout.addLayout(build_row)
        layout.addWidget(self.rate_label)
        layout.addWidget(self.message)
        layout.addLayout(query_row)
        layout.addWidget(self.filters)
        layout.addWidget(self.filter_error)
        layout.addLayout(action_row)
        layout.addWidget(self.status)
        layout.addWidget(self.results, 1)

    def _connect(self) -> None:
        c = self.controller
        self.choose_button.clicked.connect(self.choose_index_dialog)
        self.build_button.clicked.connect(self.build_dialog)
        self.cancel_button.clicked.connect(c.cancel_build)
        self.search_button.clicked.connect(self._search_clicked)
        self.query.returnPressed.connect(self.search)
        self.filters.returnPressed.connect(self.search)
        self.filters.textChanged.connect(self.check_filters)
        self.like_button.clicked.connect(self.more_like_this)
        self.open_button.clicked.connect(self.open_selected)
        self.results.itemDoubleClicked.connect(self.open_item)
        self.thumbnails.ready.connect(self._thumbnail_arrived)
        c.index_opened.connect(self._index_opened)
        c.index_failed.connect(self._index_failed)
        c.build_started.connect(lambda path: self._set_building(True, path))
        c.build_progress.connect(self._build_progress)
        c.build_finished.connect(self._build_finished)
        c.build_failed.connect(self._build_failed)
        c.results_ready.connect(self.show_results)
        c.search_failed.connect(lambda msg: self._status(msg, error=True))
        c.searching.connect(self._searching)

    # ----- index choice and build ---------------------------------------------------------
    def choose_index_dialog(self) -> None:
        """Ask for an index folder and open it."""
        path = QFileDialog.getExistingDirectory(self, "Open archive index folder",
                                                self._saved(SETTINGS_KEY_INDEX))
        if path:
            self.open_index(path)

    def open_index(self, path: str | Path) -> None:
        """Open an index folder (remembered once it opened)."""
        self._set_index_label("Opening index {name}…", Path(path).name)
        self.controller.open_index(path)

    def restore(self) -> None:
        """Open the index used last time, if its folder is still there."""
        saved = self._saved(SETTINGS_KEY_INDEX)
        if saved and Path(saved).is_dir():
            self.open_index(saved)

    def build_dialog(self) -> None:
        """Ask for source folders and an index folder, then build in the background."""
        dialog = BuildIndexDialog(self, self._saved_sources(), self._saved(SETTINGS_KEY_INDEX))
        if dialog.exec():
            self.start_build(*dialog.choice())

    def start_build(self, sources: list[Path], index_dir: Path) -> bool:
        """Start building ``index_dir`` from ``sources`` (remembered for the next build)."""
        if self.settings is not None:
            self.settings.setValue(SETTINGS_KEY_SOURCES, [str(s) for s in sources])
        return self.controller.start_build(sources, index_dir)

    def _set_building(self, building: bool, path: Path | None = None) -> None:
        for widget in (self.progress, self.cancel_button, self.rate_label):
            widget.setVisible(building)
        self.build_button.setEnabled(not building)
        if building:
            self.last_progress = None
            self.progress.setRange(0, 0)
            name = Path(path).name if path else ""
            shown = (path_label(name, True, "index") if self.phi_hidden else name) if name else "index"
            self.rate_label.setText(f"Building {shown}: listing files…")
            self._show_message("")

    def _build_progress(self, progress: BuildProgress) -> None:
        self.last_progress = progress
        self.progress.setRange(0, max(1, progress.total))
        self.progress.setValue(progress.done)
        self.progress.setFormat(f"{progress.done}/{progress.total} files")
        eta = progress.eta_s
        left = f" \u00b7 {eta:.0f} s left" if eta is not None else ""
        self.rate_label.setText(f"{progress.rate:.1f} files/s{left}")

    def _build_finished(self, report: Any) -> None:
        self._set_building(False)
        if report.cancelled:
            done = self.last_progress.done if self.last_progress else report.added + report.failed
            total = self.last_progress.total if self.last_progress else done
            self._show_message(RESUME_HINT.format(done=done, total=total))
            return
        removed = f", {report.removed} gone file(s) removed" if report.removed else ""
        self._show_message(f"Index built: {report.added} view(s) added, {report.skipped} already "
                           f"indexed{removed}, {report.failed} failed, in {report.seconds:.1f} s.")

    def _build_failed(self, message: str) -> None:
        self._set_building(self.controller.building is not None)
        self._show_message(_with_hint(f"Build failed: {message}"), error=True)

    def _index_opened(self, path: Path, info: Any) -> None:
        if self.settings is not None:
            self.settings.setValue(SETTINGS_KEY_INDEX, str(path))
        self._set_index_label(f"Index \u201c{{name}}\u201d: {_counts(info)}", Path(path).name)
        self.index_label.setToolTip(getattr(info, "exact_only_reason", None) or "")
        if self._index_error_shown:  # a build's message (e.g. how to resume) stays
            self._show_message("")

    def _index_failed(self, message: str) -> None:
        name = self.controller.index_dir.name if self.controller.index_dir else "?"
        self._set_index_label("Index \u201c{name}\u201d: not usable", name)
        self._show_message(_with_hint(message), error=True)
        self._index_error_shown = True

    def _show_message(self, text: str, error: bool = False) -> None:
        self._index_error_shown = False
        self._message = (text, error)
        self.message.setText(self._phi_text(text))
        self.message.setStyleSheet(ERROR_STYLE if error else "")
        self.message.setVisible(bool(text))

    def _set_index_label(self, template: str, name: str = "") -> None:
        """The index line, ``template`` with ``{name}`` the index folder's name: a file
        name, shown as a neutral label under Hide-PHI."""
        self._index_text = (template, name)
        shown = path_label(name, True, "index") if self.phi_hidden and name else name
        self.index_label.setText(template.format(name=shown))

    def _status(self, text: str, **style: bool) -> None:
        """The status line (kept as given, so that Hide-PHI can mask or unmask it later)."""
        self._status_shown = (text, style)
        self.status.show_message(self._phi_text(text), **style)

    def _phi_text(self, text: str) -> str:
        """``text`` as shown: folders and file names masked under Hide-PHI (`mask_paths`)."""
        return mask_paths(text) if self.phi_hidden else text

    # ----- queries --------------------------------------------------------------------
    def check_filters(self) -> bool:
        """Parse the filter field; show the parser's message under it. True when valid."""
        problem = check_filters(split_filters(self.filters.text()))
        self.filter_error.setText(problem)
        self.filter_error.setVisible(bool(problem))
        return not problem

    def search(self) -> bool:
        """Search the index with the query text (empty text: nothing to do)."""
        text = self.query.text().strip()
        if not text or not self.check_filters():
            return False
        return self._run(SearchRequest("text", text, self.k.value(), split_filters(self.filters.text()),
                                       f"\u201c{text}\u201d"))

    def more_like_this(self) -> bool:
        """Search for the studies most like the study open in the viewer."""
        folder = study_folder(getattr(self.host, "current_study", None))
        if folder is None:
            self._status("Open a study first: More like this searches with it.", error=True)
            return False
        if not self.check_filters():
            return False
        return self._run(SearchRequest("like", str(folder), self.k.value(),
                                       split_filters(self.filters.text()), "studies like the open study"))

    def _run(self, request: SearchRequest) -> bool:
        started = self.controller.search(request)
        if started:
            self._status(f"Searching {request.label}…", busy=True)
        return started

    def _search_clicked(self) -> None:
        """Search, or Stop while a query runs (its result is then dropped)."""
        if self.searching:
            self.controller.cancel_search()
            self._status("Search stopped.")
        else:
            self.search()

    def _searching(self, busy: bool) -> None:
        self.searching = busy
        self.search_button.setText("Stop" if busy else "Search")
        if not busy and self.status.busy:
            self._status("")

    def show_results(self, request: SearchRequest, hits: list[Any]) -> None:
        """Replace the list with ``hits`` (ranked studies)."""
        self.hits = list(hits)
        self._fill()
        found = f"{len(hits)} stud{'y' if len(hits) == 1 else 'ies'}"
        self._status(f"{found} for {request.label}" if hits
                                 else f"No study matches {request.label} with these filters.")

    def set_phi_hidden(self, hidden: bool) -> None:
        """Follow the viewer's Hide-PHI: identifiers, paths and file names are hidden, in the
        results and in the index line and messages."""
        self.phi_hidden = bool(hidden)
        self._fill()
        self._set_index_label(*self._index_text)
        text, error = self._message
        index_error_shown = self._index_error_shown
        self._show_message(text, error)
        self._index_error_shown = index_error_shown
        status, style = self._status_shown
        self.status.show_message(self._phi_text(status), **style)

    def _fill(self) -> None:
        self.results.clear()
        for hit in self.hits:
            row = hit.to_dict(self.phi_hidden)
            item = QListWidgetItem(result_text(row))
            item.setToolTip(result_tooltip(row))
            item.setData(HIT_ROLE, hit)
            path = getattr(getattr(hit, "matching_view", None), "path", None)
            item.setData(Qt.ItemDataRole.UserRole, str(path) if path else "")
            self._set_thumbnail(item)
            self.results.addItem(item)

    def _set_thumbnail(self, item: QListWidgetItem) -> None:
        path = item.data(Qt.ItemDataRole.UserRole)
        pixmap = self.thumbnails.get(path) if path else None
        item.setIcon(pixmap if pixmap is not None else _blank())

    def _thumbnail_arrived(self, path: str) -> None:
        for i in range(self.results.count()):
            item = self.results.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == path:
                self._set_thumbnail(item)

    # ----- opening a result -------------------------------------------------------------
    def open_selected(self) -> None:
        """Open the selected result (or the first) in the viewer."""
        item = self.results.currentItem() or self.results.item(0)
        if item is not None:
            self.open_item(item)

    def open_item(self, item: QListWidgetItem) -> None:
        """Open the study of ``item`` in the viewer (``PluginHost.open_study``)."""
        hit = item.data(HIT_ROLE)
        opener = getattr(self.host, "open_study", None)
        if opener is None:
            self._status("This viewer cannot open studies for plugins.", error=True)
            return
        opener(Path(hit.folder), hit.study_uid or None)

    # ----- helpers --------------------------------------------------------------------
    def _saved(self, key: str) -> str:
        value = self.settings.value(key) if self.settings is not None else None
        return str(value) if value else ""

    def _saved_sources(self) -> list[str]:
        value = self.settings.value(SETTINGS_KEY_SOURCES, []) if self.settings is not None else []
        return [value] if isinstance(value, str) else [str(v) for v in value or []]

    def shutdown(self) -> None:
        """Stop the build (it resumes next time) and the query thread."""
        self.controller.shutdown()


def _row(*widgets: QWidget, stretch_last: bool = False) -> QHBoxLayout:
    row = QHBoxLayout()
    for i, widget in enumerate(widgets):
        row.addWidget(widget, 1 if i == 0 and not stretch_last else 0)
    if stretch_last:
        row.addStretch(1)
    return row


def _counts(info: Any) -> str:
    """"4 studies · 7 views (1 file failed)" from an `IndexInfo`."""
    failed = f" ({info.failures} file{'s' if info.failures != 1 else ''} not indexed)" if info.failures else ""
    return f"{info.studies} studies \u00b7 {info.views} views{failed}"


def _with_hint(message: str) -> str:
    return message + MISMATCH_HINT if "was built with model" in message else message


_BLANK: list[QPixmap] = []


def _blank() -> QPixmap:
    """A transparent square that keeps the rows aligned while thumbnails load."""
    if not _BLANK:
        pixmap = QPixmap(THUMB_SIDE, THUMB_SIDE)
        pixmap.fill(Qt.GlobalColor.transparent)
        _BLANK.append(pixmap)
    return _BLANK[0]


def install_search_panel(host: Any, findings: Any, settings: QSettings | None,
                         docks: dict[str, Any], menu: str) -> SearchPanel:
    """Add the Search dock (tabbed with Findings) and its menu actions to the plugin.

    ``findings`` is the plugin's `FindingsController`: its loaded service is shared
    (no second model) and a newly loaded model re-checks the open index."""
    controller = SearchController(lambda: findings.service, parent=findings)
    panel = SearchPanel(controller, host, settings)
    docks["Search"] = host.add_dock_panel("Search", panel, "right")
    window = getattr(host, "main_window", None)
    if window is not None and hasattr(window, "tabifyDockWidget") and "Findings" in docks:
        window.tabifyDockWidget(docks["Findings"], docks["Search"])
        docks["Findings"].raise_()
    phi_changed = getattr(window, "phi_hidden_changed", None)
    if phi_changed is not None:
        phi_changed.connect(panel.set_phi_hidden)
    findings.model_ready.connect(lambda _summary: controller.model_changed())
    host.add_menu_action(menu, "Build Archive Index…", panel.build_dialog)
    host.add_menu_action(menu, "Open Archive Index…", panel.choose_index_dialog)
    host.add_menu_action(menu, "More Like This Study", panel.more_like_this)
    panel.restore()
    return panel
