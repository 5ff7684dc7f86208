"""``cxrclip eval``: embed a manifest split with a saved model and run the requested tasks."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from training.data.dataset import EvalDataset
from training.data.manifest import Manifest, read_manifest
from training.evaluation import metrics

log = logging.getLogger(__name__)
TASKS = ("zeroshot", "binary", "retrieval", "linear_probe")
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


class Embedder:
    """Wraps a loaded model: image embeddings of dataset items, text embeddings of strings."""

    def __init__(self, model: Any, device: torch.device, batch_size: int) -> None:
        self.model, self.device, self.batch_size = model, device, batch_size

    @torch.no_grad()
    def images(self, dataset: EvalDataset, workers: int = 0) -> tuple[torch.Tensor, np.ndarray]:
        loader = DataLoader(dataset, batch_size=self.batch_size, num_workers=workers)
        embs, oks = [], []
        for batch in loader:
            embs.append(self.model.encode_image(batch["image"].to(self.device)).float().cpu())
            oks.append(batch["ok"].numpy())
        if not embs:
            return torch.zeros(0, self.model.embed_dim), np.zeros(0, dtype=bool)
        return torch.cat(embs), np.concatenate(oks).astype(bool)

    @torch.no_grad()
    def texts(self, texts: list[str]) -> torch.Tensor:
        out = []
        for i in range(0, len(texts), self.batch_size):
            enc = self.model.tokenizer(texts[i:i + self.batch_size], padding="longest", truncation=True,
                                       max_length=self.model.config.text.max_length, return_tensors="pt")
            out.append(self.model.encode_text(enc["input_ids"].to(self.device),
                                              enc["attention_mask"].to(self.device)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.model.embed_dim)


def complete_labels(records: list, findings: list[str]) -> list:
    """Records whose unmentioned findings count as absent (0), for data with complete ground
    truth such as the phantoms; the common CheXpert practice of reading blank as negative."""
    return [replace(r, labels={**{f: 0 for f in findings}, **(r.labels or {})}) for r in records]


def _label_matrix(records: list, findings: list[str]) -> np.ndarray:
    """(N, F) of 1/0/-1 with NaN where a study has no label for a finding."""
    out = np.full((len(records), len(findings)), np.nan)
    for i, r in enumerate(records):
        for j, f in enumerate(findings):
            if r.labels and f in r.labels:
                out[i, j] = r.labels[f]
    return out


def zeroshot_multiclass(emb: Embedder, image_emb: torch.Tensor, records: list,
                        findings: list[str]) -> dict[str, Any]:
    """CheXpert5x200-style: studies with exactly one positive among ``findings``."""
    from cxrclip.prompts import class_prompts

    labels = _label_matrix(records, findings)
    single = np.where((labels == 1).sum(axis=1) == 1)[0]
    if len(single) == 0:
        return {"skipped": f"no study has exactly one positive among {findings}"}
    targets = (labels[single] == 1).argmax(axis=1)
    prompts = [emb.texts(class_prompts(f)) for f in findings]
    scores = metrics.class_scores(image_emb[single], prompts)
    return {"accuracy": metrics.multiclass_accuracy(scores, targets), "n": int(len(single)),
            "classes": findings}


BINARY_PROMPTS = ("pair", "ensemble")


def _binary_text(emb: Embedder, finding: str, mode: str, rsna: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(negative, positive) text embeddings of a finding for the binary task.

    "pair": the paper's ["No X", "X"] (RSNA: its BioViL-style pair). "ensemble": the
    viewer's zero-shot - the normalised mean of the finding's class prompts against "No X".
    """
    from cxrclip.prompts import RSNA_PNEUMONIA_PROMPTS, binary_prompts, zero_shot_prompts

    if mode == "ensemble" and not (rsna and finding == "Pneumonia"):
        positives, negatives = zero_shot_prompts(finding)
        pos = torch.nn.functional.normalize(emb.texts(positives).mean(dim=0), dim=0)
        return emb.texts(negatives)[0], pos
    pair = RSNA_PNEUMONIA_PROMPTS if rsna and finding == "Pneumonia" else binary_prompts(finding)
    neg, pos = emb.texts(list(pair))
    return neg, pos


def zeroshot_binary(emb: Embedder, image_emb: torch.Tensor, records: list,
                    findings: list[str], rsna: bool = False, prompts: str = "pair") -> dict[str, Any]:
    """Per finding: softmax over (negative, positive) text on studies labelled 0 or 1 for it."""
    if prompts not in BINARY_PROMPTS:
        raise ValueError(f"binary prompts must be one of {list(BINARY_PROMPTS)}, got {prompts!r}")

    labels = _label_matrix(records, findings)
    scale = float(emb.model.logit_scale.detach().exp())
    out: dict[str, Any] = {}
    for j, finding in enumerate(findings):
        rows = np.where(np.isin(labels[:, j], (0, 1)))[0]
        if len(np.unique(labels[rows, j])) < 2:
            out[finding] = {"skipped": "needs both positive and negative studies"}
            continue
        neg, pos = _binary_text(emb, finding, prompts, rsna)
        probs = metrics.binary_probabilities(image_emb[rows], neg, pos, scale).numpy()
        out[finding] = metrics.binary_metrics(probs, labels[rows, j].astype(int))
    return out


def retrieval(emb: Embedder, image_emb: torch.Tensor, records: list) -> dict[str, Any]:
    """Image→text and text→image recall@1/5/10 with the longer report section as text."""
    rows = [i for i, r in enumerate(records) if r.longest_section()]
    if len(rows) < 2:
        return {"skipped": "fewer than 2 studies with report text"}
    text_emb = emb.texts([records[i].longest_section() for i in rows])
    img = image_emb[rows]
    return {"image_to_text": metrics.recall_at_k(img, text_emb),
            "text_to_image": metrics.recall_at_k(text_emb, img), "n": len(rows)}


def linear_probe(train: tuple[torch.Tensor, list], test: tuple[torch.Tensor, list],
                 findings: list[str]) -> dict[str, Any]:
    """Per finding: logistic regression on frozen image embeddings (uncertain labels dropped)."""
    out: dict[str, Any] = {}
    ytr, yte = _label_matrix(train[1], findings), _label_matrix(test[1], findings)
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
    seen = sorted({k for r in records if r.labels for k in r.labels})
    return [f for f in seen if f != "No Finding"]


def _split_embeddings(emb: Embedder, manifests: list[Manifest], split: str, preprocess: Any):
    dataset = EvalDataset(manifests, split, preprocess)
    if len(dataset) == 0:
        raise ValueError(f"no studies with split {split!r} in {[str(m.root) for m in manifests]}")
    image_emb, ok = emb.images(dataset)
    records = [r for (_, r), good in zip(dataset.items, ok) if good]
    return image_emb[torch.from_numpy(ok)], records, int((~ok).sum())


def run_evaluation(req: EvalRequest) -> dict[str, Any]:
    """Run the tasks, print a table, write JSON when ``req.out`` is set; returns the results."""
    from cxrclip.checkpoint import load_model

    tasks = req.tasks or ["zeroshot", "retrieval"]
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown eval task(s) {unknown}; choose from {list(TASKS)}")
    device = torch.device("cuda" if req.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if req.device == "auto" else req.device))
    loaded = load_model(req.model_dir, device)
    emb = Embedder(loaded.model, device, req.batch_size)
    manifests = [read_manifest(resolve_data(d)) for d in req.data]
    image_emb, records, unreadable = _split_embeddings(emb, manifests, req.split, loaded.config.preprocess)
    findings = _findings(records, req.findings)
    if req.blank_as_negative:
        records = complete_labels(records, findings)
    results: dict[str, Any] = {"model": str(req.model_dir), "model_id": loaded.model_id,
                               "data": req.data, "split": req.split, "n_studies": len(records),
                               "unreadable_images": unreadable,
                               "blank_as_negative": req.blank_as_negative}
    if "zeroshot" in tasks:
        classes = req.findings or [f for f in CHEXPERT_5 if f in findings] or findings
        results["zeroshot"] = zeroshot_multiclass(emb, image_emb, records, classes)
    if "binary" in tasks:
        rsna = any(m.header.dataset == "rsna" for m in manifests)
        results["binary"] = zeroshot_binary(emb, image_emb, records, findings, rsna=rsna,
                                            prompts=req.binary_prompts)
        results["binary_prompts"] = req.binary_prompts
    if "retrieval" in tasks:
        results["retrieval"] = retrieval(emb, image_emb, records)
    if "linear_probe" in tasks:
        train_emb, train_records, _ = _split_embeddings(emb, manifests, req.train_split,
                                                        loaded.config.preprocess)
        results["linear_probe"] = linear_probe((train_emb, train_records), (image_emb, records), findings)
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
    elif not isinstance(value, list):
        rows.append((prefix, str(value)))


def format_table(results: dict[str, Any]) -> str:
    """Two-column text table of all numeric results."""
    rows: list[tuple[str, str]] = []
    _flatten("", results, rows)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
