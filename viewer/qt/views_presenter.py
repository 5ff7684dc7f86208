"""Presents the model's shown views: one `ImageView` per view of the layout.

Subscribes to the `ViewerModel` (study opened/closed, layout, selection,
Hide-PHI) and keeps the `ViewsPanel` in step: builds the image views with the
model's display states, decodes their pixels in workers (results of a
superseded layout are dropped), shows decode errors, re-applies plugin
overlays and hands thumbnails to the study browser. ``study_ready(study_uid)``
fires once every shown view has pixels or failed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import QObject, Signal

from viewer.model.study import View
from viewer.model.viewer_model import ViewerModel
from viewer.plugin_api import OverlayLayer, StudyHandle, ViewHandle
from viewer.qt.image_source import ViewPixels, prepare_view
from viewer.qt.image_view import ImageView
from viewer.qt.measure_tools import MeasureController
from viewer.qt.views_panel import ViewsPanel
from viewer.qt.workers import run_in_pool

PRIORITY_VIEW = 10  # shown views decode before other studies' thumbnails


class ViewsPresenter(QObject):
    """Keeps ``panel`` showing ``model.shown_views()``.

    Signals: ``study_ready(study_uid)``, ``cursor_info(text)``,
    ``window_changed(view_id, center, width)``, ``thumbnail_ready(view_id, uint8)``,
    ``view_failed(view, message)``.
    """

    study_ready = Signal(str)
    cursor_info = Signal(str)
    window_changed = Signal(str, float, float)
    thumbnail_ready = Signal(str, object)
    view_failed = Signal(object, str)

    def __init__(self, model: ViewerModel, panel: ViewsPanel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model, self.panel = model, panel
        self.show_overlays = True
        self.overlays_for: Callable[[str], Iterable[OverlayLayer]] = lambda _view_id: ()
        self._gen = 0
        self._pending: set[str] = set()
        self._errors: dict[str, str] = {}
        model.study_opened.connect(lambda _study: self.rebuild())
        model.layout_changed.connect(lambda _layout: self.rebuild())
        model.study_closed.connect(self._on_study_closed)
        model.selection_changed.connect(self._on_selection)
        model.phi_hidden_changed.connect(self._on_phi)

    # --- queries ------------------------------------------------------------
    @property
    def views(self) -> list[ImageView]:
        return list(self.panel.views)

    def image_view(self, view_id: str | None) -> ImageView | None:
        return next((v for v in self.panel.views if v.view_id == view_id), None)

    def error_text(self, view_id: str) -> str:
        """The decode error shown in ``view_id`` (identifiers masked while hidden)."""
        text = self._errors.get(view_id, "")
        return self.model.redactor.scrub(text) if self.model.hide_phi else text

    def set_show_overlays(self, show: bool) -> None:
        self.show_overlays = show
        for view in self.panel.views:
            view.set_show_overlays(show)

    # --- model events -------------------------------------------------------
    def rebuild(self) -> None:
        """Replace the image views by those of the model's layout and start decoding."""
        self._gen += 1
        self._errors.clear()
        handles = self.model.shown_views()
        widgets = [self._make_view(h) for h in handles]
        self._release_views()
        self.panel.set_views(widgets)
        self._pending = {w.view_id for w in widgets}
        for handle in handles:
            self._decode(handle, self._gen)
        for widget in widgets:
            widget.set_selected(widget.view_id == self.model.selected_view_id)

    def _on_study_closed(self, _study: StudyHandle) -> None:
        self._gen += 1
        self._errors.clear()
        self._pending.clear()
        self._release_views()
        self.panel.clear()

    def _on_selection(self, view_id: str | None) -> None:
        for view in self.panel.views:
            view.set_selected(view.view_id == view_id)

    def _on_phi(self, hide: bool) -> None:
        for view in self.panel.views:
            view.set_hide_phi(hide)
            if view.view_id in self._errors:
                view.set_error(self.error_text(view.view_id))

    def _release_views(self) -> None:
        for view in self.panel.views:
            view.release()

    # --- building -----------------------------------------------------------
    def _make_view(self, handle: ViewHandle) -> ImageView:
        model = self.model
        study = model.study_of(handle.view_id)
        widget = ImageView(handle.meta, state=model.display_state(handle.view_id))
        widget.set_context(study.study, study.study.patient, model.view_number(handle.meta))
        if study is model.prior_study:
            widget.set_caption("PRIOR")
        elif model.layout == "compare":
            widget.set_caption("CURRENT")
        widget.set_hide_phi(model.hide_phi)
        widget.set_show_overlays(self.show_overlays)
        widget.selected.connect(model.select_view)
        widget.cursor_info.connect(self.cursor_info)
        widget.window_changed.connect(self.window_changed)
        widget.attach_measurements(MeasureController(model.measurements, widget))
        return widget

    def _decode(self, handle: ViewHandle, gen: int) -> None:
        run_in_pool(lambda h=handle: prepare_view(h.meta, h.decoded()),
                    lambda pixels: self._ready(gen, pixels),
                    lambda exc, v=handle.meta: self._failed(gen, v, exc), priority=PRIORITY_VIEW)

    def _ready(self, gen: int, pixels: ViewPixels) -> None:
        if gen != self._gen:  # superseded; the thumbnail is still good
            self.thumbnail_ready.emit(pixels.view.view_id, pixels.thumb_uint8)
            return
        view = self.image_view(pixels.view.view_id)
        if view is None:
            return
        view.set_pixels(pixels)
        for layer in self.overlays_for(view.view_id):
            view.set_overlay(layer)
        self.thumbnail_ready.emit(view.view_id, pixels.thumb_uint8)
        self._settled(view.view_id)

    def _failed(self, gen: int, view: View, exc: BaseException) -> None:
        if gen != self._gen:
            return
        self._errors[view.view_id] = f"Cannot show this image:\n{exc}"
        widget = self.image_view(view.view_id)
        if widget is not None:
            widget.set_error(self.error_text(view.view_id))
        self.view_failed.emit(view, str(exc))
        self._settled(view.view_id)

    def _settled(self, view_id: str) -> None:
        self._pending.discard(view_id)
        if not self._pending and self.model.current_study is not None:
            self.study_ready.emit(self.model.current_study.study_uid)
