"""The plugin's exports: JSON, DICOM SR (in the background) and the heatmap PNG.

Every export names one study and reads that study's results from the
controller's `ResultsStore` - never from the widgets - so a draft written for
one study cannot land in another study's file. Before writing, the user is
warned about a draft with flagged contradictions, and about identifiers when
"Include patient identifiers" is ticked while the viewer hides PHI. Default
file names carry the study date and a short hash of the StudyInstanceUID, and
never overwrite an existing file.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QFileDialog, QMessageBox

from plugins.cxrclip_findings.export_build import (
    default_export_stem, export_content, read_sop_classes)
from plugins.cxrclip_findings.export_data import ExportContent, ModelInfo, SRExportError
from plugins.cxrclip_findings.export_json import write_export
from plugins.cxrclip_findings.export_runner import ExportRunner
from viewer.io.private_files import free_path
from viewer.model.deidentify import read_evidence
from plugins.cxrclip_findings.heatmap_png import write_heatmap_png
from plugins.cxrclip_findings.study_state import study_key
from viewer.plugin_api import ExportFormat, ViewHandle

if TYPE_CHECKING:
    from plugins.cxrclip_findings.plugin import CxrClipFindingsPlugin

log = logging.getLogger(__name__)
SETTINGS_KEY_EXPORT_DIR = "cxrclip_findings/export_dir"
Button = QMessageBox.StandardButton


class Exports:
    """Builds and writes the exports of the open study; see the module docstring."""

    def __init__(self, plugin: CxrClipFindingsPlugin) -> None:
        self.plugin = plugin
        self.runner = ExportRunner(plugin.parent_widget)
        self.runner.finished.connect(self._finished)
        self.runner.failed.connect(self._failed)
        self.runner.cancelled.connect(lambda: self._status("Export cancelled"))
        self.last_seconds: float | None = None

    @property
    def controller(self) -> Any:
        return self.plugin.controller

    # ----- content ----------------------------------------------------------------
    def _study(self, study_uid: str | None) -> Any:
        c = self.controller
        if c.study is None:
            raise ValueError("open a study first: there is nothing to export")
        if study_uid is not None and study_uid != c.study.uid:
            raise ValueError(f"study {study_key(study_uid)} is not the open study "
                             f"({study_key(c.study.uid)}); open it to export its results")
        return c.study

    def _model_info(self) -> ModelInfo:
        service = self.controller.service
        if service is None:
            return ModelInfo("not loaded", "")
        s = service.summary()
        return ModelInfo(s.name, s.model_id, s.backbone, s.device, s.synthetic, s.intended_use,
                         dict(getattr(s, "operating_points", {}) or {}))

    def snapshot(self, study_uid: str | None = None) -> Callable[[dict[str, str] | None],
                                                                 ExportContent]:
        """Freeze the named study's results now (UI thread); the returned function builds
        the `ExportContent` from them later, on any thread, given the SOP classes."""
        state = self._study(study_uid)
        results = self.controller.results.get(state.uid)
        study, views = state.handle.study, [v.meta for v in state.views]
        model, findings = self._model_info(), list(results.findings)
        prompts, draft = self._kept_prompt_scores(results), results.draft
        return lambda classes: export_content(study, views, model, findings, prompts, draft,
                                              classes)

    def content(self, study_uid: str | None = None) -> ExportContent:
        """The open study's export content, SOP classes read from the headers."""
        build = self.snapshot(study_uid)
        return build(read_sop_classes([v.meta for v in self.controller.study.views]))

    def _kept_prompt_scores(self, results: Any) -> list:
        """Scores of the prompts the user kept (history) and the current one, not of every
        partial text scored while typing."""
        wanted = {t.lower() for t in self.plugin.prompt_panel.history.items()}
        if self.controller.last_prompt:
            wanted.add(self.controller.last_prompt[0].lower())
        return [s for name, s in results.prompt_scores.items() if name.lower() in wanted]

    # ----- writing ----------------------------------------------------------------
    def write_json(self, path: str | Path, include_identifiers: bool = False,
                   study_uid: str | None = None) -> Path:
        """Write the JSON export now (fast: no image is read beyond its SOP class)."""
        return write_export(self.content(study_uid), path, include_identifiers)

    def start_sr(self, path: str | Path, include_identifiers: bool = False,
                 study_uid: str | None = None) -> bool:
        """Build and write the DICOM SR in the background (progress dialog after 0.5 s).
        Returns False when another export is still running."""
        state = self._study(study_uid)
        dicom = [v.meta for v in state.views if v.meta.source == "dicom"]
        if not dicom:
            raise SRExportError("a DICOM SR can only reference DICOM images; this study has "
                                "none - export JSON instead")
        build = self.snapshot(study_uid)

        def job(progress: Callable[[str], None]) -> Path:
            # highdicom (about 1 s to import, parts of it holding the GIL for 0.2 s) is
            # imported here, on the export thread, at the first SR export: never at start-up.
            from plugins.cxrclip_findings.export_sr import write_sr
            from viewer.model.sr_tables import preload_module_table

            progress("Reading the image headers")
            preload_module_table()  # highdicom's 22 MB table, parsed without freezing the UI
            evidence = read_evidence([v.path for v in dicom])
            classes = {str(ds.SOPInstanceUID): str(ds.SOPClassUID) for ds in evidence}
            return write_sr(build(classes), path, evidence, include_identifiers, progress)

        return self.runner.start("Exporting DICOM SR…", job)

    # ----- dialogs ----------------------------------------------------------------
    def ask(self, title: str, text: str, buttons: Any, default: Any) -> Any:
        """A question box (tests replace this)."""
        return QMessageBox.question(self.plugin.parent_widget(), title, text, buttons, default)

    def confirm(self, include_identifiers: bool) -> bool | None:
        """Warnings before an export: contradictions in the draft, identifiers with Hide-PHI
        on. Returns whether to include identifiers, or None to cancel."""
        c = self.controller
        flags = c.results.get(c.study.uid).contradictions if c.study is not None else []
        if flags:
            listed = "\n".join(f"\u2022 {f}" for f in flags[:5])
            answer = self.ask("Export", f"The draft has {len(flags)} flagged contradiction(s):\n"
                              f"{listed}\n\nExport it anyway?", Button.Yes | Button.No, Button.No)
            if answer != Button.Yes:
                return None
        if include_identifiers and self.plugin.phi_hidden:
            answer = self.ask(
                "Export", "Hide-PHI is on, but \u201cInclude patient identifiers\u201d is "
                "ticked: the file will carry the patient's name, ID, birth date and accession "
                "number.\n\nInclude them? (No exports without identifiers.)",
                Button.Yes | Button.No | Button.Cancel, Button.No)
            if answer == Button.Cancel:
                return None
            include_identifiers = answer == Button.Yes
        return include_identifiers

    def default_path(self, kind: str, suffix: str) -> Path:
        """A free file name in the last export folder, e.g. cxrclip_20240105_3fa2c1d9e0_sr.dcm."""
        folder = self.plugin._qsettings().value(SETTINGS_KEY_EXPORT_DIR) or str(Path.home())
        folder = Path(str(folder)) if Path(str(folder)).is_dir() else Path.home()
        return free_path(folder, default_export_stem(self.controller.study.handle.study, kind),
                         suffix)

    def _save_path(self, title: str, kind: str, suffix: str, pattern: str) -> str:
        path, _ = QFileDialog.getSaveFileName(self.plugin.parent_widget(), title,
                                              str(self.default_path(kind, suffix)), pattern)
        if path:
            self.plugin._qsettings().setValue(SETTINGS_KEY_EXPORT_DIR, str(Path(path).parent))
        return path

    def json_dialog(self, include_identifiers: bool = False) -> None:
        if not self._ready():
            return
        include = self.confirm(include_identifiers)
        if include is None:
            return
        path = self._save_path("Export findings as JSON", "findings", ".json", "JSON (*.json)")
        if path:
            self._try(lambda: self._finished(self.write_json(path, include), None))

    def sr_dialog(self, include_identifiers: bool = False) -> None:
        if not self._ready():
            return
        include = self.confirm(include_identifiers)
        if include is None:
            return
        path = self._save_path("Export findings as DICOM SR", "sr", ".dcm", "DICOM (*.dcm)")
        if path:
            self._try(lambda: self.start_sr(path, include) or self._warn(
                "Another export is still running; try again when it has finished."))

    def _ready(self) -> bool:
        if self.controller.study is None:
            self._warn("Open a study first: there is nothing to export.")
            return False
        return True

    def _try(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except (ValueError, OSError) as exc:
            self._warn(str(exc))

    def _warn(self, text: str) -> None:
        QMessageBox.warning(self.plugin.parent_widget(), "Export", text)

    def _status(self, text: str) -> None:
        host = self.plugin.host
        if host is not None:
            host.status_message(text)

    def _finished(self, path: Path, seconds: float | None) -> None:
        self.last_seconds = seconds
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        self._status(f"Exported {path}{took}")

    def _failed(self, message: str) -> None:
        self._warn(f"Export failed: {message}")

    # ----- heatmap PNG ------------------------------------------------------------
    def heatmap_png_format(self) -> ExportFormat:
        """File ▸ Export entry: the selected view with heatmap, colour bar and label."""
        return ExportFormat("CXR-CLIP view with heatmap", ".png", self.write_heatmap_png)

    def write_heatmap_png(self, view: ViewHandle, path: Path) -> Path:
        """Save ``view`` with its heatmap now (raises ValueError without a heatmap)."""
        layer = self.controller.layers.get(view.view_id)
        if layer is None:
            raise ValueError("no CXR-CLIP heatmap on this view: click a finding (or press "
                             "Heatmap for a prompt) first")
        target = self.controller.heatmap_target
        label = layer.colorbar.label if layer.colorbar is not None else layer.name
        if target is not None and target.kind == "finding":
            label = f"{target.label} \u2014 {label}"
        return write_heatmap_png(path, view.display_uint8(), layer, label)

    def shutdown(self) -> None:
        """Cancel and wait for a running export (app closing)."""
        self.runner.shutdown()
