"""The plugin inside the real main window (entry-point manifest, docks, overlays, menus)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from PySide6.QtCore import QSettings

from plugins.cxrclip_findings.manifest import MANIFEST
from plugins.cxrclip_findings.overlays import LAYER_NAME

WAIT = 60_000


@dataclass
class EP:
    name: str
    target: object

    def load(self):
        return self.target


@pytest.fixture
def window(plugin_window):
    return plugin_window


def _plugin(win):
    return next(a.plugin for a in win.plugin_host.registry.active if a.manifest is MANIFEST)


def test_manifest_is_light():
    import subprocess
    import sys

    code = ("import sys, plugins.cxrclip_findings.manifest as m; "
            "print(m.MANIFEST.name, 'torch' in sys.modules, 'cxrclip' in sys.modules, "
            "'PySide6' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-3:] == ["False", "False", "False"]


def test_open_study_findings_and_heatmap_in_window(qtbot, window, tmp_path, helpers):
    win = window
    assert {"Findings", "Prompt", "Report", "Model"} <= set(win.plugin_host.docks)
    win.open_path(helpers.make_study(tmp_path / "study", shape=(72, 96)))
    qtbot.waitUntil(lambda: len(win.image_views()) == 2, timeout=WAIT)
    plugin = _plugin(win)
    qtbot.waitUntil(lambda: plugin.findings_panel.tree.topLevelItemCount() == 14, timeout=WAIT)
    plugin.findings_panel._clicked(plugin.findings_panel.tree.topLevelItem(0), 0)
    views = win.image_views()
    qtbot.waitUntil(lambda: all(LAYER_NAME in v.layers for v in views), timeout=WAIT)
    assert views[0].layers[LAYER_NAME].rgba.shape[:2] == (72, 96)
    toggle = [a for a in win.menu_named("CXR-CLIP").actions() if a.text() == "Toggle Heatmap"][0]
    toggle.trigger()
    assert not views[0].layers[LAYER_NAME].visible
    toggle.trigger()
    assert views[0].layers[LAYER_NAME].visible
    win.close_study()
    assert plugin.controller.study is None and plugin.controller.layers == {}


def test_broken_model_viewer_still_opens_studies(qtbot, tmp_path, helpers, monkeypatch):
    from viewer.qt.main_window import MainWindow

    monkeypatch.setenv("CXRCLIP_MODEL", str(tmp_path / "no-such-model"))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings, plugin_entry_points=[EP("cxrclip_findings", MANIFEST)])
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: any(w == "CXR-CLIP model" for w, _ in win.problems.rows()),
                    timeout=WAIT)
    win.open_path(helpers.make_study(tmp_path / "study"))
    qtbot.waitUntil(lambda: len(win.image_views()) == 2
                    and all(v.pixels is not None for v in win.image_views()), timeout=WAIT)
    plugin = _plugin(win)
    assert "does not exist" in plugin.model_panel.error.text()
    assert "Model not available" in plugin.findings_panel.status.label.text()
    win.plugin_host.shutdown()
