"""A bank of report sentences with their text embeddings, for nearest-sentence lookup.

The bank is tied to the model that embedded it (its `model_id`): embeddings
from another model live in another space, so loading checks the id.

On disk a bank is a directory:
- `sentences.json`: `[{"text": ..., "count": ...}, ...]`
- `embeddings.npy`: (N, D) float16 or float32, L2-normalised rows
- `bank.json`: `{"model_id", "dim", "count", "dtype", "created", "source"}`
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cxrclip.sentences import SentenceCount


SENTENCES_FILE = "sentences.json"
EMBEDDINGS_FILE = "embeddings.npy"
META_FILE = "bank.json"
_STORE_DTYPES = {"float16": np.float16, "float32": np.float32}

EncodeFn = Callable[[list[str]], np.ndarray]


class SentenceBankError(ValueError):
    """A sentence bank is malformed or cannot be used as asked."""


class BankModelMismatchError(SentenceBankError):
    """The bank was built with a different model than the one in use."""


class Neighbour(NamedTuple):
    """One nearest sentence: its text, cosine similarity to the query, and source count."""

    sentence: str
    similarity: float
    count: int


@dataclass
class SentenceBank:
    """Sentences, their counts, and their L2-normalised embeddings (float32 in memory)."""

    sentences: list[str]
    counts: np.ndarray
    embeddings: np.ndarray
    model_id: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.embeddings = np.ascontiguousarray(self.embeddings, dtype=np.float32)
        self.counts = np.asarray(self.counts, dtype=np.int64)
        n = len(self.sentences)
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != n or self.counts.shape != (n,):
            raise SentenceBankError(
                f"bank shapes disagree: {n} sentences, counts {self.counts.shape}, "
                f"embeddings {self.embeddings.shape}; expected (N,) counts and (N, D) embeddings"
            )

    def __len__(self) -> int:
        return len(self.sentences)

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return int(self.embeddings.shape[1])

    @classmethod
    def build(
        cls,
        sentences: Sequence[SentenceCount],
        encode: EncodeFn,
        model_id: str,
        batch_size: int = 256,
        progress: bool = True,
        source: str = "",
    ) -> SentenceBank:
        """Embed `sentences` in batches with `encode` (texts → (n, D) array) and build a bank.

        `encode` is usually `Engine.embed_texts`; rows are re-normalised here so
        any encoder output works.
        """
        if batch_size < 1:
            raise SentenceBankError(f"batch_size must be >= 1, got {batch_size}")
        if not sentences:
            raise SentenceBankError("no sentences to embed; the source gave no usable text")
        texts = [s.text for s in sentences]
        chunks = []
        for start in _progress(range(0, len(texts), batch_size), progress, len(texts), batch_size):
            batch = np.asarray(encode(texts[start:start + batch_size]), dtype=np.float32)
            chunks.append(_normalize_rows(batch))
        meta = {"source": source, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        return cls(texts, np.array([s.count for s in sentences]), np.concatenate(chunks), model_id, meta)

    def nearest(self, embedding: np.ndarray, k: int = 5) -> list[Neighbour]:
        """The `k` sentences most similar (cosine) to `embedding`, best first.

        One matrix-vector product plus `np.argpartition`, so it stays fast for
        100,000+ sentences.
        """
        return self.nearest_batch(np.asarray(embedding).reshape(1, -1), k)[0]

    def nearest_batch(self, queries: np.ndarray, k: int = 5) -> list[list[Neighbour]]:
        """`nearest` for several queries (Q, D) in one pass over the bank.

        Reading the bank dominates the cost, so e.g. every view plus the study
        cost about as much as one query.
        """
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise SentenceBankError(f"query has dimension {queries.shape[-1]}, bank has {self.dim}; "
                                    "embed the query with the bank's model")
        norms = np.linalg.norm(queries, axis=1, keepdims=True)
        if not (np.isfinite(norms).all() and (norms > 0).all()):
            raise SentenceBankError(f"query embedding norms {norms.ravel().tolist()}; expected finite non-zero vectors")
        scores = self.embeddings @ (queries / norms).T  # (N, Q)
        k = max(0, min(int(k), len(self)))
        return [self._top_k(scores[:, j], k) for j in range(scores.shape[1])]

    def _top_k(self, scores: np.ndarray, k: int) -> list[Neighbour]:
        if k == 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k] if k < len(self) else np.arange(len(self))
        top = top[np.argsort(-scores[top], kind="stable")]
        return [Neighbour(self.sentences[i], float(scores[i]), int(self.counts[i])) for i in top]

    def save(self, directory: Path, dtype: str = "float16") -> Path:
        """Write the bank to `directory` (created if needed); returns the directory."""
        if dtype not in _STORE_DTYPES:
            raise SentenceBankError(f"dtype must be one of {sorted(_STORE_DTYPES)}, got {dtype!r}")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        rows = [{"text": t, "count": int(c)} for t, c in zip(self.sentences, self.counts)]
        (directory / SENTENCES_FILE).write_text(json.dumps(rows, ensure_ascii=False, indent=0), encoding="utf-8")
        np.save(directory / EMBEDDINGS_FILE, self.embeddings.astype(_STORE_DTYPES[dtype]))
        meta = {**self.meta, "model_id": self.model_id, "dim": self.dim, "count": len(self), "dtype": dtype}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: Path, expected_model_id: str | None = None, strict: bool = True) -> SentenceBank:
        """Read a bank saved by `save`.

        If `expected_model_id` is given and differs from the bank's, raise
        `BankModelMismatchError` (`strict=True`) or warn and load anyway.
        """
        directory = Path(directory)
        meta = _read_json(directory / META_FILE)
        rows = _read_json(directory / SENTENCES_FILE)
        embeddings = np.load(directory / EMBEDDINGS_FILE, allow_pickle=False)
        model_id = str(meta.get("model_id", ""))
        if expected_model_id is not None and model_id != expected_model_id:
            message = (f"sentence bank {directory} was built with model {model_id!r} but the engine runs "
                       f"{expected_model_id!r}; rebuild it with `cxrclip bank build SOURCE -o {directory} "
                       f"--model MODEL_DIR`")
            if strict:
                raise BankModelMismatchError(message)
            warnings.warn(message, stacklevel=2)
        extra = {k: v for k, v in meta.items() if k not in {"model_id", "dim", "count", "dtype"}}
        return cls([r["text"] for r in rows], [r["count"] for r in rows], embeddings, model_id, extra)


def _normalize_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _progress(batches: range, enabled: bool, total: int, batch_size: int):
    """Wrap batch starts in a tqdm bar counting sentences (when enabled)."""
    if not enabled:
        return batches
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="sent", desc="embedding sentences")

    def advance():
        for start in batches:
            yield start
            bar.update(min(batch_size, total - start))
        bar.close()

    return advance()


def _read_json(path: Path):
    if not path.is_file():
        raise SentenceBankError(f"{path} is missing; is {path.parent} a sentence bank made by `cxrclip bank build`?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SentenceBankError(f"{path} is not valid JSON ({exc}); rebuild the bank") from exc


# ----- sentences that agree with the study ----------------------------------------------
OVERFETCH = 8   # candidates fetched per sentence shown, before filtering


def zero_shot_mentions(scores: Sequence) -> list:
    """The study as `cxrclip.report_mentions.study_mentions` from calibrated zero-shot
    results (`cxrclip.zero_shot.FindingScore`): findings at or above their operating point
    are present, the others absent; uncalibrated ones say nothing. (Reading only findings
    below half their point as absent agreed less with the ground truth: 0.83 vs 0.87 on
    100 held-out phantoms.)"""
    from cxrclip.report_mentions import NO_FINDING, study_mentions

    present = {s.finding: None for s in scores if s.positive and s.finding != NO_FINDING}
    absent = [s.finding for s in scores if s.positive is False and s.finding != NO_FINDING]
    known = [s.finding for s in scores if s.positive is not None]
    mentions = study_mentions(present, known, absent)
    if not any(s.finding == NO_FINDING and s.positive for s in scores):
        mentions = [m for m in mentions if m.finding != NO_FINDING]
    return mentions


def agreeing(neighbours: Sequence[Neighbour], study: Sequence, k: int,
             has_prior: bool = False) -> list[Neighbour]:
    """The first ``k`` neighbours that do not contradict ``study`` (mentions, see
    `zero_shot_mentions`) and, without a prior study, do not compare with one."""
    from cxrclip.report_mentions import contradicts_study, needs_prior

    kept = [n for n in neighbours if (has_prior or not needs_prior(n.sentence))
            and contradicts_study(n.sentence, study) is None]
    return kept[:k]
