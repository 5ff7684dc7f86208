"""A build killed with SIGKILL mid-way resumes without duplicates and without embedding done files again."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cxrclip.index import build_index, open_index

REPO = Path(__file__).resolve().parents[2]


def view_count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM views").fetchone()[0])
    except sqlite3.Error:
        return 0  # not created yet


@pytest.mark.slow
def test_sigkill_mid_build_then_rerun(archive, tmp_path, index_engine, index_model_dir):
    out = tmp_path / "ix"
    command = [sys.executable, "-m", "cxrclip.cli", "index", "build", str(archive), "-o", str(out),
               "--model", str(index_model_dir), "--workers", "0", "--batch-size", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while view_count(out / "index.sqlite") < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    done = view_count(out / "index.sqlite")
    assert 2 <= done < 24, f"the build should have been killed mid-way ({done} views)"
    report = build_index([archive], out, index_engine, batch_size=8)
    assert report.skipped == done and report.added == 24 - done
    assert index_engine.embedded == 24 - done
    with sqlite3.connect(out / "index.sqlite") as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT path) FROM views").fetchone() == (24, 24)
        assert conn.execute("SELECT sum(n_views) FROM studies").fetchone()[0] == 24
    assert open_index(out).info().studies == 12
