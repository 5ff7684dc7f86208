"""The Search panel in the real viewer window: build (progress, Cancel, resume), text search with
thumbnails, opening a result (`PluginHost.open_study`), Hide-PHI, and the model-mismatch refusal."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plugins.cxrclip_findings.manifest import MANIFEST

WAIT = 60_000
STUDY_NAMES = ("Doe_John_0001", "Roe_Jane_0002", "Poe_Edgar_0003", "Moe_Anna_0004")


@pytest.fixture
def window(qtbot, plugin_window):
    """The viewer with the CXR-CLIP plugin, its tiny model loaded."""
    qtbot.waitUntil(lambda: _plugin(plugin_window).controller.service is not None, timeout=WAIT)
    return plugin_window


@pytest.fixture
def archive(tmp_path, helpers) -> Path:
    """Four two-view DX studies in folders named like patients (names a hidden view must not show)."""
    root = tmp_path / "archive"
    for seed, name in enumerate(STUDY_NAMES):
        helpers.make_study(root / name, seed=3 * seed)
    return root


def _plugin(win):
    return next(a.plugin for a in win.plugin_host.registry.active if a.manifest is MANIFEST)


def _build(qtbot, panel, sources: list[Path], index_dir: Path) -> list:
    reports: list = []
    panel.controller.build_finished.connect(reports.append)
    assert panel.start_build(sources, index_dir)
    qtbot.waitUntil(lambda: bool(reports) and panel.controller.ready, timeout=WAIT)
    return reports


def _search(qtbot, panel, text: str, k: int = 20) -> list:
    before = panel.hits
    panel.query.setText(text)
    panel.k.setValue(k)
    assert panel.search()
    qtbot.waitUntil(lambda: panel.hits is not before and not panel.status.busy, timeout=WAIT)
    return panel.hits


def _shown_text(panel) -> str:
    items = [panel.results.item(i) for i in range(panel.results.count())]
    return "\n".join(item.text() + "\n" + item.toolTip() for item in items)


def test_build_shows_progress_cancel_keeps_work_and_building_again_resumes(
        qtbot, window, archive, tmp_path, monkeypatch):
    from cxrclip.index import open_index

    panel = _plugin(window).search_panel
    ctrl = panel.controller
    ctrl.batch_size = 2
    report_progress = ctrl._report_progress

    def user_cancels_after_first_batch(done: int, total: int) -> None:
        report_progress(done, total)
        if done >= 2:
            ctrl.cancel_build()

    monkeypatch.setattr(ctrl, "_report_progress", user_cancels_after_first_batch)
    reports: list = []
    ctrl.build_finished.connect(reports.append)
    index_dir = tmp_path / "index"
    assert panel.start_build([archive], index_dir)
    assert not panel.cancel_button.isHidden() and not panel.build_button.isEnabled()
    qtbot.waitUntil(lambda: bool(reports), timeout=WAIT)
    assert reports[0].cancelled and reports[0].added == 2
    assert (panel.last_progress.done, panel.last_progress.total) == (2, 8)
    assert "files/s" in panel.rate_label.text()
    assert "2 of 8 files" in panel.message.text() and "resume" in panel.message.text()
    assert panel.cancel_button.isHidden() and panel.build_button.isEnabled()
    qtbot.waitUntil(lambda: "2 views" in panel.index_label.text(), timeout=WAIT)
    assert "resume" in panel.message.text()  # still said once the kept views are searchable

    monkeypatch.setattr(ctrl, "_report_progress", report_progress)
    assert panel.start_build([archive], index_dir)
    qtbot.waitUntil(lambda: len(reports) == 2, timeout=WAIT)
    assert not reports[1].cancelled
    assert (reports[1].added, reports[1].skipped) == (6, 2)
    qtbot.waitUntil(lambda: "4 studies \u00b7 8 views" in panel.index_label.text(), timeout=WAIT)
    with open_index(index_dir) as index:
        info = index.info()
        assert (info.views, info.studies) == (8, 4)
        view_ids = [v.view_id for s in index.search_text(ctrl.engine(), "heart", k=10)
                    for v in index.study_views(s.study_key)]
    assert len(view_ids) == len(set(view_ids)) == 8
    assert window.settings.value("cxrclip_findings/index_dir") == str(index_dir)


def test_text_search_lists_ranked_studies_with_thumbnails_and_opens_one(qtbot, window, archive, tmp_path):
    panel = _plugin(window).search_panel
    _build(qtbot, panel, [archive], tmp_path / "index")
    hits = _search(qtbot, panel, "large right pneumothorax", k=3)
    assert [h.rank for h in hits] == [1, 2, 3] and panel.results.count() == 3
    assert all(a.score >= b.score - 1e-6 for a, b in zip(hits, hits[1:]))
    assert f"{hits[0].score:.3f}" in panel.results.item(0).text()
    assert Path(hits[0].folder).name in panel.results.item(0).text()
    qtbot.waitUntil(lambda: len(panel.thumbnails) == 3, timeout=WAIT)
    thumb = panel.thumbnails.get(hits[0].matching_view.path)
    assert thumb is not None and 0 < max(thumb.width(), thumb.height()) <= 72

    target = hits[1]
    panel.results.itemDoubleClicked.emit(panel.results.item(1))
    qtbot.waitUntil(lambda: window.model.current_study is not None
                    and window.model.current_study.study_uid == target.study_uid, timeout=WAIT)
    assert [s.study_uid for s in window.model.tree.studies()] == [target.study_uid]  # its folder


def test_a_newer_query_supersedes_an_older_one_and_stop_drops_the_result(
        qtbot, window, archive, tmp_path):
    panel = _plugin(window).search_panel
    _build(qtbot, panel, [archive], tmp_path / "index")
    delivered: list = []
    panel.controller.results_ready.connect(lambda request, hits: delivered.append(request.query))
    panel.query.setText("pleural effusion")
    assert panel.search()
    panel.query.setText("cardiomegaly")
    assert panel.search() and panel.search_button.text() == "Stop"
    qtbot.waitUntil(lambda: not panel.searching, timeout=WAIT)
    assert delivered == ["cardiomegaly"] and "cardiomegaly" in panel.status.label.text()

    shown = panel.hits
    panel.query.setText("pneumothorax")
    assert panel.search()
    panel.search_button.click()  # Stop
    assert panel.search_button.text() == "Search" and "stopped" in panel.status.label.text()
    assert panel.hits is shown
    panel.query.setText("heart")  # one query thread, first in first out: "heart" comes after
    assert panel.search()
    qtbot.waitUntil(lambda: not panel.searching, timeout=WAIT)
    assert delivered == ["cardiomegaly", "heart"]


def test_open_study_shows_the_asked_study_not_the_scans_first(qtbot, window, archive):
    from viewer.io.scan import scan_folder

    uids = [s.study_uid for s in scan_folder(archive).studies.studies()]
    host = window.plugin_host
    host.open_study(archive, uids[2])
    qtbot.waitUntil(lambda: window.model.tree is not None and window.model.current_study is not None
                    and window.model.current_study.study_uid == uids[2], timeout=WAIT)
    host.open_study(archive / "not-scanned-again", uids[3])  # in the open folder: shown at once
    assert window.model.current_study.study_uid == uids[3] and len(window.model.tree.studies()) == 4


def test_hide_phi_hides_identifiers_paths_and_file_names(qtbot, window, archive, tmp_path):
    panel = _plugin(window).search_panel
    _build(qtbot, panel, [archive], tmp_path / "index")
    window.set_hide_phi(True)
    _search(qtbot, panel, "pleural effusion", k=4)
    shown = _shown_text(panel)
    assert panel.results.count() == 4
    for secret in (*STUDY_NAMES, "PID-1", ".dcm", str(tmp_path), "2024-01-05"):
        assert secret not in shown, secret
    assert all(h.study_key in shown for h in panel.hits)
    window.set_hide_phi(False)
    shown = _shown_text(panel)
    assert "PID-1" in shown and all(name in shown for name in STUDY_NAMES)


def test_more_like_this_searches_with_the_open_study(qtbot, window, archive, tmp_path):
    panel = _plugin(window).search_panel
    _build(qtbot, panel, [archive], tmp_path / "index")
    window.open_path(archive / STUDY_NAMES[0])
    qtbot.waitUntil(lambda: window.model.current_study is not None, timeout=WAIT)
    before = panel.hits
    assert panel.more_like_this()
    qtbot.waitUntil(lambda: panel.hits is not before and not panel.status.busy, timeout=WAIT)
    names = [Path(h.folder).name for h in panel.hits]
    assert len(names) == 3 and STUDY_NAMES[0] not in names  # the example itself is left out


def test_bad_filter_is_shown_inline_and_not_searched(qtbot, window, archive, tmp_path):
    panel = _plugin(window).search_panel
    _build(qtbot, panel, [archive], tmp_path / "index")
    panel.filters.setText("Pleural Effusion>>0.8")
    assert not panel.filter_error.isHidden() and "KEY OP VALUE" in panel.filter_error.text()
    panel.query.setText("effusion")
    assert not panel.search()
    panel.filters.setText("view=PA; Pleural Effusion>0.0")
    assert panel.filter_error.isHidden()
    hits = _search(qtbot, panel, "effusion")
    assert hits and all(h.matching_view.view_position == "PA" for h in hits)


def _other_model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The tiny model under another model id (what a different model's folder looks like)."""
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["model_id"] = "another-model-0123456789abcdef"
    (other / "config.json").write_text(json.dumps(config))
    (other / "MANIFEST.sha256").unlink(missing_ok=True)  # changed on purpose
    return other


def test_index_of_another_model_is_refused_with_its_message(qtbot, window, archive, tmp_path,
                                                           tiny_model_dir):
    from cxrclip.engine import Engine
    from cxrclip.index import build_index

    index_dir = tmp_path / "other-index"
    engine = Engine.load(_other_model(tiny_model_dir, tmp_path))
    assert engine.model_id == "another-model-0123456789abcdef"
    build_index([archive / STUDY_NAMES[0]], index_dir, engine)
    panel = _plugin(window).search_panel
    panel.open_index(index_dir)
    qtbot.waitUntil(lambda: "another-model-0123456789abcdef" in panel.message.text(), timeout=WAIT)
    assert "Load Model" in panel.message.text() and "not usable" in panel.index_label.text()
    assert not panel.controller.ready
    panel.query.setText("effusion")
    panel.search()
    assert "another-model" in panel.status.label.text()
    failures: list[str] = []
    panel.controller.build_failed.connect(failures.append)
    panel.start_build([archive], index_dir)
    qtbot.waitUntil(lambda: bool(failures), timeout=WAIT)
    assert "another-model-0123456789abcdef" in failures[0] and "Build failed" in panel.message.text()


def test_index_package_is_imported_only_once_the_panel_stays_shown(qtbot, monkeypatch):
    from plugins.cxrclip_findings import search_panel as module
    from plugins.cxrclip_findings.search_controller import SearchController
    from plugins.cxrclip_findings.search_panel import SearchPanel

    monkeypatch.setattr(module, "PRELOAD_AFTER_MS", 50)
    controller = SearchController(lambda: None)
    calls = []
    monkeypatch.setattr(controller, "preload", lambda: calls.append(1))
    panel = SearchPanel(controller)
    qtbot.addWidget(panel)
    panel.show()
    panel.hide()  # shown for a moment, as at start-up before the dock is tabbed
    qtbot.wait(200)
    assert calls == []
    panel.show()
    qtbot.waitUntil(lambda: calls == [1], timeout=5_000)
    controller.shutdown()


def test_hide_phi_masks_folders_and_file_names_in_the_index_line_and_messages(qtbot, window, tmp_path):
    panel = _plugin(window).search_panel
    index_dir = tmp_path / "smith_john_archive"  # a folder name can identify a patient
    index_dir.mkdir()  # exists, but is no index: the message quotes its path
    panel.open_index(index_dir)
    qtbot.waitUntil(lambda: "not usable" in panel.index_label.text(), timeout=WAIT)
    assert "smith_john_archive" in panel.message.text() + panel.index_label.text()
    window.set_hide_phi(True)
    for text in (panel.message.text(), panel.index_label.text(), panel.status.label.text()):
        assert "smith_john" not in text and str(tmp_path) not in text, text
    assert "not usable" in panel.index_label.text() and panel.message.text()  # the message stays, masked
    panel.query.setText("effusion")
    panel.search()  # refused: the status names the index problem, masked too
    assert "smith_john" not in panel.status.label.text()
    panel.open_index(tmp_path / "doe_jane_archive")  # opened while PHI is hidden: masked from the start
    assert "doe_jane" not in panel.index_label.text() and "Opening index" in panel.index_label.text()
    qtbot.waitUntil(lambda: "not usable" in panel.index_label.text(), timeout=WAIT)
    assert "doe_jane" not in panel.index_label.text() + panel.message.text()
    window.set_hide_phi(False)
    assert "doe_jane_archive" in panel.message.text() + panel.index_label.text()

