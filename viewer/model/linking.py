"""Linked zoom and pan between display states (no Qt).

`viewer.model.display.WindowSync` links window/level and invert; `GeometryLink`
links the geometry part (fit, zoom, pan) so that a current and a prior image
side by side move together. Rotation and flips stay per view (a prior may have
been acquired the other way round).
"""
from __future__ import annotations

from viewer.model.display import DisplayState, StateLink


class GeometryLink(StateLink):
    """A zoom/pan change on one state is copied to the others while ``enabled``."""

    kinds = ("transform", "reset")

    def copy(self, source: DisplayState, target: DisplayState, kind: str) -> None:
        copy_geometry(source, target)


def copy_geometry(source: DisplayState, target: DisplayState) -> None:
    """Give ``target`` the fit flag, zoom and pan of ``source`` (emits ``transform``)."""
    if (target.fit, target.zoom, target.pan) == (source.fit, source.zoom, source.pan):
        return
    target.fit, target.zoom, target.pan = source.fit, source.zoom, source.pan
    target.changed.emit("transform")
