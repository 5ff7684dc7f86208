"""Prior studies of a phantom patient: same anatomy, an earlier date, changed findings.

A study is described by a `StudySpec` (seed, index, findings, visit). `prior_of(spec,
change)` gives the spec of the same patient's earlier study: the same seed and index
(so the same body, lungs, heart and positioning), the next visit number (its own noise,
finding shapes and report wording, new Study/Series/SOP UIDs) and the findings as they
were then, described by a `Change`::

    current = StudySpec(102, findings=(effusion_moderate, cardiomegaly))
    prior = prior_of(current, Change(days=97, before=(
        was("Pleural Effusion", effusion_mild),     # smaller then: it grew
        was("Pneumothorax", right_pneumothorax),    # present then, absent now: resolved
    )))
    study = prior.generate(size=1024)
    tags = prior_tags(current_tags, prior)          # same PatientID/name, earlier date
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from training.phantoms.dicom_io import StudyTags, uid
from training.phantoms.findings import Finding, sample_findings
from training.phantoms.study import PhantomStudy, _rng, generate_study


@dataclass(frozen=True)
class Change:
    """How the findings differed on an earlier study, and how long before it was made.

    ``before`` holds ``(name, finding)`` pairs: the named finding as it was on the prior
    (``None``: absent then, i.e. new since). A finding named here that the current study
    lacks was present then and has resolved. Findings not named are unchanged.
    """

    days: int = 180
    before: tuple[tuple[str, Finding | None], ...] = ()

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"a prior is at least 1 day earlier, got days={self.days}")
        for name, finding in self.before:
            if finding is not None and finding.name != name:
                raise ValueError(f"Change entry {name!r} holds a {finding.name!r} finding; "
                                 "name each entry after its finding")


def was(name: str, finding: Finding | None) -> tuple[str, Finding | None]:
    """One `Change.before` entry: ``name`` as it was on the prior (None = absent then)."""
    return (name, finding)


@dataclass(frozen=True)
class StudySpec:
    """What to generate for one study of a phantom patient."""

    seed: int
    index: int = 0
    findings: tuple[Finding, ...] | None = None   # None: sampled from (seed, index)
    visit: int = 0               # 0 = the study itself, k = its k-th earlier study
    days_before: int = 0         # days before visit 0 (0 for visit 0)

    def resolved_findings(self) -> list[Finding]:
        """The findings, sampled from the seed when not given (as `generate_study` does)."""
        if self.findings is not None:
            return list(self.findings)
        return sample_findings(_rng(self.seed, self.index, 2))

    def generate(self, size: int = 512) -> PhantomStudy:
        """Render the study (views, report, labels) in memory."""
        return generate_study(self.seed, self.index, size, findings=self.resolved_findings(),
                              visit=self.visit)


def prior_findings(current: list[Finding], change: Change) -> list[Finding]:
    """The findings of the prior: current ones replaced/removed per ``change``, resolved
    ones added (in the order ``change`` names them)."""
    before = dict(change.before)
    out = [before[f.name] if f.name in before else f for f in current]
    present = {f.name for f in current}
    out += [f for name, f in change.before if name not in present]
    return [f for f in out if f is not None]


def prior_of(spec: StudySpec, change: Change) -> StudySpec:
    """The spec of the same patient's study ``change.days`` before ``spec``."""
    findings = prior_findings(spec.resolved_findings(), change)
    return StudySpec(seed=spec.seed, index=spec.index, findings=tuple(findings),
                     visit=spec.visit + 1, days_before=spec.days_before + change.days)


def prior_tags(current: StudyTags, prior: StudySpec) -> StudyTags:
    """DICOM identifiers of ``prior`` from those of the visit-0 study: same Patient ID,
    name and sex; earlier date (age adjusted); new Study UID and accession number."""
    if prior.visit < 1:
        raise ValueError(f"prior_tags needs a prior spec (visit >= 1), got visit {prior.visit}")
    day = dt.date.fromisoformat(_iso(current.study_date)) - dt.timedelta(days=prior.days_before)
    rng = _rng(prior.seed, prior.index, 51, prior.visit)
    secs = int(rng.integers(7 * 3600, 22 * 3600))
    return replace(
        current,
        age=current.age - _years_between(day, dt.date.fromisoformat(_iso(current.study_date))),
        study_uid=uid(prior.seed, prior.index, "study", "visit", prior.visit),
        accession=f"{current.accession}P{prior.visit}",
        study_date=day.strftime("%Y%m%d"),
        study_time=f"{secs // 3600:02d}{secs // 60 % 60:02d}{secs % 60:02d}",
    )


def _iso(da: str) -> str:
    return f"{da[:4]}-{da[4:6]}-{da[6:8]}"


def _years_between(earlier: dt.date, later: dt.date) -> int:
    """Whole years between two dates (an approximation of the age change: no birth date)."""
    return (later - earlier).days // 365
