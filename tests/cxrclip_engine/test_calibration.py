"""Calibration fitting, operating points, reliability metrics and the file round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cxrclip.calibration import (
    ISOTONIC_MIN_PER_CLASS, MIN_PER_CLASS, Calibration, CalibrationError, FindingCalibration, brier_score,
    expected_calibration_error, fit_finding, fit_isotonic, fit_platt, youden_point)


def test_youden_point_lies_between_separable_classes() -> None:
    probs = np.array([0.05, 0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    targets = np.array([0, 0, 0, 0, 1, 1, 1])
    point, j = youden_point(probs, targets)
    assert j == pytest.approx(1.0)
    assert point == pytest.approx(0.45)  # midpoint between the highest negative and the lowest positive


def test_youden_point_with_overlap_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 2, 300)
    probs = np.clip(rng.normal(0.4 + 0.2 * targets, 0.15), 0, 1)
    point, j = youden_point(probs, targets)
    best = max((p >= t)[targets == 1].mean() - (p >= t)[targets == 0].mean()
               for p in [probs] for t in np.unique(probs))
    assert j == pytest.approx(best)
    pred = probs >= point
    assert pred[targets == 1].mean() - pred[targets == 0].mean() == pytest.approx(j)


def test_youden_point_respects_the_specificity_floor() -> None:
    negatives = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.62, 0.64]
    positives = [0.5, 0.55, 0.6, 0.7, 0.8]
    probs, targets = np.array(negatives + positives), np.array([0] * 10 + [1] * 5)
    free, j_free = youden_point(probs, targets)
    assert free == pytest.approx(0.45) and j_free == pytest.approx(0.8)  # sensitivity 1, specificity 0.8
    floor, j_floor = youden_point(probs, targets, min_specificity=0.9)
    assert floor == pytest.approx(0.67) and j_floor == pytest.approx(0.4)  # sensitivity 0.4, specificity 1
    assert 1 - (probs >= floor)[targets == 0].mean() >= 0.9


def test_platt_recovers_the_slope_and_intercept() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, 20000)
    targets = (rng.random(20000) < 1 / (1 + np.exp(-(0.5 * logits - 1.0)))).astype(int)
    a, b = fit_platt(logits, targets)
    assert a == pytest.approx(0.5, abs=0.03) and b == pytest.approx(-1.0, abs=0.06)


def test_isotonic_is_monotone_and_fits_steps() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    y = np.array([0, 1, 0, 1, 1, 1])
    kx, ky = fit_isotonic(x, y)
    assert all(d >= 0 for d in np.diff(ky))
    # blocks: [0] -> 0, [1, 2] -> 0.5, [3, 4, 5] -> 1
    assert np.interp([0.0, 1.5, 4.0], kx, ky) == pytest.approx([0.0, 0.5, 1.0])



def test_isotonic_knots_sit_at_block_means_so_nearby_logits_stay_close() -> None:
    # Two blocks, [0, 0.1, 0.2] -> 0 and [0.2001, 0.3, 0.4] -> 1: knots at their edges would
    # jump from 0 to 1 between 0.2 and 0.2001; knots at their means climb from 0.1 to 0.30003.
    x = np.array([0.0, 0.1, 0.2, 0.2001, 0.3, 0.4])
    kx, ky = fit_isotonic(x, np.array([0, 0, 0, 1, 1, 1]))
    assert kx == pytest.approx((0.1, 0.9001 / 3)) and ky == pytest.approx((0.0, 1.0))
    below, above = np.interp([0.2, 0.2001], kx, ky)
    assert below == pytest.approx(0.1 / (0.9001 / 3 - 0.1)) and above - below < 1e-3


def test_isotonic_pools_tied_logits() -> None:
    kx, ky = fit_isotonic(np.array([1.0, 1.0, 2.0, 2.0]), np.array([0, 1, 1, 1]))
    assert kx == pytest.approx((1.0, 2.0)) and ky == pytest.approx((0.5, 1.0))

def test_fit_finding_rules() -> None:
    rng = np.random.default_rng(2)
    few = fit_finding(rng.normal(size=40), np.array([1] * (MIN_PER_CLASS - 1) + [0] * (41 - MIN_PER_CLASS)))
    assert few is None  # too few positives: stays uncalibrated
    y = np.array([0] * 60 + [1] * 40)
    platt = fit_finding(rng.normal(size=100) + 2 * y, y)
    assert platt.method == "platt" and (platt.n_positive, platt.n_negative) == (40, 60)
    assert 0.0 < platt.operating_point < 1.0
    n = ISOTONIC_MIN_PER_CLASS
    y = np.array([0] * n + [1] * n)
    iso = fit_finding(rng.normal(size=2 * n) + 2 * y, y)
    assert iso.method == "isotonic" and len(iso.knots_x) == len(iso.knots_y) >= 2


def test_reliability_metrics_by_hand() -> None:
    probs = np.array([0.1, 0.1, 0.9, 0.9])
    targets = np.array([0, 1, 1, 1])
    # bin 1: mean p 0.1, mean y 0.5 -> 0.4 x 0.5; bin 9: mean p 0.9, mean y 1 -> 0.1 x 0.5
    assert expected_calibration_error(probs, targets) == pytest.approx(0.25)
    assert brier_score(probs, targets) == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)
    with pytest.raises(CalibrationError, match="0 or 1"):
        brier_score(probs, np.array([0, 2, 1, 1]))


def test_calibration_lowers_ece_of_overconfident_scores() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0.0, 2.0, 4000)
    targets = (rng.random(4000) < 1 / (1 + np.exp(-0.3 * logits))).astype(int)
    raw = 1 / (1 + np.exp(-logits))  # three times too confident
    fitted = fit_finding(logits, targets)
    assert expected_calibration_error(fitted.probability(logits), targets) < 0.5 * expected_calibration_error(
        raw, targets)


def test_save_load_round_trip(tmp_path) -> None:
    cal = Calibration("model-1", {"Edema": FindingCalibration("platt", 30, 70, a=0.4, b=-1.2, operating_point=0.31,
                                                              youden_j=0.8),
                                  "Pneumothorax": FindingCalibration("isotonic", 300, 500, knots_x=(-2.0, 0.0, 3.0),
                                                                     knots_y=(0.0, 0.5, 1.0), operating_point=0.5)},
                      data=["/data/val"], split="validate", command="cxrclip calibrate m --data /data/val")
    cal.save(tmp_path)
    loaded = Calibration.load(tmp_path, "model-1")
    assert loaded == cal
    x = np.linspace(-4, 4, 9)
    np.testing.assert_allclose(loaded.logit("Edema", x), 0.4 * x - 1.2)
    np.testing.assert_allclose(loaded.logit("Atelectasis", x), x)  # uncalibrated finding: unchanged
    assert loaded.operating_points() == {"Edema": 0.31, "Pneumothorax": 0.5}
    assert Calibration.load(tmp_path, "another-model") is None  # fitted for other weights: ignored
    data = json.loads((tmp_path / "calibration.json").read_text())
    assert data["views"] == "frontal"
    study = Calibration.from_dict({**data, "views": "study"})
    assert study.views == "study" and Calibration.from_dict(study.to_dict()) == study
    legacy = {k: v for k, v in data.items() if k != "views"}  # written before the field existed
    assert Calibration.from_dict(legacy).views == "frontal"
    data["format_version"] = 99
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="re-run `cxrclip calibrate`"):
        Calibration.load(tmp_path)
