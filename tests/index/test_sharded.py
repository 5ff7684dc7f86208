"""Sharded build: two gloo processes under torchrun give the same index as one process."""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cxrclip.index import build_index, open_index

REPO = Path(__file__).resolve().parents[2]


def embeddings_by_view(index_dir: Path) -> dict[str, np.ndarray]:
    with sqlite3.connect(index_dir / "index.sqlite") as conn:
        return {v: np.frombuffer(b, dtype="<f4") for v, b in conn.execute("SELECT view_id, embedding FROM views")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def torchrun_build(archive: Path, out: Path, model_dir: Path) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a 2-process gloo build; the whole process group is
    killed when it overruns."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={free_port()}", "-m", "training", "index", "build", str(archive), "-o", str(out),
               "--model", str(model_dir), "--device", "cpu", "--batch-size", "4", "--workers", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=REPO, start_new_session=True)
    try:
        out_text, err_text = proc.communicate(timeout=150)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out_text, err_text = proc.communicate()
    return proc.returncode, out_text, err_text


@pytest.mark.slow
def test_two_gloo_ranks_build_the_same_index_as_one_process(archive, tmp_path, index_engine, index_model_dir):
    single = tmp_path / "single"
    build_index([archive], single, index_engine, batch_size=8)
    (archive / "notes.bin").write_text("not an image", encoding="utf-8")
    sharded = tmp_path / "sharded"
    code, out, err = torchrun_build(archive, sharded, index_model_dir)
    assert code == 0, err[-3000:]
    assert "merged 24 new views from 2 shard(s)" in out
    assert not list((sharded / "shards").glob("*.sqlite"))  # merged shards are removed
    want, got = embeddings_by_view(single), embeddings_by_view(sharded)
    assert set(got) == set(want)
    assert max(float(np.abs(got[v] - want[v]).max()) for v in want) < 1e-4
    with open_index(single) as a, open_index(sharded) as b:
        assert (b.info().views, b.info().studies, b.info().failures) == (24, 12, 1)
        ha, hb = a.search_text(index_engine, "effusion", k=5), b.search_text(index_engine, "effusion", k=5)
        assert [h.study_key for h in ha] == [h.study_key for h in hb]
        for x, y in zip(ha, hb):
            assert x.findings == pytest.approx(y.findings, abs=1e-3)


def test_merging_shards_again_adds_nothing(archive, tmp_path, index_engine):
    from cxrclip.index.build import embed_files, open_for_build
    from cxrclip.index.merge import merge_shards, shard_path
    from cxrclip.index.walk import list_files, split_for_rank

    files = list_files([archive])
    classifier = index_engine.zero_shot_classifier()
    for rank in (0, 1):
        with open_for_build(shard_path(tmp_path / "ix", rank), index_engine, None) as store:
            embed_files(store, split_for_rank(files, rank, 2), index_engine, classifier, batch_size=8, workers=0,
                        progress=None, cancel=None)
    shard_copy = (tmp_path / "ix" / "shards" / "rank-1.sqlite").read_bytes()
    assert merge_shards(tmp_path / "ix", index_engine) == 24
    (tmp_path / "ix" / "shards" / "rank-1.sqlite").write_bytes(shard_copy)  # as if a merge died before deleting
    assert merge_shards(tmp_path / "ix", index_engine) == 0
    with open_index(tmp_path / "ix") as index:
        assert (index.info().views, index.info().studies) == (24, 12)
    with sqlite3.connect(tmp_path / "ix" / "index.sqlite") as conn:
        assert conn.execute("SELECT sum(n_views) FROM studies").fetchone()[0] == 24


def test_the_merge_step_removes_files_gone_from_the_sources(archive, tmp_path, index_engine):
    from training.index_distributed import _merge

    build_index([archive], tmp_path / "ix", index_engine, batch_size=8)
    gone = sorted(p for p in (archive / "mimic").rglob("s5*") if p.is_dir())[0]
    shutil.rmtree(gone)
    args = argparse.Namespace(sources=[archive], out=tmp_path / "ix", model=None)
    assert _merge(args, index_engine, 0.0, "2026-12-02T00:00:00") == (0, 2)  # no shards; 2 views gone
    with open_index(tmp_path / "ix") as index:
        assert (index.info().views, index.info().studies) == (22, 11)
