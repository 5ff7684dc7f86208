"""A disk cache of prompt embeddings per model, so zero-shot is fast from the first study.

Zero-shot uses prompt ensembles (hundreds of class prompts and their
negatives); encoding them takes seconds on a CPU. `CachedTextEngine` is a
`cxrclip.Engine` whose ``encode_text`` first looks prompts up in a
`PromptEmbeddingStore` (an ``.npz`` file per model id under the cache folder),
and only encodes the misses. The store is filled by `FindingsService.warm_up`
(seeded first from the model folder's ``prompt_embeddings.npz`` when it was computed by
the same text tower) and written once, atomically, in float32 (float16 moved findings by ~1e-5 from
`Engine.zero_shot` and `cxrclip eval`, which must agree exactly; ~1.4 MB per model).
"""
from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cxrclip.engine import Engine

CACHE_ENV = "CXRCLIP_CACHE_DIR"


def cache_root() -> Path:
    """``$CXRCLIP_CACHE_DIR``, else ``$XDG_CACHE_HOME/cxrclip-viewer``, else ``~/.cache/...``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cxrclip-viewer"


class PromptEmbeddingStore:
    """Prompt -> normalised embedding for one model, loaded from and saved to one file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._data: dict[str, np.ndarray] = {}
        self._dirty = False
        self._lock = threading.Lock()

    @classmethod
    def for_model(cls, model_id: str, root: Path | None = None) -> PromptEmbeddingStore:
        """The store file of ``model_id`` under ``root`` (default `cache_root`), loaded if present."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id) or "model"
        store = cls((root or cache_root()) / "prompt_embeddings" / f"{safe}.npz")
        store.load()
        return store

    def load(self) -> int:
        """Read the file if it exists (a corrupt file is ignored); returns the entry count."""
        if not self.path.is_file():
            return 0
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                prompts, embeddings = npz["prompts"], npz["embeddings"]
        except (OSError, ValueError, KeyError):
            return 0
        with self._lock:
            vectors = embeddings.astype(np.float32)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            self._data = dict(zip((str(p) for p in prompts), vectors))
            return len(self._data)

    def get(self, prompt: str) -> np.ndarray | None:
        with self._lock:
            return self._data.get(prompt)

    def add(self, prompts: Sequence[str], embeddings: np.ndarray) -> None:
        """Remember embeddings (marks the store for saving)."""
        with self._lock:
            for prompt, emb in zip(prompts, embeddings):
                if prompt not in self._data:
                    self._data[prompt] = np.asarray(emb, np.float32)
                    self._dirty = True

    def seed(self, embeddings: dict[str, np.ndarray]) -> int:
        """Add prompts this store lacks from a model folder's shipped embeddings
        (`cxrclip.prompt_cache`) without marking it for saving: the folder keeps them."""
        with self._lock:
            missing = {p: np.asarray(e, np.float32) for p, e in embeddings.items() if p not in self._data}
            self._data.update(missing)
            return len(missing)

    def save(self) -> bool:
        """Write the file atomically if anything was added; returns True when written."""
        with self._lock:
            if not self._dirty or not self._data:
                return False
            prompts = np.array(list(self._data), dtype=np.str_)
            embeddings = np.stack(list(self._data.values())).astype(np.float32)
            self._dirty = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".emb-", suffix=".npz", dir=self.path.parent)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, prompts=prompts, embeddings=embeddings)
        os.replace(tmp, self.path)
        return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


class CachedTextEngine(Engine):
    """An `Engine` whose text encoding consults a `PromptEmbeddingStore` first."""

    store: PromptEmbeddingStore | None = None

    def encode_text(self, prompts: Sequence[str] | str) -> np.ndarray:
        """Like `Engine.encode_text`; store hits skip the text tower, misses are encoded."""
        items = [prompts] if isinstance(prompts, str) else list(prompts)
        store = self.store
        if store is None or not items or any(not isinstance(p, str) or not p.strip() for p in items):
            return super().encode_text(items)  # the engine validates and raises its own errors
        found = {p: store.get(p) for p in dict.fromkeys(items)}
        missing = [p for p, emb in found.items() if emb is None]
        if missing:
            encoded = super().encode_text(missing)
            store.add(missing, encoded)
            found.update(zip(missing, encoded))
        return np.stack([found[p] for p in items]).astype(np.float32)
