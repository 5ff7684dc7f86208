"""Out-of-distribution guard: is a view (or a prompt) unlike what the model was trained on?

Stored in a model folder by ``cxrclip calibrate`` as ``ood.json`` (method, thresholds,
what they were computed from) and ``ood.npz`` (arrays; read with ``allow_pickle=False``):

- **Images.** The Mahalanobis distance of a view's image vector to the in-distribution
  vectors (mean and Ledoit-Wolf-style shrunk covariance, from one set of studies); the
  threshold is a high percentile of the distances of *other* held-out in-distribution
  views (default the 99.5th), so about 0.5 % of in-distribution views are flagged by
  construction. A view above the threshold is "outside this model's experience".
  The vector (``representation`` in ``ood.json``) is the spatial mean of the projected
  feature map, *before* L2 normalisation (``mean_feature_map``; with the ResNet tower
  and a linear projection this is the un-normalised image embedding). The normalised
  embedding (``unit_embedding``, the only choice of format version 1, still read)
  discards the vector's length, which is much of what tells a real radiograph from a
  phantom: on the demo models the real CR chest radiograph and its mild variants sit
  1.5-1.6x the threshold away in the mean feature map, against 0.9-1.0x with the unit
  embedding (benchmarks/RESULTS.md, 2026-12-03).
- **Prompts.** A prompt gets a hint that the model has not seen such wording when one
  of its words never occurs in the reference text (the report sentences of the
  in-distribution studies and the class prompts), or when the highest cosine between
  its text embedding and the reference sentences is below a threshold. The word test
  carries the weight: a text tower fine-tuned on a few hundred template sentences maps
  gibberish close to some of them ("asdfgh" has cosine 0.94 to a report sentence of the
  demo model), so the cosine alone cannot tell.

Numpy only (the engine uses it under ONNX Runtime too).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrclip.zero_shot import ViewOOD, unit

OOD_JSON = "ood.json"
OOD_ARRAYS = "ood.npz"
FORMAT = "cxrclip-ood"
FORMAT_VERSION = 2
MEAN_FEATURE_MAP = "mean_feature_map"
UNIT_EMBEDDING = "unit_embedding"
REPRESENTATIONS = (MEAN_FEATURE_MAP, UNIT_EMBEDDING)
_WORD = re.compile(r"[a-z]+")


def words(text: str) -> list[str]:
    """Lower-case letter runs of two or more letters ("Left-sided PTX." -> left, sided, ptx)."""
    return [w for w in _WORD.findall(text.lower()) if len(w) >= 2]


class OODError(ValueError):
    """Unusable OOD statistics; the message names the file and the fix."""


def check_representation(representation: str) -> str:
    if representation not in REPRESENTATIONS:
        raise OODError(f"OOD representation must be one of {list(REPRESENTATIONS)}, got {representation!r}")
    return representation


def _as_representation(vectors: np.ndarray, representation: str) -> np.ndarray:
    """float64 rows; re-normalised for ``unit_embedding`` (as the embedding was fitted)."""
    x = np.asarray(vectors, np.float64)
    return unit(x) if representation == UNIT_EMBEDDING else x


def shrunk_covariance(x: np.ndarray) -> tuple[np.ndarray, float]:
    """(covariance, shrinkage) of rows ``x``: Ledoit-Wolf shrinkage towards a scaled identity."""
    x = np.asarray(x, np.float64)
    n, d = x.shape
    xc = x - x.mean(axis=0)
    sample = xc.T @ xc / n
    mu = np.trace(sample) / d
    delta = np.sum((sample - mu * np.eye(d)) ** 2) / d
    beta = sum(np.sum((np.outer(r, r) - sample) ** 2) for r in xc) / (d * n * n)
    shrink = float(min(1.0, beta / max(delta, 1e-30)))
    return shrink * mu * np.eye(d) + (1 - shrink) * sample, shrink


@dataclass
class OODGuard:
    """Image and prompt familiarity scores with their thresholds; see the module docstring."""

    mean: np.ndarray
    precision: np.ndarray
    threshold: float
    text_reference: np.ndarray | None = None
    prompt_threshold: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    vocabulary: frozenset[str] = frozenset()
    representation: str = MEAN_FEATURE_MAP

    def __post_init__(self) -> None:
        check_representation(self.representation)

    @classmethod
    def fit(cls, vectors: np.ndarray, meta: dict[str, Any] | None = None,
            representation: str = MEAN_FEATURE_MAP) -> OODGuard:
        """Mean and shrunk precision of in-distribution image vectors of ``representation``
        (threshold set later)."""
        x = _as_representation(vectors, check_representation(representation))
        if x.ndim != 2 or x.shape[0] < 2:
            raise OODError(f"OOD statistics need at least 2 image vectors, got shape {x.shape}")
        cov, shrink = shrunk_covariance(x)
        info = {"method": "mahalanobis", "shrinkage": round(shrink, 6), "n_statistics": int(x.shape[0]),
                **(meta or {})}
        return cls(x.mean(axis=0), np.linalg.inv(cov), float("inf"), meta=info, representation=representation)

    def pick(self, embeddings: np.ndarray, mean_maps: np.ndarray) -> np.ndarray:
        """Of a view's two image vectors, the one this guard was fitted on."""
        return mean_maps if self.representation == MEAN_FEATURE_MAP else embeddings

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row (of the guard's representation) to the statistics."""
        diff = _as_representation(np.atleast_2d(vectors), self.representation) - self.mean
        return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", diff, self.precision, diff), 0.0))

    def set_threshold(self, heldout_embeddings: np.ndarray, percentile: float = 99.5) -> float:
        """Threshold = ``percentile`` of the held-out in-distribution views' distances."""
        scores = self.scores(heldout_embeddings)
        self.threshold = float(np.percentile(scores, percentile))
        self.meta.update(threshold_percentile=percentile, n_threshold=int(len(scores)))
        return self.threshold

    def verdicts(self, view_ids: list[str], embeddings: np.ndarray) -> list[ViewOOD]:
        """A `ViewOOD` per view: flagged when its distance exceeds the threshold."""
        scores = self.scores(embeddings) if len(view_ids) else np.zeros(0)
        return [ViewOOD(v, bool(s > self.threshold), round(float(s), 4), round(self.threshold, 4))
                for v, s in zip(view_ids, scores)]

    # ----- prompts --------------------------------------------------------------------
    def set_text_reference(self, sentence_embeddings: np.ndarray, threshold: float) -> None:
        self.text_reference = unit(np.asarray(sentence_embeddings, np.float32))
        self.prompt_threshold = float(threshold)

    def prompt_familiarity(self, text_embeddings: np.ndarray) -> np.ndarray:
        """Highest cosine of each prompt embedding to the reference sentences (NaN without them)."""
        emb = unit(np.atleast_2d(np.asarray(text_embeddings, np.float32)))
        if self.text_reference is None or not len(self.text_reference):
            return np.full(emb.shape[0], np.nan)
        return (emb @ self.text_reference.T).max(axis=1).astype(np.float64)

    def unknown_words(self, text: str) -> list[str]:
        """The prompt's words that never occur in the reference text (empty without a vocabulary)."""
        if not self.vocabulary:
            return []
        return list(dict.fromkeys(w for w in words(text) if w not in self.vocabulary))

    def prompt_is_unfamiliar(self, text: str, text_embedding: np.ndarray) -> bool:
        """True when a word is unknown or the prompt is farther from every reference sentence
        than the threshold."""
        if self.unknown_words(text):
            return True
        if self.prompt_threshold is None:
            return False
        return bool(self.prompt_familiarity(text_embedding)[0] < self.prompt_threshold)

    # ----- files ----------------------------------------------------------------------
    def save(self, model_dir: str | Path) -> list[Path]:
        folder = Path(model_dir)
        arrays = {"mean": self.mean.astype(np.float32), "precision": self.precision.astype(np.float32)}
        if self.text_reference is not None:
            arrays["text_reference"] = self.text_reference.astype(np.float16)
        np.savez_compressed(folder / OOD_ARRAYS, **arrays)
        info = {"format": FORMAT, "format_version": FORMAT_VERSION, "representation": self.representation,
                "threshold": self.threshold, "prompt_threshold": self.prompt_threshold, **self.meta,
                "vocabulary": sorted(self.vocabulary)}
        (folder / OOD_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        return [folder / OOD_JSON, folder / OOD_ARRAYS]

    @classmethod
    def load(cls, model_dir: str | Path, model_id: str | None = None) -> OODGuard | None:
        """The folder's guard, or None when it has no ``ood.json``/``ood.npz`` or they were
        computed for another model id."""
        folder = Path(model_dir)
        if not (folder / OOD_JSON).is_file() or not (folder / OOD_ARRAYS).is_file():
            return None
        try:
            info = json.loads((folder / OOD_JSON).read_text(encoding="utf-8"))
            with np.load(folder / OOD_ARRAYS, allow_pickle=False) as data:
                arrays = {k: np.asarray(data[k]) for k in data.files}
        except (OSError, ValueError) as exc:
            raise OODError(f"{folder / OOD_JSON} / {OOD_ARRAYS} unreadable ({exc}); "
                           "re-run `cxrclip calibrate`") from exc
        if info.get("format") != FORMAT or "mean" not in arrays or "precision" not in arrays:
            raise OODError(f"{folder / OOD_JSON} is not a {FORMAT} file with mean and precision; "
                           "re-run `cxrclip calibrate`")
        if model_id is not None and info.get("model_id") not in (None, model_id):
            import logging

            logging.getLogger(__name__).warning("%s was computed for model %s, not %s: ignored",
                                                folder / OOD_JSON, info.get("model_id"), model_id)
            return None
        # Format version 1 had no "representation": it always used the unit embedding.
        representation = info.get("representation", UNIT_EMBEDDING)
        if representation not in REPRESENTATIONS:
            raise OODError(f"{folder / OOD_JSON}: \"representation\" must be one of {list(REPRESENTATIONS)}, "
                           f"got {representation!r}; re-run `cxrclip calibrate`")
        meta = {k: v for k, v in info.items() if k not in ("format", "format_version", "threshold",
                                                          "prompt_threshold", "vocabulary", "representation")}
        text = arrays.get("text_reference")
        return cls(arrays["mean"].astype(np.float64), arrays["precision"].astype(np.float64),
                   float(info["threshold"]), None if text is None else text.astype(np.float32),
                   info.get("prompt_threshold"), meta, frozenset(info.get("vocabulary") or ()), representation)
