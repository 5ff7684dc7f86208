"""Ranking studies for a query: candidates from the nearest views, grouped by study, filtered, rescored.

Text query (rule ``"contrast"``, the default): a view's score is the probability
that it shows the query rather than its negation, ``softmax(logit_scale *
[cos(view, "no <query>"), cos(view, query)])[1]`` - the number the viewer's
prompt panel shows for that view (`cxrclip.engine.Engine.score`); a study's
score is the maximum over its views, and the argmax view is its "matching view".
Rule ``"cosine"`` ranks by the plain cosine to the query instead. Both order views
by one direction in embedding space (``query - negation`` or ``query``), so the
nearest-neighbour search finds the candidates for either.
``--like`` (rule ``"max_pair"``): the maximum over pairs of a query view and a
study view; rule ``"mean"`` compares re-normalised mean study embeddings.
Candidates: the ``n`` nearest views (``n`` = 8 k at first, x4 until k studies pass
the filters or the index is exhausted); every passing candidate study is rescored
exactly from its stored embeddings.
"""
from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from cxrclip.index.ann import VectorSearch
from cxrclip.index.filters import Filter, study_passes, view_passes
from cxrclip.index.records import StudyHit, ViewRecord
from cxrclip.index.store import Store, StudyRow
from cxrclip.zero_shot import binary_probability, study_embedding, unit

LikeRule = Literal["max_pair", "mean"]
LIKE_RULES = ("max_pair", "mean")
TextRule = Literal["contrast", "cosine"]
TEXT_RULES = ("contrast", "cosine")


@dataclass(frozen=True)
class Query:
    """What to search for: ``directions`` (m, D) find candidate views; ``view_scores`` scores a
    study's views (V, D) -> (V,); ``study_score`` turns them into the study's score (default: max)."""

    directions: np.ndarray
    view_scores: Callable[[np.ndarray], np.ndarray]
    study_score: Callable[[np.ndarray, np.ndarray], float] | None = None

    def score(self, embeddings: np.ndarray) -> tuple[float, int, np.ndarray]:
        """(study score, index of the matching view, per-view scores) of one study's views."""
        per_view = self.view_scores(embeddings)
        best = int(np.argmax(per_view))
        study = float(per_view[best]) if self.study_score is None else self.study_score(embeddings, per_view)
        return study, best, per_view


def text_query(positive: np.ndarray, negative: np.ndarray, logit_scale: float, rule: TextRule) -> Query:
    """The query of a text (embedding ``positive``) and its negation (``negative``)."""
    if rule not in TEXT_RULES:
        raise ValueError(f"rule must be one of {list(TEXT_RULES)}, got {rule!r}")
    pos, neg = np.asarray(positive, np.float32), np.asarray(negative, np.float32)
    if rule == "cosine":
        return Query(pos[None], lambda e: e @ pos)
    return Query(unit(pos - neg)[None],
                 lambda e: binary_probability(e @ pos, e @ neg, logit_scale).astype(np.float32))


def like_query(views: np.ndarray, rule: LikeRule) -> Query:
    """The query of a study given by its view embeddings (V, D)."""
    if rule not in LIKE_RULES:
        raise ValueError(f"rule must be one of {list(LIKE_RULES)}, got {rule!r}")
    views = np.atleast_2d(np.asarray(views, np.float32))
    if rule == "max_pair":
        return Query(views, lambda e: (e @ views.T).max(axis=1))
    centre = study_embedding(views).astype(np.float32)
    return Query(centre[None], lambda e: e @ centre, lambda e, _per_view: float(study_embedding(e) @ centre))


def candidate_studies(vectors: VectorSearch, store: Store, queries: np.ndarray, n: int,
                      filters: Sequence[Filter]) -> list[str]:
    """Study keys of the ``n`` nearest views of each query direction (views failing a view filter
    left out), ordered by their best view cosine."""
    best: dict[int, float] = {}
    for query in queries:
        ids, scores = vectors.top(query, n)
        for i, s in zip(ids.tolist(), scores.tolist()):
            best[i] = max(best.get(i, -2.0), s)
    rows = store.view_rows_by_id(list(best))
    order = sorted(rows, key=lambda i: -best[i])
    keys: dict[str, None] = {}
    for i in order:
        if view_passes(filters, rows[i]["view_position"]):
            keys.setdefault(rows[i]["study_key"], None)
    return list(keys)


def _passing(store: Store, keys: list[str], filters: Sequence[Filter], exclude: set[str]) -> list[StudyRow]:
    studies = store.studies([k for k in keys if k not in exclude])
    return [studies[k] for k in keys if k in studies and study_passes(filters, studies[k].study_date,
                                                                      studies[k].findings)]


def gather(vectors: VectorSearch, store: Store, queries: np.ndarray, k: int, filters: Sequence[Filter],
           exclude: set[str]) -> list[StudyRow]:
    """Candidate studies passing the filters, widening the view search until ``k`` pass or none are left."""
    total = vectors.size()
    n = max(8 * k, 64)
    while True:
        passing = _passing(store, candidate_studies(vectors, store, queries, n, filters), filters, exclude)
        if len(passing) >= k or n >= total:
            return passing
        n *= 4


def rescore(store: Store, study: StudyRow, query: Query, filters: Sequence[Filter], dim: int) -> StudyHit | None:
    """A `StudyHit` (rank 0) scored exactly over the study's views that pass the view filters."""
    rows = store.study_view_rows(study.study_key)
    _, embeddings = store.study_embeddings(study.study_key, dim)
    keep = [i for i, r in enumerate(rows) if view_passes(filters, r["view_position"])]
    if not keep or len(rows) != len(embeddings):
        return None  # views changed under us (a build is writing); the next query sees them
    score, best, per_view = query.score(embeddings[keep])
    match = ViewRecord.from_row(rows[keep[best]], float(per_view[best]))
    return StudyHit(0, study.study_key, study.study_uid, study.study_date, study.patient_id, study.folder,
                    [r["path"] for r in rows], score, match, dict(study.findings), study.patient_name,
                    study.accession)


def rank(vectors: VectorSearch, store: Store, query: Query, k: int, filters: Sequence[Filter],
         exclude: set[str], dim: int) -> list[StudyHit]:
    """The ``k`` best studies for ``query``, ranked 1..k."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    vectors.refresh()
    directions = np.atleast_2d(np.asarray(query.directions, dtype=np.float32))
    hits = [h for h in (rescore(store, s, query, filters, dim)
                        for s in gather(vectors, store, directions, k, filters, exclude)) if h is not None]
    hits.sort(key=lambda h: -h.score)
    return [replace(h, rank=i) for i, h in enumerate(hits[:k], start=1)]


# ----- export ---------------------------------------------------------------------------------
def csv_rows(hits: Sequence[StudyHit], include_identifiers: bool) -> list[dict[str, object]]:
    """Flat rows of the results: the JSON contract's fields (identifiers only when asked)."""
    rows = []
    for hit in hits:
        data = hit.to_dict(hide_phi=not include_identifiers)
        match, findings = data.pop("matching_view"), data.pop("findings")
        data["files"] = ";".join(data["files"])
        data.update({"matching_view_path": match["path"], "matching_view_position": match["view_position"],
                     "matching_view_score": match["score"]})
        data.update(findings)
        rows.append(data)
    return rows


def export_csv(hits: Sequence[StudyHit], path: str | Path, include_identifiers: bool = False) -> Path:
    """Write the results as CSV (PHI columns and paths left out unless ``include_identifiers``)."""
    rows = csv_rows(hits, include_identifiers)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(c for row in rows for c in row)) or ["rank", "study_key", "score"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path
