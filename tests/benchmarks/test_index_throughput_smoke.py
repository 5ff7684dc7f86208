"""benchmarks/index_throughput.py runs end to end at a tiny size (2 studies, the demo model in
place of the paper-sized one, ONNX Runtime only) and its figures hold together; the GPU
projection's arithmetic is checked by hand."""
from __future__ import annotations

import json

import pytest

from tests.benchmarks.conftest import script_module



@pytest.fixture(scope="module")
def bench():
    """benchmarks/index_throughput.py as a module."""
    yield from script_module("index_throughput")


def test_tiny_run_prints_positive_figures(bench, tmp_path, capsys):
    """The bundled demo model stands in for the paper-sized one (it has ONNX exports: no torch, no export)."""
    assert bench.main(["--studies", "2", "--size", "128", "--workdir", str(tmp_path), "--runtimes", "onnx",
                       "--paper-model", str(bench.DEMO), "--workers", "0", "--batch-size", "2"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["files"] == 4
    assert [(r["model"], r["runtime"]) for r in results["runs"]] == [("demo", "onnx"), ("paper", "onnx")]
    for run in results["runs"]:
        assert run["build"]["views"] == 4 and run["build"]["failed"] == 0
        assert run["build"]["views_per_s"] > 0 and run["embed"]["images_per_s"] > 0
        assert (tmp_path / f"index-{run['model']}-onnx" / "index.sqlite").is_file()
    decode = results["decode"]
    assert decode["decode_files_per_s"] > 0
    for name in ("demo", "paper"):
        combined = decode["decode_and_preprocess_files_per_s"][name]
        assert 0 < combined <= decode["decode_files_per_s"]
    printed = capsys.readouterr().out
    assert "| model | runtime | build (views/s) |" in printed and "| paper | onnx |" in printed
    assert "ESTIMATE" in printed and "| 8 |" in printed


def test_projection_arithmetic(bench):
    gpu = bench.GpuAssumptions(peak_bf16_tflops=1000.0, utilisation=(0.2, 0.3), gmacs_per_image=5.0,
                               cores_per_gpu=10, archive_images=360_000, gpus=(1, 4), full_size_pixels=4 * 100 ** 2)
    p = bench.gpu_projection(decode_per_core=50.0, image_size=100, gpu=gpu)
    assert p["tower_images_per_s_per_gpu"] == [20_000, 30_000]  # 1e15 * 0.2 / 1e10 FLOP
    assert p["decode_images_per_s_per_gpu"] == pytest.approx(500.0)
    assert p["decode_images_per_s_per_gpu_full_size"] == pytest.approx(125.0)  # 4x the pixels
    assert p["bound"] == "decode"
    assert p["hours"]["1"]["measured_size"] == [0.2, 0.2]  # 360,000 / 500 / 3600
    assert p["hours"]["4"]["full_size"] == pytest.approx(0.2)  # 360,000 / (125 * 4) / 3600
    compute_bound = bench.gpu_projection(decode_per_core=1e5, image_size=100, gpu=gpu)
    assert compute_bound["bound"] == "compute"
    assert compute_bound["hours"]["1"]["measured_size"][0] == pytest.approx(360_000 / 20_000 / 3600, abs=0.01)
