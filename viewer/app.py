"""``cxrclip-viewer [PATH]``: start the desktop viewer.

``--screenshot FILE`` saves the window once the first study is drawn (or after
``--screenshot-timeout`` seconds) and exits: useful for docs and headless checks.
"""
from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the viewer."""
    parser = argparse.ArgumentParser(prog="cxrclip-viewer", description="Chest X-ray viewer")
    parser.add_argument("path", nargs="?", help="folder or file to open")
    parser.add_argument("--screenshot", type=Path, metavar="FILE",
                        help="save a PNG of the window after the first study is drawn, then exit")
    parser.add_argument("--screenshot-timeout", type=float, default=30.0, metavar="S",
                        help="give up waiting for the study after S seconds (default 30)")
    parser.add_argument("--screenshot-delay", type=float, default=0.3, metavar="S",
                        help="extra wait after the study is drawn, for plugins (default 0.3)")
    parser.add_argument("--size", default=None,
                        help="window size WxH (default: the viewer's usual size, shrunk to fit the screen)")
    phi = parser.add_mutually_exclusive_group()
    phi.add_argument("--hide-phi", action="store_true",
                     help="hide patient identifiers (remembered for later starts)")
    phi.add_argument("--show-phi", action="store_true",
                     help="show patient identifiers (remembered for later starts)")
    parser.add_argument("--no-plugins", action="store_true", help="do not load plugins")
    parser.add_argument("--plugin", action="append", metavar="NAME",
                        help="load only this plugin entry point (repeatable), e.g. --plugin histogram")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size must look like 1500x950, got {text!r}") from None
    return w, h


def _arm_screenshot(app, window, target: Path, timeout: float, delay: float) -> None:
    from PySide6.QtCore import QTimer

    done = {"saved": False}

    def save() -> None:
        if done["saved"]:
            return
        done["saved"] = True
        window.grab().save(str(target))
        log.info("screenshot saved to %s", target)
        app.quit()

    window.study_ready.connect(lambda _uid: QTimer.singleShot(int(delay * 1000), save))
    window.scan_finished.connect(lambda n: n == 0 and QTimer.singleShot(int(delay * 1000), save))
    QTimer.singleShot(int(timeout * 1000), save)


def _selected_entry_points(names: list[str] | None) -> list | None:
    """Installed plugin entry points restricted to ``names`` (None = all)."""
    if not names:
        return None
    from importlib.metadata import entry_points

    from viewer.plugin_api import ENTRY_POINT_GROUP

    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name in names]
    missing = sorted(set(names) - {ep.name for ep in found})
    if missing:
        log.warning("no installed plugin named %s", ", ".join(missing))
    return found


def main(argv: list[str] | None = None) -> int:
    """Run the viewer; returns the Qt exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # highdicom logs every module it copies at INFO
        logging.getLogger("highdicom").setLevel(logging.WARNING)
    from viewer.io import isolate

    # The decode workers import pydicom and its decoders on the other core while this
    # process imports Qt, so the first study's compressed pixels decode without waiting.
    isolate.prestart()
    from PySide6.QtWidgets import QApplication

    from viewer.qt.errors import ExceptHook
    from viewer.qt.main_window import MainWindow
    from viewer.qt.pyside_check import broken_pyside_message
    from viewer.qt.theme import apply_dark_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    if (problem := broken_pyside_message()) is not None:
        print(f"cxrclip-viewer: {problem}", file=sys.stderr)
        return 2
    app.setApplicationName("CXR-CLIP Viewer")
    app.setOrganizationName("cxrclip")
    apply_dark_theme(app)
    window = MainWindow(load_plugins=not args.no_plugins,
                        plugin_entry_points=_selected_entry_points(args.plugin))
    hook = ExceptHook(window.report_problem).install()
    if args.size is not None:   # otherwise MainWindow's default, fitted to the screen
        window.resize(*_parse_size(args.size))
    if args.hide_phi or args.show_phi:  # otherwise the saved setting applies
        window.set_hide_phi(args.hide_phi)
    # What exists now (Qt's and our modules, the window) lives as long as the app: frozen, the
    # cyclic garbage collector stops walking it. Unfrozen, the first full collection after
    # launch held the UI thread for 70-90 ms; frozen, 9-15 ms (benchmarks/RESULTS.md).
    gc.freeze()
    window.show()
    if args.screenshot is not None:
        _arm_screenshot(app, window, args.screenshot, args.screenshot_timeout, args.screenshot_delay)
    if args.path:
        window.open_path(args.path)
    try:
        return app.exec()
    finally:
        hook.uninstall()


if __name__ == "__main__":
    sys.exit(main())
