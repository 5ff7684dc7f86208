"""Process start -> findings of the sample study shown, torch runtime vs ONNX Runtime.

Each run is a fresh process (``--child``) that does what ``cxrclip-viewer`` does
(offscreen): builds the main window with the CXR-CLIP plugin, opens
``assets/sample_studies/01_normal`` and waits until the findings table is
filled. The plugin's runtime is forced with ``CXRCLIP_RUNTIME=torch|onnx``.
A 10 ms ``QTimer`` on the UI thread records the longest gap between its
ticks (the worst UI stall) from the window's creation to the findings.
The child prints one JSON line; the parent runs ``--warm`` unmeasured launches
per runtime (prompt-embedding cache and disk cache warm), then ``--runs``
measured ones per runtime, interleaved, and prints the medians and ratios.

    python -m benchmarks.startup_bench --runs 3
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "assets" / "sample_studies" / "01_normal"
MODEL = ROOT / "assets" / "models" / "cxrclip-demo"
START_ENV = "CXRCLIP_BENCH_T0"  # the parent's wall clock just before it starts the child


def _wait_for_plugin(app, win, deadline: float):
    """The CXR-CLIP plugin once the window has activated it (plugins load after the window shows)."""
    while time.time() < deadline:
        for active in win.plugin_host.registry.active:
            if active.manifest.name == "CXR-CLIP findings":
                return active.plugin
        app.processEvents()
        time.sleep(0.002)
    raise RuntimeError(f"the CXR-CLIP plugin did not load; problems: {win.plugin_host.registry.names()}")


def _child(timeout: float) -> dict:
    """Run the viewer like `viewer.app.main` does and measure it (this process is fresh)."""
    t_import = time.time()
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from viewer.io import isolate
    from viewer.qt.main_window import MainWindow
    from viewer.qt.theme import apply_dark_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_dark_theme(app)
    ticks: list[float] = []
    probe = QTimer()
    probe.setInterval(10)
    probe.timeout.connect(lambda: ticks.append(time.perf_counter()))
    probe.start()
    marks: dict[str, float] = {}
    settings = QSettings(str(Path(tempfile.mkdtemp()) / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    win.resize(1500, 950)
    win.show()
    QTimer.singleShot(0, isolate.prestart)
    plugin = _wait_for_plugin(app, win, time.time() + timeout)
    controller = plugin.controller
    controller.model_ready.connect(lambda _s: marks.setdefault("model_ready", time.time()))
    controller.model_failed.connect(lambda m: (marks.setdefault("failed", time.time()), print(m, file=sys.stderr)))
    win.study_ready.connect(lambda _uid: marks.setdefault("study_drawn", time.time()))
    win.open_path(str(STUDY))
    tree = plugin.findings_panel.tree
    deadline = time.time() + timeout
    while tree.topLevelItemCount() == 0 and "failed" not in marks and time.time() < deadline:
        app.processEvents()
        time.sleep(0.002)
    done = time.time()
    probe.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    t0 = float(os.environ.get(START_ENV, t_import))
    result = {"runtime": getattr(getattr(controller, "service", None), "engine", None) and
              controller.service.engine.runtime,
              "findings": tree.topLevelItemCount(),
              "top": tree.topLevelItem(0).text(0) if tree.topLevelItemCount() else None,
              "start_to_findings_s": done - t0, "python_start_s": t_import - t0,
              "model_ready_s": marks.get("model_ready", float("nan")) - t0,
              "study_drawn_s": marks.get("study_drawn", float("nan")) - t0,
              "max_ui_stall_ms": 1000 * max(gaps, default=0.0),
              "stalls_over_100ms": sum(g > 0.1 for g in gaps),
              "torch_imported": "torch" in sys.modules}
    win.plugin_host.shutdown()
    win.close()
    return result


def launch(runtime: str, cache_dir: str, timeout: float) -> dict:
    """One fresh process with ``CXRCLIP_RUNTIME=runtime``; its JSON result."""
    env = dict(os.environ, CXRCLIP_RUNTIME=runtime, CXRCLIP_MODEL=str(MODEL), CXRCLIP_CACHE_DIR=cache_dir,
               CXRCLIP_DATA_DIR=str(Path(cache_dir) / "data"), QT_QPA_PLATFORM="offscreen",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env[START_ENV] = repr(time.time())
    out = subprocess.run([sys.executable, "-m", "benchmarks.startup_bench", "--child", "--timeout", str(timeout)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout + 60)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"child ({runtime}) failed, rc {out.returncode}:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measured launches per runtime (default 3)")
    parser.add_argument("--warm", type=int, default=1, help="unmeasured launches per runtime first (default 1)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds a launch may take")
    parser.add_argument("--runtimes", default="torch,onnx")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.timeout)), flush=True)
        return 0
    runtimes = args.runtimes.split(",")
    results: dict[str, list[dict]] = {r: [] for r in runtimes}
    with tempfile.TemporaryDirectory() as cache_dir:
        for runtime in runtimes:
            for _ in range(args.warm):
                launch(runtime, cache_dir, args.timeout)
        for _ in range(args.runs):
            for runtime in runtimes:
                row = launch(runtime, cache_dir, args.timeout)
                results[runtime].append(row)
                print(json.dumps({"requested": runtime, **row}), flush=True)
    keys = ("start_to_findings_s", "model_ready_s", "study_drawn_s", "max_ui_stall_ms", "stalls_over_100ms")
    print(f"\nmedians of {args.runs} warm launches (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print("| runtime | " + " | ".join(keys) + " |")
    for runtime, rows in results.items():
        print(f"| {runtime} | " + " | ".join(f"{_median(rows, k):.2f}" for k in keys) + " |")
    if {"torch", "onnx"} <= set(results):
        ratio = _median(results["onnx"], "start_to_findings_s") / _median(results["torch"], "start_to_findings_s")
        print(f"start -> findings, onnx / torch: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
