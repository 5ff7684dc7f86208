"""The measurements of the open studies, their selection and the active tool (no Qt).

`MeasurementStore` keeps `Measurement` values by id and tells subscribers
through ``changed(action, measurement)`` with ``action`` one of ``"added"``,
``"changed"``, ``"removed"``; ``selection_changed(measurement_id | None)``
and ``tool_changed(tool)`` complete it. Each view registers a
`MeasureContext` (calibration, a modality-pixel provider, the value unit) so
that results can be computed without knowing about widgets or decoding.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewer.io.private_files import write_private
from viewer.model.calibration import UNCALIBRATED, Calibration
from viewer.model.events import Signal
from viewer.model.measurements import POINTS_NEEDED, Measurement, MeasurementResult, measure

TOOLS = ("navigate",) + tuple(POINTS_NEEDED)
EXPORT_VERSION = 1


@dataclass
class MeasureContext:
    """What measuring one view needs: its calibration, its modality pixels (called
    lazily, may decode), the unit of its values ("HU" for CT, "" otherwise) and a
    label free of identifiers ("PA")."""

    calibration: Calibration = UNCALIBRATED
    pixels: Callable[[], np.ndarray | None] | None = None
    value_unit: str = ""
    label: str = ""


class MeasurementStore:
    """Measurements by id, in creation order, plus selection and the active tool."""

    def __init__(self) -> None:
        self.changed = Signal()  # (action, Measurement)
        self.selection_changed = Signal()  # (measurement_id | None)
        self.tool_changed = Signal()  # (tool)
        self._items: dict[str, Measurement] = {}
        self._contexts: dict[str, MeasureContext] = {}
        self._results: dict[str, tuple[Measurement, MeasurementResult]] = {}
        self.selected_id: str | None = None
        self.tool = "navigate"
        # builds a view's context on first use (set by the ViewerModel)
        self.context_factory: Callable[[str], MeasureContext] | None = None

    # --- tool ---------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        """``"navigate"`` (mouse pans and windows) or a measurement kind."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}; choose one of {TOOLS}")
        if tool != self.tool:
            self.tool = tool
            self.tool_changed.emit(tool)

    # --- contexts -----------------------------------------------------------------
    def set_context(self, view_id: str, context: MeasureContext) -> None:
        """Calibration and pixels of ``view_id`` (cached results of it are dropped)."""
        self._contexts[view_id] = context
        self._results = {k: v for k, v in self._results.items() if v[0].view_id != view_id}

    def context(self, view_id: str) -> MeasureContext:
        """The view's context: set, or built by ``context_factory``, or an empty one (px)."""
        context = self._contexts.get(view_id)
        if context is None and self.context_factory is not None:
            context = self._contexts[view_id] = self.context_factory(view_id)
        return context or MeasureContext()

    # --- items --------------------------------------------------------------------
    def add(self, m: Measurement) -> Measurement:
        if m.measurement_id in self._items:
            raise ValueError(f"measurement {m.measurement_id!r} exists already; use update")
        self._items[m.measurement_id] = m
        self.changed.emit("added", m)
        return m

    def update(self, m: Measurement) -> None:
        """Replace the measurement with the same id (moved or reshaped)."""
        if m.measurement_id not in self._items:
            raise KeyError(f"no measurement {m.measurement_id!r}; add it first")
        if self._items[m.measurement_id] == m:
            return
        self._items[m.measurement_id] = m
        self.changed.emit("changed", m)

    def remove(self, measurement_id: str) -> None:
        m = self._items.pop(measurement_id, None)
        if m is None:
            return
        self._results.pop(measurement_id, None)
        if self.selected_id == measurement_id:
            self.select(None)
        self.changed.emit("removed", m)

    def remove_selected(self) -> bool:
        """Delete the selected measurement; False when none is selected."""
        if self.selected_id is None:
            return False
        self.remove(self.selected_id)
        return True

    def clear(self, view_ids: set[str] | None = None) -> None:
        """Remove every measurement (or those on ``view_ids``) and the views' contexts
        (which hold their pixels)."""
        for m in list(self._items.values()):
            if view_ids is None or m.view_id in view_ids:
                self.remove(m.measurement_id)
        for view_id in list(self._contexts):
            if view_ids is None or view_id in view_ids:
                del self._contexts[view_id]

    def get(self, measurement_id: str) -> Measurement | None:
        return self._items.get(measurement_id)

    def all(self) -> list[Measurement]:
        return list(self._items.values())

    def for_view(self, view_id: str) -> list[Measurement]:
        return [m for m in self._items.values() if m.view_id == view_id]

    def __len__(self) -> int:
        return len(self._items)

    def select(self, measurement_id: str | None) -> None:
        if measurement_id is not None and measurement_id not in self._items:
            raise KeyError(f"no measurement {measurement_id!r} to select")
        if measurement_id != self.selected_id:
            self.selected_id = measurement_id
            self.selection_changed.emit(measurement_id)

    # --- results ------------------------------------------------------------------
    def result(self, m: Measurement) -> MeasurementResult:
        """Numbers and label of ``m`` on its view (cached until it changes)."""
        cached = self._results.get(m.measurement_id)
        if cached is not None and cached[0] == m:
            return cached[1]
        context = self.context(m.view_id)
        pixels = None
        if m.kind in ("rect", "ellipse") and context.pixels is not None:
            pixels = context.pixels()
        result = measure(m, context.calibration, pixels, context.value_unit)
        self._results[m.measurement_id] = (m, result)
        return result

    # --- export -------------------------------------------------------------------
    def to_dict(self, include_identifiers: bool = False) -> dict:
        """Every measurement with its points, numbers and calibration.

        Without ``include_identifiers`` views are named by their neutral label
        ("PA") and no UID, path or name is written (as in the other exports).
        """
        rows = []
        for m in self._items.values():
            context, result = self.context(m.view_id), self.result(m)
            row = {"kind": m.kind, "name": m.name, "view": context.label,
                   "points_px": [list(p) for p in m.points], "values": result.values,
                   "unit": result.unit, "calibration": context.calibration.label,
                   "text": result.text}
            if include_identifiers:
                row["view_id"] = m.view_id
            rows.append(row)
        return {"format": "cxrclip-viewer measurements", "version": EXPORT_VERSION,
                "identifiers_included": include_identifiers, "measurements": rows}

    def write_json(self, path: str | Path, include_identifiers: bool = False) -> Path:
        """Write `to_dict` as JSON to ``path`` privately (0600, atomic); returns the path."""
        text = json.dumps(self.to_dict(include_identifiers), indent=2)
        return write_private(path, text.encode("utf-8"))
