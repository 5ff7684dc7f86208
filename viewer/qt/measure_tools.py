"""Drawing, selecting, moving and painting measurements on one image view.

A `MeasureController` belongs to one `ImageView`. It reads and writes the
`MeasurementStore` of the application model and works in image pixel
coordinates (``ImageView.image_point``), so measurements stay on the anatomy
through zoom, pan, rotation and flips; only painting maps them to the widget
through the view's transform.

Gestures (left button; the right button always windows):
- on a control point of a measurement: drag the point;
- on a measurement: select it and drag it;
- elsewhere with a tool active: draw. Ruler, rectangle, ellipse: drag from
  one end (corner) to the other. Angle: drag the first arm (end to vertex),
  then click the end of the second arm. CTR: drag the heart's width, then
  the thorax's width (both kept horizontal in image rows).
- elsewhere without a tool: deselect, and the view pans.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPainter, QPen, QTransform

from viewer.model.measurement_store import MeasurementStore
from viewer.model.measurements import POINTS_NEEDED, ROI_KINDS, Measurement, box

if TYPE_CHECKING:
    from viewer.model.display import ViewTransform
    from viewer.qt.image_view import ImageView

Point = tuple[float, float]
COLOUR = QColor(255, 214, 10)
SELECTED_COLOUR = QColor(80, 220, 255)
DRAFT_COLOUR = QColor(255, 140, 60)
HANDLE_RADIUS = 7.0  # widget pixels within which a control point is grabbed
LINE_TOLERANCE = 6.0  # widget pixels within which a line is hit
MIN_DRAG = 3.0  # widget pixels: shorter drags draw nothing


def _segment_distance(p: Point, a: Point, b: Point) -> float:
    ax, ay, bx, by = *a, *b
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / length2))
    return math.hypot(p[0] - (ax + t * dx), p[1] - (ay + t * dy))


def segments(m_kind: str, points: tuple[Point, ...] | list[Point]) -> list[tuple[Point, Point]]:
    """The line segments drawn for a measurement (image coordinates)."""
    if m_kind == "angle":
        return [(points[0], points[1]), (points[1], points[2])][:len(points) - 1]
    if m_kind == "ctr":
        return [(points[i], points[i + 1]) for i in range(0, len(points) - 1, 2)]
    if m_kind in ROI_KINDS:
        left, top, right, bottom = box(points[0], points[1])
        corners = [(left, top), (right, top), (right, bottom), (left, bottom)]
        return [(corners[i], corners[(i + 1) % 4]) for i in range(4)]
    return [(points[0], points[1])]


class MeasureController:
    """Mouse handling and painting of the measurements of one image view."""

    def __init__(self, store: MeasurementStore, view: ImageView) -> None:
        self.store, self.view = store, view
        self.draft: list[Point] | None = None
        self._grab: tuple[str, int | None, Point] | None = None  # (id, point index or None, last)
        for signal in (store.changed, store.selection_changed, store.tool_changed):
            signal.connect(self._repaint)
        view.destroyed.connect(self.detach)

    def detach(self, *_args) -> None:
        """Stop listening to the store (the view is gone)."""
        for signal in (self.store.changed, self.store.selection_changed, self.store.tool_changed):
            signal.disconnect_if_connected(self._repaint)

    def _repaint(self, *_args) -> None:
        try:
            self.view.update()
        except RuntimeError:  # the C++ widget was deleted before `destroyed` reached us
            self.detach()

    @property
    def drawing(self) -> bool:
        return self.draft is not None

    def measurements(self) -> list[Measurement]:
        return self.store.for_view(self.view.view_id)

    # --- hit testing -------------------------------------------------------------
    def _widget(self, transform: ViewTransform, p: Point) -> Point:
        return transform.image_to_widget(*p)

    def hit(self, widget_pos: Point) -> tuple[Measurement, int | None] | None:
        """The measurement under a widget point and the control point grabbed (or None)."""
        transform = self.view.current_transform()
        if transform is None:
            return None
        ordered = sorted(self.measurements(), key=lambda m: m.measurement_id != self.store.selected_id)
        for m in ordered:
            for index, p in enumerate(m.points):
                if math.dist(self._widget(transform, p), widget_pos) <= HANDLE_RADIUS:
                    return m, index
        for m in ordered:
            for a, b in segments(m.kind, m.points):
                wa, wb = self._widget(transform, a), self._widget(transform, b)
                if _segment_distance(widget_pos, wa, wb) <= LINE_TOLERANCE:
                    return m, None
        return None

    # --- mouse -------------------------------------------------------------------
    def press(self, image_pos: Point, widget_pos: Point) -> bool:
        """Left press; True when the press was used (no pan)."""
        if self.draft is not None:
            self._continue_draft(image_pos)
            return True
        found = self.hit(widget_pos)
        if found is not None:
            m, index = found
            self.store.select(m.measurement_id)
            self._grab = (m.measurement_id, index, image_pos)
            return True
        self.store.select(None)
        if self.store.tool == "navigate":
            return False
        self.draft = [image_pos, image_pos]
        self._press_widget = widget_pos
        self.view.update()
        return True

    def _continue_draft(self, p: Point) -> None:
        kind = self.store.tool
        if kind == "ctr" and len(self.draft) == 2:
            self.draft += [p, p]
        else:
            self.draft[-1] = self._constrain(kind, p)
        self.view.update()

    def _constrain(self, kind: str, p: Point) -> Point:
        """CTR widths stay horizontal: a width's end keeps its start's row."""
        if kind == "ctr" and self.draft is not None and len(self.draft) % 2 == 0:
            return (p[0], self.draft[-2][1])
        return p

    def move(self, image_pos: Point, buttons_down: bool) -> bool:
        """Mouse move; True when it was used."""
        if self.draft is not None:
            if buttons_down or self.store.tool == "angle":
                self.draft[-1] = self._constrain(self.store.tool, image_pos)
                self.view.update()
            return True
        if self._grab is None:
            return False
        measurement_id, index, last = self._grab
        m = self.store.get(measurement_id)
        if m is None:
            self._grab = None
            return False
        if index is None:
            m = m.moved(image_pos[0] - last[0], image_pos[1] - last[1])
        elif m.kind == "ctr":  # a width stays horizontal: its other end follows the row
            partner = index ^ 1
            m = m.with_point(index, image_pos).with_point(partner, (m.points[partner][0], image_pos[1]))
        else:
            m = m.with_point(index, image_pos)
        self.store.update(m)
        self._grab = (measurement_id, index, image_pos)
        return True

    def release(self, image_pos: Point, widget_pos: Point) -> bool:
        """Left release; finishes a drag or a draft step. True when used."""
        if self._grab is not None:
            self._grab = None
            return True
        if self.draft is None:
            return False
        kind = self.store.tool
        self.draft[-1] = self._constrain(kind, image_pos)
        if len(self.draft) == 2 and math.dist(widget_pos, self._press_widget) < MIN_DRAG:
            self.cancel()  # a click, not a drag: draw nothing
            return True
        if len(self.draft) == POINTS_NEEDED[kind]:
            self._finish(kind)
        elif kind == "angle":
            self.draft.append(self.draft[-1])
        self.view.update()
        return True

    def _finish(self, kind: str) -> None:
        points, self.draft = tuple(self.draft), None
        m = self.store.add(Measurement(kind, self.view.view_id, points))
        self.store.select(m.measurement_id)

    def cancel(self) -> None:
        """Drop a measurement being drawn."""
        self.draft = None
        self.view.update()

    # --- painting ----------------------------------------------------------------
    def paint(self, painter: QPainter, transform: ViewTransform) -> None:
        """Draw every measurement of the view (and the draft) over the image."""
        for m in self.measurements():
            selected = m.measurement_id == self.store.selected_id
            colour = SELECTED_COLOUR if selected else COLOUR
            self._paint_shape(painter, transform, m.kind, list(m.points), colour, selected)
            self._paint_label(painter, transform, m, colour)
        if self.draft is not None and self.store.tool in POINTS_NEEDED:
            self._paint_shape(painter, transform, self.store.tool, self.draft, DRAFT_COLOUR, False)

    def _paint_shape(self, painter: QPainter, transform: ViewTransform, kind: str,
                     points: list[Point], colour: QColor, handles: bool) -> None:
        painter.save()
        pen = QPen(colour, 1.6)
        pen.setCosmetic(True)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if kind == "ellipse" and len(points) == 2:
            painter.setTransform(QTransform(*transform.matrix()))
            left, top, right, bottom = box(points[0], points[1])
            painter.drawEllipse(QRectF(left, top, right - left, bottom - top))
            painter.resetTransform()
        else:
            for a, b in segments(kind, points):
                painter.drawLine(QPointF(*transform.image_to_widget(*a)),
                                 QPointF(*transform.image_to_widget(*b)))
        if handles or kind == "ctr":
            painter.setBrush(colour)
            for p in points:
                painter.drawEllipse(QPointF(*transform.image_to_widget(*p)), 3.0, 3.0)
        painter.restore()

    def _paint_label(self, painter: QPainter, transform: ViewTransform, m: Measurement,
                     colour: QColor) -> None:
        text = self.store.result(m).text
        anchor = max((transform.image_to_widget(*p) for p in m.points), key=lambda q: (q[0], -q[1]))
        metrics = QFontMetricsF(painter.font())
        width, height = metrics.horizontalAdvance(text) + 8, metrics.height() + 4
        x = anchor[0] + 8  # right of the shape's rightmost point, else left of it
        if x + width > self.view.width() - 2:
            x = anchor[0] - width - 8
        x = min(max(x, 2.0), max(self.view.width() - width - 2, 2.0))
        y = min(max(anchor[1] - height - 4, 2.0), max(self.view.height() - height - 2, 2.0))
        rect = QRectF(x, y, width, height)
        painter.save()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 170))
        painter.drawRoundedRect(rect, 3, 3)
        painter.setPen(colour)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()
