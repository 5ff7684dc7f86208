"""The main window: menus, toolbar, docks, and the wiring of the application model.

The application state lives in `viewer.model.viewer_model.ViewerModel`
(``window.model``); this window builds the widgets and subscribes them to it.
`ViewsPresenter` keeps the image views in step with the model's layout,
`ScanLoader` scans folders in a worker, `QtPluginHost` serves plugins from the
model. Disk, decoding and rendering happen in workers
(`viewer.qt.workers.run_in_pool`).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMenu, QWidget

from viewer.io.scan import ScanResult
from viewer.model.phi import path_label, patient_label, study_label
from viewer.model.study import Study, View
from viewer.model.viewer_model import ViewerModel
from viewer.plugin_api import ExportFormat, StudyHandle, ViewHandle
from viewer.plugin_host import DiscoveredPlugin, discover_plugins
from viewer.qt.image_view import ImageView
from viewer.qt.measurements_panel import MeasurementsPanel
from viewer.qt.plugin_host_qt import QtPluginHost
from viewer.qt.problems_panel import ProblemsPanel
from viewer.qt.scan_loader import ScanLoader
from viewer.qt.shortcuts import ACTIONS, ActionSpec
from viewer.qt.study_browser import StudyBrowser
from viewer.qt.study_list import StudyList
from viewer.qt.theme import icon
from viewer.qt.views_panel import ViewsPanel
from viewer.qt.views_presenter import ViewsPresenter
from viewer.qt.window_actions import APP_TITLE, WindowActionsMixin
from viewer.qt.workers import shutdown_pool

MAX_RECENT = 10
HIDE_PHI_KEY = "privacy/hide_phi"


DEFAULT_SIZE = (1500, 950)   # the window at start, shrunk to fit smaller screens


def fit_to_screen(size: tuple[int, int], available: tuple[int, int]) -> tuple[int, int]:
    """The default window size, shrunk to the screen's available area (a 1366 x 768 laptop
    gets a window it can see whole); never grown."""
    return min(size[0], available[0]), min(size[1], available[1])

class MainWindow(WindowActionsMixin, QMainWindow):
    """The viewer window. ``study_ready(study_uid)`` fires once every shown view has
    pixels (or failed); ``scan_finished(n_studies)`` after a scan;
    ``phi_hidden_changed(hidden)`` after Hide-PHI was switched (Qt twin of the model's)."""

    study_ready = Signal(str)
    scan_finished = Signal(int)
    phi_hidden_changed = Signal(bool)  # plugins may connect through host.main_window

    def _default_size(self) -> tuple[int, int]:
        screen = self.screen()
        if screen is None:
            return DEFAULT_SIZE
        area = screen.availableGeometry()
        return fit_to_screen(DEFAULT_SIZE, (area.width(), area.height()))

    def __init__(self, settings: QSettings | None = None, load_plugins: bool = True,
                 plugin_entry_points: list | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings("cxrclip", "viewer")
        self.model = ViewerModel()
        self.actions_by_key: dict[str, QAction] = {}
        self._menus: dict[str, QMenu] = {}
        self._tag_dialog = None
        self.setWindowTitle(APP_TITLE)
        self.resize(*self._default_size())
        self.setAcceptDrops(True)
        self.views_panel = ViewsPanel(self)
        self.setCentralWidget(self.views_panel)
        self.presenter = ViewsPresenter(self.model, self.views_panel, self)
        self._build_docks()
        self._build_status_bar()
        self._build_actions()
        self._subscribe()
        self.plugin_host = QtPluginHost(self)
        self.presenter.overlays_for = lambda view_id: self.plugin_host.overlays.get(view_id, {}).values()
        self.presenter.window_changed.connect(self.plugin_host.registry.window_changed)
        self.set_hide_phi(self._saved_hide_phi())
        self._build_recent_menu()
        if load_plugins:
            self.plugin_host.load(discover_plugins(entry_points=plugin_entry_points))
        else:
            self.plugin_host.plugins_settled.emit()

    # --- the model's state, read through the window (tests, plugins, benchmarks) --------
    current_study = property(lambda self: self.model.current_study,
                             doc="The current study's `StudyHandle` (model.current_study).")
    hide_phi = property(lambda self: self.model.hide_phi, doc="model.hide_phi")
    selected_view_id = property(lambda self: self.model.selected_view_id, doc="model.selected_view_id")
    scan = property(lambda self: self.model.scan, doc="The last `ScanResult` (model.scan).")
    redactor = property(lambda self: self.model.redactor, doc="model.redactor")
    sync = property(lambda self: self.model.sync, doc="The W/L sync (model.sync).")

    # --- construction ---------------------------------------------------
    def _build_docks(self) -> None:
        self.study_browser = StudyBrowser(self, self.model.redactor)
        self.study_browser.study_activated.connect(self._on_study_activated)
        self.study_browser.view_activated.connect(self._on_view_activated)
        self.browser_dock = self._dock("Studies", self.study_browser, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.study_list = StudyList(self.model.redactor, self._problems_of, self)
        self.study_list.study_activated.connect(self._on_study_activated)
        self.study_list_dock = self._dock("Study List", self.study_list, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tabifyDockWidget(self.browser_dock, self.study_list_dock)
        self.browser_dock.raise_()
        model = self.model
        self.measurements_panel = MeasurementsPanel(  # picking a row selects its view, if open
            model.measurements, lambda view_id: model.view_handle(view_id) and model.select_view(view_id),
            self.report_problem, self, write_sr=model.write_measurements_sr)
        self.measurements_dock = self._dock("Measurements", self.measurements_panel,
                                            Qt.DockWidgetArea.LeftDockWidgetArea)
        self.problems = ProblemsPanel(self, self.model.redactor)
        self.problems_dock = self._dock("Problems", self.problems, Qt.DockWidgetArea.BottomDockWidgetArea)
        # Plugin panels on the right get the full height; Problems sits under the images.
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.browser_dock], [260], Qt.Orientation.Horizontal)
        self.resizeDocks([self.browser_dock, self.measurements_dock], [520, 180], Qt.Orientation.Vertical)
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
        bar.addPermanentWidget(self.cursor_label)
        self.loader = ScanLoader(bar)
        self.progress, self.cancel_button = self.loader.progress, self.loader.cancel_button
        self.loader.scanned.connect(self._scan_done)
        self.loader.failed.connect(
            lambda path, exc: self.report_problem(str(path), f"cannot scan: {exc}", path))
        self.loader.thumbnail_ready.connect(self.study_browser.set_thumbnail)
        self.loader.thumbnail_failed.connect(
            lambda view, msg: self.report_problem(str(view.path), msg, view.path))

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
        for name in ("File", "View", "Window", "Measure", "Tools", "Plugins", "Help"):
            self.menu_named(name)
        self.recent_menu, self.export_menu = QMenu("Open Recent", self), QMenu("Export", self)
        self.panels_menu = QMenu("Panels", self)
        tools = QActionGroup(self)
        for spec in ACTIONS:
            action = self._make_action(spec)
            self.menu_named(spec.menu).addAction(action)
            if spec.key.startswith("tool_"):
                tools.addAction(action)
            if spec.key == "open_file":
                self.menu_named("File").addMenu(self.recent_menu)
            if spec.key == "export_png":
                self.menu_named("File").addMenu(self.export_menu)
            if spec.toolbar:
                toolbar.addAction(action)
        self.menu_named("View").addSeparator()
        self.menu_named("View").addMenu(self.panels_menu)
        for dock in (self.browser_dock, self.study_list_dock, self.measurements_dock, self.problems_dock):
            self.panels_menu.addAction(dock.toggleViewAction())
        self.actions_by_key["overlays"].setChecked(True)
        self.actions_by_key["tool_navigate"].setChecked(True)

    def _make_action(self, spec: ActionSpec) -> QAction:
        action = QAction(spec.text, self)
        if spec.icon:
            action.setIcon(icon(spec.icon))
        if spec.shortcut:
            action.setShortcut(QKeySequence(spec.shortcut))
            action.setToolTip(f"{spec.text.rstrip('…')} ({spec.shortcut})")
        action.setCheckable(spec.checkable)
        handler = self._handler(spec.key)
        if spec.checkable:
            action.toggled.connect(handler)
        else:
            action.triggered.connect(lambda _checked=False, h=handler: h())
        self.actions_by_key[spec.key] = action
        return action

    def _subscribe(self) -> None:
        """Widgets follow the model."""
        model, presenter = self.model, self.presenter
        model.scan_changed.connect(lambda scan: scan is not None and self.study_browser.set_studies(scan.studies))
        model.scan_changed.connect(lambda scan: self.study_list.set_studies(scan and scan.studies))
        model.study_opened.connect(self._on_model_study_opened)
        model.study_closed.connect(lambda _study: self._update_title())
        model.selection_changed.connect(self._on_model_selection)
        model.phi_hidden_changed.connect(self._on_model_phi)
        model.layout_changed.connect(self._on_model_layout)
        model.sync_changed.connect(self.actions_by_key["sync_wl"].setChecked)
        model.measurements.tool_changed.connect(lambda tool: self.actions_by_key[f"tool_{tool}"].setChecked(True))
        presenter.study_ready.connect(self.study_ready)
        presenter.cursor_info.connect(self.cursor_label.setText)
        presenter.thumbnail_ready.connect(self.study_browser.set_thumbnail)
        presenter.view_failed.connect(lambda view, msg: self.report_problem(str(view.path), msg, view.path))
        presenter.view_failed.connect(lambda *_a: self.study_list.refresh())

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
        self.loader.open_path(path, "Scanning…" if self.hide_phi else f"Scanning {path.name}…")

    def cancel_scan(self) -> None:
        """Stop a running scan (its partial result is dropped)."""
        self.loader.cancel()

    def show_study(self, study: Study) -> None:
        """Close the current study and show ``study``'s views side by side (reading order)."""
        self.model.open_study(study)

    def close_study(self) -> None:
        """Tell plugins, drop the views and their pixels."""
        self.model.close_study()

    def image_views(self) -> list[ImageView]:
        """The image views shown now, left to right."""
        return self.presenter.views

    def image_view(self, view_id: str) -> ImageView | None:
        return self.presenter.image_view(view_id)

    def selected_image_view(self) -> ImageView | None:
        return self.presenter.image_view(self.model.selected_view_id)

    def selected_view_handle(self) -> ViewHandle | None:
        return self.model.selected_view

    def select_view(self, view_id: str) -> None:
        """Make ``view_id`` the selected view (tools and plugins follow it)."""
        self.model.select_view(view_id)

    def report_problem(self, where: str, reason: str, path: str | Path | None = None) -> None:
        """Add a Problems row and flash the status bar (never a modal dialog).

        ``path``: the file concerned; it is shown by a neutral label while PHI is hidden.
        """
        if not self.problems.add(where, reason, path):
            return
        shown_where, shown_reason = self.problems.shown(self.problems.entries[-1])
        self.statusBar().showMessage(f"Problem: {shown_where}: {shown_reason}", 6000)

    def set_hide_phi(self, hide: bool) -> None:
        """Hide or show identifiers everywhere (see `viewer.model.phi`); remembered in settings."""
        self.model.set_hide_phi(hide)
        self.settings.setValue(HIDE_PHI_KEY, bool(hide))

    def view_label(self, view: View) -> str:
        """The label of ``view`` as shown now ("Image 2" for an unlabelled view while hidden)."""
        return self.model.view_label(view)

    def add_export_action(self, fmt: ExportFormat) -> None:
        """A plugin export format in File ▸ Export."""
        action = self.export_menu.addAction(f"{fmt.name} (*{fmt.suffix})…")
        action.triggered.connect(lambda _checked=False, f=fmt: self._run_export(f))

    # --- model events ----------------------------------------------------
    def _scan_done(self, path: Path, result: ScanResult) -> None:
        for problem in result.problems:
            self.report_problem(str(problem.path), problem.reason, problem.path)
        self.model.set_scan(result, path)
        self._remember_recent(path)
        studies = result.studies.studies()
        self.statusBar().showMessage(
            f"{len(result.studies)} image(s) in {len(studies)} study(ies), "
            f"{len(result.problems)} problem(s)", 6000)
        if studies:
            self.show_study(studies[0])
            self.loader.queue_thumbnails(studies[1:])
        self.scan_finished.emit(len(studies))

    def _on_model_study_opened(self, study: StudyHandle) -> None:
        self.study_browser.select_study(study.study_uid)
        self.study_list.select_study(study.study_uid)
        self._update_title()
        self.actions_by_key["compare_prior"].setEnabled(self.model.prior_candidate() is not None)

    def _on_model_selection(self, _view_id: str | None) -> None:
        if self._tag_dialog is not None and self._tag_dialog.isVisible():
            self._load_tags()

    def _on_model_phi(self, hide: bool) -> None:
        action = self.actions_by_key["hide_phi"]
        action.blockSignals(True)
        action.setChecked(hide)
        action.blockSignals(False)
        self.settings.setValue(HIDE_PHI_KEY, hide)
        self.statusBar().clearMessage()  # it may quote a name or a path
        self.study_browser.set_hide_phi(hide)
        self.study_list.set_hide_phi(hide)
        self.problems.set_hide_phi(hide)
        if self._tag_dialog is not None:
            self._tag_dialog.browser.set_hide_phi(hide)
            if self._tag_dialog.isVisible():
                self._load_tags()
        self._build_recent_menu()
        self._update_title()
        self.phi_hidden_changed.emit(hide)

    def _on_model_layout(self, layout: str) -> None:
        action = self.actions_by_key["compare_prior"]
        action.blockSignals(True)
        action.setChecked(layout == "compare")
        action.blockSignals(False)
        self._update_title()

    def _problems_of(self, study: Study) -> int:
        """Problems rows about files of ``study`` (for the Study List)."""
        paths = {Path(v.path) for v in study.views()}
        return sum(1 for e in self.problems.entries if e.path is not None and Path(e.path) in paths)

    def _saved_hide_phi(self) -> bool:
        value = self.settings.value(HIDE_PHI_KEY, False)
        return value is True or str(value).lower() in ("true", "1")

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
        compare = " vs prior" if self.model.layout == "compare" else ""
        self.setWindowTitle(f"{patient_label(study.patient, self.hide_phi)} — {label}{compare} — {APP_TITLE}")

    def _on_study_activated(self, study_uid: str) -> None:
        study = self.model.study(study_uid)
        if study is not None and (self.current_study is None or
                                  self.current_study.study_uid != study_uid):
            self.show_study(study)

    def _on_view_activated(self, study_uid: str, view_id: str) -> None:
        self._on_study_activated(study_uid)
        if view_id not in {h.view_id for h in self.model.shown_views()}:
            self.model.set_layout("study")  # a view the comparison does not show
        if self.model.view_handle(view_id) is not None:
            self.select_view(view_id)

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
