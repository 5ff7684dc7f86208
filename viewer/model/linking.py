"""Linked zoom and pan between display states (no Qt).

`viewer.model.display.WindowSync` links window/level and invert; `GeometryLink`
links the geometry part (fit, zoom, pan) so that a current and a prior image
side by side move together. Rotation and flips stay per view (a prior may have
been acquired the other way round).
"""
from __future__ import annotations

from viewer.model.display import DisplayState


class GeometryLink:
    """A zoom/pan change on one state is copied to the others while ``enabled``."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._states: list[DisplayState] = []
        self._handlers: dict[int, object] = {}
        self._busy = False

    def add(self, state: DisplayState) -> None:
        if any(s is state for s in self._states):
            return
        self._states.append(state)

        def handler(kind: str, source: DisplayState = state) -> None:
            self._on_changed(source, kind)

        self._handlers[id(state)] = handler
        state.changed.connect(handler)

    def remove(self, state: DisplayState) -> None:
        handler = self._handlers.pop(id(state), None)
        if handler is not None:
            state.changed.disconnect(handler)
        self._states = [s for s in self._states if s is not state]

    def clear(self) -> None:
        for state in list(self._states):
            self.remove(state)

    @property
    def states(self) -> list[DisplayState]:
        return list(self._states)

    def _on_changed(self, source: DisplayState, kind: str) -> None:
        if not self.enabled or self._busy or kind not in ("transform", "reset"):
            return
        self._busy = True
        try:
            for other in self._states:
                if other is not source:
                    copy_geometry(source, other)
        finally:
            self._busy = False


def copy_geometry(source: DisplayState, target: DisplayState) -> None:
    """Give ``target`` the fit flag, zoom and pan of ``source`` (emits ``transform``)."""
    if (target.fit, target.zoom, target.pan) == (source.fit, source.zoom, source.pan):
        return
    target.fit, target.zoom, target.pan = source.fit, source.zoom, source.pan
    target.changed.emit("transform")
