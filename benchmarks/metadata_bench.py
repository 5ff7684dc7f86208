"""Metadata store for the archive index: SQLite (WAL) against Parquet, for per-view rows.

Run:  .venv/bin/python benchmarks/metadata_bench.py [--rows 1000000] [--batch 256] [--json out.json]

Rows look like the index's: study/series/instance identifiers, source path, view position,
study date and 14 zero-shot finding scores. Measured:
- write: rows/s, committing every `--batch` rows (what a resumable build does);
- filtered read: ids of rows with Pleural Effusion > 0.8 and view position PA;
- resume check: "is this path done?" for 2,000 random paths, and loading every done path;
- reader during writer: a second process queries while the first keeps committing.
SQLite: WAL, synchronous=NORMAL, one transaction per batch, unique index on path, index on
study key. Parquet (only if pyarrow is installed; it is not a project dependency): one file
per batch (written to a temporary name, then renamed, so readers see whole files only) and,
for contrast, a single file with 64k-row groups (readable only once closed).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.ann_bench import is_installed, timed  # noqa: E402 (needs ROOT on sys.path)

FINDINGS = ["atelectasis", "cardiomegaly", "consolidation", "edema", "enlarged_cardiomediastinum", "fracture",
            "lung_lesion", "lung_opacity", "no_finding", "pleural_effusion", "pleural_other", "pneumonia",
            "pneumothorax", "support_devices"]
COLUMNS = ["study_key", "series_uid", "sop_uid", "path", "view_position", "study_date"] + FINDINGS
VIEWS = np.array(["PA", "AP", "LATERAL", "LL"])


def make_batch(start: int, size: int, rng: np.random.Generator) -> list[tuple]:
    """`size` synthetic view rows numbered from `start` (two views per study)."""
    scores = rng.random((size, len(FINDINGS)), dtype=np.float32).round(4)
    views = rng.choice(VIEWS, size, p=[0.45, 0.25, 0.25, 0.05])
    rows = []
    for offset in range(size):
        i = start + offset
        study = f"p{10 + i % 10}/p{10_000_000 + i // 40}/s{50_000_000 + i // 2}"
        rows.append((study, f"1.2.826.0.1.3680043.8.498.{i // 2}.1", f"1.2.826.0.1.3680043.8.498.{i}.1.1",
                     f"/archive/files/{study}/{i:012d}.dcm", str(views[offset]),
                     f"20{10 + i % 12:02d}{1 + i % 12:02d}{1 + i % 28:02d}", *map(float, scores[offset])))
    return rows


def batches(total: int, size: int, seed: int) -> Iterator[list[tuple]]:
    """All rows, `size` at a time."""
    rng = np.random.default_rng(seed)
    for start in range(0, total, size):
        yield make_batch(start, min(size, total - start), rng)


def random_paths(total: int, count: int, seed: int) -> list[str]:
    """Paths of `count` random existing rows plus as many absent ones (same format)."""
    rng = np.random.default_rng(seed + 1)
    present = [make_batch(int(i), 1, rng)[0][3] for i in rng.integers(0, total, count // 2)]
    absent = [make_batch(total + int(i), 1, rng)[0][3] for i in range(count - count // 2)]
    return present + absent


# ----------------------------------------------------------------------------- SQLite
def sqlite_open(path: Path) -> sqlite3.Connection:
    """Connection in WAL mode with the views table and its indices."""
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    cols = ", ".join(f"{c} TEXT" for c in COLUMNS[:6]) + ", " + ", ".join(f"{f} REAL" for f in FINDINGS)
    con.execute(f"CREATE TABLE IF NOT EXISTS views (id INTEGER PRIMARY KEY, {cols})")
    con.execute("CREATE UNIQUE INDEX IF NOT EXISTS views_path ON views(path)")
    con.execute("CREATE INDEX IF NOT EXISTS views_study ON views(study_key)")
    return con


def sqlite_write(con: sqlite3.Connection, rows: list[tuple]) -> None:
    """One transaction for one batch."""
    marks = ", ".join("?" * len(COLUMNS))
    con.execute("BEGIN")
    con.executemany(f"INSERT INTO views ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
    con.execute("COMMIT")


def sqlite_filtered(con: sqlite3.Connection) -> int:
    """Row count of the filtered read (the ids are fetched, as a search filter would)."""
    return len(con.execute("SELECT id FROM views WHERE pleural_effusion > 0.8 AND view_position = 'PA'").fetchall())


def sqlite_figures(folder: Path, args: argparse.Namespace) -> dict:
    """Write, filter and resume-check figures for SQLite."""
    con = sqlite_open(folder / "index.sqlite")
    write_s = sum(timed(lambda rows=rows: sqlite_write(con, rows))[0]
                  for rows in batches(args.rows, args.batch, args.seed))  # row generation not timed
    paths = random_paths(args.rows, 2000, args.seed)
    lookup_s, found = timed(lambda: sum(con.execute("SELECT 1 FROM views WHERE path = ?", (p,)).fetchone() is not None
                                        for p in paths))
    load_s, done = timed(lambda: {p for (p,) in con.execute("SELECT path FROM views")})
    filter_s, hits = timed(lambda: sqlite_filtered(con))
    con.close()
    size = sum(f.stat().st_size for f in folder.glob("index.sqlite*"))
    return {"store": "SQLite WAL", "write_rows_per_s": args.rows / write_s, "filtered_read_ms": filter_s * 1e3,
            "filtered_rows": hits, "lookup_us": lookup_s / len(paths) * 1e6, "lookups_found": found,
            "load_all_paths_s": load_s, "paths_loaded": len(done), "disk_mib": size / 2**20}


# ----------------------------------------------------------------------------- Parquet
def parquet_table(rows: list[tuple]):
    """A pyarrow table from rows (scores as float32)."""
    import pyarrow as pa

    columns = list(zip(*rows))
    arrays = [pa.array(c, pa.string()) for c in columns[:6]] + [pa.array(c, pa.float32()) for c in columns[6:]]
    return pa.table(arrays, names=COLUMNS)


def parquet_write_parts(folder: Path, args: argparse.Namespace) -> float:
    """One file per batch, written under a temporary name and renamed (readers see whole files)."""
    import pyarrow.parquet as pq

    seconds = 0.0
    for number, rows in enumerate(batches(args.rows, args.batch, args.seed)):
        start = time.perf_counter()
        tmp = folder / f".part-{number:07d}.tmp"
        pq.write_table(parquet_table(rows), tmp)
        os.replace(tmp, folder / f"part-{number:07d}.parquet")
        seconds += time.perf_counter() - start
    return seconds


def parquet_write_single(path: Path, args: argparse.Namespace) -> float:
    """One file, row groups of 65,536 rows; readable only after close."""
    import pyarrow.parquet as pq

    seconds, writer, pending, seen = 0.0, None, [], 0
    for rows in batches(args.rows, args.batch, args.seed):  # the same rows as the other stores
        pending += rows
        seen += len(rows)
        if len(pending) < 65536 and seen < args.rows:
            continue
        start = time.perf_counter()
        table = parquet_table(pending)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        seconds += time.perf_counter() - start
        pending = []
    start = time.perf_counter()
    writer.close()
    return seconds + time.perf_counter() - start


def parquet_reads(source: Path, args: argparse.Namespace) -> dict:
    """Filtered read, resume lookups and loading all paths from a Parquet file or folder."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    dataset = ds.dataset(source, format="parquet")
    condition = (pc.field("pleural_effusion") > 0.8) & (pc.field("view_position") == "PA")
    filter_s, hits = timed(lambda: dataset.to_table(columns=["sop_uid"], filter=condition).num_rows)
    load_s, done = timed(lambda: set(dataset.to_table(columns=["path"]).column("path").to_pylist()))
    one_s, _ = timed(lambda: dataset.to_table(columns=["path"], filter=pc.field("path") == next(iter(done))).num_rows)
    paths = random_paths(args.rows, 2000, args.seed)
    return {"filtered_read_ms": filter_s * 1e3, "filtered_rows": hits, "load_all_paths_s": load_s,
            "paths_loaded": len(done), "one_lookup_by_scan_ms": one_s * 1e3,
            "lookups_found": sum(p in done for p in paths)}


def parquet_figures(folder: Path, args: argparse.Namespace) -> list[dict]:
    """Both Parquet layouts."""
    parts = folder / "parts"
    parts.mkdir()
    parts_s = parquet_write_parts(parts, args)
    single = folder / "single.parquet"
    single_s = parquet_write_single(single, args)
    size = sum(f.stat().st_size for f in parts.iterdir()) / 2**20
    return [{"store": f"Parquet, file per {args.batch} rows", "write_rows_per_s": args.rows / parts_s,
             "disk_mib": size, **parquet_reads(parts, args)},
            {"store": "Parquet, one file (64k row groups)", "write_rows_per_s": args.rows / single_s,
             "disk_mib": single.stat().st_size / 2**20, **parquet_reads(single, args)}]


# ----------------------------------------------------------------------------- concurrency
def keep_writing(db: str, seconds: float, batch: int, queue) -> None:
    """Writer process: commit batches for `seconds`, then report rows written."""
    con = sqlite_open(Path(db))
    rng = np.random.default_rng(7)
    written, stop = 0, time.perf_counter() + seconds
    start = con.execute("SELECT COALESCE(MAX(id), 0) FROM views").fetchone()[0] + 10**8
    while time.perf_counter() < stop:
        sqlite_write(con, make_batch(start + written, batch, rng))
        written += batch
    queue.put(written)


def reader_during_writer(folder: Path, args: argparse.Namespace) -> dict:
    """Filtered reads in this process while another process commits to the same SQLite file."""
    db = str(folder / "index.sqlite")
    queue = mp.get_context("spawn").Queue()
    writer = mp.get_context("spawn").Process(target=keep_writing, args=(db, args.concurrent_s, args.batch, queue))
    writer.start()
    con = sqlite3.connect(db, timeout=30)
    times, errors, counts = [], 0, []
    while writer.is_alive() and queue.empty():
        try:
            seconds, count = timed(lambda: sqlite_filtered(con))
            times.append(seconds * 1e3)
            counts.append(count)
        except sqlite3.OperationalError:
            errors += 1
    written = queue.get()
    writer.join()
    return {"reads": len(times), "read_p50_ms": float(np.median(times)) if times else float("nan"),
            "read_errors": errors, "rows_seen_grew": bool(counts and counts[-1] > counts[0]),
            "writer_rows_per_s": written / args.concurrent_s}


def unfinished_parquet_readable(folder: Path) -> str:
    """What a reader gets from a single Parquet file whose writer has not closed it yet."""
    import pyarrow.parquet as pq

    path = folder / "open.parquet"
    table = parquet_table(make_batch(0, 1000, np.random.default_rng(0)))
    writer = pq.ParquetWriter(path, table.schema)
    writer.write_table(table)
    try:
        return f"readable, {pq.read_table(path).num_rows} rows"
    except Exception as error:  # the footer is written only on close
        return f"unreadable: {type(error).__name__}: {str(error)[:70]}"
    finally:
        writer.close()


# ----------------------------------------------------------------------------- report
def print_table(stores: list[dict]) -> None:
    """Markdown table of the stores' figures."""
    print("| store | write rows/s | filtered read ms | resume lookup | load all paths s | disk MiB |")
    print("|---|---|---|---|---|---|")
    for s in stores:
        lookup = (f"{s['lookup_us']:.0f} µs (index)" if "lookup_us" in s
                  else f"{s['one_lookup_by_scan_ms']:.0f} ms (scan); set after load")
        print(f"| {s['store']} | {s['write_rows_per_s']:,.0f} | {s['filtered_read_ms']:.0f} "
              f"({s['filtered_rows']:,} rows) | {lookup} | {s['load_all_paths_s']:.2f} | {s['disk_mib']:.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--concurrent-s", type=float, default=5.0, help="seconds of reader-during-writer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f}, rows {args.rows:,}, batch {args.batch}", flush=True)
    with tempfile.TemporaryDirectory(prefix="metadata_bench_") as tmp:
        folder = Path(tmp)
        stores = [sqlite_figures(folder, args)]
        concurrent = reader_during_writer(folder, args)
        has_arrow = is_installed("pyarrow")
        if has_arrow:
            stores += parquet_figures(folder, args)
            concurrent["parquet_single_file_while_open"] = unfinished_parquet_readable(folder)
        else:
            print("skipping Parquet: pyarrow is not installed")
    print_table(stores)
    print("SQLite reader during writer: " + json.dumps(concurrent))
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"stores": stores, "concurrent": concurrent}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
