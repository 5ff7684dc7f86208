"""Viewer speed, offscreen: open → both views painted, and W/L change → repaint.

Builds a two-view study of uncompressed 2,500 x 3,000 16-bit (12 bits stored)
CR images in a temp dir, then in one process:
- open: ``MainWindow.open_path`` until both image views have painted pixels
  (scan + decode + display-copy render in workers + first paint); the first
  run is a warm-up (imports, page cache) and is excluded from the median;
- W/L: ``DisplayState.set_window`` + synchronous ``repaint()`` of one view
  (LUT on the display copy + pixmap + paint), median over many steps.
The open is measured for each decode isolation mode of ``viewer.io.decode``
in the same run: ``auto`` (the default: these uncompressed files decode
in-process after the length check), ``process`` (every file in a worker
process, pixels back through shared memory; the first open, which starts
the workers, is reported apart) and ``inline``; the ratio process/inline is
the cost of isolation.
Targets: open ≤ 300 ms, W/L ≤ 16 ms.

Usage: QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/viewer_open.py [--runs 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def write_study(folder: Path, rows: int = 3000, cols: int = 2500) -> None:
    """Two CR views (PA, LL) of smooth 12-bit content, explicit VR little endian."""
    from pydicom.uid import generate_uid

    from dicom_fixtures import write_cr

    study = generate_uid()
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    base = 2000 + 1500 * np.sin(xx / 300) * np.cos(yy / 400)
    for position, number in (("PA", 1), ("LL", 2)):
        write_cr(folder / f"{position}.dcm", np.clip(base + number * 50, 0, 4095), study,
                 PatientID="B1", PatientName="Bench^Mark", ViewPosition=position, InstanceNumber=number,
                 WindowCenter=2000, WindowWidth=3000)


def time_open(app, window, folder: Path) -> float:
    """Seconds from open_path to both views painted with pixels."""
    window.close_study()  # drop the previous run's views
    app.processEvents()
    start = time.perf_counter()
    window.open_path(folder)
    while True:
        app.processEvents()
        views = window.image_views()
        if len(views) == 2 and all(v.image_paints > 0 for v in views):
            return time.perf_counter() - start
        if time.perf_counter() - start > 60:
            raise TimeoutError("views were not painted within 60 s")
        time.sleep(0.0005)


def time_window_changes(view, steps: int = 40) -> list[float]:
    """Seconds per set_window + synchronous repaint."""
    out = []
    for i in range(steps):
        start = time.perf_counter()
        view.state.set_window(1800 + 10 * i, 2500 + 15 * i)
        view.repaint()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from viewer.qt.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "study"
        folder.mkdir()
        write_study(folder)
        settings = QSettings(str(Path(tmp) / "s.ini"), QSettings.Format.IniFormat)
        window = MainWindow(settings=settings, load_plugins=False)
        window.resize(1600, 1000)
        window.show()
        app.processEvents()
        from viewer.io import decode, isolate

        isolate.shutdown()  # the first isolated open starts the workers: measured apart
        opens_by_mode: dict[str, list[float]] = {}
        cold_start = 0.0
        for mode in ("inline", "process", "auto"):
            decode.set_isolation(mode)
            first = time_open(app, window, folder)
            if mode == "process":
                cold_start = first
            opens_by_mode[mode] = [time_open(app, window, folder) for _ in range(args.runs)]
        decode.set_isolation("auto")
        opens = opens_by_mode["auto"]
        view = window.image_views()[0]
        print(f"view widget {view.width()}x{view.height()}, display copy "
              f"{view.pixels.small_uint8.shape[1]}x{view.pixels.small_uint8.shape[0]}")
        wl = time_window_changes(view)
        view.state.set_zoom(1.0)  # 1:1 — full-resolution render happens in a worker
        wl_zoomed = time_window_changes(view, 20)
    print(f"open two 2500x3000 16-bit views -> both painted: median {statistics.median(opens) * 1e3:.0f} ms "
          f"(min {min(opens) * 1e3:.0f}, max {max(opens) * 1e3:.0f}, {len(opens)} runs)")
    med = {mode: statistics.median(v) for mode, v in opens_by_mode.items()}
    for mode, values in opens_by_mode.items():
        print(f"  decode {mode:8s}: open median {med[mode] * 1e3:.0f} ms "
              f"(min {min(values) * 1e3:.0f}, max {max(values) * 1e3:.0f})")
    print(f"  isolated/in-process ratio (process/inline medians): {med['process'] / med['inline']:.2f}; "
          f"first isolated open incl. worker start: {cold_start * 1e3:.0f} ms")
    print(f"W/L change -> re-render + repaint (fitted view): median {statistics.median(wl) * 1e3:.1f} ms "
          f"(p90 {np.percentile(wl, 90) * 1e3:.1f})")
    print(f"W/L change -> re-render + repaint (1:1 zoom, display copy drawn until the worker's "
          f"full-res render lands): median {statistics.median(wl_zoomed) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
