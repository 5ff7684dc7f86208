"""The CXR-CLIP findings plugin: panels, menu actions and hooks wired to the controller.

Activation adds four docks (Findings, Prompt, Report, Model), a "CXR-CLIP"
menu, and starts loading the model in the engine worker; opening a study never
waits on the model. See docs/plugin_cxrclip.md.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QFileDialog, QMessageBox

from plugins.cxrclip_findings.controller import FindingsController
from plugins.cxrclip_findings.convert_dialog import ConvertDialog
from plugins.cxrclip_findings.export_build import export_content
from plugins.cxrclip_findings.export_data import ModelInfo
from plugins.cxrclip_findings.export_json import write_export
from plugins.cxrclip_findings.export_sr import SRExportError, read_evidence, write_sr
from plugins.cxrclip_findings.findings_panel import FindingsPanel
from plugins.cxrclip_findings.manifest import MANIFEST
from plugins.cxrclip_findings.model_panel import ModelPanel
from plugins.cxrclip_findings.prompt_panel import PromptPanel
from plugins.cxrclip_findings.report_panel import ReportPanel
from plugins.cxrclip_findings.settings import SETTINGS_KEY_MODEL, resolve_model_dir
from viewer.plugin_api import BasePlugin, PluginHost, StudyHandle, ViewHandle

log = logging.getLogger(__name__)
MENU = "CXR-CLIP"
DOCK_WIDTH = 470
FINDINGS_HEIGHT, PROMPT_HEIGHT = 600, 300


class CxrClipFindingsPlugin(BasePlugin):
    """Presents `cxrclip.Engine` results in the viewer."""

    def __init__(self, service_factory: Any = None, settings: QSettings | None = None) -> None:
        super().__init__()
        self._service_factory = service_factory
        self._settings = settings
        self.controller: FindingsController | None = None
        self.docks: dict[str, Any] = {}

    # ----- activation ---------------------------------------------------------------
    def activate(self, host: PluginHost) -> None:
        """Build panels and menu, then start loading the model in the worker."""
        super().activate(host)
        c = self.controller = FindingsController(host, MANIFEST, self._service_factory)
        self.findings_panel = FindingsPanel(c)
        self.prompt_panel = PromptPanel(c)
        self.report_panel = ReportPanel(c, self.export_json_dialog, self.export_sr_dialog)
        self.model_panel = ModelPanel(c, self.load_model_dialog, self.convert_dialog)
        for title, panel in (("Findings", self.findings_panel), ("Prompt", self.prompt_panel),
                             ("Report", self.report_panel), ("Model", self.model_panel)):
            self.docks[title] = host.add_dock_panel(title, panel, "right")
        self._arrange_docks()
        self._add_actions(host)
        model_dir, source = resolve_model_dir(self._saved_model_dir())
        log.info("CXR-CLIP model from %s: %s", source, model_dir)
        c.load_model(model_dir)

    def _arrange_docks(self) -> None:
        window = getattr(self.host, "main_window", None)
        if window is None or not hasattr(window, "tabifyDockWidget"):
            return
        window.tabifyDockWidget(self.docks["Prompt"], self.docks["Report"])
        window.tabifyDockWidget(self.docks["Findings"], self.docks["Model"])
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
        c = self.controller
        host.add_menu_action(MENU, "Toggle Heatmap", c.toggle_heatmap, "Shift+H")
        host.add_menu_action(MENU, "Load Model…", self.load_model_dialog)
        host.add_menu_action(MENU, "Convert Official Checkpoint…", self.convert_dialog)
        host.add_menu_action(MENU, "Export Findings as JSON…",
                             lambda: self.export_json_dialog(self.report_panel.include_ids.isChecked()))
        host.add_menu_action(MENU, "Export Findings as DICOM SR…", self.export_sr_dialog)

    def _qsettings(self) -> QSettings:
        """The viewer's settings store when it has one (so tests stay sandboxed)."""
        if self._settings is None:
            shared = getattr(self._parent(), "settings", None)
            self._settings = shared if isinstance(shared, QSettings) else QSettings("cxrclip", "viewer")
        return self._settings

    def _saved_model_dir(self) -> str | None:
        value = self._qsettings().value(SETTINGS_KEY_MODEL)
        return str(value) if value else None

    # ----- hooks --------------------------------------------------------------------
    def study_opened(self, study: StudyHandle) -> None:
        self.controller.open_study(study)

    def study_not_applicable(self, study: StudyHandle, reason: str) -> None:
        self.controller.study_not_applicable(study, reason)

    def view_selected(self, view: ViewHandle) -> None:
        self.controller.select_view(view.view_id)

    def study_closed(self, study: StudyHandle) -> None:
        if self.controller.study is not None and self.controller.study.handle is study:
            self.controller.close_study()

    def deactivate(self) -> None:
        if self.controller is not None:
            self.controller.shutdown()

    # ----- model loading / conversion ---------------------------------------------------
    def load_model(self, model_dir: str | Path, remember: bool = True) -> None:
        """Load another model directory (in the worker); remembered in QSettings."""
        if remember:
            self._qsettings().setValue(SETTINGS_KEY_MODEL, str(model_dir))
        self.controller.load_model(model_dir)

    def load_model_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self._parent(), "Load CXR-CLIP model directory")
        if path:
            self.load_model(path)

    def convert_dialog(self) -> None:
        dialog = ConvertDialog(self._parent(), on_converted=self._offer_load)
        dialog.show()
        self._convert = dialog

    def _offer_load(self, out_dir: Path) -> None:
        answer = QMessageBox.question(self._parent(), "Model converted",
                                      f"Load the converted model from {out_dir}?")
        if answer == QMessageBox.StandardButton.Yes:
            self.load_model(out_dir)

    def _parent(self) -> Any:
        return getattr(self.host, "main_window", None)

    # ----- export ---------------------------------------------------------------------
    def export_data(self, sop_classes: dict[str, str] | None = None):
        """The current results as `ExportContent` (raises ValueError when nothing to export)."""
        c = self.controller
        if c.study is None:
            raise ValueError("open a study first: there is nothing to export")
        summary = c.service.summary() if c.service is not None else None
        model = ModelInfo(summary.name, summary.model_id, summary.backbone, summary.device,
                          summary.synthetic) if summary else ModelInfo("not loaded", "")
        views = [v.meta for v in c.study.views]
        return export_content(c.study.handle.study, views, model, c.findings,
                              self._kept_prompt_scores(), self.report_panel.draft.toPlainText(),
                              sop_classes)

    def _kept_prompt_scores(self) -> list:
        """Scores of the prompts the user kept (history) and the current one, not of every
        partial text scored while typing."""
        c = self.controller
        wanted = {t.lower() for t in self.prompt_panel.history.items()}
        if c.last_prompt:
            wanted.add(c.last_prompt[0].lower())
        return [s for name, s in c.prompt_scores.items() if name.lower() in wanted]

    def export_json(self, path: str | Path, include_identifiers: bool = False) -> Path:
        """Write the JSON export (identifiers only when asked)."""
        return write_export(self.export_data(), path, include_identifiers)

    def export_sr(self, path: str | Path) -> Path:
        """Write a DICOM SR referencing the study's DICOM views."""
        views = [v.meta for v in self.controller.study.views] if self.controller.study else []
        dicom = [v for v in views if v.source == "dicom"]
        if not dicom:
            raise SRExportError("a DICOM SR can only reference DICOM images; this study has "
                                "none - export JSON instead")
        evidence = read_evidence([v.path for v in dicom])
        classes = {str(ds.SOPInstanceUID): str(ds.SOPClassUID) for ds in evidence}
        return write_sr(self.export_data(classes), path, evidence)

    def export_json_dialog(self, include_identifiers: bool = False) -> None:
        path, _ = QFileDialog.getSaveFileName(self._parent(), "Export findings as JSON",
                                              "cxrclip_findings.json", "JSON (*.json)")
        if path:
            self._try_export(lambda: self.export_json(path, include_identifiers))

    def export_sr_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self._parent(), "Export findings as DICOM SR",
                                              "cxrclip_findings_sr.dcm", "DICOM (*.dcm)")
        if path:
            self._try_export(lambda: self.export_sr(path))

    def _try_export(self, write: Any) -> None:
        try:
            path = write()
        except (ValueError, OSError) as exc:
            QMessageBox.warning(self._parent(), "Export", str(exc))
            return
        self.host.status_message(f"Exported {path}")


def create_plugin() -> CxrClipFindingsPlugin:
    """Entry point named by the manifest's factory."""
    return CxrClipFindingsPlugin()
