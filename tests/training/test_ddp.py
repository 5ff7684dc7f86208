"""Two CPU processes with gloo: one DDP training step keeps the ranks' parameters identical."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_step(overrides_for, toy_manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), *sys.path]))
    if str(HERE) not in sys.path:
        monkeypatch.syspath_prepend(str(HERE))
    import ddp_worker

    overrides = overrides_for(toy_manifest, tmp_path / "run", **{
        "train.batch_size": 2, "train.stop_after_steps": 2, "data.val": "[]",
        "loss.head_label_weight": 1.0})  # the trainer's own label head is kept in step across the ranks too
    mp.spawn(ddp_worker.run, args=(2, _free_port(), overrides, str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["distributed"] and r0["world"] == 2
    assert not r0["sync_bn"]  # SyncBatchNorm is CUDA-only; the CPU/gloo path keeps BatchNorm
    assert r0["step"] == r1["step"] == 2 and r0["changed"] > 0
    assert any(key.startswith("label_head.") for key in r0["params"])
    for key, value in r0["params"].items():
        torch.testing.assert_close(r1["params"][key], value, msg=key)
    assert (tmp_path / "run" / "checkpoints" / "step_00000002" / "rng_rank1.pt").is_file()
