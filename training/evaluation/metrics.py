"""Metric functions on embeddings and scores (no model, no I/O), so tests can check them by hand.

Definitions follow the CXR-CLIP evaluation code:
- multi-class zero-shot: class score = mean cosine similarity between the image and
  every prompt of the class; prediction = arg-max class.
- binary zero-shot: the probabilities come from the one recipe, `cxrclip.zero_shot`
  (softmax over the clamped, scaled similarities to the negative and positive text,
  calibrated when the model folder has a calibration); F1/accuracy at a threshold
  (the operating point when calibrated, else 0.5).
- intervals: percentile bootstrap over studies (1,000 resamples, fixed seed), the same
  resample for every finding so the macro AUROC's interval keeps their correlation.
- retrieval: recall@k = share of queries whose paired item is among the k most
  similar (ties count against the query: rank = number of other items scoring >= it).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score


def class_scores(image_emb: torch.Tensor, prompt_embs: Sequence[torch.Tensor]) -> torch.Tensor:
    """(N, C) mean cosine over each class's prompts; inputs L2-normalised (N, D), (P_c, D)."""
    return torch.stack([(image_emb @ p.T).mean(dim=1) for p in prompt_embs], dim=1)


def multiclass_accuracy(scores: torch.Tensor, targets: np.ndarray) -> float:
    """Share of rows whose arg-max column equals the target index."""
    pred = scores.argmax(dim=1).cpu().numpy()
    return float(accuracy_score(np.asarray(targets), pred))


def binary_metrics(probs: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUROC, F1 and accuracy of positive-class probabilities against 0/1 targets."""
    probs, targets = np.asarray(probs, dtype=np.float64), np.asarray(targets).astype(int)
    if len(np.unique(targets)) < 2:
        raise ValueError("binary_metrics needs both classes among the targets, "
                         f"got only {np.unique(targets).tolist()}")
    pred = (probs >= threshold).astype(int)
    return {"auroc": float(roc_auc_score(targets, probs)), "f1": float(f1_score(targets, pred)),
            "accuracy": float(accuracy_score(targets, pred)), "n": int(len(targets))}


def recall_at_k(query_emb: torch.Tensor, gallery_emb: torch.Tensor,
                ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k where query i's correct item is gallery i (both L2-normalised)."""
    if query_emb.shape[0] != gallery_emb.shape[0]:
        raise ValueError(f"recall_at_k pairs query i with gallery i; got {query_emb.shape[0]} "
                         f"queries and {gallery_emb.shape[0]} gallery items")
    sims = query_emb @ gallery_emb.T
    correct = sims.diagonal().unsqueeze(1)
    ranks = (sims >= correct).sum(dim=1) - 1
    return {f"R@{k}": float((ranks < k).float().mean()) for k in ks}


def linear_probe_auroc(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                       test_y: np.ndarray, c: float = 1.0, seed: int = 0) -> dict[str, float]:
    """Logistic regression on frozen features for one binary target; AUROC on the test set."""
    if len(np.unique(train_y)) < 2 or len(np.unique(test_y)) < 2:
        raise ValueError("linear probe needs both classes in the train and the test split")
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit(train_x, train_y)
    probs = clf.predict_proba(test_x)[:, 1]
    return {"auroc": float(roc_auc_score(test_y, probs)),
            "accuracy": float(accuracy_score(test_y, (probs >= 0.5).astype(int))), "n": int(len(test_y))}



def rank_auroc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC along the last axis of ``scores`` against ``labels`` of the same shape (1 positive,
    0 negative, anything else such as NaN or -1 left out), by the Mann-Whitney U statistic with
    average ranks for ties (as `roc_auc_score`); NaN where a row lacks either class."""
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, np.float64)
    pos, neg = labels == 1, labels == 0
    ranks = rankdata(np.where(pos | neg, scores, np.nan), axis=-1, nan_policy="omit")
    n_pos, n_neg = pos.sum(axis=-1), neg.sum(axis=-1)
    u = np.where(pos, ranks, 0.0).sum(axis=-1) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def _interval(values: np.ndarray, level: float) -> list[float] | None:
    """Central percentile interval of ``values`` (None when there are none)."""
    if not len(values):
        return None
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def wilson_interval(successes: float, n: int, z: float = 1.959963984540054) -> list[float]:
    """Wilson score interval (95 % by default) of a proportion ``successes / n``; unlike a
    percentile bootstrap it stays informative at 0 % and 100 % (16 of 16: 0.806–1)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: need 0 <= successes <= n and n > 0, got {successes} of {n}")
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]


def bootstrap_auroc(scores: np.ndarray, labels: np.ndarray, findings: Sequence[str],
                    macro_over: Sequence[str] | None = None, resamples: int = 1000, seed: int = 0,
                    level: float = 0.95) -> dict:
    """Percentile intervals of each finding's AUROC and of their macro mean (over ``macro_over``,
    default all), by resampling the studies (rows) with replacement; every finding uses the same
    resample, so the macro's interval keeps the findings' correlation.

    ``scores`` (N, F); ``labels`` (N, F) of 1/0, anything else (NaN, -1) where a study has no
    label for a finding. A resample that misses a finding's positives or negatives is left out
    of that finding's interval and of the macro's (their share is ``dropped``, usually 0).
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, np.float64)
    if scores.shape != labels.shape or scores.ndim != 2 or len(findings) != scores.shape[1]:
        raise ValueError(f"bootstrap_auroc: scores {scores.shape}, labels {labels.shape} and "
                         f"{len(findings)} findings do not match")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"bootstrap_auroc: need 0 < level < 1 and resamples >= 1, got {level}, {resamples}")
    rows = np.random.default_rng(seed).integers(0, scores.shape[0], size=(resamples, scores.shape[0]))
    draws = np.stack([rank_auroc(scores[rows, j], labels[rows, j]) for j in range(len(findings))], axis=1)
    unknown = sorted(set(macro_over or ()) - set(findings))
    if unknown:
        raise ValueError(f"bootstrap_auroc: macro_over names {unknown}, not among the findings")
    macro = draws[:, [j for j, f in enumerate(findings) if macro_over is None or f in macro_over]]
    complete = ~np.isnan(macro).any(axis=1)
    per_finding = {name: {"ci95": _interval(draws[~np.isnan(draws[:, j]), j], level),
                          "dropped": float(np.isnan(draws[:, j]).mean())}
                   for j, name in enumerate(findings)}
    return {"findings": per_finding,
            "macro": {"ci95": _interval(macro[complete].mean(axis=1), level), "dropped": float(1 - complete.mean())},
            "resamples": int(resamples), "seed": int(seed), "level": float(level)}
