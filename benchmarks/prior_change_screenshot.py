"""Screenshots of the Change tab: sample study 02 compared with its prior (04), the demo model,
one prompt scored on both studies; prints the Change table's rows (what the docs quote).

    QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/prior_change_screenshot.py \
        --out /tmp/change-shots [--prompt "pleural effusion"]

Writes ``change_1920x1080.png`` and ``change_1366x768.png`` into ``--out``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.plugin_latency import wait  # noqa: E402 (needs REPO on sys.path)
from benchmarks.search_screenshot import DEMO, SAMPLES, SIZES, grab, open_window  # noqa: E402

CURRENT_DATE = "20240712"   # sample study 02; its prior is 04 (20240406)


def compare_with_prior(app, win, plugin, prompt: str) -> None:
    """Open the sample folder, show study 02, compare it with its prior, score ``prompt``."""
    win.open_path(SAMPLES)
    wait(app, lambda: win.model.scan is not None and bool(win.model.scan.studies.studies()), 60)
    study = next(s for s in win.model.scan.studies.studies() if s.date == CURRENT_DATE)
    win.show_study(study)
    wait(app, lambda: win.model.current_study is not None and win.model.current_study.study is study)
    win.actions_by_key["compare_prior"].trigger()
    wait(app, lambda: win.model.layout == "compare")
    wait(app, lambda: len(win.image_views()) >= 2 and all(v.image_paints > 0 for v in win.image_views()), 60)
    wait(app, lambda: bool(plugin.change_panel.rows()), 120)
    plugin.prompt_panel.set_prompt(prompt)
    plugin.prompt_panel.submit()
    wait(app, lambda: bool(plugin.prompt_panel.prior_label.text()), 60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--prompt", default="pleural effusion")
    args = parser.parse_args(argv)
    from PySide6.QtWidgets import QApplication

    os.environ.setdefault("CXRCLIP_MODEL", str(DEMO))
    app = QApplication.instance() or QApplication([])
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        win, plugin = open_window(app, Path(tmp))
        compare_with_prior(app, win, plugin, args.prompt)
        for row in plugin.change_panel.rows():
            print(" | ".join(row))
        print(plugin.prompt_panel.prior_label.text())
        for width, height in SIZES:
            grab(app, win, (width, height), args.out / f"change_{width}x{height}.png", plugin.docks["Change"])
        win.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
