"""The plugin's panels and controller with a fake host and the tiny model (pytest-qt)."""
from __future__ import annotations

import json
import threading

import numpy as np
import pydicom
import pytest

from plugins.cxrclip_findings.overlays import LAYER_NAME
from plugins.cxrclip_findings.service import FindingsService

PATIENT_NAME = "PHANTOM^Testpatient"
WAIT = 60_000


@pytest.fixture
def make_plugin(qtbot, fake_host, tiny_model_dir, bank_dir, tmp_path, monkeypatch, helpers):
    """Activate plugins on the fake host; they are deactivated (worker stopped) at teardown."""
    monkeypatch.setenv("CXRCLIP_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("CXRCLIP_SENTENCE_BANK", str(bank_dir))
    made = []

    def make(service_factory=None):
        plugin = helpers.activate_plugin(qtbot, fake_host, tmp_path / "settings.ini", service_factory)
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        plugin.deactivate()


def _wait_findings(qtbot, plugin, count=14):
    qtbot.waitUntil(lambda: plugin.findings_panel.tree.topLevelItemCount() == count, timeout=WAIT)


def test_findings_heatmap_toggle_and_opacity(qtbot, make_plugin, fake_host, tmp_path, helpers):
    plugin = make_plugin()
    assert set(fake_host.panels) == {"Findings", "Prompt", "Report", "Model", "Change", "Search"}
    assert ("CXR-CLIP", "Toggle Heatmap", "Shift+H") in fake_host.actions
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s", shape=(70, 100)))
    plugin.study_opened(handle)
    _wait_findings(qtbot, plugin)
    assert plugin.model_panel.banner.isVisibleTo(plugin.model_panel)
    assert plugin.model_panel.values["backbone"].text().startswith("resnet18")
    tree = plugin.findings_panel.tree
    assert tree.headerItem().text(2) == "PA" and tree.headerItem().text(3).startswith("LL")
    item = tree.topLevelItem(0)
    plugin.findings_panel._clicked(item, 0)
    view_ids = [v.view_id for v in handle.views]
    qtbot.waitUntil(lambda: all(LAYER_NAME in fake_host.overlays.get(v, {}) for v in view_ids),
                    timeout=WAIT)
    layer = fake_host.overlays[view_ids[0]][LAYER_NAME]
    assert layer.rgba.shape == (70, 100, 4) and layer.visible
    assert layer.rgba[:, 0, 3].max() == 0  # outside the centre crop: transparent
    assert layer.colorbar is not None and layer.colorbar.vmin < layer.colorbar.vmax
    plugin.controller.toggle_heatmap()
    assert not fake_host.overlays[view_ids[0]][LAYER_NAME].visible
    assert not plugin.findings_panel.show_box.isChecked()
    plugin.findings_panel.show_box.setChecked(True)
    assert fake_host.overlays[view_ids[1]][LAYER_NAME].visible
    plugin.findings_panel.opacity.setValue(20)
    assert fake_host.overlays[view_ids[1]][LAYER_NAME].opacity == pytest.approx(0.2)


def test_prompt_typing_is_debounced_and_scored(qtbot, make_plugin, tmp_path, helpers):
    plugin = make_plugin()
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s"))
    plugin.study_opened(handle)
    _wait_findings(qtbot, plugin)
    panel = plugin.prompt_panel
    qtbot.keyClicks(panel.prompt, "large right pneumothorax")
    qtbot.waitUntil(lambda: "Study:" in panel.study_label.text(), timeout=WAIT)
    # keys arrived faster than the 150 ms debounce: one request for the whole text
    assert list(plugin.controller.prompt_scores) == ["large right pneumothorax"]
    assert panel.views.topLevelItemCount() == 2
    score = plugin.controller.prompt_scores["large right pneumothorax"]
    assert score.negative == "no large right pneumothorax"
    panel.negative.setText("no pneumothorax")
    panel.submit()
    qtbot.waitUntil(lambda: "no pneumothorax" in panel.study_label.text()
                    and "large" not in panel.study_label.text().split("vs")[1], timeout=WAIT)
    panel._commit()
    assert panel.history.items()[0] == "large right pneumothorax"


class GatedService:
    """Wraps a FindingsService; zero_shot of a chosen study waits for a gate."""

    def __init__(self, inner: FindingsService) -> None:
        self.inner = inner
        self.model_dir = inner.model_dir
        self.gate, self.entered = threading.Event(), threading.Event()
        self.block_study = None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def zero_shot(self, prepared):
        if prepared.study_id == self.block_study:
            self.entered.set()
            self.gate.wait(30)
        return self.inner.zero_shot(prepared)


def test_switching_studies_drops_stale_results(qtbot, make_plugin, bank_dir, tmp_path, helpers):
    services = []

    def factory(model_dir):
        services.append(GatedService(FindingsService.load(model_dir, bank_dir=bank_dir)))
        return services[-1]

    plugin = make_plugin(factory)
    qtbot.waitUntil(lambda: plugin.controller.service is not None, timeout=WAIT)
    first = helpers.study_handle(helpers.make_study(tmp_path / "a", 1))
    second = helpers.study_handle(helpers.make_study(tmp_path / "b", 2))
    services[0].block_study = first.study_uid
    plugin.study_opened(first)
    assert services[0].entered.wait(30)
    plugin.study_closed(first)
    plugin.study_opened(second)
    services[0].gate.set()
    _wait_findings(qtbot, plugin)
    qtbot.waitUntil(lambda: plugin.controller.dropped >= 1, timeout=WAIT)
    shown = {v.view_id for f in plugin.controller.findings for v in f.views}
    assert shown == {v.view_id for v in second.views}


def test_broken_model_shows_error_and_keeps_going(qtbot, make_plugin, fake_host, tmp_path,
                                                  helpers, monkeypatch):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"format_version": 1}')
    monkeypatch.setenv("CXRCLIP_MODEL", str(broken))
    plugin = make_plugin()
    status = plugin.model_panel.error
    qtbot.waitUntil(lambda: "Model failed to load" in status.text(), timeout=WAIT)
    assert fake_host.problems and fake_host.problems[0][0] == "CXR-CLIP model"
    plugin.study_opened(helpers.study_handle(helpers.make_study(tmp_path / "s")))
    assert "Model not available" in plugin.findings_panel.status.label.text()
    assert plugin.findings_panel.tree.topLevelItemCount() == 0


def test_not_applicable_study_says_why(qtbot, make_plugin, tmp_path, helpers):
    plugin = make_plugin()
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s"))
    plugin.study_not_applicable(handle, "CXR-CLIP findings handles CR, DX, OT; this study has CT")
    for panel in (plugin.findings_panel, plugin.prompt_panel, plugin.report_panel):
        assert "Idle: CXR-CLIP findings handles CR, DX, OT" in panel.status.label.text()


def test_report_draft_flags_contradictions(qtbot, make_plugin, tmp_path, helpers):
    plugin = make_plugin()
    plugin.study_opened(helpers.study_handle(helpers.make_study(tmp_path / "s")))
    panel = plugin.report_panel
    panel.add_sentence("Right pleural effusion.")
    panel.add_sentence("Heart size is normal.")
    panel.add_sentence("No pleural effusion.")
    assert panel.check_draft() == [0, 2]
    assert len(panel.draft.extraSelections()) == 2
    assert "Pleural Effusion" in panel.flags.text()
    panel.draft.setPlainText("Right pleural effusion.\nNo pneumothorax.")
    assert panel.check_draft() == [] and panel.flags.text() == ""


def test_sentences_export_json_and_sr(qtbot, make_plugin, tmp_path, helpers):
    plugin = make_plugin()
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s"))
    plugin.study_opened(handle)
    _wait_findings(qtbot, plugin)
    report = plugin.report_panel
    qtbot.waitUntil(lambda: report.sentences.count() == 6, timeout=WAIT)
    first = report.sentences.item(0)
    report.sentences.itemClicked.emit(first)
    assert report.draft_lines() == [first.data(0x0100)]
    plugin.prompt_panel.set_prompt("large")  # a partial prompt scored while typing
    qtbot.waitUntil(lambda: "large" in plugin.controller.prompt_scores, timeout=WAIT)
    plugin.prompt_panel.set_prompt("large right pneumothorax")
    qtbot.waitUntil(lambda: "large right pneumothorax" in plugin.controller.prompt_scores,
                    timeout=WAIT)

    data = json.loads(plugin.export_json(tmp_path / "out.json").read_text())
    assert PATIENT_NAME not in json.dumps(data) and "PHANTOM" not in json.dumps(data)
    assert {v["sop_class_uid"] for v in data["study"]["views"]} == {"1.2.840.10008.5.1.4.1.1.1.1"}
    assert len(data["findings"]) == 14
    assert [p["name"] for p in data["prompts"]] == ["large right pneumothorax"]
    assert data["draft"]["text"] == first.data(0x0100)
    with_ids = json.loads(plugin.export_json(tmp_path / "ids.json", True).read_text())
    assert with_ids["patient"]["name"] == PATIENT_NAME

    sr_path = tmp_path / "sr.dcm"
    assert plugin.export_sr(sr_path)  # started in the background
    qtbot.waitUntil(sr_path.exists, timeout=WAIT)
    ds = pydicom.dcmread(sr_path)
    assert ds.Modality == "SR" and ds.StudyInstanceUID == handle.study_uid
    assert PATIENT_NAME not in str(ds.PatientName) and ds.PatientIdentityRemoved == "YES"

    def walk(items):
        for item in items:
            yield item
            yield from walk(getattr(item, "ContentSequence", []))

    items = list(walk(ds.ContentSequence))
    findings = {i.ConceptCodeSequence[0].CodeMeaning for i in items if i.ValueType == "CODE"
                and i.ConceptNameCodeSequence[0].CodeMeaning == "Finding"}
    assert len(findings) == 14 and "Cardiomegaly" in findings
    refs = {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in items
            if i.ValueType == "IMAGE"}
    assert refs == {v.view_id for v in handle.views}
    assert np.isfinite([float(i.MeasuredValueSequence[0].NumericValue) for i in items
                        if i.ValueType == "NUM"]).all()


def test_sentences_follow_the_selected_view(qtbot, make_plugin, tmp_path, helpers):
    plugin = make_plugin()
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s"))
    plugin.study_opened(handle)
    _wait_findings(qtbot, plugin)
    report, service = plugin.report_panel, plugin.controller.service
    report.k.setValue(2)
    report.scope.setCurrentIndex(1)  # "Selected view"
    lateral = handle.views[1]
    plugin.view_selected(lateral)
    prepared = plugin.controller.study.prepared
    expected = [n.sentence for n in service.nearest_sentences(prepared, lateral.view_id, 2)]
    qtbot.waitUntil(lambda: [report.sentences.item(i).data(0x0100)
                             for i in range(report.sentences.count())] == expected, timeout=WAIT)
    plugin.study_opened(helpers.study_handle(helpers.make_study(tmp_path / "t", 3)))
    assert report.scope.currentIndex() == 1  # the scope survives a study switch


def test_convert_dialog_reports_errors_and_success(qtbot, tmp_path, monkeypatch):
    from plugins.cxrclip_findings import convert_dialog as cd

    def run_now(fn, done, fail):
        try:
            value = fn()
        except (OSError, ValueError) as exc:
            fail(exc)
        else:
            done(value)

    converted = []
    dialog = cd.ConvertDialog(runner=run_now, on_converted=converted.append)
    qtbot.addWidget(dialog)
    dialog.checkpoint.setText(str(tmp_path / "missing.tar"))
    dialog.start()
    assert "Conversion failed: FileNotFoundError" in dialog.message.text()
    assert "missing.tar" in dialog.message.text() and dialog.convert_button.isEnabled()

    calls = []
    monkeypatch.setattr(cd, "convert", lambda *args: calls.append(args) or "model-123")
    dialog.checkpoint.setText("ckpt.tar")
    dialog.text_encoder.setText("bert")
    dialog.out_dir.setText(str(tmp_path / "out"))
    dialog.backbone.setCurrentText("r50")
    dialog.start()
    assert calls == [("ckpt.tar", "bert", str(tmp_path / "out"), "r50")]
    assert "model-123" in dialog.message.text() and converted == [tmp_path / "out"]


def test_unreadable_view_is_named_and_others_scored(qtbot, make_plugin, tmp_path, helpers):
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    folder = helpers.make_study(tmp_path / "s")
    broken = pydicom.dcmread(folder / "lat.dcm")  # header fine, JPEG 2000 "pixels" garbage
    broken.file_meta.TransferSyntaxUID = JPEG2000Lossless
    broken.PixelData = encapsulate([b"not a JPEG 2000 codestream" * 4])
    broken["PixelData"].VR = "OB"
    broken.save_as(folder / "lat.dcm", enforce_file_format=True)
    plugin = make_plugin()
    handle = helpers.study_handle(folder)
    plugin.study_opened(handle)
    _wait_findings(qtbot, plugin)
    status = plugin.findings_panel.status.label.text()
    assert "could not be read" in status and "LL" in status
    scored = {v.view_id for f in plugin.controller.findings for v in f.views}
    assert scored == {handle.views[0].view_id}


def test_failed_second_model_keeps_the_first(qtbot, make_plugin, fake_host, tmp_path, helpers):
    plugin = make_plugin()
    qtbot.waitUntil(lambda: plugin.controller.service is not None, timeout=WAIT)
    first = plugin.controller.service
    plugin.study_opened(helpers.study_handle(helpers.make_study(tmp_path / "s")))
    _wait_findings(qtbot, plugin)
    plugin.load_model(tmp_path / "missing-model", remember=False)
    status = plugin.model_panel.error
    qtbot.waitUntil(lambda: "Model failed to load" in status.text(), timeout=WAIT)
    assert "still using" in status.text()
    assert plugin.controller.service is first
    assert plugin.model_panel.values["name"].text() == "Tiny plugin test model"
    assert plugin.findings_panel.tree.topLevelItemCount() == 14
    assert "Model not available" not in plugin.findings_panel.status.label.text()
