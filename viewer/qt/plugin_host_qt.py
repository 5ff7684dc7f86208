"""The Qt side of the plugin host: what `viewer.plugin_api.PluginHost` promises, on a main window.

Activation: manifests come from `viewer.plugin_host.discover_plugins`; each
plugin's factory module is imported in a worker thread (torch and friends load
there), then the factory and ``activate(host)`` run on the UI thread, where
widgets may be created. Every failure becomes a Problems row.

The host reads the application state from the `ViewerModel` (``host.model``)
and forwards its events to the plugins' hooks; it needs from the window only
what `HostWindow` lists, so this module does not import the main window.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFrame, QMenu, QScrollArea, QStatusBar, QWidget

from viewer.model.measurement_store import MeasurementStore
from viewer.model.measurements import Measurement
from viewer.model.phi import mask_paths
from viewer.model.study import Study
from viewer.model.viewer_model import ViewerModel
from viewer.plugin_api import ExportFormat, OverlayLayer, PluginManifest, StudyHandle, ViewHandle
from viewer.plugin_host import ActivePlugin, DiscoveredPlugin, PluginRegistry, import_factory
from viewer.qt.workers import run_in_pool

log = logging.getLogger(__name__)

MIN_PANEL_WIDTH, MIN_PANEL_HEIGHT = 200, 80  # a plugin dock can shrink to this
DOCK_AREAS = {
    "right": Qt.DockWidgetArea.RightDockWidgetArea,
    "left": Qt.DockWidgetArea.LeftDockWidgetArea,
    "bottom": Qt.DockWidgetArea.BottomDockWidgetArea,
    "top": Qt.DockWidgetArea.TopDockWidgetArea,
}


def scrollable(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area that resizes it and scrolls when the dock is
    smaller than the widget's minimum size."""
    area = QScrollArea()
    area.setObjectName(f"scroll-{widget.objectName() or type(widget).__name__}")
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(widget)
    area.setMinimumSize(MIN_PANEL_WIDTH, MIN_PANEL_HEIGHT)
    return area


class HostWindow(Protocol):
    """What the plugin host needs from the window that carries it (a QMainWindow)."""

    model: ViewerModel
    panels_menu: QMenu

    def menu_named(self, name: str) -> QMenu: ...

    def image_view(self, view_id: str) -> Any: ...

    def add_export_action(self, fmt: ExportFormat) -> None: ...

    def open_path(self, path: str | Path) -> None: ...

    def show_study(self, study: Study) -> None: ...

    def report_problem(self, where: str, reason: str, path: str | Path | None = None) -> None: ...

    def statusBar(self) -> QStatusBar: ...  # noqa: N802 (Qt name)

    def addDockWidget(self, area: Qt.DockWidgetArea, dock: QDockWidget) -> None: ...  # noqa: N802


class QtPluginHost(QObject):
    """Implements the `PluginHost` protocol on a `HostWindow`; owns the `PluginRegistry`.

    ``plugin_ready(name)`` fires after a plugin activated; ``plugins_settled``
    after every discovered plugin either activated or failed.
    """

    plugin_ready = Signal(str)
    plugins_settled = Signal()

    def __init__(self, window: HostWindow) -> None:
        super().__init__(window)
        self._window = window
        self.model: ViewerModel = window.model
        self.registry = PluginRegistry(self.report_problem)
        self.docks: dict[str, QDockWidget] = {}
        self.actions: list[tuple[str, str, str]] = []  # (menu, text, shortcut) for Help
        self.export_formats: list[ExportFormat] = []
        self.overlays: dict[str, dict[str, OverlayLayer]] = {}
        self._waiting = 0
        self._study_after_scan: str | None = None  # open_study: the study to show once scanned
        # Plugin imports (torch, models) get their own thread so they never hold up decoding.
        self._import_pool = QThreadPool(self)
        self._import_pool.setMaxThreadCount(1)
        self._subscribe(window.model)

    def _subscribe(self, model: ViewerModel) -> None:
        """Model events become plugin hooks (after the window's widgets followed them)."""
        reg = self.registry
        model.study_opened.connect(reg.study_opened)
        model.study_closed.connect(self._on_study_closed)
        model.selection_changed.connect(
            lambda view_id: (handle := model.view_handle(view_id)) is not None and reg.view_selected(handle))
        model.prior_changed.connect(lambda prior: reg.notify("prior_changed", prior))
        model.layout_changed.connect(lambda layout: reg.notify("layout_changed", layout))
        model.measurements.changed.connect(self._on_measurement)
        model.scan_changed.connect(self._on_scan_changed)

    def _on_study_closed(self, study: StudyHandle) -> None:
        self.overlays.clear()
        self.registry.study_closed(study)

    def _on_measurement(self, action: str, m: Measurement) -> None:
        result = None if action == "removed" else self.model.measurements.result(m)
        self.registry.notify("measurement_changed", action, m, result)

    # --- PluginHost protocol -------------------------------------------
    @property
    def main_window(self) -> HostWindow:
        return self._window

    @property
    def current_study(self) -> StudyHandle | None:
        return self.model.current_study

    @property
    def prior_study(self) -> StudyHandle | None:
        """The prior study shown beside the current one ("Compare with prior"), else None."""
        return self.model.prior_study

    @property
    def layout(self) -> str:
        """``"study"`` or ``"compare"``."""
        return self.model.layout

    @property
    def selected_view(self) -> ViewHandle | None:
        return self.model.selected_view

    @property
    def measurements(self) -> MeasurementStore:
        """The measurements of the open studies (read; ``.result(m)`` gives the numbers)."""
        return self.model.measurements

    @property
    def phi_hidden(self) -> bool:
        """True while the user hides patient identifiers: plugins should mask them too."""
        return self.model.hide_phi

    def add_dock_panel(self, title: str, widget: QWidget, area: str = "right") -> QDockWidget:
        """Wrap ``widget`` in a dock on the given side and list it in View ▸ Panels.

        The widget sits in a scroll area, so no plugin panel's minimum size can
        make the main window taller or wider than the screen.
        """
        if area not in DOCK_AREAS:
            raise ValueError(f"dock area must be one of {sorted(DOCK_AREAS)}, got {area!r}")
        dock = QDockWidget(title, self._window)
        dock.setObjectName(f"plugin-dock-{title}")
        dock.setWidget(scrollable(widget))
        self._window.addDockWidget(DOCK_AREAS[area], dock)
        self._window.panels_menu.addAction(dock.toggleViewAction())
        self.docks[title] = dock
        return dock

    def set_overlay(self, view_id: str, layer: OverlayLayer) -> None:
        """Show ``layer`` over the view (kept and re-applied if the view is shown later)."""
        if not isinstance(layer, OverlayLayer):
            raise TypeError(f"set_overlay needs an OverlayLayer, got {type(layer).__name__}")
        self.overlays.setdefault(view_id, {})[layer.name] = layer
        view = self._window.image_view(view_id)
        if view is not None:
            view.set_overlay(layer)

    def remove_overlay(self, view_id: str, name: str) -> None:
        """Remove the layer ``name`` from the view; unknown names are ignored."""
        self.overlays.get(view_id, {}).pop(name, None)
        view = self._window.image_view(view_id)
        if view is not None:
            view.remove_overlay(name)

    def add_menu_action(self, menu: str, text: str, callback: Callable[[], None],
                        shortcut: str | None = None) -> QAction:
        """Add ``text`` to the menu named ``menu`` (created if new); errors go to Problems."""
        action = QAction(text, self._window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _checked=False: self.run_safely(f"menu {menu} ▸ {text}", callback))
        self._window.menu_named(menu).addAction(action)
        self.actions.append((menu, text, shortcut or ""))
        return action

    def add_export_format(self, fmt: ExportFormat) -> None:
        """List ``fmt`` in File ▸ Export; it is called with the selected view and a path."""
        self.export_formats.append(fmt)
        self._window.add_export_action(fmt)

    def report_problem(self, where: str, reason: str) -> None:
        """Add a Problems row."""
        self._window.report_problem(where, reason)

    def status_message(self, text: str) -> None:
        """Show ``text`` in the status bar for a few seconds; under Hide-PHI the open studies'
        identifiers and every folder or file name in it are masked (an export's file name
        can carry a patient's name)."""
        if self.model.hide_phi:
            text = mask_paths(self.model.redactor.scrub(text))
        self._window.statusBar().showMessage(text, 5000)

    def current_window(self, view_id: str) -> tuple[float, float] | None:
        """(center, width) shown in the view now, in modality values; None if not shown."""
        view = self._window.image_view(view_id)
        return None if view is None else view.effective_window()

    def open_study(self, path: str | Path, study_uid: str | None = None) -> None:
        """Show ``study_uid`` if the open folder has it; otherwise scan ``path`` in the
        background (File ▸ Open) and show ``study_uid`` when the scan arrives."""
        study = self.model.study(study_uid) if study_uid else None
        if study is not None:
            self._study_after_scan = None
            self._window.show_study(study)
            return
        self._study_after_scan = study_uid
        self._window.open_path(Path(path))

    def _on_scan_changed(self, _scan: Any) -> None:
        """A scan arrived: after the window has shown its first study, show the study that
        `open_study` asked for (one-shot; ignored when the scan does not have it)."""
        wanted, self._study_after_scan = self._study_after_scan, None
        if wanted:
            QTimer.singleShot(0, lambda: self._show_wanted(wanted))

    def _show_wanted(self, study_uid: str) -> None:
        current = self.model.current_study
        study = self.model.study(study_uid)
        if study is not None and (current is None or current.study_uid != study_uid):
            self._window.show_study(study)

    # --- activation -----------------------------------------------------
    def load(self, discovered: list[DiscoveredPlugin]) -> None:
        """Report broken manifests and activate the rest (imports in workers)."""
        for item in discovered:
            if item.manifest is None:
                self.report_problem(f"plugin {item.name}", item.error or "unknown error")
        good = [d.manifest for d in discovered if d.manifest is not None]
        self._waiting = len(good)
        if not good:
            self.plugins_settled.emit()
        for manifest in good:
            self._start_import(manifest)

    def _start_import(self, manifest: PluginManifest) -> None:
        run_in_pool(lambda: import_factory(manifest),
                    lambda factory: self._activate(manifest, factory),
                    lambda exc: self._import_failed(manifest, exc), pool=self._import_pool)

    def _import_failed(self, manifest: PluginManifest, exc: BaseException) -> None:
        self.report_problem(f"plugin {manifest.name}", f"{type(exc).__name__}: {exc}")
        self._settle_one()

    def _activate(self, manifest: PluginManifest, factory: Callable[[], Any]) -> None:
        active = self.registry.activate(manifest, factory, self)
        if active is not None:
            self._catch_up(active)
            self.plugin_ready.emit(manifest.name)
        self._settle_one()

    def _settle_one(self) -> None:
        self._waiting -= 1
        if self._waiting <= 0:
            self.plugins_settled.emit()

    def _catch_up(self, active: ActivePlugin) -> None:
        """A plugin that activated after a study opened gets the current state."""
        study = self.current_study
        if study is not None:
            self.registry.study_opened(study, only=active)
            view = self.selected_view
            if view is not None:
                self.registry.view_selected(view, only=active)
            if self.prior_study is not None:
                self.registry.call(active.manifest, active.plugin, "prior_changed", self.prior_study)

    def run_safely(self, where: str, callback: Callable[[], None]) -> None:
        """Call a plugin callback; an exception becomes a Problems row."""
        try:
            callback()
        except Exception as exc:  # plugin callback: report, keep running
            log.error("%s failed", where, exc_info=True)
            self.report_problem(where, f"{type(exc).__name__}: {exc}")

    def shutdown(self) -> None:
        """Deactivate every plugin and stop pending imports."""
        self.registry.deactivate_all()
        self._import_pool.clear()
        self._import_pool.waitForDone(3000)
