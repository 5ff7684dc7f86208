"""Nearest views by cosine: exact numpy search, or a usearch HNSW file for large indexes.

SQLite holds every embedding; ``vectors.usearch`` is derived from it. Its keys
are the views' SQLite row ids, so the highest key is the last row it covers; a
reader searches the file and, exactly, every newer row (read from SQLite), then
merges. A missing or stale file is therefore never wrong, only slower, and a
reader may query while a build appends rows. Below `EXACT_LIMIT` vectors exact
search is used (as fast, and simpler): same results either way.

usearch comes with the ``[archive]`` extra (it and its numkong kernels are 58 MB of
the viewer's install). Without it no ANN file is written or read: every search is
exact, which gives the same results and is fast enough for most archives (16 ms per
query at 100,000 views, docs/archive_search.md).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from cxrclip.index.store import Store

ANN_FILE = "vectors.usearch"
EXACT_LIMIT = 20_000
"""Indexes with fewer vectors are searched exactly (brute force over all embeddings)."""
# Measured in benchmarks/ann_bench.py (docs/archive_search.md): inner product on the unit
# embeddings ranks as cosine but builds and searches faster; f16 storage keeps f32's recall in
# 55-60 % of the space (i8 caps recall@10 near 0.92). At 1M clustered vectors connectivity 16
# tops out at recall@10 0.91; 32 with search effort 512 reaches 0.96 (text-like queries) to 0.995
# (image-like) at p99 <= 10 ms; the effort is at least twice the views asked.
_METRIC, _DTYPE = "ip", "f16"
_CONNECTIVITY = 32
_EXPANSION_ADD = 128
_EXPANSION_SEARCH = 512


ARCHIVE_INSTALL = "pip install 'cxrclip-viewer[archive]'"


def usearch_installed() -> bool:
    """Whether the ``[archive]`` extra's usearch is importable (ANN files are written and read)."""
    return importlib.util.find_spec("usearch") is not None


def exact_only_reason(views: int, exact_limit: int = EXACT_LIMIT) -> str | None:
    """Why an index of ``views`` views is searched exactly although it is large, else None."""
    if views < exact_limit or usearch_installed():
        return None
    return (f"searched exactly ({views} views): the approximate search that speeds up indexes this large "
            f"needs the [archive] extra, usearch ({ARCHIVE_INSTALL})")


def _new_usearch(dim: int):
    from usearch.index import Index

    return Index(ndim=dim, metric=_METRIC, dtype=_DTYPE, connectivity=_CONNECTIVITY,
                 expansion_add=_EXPANSION_ADD, expansion_search=_EXPANSION_SEARCH)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # platforms without directory fds
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_ann(store: Store, index_dir: Path, dim: int) -> int:
    """(Re)write ``vectors.usearch`` from every view in ``store`` atomically; returns its vector count.

    Extends the existing file when it is readable (only newer rows are added), else starts anew.
    """
    target = Path(index_dir) / ANN_FILE
    index, covered = _load_ann(target, dim, view=False)
    if index is None:
        index, covered = _new_usearch(dim), 0
    for ids, vectors in store.embeddings_after(covered, dim):
        index.add(ids, vectors, threads=0)
    tmp = target.with_name(f".{ANN_FILE}.tmp-{os.getpid()}")
    index.save(str(tmp))
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    return len(index)


def _load_ann(path: Path, dim: int, view: bool = True):
    """(usearch index, highest row id it covers), or (None, 0) when absent, unreadable or usearch is
    not installed."""
    if not path.is_file() or not usearch_installed():
        return None, 0
    from usearch.index import Index

    try:
        index = Index.restore(str(path), view=view)
    except (RuntimeError, ValueError, OSError):
        return None, 0
    if index is None or index.ndim != dim or len(index) == 0:
        return None, 0
    index.expansion_search = _EXPANSION_SEARCH
    return index, int(np.max(np.asarray(index.keys, dtype=np.int64)))


class VectorSearch:
    """Top views for a query vector: usearch file (when present and large) + exact tail from SQLite."""

    def __init__(self, store: Store, index_dir: Path, dim: int, exact_limit: int = EXACT_LIMIT):
        self.store, self.dim, self.exact_limit = store, dim, exact_limit
        self._ann_path = Path(index_dir) / ANN_FILE
        self._ann, self._covered = None, 0
        self._ann_mtime: int | None = None
        self._tail_ids = np.zeros(0, dtype=np.int64)
        self._tail = np.zeros((0, dim), dtype=np.float32)

    @property
    def ann_size(self) -> int | None:
        """Vectors in the loaded ANN file, or None when searching exactly."""
        return len(self._ann) if self._ann is not None else None

    def refresh(self) -> None:
        """Pick up a new ANN file and rows added since the last call (cheap when nothing changed)."""
        self._refresh_ann(self.store.max_view_rowid())  # about the view count, without a table scan
        start = int(self._tail_ids[-1]) if len(self._tail_ids) else self._covered
        for ids, vectors in self.store.embeddings_after(start, self.dim):
            self._tail_ids = np.concatenate([self._tail_ids, ids])
            self._tail = np.concatenate([self._tail, vectors])

    def _refresh_ann(self, views: int) -> None:
        wanted = views >= self.exact_limit and self._ann_path.is_file()
        mtime = self._ann_path.stat().st_mtime_ns if wanted else None
        if mtime == self._ann_mtime:
            return
        self._ann_mtime = mtime
        ann, covered = _load_ann(self._ann_path, self.dim) if wanted else (None, 0)
        self._ann, self._covered = ann, covered
        keep = self._tail_ids > covered
        self._tail_ids, self._tail = self._tail_ids[keep], self._tail[keep]
        if len(self._tail_ids) == 0 or int(self._tail_ids[0]) > covered + 1:
            self._tail_ids = np.zeros(0, dtype=np.int64)
            self._tail = np.zeros((0, self.dim), dtype=np.float32)

    def size(self) -> int:
        return (len(self._ann) if self._ann is not None else 0) + len(self._tail_ids)

    def top(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(row ids, cosines) of up to ``n`` nearest views, best first (call `refresh` first)."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        ids, scores = self._exact(query, n)
        if self._ann is not None and n > 0:
            self._ann.expansion_search = max(_EXPANSION_SEARCH, 2 * n)
            found = self._ann.search(query, min(n, len(self._ann)))
            ids = np.concatenate([ids, np.asarray(found.keys, dtype=np.int64)])
            scores = np.concatenate([scores, 1.0 - np.asarray(found.distances, dtype=np.float32)])
        ids, first = np.unique(ids, return_index=True)
        scores = scores[first]
        order = np.argsort(-scores, kind="stable")[:n]
        return ids[order], scores[order]

    def _exact(self, query: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        if not len(self._tail_ids):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores = self._tail @ query
        n = min(n, len(scores))
        part = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        return self._tail_ids[part], scores[part]
