"""The application model without Qt: studies, selection, layout, priors, links, Hide-PHI."""
from __future__ import annotations

from pathlib import Path

import pytest

from viewer.model.measurements import Measurement
from viewer.model.priors import find_prior, groups, same_patient
from viewer.model.study import Patient, Series, Study, StudyTree, View
from viewer.model.viewer_model import NoPriorError, ViewerModel


class FakeScan:
    def __init__(self, tree: StudyTree) -> None:
        self.studies, self.problems = tree, []


def _add(tree: StudyTree, patient: str, name: str, study: str, date: str, positions=("PA", "LL")):
    for index, position in enumerate(positions):
        view = View(f"{study}.{index}", Path(f"/data/{study}/{index}.dcm"), modality="CR",
                    view_position=position, study_uid=study, series_uid=f"{study}.s",
                    patient_id=patient, instance_number=index + 1)
        tree.add(view, Patient(patient, name), Study(study, patient, date), Series(f"{study}.s"))


@pytest.fixture
def tree() -> StudyTree:
    tree = StudyTree()
    _add(tree, "P1", "Doe^Jane", "cur", "20240105")
    _add(tree, "P1", "Doe^Jane", "old", "20200101")
    _add(tree, "P1", "Doe^Jane", "mid", "20220101")
    _add(tree, "P1", "Doe^Jane", "later", "20250101")
    _add(tree, "P2", "Roe^Rick", "other", "20230101")
    _add(tree, "", "", "anon1", "20230101")
    _add(tree, "", "", "anon2", "20240101")
    return tree


@pytest.fixture
def model(tree) -> ViewerModel:
    model = ViewerModel()
    model.set_scan(FakeScan(tree), "/data")
    return model


def test_prior_is_the_latest_earlier_study_of_the_same_patient(tree):
    assert find_prior(tree, tree.study("cur")).study_uid == "mid"
    assert find_prior(tree, tree.study("old")) is None
    assert find_prior(tree, tree.study("other")) is None
    assert find_prior(tree, tree.study("anon2")) is None  # no patient id: no grouping
    assert [[s.study_uid for s in g] for g in groups(tree)] == [["old", "mid", "cur", "later"]]


def test_same_id_with_another_name_is_not_the_same_patient():
    a = Study("a", "P1", patient=Patient("P1", "Doe^Jane"))
    b = Study("b", "P1", patient=Patient("P1", "Smith^Al"))
    c = Study("c", "P1", patient=Patient("P1", "DOE JANE"))
    assert not same_patient(a, b) and same_patient(a, c)


def test_open_select_close_emit_in_order(model, tree):
    events = []
    model.study_opened.connect(lambda s: events.append(("opened", s.study_uid)))
    model.selection_changed.connect(lambda v: events.append(("selected", v)))
    model.study_closed.connect(lambda s: events.append(("closed", s.study_uid)))
    model.open_study(tree.study("cur"))
    assert model.selected_view.meta.view_position == "PA"
    model.select_view("cur.1")
    model.open_study(tree.study("other"))
    assert events == [("opened", "cur"), ("selected", "cur.0"), ("selected", "cur.1"),
                      ("closed", "cur"), ("opened", "other"), ("selected", "other.0")]
    with pytest.raises(KeyError, match="not open"):
        model.select_view("cur.0")


def test_compare_layout_shows_both_frontals_with_linked_window_and_geometry(model, tree):
    model.open_study(tree.study("cur"))
    priors, layouts = [], []
    model.prior_changed.connect(lambda p: priors.append(p and p.study_uid))
    model.layout_changed.connect(layouts.append)
    model.set_layout("compare")
    shown = [h.view_id for h in model.shown_views()]
    assert shown == ["cur.0", "mid.0"] and layouts == ["compare"] and priors == ["mid"]
    current, prior = (model.display_state(v) for v in shown)
    current.set_window(300, 600)
    assert (prior.window_center, prior.window_width) == (300, 600)
    current.set_zoom(2.5)
    current.pan_by(10, -4)
    assert (prior.zoom, prior.pan, prior.fit) == (2.5, (10, -4), False)
    model.set_layout("study")
    assert priors == ["mid", None] and model.prior_study is None
    current.set_window(100, 50)
    assert prior.window_center == 300  # no longer linked


def test_compare_without_prior_says_why(model, tree):
    model.open_study(tree.study("old"))
    with pytest.raises(NoPriorError, match="no earlier study"):
        model.set_layout("compare")
    assert model.layout == "study"


def test_user_window_sync_and_hide_phi(model, tree):
    model.open_study(tree.study("cur"))
    pa, lat = (model.display_state(h.view_id) for h in model.current_study.views)
    pa.set_window(10, 20)
    assert lat.window_center is None
    seen = []
    model.sync_changed.connect(seen.append)
    model.set_sync_window(True)
    pa.set_window(30, 40)
    assert (lat.window_center, lat.window_width) == (30, 40) and seen == [True]
    hidden = []
    model.phi_hidden_changed.connect(hidden.append)
    model.set_hide_phi(True)
    model.set_hide_phi(True)
    assert hidden == [True] and model.redactor.scrub("Doe^Jane") != "Doe^Jane"


def test_measurements_are_dropped_with_their_study(model, tree):
    model.open_study(tree.study("cur"))
    model.measurements.add(Measurement("ruler", "cur.0", ((0, 0), (3, 4))))
    assert model.measurements.result(model.measurements.all()[0]).text == "5.0 px"
    assert model.measurements.context("cur.0").label == "PA"
    model.close_study()
    assert len(model.measurements) == 0 and model.current_study is None


def test_compare_window_link_maps_between_value_ranges(model, tree):
    model.open_study(tree.study("cur"))
    model.set_layout("compare")
    current, prior = (model.display_state(h.view_id) for h in model.shown_views())
    current.value_range, prior.value_range = (0.0, 4000.0), (0.0, 1000.0)
    current.set_window(1000, 2000)
    assert (prior.window_center, prior.window_width) == (250, 500)
    prior.value_range = (0.0, 4000.0)  # same scale: the same window
    current.set_window(1200, 800)
    assert (prior.window_center, prior.window_width) == (1200, 800)


def test_adjacent_study_wraps_and_follows_a_given_order(model, tree):
    assert model.adjacent_study(1).study_uid == "cur"  # nothing shown: the first
    model.open_study(tree.study("cur"))
    assert model.adjacent_study(1).study_uid == "old"
    assert model.adjacent_study(-1).study_uid == "anon2"  # wraps around
    assert model.adjacent_study(1, ["later", "cur", "mid"]).study_uid == "mid"
    assert model.adjacent_study(1, ["mid", "later"]).study_uid == "mid"  # current filtered out


def test_study_rows_hide_identifiers(tree):
    from viewer.model.phi import Redactor
    from viewer.model.study_rows import study_rows

    redactor = Redactor()
    redactor.add_tree(tree)
    shown = study_rows(tree, False, redactor, lambda s: 2 if s.study_uid == "mid" else 0)
    cur = next(r for r in shown if r.study_uid == "cur")
    assert cur.cells() == ("Doe Jane", "P1", "2024-01-05", "", "CR", "PA, LL", "")
    assert next(r for r in shown if r.study_uid == "mid").cells()[-1] == "2"
    hidden = next(r for r in study_rows(tree, True, redactor) if r.study_uid == "cur")
    assert hidden.cells()[:3] == ("Anonymous", "", "") and hidden.sort_date == "20240105"


def test_measurements_as_a_tid1500_sr_without_identifiers(tmp_path, make_dicom):
    import numpy as np
    import pydicom

    from viewer.io.scan import scan_folder

    path = make_dicom(np.full((20, 20), 7, np.uint16), "d/pa.dcm", bits_stored=12,
                      PatientName="Secret^Sam", PatientID="SEC-991", PatientBirthDate="19500101",
                      StudyDate="20240202", AccessionNumber="ACC-7731", ReferringPhysicianName="Doc^Who",
                      StudyID="S1", StudyTime="101010", PatientSex="M", Modality="DX", ViewPosition="PA",
                      PixelSpacing=[0.5, 0.5])
    ds = pydicom.dcmread(path)
    model = ViewerModel()
    model.set_scan(scan_folder(tmp_path / "d"))
    model.open_study(model.tree.studies()[0])
    view_id = model.current_study.views[0].view_id
    for kind, points in (("ruler", ((0, 0), (6, 8))), ("angle", ((5, 0), (0, 0), (0, 5))),
                         ("ellipse", ((2, 2), (10, 8))), ("rect", ((1, 1), (5, 5))),
                         ("ctr", ((4, 10), (10, 10), (1, 12), (19, 12)))):
        model.measurements.add(Measurement(kind, view_id, points))
    path = model.write_measurements_sr(tmp_path / "m.dcm")
    sr = pydicom.dcmread(path)
    text = str(sr)
    for secret in ("Secret", "SEC-991", "19500101", "20240202", "ACC-7731", "Doc^Who"):
        assert secret not in text, secret
    assert sr.PatientIdentityRemoved == "YES" and sr.StudyInstanceUID == ds.StudyInstanceUID
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    values = {}

    def walk(items):
        for item in items:
            if item.ValueType == "NUM":
                values.setdefault(item.ConceptNameCodeSequence[0].CodeMeaning, []).append(
                    (float(item.MeasuredValueSequence[0].NumericValue),
                     item.MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue))
            walk(getattr(item, "ContentSequence", []))

    walk(sr.ContentSequence)
    assert values["Length"] == [(5.0, "mm")]  # 10 px x 0.5 mm
    assert values["Angle"][0][0] == pytest.approx(90.0) and values["Angle"][0][1] == "deg"
    assert [u for _v, u in values["Area"]] == ["mm2", "mm2"]
    assert values["Mean"] == [(7.0, "1"), (7.0, "1")]
    assert values["Cardiothoracic ratio"][0][0] == pytest.approx(6 / 18)
    with_ids = pydicom.dcmread(model.write_measurements_sr(tmp_path / "ids.dcm", include_identifiers=True))
    assert with_ids.PatientID == "SEC-991"
