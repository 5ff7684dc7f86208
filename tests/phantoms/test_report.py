"""Reports state every positive finding, hedge the uncertain ones, and negate only absent ones."""
from __future__ import annotations

import re

import numpy as np
import pytest

from training.phantoms.findings import Finding, chexpert_14, make_finding, sample_findings
from training.phantoms.report import write_report

KEYWORDS = {
    "Cardiomegaly": ("cardiomegaly", "heart is"),
    "Enlarged Cardiomediastinum": ("mediastin",),
    "Lung Opacity": ("opacit", "consolidation", "edema", "nodule", "mass", "atelectasis"),
    "Lung Lesion": ("nodule", "mass"),
    "Edema": ("edema",),
    "Consolidation": ("consolidation",),
    "Pneumonia": ("pneumonia",),
    "Atelectasis": ("atelectasis",),
    "Pneumothorax": ("pneumothorax",),
    "Pleural Effusion": ("effusion",),
    "Pleural Other": ("pleural thickening", "plaque"),
    "Fracture": ("fracture",),
    "Support Devices": ("tube", "catheter", "pacemaker"),
}
HEDGES = ("possib", "cannot exclude", "probable", "likely", "may ")
NEGATIONS = ("no ", "not ", "normal")


def _sentences(text: str) -> list[str]:
    return [s.strip().lower() for s in re.split(r"(?<=\.)\s+|\d+\.\s", text) if s.strip()]


def _studies(n: int) -> list[tuple[list[Finding], object]]:
    out = []
    for i in range(n):
        rng = np.random.default_rng([11, i])
        findings = sample_findings(rng, p_normal=0.2, p_devices=0.3)
        out.append((findings, write_report(findings, np.random.default_rng([12, i]))))
    return out


STUDIES = _studies(300)


def test_positive_labels_are_stated_in_the_text() -> None:
    for _, rep in STUDIES:
        text = (rep.findings + " " + rep.impression).lower()
        for name, value in rep.labels.items():
            if value == 1 and name != "No Finding":
                assert any(k in text for k in KEYWORDS[name]), (name, text)


def test_uncertain_labels_are_hedged() -> None:
    seen = 0
    for _, rep in STUDIES:
        sentences = _sentences(rep.findings + " " + rep.impression)
        for name, value in rep.labels.items():
            if value == -1 and name != "Lung Opacity":
                seen += 1
                hits = [s for s in sentences if any(k in s for k in KEYWORDS[name])
                        or (name == "Pleural Effusion" and "costophrenic" in s)]
                assert hits and any(h in s for s in hits for h in HEDGES), (name, sentences)
    assert seen > 5, "some labels should be uncertain"


def test_negated_labels_are_never_stated_positively() -> None:
    for findings, rep in STUDIES:
        drawn = {f.name for f in findings}
        for name, value in rep.labels.items():
            if value != 0:
                continue
            assert name not in drawn
            for s in _sentences(rep.findings + " " + rep.impression):
                if any(k in s for k in KEYWORDS[name]):
                    assert any(n in s for n in NEGATIONS), (name, s)


def test_label_dependencies_and_no_finding() -> None:
    names = set(chexpert_14())
    for findings, rep in STUDIES:
        labels = rep.labels
        assert set(labels) <= names and set(labels.values()) <= {1, 0, -1}
        children = [labels.get(c) for c in ("Pneumonia", "Consolidation", "Edema", "Lung Lesion")]
        if 1 in children:
            assert labels["Lung Opacity"] == 1
        pathology = [k for k, v in labels.items()
                     if v in (1, -1) and k not in ("No Finding", "Support Devices")]
        assert (labels.get("No Finding") == 1) == (not pathology)
        assert bool(pathology) == any(f.name != "Support Devices" for f in findings)


def test_every_finding_appears_in_the_sample() -> None:
    counted = {n: 0 for n in chexpert_14()}
    for _, rep in STUDIES:
        for k, v in rep.labels.items():
            counted[k] += v == 1
    assert min(counted.values()) >= 5, counted


@pytest.mark.parametrize("name", sorted(KEYWORDS))
def test_uncertain_mild_finding_of_each_kind(name: str) -> None:
    rng = np.random.default_rng(3)
    f = Finding("Support Devices", kind="pacemaker") if name == "Support Devices" \
        else make_finding(rng, name)
    rep = write_report([f], np.random.default_rng(4))
    assert rep.findings.strip() and rep.impression.strip()
    expected = 1 if name != "Lung Opacity" or not f.uncertain else -1
    assert rep.labels[name] == expected


def test_every_finding_is_negated_with_the_zero_shot_anchor():
    """Generator 1.3: the zero-shot negative of each finding ("no cardiomegaly", the binary prompt
    the viewer scores against) is written as a sentence in reports of studies without it, and
    only there, labelled 0."""
    from cxrclip.prompts import binary_prompts

    said: dict[str, int] = {name: 0 for name in chexpert_14() if name != "No Finding"}
    for findings, report in _studies(300):
        present = {f.name for f in findings}
        sentences = _sentences(report.findings)
        for name in said:
            anchor = binary_prompts(name)[0] + "."
            if anchor in sentences:
                assert name not in present, (name, report.findings)
                assert report.labels.get(name) == 0, (name, report.labels)
                said[name] += 1
    missing = [name for name, count in said.items() if count == 0]
    assert not missing, f"never negated with the zero-shot anchor: {missing}"
