"""Plugin discovery and hook dispatch, free of Qt.

`discover_plugins` reads manifests from entry points without importing the
plugins' heavy modules. `import_factory` imports a plugin's factory (meant to
run in a worker thread). `PluginRegistry` keeps the active plugins and calls
their hooks, routing every exception to a problem callback so that one broken
plugin never stops the viewer. The Qt host (``viewer.qt.plugin_host_qt``)
builds on these.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from viewer.plugin_api import ENTRY_POINT_GROUP, Plugin, PluginManifest, StudyHandle, ViewHandle

log = logging.getLogger(__name__)

ProblemSink = Callable[[str, str], None]


@dataclass
class DiscoveredPlugin:
    """One entry point: its manifest when it loaded, else the reason it did not."""

    entry_name: str
    manifest: PluginManifest | None
    error: str | None = None

    @property
    def name(self) -> str:
        """The manifest's name, or the entry-point name when the manifest failed."""
        return self.manifest.name if self.manifest else self.entry_name


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def load_manifest(entry_point: Any) -> DiscoveredPlugin:
    """Load one entry point's manifest; failures become a `DiscoveredPlugin` with ``error``."""
    name = getattr(entry_point, "name", str(entry_point))
    try:
        manifest = entry_point.load()
    except Exception as exc:  # any error in third-party import code must not stop discovery
        log.warning("plugin %s: manifest failed to load", name, exc_info=True)
        return DiscoveredPlugin(name, None, f"manifest failed to load ({_describe(exc)})")
    if not isinstance(manifest, PluginManifest):
        return DiscoveredPlugin(
            name, None,
            f"entry point must name a viewer.plugin_api.PluginManifest, got {type(manifest).__name__}")
    return DiscoveredPlugin(name, manifest)


def discover_plugins(group: str = ENTRY_POINT_GROUP,
                     entry_points: Iterable[Any] | None = None) -> list[DiscoveredPlugin]:
    """Manifests of all installed plugins, sorted by name; never raises for a bad plugin.

    ``entry_points`` replaces the installed ones (tests pass their own objects
    with ``name`` and ``load()``).
    """
    eps = list(entry_points) if entry_points is not None else list(metadata.entry_points(group=group))
    found = [load_manifest(ep) for ep in eps]
    return sorted(found, key=lambda d: d.name)


def import_factory(manifest: PluginManifest) -> Callable[[], Plugin]:
    """Import the plugin's factory module and return the factory callable.

    This is the slow part of activation (torch etc.), so the Qt host runs it in
    a worker thread. Raises `ImportError`/`AttributeError`/`TypeError` naming the
    plugin and the factory string.
    """
    try:
        module = importlib.import_module(manifest.factory_module)
    except ImportError as exc:
        raise ImportError(
            f"plugin {manifest.name!r}: cannot import {manifest.factory_module!r} "
            f"({_describe(exc)}); is the plugin installed completely?") from exc
    try:
        factory = getattr(module, manifest.factory_attr)
    except AttributeError as exc:
        raise AttributeError(
            f"plugin {manifest.name!r}: module {manifest.factory_module!r} has no "
            f"{manifest.factory_attr!r} (factory {manifest.factory!r})") from exc
    if not callable(factory):
        raise TypeError(f"plugin {manifest.name!r}: factory {manifest.factory!r} is not callable")
    return factory


@dataclass
class ActivePlugin:
    """A plugin object together with its manifest."""

    manifest: PluginManifest
    plugin: Any


class PluginRegistry:
    """Active plugins and safe hook dispatch.

    Every call into a plugin goes through `call`, which logs an exception and
    reports it through ``problems(where, reason)``; a plugin that failed is
    kept (its other hooks may work) unless it failed in ``activate``.
    """

    def __init__(self, problems: ProblemSink) -> None:
        self._problems = problems
        self._active: list[ActivePlugin] = []

    @property
    def active(self) -> list[ActivePlugin]:
        """The activated plugins, in activation order."""
        return list(self._active)

    def names(self) -> list[str]:
        """Names of the activated plugins."""
        return [a.manifest.name for a in self._active]

    def call(self, manifest: PluginManifest, plugin: Any, hook: str, *args: Any) -> tuple[bool, Any]:
        """Call ``plugin.hook(*args)`` if it exists; returns (ok, result) and never raises."""
        method = getattr(plugin, hook, None)
        if method is None:
            return True, None
        try:
            return True, method(*args)
        except Exception as exc:  # a plugin bug must not take the viewer down
            log.error("plugin %s: %s failed", manifest.name, hook, exc_info=True)
            self._problems(f"plugin {manifest.name}", f"{hook} failed: {_describe(exc)}")
            return False, None

    def activate(self, manifest: PluginManifest, factory: Callable[[], Any],
                 host: Any) -> ActivePlugin | None:
        """Build the plugin with ``factory()`` and call ``activate(host)``; None on failure."""
        try:
            plugin = factory()
        except Exception as exc:  # third-party constructor
            log.error("plugin %s: factory failed", manifest.name, exc_info=True)
            self._problems(f"plugin {manifest.name}", f"factory {manifest.factory} failed: {_describe(exc)}")
            return None
        ok, _ = self.call(manifest, plugin, "activate", host)
        if not ok:
            return None
        active = ActivePlugin(manifest, plugin)
        self._active.append(active)
        return active

    def _targets(self, only: ActivePlugin | None) -> list[ActivePlugin]:
        return [only] if only is not None else self.active

    def study_opened(self, study: StudyHandle, only: ActivePlugin | None = None) -> None:
        """Tell each plugin (or just ``only``) about the study, or why it does not apply to it."""
        metas = [h.meta for h in study.views]
        for active in self._targets(only):
            reason = active.manifest.why_not_applicable(metas)
            if reason is None:
                self.call(active.manifest, active.plugin, "study_opened", study)
            else:
                self.call(active.manifest, active.plugin, "study_not_applicable", study, reason)

    def view_selected(self, view: ViewHandle, only: ActivePlugin | None = None) -> None:
        """Tell the plugins that handle this view's modality/position that it was selected."""
        for active in self._targets(only):
            if active.manifest.applies_to_view(view.meta):
                self.call(active.manifest, active.plugin, "view_selected", view)

    def window_changed(self, view_id: str, center: float, width: float) -> None:
        """Tell plugins that a view's window changed (optional hook)."""
        for active in self.active:
            self.call(active.manifest, active.plugin, "window_changed", view_id, center, width)

    def notify(self, hook: str, *args: Any) -> None:
        """Call the optional ``hook(*args)`` of every plugin that has it (prior_changed,
        layout_changed, measurement_changed, ...)."""
        for active in self.active:
            self.call(active.manifest, active.plugin, hook, *args)

    def study_closed(self, study: StudyHandle) -> None:
        """Tell every plugin that the study closes."""
        for active in self.active:
            self.call(active.manifest, active.plugin, "study_closed", study)

    def deactivate_all(self) -> None:
        """Deactivate every plugin (viewer shutdown)."""
        for active in self.active:
            self.call(active.manifest, active.plugin, "deactivate")
        self._active.clear()
