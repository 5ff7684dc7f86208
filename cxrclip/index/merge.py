"""Merging shard stores (``INDEX/shards/rank-R.sqlite``, written by a sharded build) into the index.

Idempotent: views are inserted with INSERT OR IGNORE on the unique path and view
id (a shard holding a newer version of a file replaces the old row), every study
a shard touched is re-aggregated with the zero-shot recipe, and each shard is
merged in one transaction and deleted afterwards, so a merge interrupted at any
point can simply run again.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cxrclip.index.build import IndexModelMismatch, aggregate_study, open_for_build
from cxrclip.index.store import SQLITE_FILE, Store

if TYPE_CHECKING:
    from cxrclip.engine import Engine

SHARDS_FOLDER = "shards"
_VIEW_COLUMNS = ("view_id, path, size, mtime_ns, study_key, study_uid, series_uid, view_position, study_date, "
                 "patient_id, patient_name, accession, embedding, findings, ood_score, ood_flag")


def shard_path(index_dir: Path, rank: int) -> Path:
    """Where rank ``rank`` of a sharded build writes its views."""
    return Path(index_dir) / SHARDS_FOLDER / f"rank-{rank}.sqlite"


def _check_shard(shard: Path, model_id: str) -> None:
    with Store(shard) as store:
        found = store.meta().get("model_id")
    if found != model_id:
        raise IndexModelMismatch(shard.parent, str(found), model_id)


def _merge_one(store: Store, shard: Path, engine: Engine) -> int:
    """Copy one shard's views and failures in one transaction; returns the views added."""
    conn = store.conn
    conn.execute("ATTACH DATABASE ? AS shard", (str(shard),))
    try:
        with store.transaction():
            before = conn.execute("SELECT count(*) FROM main.views").fetchone()[0]
            conn.execute("DELETE FROM main.views WHERE EXISTS (SELECT 1 FROM shard.views s WHERE s.path = "
                         "main.views.path AND (s.size != main.views.size OR s.mtime_ns != main.views.mtime_ns))")
            conn.execute(f"INSERT OR IGNORE INTO main.views ({_VIEW_COLUMNS}) SELECT {_VIEW_COLUMNS} "
                         "FROM shard.views ORDER BY id")
            conn.execute("INSERT OR REPLACE INTO main.failures SELECT * FROM shard.failures "
                         "WHERE path NOT IN (SELECT path FROM main.views)")
            keys = [r[0] for r in conn.execute("SELECT DISTINCT study_key FROM shard.views ORDER BY study_key")]
            classifier = engine.zero_shot_classifier() if keys else None
            for key in keys:
                row = aggregate_study(store, classifier, key, engine.embed_dim)
                if row is not None:
                    store.put_study(row)
            added = conn.execute("SELECT count(*) FROM main.views").fetchone()[0] - before
    finally:
        conn.execute("DETACH DATABASE shard")
    return int(added)


def merge_shards(index_dir: Path, engine: Engine, model_dir: Path | None = None) -> int:
    """Merge every shard under ``index_dir/shards`` into the index and delete it; returns views added."""
    index_dir = Path(index_dir)
    shards = sorted((index_dir / SHARDS_FOLDER).glob("rank-*.sqlite"))
    added = 0
    with open_for_build(index_dir / SQLITE_FILE, engine, model_dir) as store:
        for shard in shards:
            _check_shard(shard, engine.model_id)
            added += _merge_one(store, shard, engine)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{shard}{suffix}").unlink(missing_ok=True)
    return added
