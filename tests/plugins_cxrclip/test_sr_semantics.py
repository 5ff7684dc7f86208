"""DICOM SR from real DICOM headers: identifiers (Basic Profile), codes, presence semantics,
model details and draft flags, re-read with pydicom and highdicom."""
from __future__ import annotations

import json
import stat
from dataclasses import replace

import highdicom as hd
import pydicom
import pytest

from plugins.cxrclip_findings.export_build import export_content
from plugins.cxrclip_findings.export_data import ModelInfo
from plugins.cxrclip_findings.export_json import write_export
from plugins.cxrclip_findings.export_sr import write_sr
from viewer.model.deidentify import read_evidence
from plugins.cxrclip_findings.study_state import StudyResults

PATIENT = "PHANTOM^Testpatient"
SOURCE_IDS = (PATIENT, "PID-1", "ACC1", "19500101")


class _Score:
    def __init__(self, finding, probability, views=()):
        self.finding, self.probability, self.similarity = finding, probability, 0.1
        self.views, self.negative = views, ""


def _walk(items):
    for item in items:
        yield item
        yield from _walk(getattr(item, "ContentSequence", []))


def _all_text(ds: pydicom.Dataset) -> str:
    """Every element value of the dataset, nested sequences included, as one string."""
    parts = []

    def visit(dataset, elem):
        if elem.VR != "SQ" and elem.tag != 0x7FE00010:
            parts.append(str(elem.value))

    ds.walk(visit)
    parts.extend(str(e.value) for e in ds.file_meta)
    return "\n".join(parts)


@pytest.fixture
def study_and_views(tmp_path, helpers):
    handle = helpers.study_handle(helpers.make_study(tmp_path / "s"))
    return handle, [v.meta for v in handle.views]


def _content(handle, views, operating_points=None, draft="Heart size is normal."):
    findings = [_Score("Cardiomegaly", 0.91), _Score("Pleural Effusion", 0.62),
                _Score("Enlarged Cardiomediastinum", 0.0007)]
    model = ModelInfo("Tiny", "tiny-123", "resnet18", "cpu", True, "Testing only",
                      operating_points or {})
    classes = {v.view_id: "1.2.840.10008.5.1.4.1.1.1.1" for v in views}
    return export_content(handle.study, views, model, findings, [], draft, classes)


def _finding_items(ds):
    return {i.ConceptCodeSequence[0].CodeMeaning: i for i in _walk(ds.ContentSequence)
            if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeValue == "121071"}


def _presence(item):
    return next(c.ConceptCodeSequence[0] for c in item.ContentSequence
                if c.ValueType == "CODE" and c.ConceptNameCodeSequence[0].CodeValue == "121052")


def test_sr_without_identifiers_follows_the_basic_profile(tmp_path, study_and_views):
    handle, views = study_and_views
    evidence = read_evidence([v.path for v in views])
    path = write_sr(_content(handle, views), tmp_path / "sr.dcm", evidence,
                    include_identifiers=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ds = pydicom.dcmread(path)
    text = _all_text(ds)
    for value in SOURCE_IDS + ("20240105",):  # name, ID, accession, birth date, study date
        assert value not in text
    for attr in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
                 "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID"):
        assert attr in ds and str(ds[attr].value or "") == ""  # type 2: present, empty
    assert ds.PatientIdentityRemoved == "YES"
    assert {c.CodeValue for c in ds.DeidentificationMethodCodeSequence} == {"113100", "113110"}
    assert ds.StudyInstanceUID == handle.study_uid  # Retain UIDs: the SR joins its study
    refs = {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in _walk(ds.ContentSequence)
            if i.ValueType == "IMAGE"}
    assert refs == {v.view_id for v in views}


def test_sr_with_identifiers_carries_them_all(tmp_path, study_and_views):
    handle, views = study_and_views
    evidence = read_evidence([v.path for v in views])
    ds = pydicom.dcmread(write_sr(_content(handle, views), tmp_path / "sr.dcm", evidence,
                                  include_identifiers=True))
    assert str(ds.PatientName) == PATIENT and ds.PatientID == "PID-1"
    assert ds.AccessionNumber == "ACC1" and ds.PatientBirthDate == "19500101"
    assert "PatientIdentityRemoved" not in ds


def test_json_without_identifiers_from_real_headers(tmp_path, study_and_views):
    handle, views = study_and_views
    content = _content(handle, views)
    without = (tmp_path / "a.json")
    write_export(content, without)
    text = without.read_text(encoding="utf-8")
    assert not any(value in text for value in SOURCE_IDS)
    assert stat.S_IMODE(without.stat().st_mode) == 0o600
    with_ids = json.loads(write_export(content, tmp_path / "b.json", True).read_text())
    assert (with_ids["patient"]["name"], with_ids["patient"]["id"],
            with_ids["study"]["accession_number"], with_ids["patient"]["birth_date"]) == SOURCE_IDS


def test_uncalibrated_model_states_no_presence(tmp_path, study_and_views):
    handle, views = study_and_views
    ds = pydicom.dcmread(write_sr(_content(handle, views), tmp_path / "sr.dcm"))
    findings = _finding_items(ds)
    assert set(findings) == {"Cardiomegaly", "Pleural effusion", "Enlarged Cardiomediastinum"}
    cardio_code = findings["Cardiomegaly"].ConceptCodeSequence[0]
    assert (cardio_code.CodeValue, cardio_code.CodingSchemeDesignator) == ("287272002", "SCT")
    long_code = findings["Enlarged Cardiomediastinum"].ConceptCodeSequence[0]
    assert long_code.LongCodeValue == "ENLARGED_CARDIOMEDIASTINUM"
    for item in findings.values():
        assert _presence(item).CodeValue == "121059"  # Presence Undetermined
    prob = next(c for c in findings["Enlarged Cardiomediastinum"].ContentSequence
                if c.ValueType == "NUM" and c.ConceptNameCodeSequence[0].CodeValue == "122157")
    value = prob.MeasuredValueSequence[0]
    assert float(value.NumericValue) == pytest.approx(0.0007)
    assert value.MeasurementUnitsCodeSequence[0].CodingSchemeDesignator == "UCUM"
    texts = {i.ConceptNameCodeSequence[0].CodeMeaning: i.TextValue
             for i in _walk(ds.ContentSequence) if i.ValueType == "TEXT"}
    assert texts["Calibration status"].startswith("uncalibrated")
    assert texts["Algorithm Name"] == "Tiny" and texts["Algorithm Version"] == "tiny-123"
    assert texts["Intended use"] == "Testing only"


def test_calibrated_model_states_presence_against_its_operating_point(tmp_path, study_and_views):
    handle, views = study_and_views
    points = {"Cardiomegaly": 0.5, "Pleural Effusion": 0.7}
    ds = pydicom.dcmread(write_sr(_content(handle, views, points), tmp_path / "sr.dcm"))
    findings = _finding_items(ds)
    assert _presence(findings["Cardiomegaly"]).CodeMeaning == "Present"  # 0.91 >= 0.5
    assert _presence(findings["Pleural effusion"]).CodeMeaning == "Absent"  # 0.62 < 0.7
    assert _presence(findings["Enlarged Cardiomediastinum"]).CodeValue == "121059"  # no point
    point = next(c for c in findings["Pleural effusion"].ContentSequence
                 if c.ConceptNameCodeSequence[0].CodeValue == "111071")
    assert float(point.MeasuredValueSequence[0].NumericValue) == pytest.approx(0.7)


def test_sr_reads_back_with_highdicom_and_keeps_draft_flags(tmp_path, study_and_views):
    handle, views = study_and_views
    draft = "Right pleural effusion.\nNo pleural effusion."
    content = _content(handle, views, draft=draft)
    assert content.contradictions  # the draft contradicts itself
    ds = pydicom.dcmread(write_sr(content, tmp_path / "sr.dcm"))
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    assert sr.ContentSequence is not None and sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    draft_item = next(i for i in _walk(ds.ContentSequence) if i.ValueType == "TEXT"
                      and i.ConceptNameCodeSequence[0].CodeMeaning == "Draft report")
    assert draft_item.TextValue == draft
    flags = [c.TextValue for c in draft_item.ContentSequence]
    assert len(flags) == 1 and "Pleural Effusion" in flags[0]


def test_study_results_contradictions_follow_the_draft():
    results = StudyResults("1.2.3")
    results.draft = "Right pleural effusion.\nHeart size is normal."
    assert results.contradictions == []
    results.draft += "\nNo pleural effusion."
    assert len(results.contradictions) == 1
    results = replace(results, draft="")
    assert results.contradictions == []
