"""JSON and DICOM SR export from plain data."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pydicom
import pytest

from plugins.cxrclip_findings.export_data import (
    ExportContent, ModelInfo, PatientInfo, ScoreEntry, StudyRef, ViewRef, ViewScore)
from plugins.cxrclip_findings.export_json import build_export, write_export
from plugins.cxrclip_findings.export_sr import SRExportError, write_sr
from plugins.cxrclip_findings.sr_codes import finding_code

DX = "1.2.840.10008.5.1.4.1.1.1.1"
NAME = "PHANTOM^Jane"


def _content(source: str = "dicom") -> ExportContent:
    if source == "dicom":
        views = (ViewRef("1.2.826.0.1.3680043.10.1.1", "PA", "DX", "PA", source="dicom",
                         sop_class_uid=DX, sop_instance_uid="1.2.826.0.1.3680043.10.1.1",
                         series_instance_uid="1.2.826.0.1.3680043.10.1.9"),
                 ViewRef("1.2.826.0.1.3680043.10.1.2", "LL", "DX", "LL", source="dicom",
                         sop_class_uid=DX, sop_instance_uid="1.2.826.0.1.3680043.10.1.2",
                         series_instance_uid="1.2.826.0.1.3680043.10.1.9"))
    else:
        views = (ViewRef(f"file:/data/{NAME}/pa.png", "pa.png", "OT", source="image",
                         file_name="pa.png"),)
    ids = [v.view_id for v in views]
    study = StudyRef("1.2.826.0.1.3680043.10.1", views, study_date="20240102",
                     accession_number="ACC42", patient=PatientInfo(NAME, "PID-7", "19600101", "F"))
    findings = (ScoreEntry("Cardiomegaly", 0.91, 0.31,
                           views=tuple(ViewScore(i, 0.9 - k * 0.1, 0.3) for k, i in enumerate(ids))),
                ScoreEntry("Pleural Effusion", 0.62, 0.2))
    prompts = (ScoreEntry("large right pneumothorax", 0.12, 0.05, "no pneumothorax",
                          views=(ViewScore(ids[0], 0.1, 0.04),)),)
    return ExportContent(study, ModelInfo("demo", "m-123", "resnet50", "cpu", synthetic=True),
                         findings, prompts, "Cardiomegaly.\nNo pleural effusion.", ("x vs y",))


def _all_strings(obj) -> str:
    return json.dumps(obj)


def test_json_without_identifiers():
    data = build_export(_content(), created=datetime(2024, 1, 2, tzinfo=timezone.utc))
    text = _all_strings(data)
    assert NAME not in text and "PID-7" not in text and "ACC42" not in text and "19600101" not in text
    assert "patient" not in data and data["identifiers_included"] is False
    assert data["schema"] == "cxrclip-findings" and data["created"] == "2024-01-02T00:00:00+00:00"
    assert [f["name"] for f in data["findings"]] == ["Cardiomegaly", "Pleural Effusion"]
    assert data["findings"][0]["views"][1] == {"view": "1.2.826.0.1.3680043.10.1.2",
                                               "probability": 0.8, "similarity": 0.3}
    assert data["prompts"][0]["negative"] == "no pneumothorax"
    assert data["study"]["views"][0]["sop_instance_uid"] == "1.2.826.0.1.3680043.10.1.1"
    assert data["model"]["synthetic"] is True
    assert data["draft"]["text"].startswith("Cardiomegaly.")


def test_json_with_identifiers(tmp_path):
    path = write_export(_content(), tmp_path / "out.json", include_identifiers=True)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["patient"]["name"] == NAME and data["patient"]["id"] == "PID-7"
    assert data["study"]["accession_number"] == "ACC42"


def test_json_image_views_hide_paths_unless_asked():
    data = build_export(_content("image"))
    assert NAME not in _all_strings(data)
    assert data["study"]["views"][0]["id"] == "view-1"
    assert data["findings"][0]["views"][0]["view"] == "view-1"
    with_ids = build_export(_content("image"), include_identifiers=True)
    assert with_ids["study"]["views"][0]["file_name"] == "pa.png"


def _walk(items):
    for item in items:
        yield item
        yield from _walk(getattr(item, "ContentSequence", []))


def test_sr_reads_back_with_findings_and_references(tmp_path):
    path = write_sr(_content(), tmp_path / "sr.dcm")
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SR" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.10.1"
    items = list(_walk(ds.ContentSequence))
    codes = {i.ConceptCodeSequence[0].CodeMeaning for i in items if i.ValueType == "CODE"
             and i.ConceptNameCodeSequence[0].CodeMeaning == "Finding"}
    assert codes == {"Cardiomegaly", "Pleural effusion"}
    cardio = next(i for i in items if i.ValueType == "CODE"
                  and i.ConceptCodeSequence[0].CodeMeaning == "Cardiomegaly")
    probs = [float(c.MeasuredValueSequence[0].NumericValue) for c in cardio.ContentSequence
             if c.ConceptNameCodeSequence[0].CodeMeaning == "Probability"]
    assert probs == pytest.approx([0.91, 0.9, 0.8])
    referenced = {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
                  for i in items if i.ValueType == "IMAGE"}
    assert referenced == {"1.2.826.0.1.3680043.10.1.1", "1.2.826.0.1.3680043.10.1.2"}
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
    listed = {s.ReferencedSOPInstanceUID for series in evidence.ReferencedSeriesSequence
              for s in series.ReferencedSOPSequence}
    assert listed == referenced
    texts = {i.ConceptNameCodeSequence[0].CodeMeaning: i.TextValue for i in items
             if i.ValueType == "TEXT"}
    assert texts["Prompt"] == "large right pneumothorax"
    assert texts["Negative prompt"] == "no pneumothorax"
    assert "not for clinical use" in texts["Comment"]
    assert texts["Draft report"].startswith("Cardiomegaly.")


def test_sr_refuses_png_only_study(tmp_path):
    with pytest.raises(SRExportError, match="only reference DICOM"):
        write_sr(_content("image"), tmp_path / "sr.dcm")


def test_finding_codes_are_standard_or_whole():
    cardio = finding_code("Cardiomegaly")
    assert (cardio.value, cardio.scheme_designator) == ("287272002", "SCT")
    assert finding_code("Lung Opacity").scheme_designator == "DCM"
    code = finding_code("Enlarged Cardiomediastinum")
    assert code.value == "ENLARGED_CARDIOMEDIASTINUM" and code.scheme_designator == "99CXRCLIP"
    assert "LongCodeValue" in code and "CodeValue" not in code  # > 16 chars: not cut
