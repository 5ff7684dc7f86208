"""The main window: menus, toolbar, docks, and the open-folder → study → views flow.

Disk, decoding and rendering of new images happen in workers
(`viewer.qt.workers.run_in_pool`); results come back through signals and are
dropped when a newer request (another folder or study) superseded them.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QLabel, QMainWindow, QMenu,
                               QProgressBar, QPushButton, QWidget)

from viewer.io.scan import ScanResult, scan_folder
from viewer.model.display import WindowSync
from viewer.model.phi import Redactor, path_label, patient_label, study_label, view_label
from viewer.model.study import Study, View
from viewer.plugin_api import ExportFormat, StudyHandle, ViewHandle
from viewer.plugin_host import DiscoveredPlugin, discover_plugins
from viewer.qt.export import write_png
from viewer.qt.image_source import ViewPixels, prepare_view
from viewer.qt.image_view import ImageView
from viewer.qt.plugin_host_qt import QtPluginHost
from viewer.qt.problems_panel import ProblemsPanel
from viewer.qt.shortcuts import ACTIONS, ActionSpec
from viewer.qt.study_browser import THUMB_SIZE, StudyBrowser
from viewer.qt.tag_browser import TagBrowserDialog
from viewer.qt.theme import icon
from viewer.qt.views_panel import ViewsPanel
from viewer.qt.window_actions import APP_TITLE, WindowActionsMixin
from viewer.qt.workers import CancelToken, run_in_pool, shutdown_pool
from viewer.render import downsample_for_display, render_display

log = logging.getLogger(__name__)

MAX_RECENT = 10
HIDE_PHI_KEY = "privacy/hide_phi"
MAX_BACKGROUND_THUMBS = 300
PRIORITY_VIEW, PRIORITY_THUMB = 10, -10  # shown views decode before other studies' thumbnails


def _thumbnail(uint8: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(downsample_for_display(uint8, THUMB_SIZE).astype(np.uint8))


def _thumbnail_job(view: View) -> np.ndarray:
    """Decode (isolated for compressed DICOM, see viewer.io.decode) and shrink; colour stays colour."""
    from viewer.io.decode import load_image

    return _thumbnail(render_display(load_image(view), max_side=THUMB_SIZE))


class MainWindow(WindowActionsMixin, QMainWindow):
    """The viewer window. ``study_ready(study_uid)`` fires once every view of the
    shown study has pixels (or failed); ``scan_finished(n_studies)`` after a scan;
    ``phi_hidden_changed(hidden)`` after Hide-PHI was switched."""

    study_ready = Signal(str)
    scan_finished = Signal(int)
    phi_hidden_changed = Signal(bool)  # plugins may connect through host.main_window

    def __init__(self, settings: QSettings | None = None, load_plugins: bool = True,
                 plugin_entry_points: list | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("cxrclip", "viewer")
        self.hide_phi = False
        self.redactor = Redactor()  # identifiers of what was opened, masked in messages
        self.scan: ScanResult | None = None
        self.current_study: StudyHandle | None = None
        self.selected_view_id: str | None = None
        self.sync = WindowSync(enabled=False)
        self.actions_by_key: dict[str, QAction] = {}
        self._menus: dict[str, QMenu] = {}
        self._scan_token: CancelToken | None = None
        self._scan_gen = 0
        self._study_gen = 0
        self._pending_views: set[str] = set()
        self._tag_dialog: TagBrowserDialog | None = None
        self._view_errors: dict[str, str] = {}
        self.setWindowTitle(APP_TITLE)
        self.resize(1500, 950)
        self.setAcceptDrops(True)
        self.views_panel = ViewsPanel(self)
        self.setCentralWidget(self.views_panel)
        self._build_docks()
        self._build_status_bar()
        self._build_actions()
        self.plugin_host = QtPluginHost(self)
        self.set_hide_phi(self._saved_hide_phi())
        self._build_recent_menu()
        if load_plugins:
            self.plugin_host.load(self._discover(plugin_entry_points))
        else:
            self.plugin_host.plugins_settled.emit()

    @staticmethod
    def _discover(entry_points: list | None) -> list[DiscoveredPlugin]:
        return discover_plugins(entry_points=entry_points)

    # --- construction ---------------------------------------------------
    def _build_docks(self) -> None:
        self.study_browser = StudyBrowser(self, self.redactor)
        self.study_browser.study_activated.connect(self._on_study_activated)
        self.study_browser.view_activated.connect(self._on_view_activated)
        self.browser_dock = self._dock("Studies", self.study_browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.problems = ProblemsPanel(self, self.redactor)
        self.problems_dock = self._dock("Problems", self.problems, Qt.DockWidgetArea.BottomDockWidgetArea)
        # Plugin panels on the right get the full height; Problems sits under the images.
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.browser_dock], [260], Qt.Orientation.Horizontal)
        self.resizeDocks([self.problems_dock], [130], Qt.Orientation.Vertical)

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.cursor_label = QLabel("", self)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton(icon("mdi6.cancel"), "Cancel", self)
        self.cancel_button.clicked.connect(self.cancel_scan)
        bar.addPermanentWidget(self.cursor_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        self._set_busy(False)

    def menu_named(self, name: str) -> QMenu:
        """The top-level menu called ``name`` (created before Help if new)."""
        menu = self._menus.get(name)
        if menu is None:
            menu = QMenu(name.replace("&", ""), self)
            help_menu = self._menus.get("Help")
            if help_menu is not None:
                self.menuBar().insertMenu(help_menu.menuAction(), menu)
            else:
                self.menuBar().addMenu(menu)
            self._menus[name] = menu
        return menu

    def _build_actions(self) -> None:
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("toolbar-main")
        toolbar.setMovable(False)
        for name in ("File", "View", "Window", "Tools", "Plugins", "Help"):
            self.menu_named(name)
        self.recent_menu = QMenu("Open Recent", self)
        self.export_menu = QMenu("Export", self)
        self.panels_menu = QMenu("Panels", self)
        for spec in ACTIONS:
            action = self._make_action(spec)
            self.menu_named(spec.menu).addAction(action)
            if spec.key == "open_file":
                self.menu_named("File").addMenu(self.recent_menu)
            if spec.key == "export_png":
                self.menu_named("File").addMenu(self.export_menu)
            if spec.toolbar:
                toolbar.addAction(action)
        view_menu = self.menu_named("View")
        view_menu.addSeparator()
        view_menu.addMenu(self.panels_menu)
        self.panels_menu.addAction(self.browser_dock.toggleViewAction())
        self.panels_menu.addAction(self.problems_dock.toggleViewAction())
        self.actions_by_key["overlays"].setChecked(True)

    def _make_action(self, spec: ActionSpec) -> QAction:
        action = QAction(spec.text, self)
        if spec.icon:
            action.setIcon(icon(spec.icon))
        if spec.shortcut:
            action.setShortcut(QKeySequence(spec.shortcut))
            action.setToolTip(f"{spec.text.rstrip('…')} ({spec.shortcut})")
        action.setCheckable(spec.checkable)
        handler = getattr(self, f"_on_{spec.key}")
        if spec.checkable:
            action.toggled.connect(handler)
        else:
            action.triggered.connect(lambda _checked=False, h=handler: h())
        self.actions_by_key[spec.key] = action
        return action

    def _build_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_folders():
            action = self.recent_menu.addAction(path_label(path, self.hide_phi, "folder"))
            action.triggered.connect(lambda _checked=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(self.recent_folders()))

    # --- public API -----------------------------------------------------
    def recent_folders(self) -> list[str]:
        """Most recent first."""
        value = self.settings.value("recent_folders", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def open_path(self, path: str | Path) -> None:
        """Scan a folder (recursive) or one file in a worker, then show its first study."""
        path = Path(path).expanduser()
        self.cancel_scan()
        self._scan_gen += 1
        gen, token = self._scan_gen, CancelToken()
        self._scan_token = token
        self._set_busy(True, "Scanning…" if self.hide_phi else f"Scanning {path.name}…")
        run_in_pool(lambda progress: scan_folder(path, progress=progress, cancel=token),
                    lambda result: self._scan_done(gen, path, result),
                    lambda exc: self._scan_failed(gen, path, exc),
                    lambda done, total: self._scan_progress(gen, done, total))

    def cancel_scan(self) -> None:
        """Stop a running scan (its partial result is dropped)."""
        if self._scan_token is not None:
            self._scan_token.cancel()
            self._scan_token = None
            self._scan_gen += 1
            self._set_busy(False)
            self.statusBar().showMessage("Loading cancelled", 4000)

    def show_study(self, study: Study) -> None:
        """Close the current study and show ``study``'s views side by side (reading order)."""
        self.close_study()
        self._study_gen += 1
        gen = self._study_gen
        handles = [ViewHandle(v) for v in study.views()]
        self.current_study = StudyHandle(study, handles)
        image_views = [self._make_image_view(v, study) for v in study.views()]
        self.views_panel.set_views(image_views)
        self._pending_views = {v.view_id for v in image_views}
        for view, handle in zip(study.views(), handles):
            run_in_pool(lambda v=view, h=handle: prepare_view(v, h.decoded()),
                        lambda pixels, g=gen: self._view_ready(g, pixels),
                        lambda exc, g=gen, v=view: self._view_failed(g, v, exc), priority=PRIORITY_VIEW)
        self.study_browser.select_study(study.study_uid)
        self._update_title()
        self.plugin_host.registry.study_opened(self.current_study)
        if image_views:
            self.select_view(image_views[0].view_id)

    def close_study(self) -> None:
        """Tell plugins, drop the views and their pixels."""
        if self.current_study is None:
            return
        closing = self.current_study
        self.current_study = None
        self.selected_view_id = None
        for view in self.views_panel.views:
            self.sync.remove(view.state)
        self.views_panel.clear()
        self._view_errors.clear()
        self.plugin_host.overlays.clear()
        self.plugin_host.registry.study_closed(closing)
        self._update_title()

    def image_views(self) -> list[ImageView]:
        """The image views of the shown study, in reading order."""
        return list(self.views_panel.views)

    def image_view(self, view_id: str) -> ImageView | None:
        return next((v for v in self.views_panel.views if v.view_id == view_id), None)

    def selected_image_view(self) -> ImageView | None:
        return self.image_view(self.selected_view_id) if self.selected_view_id else None

    def selected_view_handle(self) -> ViewHandle | None:
        if self.current_study is None or self.selected_view_id is None:
            return None
        return next((h for h in self.current_study.views if h.view_id == self.selected_view_id), None)

    def select_view(self, view_id: str) -> None:
        """Make ``view_id`` the selected view (tools and plugins follow it)."""
        if view_id == self.selected_view_id:
            return
        self.selected_view_id = view_id
        for view in self.views_panel.views:
            view.set_selected(view.view_id == view_id)
        handle = self.selected_view_handle()
        if handle is not None:
            self.plugin_host.registry.view_selected(handle)
        if self._tag_dialog is not None and self._tag_dialog.isVisible():
            self._load_tags()

    def report_problem(self, where: str, reason: str, path: str | Path | None = None) -> None:
        """Add a Problems row and flash the status bar (never a modal dialog).

        ``path``: the file concerned; it is shown by a neutral label while PHI is hidden.
        """
        self.problems.add(where, reason, path)
        shown_where, shown_reason = self.problems.shown(self.problems.entries[-1])
        self.statusBar().showMessage(f"Problem: {shown_where}: {shown_reason}", 6000)

    def set_hide_phi(self, hide: bool) -> None:
        """Hide or show identifiers everywhere (see `viewer.model.phi`); remembered in settings."""
        action = self.actions_by_key["hide_phi"]
        if action.isChecked() != hide:
            action.setChecked(hide)  # re-enters through the toggled signal
            return
        self.hide_phi = hide
        self.settings.setValue(HIDE_PHI_KEY, hide)
        self.statusBar().clearMessage()  # it may quote a name or a path
        self.study_browser.set_hide_phi(hide)
        self.problems.set_hide_phi(hide)
        for view in self.views_panel.views:
            view.set_hide_phi(hide)
            if view.view_id in self._view_errors:
                view.set_error(self._error_text(view.view_id))
        if self._tag_dialog is not None:
            self._tag_dialog.browser.set_hide_phi(hide)
            if self._tag_dialog.isVisible():
                self._load_tags()
        self._build_recent_menu()
        self._update_title()
        self.phi_hidden_changed.emit(hide)

    def view_label(self, view: View) -> str:
        """The label of ``view`` as shown now ("Image 2" for an unlabelled view while hidden)."""
        number = None
        if self.current_study is not None:
            ids = [h.view_id for h in self.current_study.views]
            number = ids.index(view.view_id) + 1 if view.view_id in ids else None
        return view_label(view, self.hide_phi, number)

    def export_view_png(self, path: str | Path, on_done=None) -> None:
        """Save the selected view as shown (W/L, rotation, flips, overlays) at full resolution."""
        view = self.selected_image_view()
        if view is None or view.pixels is None:
            self.statusBar().showMessage("Nothing to export: no view is shown yet", 4000)
            return
        image, key = view.pixels.image, view.current_key()
        layers = [layer for layer in view.layers.values() if layer.visible]
        state = view.state
        args = (Path(path), image, key, layers, state.rotation, state.flip_h, state.flip_v)

        def done(saved: Path) -> None:
            self.statusBar().showMessage(f"Saved {path_label(saved, self.hide_phi)}", 5000)
            if on_done is not None:
                on_done(saved)

        run_in_pool(lambda: write_png(*args), done,
                    lambda exc: self.report_problem(str(path), f"export failed: {exc}", path))

    def add_export_action(self, fmt: ExportFormat) -> None:
        """A plugin export format in File ▸ Export."""
        action = self.export_menu.addAction(f"{fmt.name} (*{fmt.suffix})…")
        action.triggered.connect(lambda _checked=False, f=fmt: self._run_export(f))

    # --- scan and decode results -----------------------------------------
    def _set_busy(self, busy: bool, text: str = "") -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)
            self.statusBar().showMessage(text)

    def _scan_progress(self, gen: int, done: int, total: int) -> None:
        if gen == self._scan_gen and total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat(f"{done}/{total} files")

    def _scan_failed(self, gen: int, path: Path, exc: BaseException) -> None:
        if gen != self._scan_gen:
            return
        self._scan_token = None
        self._set_busy(False)
        self.report_problem(str(path), f"cannot scan: {exc}", path)

    def _scan_done(self, gen: int, path: Path, result: ScanResult) -> None:
        if gen != self._scan_gen:
            return
        self._scan_token = None
        self._set_busy(False)
        self.close_study()
        self.scan = result
        self.redactor.add_tree(result.studies)
        self.redactor.add_path(path)
        for problem in result.problems:
            self.report_problem(str(problem.path), problem.reason, problem.path)
        self.study_browser.set_studies(result.studies)
        self._remember_recent(path)
        studies = result.studies.studies()
        self.statusBar().showMessage(
            f"{len(result.studies)} image(s) in {len(studies)} study(ies), "
            f"{len(result.problems)} problem(s)", 6000)
        if studies:
            self.show_study(studies[0])
            self._queue_background_thumbnails(gen, studies[1:])
        self.scan_finished.emit(len(studies))

    def _queue_background_thumbnails(self, gen: int, studies: list[Study]) -> None:
        views = [v for s in studies for v in s.views()][:MAX_BACKGROUND_THUMBS]
        for view in views:
            def job(v: View = view) -> np.ndarray | None:
                return None if gen != self._scan_gen else _thumbnail_job(v)

            run_in_pool(job, lambda thumb, v=view: self._thumb_ready(gen, v.view_id, thumb),
                        lambda exc: log.debug("thumbnail failed: %s", exc), priority=PRIORITY_THUMB)

    def _thumb_ready(self, gen: int, view_id: str, thumb: np.ndarray | None) -> None:
        if gen == self._scan_gen and thumb is not None:
            self.study_browser.set_thumbnail(view_id, thumb)

    def _view_ready(self, gen: int, pixels: ViewPixels) -> None:
        if gen != self._study_gen:
            return
        view = self.image_view(pixels.view.view_id)
        if view is None:
            return
        view.set_pixels(pixels)
        for layer in self.plugin_host.overlays.get(view.view_id, {}).values():
            view.set_overlay(layer)
        self.study_browser.set_thumbnail(view.view_id, _thumbnail(pixels.small_uint8))
        self._view_settled(view.view_id)

    def _view_failed(self, gen: int, view: View, exc: BaseException) -> None:
        if gen != self._study_gen:
            return
        widget = self.image_view(view.view_id)
        self._view_errors[view.view_id] = f"Cannot show this image:\n{exc}"
        if widget is not None:
            widget.set_error(self._error_text(view.view_id))
        self.report_problem(str(view.path), str(exc), view.path)
        self._view_settled(view.view_id)

    def _error_text(self, view_id: str) -> str:
        text = self._view_errors.get(view_id, "")
        return self.redactor.scrub(text) if self.hide_phi else text

    def _saved_hide_phi(self) -> bool:
        value = self.settings.value(HIDE_PHI_KEY, False)
        return value is True or str(value).lower() in ("true", "1")

    def _view_settled(self, view_id: str) -> None:
        self._pending_views.discard(view_id)
        if not self._pending_views and self.current_study is not None:
            self.study_ready.emit(self.current_study.study_uid)

    def _make_image_view(self, view: View, study: Study) -> ImageView:
        widget = ImageView(view)
        widget.set_context(study, study.patient, study.views().index(view) + 1)
        widget.set_hide_phi(self.hide_phi)
        widget.set_show_overlays(self.actions_by_key["overlays"].isChecked())
        widget.selected.connect(self.select_view)
        widget.cursor_info.connect(self.cursor_label.setText)
        widget.window_changed.connect(self._on_window_changed)
        self.sync.add(widget.state)
        return widget

    def _on_window_changed(self, view_id: str, center: float, width: float) -> None:
        self.plugin_host.registry.window_changed(view_id, center, width)

    def _remember_recent(self, path: Path) -> None:
        text = str(path.resolve())
        recent = [text] + [p for p in self.recent_folders() if p != text]
        self.settings.setValue("recent_folders", recent[:MAX_RECENT])
        self._build_recent_menu()

    def _update_title(self) -> None:
        if self.current_study is None:
            self.setWindowTitle(APP_TITLE)
            return
        study = self.current_study.study
        patient = study.patient
        number = patient.studies.index(study) + 1 if patient and study in patient.studies else None
        label = study_label(study, self.hide_phi, number)
        label = self.redactor.scrub(label) if self.hide_phi else label
        self.setWindowTitle(f"{patient_label(study.patient, self.hide_phi)} — {label} — {APP_TITLE}")

    def _on_study_activated(self, study_uid: str) -> None:
        if self.scan is None:
            return
        study = self.scan.studies.study(study_uid)
        if study is not None and (self.current_study is None or
                                  self.current_study.study_uid != study_uid):
            self.show_study(study)

    def _on_view_activated(self, study_uid: str, view_id: str) -> None:
        self._on_study_activated(study_uid)
        self.select_view(view_id)

    # --- file actions (names from viewer.qt.shortcuts.ACTIONS) -------------
    def _on_open_folder(self) -> None:
        start = self.recent_folders()[0] if self.recent_folders() else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open Folder", start)
        if folder:
            self.open_path(folder)

    def _on_open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open File", "", "Images (*.dcm *.DCM *.dicom *.png *.jpg *.jpeg);;All files (*)")
        if path:
            self.open_path(path)

    def _on_cancel_scan(self) -> None:
        self.cancel_scan()

    def _on_export_png(self) -> None:
        view = self.selected_image_view()
        if view is None:
            return
        suggested = (f"{view.label}.png".replace(" ", "_") if self.hide_phi
                     else Path(str(view.view.path)).with_suffix(".png").name)
        path, _ = QFileDialog.getSaveFileName(self, "Export View as PNG", suggested, "PNG (*.png)")
        if path:
            self.export_view_png(path)

    def _run_export(self, fmt: ExportFormat) -> None:
        handle = self.selected_view_handle()
        if handle is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, f"Export {fmt.name}", "", f"{fmt.name} (*{fmt.suffix})")
        if path:
            self.plugin_host._safe(f"export {fmt.name}", lambda: fmt.write(handle, Path(path)))

    def _on_close_study(self) -> None:
        self.close_study()

    def _on_quit(self) -> None:
        self.close()


    # --- Qt events --------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_path(paths[0])
            event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.cancel_scan()
        self.close_study()
        self.plugin_host.shutdown()
        shutdown_pool()
        super().closeEvent(event)
