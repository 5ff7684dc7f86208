"""The one zero-shot recipe on hand-made embeddings: No Finding, clamp, views, calibration."""
from __future__ import annotations

import numpy as np
import pytest

from cxrclip.calibration import Calibration, FindingCalibration
from cxrclip.zero_shot import NOT_ABNORMAL, ZeroShotClassifier, clamp_logit_scale, scored_findings, sigmoid


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _classifier(names, scale=10.0, calibration=None, no_finding="complement", requested=None, seed=0):
    rng = np.random.default_rng(seed)
    pos, neg = _unit(rng.normal(size=(len(names), 16))), _unit(rng.normal(size=(len(names), 16)))
    return ZeroShotClassifier(names, pos, neg, scale, calibration, no_finding, requested)


NAMES = ["No Finding", "Edema", "Pneumothorax", "Support Devices"]


def test_no_finding_is_the_complement_of_the_most_likely_abnormal_finding() -> None:
    clf = _classifier(NAMES)
    emb = _unit(np.random.default_rng(1).normal(size=(5, 16)))
    probs = clf.probabilities(emb)
    np.testing.assert_allclose(probs[:, 0], 1 - np.max(probs[:, 1:3], axis=1), atol=1e-12)
    assert "Support Devices" in NOT_ABNORMAL  # devices do not make a study abnormal


def test_complement_mode_encodes_the_findings_no_finding_depends_on() -> None:
    names = scored_findings(["No Finding"], "complement")
    assert names[0] == "No Finding" and "Pleural Effusion" in names and "Support Devices" not in names
    assert scored_findings(["No Finding"], "text") == ["No Finding"]


def test_logit_scale_is_clamped_at_100() -> None:
    assert clamp_logit_scale(250.0) == 100.0 and clamp_logit_scale(14.3) == pytest.approx(14.3)
    clf = _classifier(["Edema"], scale=1000.0, no_finding="text")
    emb = _unit(np.random.default_rng(2).normal(size=(3, 16)))
    expected = sigmoid(100.0 * (emb @ clf.positive[0] - emb @ clf.negative[0]))
    np.testing.assert_allclose(clf.probabilities(emb)[:, 0], expected)


def test_views_mean_and_max() -> None:
    clf = _classifier(["Edema", "Pneumothorax"], no_finding="text")
    views = _unit(np.random.default_rng(3).normal(size=(2, 16)))
    mean = clf.score_study(["a", "b"], ["PA", "LAT"], views, "mean")
    study = _unit(views.mean(axis=0))
    by_name = {s.finding: s for s in mean}
    j = clf.names.index("Edema")
    assert by_name["Edema"].probability == pytest.approx(
        float(sigmoid(10.0 * (study @ clf.positive[j] - study @ clf.negative[j]))))
    assert [v.view_id for v in by_name["Edema"].views] == ["a", "b"]
    best = {s.finding: s for s in clf.score_study(["a", "b"], ["PA", "LAT"], views, "max")}
    assert best["Edema"].probability == pytest.approx(max(v.probability for v in best["Edema"].views))
    assert [s.probability for s in mean] == sorted((s.probability for s in mean), reverse=True)


def test_calibration_is_applied_and_sets_positive() -> None:
    cal = Calibration("m", {"Edema": FindingCalibration("platt", 20, 80, a=0.5, b=-1.0, operating_point=0.3)})
    clf = _classifier(["Edema", "Pneumothorax"], calibration=cal, no_finding="text")
    emb = _unit(np.random.default_rng(4).normal(size=(1, 16)))
    raw_logit = 10.0 * (emb[0] @ clf.positive[0] - emb[0] @ clf.negative[0])
    scores = {s.finding: s for s in clf.score_study(["v"], [""], emb)}
    edema = scores["Edema"]
    assert edema.calibrated and edema.raw_probability == pytest.approx(float(sigmoid(raw_logit)))
    assert edema.probability == pytest.approx(float(sigmoid(0.5 * raw_logit - 1.0)))
    assert edema.operating_point == 0.3 and edema.positive is (edema.probability >= 0.3)
    ptx = scores["Pneumothorax"]  # no calibration for it: raw probability, no verdict
    assert not ptx.calibrated and ptx.positive is None and ptx.probability == ptx.raw_probability


def test_no_finding_calibrates_the_complement_of_the_raw_findings() -> None:
    cal = Calibration("m", {"Edema": FindingCalibration("platt", 20, 80, a=0.2, b=-2.0),
                            "Pneumothorax": FindingCalibration("platt", 20, 80, a=0.3, b=-1.0),
                            "No Finding": FindingCalibration("platt", 50, 50, a=2.0, b=0.5)})
    clf = _classifier(NAMES, calibration=cal)
    emb = _unit(np.random.default_rng(5).normal(size=(4, 16)))
    logits = 10.0 * (emb @ clf.positive.T - emb @ clf.negative.T)
    others = logits[:, 1:3]  # raw: a calibrated max ranks worse (see cxrclip.zero_shot)
    expected = sigmoid(2.0 * -others.max(axis=1) + 0.5)
    np.testing.assert_allclose(clf.probabilities(emb)[:, 0], expected, atol=1e-12)
    np.testing.assert_allclose(clf.calibration_inputs(emb)[:, 0], -others.max(axis=1), atol=1e-12)
    np.testing.assert_allclose(clf.probabilities(emb, calibrated=False)[:, 0],
                               1 - sigmoid(logits[:, 1:3]).max(axis=1), atol=1e-12)


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="no_finding must be one of"):
        _classifier(["Edema"], no_finding="ignore")
    clf = _classifier(["Edema"], no_finding="text")
    with pytest.raises(ValueError, match=r"\(V >= 1, D\)"):
        clf.score_study([], [], np.zeros((0, 16)))
    with pytest.raises(ValueError, match="aggregate must be"):
        clf.score_study(["a"], [""], np.ones((1, 16)), "median")
