"""benchmarks/train_throughput.py runs on CPU with a tiny model and prints both recipes."""
from __future__ import annotations

import importlib.util
import sys

import pytest


@pytest.mark.slow
def test_throughput_script_cpu_tiny(repo_root, capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("train_throughput", repo_root / "benchmarks/train_throughput.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    assert module.main(["--device", "cpu", "--tiny", "--steps", "1", "--warmup", "0",
                        "--batch-size", "2", "--image-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "ours" in out and "paper" in out and "speed-up ours/paper" in out
