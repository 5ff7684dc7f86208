"""Ranking studies for a query: candidates from the nearest views, grouped by study, filtered, rescored.

Study score (text query): the maximum over the study's views of the cosine
between the view embedding and the query embedding; the argmax view is the
"matching view". ``--like`` (rule ``"max_pair"``): the maximum over pairs of a
query view and a study view. Rule ``"mean"`` compares re-normalised mean study
embeddings instead. Candidates: the ``n`` nearest views (``n`` = 8 k at first,
x4 until k studies pass the filters or the index is exhausted); every passing
candidate study is rescored exactly from its stored embeddings.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from cxrclip.index.ann import VectorSearch
from cxrclip.index.filters import Filter, study_passes, view_passes
from cxrclip.index.records import StudyHit, ViewRecord
from cxrclip.index.store import Store, StudyRow
from cxrclip.zero_shot import unit

LikeRule = Literal["max_pair", "mean"]
LIKE_RULES = ("max_pair", "mean")


def candidate_studies(vectors: VectorSearch, store: Store, queries: np.ndarray, n: int,
                      filters: Sequence[Filter]) -> list[str]:
    """Study keys of the ``n`` nearest views of each query (views failing a view filter left out),
    ordered by their best view cosine."""
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


def score_views(embeddings: np.ndarray, queries: np.ndarray, rule: LikeRule) -> tuple[float, int, np.ndarray]:
    """(study score, index of the matching view, per-view scores) of one study's views."""
    if rule == "mean":
        study = unit(embeddings.mean(axis=0))
        centre = unit(queries.mean(axis=0))
        per_view = embeddings @ centre
        return float(study @ centre), int(np.argmax(per_view)), per_view
    pairs = embeddings @ queries.T  # (V, Q)
    per_view = pairs.max(axis=1)
    best = int(np.argmax(per_view))
    return float(per_view[best]), best, per_view


def rescore(store: Store, study: StudyRow, queries: np.ndarray, filters: Sequence[Filter], rule: LikeRule,
            dim: int) -> StudyHit | None:
    """A `StudyHit` (rank 0) scored exactly over the study's views that pass the view filters."""
    rows = store.study_view_rows(study.study_key)
    _, embeddings = store.study_embeddings(study.study_key, dim)
    keep = [i for i, r in enumerate(rows) if view_passes(filters, r["view_position"])]
    if not keep or len(rows) != len(embeddings):
        return None  # views changed under us (a build is writing); the next query sees them
    score, best, per_view = score_views(embeddings[keep], queries, rule)
    match = ViewRecord.from_row(rows[keep[best]], float(per_view[best]))
    return StudyHit(0, study.study_key, study.study_uid, study.study_date, study.patient_id, study.folder,
                    [r["path"] for r in rows], score, match, dict(study.findings), study.patient_name,
                    study.accession)


def rank(vectors: VectorSearch, store: Store, queries: np.ndarray, k: int, filters: Sequence[Filter],
         exclude: set[str], rule: LikeRule, dim: int) -> list[StudyHit]:
    """The ``k`` best studies for ``queries`` (one text, or a study's views), ranked 1..k."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if rule not in LIKE_RULES:
        raise ValueError(f"rule must be one of {list(LIKE_RULES)}, got {rule!r}")
    vectors.refresh()
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    hits = [h for h in (rescore(store, s, queries, filters, rule, dim)
                        for s in gather(vectors, store, queries, k, filters, exclude)) if h is not None]
    hits.sort(key=lambda h: -h.score)
    return [_with_rank(h, i) for i, h in enumerate(hits[:k], start=1)]


def _with_rank(hit: StudyHit, rank_: int) -> StudyHit:
    from dataclasses import replace

    return replace(hit, rank=rank_)


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
