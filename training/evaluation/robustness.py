"""Zero-shot AUROC with held-out radiologist wording (``robustness_prompts.json``).

Each finding is scored like the viewer scores it (`cxrclip.zero_shot.ZeroShotClassifier`:
normalised mean embedding of the positive prompts against that of the negatives, the
engine's clamped logit scale) but with prompts written the way radiologists write
(synonyms, abbreviations such as PTX and CHF, negations) that appear neither in training
nor in the phantom generator's report templates. Studies are the frontal views of a
manifest split, as `cxrclip eval` reads them; findings a report does not mention count
as absent (phantoms have complete ground truth).

    python -m training.evaluation.robustness --model DIR --data DIR [--split test]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from cxrclip.engine import Engine
from cxrclip.zero_shot import ZeroShotClassifier, unit

PROMPTS_FILE = Path(__file__).with_name("robustness_prompts.json")


def load_prompts(path: Path = PROMPTS_FILE) -> dict[str, dict[str, list[str]]]:
    """Finding -> {"positive": [...], "negative": [...]} from the prompt file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        findings = data["findings"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: not a robustness prompt file ({exc}); expected "
                         '{"findings": {name: {"positive": [...], "negative": [...]}}}') from exc
    for name, entry in findings.items():
        if not entry.get("positive") or not entry.get("negative"):
            raise ValueError(f"{path}: finding {name!r} needs non-empty 'positive' and 'negative' lists")
    return findings


def _mean_embeddings(engine: Engine, groups: list[list[str]]) -> np.ndarray:
    """Normalised mean embedding per group of texts, all texts embedded in one call."""
    embedded = engine.embed_texts([t for group in groups for t in group])
    bounds = np.cumsum([0] + [len(group) for group in groups])
    return unit(np.stack([embedded[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]))


def robust_classifier(engine: Engine, prompts: dict[str, dict[str, list[str]]]) -> ZeroShotClassifier:
    """The zero-shot classifier with the held-out wording (uncalibrated, no No Finding)."""
    names = list(prompts)
    pos = _mean_embeddings(engine, [prompts[n]["positive"] for n in names])
    neg = _mean_embeddings(engine, [prompts[n]["negative"] for n in names])
    return ZeroShotClassifier(names, pos, neg, engine.logit_scale, None, "text")


def robustness_auroc(engine: Engine, data: list[str], split: str = "test",
                     prompts_file: Path = PROMPTS_FILE, views: str = "frontal") -> dict[str, Any]:
    """AUROC per finding and macro, with the held-out prompts and with the viewer's ensembles;
    ``views`` as `training.evaluation.embedding.study_embeddings`."""
    from sklearn.metrics import roc_auc_score

    from training.data.manifest import read_manifest
    from training.evaluation.embedding import study_embeddings
    from training.evaluation.runner import complete_labels, label_matrix

    prompts = load_prompts(prompts_file)
    names = list(prompts)
    split_emb = study_embeddings(engine, [read_manifest(d) for d in data], split, views)
    labels = label_matrix(complete_labels(split_emb.records, names), names)
    emb = np.asarray(split_emb.embeddings, np.float64)
    held_out = robust_classifier(engine, prompts)
    usual = engine.zero_shot_classifier(names)
    out: dict[str, Any] = {"studies": len(split_emb.records), "views": views, "findings": {}}
    for j, name in enumerate(names):
        known = labels[:, j] >= 0   # uncertain (-1) left out
        targets = labels[known, j]
        if len(np.unique(targets)) < 2:
            continue
        scores = [c.logits(emb[known]).view_logits[:, c.names.index(name)]
                  for c in (held_out, usual)]
        out["findings"][name] = {"robust": float(roc_auc_score(targets, scores[0])),
                                 "ensemble": float(roc_auc_score(targets, scores[1])),
                                 "positives": int(targets.sum())}
    for key in ("robust", "ensemble"):
        out[f"macro_{key}"] = float(np.mean([v[key] for v in out["findings"].values()]))
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: print the AUROCs (and write JSON with ``--out``)."""
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.robustness",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--data", required=True, action="append", help="manifest folder (repeatable)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--prompts", default=str(PROMPTS_FILE), help="robustness prompt file")
    parser.add_argument("--views", choices=["frontal", "study"], default="frontal",
                        help="a study's frontal view, or all its views as the viewer scores it")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    from training.evaluation.cli_report import run_and_report

    return run_and_report(lambda: robustness_auroc(Engine.load(args.model), args.data, args.split,
                                                   Path(args.prompts), args.views), args.out)


if __name__ == "__main__":
    raise SystemExit(main())
