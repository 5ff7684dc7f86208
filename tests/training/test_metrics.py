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
