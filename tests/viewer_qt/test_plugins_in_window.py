"""Plugins inside the main window: failures go to Problems, overlays draw, menus work."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from viewer.plugin_api import ColorBar, OverlayLayer, PluginManifest

PLUGIN_SOURCE = '''
from viewer.plugin_api import BasePlugin

def raising_factory():
    raise RuntimeError("factory boom")

class Hooky(BasePlugin):
    def __init__(self):
        super().__init__()
        self.opened = []
    def activate(self, host):
        super().activate(host)
        self.action = host.add_menu_action("Plugins", "Say hi", self.say_hi, "Ctrl+Alt+H")
        host.add_menu_action("Plugins", "Crash", lambda: 1 / 0)
        from viewer.plugin_api import ExportFormat
        host.add_export_format(ExportFormat("Notes", ".txt", lambda view, path: None))
    def say_hi(self):
        self.host.status_message("hi")
    def study_opened(self, study):
        self.opened.append(study.study_uid)
    def view_selected(self, view):
        raise ValueError("view hook boom")

INSTANCE = None

def hooky():
    global INSTANCE
    INSTANCE = Hooky()
    return INSTANCE
'''


@dataclass
class EP:
    name: str
    target: object

    def load(self):
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "viewer_test_plugins.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "viewer_test_plugins"
    sys.modules.pop("viewer_test_plugins", None)


def _manifest(name: str, factory: str) -> PluginManifest:
    return PluginManifest(name=name, version="0", description="test", factory=factory)


def test_failing_plugins_are_reported_and_viewer_works(qtbot, settings, study_dir, plugin_module):
    from viewer.plugin_host import discover_plugins
    from viewer.qt.main_window import MainWindow

    installed = {d.entry_name: d for d in discover_plugins()}
    eps = [
        EP("raises", _manifest("Raiser", f"{plugin_module}:raising_factory")),
        EP("missing", _manifest("Missing", "no_such_plugin_pkg.plugin:create")),
        EP("broken_manifest", ImportError("manifest import failed")),
        EP("hooky", _manifest("Hooky", f"{plugin_module}:hooky")),
        EP("histogram", installed["histogram"].manifest),
    ]
    win = MainWindow(settings=settings, plugin_entry_points=eps)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: {"Hooky", "Histogram"} <= set(win.plugin_host.registry.names()),
                    timeout=10000)
    qtbot.waitUntil(lambda: win.problems.count() >= 3, timeout=5000)
    rows = dict(win.problems.rows())
    assert "factory boom" in rows["plugin Raiser"]
    assert "no_such_plugin_pkg" in rows["plugin Missing"]
    assert "manifest import failed" in rows["plugin broken_manifest"]
    assert "Histogram" in win.plugin_host.docks

    win.open_path(study_dir)
    qtbot.waitUntil(lambda: len(win.image_views()) == 2 and
                    all(v.pixels is not None for v in win.image_views()), timeout=10000)
    module = sys.modules[plugin_module]
    assert module.INSTANCE.opened == [win.current_study.study_uid]
    rows = win.problems.rows()
    assert any(w == "plugin Hooky" and "view hook boom" in r for w, r in rows)
    assert any(w.endswith("garbage.dcm") for w, _ in rows)
    module.INSTANCE.action.trigger()
    assert win.statusBar().currentMessage() == "hi"
    crash = [a for a in win.menu_named("Plugins").actions() if a.text() == "Crash"][0]
    crash.trigger()
    assert any("ZeroDivisionError" in r for _, r in win.problems.rows())
    assert ("Plugins", "Say hi", "Ctrl+Alt+H") in win.plugin_host.actions
    assert [a.text() for a in win.export_menu.actions()] == ["Notes (*.txt)…"]


def test_overlay_layer_is_drawn_and_follows_flip(qtbot, opened):
    pa = opened.image_views()[0]
    rows, cols = pa.pixels.image.shape
    rgba = np.zeros((rows, cols, 4), np.uint8)
    rgba[:, : cols // 2] = (255, 0, 0, 255)  # left half of the image red
    layer = OverlayLayer("heat", rgba, opacity=1.0, colorbar=ColorBar("hot", 0, 1, "score"))
    opened.plugin_host.set_overlay(pa.view_id, layer)
    assert "heat" in pa.layers

    def color_at(fx: float):
        image = pa.grab().toImage()
        ratio = image.devicePixelRatio()
        return image.pixelColor(int(pa.width() * fx * ratio), int(pa.height() * 0.5 * ratio))

    left, right = color_at(0.3), color_at(0.7)
    assert left.red() > 200 and left.green() < 60
    assert abs(right.red() - right.green()) < 10  # gray X-ray there
    image = pa.grab().toImage()
    ratio = image.devicePixelRatio()
    bar = image.pixelColor(int((pa.width() - 20) * ratio), int(pa.height() * 0.5 * ratio))
    assert bar.red() - bar.blue() > 100  # the "hot" colour bar at the right edge, mid-way = orange
    pa.state.flip_horizontal()
    left, right = color_at(0.3), color_at(0.7)
    assert right.red() > 200 and right.green() < 60
    opened.plugin_host.remove_overlay(pa.view_id, "heat")
    assert "heat" not in pa.layers
    with pytest.raises(TypeError, match="OverlayLayer"):
        opened.plugin_host.set_overlay(pa.view_id, rgba)


def test_excepthook_reports_to_problems(window):
    from viewer.qt.errors import ExceptHook

    hook = ExceptHook(window.report_problem).install()
    try:
        try:
            raise KeyError("unexpected thing")
        except KeyError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
    finally:
        hook.uninstall()
    rows = window.problems.rows()
    assert rows[-1][0] == "viewer" and "KeyError" in rows[-1][1]
    assert sys.excepthook is not hook._handle


def test_overlay_for_a_view_shown_later_is_applied(qtbot, window, study_dir):
    """Overlays set before pixels arrive are kept and applied when the view is ready."""
    window.open_path(study_dir)
    qtbot.waitUntil(lambda: len(window.image_views()) == 2, timeout=10000)
    view_id = window.image_views()[1].view_id
    window.plugin_host.set_overlay(view_id, OverlayLayer("x", np.full((2, 2, 4), 255, np.uint8)))
    qtbot.waitUntil(lambda: all(v.pixels is not None for v in window.image_views()), timeout=10000)
    assert "x" in window.image_view(view_id).layers
    assert window.image_view(view_id).image_point(QPointF(0, 0)) is not None


def test_many_qt_calls_do_not_abort(window):
    """Guards against PySide6 builds that drop a None reference per void call."""
    import sys as _sys

    from PySide6.QtWidgets import QLabel

    label = QLabel()
    for _ in range(50_000):
        label.setText("x")
    assert _sys.getrefcount(None) > 1000
