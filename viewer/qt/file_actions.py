"""Handlers of the File menu of the main window: open, export, close, quit.

Each ``_on_<key>`` matches an `ActionSpec` key in `viewer.qt.shortcuts.ACTIONS`.
Kept apart from `MainWindow` so that the window module holds only construction
and the wiring of the application model.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from viewer.model.phi import path_label
from viewer.plugin_api import ExportFormat
from viewer.qt.export import write_png
from viewer.qt.workers import run_in_pool


class FileActionsMixin:
    """Open/export/close handlers for `MainWindow`."""

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

    def _on_close_study(self) -> None:
        self.close_study()

    def _on_quit(self) -> None:
        self.close()

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
            self.plugin_host.run_safely(f"export {fmt.name}", lambda: fmt.write(handle, Path(path)))

    def _on_export_measurements(self) -> None:
        self.measurements_panel.export_dialog()

    def _on_export_measurements_sr(self) -> None:
        self.measurements_panel.sr_dialog()
