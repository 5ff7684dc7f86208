"""The index's source of truth: one SQLite file (WAL mode) of views, studies, failures and metadata.

Every batch of a build (its views, their embeddings, its failures and the
re-aggregated studies) is written in ONE transaction (`Store.batch`), so a
build killed at any moment loses at most the batch in flight, and the UNIQUE
constraints on the source path and the view id make duplicates impossible.
Readers open the file read-only and may query while a build writes (WAL).
Numpy and the standard library only (no torch).
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
SQLITE_FILE = "index.sqlite"
EMBEDDING_DTYPE = np.float32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS index_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS views (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    view_id TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    study_key TEXT NOT NULL,
    study_uid TEXT,
    series_uid TEXT,
    view_position TEXT,
    study_date TEXT,
    patient_id TEXT,
    patient_name TEXT,
    accession TEXT,
    embedding BLOB NOT NULL,
    findings TEXT NOT NULL,
    ood_score REAL,
    ood_flag INTEGER
);
CREATE INDEX IF NOT EXISTS views_by_study ON views (study_key);
CREATE TABLE IF NOT EXISTS studies (
    study_key TEXT PRIMARY KEY,
    study_uid TEXT,
    study_date TEXT,
    patient_id TEXT,
    patient_name TEXT,
    accession TEXT,
    folder TEXT,
    n_views INTEGER NOT NULL,
    findings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    path TEXT PRIMARY KEY,
    size INTEGER,
    mtime_ns INTEGER,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    finished TEXT,
    added INTEGER, skipped INTEGER, failed INTEGER, cancelled INTEGER,
    seconds REAL, runtime TEXT
);
"""

VIEW_META_COLUMNS = ("id", "view_id", "path", "study_key", "study_uid", "series_uid", "view_position",
                     "study_date", "patient_id", "patient_name", "accession", "findings", "ood_score",
                     "ood_flag")
STUDY_COLUMNS = ("study_key", "study_uid", "study_date", "patient_id", "patient_name", "accession",
                 "folder", "n_views", "findings")


class IndexStoreError(ValueError):
    """The index file is missing, damaged or of another format; the message names the file and the fix."""


@dataclass(frozen=True)
class ViewMeta:
    """Identifiers of one view (the `views` columns read from the file or its path)."""

    view_id: str
    study_key: str
    study_uid: str | None = None
    series_uid: str | None = None
    view_position: str | None = None
    study_date: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    accession: str | None = None


@dataclass(frozen=True)
class NewView:
    """One embedded view, ready to be stored: its file version, identifiers, embedding and scores."""

    path: str
    size: int
    mtime_ns: int
    meta: ViewMeta
    embedding: np.ndarray
    findings: dict[str, float]
    ood_score: float | None = None
    ood_flag: bool | None = None


@dataclass(frozen=True)
class Failure:
    """A file that could not be indexed, and why."""

    path: str
    reason: str
    size: int | None = None
    mtime_ns: int | None = None


@dataclass
class StudyRow:
    """A study's aggregate row (identifiers of its first view, its folder, study-level findings)."""

    study_key: str
    study_uid: str | None
    study_date: str | None
    patient_id: str | None
    patient_name: str | None
    accession: str | None
    folder: str
    n_views: int
    findings: dict[str, float] = field(default_factory=dict)


def to_blob(vector: np.ndarray) -> bytes:
    """Embedding → bytes (little-endian float32)."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def from_blobs(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """Bytes of several embeddings → (N, dim) float32."""
    if not blobs:
        return np.zeros((0, dim), dtype=EMBEDDING_DTYPE)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(EMBEDDING_DTYPE)


def _connect_writer(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, never corrupt
    conn.executescript(_SCHEMA)
    return conn


def _connect_reader(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise IndexStoreError(f"{path} does not exist: not an archive index folder. "
                              "Build one with: cxrclip index build SOURCE -o INDEX --model DIR")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60.0, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute("SELECT count(*) FROM index_meta").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise IndexStoreError(f"{path} is not a readable archive index ({exc}); "
                              "rebuild it with: cxrclip index build ... --force-new") from exc
    return conn


class Store:
    """SQLite access for builds (``writable=True``) and searches (read-only)."""

    def __init__(self, path: str | Path, writable: bool = False):
        self.path = Path(path)
        self.writable = writable
        self.conn = _connect_writer(self.path) if writable else _connect_reader(self.path)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- metadata ------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """The ``index_meta`` table, values decoded from JSON."""
        return {k: json.loads(v) for k, v in self.conn.execute("SELECT key, value FROM index_meta")}

    def set_meta(self, values: dict[str, Any]) -> None:
        """Insert or replace metadata values (JSON-encoded), in one transaction."""
        with self.transaction():
            self.conn.executemany("INSERT OR REPLACE INTO index_meta (key, value) VALUES (?, ?)",
                                  [(k, json.dumps(v)) for k, v in values.items()])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ----- what is done ----------------------------------------------------------------------
    def recorded_files(self) -> dict[str, tuple[int, int]]:
        """{path: (size, mtime_ns)} of every indexed view."""
        return {p: (s, m) for p, s, m in self.conn.execute("SELECT path, size, mtime_ns FROM views")}

    def failed_files(self) -> dict[str, tuple[int | None, int | None]]:
        """{path: (size, mtime_ns)} of every recorded failure."""
        return {p: (s, m) for p, s, m in self.conn.execute("SELECT path, size, mtime_ns FROM failures")}

    # ----- writing a batch -------------------------------------------------------------------
    def add_views(self, views: Iterable[NewView]) -> list[Failure]:
        """Insert views (replacing a changed file's old row); a view id already stored under another
        path comes back as a `Failure` (a copy of the same image elsewhere in the archive)."""
        duplicates = []
        for view in views:
            meta = view.meta
            other = self.conn.execute("SELECT path FROM views WHERE view_id = ? AND path != ?",
                                      (meta.view_id, view.path)).fetchone()
            if other is not None:
                duplicates.append(Failure(view.path, f"same view (id {meta.view_id}) is already indexed "
                                                     f"from {other[0]}", view.size, view.mtime_ns))
                continue
            self.conn.execute("DELETE FROM views WHERE path = ?", (view.path,))
            self.conn.execute("DELETE FROM failures WHERE path = ?", (view.path,))
            self.conn.execute(
                "INSERT INTO views (view_id, path, size, mtime_ns, study_key, study_uid, series_uid, "
                "view_position, study_date, patient_id, patient_name, accession, embedding, findings, "
                "ood_score, ood_flag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (meta.view_id, view.path, view.size, view.mtime_ns, meta.study_key, meta.study_uid,
                 meta.series_uid, meta.view_position, meta.study_date, meta.patient_id, meta.patient_name,
                 meta.accession, to_blob(view.embedding), json.dumps(view.findings), view.ood_score,
                 None if view.ood_flag is None else int(view.ood_flag)))
        return duplicates

    def remove_files(self, paths: Sequence[str]) -> set[str]:
        """Forget these files (their views and failure records); returns the study keys that
        had views among them, whose study rows the caller must recompute or drop."""
        keys: set[str] = set()
        for start in range(0, len(paths), 500):  # SQLite's limit on bound parameters
            chunk = list(paths[start:start + 500])
            marks = ", ".join("?" * len(chunk))
            keys.update(k for (k,) in self.conn.execute(
                f"SELECT DISTINCT study_key FROM views WHERE path IN ({marks})", chunk))
            self.conn.execute(f"DELETE FROM views WHERE path IN ({marks})", chunk)
            self.conn.execute(f"DELETE FROM failures WHERE path IN ({marks})", chunk)
        return keys

    def remove_study(self, study_key: str) -> None:
        """Drop a study's aggregate row (its last view is gone)."""
        self.conn.execute("DELETE FROM studies WHERE study_key = ?", (study_key,))

    def add_failures(self, failures: Iterable[Failure]) -> None:
        """Record (or re-record) failed files."""
        self.conn.executemany("INSERT OR REPLACE INTO failures (path, size, mtime_ns, reason) VALUES (?, ?, ?, ?)",
                              [(f.path, f.size, f.mtime_ns, f.reason) for f in failures])

    def put_study(self, row: StudyRow) -> None:
        """Insert or replace a study's aggregate row."""
        self.conn.execute(
            f"INSERT OR REPLACE INTO studies ({', '.join(STUDY_COLUMNS)}) VALUES ({', '.join('?' * 9)})",
            (row.study_key, row.study_uid, row.study_date, row.patient_id, row.patient_name, row.accession,
             row.folder, row.n_views, json.dumps(row.findings)))

    # ----- reading ---------------------------------------------------------------------------
    def study_view_rows(self, study_key: str) -> list[dict[str, Any]]:
        """Metadata rows (no embedding) of a study's views, in path order."""
        return self.view_rows_where("study_key = ?", (study_key,))

    def view_rows_where(self, condition: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Metadata rows (``VIEW_META_COLUMNS``, findings decoded) matching an SQL condition."""
        cursor = self.conn.execute(
            f"SELECT {', '.join(VIEW_META_COLUMNS)} FROM views WHERE {condition} ORDER BY path", tuple(params))
        rows = [dict(zip(VIEW_META_COLUMNS, r)) for r in cursor]
        for row in rows:
            row["findings"] = json.loads(row["findings"])
        return rows

    def view_rows_by_id(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """{row id: metadata row} for the given view row ids (missing ids are left out)."""
        out: dict[int, dict[str, Any]] = {}
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for row in self.view_rows_where(f"id IN ({', '.join('?' * len(chunk))})", chunk):
                out[row["id"]] = row
        return out

    def study_embeddings(self, study_key: str, dim: int) -> tuple[list[int], np.ndarray]:
        """(row ids, (V, dim) embeddings) of one study's views, in path order."""
        rows = self.conn.execute("SELECT id, embedding FROM views WHERE study_key = ? ORDER BY path",
                                 (study_key,)).fetchall()
        return [r[0] for r in rows], from_blobs([r[1] for r in rows], dim)

    def embeddings_after(self, rowid: int, dim: int, chunk: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(row ids, embeddings) of views with id > ``rowid``, in id order, in chunks."""
        last = rowid
        while True:
            rows = self.conn.execute("SELECT id, embedding FROM views WHERE id > ? ORDER BY id LIMIT ?",
                                     (last, chunk)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield np.array([r[0] for r in rows], dtype=np.int64), from_blobs([r[1] for r in rows], dim)

    def studies(self, keys: Sequence[str]) -> dict[str, StudyRow]:
        """{study key: `StudyRow`} of the given keys."""
        out: dict[str, StudyRow] = {}
        keys = list(keys)
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            cursor = self.conn.execute(f"SELECT {', '.join(STUDY_COLUMNS)} FROM studies WHERE study_key IN "
                                       f"({', '.join('?' * len(chunk))})", chunk)
            for r in cursor:
                row = StudyRow(*r[:-1], findings=json.loads(r[-1]))
                out[row.study_key] = row
        return out

    def counts(self) -> dict[str, int]:
        """Numbers of views, studies and failures."""
        one = self.conn.execute
        return {"views": one("SELECT count(*) FROM views").fetchone()[0],
                "studies": one("SELECT count(*) FROM studies").fetchone()[0],
                "failures": one("SELECT count(*) FROM failures").fetchone()[0]}

    def max_view_rowid(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM views").fetchone()[0])

    def failures(self, limit: int | None = None) -> list[Failure]:
        """Recorded failures, in path order."""
        sql = "SELECT path, reason, size, mtime_ns FROM failures ORDER BY path"
        rows = self.conn.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        return [Failure(*r) for r in rows]

    # ----- build log -------------------------------------------------------------------------
    def start_build(self, started: str, runtime: str) -> int:
        with self.transaction():
            cur = self.conn.execute("INSERT INTO builds (started, runtime) VALUES (?, ?)", (started, runtime))
        return int(cur.lastrowid)

    def finish_build(self, build_id: int, finished: str, added: int, skipped: int, failed: int,
                     cancelled: bool, seconds: float) -> None:
        with self.transaction():
            self.conn.execute("UPDATE builds SET finished = ?, added = ?, skipped = ?, failed = ?, cancelled = ?, "
                              "seconds = ? WHERE id = ?",
                              (finished, added, skipped, failed, int(cancelled), seconds, build_id))

    def last_build(self) -> dict[str, Any] | None:
        """The newest build log row, or None."""
        cols = ("started", "finished", "added", "skipped", "failed", "cancelled", "seconds", "runtime")
        row = self.conn.execute(f"SELECT {', '.join(cols)} FROM builds ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else dict(zip(cols, row))
