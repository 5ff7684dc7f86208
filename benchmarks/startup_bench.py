"""Process start -> findings of the sample study shown, torch runtime vs ONNX Runtime.

Each launch is a fresh process (``--child``) that runs the viewer itself,
``viewer.app.main([STUDY])`` (offscreen, settings in a temporary folder), with
the CXR-CLIP plugin, and ends once the findings table of
``assets/sample_studies/01_normal`` is filled. The plugin's runtime is forced
with ``CXRCLIP_RUNTIME=torch|onnx``. An import hook wraps the main window's
``__init__`` and ``show`` to record a timeline (seconds from process start:
python started, window created, window shown, scan done, plugin active, study
drawn, model ready, findings) and to run a 10 ms ``QTimer`` on the UI thread
from the window's creation to the findings: the gaps between its ticks are
the UI stalls (the longest, how many over 100 ms, and when each ended). Stalls
count from the window's first frame (its first paint), when a person can first
see and use it; the gap that ends with the first frame (showing and painting the
window) is reported on its own as ``first_frame_gap_ms``, and
``max_ui_stall_incl_first_frame_ms`` is the longest gap from the window's creation.
The probe keeps ticking ``--settle`` seconds after the findings (the launch is over but
its garbage is not): ``max_ui_stall_ms`` and the stall counts stop at the findings,
``max_stall_after_findings_ms`` is the longest gap in those seconds. Then the UI thread runs
one full garbage collection, as the collector would at some point, and ``full_gc_ms`` is
how long it took.

The parent runs ``--warm`` unmeasured launches per runtime (prompt-embedding
cache and disk cache warm), then ``--runs`` measured ones per runtime,
interleaved, and prints the medians and the ratio ONNX / torch. ``--first``
first measures one launch per runtime with an empty prompt-embedding cache
(the first launch after installing; the disk cache is whatever the machine
has). ``--tree DIR`` also measures the code of another checkout (e.g. a
``git worktree`` of an older commit) with the ONNX runtime, in the same
interleaved rounds, so before/after figures share one run.

    python -m benchmarks.startup_bench --runs 5 --first --tree /tmp/before
"""
from __future__ import annotations

import argparse
import gc
import importlib.abc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "assets" / "sample_studies" / "01_normal"
MODEL = ROOT / "assets" / "models" / "cxrclip-demo"
START_ENV = "CXRCLIP_BENCH_T0"  # the parent's wall clock just before it starts the child
SAMPLE_ENV = "CXRCLIP_BENCH_SAMPLE_STALLS"  # "1": name what the UI thread ran during each stall
PLUGIN_NAME = "CXR-CLIP findings"
SETTLE_ENV = "CXRCLIP_BENCH_SETTLE"  # seconds the probe keeps running after the findings
KEYS = ("start_to_findings_s", "model_ready_s", "study_drawn_s", "first_frame_s", "max_ui_stall_ms",
        "stalls_over_100ms", "first_frame_gap_ms", "max_stall_after_findings_ms", "full_gc_ms")


# ----- child: the viewer, observed -------------------------------------------------------
class _Probe:
    """The timeline of one launch and the UI thread's stalls (see the module docstring)."""

    def __init__(self, t0: float, timeout: float, settle: float = 0.0) -> None:
        self.t0, self.timeout, self.settle = t0, timeout, settle
        self.findings_tick: int | None = None
        self.marks: dict[str, float] = {}
        self.ticks: list[float] = []
        self.window: Any = None
        self.plugin: Any = None
        self.result: dict | None = None

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.time() - self.t0)

    def window_created(self, window: Any) -> None:
        from PySide6.QtCore import QTimer

        self.window = window
        self.mark("window_created")
        self.timer = QTimer(window)
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        window.installEventFilter(self._first_paint_filter())
        window.scan_finished.connect(lambda _n: self.mark("scan_done"))
        window.study_ready.connect(lambda _uid: self.mark("study_drawn"))
        QTimer.singleShot(int(self.timeout * 1000), lambda: self._finish("timed out"))

    def _first_paint_filter(self) -> Any:
        """An event filter that marks ``first_frame`` after the window's first paint."""
        from PySide6.QtCore import QEvent, QObject

        probe = self

        class FirstPaint(QObject):
            def eventFilter(self, watched, event):  # noqa: N802 - Qt's name
                if event.type() == QEvent.Type.Paint and "first_frame" not in probe.marks:
                    probe.first_frame_tick = len(probe.ticks)  # ticks before it: before the first frame
                    probe.mark("first_frame")
                return False

        self._filter = FirstPaint(self.window)
        return self._filter

    def _tick(self) -> None:
        self.ticks.append(time.time())
        if self.plugin is None:
            self._find_plugin()
        elif (self.findings_tick is None and getattr(self.plugin, "built", True)
              and self.plugin.findings_panel.tree.topLevelItemCount() > 0):
            from PySide6.QtCore import QTimer

            self.mark("findings")
            self.findings_tick = len(self.ticks)
            QTimer.singleShot(int(self.settle * 1000), self._finish)

    def _find_plugin(self) -> None:
        for active in self.window.plugin_host.registry.active:
            if active.manifest.name == PLUGIN_NAME:
                self.plugin = active.plugin
                self.mark("plugin_active")
                controller = self.plugin.controller
                if controller.service is not None:
                    self.mark("model_ready")
                controller.model_ready.connect(lambda _s: self.mark("model_ready"))
                controller.model_failed.connect(lambda m: self._finish(f"model failed: {m}"))

    def _finish(self, error: str = "") -> None:
        if self.result is not None:
            return
        self.timer.stop()
        self.result = self._summary(error)
        start = time.perf_counter()  # what a full collection, whenever it comes, costs the UI thread
        gc.collect()
        self.result["full_gc_ms"] = 1000 * (time.perf_counter() - start)
        self.window.close()  # the app's event loop ends with its last window

    def _causes(self, gaps: list[tuple[float, float]]) -> list:
        sampler = getattr(self, "sampler", None)
        if sampler is None:
            return []
        return [[round(1000 * g), sampler.explain(self.t0 + at - g, self.t0 + at)] for g, at in gaps if g > 0.08]

    def _summary(self, error: str) -> dict:
        all_gaps = [(b - a, b - self.t0) for a, b in zip(self.ticks, self.ticks[1:])]
        end = len(all_gaps) if self.findings_tick is None else self.findings_tick - 1
        all_gaps, after = all_gaps[:end], all_gaps[end:]  # launch, and the settle time after the findings
        first = getattr(self, "first_frame_tick", 0)  # gaps[first - 1] ends after the first paint
        gaps = all_gaps[first:]
        tree = self.plugin.findings_panel.tree if self.plugin is not None and getattr(self.plugin, "built", True) else None
        service = getattr(getattr(self.plugin, "controller", None), "service", None)
        return {"error": error, "runtime": getattr(getattr(service, "engine", None), "runtime", None),
                "findings": tree.topLevelItemCount() if tree is not None else 0,
                "top": tree.topLevelItem(0).text(0) if tree is not None and tree.topLevelItemCount() else None,
                "start_to_findings_s": self.marks.get("findings", float("nan")),
                "model_ready_s": self.marks.get("model_ready", float("nan")),
                "study_drawn_s": self.marks.get("study_drawn", float("nan")),
                "first_frame_s": self.marks.get("first_frame", float("nan")),
                "first_frame_gap_ms": 1000 * all_gaps[first - 1][0] if 0 < first <= len(all_gaps) else 0.0,
                "max_ui_stall_ms": 1000 * max((g for g, _ in gaps), default=0.0),
                "max_ui_stall_incl_first_frame_ms": 1000 * max((g for g, _ in all_gaps), default=0.0),
                "stalls_over_100ms": sum(g > 0.1 for g, _ in gaps),
                "max_stall_after_findings_ms": 1000 * max((g for g, _ in after), default=0.0),
                "settle_s": self.settle,
                "stalls": [[round(1000 * g), round(at, 3)] for g, at in gaps if g > 0.1],
                "stall_causes": self._causes(gaps),
                "timeline": {k: round(v, 3) for k, v in sorted(self.marks.items(), key=lambda kv: kv[1])},
                "torch_imported": "torch" in sys.modules, "highdicom_imported": "highdicom" in sys.modules}


class _StallSampler:
    """Samples the UI thread's Python stack every 5 ms from a daemon thread, so each stall
    can be attributed: the most frequent repository frames inside it (``--sample-stalls``).
    A stall spent in Qt's C++ with no Python frame of ours shows as ``(Qt / event loop)``."""

    def __init__(self, period: float = 0.005) -> None:
        import threading

        self.main_id = threading.main_thread().ident
        self.period, self.samples = period, []
        threading.Thread(target=self._run, name="stall-sampler", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(self.period)
            frame = sys._current_frames().get(self.main_id)
            self.samples.append((time.time(), self._ours(frame)))

    @staticmethod
    def _ours(frame: Any) -> str:
        names = []
        while frame is not None and len(names) < 3:
            path = frame.f_code.co_filename
            if str(ROOT) in path and "benchmarks" not in path:
                names.append(f"{Path(path).stem}.{frame.f_code.co_name}:{frame.f_lineno}")
            frame = frame.f_back
        return " < ".join(names) or "(Qt / event loop)"

    def explain(self, start: float, end: float, top: int = 3) -> list[list]:
        """The ``top`` stacks sampled in [start, end) with their share of the samples."""
        from collections import Counter

        inside = Counter(name for t, name in self.samples if start <= t < end)
        total = sum(inside.values()) or 1
        return [[name, round(count / total, 2)] for name, count in inside.most_common(top)]


class _WrapMainWindow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Once ``viewer.qt.main_window`` is imported (by the app, when it wants to), wrap
    ``MainWindow.__init__`` and ``show`` to tell the probe; nothing else changes."""

    NAME = "viewer.qt.main_window"

    def __init__(self, probe: _Probe) -> None:
        self.probe, self._inner = probe, None

    def find_spec(self, fullname, path, target=None):  # noqa: D401 - importlib hook
        if fullname != self.NAME or self._inner is not None:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        self._inner, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:
        self._inner.exec_module(module)
        probe, cls = self.probe, module.MainWindow
        init, show = cls.__init__, cls.show

        def wrapped_init(window, *args, **kwargs):
            init(window, *args, **kwargs)
            probe.window_created(window)

        def wrapped_show(window):
            show(window)
            probe.mark("window_shown")

        cls.__init__, cls.show = wrapped_init, wrapped_show


def _child(timeout: float) -> dict:
    """Run the viewer (this process is fresh) and observe it."""
    probe = _Probe(float(os.environ.get(START_ENV, time.time())), timeout,
                   float(os.environ.get(SETTLE_ENV, "0")))
    probe.mark("python_started")
    if os.environ.get(SAMPLE_ENV) == "1":
        probe.sampler = _StallSampler()
    sys.meta_path.insert(0, _WrapMainWindow(probe))
    from viewer.app import main as viewer_main

    viewer_main([str(STUDY)])
    return probe.result or {"error": "the viewer exited before the findings"}


# ----- parent ------------------------------------------------------------------------------
def launch(runtime: str, cache_dir: str, timeout: float, tree: Path = ROOT) -> dict:
    """One fresh process with ``CXRCLIP_RUNTIME=runtime`` running ``tree``'s code; its result."""
    with tempfile.TemporaryDirectory(prefix="cxrclip-bench-settings-") as config:  # QSettings live here
        return _launch_in(runtime, cache_dir, timeout, tree, config)


def _launch_in(runtime: str, cache_dir: str, timeout: float, tree: Path, config: str) -> dict:
    env = dict(os.environ, CXRCLIP_RUNTIME=runtime, CXRCLIP_MODEL=str(MODEL), CXRCLIP_CACHE_DIR=cache_dir,
               CXRCLIP_DATA_DIR=str(Path(cache_dir) / "data"), QT_QPA_PLATFORM="offscreen",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", XDG_CONFIG_HOME=config,
               PYTHONPATH=os.pathsep.join([str(tree)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env[START_ENV] = repr(time.time())
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "--timeout", str(timeout)],
                         cwd=tree, env=env, capture_output=True, text=True, timeout=timeout + 60)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    row = json.loads(lines[-1]) if lines else {}
    if out.returncode != 0 or not row or row.get("error"):
        raise RuntimeError(f"child ({runtime}, {tree}) failed, rc {out.returncode}, "
                           f"{row.get('error', 'no result')}:\n{out.stderr[-3000:]}")
    return row


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def _print_table(title: str, results: dict[str, list[dict]]) -> None:
    print(f"\n{title} (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print("| launch | " + " | ".join(KEYS) + " |")
    for label, rows in results.items():
        print(f"| {label} | " + " | ".join(f"{_median(rows, k):.2f}" for k in KEYS) + " |")
    if {"torch", "onnx"} <= set(results):
        ratio = _median(results["onnx"], "start_to_findings_s") / _median(results["torch"], "start_to_findings_s")
        print(f"start -> findings, onnx / torch: {ratio:.3f}")


def _variants(args: argparse.Namespace) -> dict[str, tuple[str, Path]]:
    """label -> (runtime, code tree)."""
    variants = {runtime: (runtime, ROOT) for runtime in args.runtimes.split(",")}
    if args.tree is not None:
        variants[f"onnx@{args.tree.name}"] = ("onnx", args.tree.resolve())
    return variants


def _first_launches(variants: dict[str, tuple[str, Path]], timeout: float) -> dict[str, list[dict]]:
    """One launch per variant, each with its own empty prompt-embedding cache."""
    results = {}
    for label, (runtime, tree) in variants.items():
        with tempfile.TemporaryDirectory() as cold:
            results[label] = [launch(runtime, cold, timeout, tree)]
        print(json.dumps({"first": label, **results[label][0]}), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measured launches per runtime (default 3)")
    parser.add_argument("--warm", type=int, default=1, help="unmeasured launches per runtime first (default 1)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds a launch may take")
    parser.add_argument("--runtimes", default="torch,onnx")
    parser.add_argument("--first", action="store_true",
                        help="also measure one launch per runtime with an empty prompt-embedding cache")
    parser.add_argument("--tree", type=Path, help="also measure this checkout's code (ONNX runtime)")
    parser.add_argument("--sample-stalls", action="store_true",
                        help="name what the UI thread ran during each stall (adds a sampling thread)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds the probe keeps running after the findings (default 2): "
                             "max_stall_after_findings_ms, e.g. a full garbage collection")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.timeout)), flush=True)
        return 0
    os.environ[SETTLE_ENV] = str(args.settle)  # the children inherit these
    if args.sample_stalls:
        os.environ[SAMPLE_ENV] = "1"
    variants = _variants(args)
    if args.first:
        _print_table("first launch, empty prompt-embedding cache (one launch each)",
                     _first_launches(variants, args.timeout))
    results: dict[str, list[dict]] = {label: [] for label in variants}
    with tempfile.TemporaryDirectory() as cache_dir:
        for label, (runtime, tree) in variants.items():
            for _ in range(args.warm):
                launch(runtime, cache_dir, args.timeout, tree)
        for _ in range(args.runs):
            for label, (runtime, tree) in variants.items():
                row = launch(runtime, cache_dir, args.timeout, tree)
                results[label].append(row)
                print(json.dumps({"launch": label, **row}), flush=True)
    _print_table(f"medians of {args.runs} warm launches", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
