"""The viewer's plugin API: the data types a plugin sees, free of Qt.

A plugin is found through a light `PluginManifest` (entry-point group
``cxrclip_viewer.plugins``); its heavy module (torch, widgets) is imported only
when the plugin is activated. The factory named by the manifest returns an
object following the `Plugin` protocol; the viewer then hands it a
`PluginHost` (the Qt side, see ``viewer.qt.plugin_host_qt``) and calls its
hooks with `StudyHandle` / `ViewHandle` objects. See docs/plugins.md.

Everything here is importable and testable without Qt.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from viewer.model.study import Study, View

ENTRY_POINT_GROUP = "cxrclip_viewer.plugins"

# Modalities of projection radiographs and secondary captures (PNG/JPEG views carry "OT").
XRAY_MODALITIES: tuple[str, ...] = ("CR", "DX", "OT")


def effective_modality(view: View) -> str:
    """The view's modality, upper case; PNG/JPEG views without one count as "OT" (other)."""
    modality = (getattr(view, "modality", "") or "").strip().upper()
    if not modality and getattr(view, "source", "") == "image":
        return "OT"
    return modality


@dataclass(frozen=True)
class PluginManifest:
    """What the viewer knows about a plugin before importing it.

    ``modalities`` and ``view_positions`` restrict where the plugin applies; an
    empty tuple means "all". ``factory`` is ``"package.module:attr"``, a callable
    returning a `Plugin`; it is imported only on activation.
    """

    name: str
    version: str
    description: str
    factory: str
    modalities: tuple[str, ...] = ()
    view_positions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        module, sep, attr = self.factory.partition(":")
        if not sep or not module or not attr:
            raise ValueError(
                f"plugin {self.name!r}: factory must be 'package.module:attr', got {self.factory!r}")
        for label, value in (("modalities", self.modalities), ("view_positions", self.view_positions)):
            if isinstance(value, str) or not isinstance(value, tuple):
                raise TypeError(
                    f"plugin {self.name!r}: {label} must be a tuple of strings, got {value!r}")

    @property
    def factory_module(self) -> str:
        """The module part of ``factory`` (imported on activation)."""
        return self.factory.partition(":")[0]

    @property
    def factory_attr(self) -> str:
        """The attribute part of ``factory`` (called to build the plugin)."""
        return self.factory.partition(":")[2]

    def applies_to_view(self, view: View) -> bool:
        """True when the view's modality and view position are ones this plugin handles."""
        modality = effective_modality(view)
        position = (getattr(view, "view_position", "") or "").upper()
        if self.modalities and modality not in {m.upper() for m in self.modalities}:
            return False
        if self.view_positions and position not in {p.upper() for p in self.view_positions}:
            return False
        return True

    def why_not_applicable(self, views: list[View]) -> str | None:
        """None when at least one view applies; otherwise a sentence saying why none does."""
        if not views:
            return "the study has no views"
        if any(self.applies_to_view(v) for v in views):
            return None
        found = sorted({self._described(v) for v in views})
        wanted = ", ".join(self.modalities) or "any modality"
        if self.view_positions:
            wanted += " with view position " + ", ".join(self.view_positions)
        return f"{self.name} handles {wanted}; this study has {', '.join(found)}"

    def _described(self, view: View) -> str:
        """A view as `why_not_applicable` names it: its modality, and its view position only
        when this plugin asks for one (e.g. "US", "CR (view position LL)")."""
        modality = effective_modality(view) or "no modality"
        if not self.view_positions:
            return modality
        return f"{modality} (view position {view.view_position or 'not recorded'})"


@dataclass(frozen=True)
class ColorBar:
    """Legend of an overlay: a named colormap spanning ``vmin``..``vmax``.

    ``colors`` optionally gives the colormap as an ``N x 4`` uint8 RGBA table
    (low to high) so the viewer can draw the bar exactly as the overlay was
    coloured; without it the bar is drawn from the overlay's own name only.
    """

    colormap: str
    vmin: float
    vmax: float
    label: str = ""
    colors: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not np.isfinite(self.vmin) or not np.isfinite(self.vmax) or self.vmax < self.vmin:
            raise ValueError(f"colour bar needs finite vmin <= vmax, got {self.vmin}, {self.vmax}")
        if self.colors is not None:
            arr = np.asarray(self.colors)
            if arr.ndim != 2 or arr.shape[1] != 4 or arr.shape[0] < 2 or arr.dtype != np.uint8:
                raise ValueError(
                    f"colour bar colors must be an N x 4 uint8 RGBA table with N >= 2, "
                    f"got shape {arr.shape} dtype {arr.dtype}")


@dataclass
class OverlayLayer:
    """An RGBA image drawn over one view, in that view's image pixel geometry.

    ``rgba`` is ``rows x columns x 4`` uint8 (same size as the view's image, or
    any size with the same aspect: it is stretched over the image). The viewer
    applies the view's zoom, pan, rotation and flips, then blends with
    ``opacity`` (multiplied with the per-pixel alpha).
    """

    name: str
    rgba: np.ndarray
    opacity: float = 0.5
    visible: bool = True
    colorbar: ColorBar | None = None

    def __post_init__(self) -> None:
        arr = np.asarray(self.rgba)
        if arr.ndim != 3 or arr.shape[2] != 4 or arr.dtype != np.uint8:
            raise ValueError(
                f"overlay {self.name!r}: rgba must be an H x W x 4 uint8 array, "
                f"got shape {arr.shape} dtype {arr.dtype}")
        if arr.shape[0] == 0 or arr.shape[1] == 0:
            raise ValueError(f"overlay {self.name!r}: rgba is empty (shape {arr.shape})")
        if not 0.0 <= float(self.opacity) <= 1.0:
            raise ValueError(f"overlay {self.name!r}: opacity must be in [0, 1], got {self.opacity}")
        self.rgba = np.ascontiguousarray(arr)


@dataclass(frozen=True)
class ExportFormat:
    """A plugin-provided way to save the selected view: shown in File ▸ Export.

    ``write(view, path)`` is called with the selected `ViewHandle` and the path
    the user chose (ending in ``suffix``).
    """

    name: str
    suffix: str
    write: Callable[[ViewHandle, Path], None]


def _default_decode(view: View) -> Any:
    from viewer.io.decode import load_image

    return load_image(view)


def _default_display(image: Any) -> np.ndarray:
    from viewer.render import default_display_uint8

    return default_display_uint8(image)


class ViewHandle:
    """One view as a plugin sees it: metadata plus lazily decoded pixels.

    Decoding happens on first use and is cached (thread-safe), so a plugin may
    call ``modality_pixels()`` from a worker thread. The viewer shares the
    decoded image with its own image views when it has decoded it already.
    """

    def __init__(self, meta: View, decode: Callable[[View], Any] | None = None,
                 image: Any = None) -> None:
        self.meta = meta
        self._decode = decode or _default_decode
        self._image = image
        self._display: np.ndarray | None = None
        self._lock = threading.Lock()

    @property
    def view_id(self) -> str:
        """SOPInstanceUID, or ``"file:" + path`` for PNG/JPEG views."""
        return self.meta.view_id

    def decoded(self) -> Any:
        """The viewer's `DecodedImage` (decoded once; raises `DecodeError` on failure)."""
        with self._lock:
            if self._image is None:
                self._image = self._decode(self.meta)
            return self._image

    def set_decoded(self, image: Any) -> None:
        """Hand over an image the viewer already decoded (avoids decoding twice)."""
        with self._lock:
            if self._image is None:
                self._image = image

    def modality_pixels(self) -> np.ndarray:
        """float32 ``rows x columns`` values after the Modality LUT (first frame)."""
        return np.asarray(self.decoded().modality, dtype=np.float32)

    def display_uint8(self) -> np.ndarray:
        """The default display rendering (file window or full range, air dark): the model input."""
        image = self.decoded()
        with self._lock:
            if self._display is None:
                self._display = _default_display(image)
            return self._display

    def __repr__(self) -> str:
        return f"ViewHandle({self.view_id!r})"


@dataclass
class StudyHandle:
    """One opened study: the `Study` model and a handle per view in reading order."""

    study: Study
    views: list[ViewHandle]

    @property
    def study_uid(self) -> str:
        """The StudyInstanceUID (or folder name for PNG/JPEG studies)."""
        return str(getattr(self.study, "study_uid", ""))

    def view(self, view_id: str) -> ViewHandle:
        """The handle with this view id; KeyError names the known ids."""
        for handle in self.views:
            if handle.view_id == view_id:
                return handle
        raise KeyError(f"no view {view_id!r} in study; views: {[h.view_id for h in self.views]}")


@runtime_checkable
class PluginHost(Protocol):
    """What the viewer offers a plugin (implemented by the Qt main window's host)."""

    @property
    def main_window(self) -> Any: ...

    @property
    def current_study(self) -> StudyHandle | None: ...

    @property
    def selected_view(self) -> ViewHandle | None: ...

    @property
    def prior_study(self) -> StudyHandle | None:
        """The prior shown beside the current study ("Compare with prior"), else None."""

    @property
    def layout(self) -> str:
        """``"study"`` (the current study's views) or ``"compare"`` (current vs prior frontal)."""

    @property
    def model(self) -> Any:
        """The application model (`viewer.model.viewer_model.ViewerModel`): read it, or
        connect to its signals; change it only through its methods."""

    @property
    def measurements(self) -> Any:
        """The `viewer.model.measurement_store.MeasurementStore` of the open studies."""

    def add_dock_panel(self, title: str, widget: Any, area: str = "right") -> Any: ...

    def set_overlay(self, view_id: str, layer: OverlayLayer) -> None: ...

    def remove_overlay(self, view_id: str, name: str) -> None: ...

    def add_menu_action(self, menu: str, text: str, callback: Callable[[], None],
                        shortcut: str | None = None) -> Any: ...

    def add_export_format(self, fmt: ExportFormat) -> None: ...

    def report_problem(self, where: str, reason: str) -> None: ...

    def status_message(self, text: str) -> None: ...

    def current_window(self, view_id: str) -> tuple[float, float] | None: ...

    def open_study(self, path: Path, study_uid: str | None = None) -> None:
        """Open the folder or file ``path`` in the viewer (scanned in the background, like
        File ▸ Open) and show the study ``study_uid`` once the scan arrives (the scan's first
        study when None or not found). A study already in the open folder is shown at once."""


@runtime_checkable
class Plugin(Protocol):
    """What a plugin factory returns. All hooks are called on the UI thread.

    ``study_not_applicable(study, reason)`` is optional: the host calls it
    instead of ``study_opened`` when none of the study's views matches the
    manifest, so the plugin can show why it is idle. ``window_changed(view_id,
    center, width)``, ``prior_changed(prior)``, ``layout_changed(layout)`` and
    ``measurement_changed(action, measurement, result)`` are optional too.
    """

    def activate(self, host: PluginHost) -> None: ...

    def study_opened(self, study: StudyHandle) -> None: ...

    def view_selected(self, view: ViewHandle) -> None: ...

    def study_closed(self, study: StudyHandle) -> None: ...

    def deactivate(self) -> None: ...


class BasePlugin:
    """Convenience base with no-op hooks; subclass and override what you need."""

    def __init__(self) -> None:
        self.host: PluginHost | None = None

    def activate(self, host: PluginHost) -> None:
        """Remember the host; override to add panels and actions (call super)."""
        self.host = host

    def study_opened(self, study: StudyHandle) -> None:
        """A study that applies to this plugin was opened."""

    def study_not_applicable(self, study: StudyHandle, reason: str) -> None:
        """A study was opened that this plugin does not handle; ``reason`` says why."""

    def view_selected(self, view: ViewHandle) -> None:
        """The user selected a view (clicked it or picked it in the study browser)."""

    def window_changed(self, view_id: str, center: float, width: float) -> None:
        """The window of a view changed (right-drag, preset, sync)."""

    def study_closed(self, study: StudyHandle) -> None:
        """The study is being closed; drop references to its pixels."""

    def prior_changed(self, prior: StudyHandle | None) -> None:
        """A prior study is now shown beside the current one (None: the comparison ended)."""

    def layout_changed(self, layout: str) -> None:
        """The layout changed: ``"study"`` or ``"compare"``."""

    def measurement_changed(self, action: str, measurement: Any, result: Any) -> None:
        """A measurement was ``"added"``, ``"changed"`` (moved, reshaped) or ``"removed"``;
        ``measurement`` is a `viewer.model.measurements.Measurement` (kind, view_id, points in
        image pixels), ``result`` its `MeasurementResult` (values, unit, text; None when removed)."""

    def deactivate(self) -> None:
        """The viewer is closing or the plugin is being unloaded."""
