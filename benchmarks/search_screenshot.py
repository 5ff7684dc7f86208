"""Screenshots of the Search panel: the viewer on the sample studies, an archive index of them
built from the panel (in the background, as a user would), a text query, its results.

Also prints how long the build and the query took in the panel (demo model).

    QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/search_screenshot.py \
        --out /tmp/search-shots [--query "large right pneumothorax"]

Writes ``search_1920x1080.png`` and ``search_1366x768.png`` into ``--out`` (the index goes to
a temporary folder unless ``--index`` names one).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.plugin_latency import EP, pause, wait  # noqa: E402 (needs REPO on sys.path)

DEMO = REPO / "assets" / "models" / "cxrclip-demo"
SAMPLES = REPO / "assets" / "sample_studies"
SIZES = ((1920, 1080), (1366, 768))


def open_window(app, settings_dir: Path):
    """The main window with only the CXR-CLIP plugin, its model loaded."""
    from PySide6.QtCore import QSettings

    from plugins.cxrclip_findings.manifest import MANIFEST
    from viewer.qt.main_window import MainWindow

    settings = QSettings(str(settings_dir / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings, plugin_entry_points=[EP("cxrclip_findings", MANIFEST)])
    win.resize(*SIZES[0])  # sized before the plugin lays out its docks, as `cxrclip-viewer --size` does
    win.show()
    wait(app, lambda: bool(win.plugin_host.registry.active))
    plugin = win.plugin_host.registry.active[0].plugin
    wait(app, lambda: plugin.controller.service is not None)
    return win, plugin


def build_and_search(app, win, plugin, index_dir: Path, query: str) -> tuple[float, float]:
    """Open the sample studies, build their index from the panel, run ``query``; (build s, query s)."""
    panel = plugin.search_panel
    win.open_path(SAMPLES / sorted(p.name for p in SAMPLES.iterdir() if p.is_dir())[1])
    wait(app, lambda: win.model.current_study is not None)
    wait(app, lambda: bool(win.image_views()) and all(v.image_paints > 0 for v in win.image_views()), 60)
    start = time.perf_counter()
    finished: list[object] = []
    panel.controller.build_finished.connect(finished.append)
    panel.start_build([SAMPLES], index_dir)
    wait(app, lambda: bool(finished) and panel.controller.ready)
    build_s = time.perf_counter() - start
    panel.query.setText(query)
    start = time.perf_counter()
    panel.search()
    wait(app, lambda: panel.results.count() > 0)
    query_s = time.perf_counter() - start
    wait(app, lambda: len(panel.thumbnails) >= panel.results.count(), 60)
    return build_s, query_s


def grab(app, win, size: tuple[int, int], path: Path, dock=None) -> None:
    """Resize the window, bring ``dock``'s tab forward, let layouts settle, save a PNG."""
    win.resize(*size)
    if dock is not None:
        dock.raise_()
    pause(app, 1.0)
    image = win.grab()
    image.save(str(path))
    print(f"{path}: {image.width()}x{image.height()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--index", type=Path, help="index folder (default: a new temporary one)")
    parser.add_argument("--query", default="large right pneumothorax")
    args = parser.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    os.environ.setdefault("CXRCLIP_MODEL", str(DEMO))
    app = QApplication.instance() or QApplication([])
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = args.index or Path(tmp) / "index"
        win, plugin = open_window(app, Path(tmp))
        build_s, query_s = build_and_search(app, win, plugin, index_dir, args.query)
        print(f"build of {SAMPLES.name} from the panel: {build_s:.2f} s; query {args.query!r}: "
              f"{query_s * 1000:.0f} ms")
        for width, height in SIZES:
            grab(app, win, (width, height), args.out / f"search_{width}x{height}.png", plugin.docks["Search"])
        win.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
