"""The CXR-CLIP findings plugin: panels, menu actions and hooks wired to the controller.

Activation starts loading the model in the engine worker, then adds the docks
(Findings, Prompt, Report, Model, Change, Search), a "CXR-CLIP" menu and a
File ▸ Export format (view with heatmap and colour bar) a step per event-loop
turn; opening a study never waits on the model. Drafts are kept per study in
the user's data folder. See docs/plugin_cxrclip.md.
"""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from plugins.cxrclip_findings.compare_panel import ChangePanel
from plugins.cxrclip_findings.controller import FindingsController
from plugins.cxrclip_findings.convert_dialog import ConvertDialog
from plugins.cxrclip_findings.exports import Exports
from plugins.cxrclip_findings.findings_panel import FindingsPanel
from plugins.cxrclip_findings.manifest import MANIFEST
from plugins.cxrclip_findings.model_panel import ModelPanel
from plugins.cxrclip_findings.prompt_panel import PromptPanel
from plugins.cxrclip_findings.report_panel import ReportPanel
from plugins.cxrclip_findings.search_panel import install_search_panel
from plugins.cxrclip_findings.settings import SETTINGS_KEY_MODEL, resolve_model_dir
from plugins.cxrclip_findings.staged_build import StagedBuild
from plugins.cxrclip_findings.study_state import DraftStore, default_data_dir
from viewer.plugin_api import BasePlugin, PluginHost, StudyHandle, ViewHandle

log = logging.getLogger(__name__)
MENU = "CXR-CLIP"
DOCK_WIDTH = 470
FINDINGS_HEIGHT, PROMPT_HEIGHT = 600, 300
DATA_SUBDIR = "cxrclip_findings"


def data_dir(explicit: str | Path | None = None) -> Path:
    """Where drafts are kept: ``explicit`` > env ``CXRCLIP_DATA_DIR`` > the user's
    application data folder (QStandardPaths.AppDataLocation), never beside the images."""
    if explicit is not None:
        return Path(explicit)
    env = default_data_dir()
    if env is not None:
        return env
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)
    return Path(base or Path.home() / ".local" / "share" / "cxrclip-viewer") / DATA_SUBDIR


DOCK_TITLES = ("Findings", "Prompt", "Report", "Model", "Change")  # added in this order


class CxrClipFindingsPlugin(BasePlugin):
    """Presents `cxrclip.Engine` results in the viewer."""

    def __init__(self, service_factory: Any = None, settings: QSettings | None = None,
                 data_folder: str | Path | None = None) -> None:
        super().__init__()
        self._service_factory = service_factory
        self._settings = settings
        self._data_folder = data_folder
        self._pending_default: Path | None = None
        self.controller: FindingsController | None = None
        self.exports: Exports | None = None
        self.docks: dict[str, Any] = {}
        self._build: StagedBuild | None = None
        self._waiting_hooks: list[Any] = []

    # ----- activation ---------------------------------------------------------------
    def activate(self, host: PluginHost) -> None:
        """Start loading the model in the worker, then build panels, docks and menu a step
        per event-loop turn (`StagedBuild`), so the window stays responsive while they are
        built. Until the build is done, the host's hooks and the engine's results wait
        (in order); `finish_building()` completes it at once."""
        super().activate(host)
        drafts = DraftStore(data_dir(self._data_folder) / "drafts")
        c = self.controller = FindingsController(host, MANIFEST, self._service_factory,
                                                 drafts=drafts)
        c.hold_results()
        model_dir, source = resolve_model_dir(self._saved_model_dir())
        log.info("CXR-CLIP model from %s: %s", source, model_dir)
        c.load_model(model_dir)
        self._waiting_hooks = []
        # One dock per turn: adding all five in one step re-laid-out and repainted the window
        # in one go, the longest UI stall of the launch (benchmarks/RESULTS.md, 2026-12-02).
        docks = [partial(self._add_dock, title) for title in DOCK_TITLES]
        self._build = StagedBuild([self._build_findings, self._build_prompt, self._build_report,
                                   self._build_model_and_change, *docks, self._arrange_docks_and_menu,
                                   self._add_search],
                                  self._built, parent=c)
        self._build.start()

    @property
    def built(self) -> bool:
        """True once every panel, dock and menu action exists."""
        return self._build is not None and self._build.done

    def finish_building(self) -> None:
        """Build what is left now (tests, and callers that need the panels at once)."""
        if self._build is not None:
            self._build.finish()

    def _build_findings(self) -> None:
        self.findings_panel = FindingsPanel(self.controller)

    def _build_prompt(self) -> None:
        self.prompt_panel = PromptPanel(self.controller)

    def _build_report(self) -> None:
        self.exports = Exports(self)
        self.report_panel = ReportPanel(self.controller, self.exports.json_dialog, self.exports.sr_dialog)

    def _build_model_and_change(self) -> None:
        self.model_panel = ModelPanel(self.controller, self.load_model_dialog, self.convert_dialog)
        self.change_panel = ChangePanel(self.controller)

    def _add_dock(self, title: str) -> None:
        panels = {"Findings": self.findings_panel, "Prompt": self.prompt_panel, "Report": self.report_panel,
                  "Model": self.model_panel, "Change": self.change_panel}
        self.docks[title] = self.host.add_dock_panel(title, panels[title], "right")

    def _arrange_docks_and_menu(self) -> None:
        self._arrange_docks()
        self._add_actions(self.host)

    def _add_search(self) -> None:
        self.search_panel = install_search_panel(self.host, self.controller, self._qsettings(),
                                                 self.docks, MENU)

    def _built(self) -> None:
        c = self.controller
        c.model_ready.connect(self._model_loaded)
        c.model_failed.connect(lambda _m: setattr(self, "_pending_default", None))
        c.study_changed.connect(lambda *_a: self.report_panel.set_phi_hidden(self.phi_hidden))
        self.report_panel.set_phi_hidden(self.phi_hidden)
        phi_changed = getattr(getattr(self.host, "main_window", None), "phi_hidden_changed", None)
        if phi_changed is not None:
            phi_changed.connect(self.report_panel.set_phi_hidden)
        waiting, self._waiting_hooks = self._waiting_hooks, []
        for hook in waiting:
            hook()
        c.release_results()

    def _when_built(self, hook: Any) -> None:
        """Run a host hook now, or once the panels exist (in the order the hooks came)."""
        if self.built:
            hook()
        else:
            self._waiting_hooks.append(hook)

    @property
    def phi_hidden(self) -> bool:
        """The viewer's Hide-PHI state (False for hosts that have none)."""
        return bool(getattr(self.host, "phi_hidden", False))

    def _arrange_docks(self) -> None:
        window = getattr(self.host, "main_window", None)
        if window is None or not hasattr(window, "tabifyDockWidget"):
            return
        window.tabifyDockWidget(self.docks["Prompt"], self.docks["Report"])
        window.tabifyDockWidget(self.docks["Findings"], self.docks["Model"])
        window.tabifyDockWidget(self.docks["Findings"], self.docks["Change"])
        self.docks["Findings"].raise_()
        self.docks["Prompt"].raise_()
        QTimer.singleShot(0, self._size_docks)

    def _size_docks(self) -> None:
        """Give the Findings table room (run once the window has its layout)."""
        window = self.host.main_window
        findings, prompt = self.docks["Findings"], self.docks["Prompt"]
        window.resizeDocks([findings], [DOCK_WIDTH], Qt.Orientation.Horizontal)
        window.resizeDocks([findings, prompt], [FINDINGS_HEIGHT, PROMPT_HEIGHT],
                           Qt.Orientation.Vertical)

    def _add_actions(self, host: PluginHost) -> None:
        c, e = self.controller, self.exports
        host.add_menu_action(MENU, "Toggle Heatmap", c.toggle_heatmap, "Shift+H")
        host.add_menu_action(MENU, "Load Model…", self.load_model_dialog)
        host.add_menu_action(MENU, "Convert Official Checkpoint…", self.convert_dialog)
        host.add_menu_action(MENU, "Export Findings as JSON…",
                             lambda: e.json_dialog(self.report_panel.include_ids.isChecked()))
        host.add_menu_action(MENU, "Export Findings as DICOM SR…",
                             lambda: e.sr_dialog(self.report_panel.include_ids.isChecked()))
        host.add_export_format(e.heatmap_png_format())

    def _qsettings(self) -> QSettings:
        """The viewer's settings store when it has one (so tests stay sandboxed)."""
        if self._settings is None:
            shared = getattr(self.parent_widget(), "settings", None)
            self._settings = shared if isinstance(shared, QSettings) else QSettings("cxrclip", "viewer")
        return self._settings

    def _saved_model_dir(self) -> str | None:
        value = self._qsettings().value(SETTINGS_KEY_MODEL)
        return str(value) if value else None

    # ----- hooks --------------------------------------------------------------------
    def study_opened(self, study: StudyHandle) -> None:
        self._when_built(lambda: self.controller.open_study(study))

    def study_not_applicable(self, study: StudyHandle, reason: str) -> None:
        self._when_built(lambda: self.controller.study_not_applicable(study, reason))

    def view_selected(self, view: ViewHandle) -> None:
        self._when_built(lambda: self.controller.select_view(view.view_id))

    def prior_changed(self, prior: StudyHandle | None) -> None:
        self._when_built(lambda: self._compare_with(prior))

    def _compare_with(self, prior: StudyHandle | None) -> None:
        """Compare with prior: score the prior too and bring the Change tab forward (back
        to Findings when the comparison ends)."""
        self.controller.prior.set_prior(prior)
        dock = self.docks.get("Change" if self.controller.prior.handle is not None else "Findings")
        if dock is not None:
            dock.raise_()

    def study_closed(self, study: StudyHandle) -> None:
        self._when_built(lambda: self._close(study))

    def _close(self, study: StudyHandle) -> None:
        if self.controller.study is not None and self.controller.study.handle is study:
            self.controller.close_study()

    def deactivate(self) -> None:
        if self._build is not None:
            self._build.cancel()
        if getattr(self, "search_panel", None) is not None:
            self.search_panel.shutdown()
        if self.exports is not None:
            self.exports.shutdown()
        if self.controller is not None:
            self.controller.shutdown()

    # ----- model loading / conversion ---------------------------------------------------
    def load_model(self, model_dir: str | Path, remember: bool = True) -> None:
        """Load another model directory (in the worker). With ``remember`` it becomes the
        default for the next start, but only once it has loaded: a folder that fails to
        load is never written to the settings."""
        self._pending_default = Path(model_dir) if remember else None
        self.controller.load_model(model_dir)

    def _model_loaded(self, summary: Any) -> None:
        pending, self._pending_default = self._pending_default, None
        if pending is not None and Path(summary.path) == pending:
            self._qsettings().setValue(SETTINGS_KEY_MODEL, str(pending))

    def load_model_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path = QFileDialog.getExistingDirectory(self.parent_widget(), "Load CXR-CLIP model directory")
        if path:
            self.load_model(path)

    def convert_dialog(self) -> None:
        dialog = ConvertDialog(self.parent_widget(), on_converted=self._offer_load)
        dialog.show()
        self._convert = dialog

    def _offer_load(self, out_dir: Path) -> None:
        answer = QMessageBox.question(self.parent_widget(), "Model converted",
                                      f"Load the converted model from {out_dir}?")
        if answer == QMessageBox.StandardButton.Yes:
            self.load_model(out_dir)

    def parent_widget(self) -> Any:
        """The viewer's main window (parent of dialogs), or None."""
        return getattr(self.host, "main_window", None)

    # ----- exports (see exports.py) -----------------------------------------------------
    def export_json(self, path: str | Path, include_identifiers: bool = False,
                    study_uid: str | None = None) -> Path:
        """Write the JSON export of the open study (or of ``study_uid``, which must be open)."""
        return self.exports.write_json(path, include_identifiers, study_uid)

    def export_sr(self, path: str | Path, include_identifiers: bool = False,
                  study_uid: str | None = None) -> bool:
        """Start writing the DICOM SR in the background; see `Exports.start_sr`."""
        return self.exports.start_sr(path, include_identifiers, study_uid)


def create_plugin() -> CxrClipFindingsPlugin:
    """Entry point named by the manifest's factory."""
    return CxrClipFindingsPlugin()
