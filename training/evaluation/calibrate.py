"""``cxrclip calibrate MODEL --data MANIFEST… [--split validate] [--ood-data MANIFEST…]``.

Fits per-finding calibration and operating points (`cxrclip.calibration`) on the
labelled studies of ``--data`` (frontal view, the evaluation's pick; ``--views study``: all
of a study's views, as the viewer scores it) and, with
``--ood-data``, the out-of-distribution guard (`cxrclip.ood`): statistics from
every view of the ``--ood-data`` studies, the threshold from every view of the
``--data`` split (other studies, so the threshold is held out from the statistics) and of
any ``--ood-threshold-data`` studies,
the prompt reference from the ``--ood-data`` report sentences; and the heatmaps' normal
reference (`cxrclip.heatmap_reference`) from the ``--ood-data`` studies labelled No
Finding. Writes ``calibration.json`` (and ``ood.json`` + ``ood.npz``,
``heatmap_reference.json`` + ``.npz``) into the model folder, lists them in the card and
rewrites ``MANIFEST.sha256``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cxrclip.calibration import Calibration, fit_finding, reliability
from cxrclip.heatmap_reference import HeatmapReference, HeatmapReferenceError
from cxrclip.ood import MEAN_FEATURE_MAP, OODGuard
from cxrclip.zero_shot import ZeroShotClassifier

OOD_PERCENTILE = 99.5
PROMPT_PERCENTILE = 1.0
PROMPT_MARGIN = 0.1


@dataclass
class CalibrateRequest:
    """Arguments of one ``cxrclip calibrate`` run."""

    model_dir: str
    data: list[str]
    split: str = "validate"
    ood_data: list[str] | None = None
    ood_threshold_data: list[str] | None = None  # more held-out views for the OOD threshold
    blank_as_negative: bool = False
    device: str = "auto"
    batch_size: int = 64
    ood_percentile: float = OOD_PERCENTILE
    command: str = ""
    views: str = "frontal"


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``calibrate MODEL --data MANIFEST ...``."""
    p = sub.add_parser("calibrate", help="fit per-finding calibration, operating points and the OOD guard",
                       description=__doc__.splitlines()[0])
    p.add_argument("model_dir", help="model directory (written into)")
    p.add_argument("--data", required=True, action="append", help="labelled manifest directory (repeatable)")
    p.add_argument("--split", default="validate", help="split of --data to fit on (default: validate)")
    p.add_argument("--ood-data", action="append", default=None,
                   help="in-distribution manifest (other studies) for the OOD statistics (repeatable)")
    p.add_argument("--ood-threshold-data", action="append", default=None,
                   help="in-distribution manifest whose views (all splits) join the --data split's views for "
                        "the OOD threshold, e.g. the same kind of images rendered at another size (repeatable)")
    p.add_argument("--blank-as-negative", action="store_true",
                   help="count findings a study's labels do not mention as absent (complete ground truth)")
    p.add_argument("--ood-percentile", type=float, default=OOD_PERCENTILE,
                   help=f"OOD threshold percentile of held-out in-distribution views (default {OOD_PERCENTILE})")
    p.add_argument("--views", choices=["frontal", "study"], default="frontal",
                   help="fit on each study's frontal view (default) or on all its views as the viewer scores "
                        "a study (mean embedding)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.ood_threshold_data and not args.ood_data:
        raise SystemExit("cxrclip calibrate: --ood-threshold-data needs --ood-data (the OOD statistics)")
    req = CalibrateRequest(args.model_dir, args.data, args.split, args.ood_data, args.ood_threshold_data,
                           args.blank_as_negative, args.device, args.batch_size, args.ood_percentile,
                           "cxrclip " + " ".join(shlex.quote(a) for a in sys.argv[1:]), args.views)
    summary = run_calibrate(req)
    print(json.dumps(summary, indent=2))
    return 0


def fit_calibration(classifier: ZeroShotClassifier, embeddings: np.ndarray, labels: np.ndarray,
                    model_id: str) -> Calibration:
    """Fit every finding on the input its calibration maps (No Finding: the complement of the
    others); ``labels`` is (N, F) in ``classifier.names`` order with 1/0 and NaN/-1 for unknown."""
    inputs = classifier.calibration_inputs(embeddings)
    fitted = {}
    for j, name in enumerate(classifier.names):
        rows = np.isin(labels[:, j], (0, 1))
        found = fit_finding(inputs[rows, j], labels[rows, j]) if rows.any() else None
        if found is not None:
            fitted[name] = found
    calibration = Calibration(model_id, fitted, classifier.no_finding)
    classifier.calibration = calibration
    calibration.reliability = _reliability(classifier, embeddings, labels)
    return calibration


def _reliability(classifier: ZeroShotClassifier, embeddings: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    raw, cal = classifier.probabilities(embeddings, False), classifier.probabilities(embeddings)
    out = {}
    for j, name in enumerate(classifier.names):
        rows = np.isin(labels[:, j], (0, 1))
        if classifier.calibration.has(name) and len(np.unique(labels[rows, j])) == 2:
            before, after = reliability(raw[rows, j], labels[rows, j]), reliability(cal[rows, j], labels[rows, j])
            out[name] = {"ece_before": before["ece"], "brier_before": before["brier"],
                         "ece_after": after["ece"], "brier_after": after["brier"]}
    return out


def _report_sentences(manifests: list) -> list[str]:
    from cxrclip.sentences import collect_sentences

    texts = [t for m in manifests for r in m.records for t in (r.findings, r.impression) if t]
    return list(dict.fromkeys(s.text for s in collect_sentences(texts)))


def fit_ood(engine: Any, ood_manifests: list, data_manifests: list, split: str, percentile: float,
            data_names: list[str], split_name: list[str], threshold_manifests: list = ()) -> OODGuard:
    """Statistics from every view of ``ood_manifests``; threshold from every view of the data split
    and of ``threshold_manifests`` (all splits); prompt reference from the OOD set's report
    sentences, threshold = (1st percentile of the class prompts' familiarity) - margin."""
    from cxrclip.prompts import CHEXPERT_14, class_prompts
    from training.evaluation.embedding import all_view_vectors

    _, statistics = all_view_vectors(engine, ood_manifests)
    threshold_names = split_name + [str(m.root) for m in threshold_manifests]
    guard = OODGuard.fit(statistics, {"model_id": engine.model_id, "statistics_data": data_names,
                                      "threshold_data": ", ".join(threshold_names)}, MEAN_FEATURE_MAP)
    held_out = [guard.pick(*all_view_vectors(engine, data_manifests, split))]
    held_out += [guard.pick(*all_view_vectors(engine, [m])) for m in threshold_manifests]
    guard.set_threshold(np.concatenate(held_out), percentile)
    sentences = _report_sentences(ood_manifests)
    prompts = [p for f in CHEXPERT_14 for p in class_prompts(f)]
    from cxrclip.ood import words

    guard.set_text_reference(engine.embed_texts(sentences), 0.0)
    familiarity = guard.prompt_familiarity(engine.embed_texts(prompts))
    guard.prompt_threshold = round(float(np.percentile(familiarity, PROMPT_PERCENTILE)) - PROMPT_MARGIN, 4)
    guard.vocabulary = frozenset(w for text in sentences + prompts for w in words(text))
    guard.meta.update(n_reference_sentences=len(sentences), n_vocabulary=len(guard.vocabulary),
                      prompt_rule=f"hint when a word is not in the vocabulary of the reference sentences and "
                                  f"class prompts, or the highest cosine to the reference sentences is below "
                                  f"percentile {PROMPT_PERCENTILE:g} of the class prompts' minus "
                                  f"{PROMPT_MARGIN}")
    return guard


def is_normal(record: Any) -> bool:
    """CheXpert's No Finding = 1 (devices allowed)."""
    return bool(record.labels) and record.labels.get("No Finding") == 1


def fit_heatmap_reference(engine: Any, ood_manifests: list, data_names: list[str]) -> HeatmapReference:
    """Mean projected feature map of the normal studies' views per view kind (frontal, lateral)."""
    from training.data.dataset import view_kind
    from training.evaluation.embedding import positioned_views

    maps = ((view_kind(position) or "other", engine.feature_map(view))
            for position, view in positioned_views(ood_manifests, is_normal))
    reference = HeatmapReference.fit(maps, {"model_id": engine.model_id, "data": data_names,
                                            "rule": "mean projected feature map of the views of studies "
                                                    "labelled No Finding = 1, per view kind"})
    return reference  # the feature-map cache keeps at most 32 maps; the text cache stays for later steps


def run_calibrate(req: CalibrateRequest) -> dict[str, Any]:
    """Fit, save into the model folder, update the card and manifest; returns a summary."""
    from cxrclip.engine import Engine
    from cxrclip.manifest import write_manifest
    from cxrclip.prompt_cache import write_prompt_embeddings
    from training.data.manifest import read_manifest
    from training.evaluation.embedding import study_embeddings
    from training.evaluation.runner import complete_labels, label_matrix, resolve_data

    engine = Engine.load(req.model_dir, device=req.device)
    engine.batch_size = req.batch_size
    manifests = [read_manifest(resolve_data(d)) for d in req.data]
    split = study_embeddings(engine, manifests, req.split, req.views)
    classifier = ZeroShotClassifier.build(engine.encode_text, engine.logit_scale)
    records = complete_labels(split.records, classifier.names) if req.blank_as_negative else split.records
    calibration = fit_calibration(classifier, split.embeddings, label_matrix(records, classifier.names),
                                  engine.model_id)
    calibration.data, calibration.split, calibration.views = list(req.data), req.split, req.views
    calibration.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    calibration.command = req.command
    written = [calibration.save(req.model_dir)]
    summary: dict[str, Any] = {"n_studies": len(records), "operating_points": calibration.operating_points(),
                               "methods": {n: c.method for n, c in calibration.findings.items()},
                               "reliability": calibration.reliability}
    if req.ood_data:
        ood_manifests = [read_manifest(resolve_data(d)) for d in req.ood_data]
        threshold_manifests = [read_manifest(resolve_data(d)) for d in req.ood_threshold_data or ()]
        guard = fit_ood(engine, ood_manifests, manifests, req.split, req.ood_percentile,
                        list(req.ood_data), [f"{d} ({req.split})" for d in req.data], threshold_manifests)
        written += guard.save(req.model_dir)
        summary["ood"] = {"threshold": guard.threshold, "prompt_threshold": guard.prompt_threshold,
                          "representation": guard.representation, **guard.meta}
        try:
            reference = fit_heatmap_reference(engine, ood_manifests, list(req.ood_data))
            written += reference.save(req.model_dir)
            summary["ood"]["heatmap_reference"] = reference.meta
        except HeatmapReferenceError as exc:  # no study labelled No Finding = 1
            summary["ood"]["heatmap_reference"] = {"skipped": f"{exc} (no --ood-data study is labelled "
                                                              "No Finding = 1)"}
    _update_card(Path(req.model_dir), calibration, summary.get("ood"))
    written.append(write_prompt_embeddings(engine, req.model_dir))  # cached above: no new encoding
    write_manifest(Path(req.model_dir))
    summary["written"] = [str(p) for p in written]
    return summary


def _update_card(model_dir: Path, calibration: Calibration, ood: dict[str, Any] | None) -> None:
    """Operating points, calibration and OOD summary into ``model_card.json`` ``extra`` and
    a section of ``MODEL_CARD.md`` (replaced on re-runs)."""
    from training.evaluation.card_section import update_card_files

    update_card_files(model_dir, calibration, ood)
