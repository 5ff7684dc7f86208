"""Evaluation metrics on hand-made embeddings, checked against hand computation and scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from training.evaluation import metrics


def test_recall_at_k_by_hand():
    q = torch.eye(4)
    # gallery: item 0 exact, item 1 second-best for query 1, items 2/3 swapped.
    g = F.normalize(torch.tensor([[1.0, 0, 0, 0], [0.9, 0.1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]), dim=1)
    r = metrics.recall_at_k(q, g, ks=(1, 2, 4))
    # ranks (ties count against the query): q0 → 0; q1 → 0 (0.11 beats 0);
    # q2 → 3 (items 0, 1 tie with its 0 and item 3 scores 1); q3 → 3 likewise.
    assert r == {"R@1": 0.5, "R@2": 0.5, "R@4": 1.0}
    # ties count against the query: all-equal scores put every query at the last rank.
    assert metrics.recall_at_k(q, torch.ones(4, 4) / 2, ks=(1, 4)) == {"R@1": 0.0, "R@4": 1.0}
    with pytest.raises(ValueError, match="3 queries and 4"):
        metrics.recall_at_k(q[:3], g)


def test_binary_metrics_match_sklearn():
    from cxrclip.zero_shot import ZeroShotClassifier

    rng = np.random.default_rng(0)
    img = F.normalize(torch.randn(40, 8), dim=1)
    neg, pos = F.normalize(torch.randn(2, 8), dim=1)
    targets = rng.integers(0, 2, size=40)
    classifier = ZeroShotClassifier(["Edema"], pos[None].double().numpy(), neg[None].double().numpy(), 10.0,
                                    no_finding="text")
    probs = classifier.probabilities(img.double().numpy())[:, 0]
    by_hand = 1 / (1 + np.exp(-10.0 * ((img @ pos) - (img @ neg)).numpy()))
    np.testing.assert_allclose(probs, by_hand, rtol=1e-5)
    m = metrics.binary_metrics(probs, targets)
    assert m["auroc"] == pytest.approx(roc_auc_score(targets, by_hand))
    assert m["f1"] == pytest.approx(f1_score(targets, by_hand >= 0.5))
    assert m["accuracy"] == pytest.approx(accuracy_score(targets, by_hand >= 0.5))
    with pytest.raises(ValueError, match="both classes"):
        metrics.binary_metrics(probs, np.ones(40))


def test_class_scores_mean_cosine():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    prompts = [torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 1.0]])]
    scores = metrics.class_scores(img, prompts)
    torch.testing.assert_close(scores, torch.tensor([[0.5, 0.0], [0.5, 1.0], [0.7, 0.8]]))
    assert metrics.multiclass_accuracy(scores, np.array([0, 1, 0])) == pytest.approx(2 / 3)


def test_linear_probe_separable():
    rng = np.random.default_rng(1)
    y = np.tile([0, 1], 20)
    x = rng.normal(size=(40, 4)) + y[:, None] * 3
    out = metrics.linear_probe_auroc(x[:20], y[:20], x[20:], y[20:])
    assert out["auroc"] == pytest.approx(1.0) and out["n"] == 20


def test_blank_as_negative_fills_unmentioned_findings_only():
    from training.data.manifest import StudyRecord
    from training.evaluation.runner import complete_labels

    common = dict(view_positions=["PA"], findings="text", impression=None, split="test", dataset="phantom")
    records = [StudyRecord(study_id="a", images=["a.png"], labels={"Edema": 1, "Fracture": -1}, **common),
               StudyRecord(study_id="b", images=["b.png"], labels=None, **common)]
    done = complete_labels(records, ["Edema", "Fracture", "Pneumothorax"])
    assert done[0].labels == {"Edema": 1, "Fracture": -1, "Pneumothorax": 0}
    assert done[1].labels == {"Edema": 0, "Fracture": 0, "Pneumothorax": 0}
    assert records[0].labels == {"Edema": 1, "Fracture": -1}  # inputs untouched


def test_rank_auroc_matches_sklearn_with_ties_and_leaves_unlabelled_out():
    rng = np.random.default_rng(4)
    labels = (rng.random(200) < 0.2).astype(float)
    scores = np.round(rng.normal(size=200) + labels, 1)  # rounded: many ties
    assert metrics.rank_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    # NaN and -1 (uncertain) rows count as neither class, whatever their score.
    with_unlabelled = np.concatenate([labels, [np.nan, -1, np.nan]])
    assert metrics.rank_auroc(np.concatenate([scores, [99.0, -99.0, 0.0]]), with_unlabelled) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12)
    # One row per resample (last axis): 1.0 for a perfect ranking, 0.0 for a reversed one, NaN without positives.
    out = metrics.rank_auroc(np.array([[1, 2, 3, 4.0], [4, 3, 2, 1.0], [1, 2, 3, 4.0]]),
                             np.array([[0, 0, 1, 1.0], [0, 0, 1, 1.0], [0, 0, 0, 0.0]]))
    assert out[0] == 1.0 and out[1] == 0.0 and np.isnan(out[2])


def test_bootstrap_auroc_intervals():
    rng = np.random.default_rng(0)
    n = 300
    perfect = (np.arange(n) % 10 == 0).astype(float)  # 30 positives, scored above every negative
    noisy = (rng.random(n) < 0.2).astype(float)
    scores = np.stack([perfect + rng.random(n) * 0.5, rng.normal(size=n) + noisy], axis=1)
    labels = np.stack([perfect, noisy], axis=1)
    boot = metrics.bootstrap_auroc(scores, labels, ["A", "B"], resamples=400, seed=1)
    assert boot["findings"]["A"]["ci95"] == [1.0, 1.0]
    point = roc_auc_score(noisy, scores[:, 1])
    lo, hi = boot["findings"]["B"]["ci95"]
    assert lo < point < hi and 0.05 < hi - lo < 0.3  # about ±2 standard errors of an AUROC near 0.76
    m_lo, m_hi = boot["macro"]["ci95"]
    assert m_lo < (1 + point) / 2 < m_hi and m_hi - m_lo < hi - lo  # the perfect finding does not vary
    assert metrics.bootstrap_auroc(scores, labels, ["A", "B"], macro_over=["A"], resamples=50)["macro"]["ci95"] == [1.0, 1.0]
    # Same seed, same intervals; fewer studies, a wider interval.
    assert metrics.bootstrap_auroc(scores, labels, ["A", "B"], resamples=400, seed=1) == boot
    small = metrics.bootstrap_auroc(scores[:60], labels[:60], ["A", "B"], resamples=400, seed=1)
    assert np.diff(small["findings"]["B"]["ci95"])[0] > hi - lo


def test_bootstrap_auroc_drops_resamples_without_a_class():
    labels = np.zeros((100, 1))
    labels[0, 0] = 1  # one positive: about (1 - 1/100)^100 = 37 % of resamples miss it
    boot = metrics.bootstrap_auroc(np.linspace(0, 1, 100)[:, None], labels, ["A"], resamples=2000, seed=0)
    assert boot["findings"]["A"]["dropped"] == pytest.approx(0.366, abs=0.04)
    assert boot["macro"]["dropped"] == boot["findings"]["A"]["dropped"]
    with pytest.raises(ValueError, match="do not match"):
        metrics.bootstrap_auroc(np.zeros((5, 2)), np.zeros((5, 3)), ["A", "B"])
    with pytest.raises(ValueError, match="macro_over"):
        metrics.bootstrap_auroc(np.zeros((5, 1)), labels[:5], ["A"], macro_over=["B"])
