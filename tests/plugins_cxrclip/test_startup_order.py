"""Start-up of the CXR-CLIP plugin: the model load begins before the panels are built, and
highdicom (about a second of imports) is imported only by the first DICOM SR export."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from PySide6.QtCore import QSettings

from plugins.cxrclip_findings import controller as controller_module
from plugins.cxrclip_findings.plugin import CxrClipFindingsPlugin
from plugins.cxrclip_findings.service import FindingsService

REPO = Path(__file__).resolve().parents[2]
WAIT = 60_000


def test_plugin_and_window_modules_do_not_import_highdicom():
    code = ("import sys, viewer.qt.main_window, plugins.cxrclip_findings.plugin, "
            "plugins.cxrclip_findings.exports\n"
            "print(sorted(m for m in sys.modules if m.startswith(('highdicom', 'pydicom.sr'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, QT_QPA_PLATFORM="offscreen"), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_model_load_starts_before_the_panels_and_the_model_panel_says_so(
        qtbot, fake_host, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CXRCLIP_MODEL", str(tiny_model_dir))
    gate, panels_at_load = threading.Event(), []
    load_model = controller_module.FindingsController.load_model

    def recording_load_model(controller, model_dir):
        panels_at_load.append(sorted(fake_host.panels))  # what existed when the load began
        load_model(controller, model_dir)

    monkeypatch.setattr(controller_module.FindingsController, "load_model", recording_load_model)

    def factory(model_dir: Path) -> FindingsService:
        gate.wait(30)
        return FindingsService.load(model_dir)

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    plugin = CxrClipFindingsPlugin(factory, settings)
    try:
        plugin.activate(fake_host)
        for panel in fake_host.panels.values():
            qtbot.addWidget(panel)
        assert plugin.controller.loading_dir == tiny_model_dir
        status = plugin.model_panel.status
        assert status.label.text() == f"Loading {tiny_model_dir}…" and status.busy
        gate.set()
        qtbot.waitUntil(lambda: plugin.controller.service is not None, timeout=WAIT)
        assert plugin.controller.loading_dir is None and not status.busy
        assert panels_at_load == [[]]  # the load was queued before any panel was added
    finally:
        gate.set()
        plugin.deactivate()
