"""Prior studies of a phantom patient: same anatomy, earlier date, changed findings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from training.phantoms.dicom_io import study_tags
from training.phantoms.findings import Finding
from training.phantoms.frontal import frontal_layers
from training.phantoms.priors import Change, StudySpec, prior_findings, prior_of, prior_tags, was
from training.phantoms.samples import write_pair
from training.phantoms.study import draw_findings

EFFUSION_MOD = Finding("Pleural Effusion", side="left", zone="lower", ap="posterior",
                       location="base", severity="moderate")
EFFUSION_MILD = Finding("Pleural Effusion", side="left", zone="lower", ap="posterior",
                        location="base", severity="mild")
PTX = Finding("Pneumothorax", side="right", zone="upper", ap="anterior", location="apical",
              severity="moderate")
CARDIO = Finding("Cardiomegaly", severity="moderate")
CHANGE = Change(days=120, before=(was("Pleural Effusion", EFFUSION_MILD), was("Pneumothorax", PTX)))
SIZE = 192


def _frontal_layers(spec: StudySpec, size: int = SIZE):
    study = spec.generate(size)
    layers = frontal_layers(study.anatomy, size)
    draw_findings(layers, study.anatomy, study.findings, "frontal", spec.seed, spec.index,
                  spec.visit)
    return study, layers


def test_prior_findings_grew_resolved_and_unchanged() -> None:
    prior = prior_findings([CARDIO, EFFUSION_MOD], CHANGE)
    assert [(f.name, f.severity) for f in prior] == [
        ("Cardiomegaly", "moderate"), ("Pleural Effusion", "mild"), ("Pneumothorax", "moderate")]
    new_since = Change(days=3, before=(was("Pleural Effusion", None),))
    assert [f.name for f in prior_findings([CARDIO, EFFUSION_MOD], new_since)] == ["Cardiomegaly"]


def test_change_rejects_bad_entries() -> None:
    with pytest.raises(ValueError, match="at least 1 day"):
        Change(days=0)
    with pytest.raises(ValueError, match="'Pneumothorax' holds a 'Pleural Effusion'"):
        Change(before=(was("Pneumothorax", EFFUSION_MILD),))


def test_same_seed_same_anatomy_changed_findings_visible() -> None:
    current_spec = StudySpec(31, 2, (CARDIO, EFFUSION_MOD))
    prior_spec = prior_of(current_spec, CHANGE)
    assert (prior_spec.seed, prior_spec.index, prior_spec.visit, prior_spec.days_before) == (31, 2, 1, 120)
    current, cur_layers = _frontal_layers(current_spec)
    prior, pri_layers = _frontal_layers(prior_spec)
    # same patient: identical anatomy (heart enlarged the same in both), lung and heart masks
    assert prior.anatomy == current.anatomy and prior.base_anatomy == current.base_anatomy
    for side in ("right", "left"):
        np.testing.assert_array_equal(pri_layers.lungs[side], cur_layers.lungs[side])
    np.testing.assert_array_equal(pri_layers.heart, cur_layers.heart)
    # the effusion grew: more of the left lung is filled with fluid now than then
    cur_fluid = int((cur_layers.fill["left"] * cur_layers.lungs["left"] > 0.5).sum())
    pri_fluid = int((pri_layers.fill["left"] * pri_layers.lungs["left"] > 0.5).sum())
    assert cur_fluid > 1.5 * pri_fluid > 0
    # the pneumothorax resolved: lung markings were cut off on the right then, not now
    assert pri_layers.markings_mask["right"].min() < 0.1
    assert cur_layers.markings_mask["right"].min() == 1.0
    # different acquisition: own noise, so the images differ
    assert not np.array_equal(prior.images["frontal"], current.images["frontal"])
    assert "pneumothorax" in (prior.report.findings + prior.report.impression).lower()
    assert "pneumothorax" not in current.report.impression.lower()


def test_visit_zero_unchanged_by_priors() -> None:
    a = StudySpec(31, 2, (CARDIO,)).generate(96)
    b = StudySpec(31, 2, (CARDIO,)).generate(96)
    np.testing.assert_array_equal(a.images["frontal"], b.images["frontal"])
    with pytest.raises(ValueError, match="needs its findings"):
        from training.phantoms.study import generate_study
        generate_study(31, 2, 96, visit=1)


def test_prior_tags_same_patient_earlier_date_new_uids() -> None:
    rng = np.random.default_rng([31, 2, 50])
    tags = study_tags(31, 2, "F", 60, rng)
    prior = prior_of(StudySpec(31, 2, (EFFUSION_MOD,)), Change(days=400))
    older = prior_tags(tags, prior)
    assert (older.patient_id, older.patient_name, older.sex) == (tags.patient_id, tags.patient_name, "F")
    assert older.study_date < tags.study_date and older.age == 59
    assert older.study_uid != tags.study_uid and older.accession != tags.accession
    with pytest.raises(ValueError, match="visit >= 1"):
        prior_tags(tags, StudySpec(31, 2))


def test_pair_files_are_one_patient_and_found_as_prior(tmp_path: Path) -> None:
    scan = pytest.importorskip("viewer.io.scan")
    priors = pytest.importorskip("viewer.model.priors")
    paths = write_pair(tmp_path, seed=9, size=128)
    assert len(paths) == 4
    heads = {p: pydicom.dcmread(p, stop_before_pixels=True) for p in paths}
    cur = [d for p, d in heads.items() if p.parent.name == "current"]
    pri = [d for p, d in heads.items() if p.parent.name == "prior"]
    assert {d.PatientID for d in heads.values()} == {cur[0].PatientID}
    assert {str(d.PatientName) for d in heads.values()} == {str(cur[0].PatientName)}
    assert pri[0].StudyDate < cur[0].StudyDate
    assert pri[0].StudyInstanceUID != cur[0].StudyInstanceUID
    assert not {d.SOPInstanceUID for d in cur} & {d.SOPInstanceUID for d in pri}
    assert not {d.SeriesInstanceUID for d in cur} & {d.SeriesInstanceUID for d in pri}
    tree = scan.scan_folder(tmp_path).studies
    current = next(s for s in tree.studies() if s.date == cur[0].StudyDate)
    found = priors.find_prior(tree, current)
    assert found is not None and found.study_uid == pri[0].StudyInstanceUID
