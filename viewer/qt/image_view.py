"""One image viewport: paints a rendered view, handles the reading tools, draws overlays.

The widget owns a pure `DisplayState` and subscribes to its ``changed``
signal (napari's QtDims pattern): window changes re-render the display-size
copy, geometry changes only repaint. Mouse: right-drag window/level, left-drag
pan, wheel zoom about the cursor, double-click fit.
"""
from __future__ import annotations

import logging
import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap,
                           QTransform, QWheelEvent)
from PySide6.QtWidgets import QSizePolicy, QWidget

from viewer.model.display import DisplayState, relative_presets
from viewer.model.phi import ANONYMOUS, format_date, view_label
from viewer.model.study import Patient, Study, View, WindowPreset, format_age
from viewer.plugin_api import OverlayLayer
from viewer.qt.image_source import ViewPixels, WindowKey, render_shown, to_qimage, to_rgb32, window_key
from viewer.qt.measure_tools import MeasureController
from viewer.qt.overlay_paint import MARGIN, draw_colorbar, draw_corner_text
from viewer.qt.workers import run_in_pool
from viewer.render import display_range, pixel_value_at

log = logging.getLogger(__name__)

WHEEL_STEP = 2 ** 0.25  # zoom factor per wheel notch
FULL_RES_DELAY_MS = 60  # wait for the drag to settle before a full-resolution render
PRESET_NAMES = ("file", "full", "lung", "mediastinum", "bone")
BACKGROUND = QColor(0, 0, 0)
SELECTED = QColor(90, 160, 230)


class ImageView(QWidget):
    """Viewport for one `View`. Signals: ``selected(view_id)``, ``cursor_info(text)``,
    ``window_changed(view_id, center, width)``."""

    selected = Signal(str)
    cursor_info = Signal(str)
    window_changed = Signal(str, float, float)

    def __init__(self, view: View, parent: QWidget | None = None,
                 state: DisplayState | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.state = state if state is not None else DisplayState()  # the model's, when given
        self.state.changed.connect(self._on_state_changed)
        self.pixels: ViewPixels | None = None
        self.study: Study | None = None
        self.patient: Patient | None = None
        self.hide_phi = False
        self.show_overlays = True
        self.is_selected = False
        self.message = "Loading…"
        self.image_paints = 0  # paints that drew pixels (benchmarks wait on the first)
        self.layers: dict[str, OverlayLayer] = {}
        self._layer_images: dict[str, QImage] = {}
        self._small_uint8: np.ndarray | None = None
        self._small_key: WindowKey | None = None
        self._small_pixmap: QPixmap | None = None
        self._full: tuple[WindowKey, np.ndarray, QPixmap] | None = None
        self._full_request: WindowKey | None = None
        self._drag: tuple[Qt.MouseButton, QPointF] | None = None
        self._full_timer = QTimer(self, singleShot=True, interval=FULL_RES_DELAY_MS)
        self._full_timer.timeout.connect(self._request_full)
        self.setMouseTracking(True)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.number: int | None = None  # place in the study's reading order (neutral labels)
        self.caption = ""  # e.g. "PRIOR" in the comparison layout
        self.measure: MeasureController | None = None
        self.setObjectName(f"ImageView:{view.display_label}")

    # --- data ------------------------------------------------------------
    @property
    def view_id(self) -> str:
        return self.view.view_id

    def set_context(self, study: Study | None, patient: Patient | None,
                    number: int | None = None) -> None:
        """Study and patient whose fields appear in the corner overlays; ``number`` is
        the view's place in reading order (names an unlabelled view while PHI is hidden)."""
        self.study, self.patient, self.number = study, patient, number
        self.update()

    @property
    def label(self) -> str:
        """The view's label as shown now (no file name while PHI is hidden)."""
        return view_label(self.view, self.hide_phi, self.number)

    def set_pixels(self, pixels: ViewPixels) -> None:
        """Show prepared pixels (from the decode worker)."""
        self.pixels = pixels
        self.state.value_range = pixels.data_range
        self.message = ""
        key = self.current_key()
        if pixels.small_key == key:
            self._set_small(key, pixels.small_uint8, pixels.small_rgb32)
            pixels.small_rgb32 = None  # the pixmap has its own copy
        else:
            self._set_small(key, pixels.render_small(key))
        self._full = None
        window = self.effective_window()
        if window is not None:
            self.window_changed.emit(self.view_id, window[0], window[1])
        self.update()

    def set_error(self, text: str) -> None:
        """Show ``text`` instead of an image (decode failure)."""
        self.message = text
        self.update()

    def current_key(self) -> WindowKey:
        """VOI settings of the current state."""
        return window_key(self.state.window, self.state.voi_function, self.state.invert)

    def effective_window(self) -> tuple[float, float] | None:
        """(center, width) in modality values: the set window, the file's first one, or full range."""
        if self.state.window is not None:
            return self.state.window.center, self.state.window.width
        if self.pixels is None:
            return None
        windows = self.pixels.image.lut.windows
        if windows:
            return float(windows[0].center), float(windows[0].width)
        lo, hi = self.pixels.data_range
        return (lo + hi) / 2, max(hi - lo, 1e-6)

    def rendered_uint8(self) -> np.ndarray | None:
        """The current rendering at the best resolution available now (full when not downsampled)."""
        key = self.current_key()
        if self._full is not None and self._full[0] == key:
            return self._full[1]
        return self._small_uint8

    # --- presets and tools ------------------------------------------------
    def presets(self) -> dict[str, WindowPreset | None]:
        """Named window presets for this image (``file`` = None means the file's default)."""
        if self.pixels is None:
            return {}
        found = relative_presets(display_range(self.pixels.image), self.view.modality)
        named = {"file": None}
        for key, preset in zip(("full", "lung", "mediastinum", "bone"), found):
            named[key] = preset
        return named

    def apply_preset(self, name: str) -> None:
        """Apply a named preset (see `PRESET_NAMES`)."""
        if name not in PRESET_NAMES:
            raise ValueError(f"unknown window preset {name!r}; choose one of {PRESET_NAMES}")
        presets = self.presets()
        if not presets:
            return
        preset = presets[name]
        if preset is None:
            self.state.clear_window()
        else:
            self.state.apply_preset(preset)

    def set_hide_phi(self, hide: bool) -> None:
        self.hide_phi = hide
        self.update()

    def set_show_overlays(self, show: bool) -> None:
        self.show_overlays = show
        self.update()

    def set_selected(self, selected: bool) -> None:
        self.is_selected = selected
        self.update()

    def set_caption(self, text: str) -> None:
        """A word shown above the view label (e.g. "PRIOR")."""
        self.caption = text
        self.update()

    def attach_measurements(self, controller: MeasureController) -> None:
        """Draw and edit measurements through ``controller`` (see viewer.qt.measure_tools)."""
        self.measure = controller
        controller.store.tool_changed.connect(self._on_tool_changed)
        self._on_tool_changed(controller.store.tool)

    def _on_tool_changed(self, tool: str) -> None:
        self.setCursor(Qt.CursorShape.CrossCursor if tool != "navigate" else Qt.CursorShape.ArrowCursor)

    def release(self) -> None:
        """Unsubscribe from the model's display state and measurements (before deletion:
        the model outlives this widget)."""
        self.state.changed.disconnect_if_connected(self._on_state_changed)
        if self.measure is not None:
            self.measure.store.tool_changed.disconnect_if_connected(self._on_tool_changed)
            self.measure.detach()

    # --- plugin overlays -------------------------------------------------
    def set_overlay(self, layer: OverlayLayer) -> None:
        """Add or replace the overlay layer named ``layer.name``."""
        self.layers[layer.name] = layer
        self._layer_images[layer.name] = to_qimage(layer.rgba)
        self.update()

    def remove_overlay(self, name: str) -> None:
        """Remove a layer; unknown names are ignored."""
        self.layers.pop(name, None)
        self._layer_images.pop(name, None)
        self.update()

    # --- overlay text ----------------------------------------------------
    def overlay_lines(self) -> dict[str, list[str]]:
        """The corner texts as drawn now (PHI masked when hidden)."""
        top_left: list[str] = []
        if self.patient is not None:
            name = self.patient.name.replace("^", " ").strip()
            if not self.hide_phi:
                top_left.append(name or self.patient.patient_id)
                top_left.append(f"ID {self.patient.patient_id}")
            else:
                top_left.append(ANONYMOUS)
            age = "" if self.hide_phi else format_age(self.patient.age)
            sex_age = " ".join(p for p in (self.patient.sex, age) if p)
            if sex_age:
                top_left.append(sex_age)
        if self.study is not None and self.study.date:
            top_left.append(format_date(self.study.date, self.hide_phi))
        top_right = ([self.caption] if self.caption else []) + [self.label, " ".join(
            p for p in (self.view.modality, self.view.series_description) if p)]
        window = self.effective_window()
        bottom_left = [f"W {window[1]:.0f}  L {window[0]:.0f}" if window else ""]
        if self.state.invert:
            bottom_left.append("Inverted")
        transform = self._transform()
        zoom = f"Zoom {transform.zoom * 100:.0f}%" if transform else ""
        extra = []
        if self.state.rotation:
            extra.append(f"Rot {self.state.rotation}°")
        if self.state.flip_h:
            extra.append("Flip H")
        if self.state.flip_v:
            extra.append("Flip V")
        return {"top_left": top_left, "top_right": top_right, "bottom_left": bottom_left,
                "bottom_right": [" ".join(extra), zoom]}

    # --- geometry --------------------------------------------------------
    def image_size(self) -> tuple[float, float] | None:
        if self.pixels is None:
            return None
        w, h = self.pixels.full_size
        return float(w), float(h)

    def widget_size(self) -> tuple[float, float]:
        return float(self.width()), float(self.height())

    def _transform(self):
        size = self.image_size()
        return None if size is None else self.state.transform(size, self.widget_size())

    def current_transform(self):
        """The image <-> widget `ViewTransform` now, or None before pixels arrive."""
        return self._transform()

    def image_point(self, pos: QPointF) -> tuple[float, float] | None:
        """Image (x, y) under the widget point ``pos``."""
        transform = self._transform()
        return None if transform is None else transform.widget_to_image(pos.x(), pos.y())

    # --- rendering -------------------------------------------------------
    def _set_small(self, key: WindowKey, arr: np.ndarray, rgb32: np.ndarray | None = None) -> None:
        self._small_key, self._small_uint8 = key, arr
        self._small_pixmap = _to_pixmap(arr, rgb32)

    def _on_state_changed(self, kind: str) -> None:
        if kind in ("window", "invert", "reset") and self.pixels is not None:
            key = self.current_key()
            if key != self._small_key:
                self._set_small(key, self.pixels.render_small(key))
            window = self.effective_window()
            if window is not None:
                self.window_changed.emit(self.view_id, window[0], window[1])
        self.update()

    def _needs_full(self, zoom: float) -> bool:
        if self.pixels is None or not self.pixels.is_downsampled:
            return False
        small_w = self.pixels.small_uint8.shape[1]
        return zoom * self.pixels.full_size[0] > small_w * 1.1

    def _pixmap_for(self, zoom: float) -> QPixmap | None:
        key = self.current_key()
        if self._needs_full(zoom):
            if self._full is not None and self._full[0] == key:
                return self._full[2]
            if self._full_request != key:
                self._full_timer.start()
        return self._small_pixmap

    def _request_full(self) -> None:
        if self.pixels is None:
            return
        key, image = self.current_key(), self.pixels.image
        self._full_request = key

        def done(rendered: tuple[np.ndarray, np.ndarray]) -> None:
            if self._full_request == key:
                self._full_request = None
            if key == self.current_key():
                arr, rgb32 = rendered
                self._full = (key, arr, _to_pixmap(arr, rgb32))
                self.update()

        def render() -> tuple[np.ndarray, np.ndarray]:
            arr = render_shown(image, key)
            return arr, to_rgb32(arr)

        run_in_pool(render, done, self._full_failed)

    def _full_failed(self, exc: BaseException) -> None:
        self._full_request = None
        log.warning("full-resolution render of %s failed: %s", self.view_id, exc)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        transform = self._transform()
        if transform is None or self._small_pixmap is None:
            painter.setPen(QColor(170, 170, 170))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self.message)
        else:
            self._paint_image(painter, transform)
            self.image_paints += 1
            if self.measure is not None:
                self.measure.paint(painter, transform)
        if self.show_overlays:
            draw_corner_text(painter, QRectF(self.rect()), self.overlay_lines())
        if self.is_selected:
            painter.setPen(QPen(SELECTED, 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(QRectF(self.rect()).adjusted(1, 1, -1, -1))
        painter.end()

    def _paint_image(self, painter: QPainter, transform) -> None:
        width, height = self.pixels.full_size
        target = QRectF(0, 0, width, height)
        pixmap = self._pixmap_for(transform.zoom)
        painter.save()
        painter.setTransform(QTransform(*transform.matrix()))
        scale = transform.zoom * width / max(pixmap.width(), 1)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, scale < 2.0)
        painter.drawPixmap(target, pixmap, QRectF(pixmap.rect()))
        for name, layer in self.layers.items():
            if layer.visible and name in self._layer_images:
                painter.setOpacity(layer.opacity)
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
                image = self._layer_images[name]
                painter.drawImage(target, image, QRectF(image.rect()))
        painter.restore()
        bars = [layer.colorbar for layer in self.layers.values() if layer.visible and layer.colorbar]
        for index, bar in enumerate(bars):
            rect = QRectF(self.width() - 26 - index * 60, self.height() * 0.3, 12, self.height() * 0.4)
            draw_colorbar(painter, bar, rect, label_width=rect.right() - 2 * MARGIN)

    # --- mouse -----------------------------------------------------------
    def _measure_event(self, event: QMouseEvent, kind: str) -> bool:
        """Give a left-button event to the measurement controller; True when it used it."""
        if self.measure is None or self.pixels is None:
            return False
        pos = event.position()
        point = self.image_point(pos)
        if point is None:
            return False
        widget_pos = (pos.x(), pos.y())
        if kind == "move":
            left_down = bool(event.buttons() & Qt.MouseButton.LeftButton)
            return self.measure.move(point, left_down)
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        handler = self.measure.press if kind == "press" else self.measure.release
        return handler(point, widget_pos)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.selected.emit(self.view_id)
        used = self._measure_event(event, "press")
        self._drag = None if used else (event.button(), event.position())
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._drag = None
        self._measure_event(event, "release")
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.measure is not None and (self.measure.drawing or self.measure.store.tool != "navigate"):
            self.mousePressEvent(event)  # a quick second click while drawing
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self.state.set_fit(True)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        if self._drag is None and self._measure_event(event, "move"):
            self._report_cursor(pos)
            event.accept()
            return
        if self._drag is not None and self.pixels is not None:
            button, last = self._drag
            dx, dy = pos.x() - last.x(), pos.y() - last.y()
            self._drag = (button, pos)
            if button == Qt.MouseButton.RightButton:
                inverted = self.pixels.image.lut.inverted != self.state.invert
                self.state.drag_window(dx, dy, self.pixels.data_range,
                                       start=self.effective_window(), inverted=inverted)
            elif button == Qt.MouseButton.LeftButton:
                self.state.pan_by(dx, dy, self.image_size(), self.widget_size())
        self._report_cursor(pos)
        event.accept()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        size = self.image_size()
        steps = event.angleDelta().y() / 120.0
        if size is None or steps == 0:
            return
        pos = event.position()
        self.state.zoom_at(WHEEL_STEP ** steps, (pos.x(), pos.y()), size, self.widget_size())
        event.accept()

    def leaveEvent(self, event) -> None:  # noqa: N802
        self.cursor_info.emit("")
        super().leaveEvent(event)

    def _report_cursor(self, pos: QPointF) -> None:
        point = self.image_point(pos)
        if point is None:
            return
        col, row = math.floor(point[0]), math.floor(point[1])
        width, height = self.pixels.full_size
        if not (0 <= col < width and 0 <= row < height):
            self.cursor_info.emit("")
            return
        stored, value = pixel_value_at(self.pixels.image, row, col)
        self.cursor_info.emit(f"{self.label}  row {row}, col {col}  "
                              f"stored {_num(stored)}  value {_num(value)}")


def _num(value: float) -> str:
    value = float(value)
    return f"{value:.0f}" if value.is_integer() else f"{value:.4g}"


def _to_pixmap(arr: np.ndarray, rgb32: np.ndarray | None = None) -> QPixmap:
    """Gray HxW or colour HxWx3 uint8 (or its ``to_rgb32`` form, made in a worker) -> pixmap."""
    rgb32 = to_rgb32(arr) if rgb32 is None else rgb32
    image = QImage(rgb32.data, rgb32.shape[1], rgb32.shape[0], rgb32.strides[0],
                   QImage.Format.Format_RGB32)
    # The raster pixmap would share the numpy buffer, so hand it a Qt-owned copy.
    return QPixmap.fromImage(image.copy())
