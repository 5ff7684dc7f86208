"""benchmarks/ann_bench.py and benchmarks/metadata_bench.py run end to end at a tiny size and
their figures hold together (exact search is exact, HNSW finds the true neighbours, every
store sees the same rows)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.benchmarks.conftest import script_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ann():
    """benchmarks/ann_bench.py as a module."""
    yield from script_module("ann_bench")


def test_clustered_vectors_are_unit_and_structured(ann):
    rng = np.random.default_rng(3)
    geo = ann.make_geometry(64, rng, clusters=20)
    vectors = ann.clustered_vectors(geo, 2000, rng)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosines = vectors[:500] @ vectors[:500].T
    mean_pair = cosines[np.triu_indices(500, 1)].mean()
    nearest = np.sort(cosines, axis=1)[:, -2].mean()
    iid = ann.iid_vectors(64, 500, rng)
    iid_pair = (iid @ iid.T)[np.triu_indices(500, 1)].mean()
    assert 0.2 < mean_pair < 0.6, "clustered data should sit in one cone, like CLIP image embeddings"
    assert nearest > mean_pair + 0.2, "neighbours should be much closer than random pairs"
    assert abs(iid_pair) < 0.05


def test_ann_bench_tiny_run(ann, tmp_path, capsys):
    out = tmp_path / "ann.json"
    assert ann.main(["--sizes", "2000", "--dims", "32", "--data", "clustered", "--libs", "numpy", "usearch",
                     "--usearch-dtypes", "f16", "--ef", "16", "128", "--queries", "12", "--exact-queries", "5",
                     "--scan-sizes", "1000", "2000", "--threads", "1", "--json", str(out)]) == 0
    run = json.loads(out.read_text())["runs"][0]
    by_key = {(q["config"], q["effort"], q["kind"], q["k"]): q for q in run["queries"]}
    exact = [q for q in run["queries"] if q["config"].startswith("numpy")]
    assert len(exact) == 4 and all(q["recall"] == 1.0 and q["queries"] == 5 for q in exact)
    hnsw = "usearch f16 M=16 ef_add=128"
    assert by_key[(hnsw, 128, "like", 10)]["recall"] >= 0.9
    assert by_key[(hnsw, 128, "text", 100)]["recall"] >= by_key[(hnsw, 16, "text", 100)]["recall"] - 0.02
    assert all(q["p99_ms"] >= q["p50_ms"] > 0 for q in run["queries"])
    built = {b["config"]: b for b in run["build"]}
    assert built[hnsw]["disk_mib"] > 0 and built[hnsw]["add_per_s"] > 0
    assert built[hnsw]["mapped_load_ms"] >= 0 and built[hnsw]["mapped_p50_ms"] > 0
    assert [row["n"] for row in run["exact_scan"]] == [1000, 2000]
    printed = capsys.readouterr().out
    assert "| configuration | effort |" in printed and hnsw in printed


def test_missing_library_is_skipped_with_a_message(ann, monkeypatch, capsys):
    monkeypatch.setattr(ann, "is_installed", lambda module: module != "hnswlib")
    args = ann.parse_args(["--libs", "numpy", "hnswlib"])
    assert [b.name for b in ann.make_backends(args)] == ["numpy exact f32"]
    assert "skipping hnswlib" in capsys.readouterr().out


def test_metadata_bench_tiny_run(tmp_path):
    out = tmp_path / "meta.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "metadata_bench.py"), "--rows", "600",
                           "--concurrent-s", "1", "--json", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    sqlite = figures["stores"][0]
    assert sqlite["store"] == "SQLite WAL" and sqlite["paths_loaded"] == 600
    assert sqlite["lookups_found"] == 1000  # half the probed paths exist
    assert {s["filtered_rows"] for s in figures["stores"]} == {sqlite["filtered_rows"]} and sqlite["filtered_rows"] > 0
    concurrent = figures["concurrent"]
    assert concurrent["read_errors"] == 0 and concurrent["reads"] > 0 and concurrent["rows_seen_grew"]
