"""The main window fits small screens with the installed plugins loaded, as the app loads them."""
from __future__ import annotations

import itertools

import pytest
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QDockWidget, QLabel, QVBoxLayout, QWidget

from viewer.plugin_api import BasePlugin, PluginManifest

MIN_BUDGET = (1280, 800)  # the minimum size must fit a 1280 x 800 screen
WAIT = 60000


class GreedyPlugin(BasePlugin):
    """A plugin whose panel asks for more than any laptop screen has."""

    def activate(self, host) -> None:
        super().activate(host)
        panel = QWidget()
        panel.setMinimumSize(900, 1500)
        QVBoxLayout(panel).addWidget(QLabel("greedy", panel))
        host.add_dock_panel("Greedy", panel, area="right")



def greedy_factory() -> GreedyPlugin:
    return GreedyPlugin()


class EP:
    def __init__(self, name: str, target) -> None:
        self.name, self.target = name, target

    def load(self):
        return self.target


def _window(qtbot, settings, entry_points=None):
    from viewer.qt.main_window import MainWindow

    win = MainWindow(settings=settings, plugin_entry_points=entry_points)
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.plugin_host.plugins_settled, timeout=WAIT):
        win.show()
    qtbot.wait(50)  # plugins arrange their docks on the next event-loop turn
    return win


def _fits(win) -> None:
    hint = win.minimumSizeHint().expandedTo(win.minimumSize())
    assert hint.width() <= MIN_BUDGET[0] and hint.height() <= MIN_BUDGET[1], hint


def _visible_docks(win) -> list[QDockWidget]:
    """Docks on screen (a dock behind another's tab is 'visible' but has no visible region)."""
    return [d for d in win.findChildren(QDockWidget)
            if d.isVisible() and not d.isFloating() and not d.visibleRegion().isEmpty()]


def test_minimum_size_fits_1280x800_with_installed_plugins(qtbot, settings):
    from viewer.plugin_host import discover_plugins

    discovered = discover_plugins()
    win = _window(qtbot, settings)
    loaded = set(win.plugin_host.registry.names())
    assert "Histogram" in loaded
    assert {d.manifest.name for d in discovered if d.manifest} <= loaded | {
        w.split(" ", 1)[1] for w, _ in win.problems.rows() if w.startswith("plugin ")}
    _fits(win)


def test_a_plugin_panel_cannot_force_the_window_taller(qtbot, settings):
    manifest = PluginManifest(name="Greedy", version="0", description="test",
                              factory=f"{__name__}:greedy_factory")
    win = _window(qtbot, settings, [EP("greedy", manifest)])
    assert "Greedy" in win.plugin_host.docks
    _fits(win)


@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768)])
def test_at_screen_sizes_nothing_overlaps_and_the_status_bar_shows(qtbot, settings, size):
    win = _window(qtbot, settings)
    win.resize(*size)
    qtbot.waitUntil(lambda: (win.width(), win.height()) == size, timeout=5000)
    bar = win.statusBar()
    assert bar.isVisible() and bar.geometry().bottom() < win.height()
    assert win.problems_dock.geometry().bottom() < bar.geometry().top()
    docks = _visible_docks(win)
    assert win.problems_dock in docks and win.browser_dock in docks
    for a, b in itertools.combinations(docks, 2):
        overlap = QRect(a.geometry()).intersected(b.geometry())
        assert overlap.isEmpty(), (a.windowTitle(), b.windowTitle(), overlap)
    for dock in docks:
        assert QRect(0, 0, *size).contains(dock.geometry()), dock.windowTitle()
