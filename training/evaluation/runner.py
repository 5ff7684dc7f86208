"""``cxrclip eval``: embed a manifest split with a saved model and run the requested tasks.

Images are embedded and findings scored through `cxrclip.Engine` and the one
zero-shot recipe (`cxrclip.zero_shot`), so evaluation measures what the viewer shows.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrclip.engine import Engine
from cxrclip.zero_shot import NO_FINDING, ZeroShotClassifier, unit
from training.data.manifest import Manifest, read_manifest
from training.evaluation import metrics
from training.evaluation.embedding import all_view_vectors, study_embeddings

log = logging.getLogger(__name__)
TASKS = ("zeroshot", "binary", "retrieval", "linear_probe", "ood")
CHEXPERT_5 = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")


@dataclass
class EvalRequest:
    """Arguments of one evaluation run."""

    model_dir: str
    data: list[str]
    split: str = "test"
    train_split: str = "train"
    tasks: list[str] | None = None
    findings: list[str] | None = None
    batch_size: int = 64
    device: str = "auto"
    out: str | None = None
    blank_as_negative: bool = False
    binary_prompts: str = "pair"
    views: str = "frontal"


def resolve_data(name_or_path: str) -> Path:
    """A manifest directory, or ``$CXRCLIP_DATA/<name>``."""
    path = Path(name_or_path)
    if path.exists():
        return path
    base = os.environ.get("CXRCLIP_DATA")
    if base and (Path(base) / name_or_path).exists():
        return Path(base) / name_or_path
    raise FileNotFoundError(f"--data {name_or_path!r} is neither a manifest directory nor a name "
                            f"under $CXRCLIP_DATA ({base or 'unset'})")


def complete_labels(records: list, findings: list[str]) -> list:
    """Records whose unmentioned findings count as absent (0), for data with complete ground
    truth such as the phantoms; the common CheXpert practice of reading blank as negative."""
    return [replace(r, labels={**{f: 0 for f in findings}, **(r.labels or {})}) for r in records]


def label_matrix(records: list, findings: list[str]) -> np.ndarray:
    """(N, F) of 1/0/-1 with NaN where a study has no label for a finding."""
    out = np.full((len(records), len(findings)), np.nan)
    for i, r in enumerate(records):
        for j, f in enumerate(findings):
            if r.labels and f in r.labels:
                out[i, j] = r.labels[f]
    return out


def _texts(engine: Engine, texts: list[str]) -> torch.Tensor:
    return torch.from_numpy(engine.embed_texts(texts))


def zeroshot_multiclass(engine: Engine, image_emb: torch.Tensor, records: list,
                        findings: list[str]) -> dict[str, Any]:
    """CheXpert5x200-style: studies with exactly one positive among ``findings``."""
    from cxrclip.prompts import class_prompts

    labels = label_matrix(records, findings)
    single = np.where((labels == 1).sum(axis=1) == 1)[0]
    if len(single) == 0:
        return {"skipped": f"no study has exactly one positive among {findings}"}
    targets = (labels[single] == 1).argmax(axis=1)
    prompts = [_texts(engine, class_prompts(f)) for f in findings]
    scores = metrics.class_scores(image_emb[single], prompts)
    return {"accuracy": metrics.multiclass_accuracy(scores, targets), "n": int(len(single)),
            "classes": findings}


BINARY_PROMPTS = ("pair", "ensemble")


def binary_classifier(engine: Engine, findings: list[str], mode: str, rsna: bool) -> ZeroShotClassifier:
    """The zero-shot classifier of the binary task.

    "ensemble": the viewer's recipe (`Engine.zero_shot_classifier`: class-prompt ensembles,
    No Finding as the complement of the others, the folder's calibration). "pair": the
    paper's ["No X", "X"] per finding (No Finding included), uncalibrated. RSNA's Pneumonia
    keeps its BioViL-style pair in both modes.
    """
    from cxrclip.prompts import RSNA_PNEUMONIA_PROMPTS, binary_prompts

    if mode not in BINARY_PROMPTS:
        raise ValueError(f"binary prompts must be one of {list(BINARY_PROMPTS)}, got {mode!r}")
    if mode == "ensemble":
        classifier = engine.zero_shot_classifier(findings)
    else:
        pairs = [binary_prompts(f) for f in findings]
        text = engine.embed_texts([t for pair in pairs for t in pair]).astype(np.float64)
        classifier = ZeroShotClassifier(findings, text[1::2], text[0::2], engine.logit_scale, None, "text")
    if rsna and "Pneumonia" in classifier.names:
        neg, pos = engine.embed_texts(list(RSNA_PNEUMONIA_PROMPTS)).astype(np.float64)
        j = classifier.names.index("Pneumonia")
        classifier.positive[j], classifier.negative[j] = unit(pos), unit(neg)
    return classifier


def _binary_entry(probs: np.ndarray, raw: np.ndarray, targets: np.ndarray,
                  point: float | None) -> dict[str, Any]:
    """AUROC/F1/accuracy (at the operating point, else 0.5), reliability before and after calibration."""
    from cxrclip.calibration import reliability

    out = metrics.binary_metrics(probs, targets, threshold=0.5 if point is None else point)
    raw_rel = reliability(raw, targets)
    out.update(ece_raw=raw_rel["ece"], brier_raw=raw_rel["brier"])
    if point is not None:
        rel = reliability(probs, targets)
        pred = probs >= point
        out.update(ece=rel["ece"], brier=rel["brier"], auroc_raw=metrics.binary_metrics(raw, targets)["auroc"],
                   operating_point=point, sensitivity=float(pred[targets == 1].mean()),
                   specificity=float(1 - pred[targets == 0].mean()))
    return out


def zeroshot_binary(engine: Engine, image_emb: np.ndarray, records: list, findings: list[str],
                    rsna: bool = False, prompts: str = "pair") -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Per finding: the zero-shot probability on studies labelled 0 or 1 for it (see `_binary_entry`),
    with a study-bootstrap 95 % interval of its AUROC (``auroc_ci95``); and the macro AUROC over the
    scored findings except No Finding with its interval (`macro_entry`; None when none is scored)."""
    classifier = binary_classifier(engine, findings, prompts, rsna)
    calibration = classifier.calibration
    probs, raw = classifier.probabilities(image_emb), classifier.probabilities(image_emb, calibrated=False)
    labels = label_matrix(records, findings)
    out: dict[str, Any] = {}
    for j, finding in enumerate(findings):
        rows = np.where(np.isin(labels[:, j], (0, 1)))[0]
        if len(np.unique(labels[rows, j])) < 2:
            out[finding] = {"skipped": "needs both positive and negative studies"}
            continue
        col = classifier.names.index(finding)
        point = calibration.operating_point(finding) if calibration is not None else None
        out[finding] = _binary_entry(probs[rows, col], raw[rows, col], labels[rows, j].astype(int), point)
    scored = [f for f in findings if "auroc" in out[f]]
    if not scored:
        return out, None
    columns = [classifier.names.index(f) for f in scored]
    labelled = labels[:, [findings.index(f) for f in scored]]
    boot = metrics.bootstrap_auroc(probs[:, columns], labelled, scored, macro_over=_macro_findings(scored))
    for f in scored:
        out[f]["auroc_ci95"] = boot["findings"][f]["ci95"]
    return out, macro_entry(out, boot)


def _macro_findings(scored: list[str]) -> list[str]:
    """What the headline macro AUROC averages: every scored finding but No Finding (the 13
    CheXpert findings), or all of them when No Finding is the only one."""
    return [f for f in scored if f != NO_FINDING] or scored


def macro_entry(per_finding: dict[str, Any], boot: dict[str, Any]) -> dict[str, Any]:
    """Macro AUROC (mean of the findings' AUROCs) with its study-bootstrap interval."""
    over = _macro_findings([f for f, v in per_finding.items() if "auroc" in v])
    return {"auroc": float(np.mean([per_finding[f]["auroc"] for f in over])), "ci95": boot["macro"]["ci95"],
            "n_findings": len(over), "findings": over, "bootstrap_resamples": boot["resamples"],
            "bootstrap_dropped": boot["macro"]["dropped"]}


def out_of_distribution(engine: Engine, manifests: list[Manifest], split: str) -> dict[str, Any]:
    """Share of the split's views (all of them) the model's OOD guard flags: in-distribution
    data should give about the guard's percentile (e.g. 0.5 %)."""
    guard = engine.ood_guard
    if guard is None:
        return {"skipped": "the model folder has no ood.json/ood.npz (run `cxrclip calibrate`)"}
    scores = guard.scores(guard.pick(*all_view_vectors(engine, manifests, split)))
    flagged = scores > guard.threshold
    return {"flagged": int(flagged.sum()), "n_views": int(len(scores)), "false_ood_rate": float(flagged.mean()),
            "threshold": guard.threshold, "score_p50": float(np.median(scores)),
            "score_max": float(scores.max())}


def retrieval(engine: Engine, image_emb: torch.Tensor, records: list) -> dict[str, Any]:
    """Image→text and text→image recall@1/5/10 with the longer report section as text."""
    rows = [i for i, r in enumerate(records) if r.longest_section()]
    if len(rows) < 2:
        return {"skipped": "fewer than 2 studies with report text"}
    text_emb = _texts(engine, [records[i].longest_section() for i in rows])
    img = image_emb[rows]
    return {"image_to_text": metrics.recall_at_k(img, text_emb),
            "text_to_image": metrics.recall_at_k(text_emb, img), "n": len(rows)}


def linear_probe(train: tuple[torch.Tensor, list], test: tuple[torch.Tensor, list],
                 findings: list[str]) -> dict[str, Any]:
    """Per finding: logistic regression on frozen image embeddings (uncertain labels dropped)."""
    out: dict[str, Any] = {}
    ytr, yte = label_matrix(train[1], findings), label_matrix(test[1], findings)
    for j, finding in enumerate(findings):
        a = np.isin(ytr[:, j], (0, 1))
        b = np.isin(yte[:, j], (0, 1))
        try:
            out[finding] = metrics.linear_probe_auroc(train[0][a].numpy(), ytr[a, j].astype(int),
                                                      test[0][b].numpy(), yte[b, j].astype(int))
        except ValueError as exc:
            out[finding] = {"skipped": str(exc)}
    return out


def _findings(records: list, requested: list[str] | None) -> list[str]:
    if requested:
        return requested
    return sorted({k for r in records if r.labels for k in r.labels})


def load_engine(model_dir: str, device: str) -> Engine:
    """The engine the viewer would use for ``model_dir`` (calibration and OOD files attached)."""
    return Engine.load(model_dir, device=device)


def run_evaluation(req: EvalRequest) -> dict[str, Any]:
    """Run the tasks, print a table, write JSON when ``req.out`` is set; returns the results."""
    tasks = req.tasks or ["zeroshot", "retrieval"]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown eval task(s) {unknown}; choose from {list(TASKS)}")
    engine = load_engine(req.model_dir, req.device)
    engine.batch_size = req.batch_size
    manifests = [read_manifest(resolve_data(d)) for d in req.data]
    split = study_embeddings(engine, manifests, req.split, req.views)
    image_emb, records = split.embeddings, split.records
    findings = _findings(records, req.findings)
    if req.blank_as_negative:
        records = complete_labels(records, findings)
    results: dict[str, Any] = {"model": str(req.model_dir), "model_id": engine.model_id,
                               "data": req.data, "split": req.split, "n_studies": len(records),
                               "unreadable_images": split.unreadable,
                               "blank_as_negative": req.blank_as_negative, "views": req.views,
                               "calibrated": engine.calibration is not None}
    if "zeroshot" in tasks:
        classes = req.findings or [f for f in CHEXPERT_5 if f in findings] or findings
        results["zeroshot"] = zeroshot_multiclass(engine, torch.from_numpy(image_emb), records, classes)
    if "binary" in tasks:
        rsna = any(m.header.dataset == "rsna" for m in manifests)
        results["binary"], results["binary_macro"] = zeroshot_binary(engine, image_emb, records, findings,
                                                                     rsna=rsna, prompts=req.binary_prompts)
        results["binary_prompts"] = req.binary_prompts
    if "retrieval" in tasks:
        results["retrieval"] = retrieval(engine, torch.from_numpy(image_emb), records)
    if "linear_probe" in tasks:
        train = study_embeddings(engine, manifests, req.train_split, req.views)
        results["linear_probe"] = linear_probe((torch.from_numpy(train.embeddings), train.records),
                                               (torch.from_numpy(image_emb), records), findings)
    if "ood" in tasks:
        results["ood"] = out_of_distribution(engine, manifests, req.split)
    print(format_table(results))
    if req.out:
        Path(req.out).parent.mkdir(parents=True, exist_ok=True)
        Path(req.out).write_text(json.dumps(results, indent=2) + "\n")
    return results


def _flatten(prefix: str, value: Any, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else k, v, rows)
    elif isinstance(value, float):
        rows.append((prefix, f"{value:.4f}"))
    elif isinstance(value, list) and len(value) == 2 and all(isinstance(v, float) for v in value):
        rows.append((prefix, f"{value[0]:.4f} – {value[1]:.4f}"))  # an interval
    elif not isinstance(value, list):
        rows.append((prefix, str(value)))


def format_table(results: dict[str, Any]) -> str:
    """Two-column text table of all numeric results."""
    rows: list[tuple[str, str]] = []
    _flatten("", results, rows)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
