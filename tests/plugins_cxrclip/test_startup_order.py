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
        plugin.finish_building()
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


def test_staged_build_runs_one_step_per_event_loop_turn(qtbot):
    from PySide6.QtWidgets import QApplication

    from plugins.cxrclip_findings.staged_build import StagedBuild

    ran, done = [], []
    build = StagedBuild([lambda i=i: ran.append(i) for i in range(4)], lambda: done.append(len(ran)))
    build.start()
    assert ran == [0] and not build.done  # the first step at once, the rest later
    QApplication.processEvents()
    assert 1 <= len(ran) < 4 or build.done  # the loop got control back between steps
    qtbot.waitUntil(lambda: build.done, timeout=5_000)
    assert ran == [0, 1, 2, 3] and done == [4]

    rest = StagedBuild([lambda: ran.append("a"), lambda: ran.append("b")], lambda: done.append("x"))
    rest.start()
    rest.finish()  # everything left, now
    assert ran[-2:] == ["a", "b"] and done[-1] == "x" and rest.done

    dropped = StagedBuild([lambda: ran.append("c"), lambda: ran.append("d")], lambda: done.append("y"))
    dropped.start()
    dropped.cancel()
    qtbot.wait(50)
    assert ran[-1] == "c" and done[-1] == "x" and not dropped.done


def test_hooks_and_results_during_the_build_wait_for_the_panels(qtbot, fake_host, tiny_model_dir,
                                                                tmp_path, monkeypatch, helpers):
    monkeypatch.setenv("CXRCLIP_MODEL", str(tiny_model_dir))
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    plugin = CxrClipFindingsPlugin(None, settings)
    handle = helpers.study_handle(helpers.make_study(tmp_path / "study"))
    busy = []
    try:
        plugin.activate(fake_host)
        plugin.controller.worker.busy.connect(busy.append)
        assert not plugin.built and "Search" not in fake_host.panels  # only the first step ran
        plugin.study_opened(handle)  # the host opens a study while the panels are built
        assert plugin.controller.study is None  # waits for the panels, in order
        qtbot.waitUntil(lambda: plugin.built, timeout=WAIT)
        for panel in fake_host.panels.values():
            qtbot.addWidget(panel)
        assert plugin.controller.study is not None and plugin.controller.study.handle is handle
        assert {"Findings", "Prompt", "Report", "Model", "Change", "Search"} <= set(fake_host.panels)
        # the model's results (held while building) reach the panels: findings for the study
        qtbot.waitUntil(lambda: plugin.findings_panel.tree.topLevelItemCount() > 0, timeout=WAIT)
        assert plugin.model_panel.status.label.text() != f"Loading {tiny_model_dir}…"
        # let the study's other jobs (heatmap, sentences) end before the engine stops
        qtbot.waitUntil(lambda: busy and busy[-1] is False and not len(plugin.controller.worker.queue),
                        timeout=WAIT)
    finally:
        plugin.deactivate()


def test_deactivating_mid_build_drops_the_rest(qtbot, fake_host, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CXRCLIP_MODEL", str(tiny_model_dir))
    plugin = CxrClipFindingsPlugin(None, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    plugin.activate(fake_host)
    plugin.deactivate()
    qtbot.wait(100)
    assert not plugin.built and "Search" not in fake_host.panels


def test_each_build_step_adds_at_most_one_dock(fake_host, tiny_model_dir, tmp_path, monkeypatch):
    """Adding the five docks in one step re-laid-out the window at once: the longest launch stall."""
    from plugins.cxrclip_findings import plugin as plugin_module

    monkeypatch.setenv("CXRCLIP_MODEL", str(tiny_model_dir))
    steps = []

    class RecordingBuild(plugin_module.StagedBuild):
        def __init__(self, build_steps, *args, **kwargs):
            steps.extend(build_steps)
            super().__init__(build_steps, *args, **kwargs)

        def start(self) -> None:  # the test runs the steps itself
            pass

    monkeypatch.setattr(plugin_module, "StagedBuild", RecordingBuild)
    plugin = CxrClipFindingsPlugin(None, QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    try:
        plugin.activate(fake_host)
        added = []
        for step in steps:
            before = set(fake_host.panels)
            step()
            added.append(sorted(set(fake_host.panels) - before))
        assert all(len(names) <= 1 for names in added), added
        assert [n for names in added for n in names] == ["Findings", "Prompt", "Report", "Model", "Change",
                                                          "Search"]
    finally:
        plugin.deactivate()
