"""How one view is displayed: window/level, invert, zoom, pan, rotation, flips.

``DisplayState`` is a pure model with a ``changed`` Signal; the Qt image view
subscribes and repaints. Geometry lives in ``ViewTransform``, a frozen value
with pure ``image_to_widget`` / ``widget_to_image`` maps so the math is tested
without Qt.

Coordinates: image points are ``(x, y)`` = (column, row) in pixel units with
``(0, 0)`` at the top-left corner of the first pixel; widget points are Qt
logical pixels, y down. The image centre is drawn at the widget centre plus
``pan``. The image is flipped (in its own axes), then rotated clockwise by
``rotation`` degrees, then scaled by ``zoom``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from viewer.model.events import Signal
from viewer.model.study import WindowPreset

ROTATIONS = (0, 90, 180, 270)
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
MIN_ZOOM, MAX_ZOOM = 1e-3, 1e3
# One full-range change of width/centre per this many pixels of right-drag.
DRAG_PIXELS_PER_RANGE = 1000.0


@dataclass(frozen=True)
class ViewTransform:
    """Affine image <-> widget map for one rotation/flip/zoom/pan state."""

    image_size: tuple[float, float]  # (width, height) in image pixels
    widget_size: tuple[float, float]  # (width, height) in widget pixels
    zoom: float = 1.0
    pan: tuple[float, float] = (0.0, 0.0)
    rotation: int = 0
    flip_h: bool = False
    flip_v: bool = False

    def linear(self) -> tuple[float, float, float, float]:
        """2x2 matrix ``(a, b, c, d)`` so that ``u = a*x + b*y``, ``v = c*x + d*y``."""
        sx = -1.0 if self.flip_h else 1.0
        sy = -1.0 if self.flip_v else 1.0
        cos_t, sin_t = _rotation_cos_sin(self.rotation)
        z = self.zoom
        # rotation R = [[cos, -sin], [sin, cos]] (clockwise on a y-down screen) times F
        return (z * cos_t * sx, -z * sin_t * sy, z * sin_t * sx, z * cos_t * sy)

    def matrix(self) -> tuple[float, float, float, float, float, float]:
        """``(m11, m12, m21, m22, dx, dy)`` in QTransform's order.

        Qt maps ``x' = m11*x + m21*y + dx``, ``y' = m12*x + m22*y + dy``.
        """
        a, b, c, d = self.linear()
        dx, dy = self.image_to_widget(0.0, 0.0)
        return (a, c, b, d, dx, dy)

    def image_to_widget(self, x: float, y: float) -> tuple[float, float]:
        a, b, c, d = self.linear()
        qx, qy = x - self.image_size[0] / 2, y - self.image_size[1] / 2
        return (a * qx + b * qy + self.widget_size[0] / 2 + self.pan[0],
                c * qx + d * qy + self.widget_size[1] / 2 + self.pan[1])

    def widget_to_image(self, u: float, v: float) -> tuple[float, float]:
        a, b, c, d = self.linear()
        det = a * d - b * c
        pu = u - self.widget_size[0] / 2 - self.pan[0]
        pv = v - self.widget_size[1] / 2 - self.pan[1]
        return ((d * pu - b * pv) / det + self.image_size[0] / 2,
                (-c * pu + a * pv) / det + self.image_size[1] / 2)


def _rotation_cos_sin(rotation: int) -> tuple[float, float]:
    return {0: (1.0, 0.0), 90: (0.0, 1.0), 180: (-1.0, 0.0), 270: (0.0, -1.0)}[rotation % 360]


def fit_zoom(image_size: tuple[float, float], widget_size: tuple[float, float],
             rotation: int = 0) -> float:
    """Largest zoom at which the (rotated) image fits the widget."""
    w, h = image_size
    if rotation % 180 == 90:
        w, h = h, w
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {image_size}")
    return max(min(widget_size[0] / w, widget_size[1] / h), MIN_ZOOM)


def validate_window(center: float, width: float) -> tuple[float, float]:
    """Return ``(center, width)`` as floats; width must be a finite number > 0."""
    if not (math.isfinite(center) and math.isfinite(width)):
        raise ValueError(f"window centre/width must be finite, got {center}/{width}")
    if width <= 0:
        raise ValueError(f"window width must be > 0, got {width}; use a positive width")
    return float(center), float(width)


def finite_range(data_range: tuple[float, float]) -> tuple[float, float]:
    """``data_range`` as floats, or (0, 1) when either end is NaN/inf (damaged data).

    Presets and drags derived from a non-finite range would be non-finite
    windows, which `validate_window` refuses; (0, 1) keeps the view usable.
    """
    try:
        lo, hi = float(data_range[0]), float(data_range[1])
    except (TypeError, ValueError, OverflowError):
        return 0.0, 1.0
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(hi - lo)):
        return 0.0, 1.0
    return lo, hi


def drag_to_window(center: float, width: float, dx: float, dy: float,
                   data_range: tuple[float, float], sensitivity: float = 1.0,
                   inverted: bool = False) -> tuple[float, float]:
    """Map a right-drag of ``(dx, dy)`` widget pixels to a new ``(center, width)``.

    Horizontal: right widens the window (less contrast). Vertical: down
    darkens the image, i.e. raises the centre, or lowers it when the image is
    shown inverted (MONOCHROME1 / INVERSE, ``inverted=True``). The step is
    proportional to the data range so 8-bit PNGs and 16-bit DICOMs feel the
    same: ``DRAG_PIXELS_PER_RANGE`` pixels change a value by the full range.
    Width never drops below 1 (or 1/1000 of the range for data spanning < 1000).
    """
    lo, hi = sorted(finite_range(data_range))
    span = max(hi - lo, 1e-6)
    step = span / DRAG_PIXELS_PER_RANGE * sensitivity
    min_width = min(1.0, span / 1000.0)
    new_width = max(width + dx * step, min_width)
    return center + (-dy if inverted else dy) * step, new_width


def relative_presets(data_range: tuple[float, float], modality: str = "",
                     ) -> list[WindowPreset]:
    """Full-range plus lung / mediastinum / bone presets.

    CT data are in Hounsfield units, so the classic absolute windows apply
    (lung -600/1500, mediastinum 40/400, bone 400/1800). Projection
    radiographs (CR/DX/PNG) are not calibrated, so the presets sit on the
    data range given in *display order* ``(darkest, brightest)`` (see
    ``viewer.render.display_range``; reversed for MONOCHROME1): lung = centre
    at 35 % of the way from dark to bright, width 50 % of the range;
    mediastinum = 60 % / 40 %; bone = 75 % / 30 %.
    """
    dark, bright = finite_range(data_range)
    span = max(abs(bright - dark), 1e-6)
    presets = [WindowPreset((dark + bright) / 2, span, "Full range")]
    if modality.upper() == "CT":
        return presets + [WindowPreset(-600, 1500, "Lung"), WindowPreset(40, 400, "Mediastinum"),
                          WindowPreset(400, 1800, "Bone")]
    for name, c, w in (("Lung", 0.35, 0.5), ("Mediastinum", 0.6, 0.4), ("Bone", 0.75, 0.3)):
        presets.append(WindowPreset(dark + c * (bright - dark), w * span, name))
    return presets


class DisplayState:
    """Window/level and geometry of one viewport; emits ``changed(kind)``.

    ``kind`` is ``"window"``, ``"invert"``, ``"transform"`` or ``"reset"`` so a
    view can skip re-rendering pixels when only the geometry moved.
    ``window_center``/``window_width`` of ``None`` mean "file default".
    """

    def __init__(self) -> None:
        self.changed = Signal()
        # (min, max) modality values of the shown image once known; lets a relative
        # `WindowSync` map a window between images of different value scales
        self.value_range: tuple[float, float] | None = None
        self._set_defaults()

    def _set_defaults(self) -> None:
        self.window_center: float | None = None
        self.window_width: float | None = None
        self.voi_function: str | None = None
        self.invert = False
        self.zoom = 1.0
        self.pan: tuple[float, float] = (0.0, 0.0)
        self.rotation = 0
        self.flip_h = False
        self.flip_v = False
        self.fit = True

    # --- window / level -------------------------------------------------
    @property
    def window(self) -> WindowPreset | None:
        if self.window_center is None or self.window_width is None:
            return None
        return WindowPreset(self.window_center, self.window_width)

    def set_window(self, center: float, width: float, function: str | None = None) -> None:
        """Set centre/width (width must be > 0) and optionally the VOI function."""
        center, width = validate_window(center, width)
        if function is not None and function.upper() not in VOI_FUNCTIONS:
            raise ValueError(f"VOI function must be one of {VOI_FUNCTIONS}, got {function!r}")
        if function is not None:
            self.voi_function = function.upper()
        if (center, width) == (self.window_center, self.window_width) and function is None:
            return
        self.window_center, self.window_width = center, width
        self.changed.emit("window")

    def apply_preset(self, preset: WindowPreset) -> None:
        self.set_window(preset.center, preset.width)

    def clear_window(self) -> None:
        """Go back to the file's default window."""
        self.window_center = self.window_width = None
        self.voi_function = None
        self.changed.emit("window")

    def drag_window(self, dx: float, dy: float, data_range: tuple[float, float],
                    start: tuple[float, float] | None = None, inverted: bool = False) -> None:
        """Apply a right-drag step; ``start`` is (centre, width) when none is set yet.

        ``inverted`` is whether the image is shown inverted (MONOCHROME1 XOR
        the user's invert), so that dragging down always darkens.
        """
        center, width = self._current_window(start, data_range)
        self.set_window(*drag_to_window(center, width, dx, dy, data_range, inverted=inverted))

    def _current_window(self, start: tuple[float, float] | None,
                        data_range: tuple[float, float]) -> tuple[float, float]:
        if self.window_center is not None and self.window_width is not None:
            return self.window_center, self.window_width
        if start is not None:
            return start
        lo, hi = sorted(data_range)
        return (lo + hi) / 2, max(hi - lo, 1e-6)

    def set_invert(self, invert: bool) -> None:
        if bool(invert) != self.invert:
            self.invert = bool(invert)
            self.changed.emit("invert")

    def toggle_invert(self) -> None:
        self.set_invert(not self.invert)

    # --- geometry --------------------------------------------------------
    def transform(self, image_size: tuple[float, float],
                  widget_size: tuple[float, float]) -> ViewTransform:
        """Current map; in fit mode the zoom fits the widget and pan is zero."""
        if self.fit:
            return ViewTransform(image_size, widget_size, fit_zoom(image_size, widget_size,
                                                                   self.rotation),
                                 (0.0, 0.0), self.rotation, self.flip_h, self.flip_v)
        return ViewTransform(image_size, widget_size, self.zoom, self.pan, self.rotation,
                             self.flip_h, self.flip_v)

    def _leave_fit(self, image_size: tuple[float, float],
                   widget_size: tuple[float, float]) -> None:
        if self.fit:
            self.zoom = fit_zoom(image_size, widget_size, self.rotation)
            self.pan = (0.0, 0.0)
            self.fit = False

    def zoom_at(self, factor: float, widget_point: tuple[float, float],
                image_size: tuple[float, float], widget_size: tuple[float, float]) -> None:
        """Multiply zoom by ``factor`` keeping the image point under ``widget_point`` fixed."""
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError(f"zoom factor must be a positive number, got {factor}")
        self._leave_fit(image_size, widget_size)
        before = self.transform(image_size, widget_size)
        anchor = before.widget_to_image(*widget_point)
        self.zoom = min(max(self.zoom * factor, MIN_ZOOM), MAX_ZOOM)
        moved = self.transform(image_size, widget_size).image_to_widget(*anchor)
        self.pan = (self.pan[0] + widget_point[0] - moved[0],
                    self.pan[1] + widget_point[1] - moved[1])
        self.changed.emit("transform")

    def set_zoom(self, zoom: float) -> None:
        """Absolute zoom about the widget centre (leaves fit mode)."""
        if not (zoom > 0 and math.isfinite(zoom)):
            raise ValueError(f"zoom must be a positive number, got {zoom}")
        self.zoom = min(max(float(zoom), MIN_ZOOM), MAX_ZOOM)
        self.fit = False
        self.changed.emit("transform")

    def pan_by(self, dx: float, dy: float, image_size: tuple[float, float] | None = None,
               widget_size: tuple[float, float] | None = None) -> None:
        """Move the image by ``(dx, dy)`` widget pixels (sizes needed when in fit mode)."""
        if self.fit:
            if image_size is None or widget_size is None:
                raise ValueError("pan_by in fit mode needs image_size and widget_size")
            self._leave_fit(image_size, widget_size)
        self.pan = (self.pan[0] + dx, self.pan[1] + dy)
        self.changed.emit("transform")

    def rotate(self, quarter_turns: int = 1) -> None:
        """Rotate clockwise by ``90 * quarter_turns`` degrees (negative = counter-clockwise)."""
        self.rotation = (self.rotation + 90 * int(quarter_turns)) % 360
        self.changed.emit("transform")

    def set_rotation(self, rotation: int) -> None:
        if rotation % 90 != 0:
            raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}")
        self.rotation = rotation % 360
        self.changed.emit("transform")

    def flip_horizontal(self) -> None:
        self.flip_h = not self.flip_h
        self.changed.emit("transform")

    def flip_vertical(self) -> None:
        self.flip_v = not self.flip_v
        self.changed.emit("transform")

    def set_fit(self, fit: bool = True) -> None:
        self.fit = bool(fit)
        if self.fit:
            self.zoom, self.pan = 1.0, (0.0, 0.0)
        self.changed.emit("transform")

    def reset(self) -> None:
        """Back to file window, no invert, fit to widget, no rotation or flips."""
        self._set_defaults()
        self.changed.emit("reset")


def map_window(center: float, width: float, source: tuple[float, float] | None,
               target: tuple[float, float] | None) -> tuple[float, float]:
    """(center, width) moved from the value range ``source`` to ``target`` (same place
    and same fraction of the range); unchanged when either range is unknown or empty."""
    if source is None or target is None:
        return center, width
    (s_lo, s_hi), (t_lo, t_hi) = sorted(finite_range(source)), sorted(finite_range(target))
    if s_hi <= s_lo or t_hi <= t_lo:
        return center, width
    scale = (t_hi - t_lo) / (s_hi - s_lo)
    return t_lo + (center - s_lo) * scale, width * scale


class StateLink:
    """Copies one kind of change from a linked display state to the others while ``enabled``.

    Subclasses name the change kinds they follow (``kinds``) and how one is copied
    (`copy`); a change made while copying is not copied back.
    """

    kinds: tuple[str, ...] = ()

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._states: list[DisplayState] = []
        self._handlers: dict[int, object] = {}
        self._busy = False

    def add(self, state: DisplayState) -> None:
        """Link ``state`` (once)."""
        if any(s is state for s in self._states):
            return
        self._states.append(state)

        def handler(kind: str, source: DisplayState = state) -> None:
            self._on_changed(source, kind)

        self._handlers[id(state)] = handler
        state.changed.connect(handler)

    def remove(self, state: DisplayState) -> None:
        """Unlink ``state``."""
        handler = self._handlers.pop(id(state), None)
        if handler is not None:
            state.changed.disconnect(handler)
        self._states = [s for s in self._states if s is not state]

    def clear(self) -> None:
        """Unlink every state."""
        for state in list(self._states):
            self.remove(state)

    @property
    def states(self) -> list[DisplayState]:
        return list(self._states)

    def copy(self, source: DisplayState, target: DisplayState, kind: str) -> None:
        raise NotImplementedError

    def _on_changed(self, source: DisplayState, kind: str) -> None:
        if not self.enabled or self._busy or kind not in self.kinds:
            return
        self._busy = True
        try:
            for other in self._states:
                if other is not source:
                    self.copy(source, other, kind)
        finally:
            self._busy = False


class WindowSync(StateLink):
    """Optional window/level sync: a window change on one state is copied to the rest.

    ``relative=True`` maps the window through each state's ``value_range`` (see
    `map_window`), for images whose values are scaled differently (a current and
    a prior from two devices); identical ranges give identical windows.
    """

    kinds = ("window", "invert")

    def __init__(self, enabled: bool = True, relative: bool = False) -> None:
        super().__init__(enabled)
        self.relative = relative

    def copy(self, source: DisplayState, target: DisplayState, kind: str) -> None:
        """Copy the invert flag or the window (mapped between value ranges when relative)."""
        if kind == "invert":
            target.set_invert(source.invert)
        elif source.window_center is None or source.window_width is None:
            target.clear_window()
        elif self.relative:
            target.set_window(*map_window(source.window_center, source.window_width,
                                          source.value_range, target.value_range),
                              source.voi_function)
        else:
            target.set_window(source.window_center, source.window_width, source.voi_function)
