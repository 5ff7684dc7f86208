"""Handlers of the View, Window, Measure, Tools and Help actions of the main window.

Each ``_on_<key>`` matches an `ActionSpec` key in `viewer.qt.shortcuts.ACTIONS`
(``tool_<kind>`` keys pick a measurement tool, see `_handler`); the tools act on
the selected image view. State changes go to the application model
(``self.model``). Kept apart from `MainWindow` so the window module holds only
construction and the wiring of the model.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QMessageBox

from viewer.model.viewer_model import NoPriorError
from viewer.qt.dialogs import ShortcutsDialog
from viewer.qt.file_actions import FileActionsMixin
from viewer.qt.tag_browser import TagBrowserDialog

if TYPE_CHECKING:
    from viewer.qt.image_view import ImageView

APP_TITLE = "CXR-CLIP Viewer"


class WindowActionsMixin(FileActionsMixin):
    """Reading-tool, measurement, layout, preset, tag-browser and help handlers for `MainWindow`."""

    def _handler(self, key: str) -> Callable:
        """The handler of action ``key``: ``_on_<key>``, or picking tool ``<kind>`` for ``tool_<kind>``."""
        if key.startswith("tool_"):
            tool = key.removeprefix("tool_")
            return lambda checked: checked and self.model.measurements.set_tool(tool)
        return getattr(self, f"_on_{key}")

    def _targets(self) -> list[ImageView]:
        """The views a tool acts on: the selected one."""
        view = self.selected_image_view()
        return [view] if view is not None else []

    def _on_fit(self) -> None:
        for view in self._targets():
            view.state.set_fit(True)

    def _on_one_to_one(self) -> None:
        for view in self._targets():
            view.state.set_zoom(1.0)

    def _zoom(self, factor: float) -> None:
        for view in self._targets():
            if view.image_size() is not None:
                w, h = view.widget_size()
                view.state.zoom_at(factor, (w / 2, h / 2), view.image_size(), (w, h))

    def _on_zoom_in(self) -> None:
        self._zoom(1.25)

    def _on_zoom_out(self) -> None:
        self._zoom(0.8)

    def _on_rotate_cw(self) -> None:
        for view in self._targets():
            view.state.rotate(1)

    def _on_rotate_ccw(self) -> None:
        for view in self._targets():
            view.state.rotate(-1)

    def _on_flip_h(self) -> None:
        for view in self._targets():
            view.state.flip_horizontal()

    def _on_flip_v(self) -> None:
        for view in self._targets():
            view.state.flip_vertical()

    def _on_invert(self) -> None:
        for view in self._targets():
            view.state.toggle_invert()

    def _on_reset(self) -> None:
        for view in self._targets():
            view.state.reset()

    def _on_sync_wl(self, enabled: bool) -> None:
        self.model.set_sync_window(enabled)

    def _on_compare_prior(self, on: bool) -> None:
        try:
            self.model.set_layout("compare" if on else "study")
        except NoPriorError as exc:
            self._on_model_layout(self.model.layout)  # untick
            self.statusBar().showMessage(f"Compare with prior: {exc}", 6000)

    def _on_delete_measurement(self) -> None:
        if not self.model.measurements.remove_selected():
            self.statusBar().showMessage("Delete: no measurement is selected (click one first)", 4000)

    def _on_hide_phi(self, hide: bool) -> None:
        self.set_hide_phi(hide)

    def _on_overlays(self, show: bool) -> None:
        self.presenter.set_show_overlays(show)

    def _on_next_view(self) -> None:
        ids = [h.view_id for h in self.model.shown_views()]
        if ids:
            index = ids.index(self.selected_view_id) if self.selected_view_id in ids else -1
            self.select_view(ids[(index + 1) % len(ids)])

    def _step_study(self, step: int) -> None:
        """Show the next/previous study in the Study List's order (filter and sorting)."""
        study = self.model.adjacent_study(step, self.study_list.visible_order() or None)
        if study is not None:
            self.show_study(study)

    def _on_next_study(self) -> None:
        self._step_study(1)

    def _on_previous_study(self) -> None:
        self._step_study(-1)

    def _preset(self, name: str) -> None:
        for view in self._targets():
            view.apply_preset(name)

    def _on_preset_file(self) -> None:
        self._preset("file")

    def _on_preset_full(self) -> None:
        self._preset("full")

    def _on_preset_lung(self) -> None:
        self._preset("lung")

    def _on_preset_mediastinum(self) -> None:
        self._preset("mediastinum")

    def _on_preset_bone(self) -> None:
        self._preset("bone")

    def _on_tag_browser(self) -> None:
        if self._tag_dialog is None:
            self._tag_dialog = TagBrowserDialog(self)
            self._tag_dialog.browser.set_hide_phi(self.hide_phi)
        self._tag_dialog.show()
        self._tag_dialog.raise_()
        self._load_tags()

    def _load_tags(self) -> None:
        handle = self.selected_view_handle()
        browser = self._tag_dialog.browser
        if handle is None:
            return
        label = self.view_label(handle.meta)
        if handle.meta.source != "dicom":
            browser.clear_rows(f"{label}: not a DICOM file (no tags)")
            return
        browser.load_file(handle.meta.path, label)

    def _on_shortcuts(self) -> None:
        ShortcutsDialog(self.plugin_host.actions, self).exec()

    def _on_about(self) -> None:
        QMessageBox.about(self, "About", f"{APP_TITLE}\nChest X-ray viewer with CXR-CLIP plugins.\n"
                          "Not for clinical use.")


