"""Paired fracture test: does the model see the rib break when nothing else changes?

A phantom set written with ``cxrclip phantom generate --fracture-twins`` holds, beside each
study with a rib fracture, its intact twin: the same pixels but the rib drawn whole
(docs/phantoms.md). Scoring both frontal views with the viewer's zero-shot recipe
(`Engine.zero_shot_classifier`, raw probabilities) gives two figures:

- **paired win rate**: the share of pairs in which the fractured view scores higher than its
  twin (0.5 = the model does not see the break; ties count half);
- **across patients**: the usual AUROC of the same score over the set's own studies (twins
  left out), where the break must stand out against everything else that differs.

A high win rate with a low AUROC says the image feature is there but small next to what
varies between patients. To say what varies, the command also lists, over the studies
labelled without a fracture, the mean score of those with each other finding against those
without it (**confounders**, largest gap first; findings with at least 5 such studies).

    python -m training.evaluation.twins --model DIR --data DIR [--split validate] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cxrclip.engine import Engine
from training.data.dataset import twin_partners
from training.data.manifest import read_manifest
from training.evaluation import metrics
from training.evaluation.embedding import study_embeddings
from training.phantoms.study import TWIN_SUFFIX

FINDING = "Fracture"
MIN_CONFOUNDER_STUDIES = 5


def twin_pairs(study_ids: Sequence[str], suffix: str = TWIN_SUFFIX) -> list[tuple[int, int]]:
    """(study index, twin index) for every study whose twin is also in ``study_ids`` (the
    trainer's `twin_partners`, each pair once, from the study's side)."""
    partners = twin_partners(study_ids, suffix)
    return [(i, int(j)) for i, j in enumerate(partners) if j >= 0 and study_ids[j] == study_ids[i] + suffix]


def paired_win_rate(scores: np.ndarray, pairs: Sequence[tuple[int, int]]) -> float:
    """Share of pairs whose first member scores above the second (ties count half)."""
    if not pairs:
        raise ValueError("no study-twin pairs: write the set with `cxrclip phantom generate --fracture-twins`")
    first, second = (np.asarray(scores)[list(idx)] for idx in zip(*pairs))
    return float(np.mean((first > second) + 0.5 * (first == second)))


def confounders(scores: np.ndarray, labels: Sequence[dict[str, int]], finding: str = FINDING,
                minimum: int = MIN_CONFOUNDER_STUDIES) -> list[dict[str, Any]]:
    """Over studies labelled 0 for ``finding``: for each other finding present (label 1) in at
    least ``minimum`` and absent in at least ``minimum`` of them, the mean score with and without
    it; largest gap first."""
    negatives = [i for i, row in enumerate(labels) if row.get(finding) == 0]
    others = sorted({name for i in negatives for name in labels[i] if name not in (finding, "No Finding")})
    rows = []
    for name in others:
        present = np.array([labels[i].get(name) == 1 for i in negatives])
        if present.sum() < minimum or (~present).sum() < minimum:
            continue
        with_it, without = scores[negatives][present], scores[negatives][~present]
        rows.append({"finding": name, "studies": int(present.sum()), "mean_with": float(with_it.mean()),
                     "mean_without": float(without.mean()), "gap": float(with_it.mean() - without.mean())})
    return sorted(rows, key=lambda r: -r["gap"])


def paired_test(engine: Engine, data: Path, split: str) -> dict[str, Any]:
    """The two figures of the module docstring for one model and one set."""
    split_emb = study_embeddings(engine, [read_manifest(data)], split)
    classifier = engine.zero_shot_classifier([FINDING])
    scores = classifier.probabilities(split_emb.embeddings, calibrated=False)[:, classifier.names.index(FINDING)]
    ids = [r.study_id for r in split_emb.records]
    pairs = twin_pairs(ids)
    originals = [i for i, sid in enumerate(ids) if not sid.endswith(TWIN_SUFFIX)]
    study_labels = [split_emb.records[i].labels or {} for i in originals]
    labels = np.array([row.get(FINDING) for row in study_labels], dtype=object)
    known = np.isin(labels, (0, 1))
    across_scores, across_labels = scores[originals][known], labels[known].astype(int)
    across = metrics.binary_metrics(across_scores, across_labels)["auroc"]
    gaps = np.array([scores[a] - scores[b] for a, b in pairs])
    win_rate = paired_win_rate(scores, pairs)
    boot = metrics.bootstrap_auroc(across_scores[:, None], across_labels[:, None], [FINDING])
    return {"finding": FINDING, "pairs": len(pairs), "paired_win_rate": win_rate,
            "paired_win_rate_ci95": metrics.wilson_interval(win_rate * len(pairs), len(pairs)),
            "mean_score_gap": float(gaps.mean()), "auroc_across_patients": across,
            "auroc_across_patients_ci95": boot["findings"][FINDING]["ci95"],
            "studies_across_patients": int(known.sum()), "unreadable": split_emb.unreadable,
            "confounders": confounders(scores[originals], study_labels)}


def _interval(ci: list[float] | None) -> str:
    return "–" if ci is None else f"{ci[0]:.3f}–{ci[1]:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.twins", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model folder or training checkpoint")
    parser.add_argument("--data", required=True, help="phantom set written with --fracture-twins")
    parser.add_argument("--split", default="validate", help="manifest split (default: validate)")
    parser.add_argument("--out", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        result = paired_test(Engine.load(args.model, device="cpu"), Path(args.data), args.split)
    except (OSError, ValueError) as exc:
        parser.exit(2, f"twins: {exc}\n")
    print(f"{result['finding']}: paired win rate {result['paired_win_rate']:.3f} ({_interval(result['paired_win_rate_ci95'])}) "
          f"over {result['pairs']} pairs (mean score gap {result['mean_score_gap']:+.4f}); AUROC across patients "
          f"{result['auroc_across_patients']:.3f} ({_interval(result['auroc_across_patients_ci95'])}) over "
          f"{result['studies_across_patients']} studies; 95 % intervals: Wilson, study bootstrap")
    print("score of studies without a fracture, with / without each other finding (largest gap first):")
    for row in result["confounders"]:
        print(f"  {row['finding']:<28} {row['mean_with']:.3f} / {row['mean_without']:.3f}  "
              f"(gap {row['gap']:+.3f}, {row['studies']} studies)")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
