"""Per-finding calibration and operating points, stored as ``calibration.json`` in a model folder.

Fitted by ``cxrclip calibrate`` on labelled studies (see docs/trust.md):

- **Method rule.** Isotonic regression on the raw logit when the finding has at least
  `ISOTONIC_MIN_PER_CLASS` positives *and* negatives; otherwise Platt scaling
  (``sigmoid(a * logit + b)``, fitted by Newton's method on Platt's smoothed targets).
  A finding with fewer than `MIN_PER_CLASS` of either class stays uncalibrated and
  gets no operating point.
- **Operating point rule.** Youden's J (sensitivity + specificity - 1) maximised on the
  calibrated probabilities of the fitting data among the thresholds whose specificity is
  at least `MIN_SPECIFICITY` (0.9); the threshold is the midpoint between the two
  neighbouring scores, so perfectly separated classes get a point between them. Plain
  Youden put weakly separated findings at low thresholds (demo model, held-out: 4.2
  positive findings per study for 1.7 true ones, 1.8 on normal studies); with the
  specificity floor 1.8 and 0.2. A finding is *positive* when its calibrated probability
  is >= its operating point.
- **Reliability.** ECE (10 equal-width bins, weighted by bin size) and Brier score.

No torch, no sklearn: the engine applies calibrations on machines that only have numpy.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
FORMAT = "cxrclip-calibration"
FORMAT_VERSION = 1
MIN_PER_CLASS = 10
ISOTONIC_MIN_PER_CLASS = 200
ECE_BINS = 10
MIN_SPECIFICITY = 0.9
_EPS = 1e-6
METHOD_RULE = (f"centred isotonic (knots at the pooled blocks' mean logits) when >= {ISOTONIC_MIN_PER_CLASS} "
               f"positives and negatives, else Platt (sigmoid(a*logit+b)); uncalibrated below {MIN_PER_CLASS} "
               "of either class")
OPERATING_POINT_RULE = (f"Youden's J maximised on the calibrated probabilities of the fitting data among "
                        f"thresholds with specificity >= {MIN_SPECIFICITY} (midpoint between neighbouring "
                        f"scores); positive when probability >= point")


class CalibrationError(ValueError):
    """A calibration file or fit input is unusable; the message names the value and the fix."""


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -np.asarray(x, np.float64)))


@dataclass(frozen=True)
class FindingCalibration:
    """One finding's map from raw logit to calibrated logit, and its operating point."""

    method: str  # "platt" | "isotonic"
    n_positive: int
    n_negative: int
    a: float = 1.0
    b: float = 0.0
    knots_x: tuple[float, ...] = ()  # isotonic: raw logits ...
    knots_y: tuple[float, ...] = ()  # ... and calibrated probabilities (non-decreasing)
    operating_point: float | None = None
    youden_j: float | None = None

    def logit(self, raw_logit: np.ndarray | float) -> np.ndarray:
        """Calibrated logit of raw logits (any shape)."""
        x = np.asarray(raw_logit, np.float64)
        if self.method == "platt":
            return self.a * x + self.b
        if self.method == "isotonic":
            return _logit(np.interp(x, self.knots_x, self.knots_y))
        raise CalibrationError(f"unknown calibration method {self.method!r}; expected 'platt' or 'isotonic'")

    def probability(self, raw_logit: np.ndarray | float) -> np.ndarray:
        return _sigmoid(self.logit(raw_logit))


@dataclass
class Calibration:
    """All findings' calibrations of one model, with what they were fitted on."""

    model_id: str
    findings: dict[str, FindingCalibration]
    no_finding: str = "complement"
    data: list[str] = field(default_factory=list)
    split: str = ""
    views: str = "frontal"
    """What a fitting study's score came from: its frontal view, or all its views ("study",
    as the viewer scores a study); files written before this field say nothing: frontal."""
    created: str = ""
    command: str = ""
    method_rule: str = METHOD_RULE
    operating_point_rule: str = OPERATING_POINT_RULE
    reliability: dict[str, Any] = field(default_factory=dict)

    def has(self, finding: str) -> bool:
        return finding in self.findings

    def logit(self, finding: str, raw_logit: np.ndarray) -> np.ndarray:
        """Calibrated logit; the raw logit unchanged for a finding without calibration."""
        found = self.findings.get(finding)
        return np.asarray(raw_logit, np.float64) if found is None else found.logit(raw_logit)

    def operating_point(self, finding: str) -> float | None:
        found = self.findings.get(finding)
        return None if found is None else found.operating_point

    def operating_points(self) -> dict[str, float]:
        """finding -> operating point (calibrated probability), for findings that have one."""
        return {n: c.operating_point for n, c in self.findings.items() if c.operating_point is not None}

    def to_dict(self) -> dict[str, Any]:
        out = {"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self)}
        for entry in out["findings"].values():
            entry["knots_x"], entry["knots_y"] = list(entry["knots_x"]), list(entry["knots_y"])
        return out

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / CALIBRATION_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = CALIBRATION_FILE) -> Calibration:
        if data.get("format") != FORMAT or data.get("format_version") != FORMAT_VERSION:
            raise CalibrationError(f"{source} is not a {FORMAT} v{FORMAT_VERSION} file "
                                   f"(format {data.get('format')!r}, version {data.get('format_version')!r}); "
                                   "re-run `cxrclip calibrate`")
        try:
            findings = {str(n): FindingCalibration(**{**e, "knots_x": tuple(e.get("knots_x", ())),
                                                       "knots_y": tuple(e.get("knots_y", ()))})
                        for n, e in data["findings"].items()}
            keys = {k: data[k] for k in ("no_finding", "data", "split", "views", "created", "command", "method_rule",
                                         "operating_point_rule", "reliability") if k in data}
            return cls(model_id=str(data["model_id"]), findings=findings, **keys)
        except (KeyError, TypeError) as exc:
            raise CalibrationError(f"{source} is damaged ({type(exc).__name__}: {exc}); "
                                   "re-run `cxrclip calibrate`") from exc

    @classmethod
    def load(cls, model_dir: str | Path, model_id: str | None = None) -> Calibration | None:
        """The folder's calibration, or None when it has none. A calibration fitted for
        another model id is ignored with a warning (the weights changed since)."""
        path = Path(model_dir) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CalibrationError(f"{path} is not readable JSON ({exc}); re-run `cxrclip calibrate`") from exc
        calibration = cls.from_dict(data, str(path))
        if model_id is not None and calibration.model_id != model_id:
            log.warning("%s was fitted for model %s, not %s: ignored (re-run `cxrclip calibrate`)",
                        path, calibration.model_id, model_id)
            return None
        return calibration


# ----- fitting ----------------------------------------------------------------------------
def _check_binary(logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(logits, np.float64).ravel(), np.asarray(targets).ravel()
    if x.shape != y.shape:
        raise CalibrationError(f"{x.size} scores but {y.size} targets; give one target per score")
    if not np.isin(y, (0, 1)).all():
        raise CalibrationError(f"targets must be 0 or 1, got values {sorted(set(y.tolist()))[:5]}")
    if not np.isfinite(x).all():
        raise CalibrationError("scores contain NaN or infinity; check the embeddings")
    return x, y.astype(np.float64)


def fit_platt(logits: np.ndarray, targets: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """(a, b) of ``P(y=1) = sigmoid(a * logit + b)`` by Newton's method on Platt's smoothed
    targets ((n+ + 1) / (n+ + 2) for positives, 1 / (n- + 2) for negatives)."""
    x, y = _check_binary(logits, targets)
    n_pos, n_neg = y.sum(), (1 - y).sum()
    t = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    def loss(a: float, b: float) -> float:
        z = a * x + b
        return float(np.sum(np.logaddexp(0.0, z) - t * z))

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):
        p = _sigmoid(a * x + b)
        w = np.maximum(p * (1 - p), 1e-12)
        grad = np.array([np.sum((p - t) * x), np.sum(p - t)])
        hess = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6 and loss(a - scale * step[0], b - scale * step[1]) > current:
            scale /= 2  # damped Newton: never increase the loss
        a, b = a - scale * step[0], b - scale * step[1]
        current = loss(a, b)
        if np.abs(scale * step).max() < 1e-10:
            break
    return float(a), float(b)


def fit_isotonic(logits: np.ndarray, targets: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Knots (raw logits, probabilities) of centred isotonic regression.

    Pool adjacent violators gives the non-decreasing least-squares fit as blocks of
    neighbouring logits; each block becomes one knot at its mean logit with its mean
    target, and predictions interpolate linearly between knots (flat outside). Knots at
    the blocks' edges instead (plain isotonic interpolation) let two neighbouring logits
    a hair apart jump from one block's value to the next: on the demo model a raw-logit
    change of 0.007 moved a calibrated probability by 0.23; between block means the slope
    stays that of the data (docs/trust.md)."""
    x, y = _check_binary(logits, targets)
    values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)  # tied logits pool first
    targets_per_value = np.bincount(inverse, weights=y) / counts
    means, weights, sums = [], [], []  # per block: mean target, size, sum of logits
    for xv, yv, n in zip(values, targets_per_value, counts):
        means.append(float(yv)), weights.append(float(n)), sums.append(float(xv) * n)
        while len(means) > 1 and means[-2] >= means[-1]:
            w = weights[-2] + weights[-1]
            means[-2:] = [(means[-2] * weights[-2] + means[-1] * weights[-1]) / w]
            sums[-2:], weights[-2:] = [sums[-2] + sums[-1]], [w]
    centres = [s / w for s, w in zip(sums, weights)]
    return tuple(centres), tuple(means)


def youden_point(probs: np.ndarray, targets: np.ndarray, min_specificity: float = 0.0) -> tuple[float, float]:
    """(threshold, J) maximising sensitivity + specificity - 1 for ``probs >= threshold``
    among thresholds with specificity >= ``min_specificity``.

    Candidate thresholds are midpoints between neighbouring distinct scores (and just
    beyond the extremes, where specificity is 1); the first best one from the top is kept."""
    p, y = _check_binary(probs, targets)
    values = np.unique(p)
    candidates = np.sort(np.concatenate([[values[-1] + 1e-9], (values[1:] + values[:-1]) / 2,
                                         [values[0]]]))[::-1]
    n_pos, n_neg = y.sum(), (1 - y).sum()
    best_t, best_j = float(candidates[0]), -math.inf
    for t in candidates:
        pred = p >= t
        false_positive_rate = pred[y == 0].sum() / n_neg
        if 1.0 - false_positive_rate < min_specificity - 1e-12:
            break  # lower thresholds only lose specificity
        j = pred[y == 1].sum() / n_pos - false_positive_rate
        if j > best_j + 1e-12:
            best_t, best_j = float(t), float(j)
    return float(np.clip(best_t, 0.0, 1.0)), best_j


def fit_finding(logits: np.ndarray, targets: np.ndarray) -> FindingCalibration | None:
    """Calibration + operating point of one finding by the module's rules; None with too few studies."""
    x, y = _check_binary(logits, targets)
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        return None
    if min(n_pos, n_neg) >= ISOTONIC_MIN_PER_CLASS:
        kx, ky = fit_isotonic(x, y)
        fitted = FindingCalibration("isotonic", n_pos, n_neg, knots_x=kx, knots_y=ky)
    else:
        a, b = fit_platt(x, y)
        fitted = FindingCalibration("platt", n_pos, n_neg, a=a, b=b)
    point, j = youden_point(fitted.probability(x), y, MIN_SPECIFICITY)
    return FindingCalibration(**{**asdict(fitted), "operating_point": round(point, 6), "youden_j": round(j, 4)})


# ----- reliability ------------------------------------------------------------------------
def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over equal-width probability bins of |mean target - mean probability| x bin share."""
    p, y = _check_binary(probs, targets)
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(y[mask].mean() - p[mask].mean())
    return float(total)


def brier_score(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean squared difference between probability and 0/1 target."""
    p, y = _check_binary(probs, targets)
    return float(np.mean((p - y) ** 2))


def reliability(probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """ECE and Brier score of one finding's probabilities."""
    return {"ece": round(expected_calibration_error(probs, targets), 4),
            "brier": round(brier_score(probs, targets), 4)}
