"""Per-finding change between the open study and its prior (no Qt).

`compare_findings(current, prior)` pairs the zero-shot findings of both studies
by name and gives, for each, the score difference (current - prior) and whether
the finding crossed its threshold: ``"new"`` (below then, at or above now) or
``"resolved"`` (at or above then, below now). The threshold is the calibrated
operating point when the model has one for that finding, else 0.5 on the raw
probability, which is labelled *uncalibrated*: 0.5 is no tested decision point.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

UNCALIBRATED_THRESHOLD = 0.5
NEW, RESOLVED, STABLE_POSITIVE, STABLE_NEGATIVE = "new", "resolved", "still present", ""


@dataclass(frozen=True)
class FindingChange:
    """One finding on both studies."""

    finding: str
    current: float
    prior: float
    threshold: float
    calibrated: bool           # threshold is the model's calibrated operating point
    out_of_distribution: bool  # a view of either study is outside the model's experience

    @property
    def delta(self) -> float:
        """Current minus prior score."""
        return self.current - self.prior

    @property
    def crossing(self) -> str:
        """``"new"``, ``"resolved"``, ``"still present"`` or ``""`` (absent on both)."""
        now, then = self.current >= self.threshold, self.prior >= self.threshold
        if now and not then:
            return NEW
        if then and not now:
            return RESOLVED
        return STABLE_POSITIVE if now else STABLE_NEGATIVE

    @property
    def threshold_label(self) -> str:
        """E.g. ``"op 0.42"`` (calibrated) or ``"0.5 (uncalibrated)"``."""
        return f"op {self.threshold:.2f}" if self.calibrated else \
            f"{self.threshold:g} (uncalibrated)"


def _threshold(score: Any) -> tuple[float, bool]:
    point = getattr(score, "operating_point", None)
    if getattr(score, "calibrated", False) and point is not None:
        return float(point), True
    return UNCALIBRATED_THRESHOLD, False


def compare_findings(current: Sequence[Any], prior: Sequence[Any]) -> list[FindingChange]:
    """Findings present in both lists (`FindingScore`-like: ``finding``, ``probability``,
    optional ``calibrated``/``operating_point``), largest absolute change first.

    Both studies must be scored the same way: a finding calibrated on one and not on the
    other (another model) raises ValueError rather than comparing unlike numbers."""
    before = {f.finding: f for f in prior}
    out = []
    for now in current:
        then = before.get(now.finding)
        if then is None:
            continue
        if bool(getattr(now, "calibrated", False)) != bool(getattr(then, "calibrated", False)):
            raise ValueError(f"{now.finding}: the current score is "
                             f"{'' if getattr(now, 'calibrated', False) else 'un'}calibrated and "
                             "the prior's is not; score both studies with the same model")
        threshold, calibrated = _threshold(now)
        ood = bool(getattr(now, "out_of_distribution", False)
                   or getattr(then, "out_of_distribution", False))
        out.append(FindingChange(now.finding, float(now.probability), float(then.probability),
                                 threshold, calibrated, ood))
    return sorted(out, key=lambda c: (-abs(c.delta), c.finding))


def match_views(current: Sequence[Any], prior: Sequence[Any]) -> dict[str, Any]:
    """Current view id -> the prior's view score with the same label (``"PA"``, ``"LL"``...),
    for the views both studies have."""
    by_label: dict[str, Any] = {}
    for view in prior:
        by_label.setdefault(view.label, view)
    return {v.view_id: by_label[v.label] for v in current if v.label in by_label}
