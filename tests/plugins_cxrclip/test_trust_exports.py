"""Calibrated values, positive flags and out-of-distribution verdicts in the JSON and SR exports,
and the findings panel's calibration label, positive marks and greyed out-of-distribution rows."""
from __future__ import annotations

import pydicom
import pytest

from cxrclip.zero_shot import FindingScore, ViewOOD, ViewScore
from plugins.cxrclip_findings.export_build import export_content
from plugins.cxrclip_findings.export_data import ModelInfo
from plugins.cxrclip_findings.export_json import build_export
from plugins.cxrclip_findings.export_sr import write_sr
from viewer.model.deidentify import read_evidence
from plugins.cxrclip_findings.prompt_panel import unfamiliar_hint

POINTS = {"Cardiomegaly": 0.3, "Pleural Effusion": 0.7}


@pytest.fixture
def study_and_views(tmp_path, helpers):
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s"))
    return handle, [v.meta for v in handle.views]


def _findings(views, flagged: bool) -> list[FindingScore]:
    ood = tuple(ViewOOD(v.view_id, flagged and i == 0, 25.0 if flagged and i == 0 else 12.0, 20.0)
                for i, v in enumerate(views))
    per_view = [ViewScore(v.view_id, v.display_label, 0.1, 0.5, 0.0) for v in views]
    return [FindingScore("Cardiomegaly", 0.2, 0.81, per_view, 0.97, True, 0.3, True, ood),
            FindingScore("Pleural Effusion", 0.1, 0.42, per_view, 0.66, True, 0.7, False, ood)]


def _content(handle, views, flagged: bool):
    model = ModelInfo("Demo", "demo-1", "resnet", "cpu", True, "Testing only", POINTS)
    classes = {v.view_id: "1.2.840.10008.5.1.4.1.1.1.1" for v in views}
    return export_content(handle.study, views, model, _findings(views, flagged), [], "", classes)


def test_json_carries_calibrated_values_positive_flags_and_ood(study_and_views) -> None:
    handle, views = study_and_views
    data = build_export(_content(handle, views, flagged=True))
    cardio, effusion = data["findings"]
    assert cardio == {**cardio, "name": "Cardiomegaly", "probability": 0.81, "raw_probability": 0.97,
                      "calibrated": True, "positive": True, "operating_point": 0.3}
    assert effusion["positive"] is False and data["model"]["operating_points"] == POINTS
    first, second = data["study"]["views"]
    assert first["out_of_distribution"] == {"flag": True, "score": 25.0, "threshold": 20.0}
    assert second["out_of_distribution"]["flag"] is False
    assert data["out_of_distribution"] is True
    assert build_export(_content(handle, views, flagged=False))["out_of_distribution"] is False


def _code(item) -> str:
    """The concept name's code value (private values over 16 characters are LongCodeValue)."""
    code = item.ConceptNameCodeSequence[0]
    return str(code.get("CodeValue") or code.get("LongCodeValue"))


def _presences(ds) -> dict[str, str]:
    def walk(items):
        for item in items:
            yield item
            yield from walk(getattr(item, "ContentSequence", []))
    out = {}
    for item in walk(ds.ContentSequence):
        if item.ValueType == "CODE" and _code(item) == "121071":
            presence = next(c for c in item.ContentSequence if c.ValueType == "CODE")
            out[item.ConceptCodeSequence[0].CodeMeaning] = presence.ConceptCodeSequence[0].CodeMeaning
    return out


def _ood_texts(ds) -> list[str]:
    return [i.TextValue for i in ds.ContentSequence
            if i.ValueType == "TEXT" and _code(i) == "OUT_OF_DISTRIBUTION"]


def test_sr_states_presence_against_the_operating_point_unless_out_of_distribution(tmp_path, study_and_views):
    handle, views = study_and_views
    evidence = read_evidence([v.path for v in views])
    inside = pydicom.dcmread(write_sr(_content(handle, views, False), tmp_path / "in.dcm", evidence))
    presence = _presences(inside)
    assert presence["Cardiomegaly"] == "Present" and presence["Pleural effusion"] == "Absent"
    assert _ood_texts(inside) == []
    outside = pydicom.dcmread(write_sr(_content(handle, views, True), tmp_path / "out.dcm", evidence))
    assert set(_presences(outside).values()) == {"Presence Undetermined"}
    (text,) = _ood_texts(outside)
    assert "outside this model's experience" in text and "25.00 > threshold 20.00" in text


def test_prompt_hint_names_the_unknown_words() -> None:
    score = type("S", (), {"unfamiliar": True, "unknown_words": ("asdfgh",), "familiarity": 0.9})()
    assert "\u201casdfgh\u201d" in unfamiliar_hint(score) and "never saw" in unfamiliar_hint(score)
    assert unfamiliar_hint(type("S", (), {"unfamiliar": False})()) == ""
    ptx = type("S", (), {"unfamiliar": True, "unknown_words": ("ptx",), "suggestion": "apical pneumothorax"})()
    assert unfamiliar_hint(ptx).endswith("Try \u201capical pneumothorax\u201d.")


def test_findings_panel_marks_positives_and_greys_ood(qtbot, study_and_views) -> None:
    from PySide6.QtCore import Qt

    from plugins.cxrclip_findings.controller import FindingsController
    from plugins.cxrclip_findings.findings_panel import (
        CALIBRATED_TEXT, POSITIVE_MARK, UNCALIBRATED_TEXT, FindingsPanel)
    from plugins.cxrclip_findings.ui_common import MUTED_ROLE, POINT_ROLE

    handle, views = study_and_views
    controller = FindingsController(service_factory=lambda _d: None)
    panel = FindingsPanel(controller)
    qtbot.addWidget(panel)
    controller.open_study(handle)
    panel._model_ready(type("Summary", (), {"synthetic": True, "calibrated": True, "operating_points": POINTS})())
    assert panel.calibration_label.text() == CALIBRATED_TEXT
    panel.show_findings(_findings(views, flagged=False))
    top = panel.tree.topLevelItem(0)
    assert top.text(0) == "Cardiomegaly" + POSITIVE_MARK and top.font(0).bold()
    assert panel.tree.topLevelItem(1).text(0) == "Pleural Effusion"
    assert top.data(1, POINT_ROLE) == 0.3 and not top.data(1, MUTED_ROLE) and panel.ood_label.isHidden()
    panel.show_findings(_findings(views, flagged=True))
    top = panel.tree.topLevelItem(0)
    assert top.data(1, MUTED_ROLE) and top.data(2, MUTED_ROLE) and not top.font(0).bold()
    assert not panel.ood_label.isHidden() and "Outside this model's experience" in panel.ood_label.text()
    assert panel.row_findings() == ["Cardiomegaly", "Pleural Effusion"]
    panel._model_ready(type("Summary", (), {"synthetic": False, "calibrated": False, "operating_points": {}})())
    assert panel.calibration_label.text() == UNCALIBRATED_TEXT
    assert top.data(0, Qt.ItemDataRole.UserRole) == "Cardiomegaly"
    controller.shutdown()
