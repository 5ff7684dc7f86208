"""Data-side cost of opening a two-view chest study and of a window/level change.

Generates a PA + LAT study of uncompressed 2,500 x 3,000 16-bit images (12 bits
stored) in a temp dir and prints medians of:
- scan + load/decode + first render of both views (full resolution, and at a
  display size of 1,500 px as a zoomed-out view would use);
- re-render of one view after a W/L change (full 7.5 MP, and from the cached
  downsampled copy).
Run: .venv/bin/python benchmarks/viewer_render.py [--repeats N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from dicom_fixtures import write_cr  # noqa: E402

from viewer.io.decode import load_image  # noqa: E402
from viewer.io.scan import scan_folder  # noqa: E402
from viewer.render import render_uint8  # noqa: E402

ROWS, COLS, DISPLAY_SIDE = 3000, 2500, 1500


def write_study(folder: Path) -> None:
    """Two CR views of one study with smooth 12-bit content."""
    rng = np.random.default_rng(0)
    study = generate_uid()
    yy, xx = np.mgrid[0:ROWS, 0:COLS]
    base = (2048 + 1500 * np.sin(xx / 300.0) * np.cos(yy / 400.0)).astype(np.int32)
    for position in ("PA", "LL"):
        pixels = np.clip(base + rng.integers(-50, 50, base.shape), 0, 4095)
        write_cr(folder / f"{position}.dcm", pixels, study, PatientID="BENCH", ViewPosition=position,
                 WindowCenter=2048, WindowWidth=4096)


def open_study(folder: Path, max_side: int | None) -> float:
    start = time.perf_counter()
    study, = scan_folder(folder).studies.studies()
    for view in study.views():
        render_uint8(load_image(view), max_side=max_side)
    return time.perf_counter() - start


def wl_change(image, max_side: int | None, repeats: int) -> list[float]:
    render_uint8(image, (2000, 3000), max_side=max_side)  # warm the downsampled copy
    times = []
    for i in range(repeats):
        window = (1000 + 10 * i, 2000 + 7 * i)  # new table every time
        start = time.perf_counter()
        render_uint8(image, window, max_side=max_side)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_study(folder)
        open_study(folder, None)  # warm imports and page cache
        full = [open_study(folder, None) for _ in range(args.repeats)]
        small = [open_study(folder, DISPLAY_SIDE) for _ in range(args.repeats)]
        view = scan_folder(folder).studies.studies()[0].views()[0]
        image = load_image(view)
        start = time.perf_counter()
        for _ in range(args.repeats):
            load_image(view)
        decode = (time.perf_counter() - start) / args.repeats
        wl_full = wl_change(image, None, args.repeats * 3)
        wl_small = wl_change(image, DISPLAY_SIDE, args.repeats * 3)
    ms = lambda xs: f"{statistics.median(xs) * 1000:7.1f} ms"  # noqa: E731
    print(f"two-view study {COLS}x{ROWS} uint16 (12 bits stored), uncompressed, medians:")
    print(f"  scan + decode + first render, both views, full res     {ms(full)}")
    print(f"  scan + decode + first render, both views, {DISPLAY_SIDE}px side  {ms(small)}")
    print(f"  load_image of one view (read + decode)                 {decode * 1000:7.1f} ms")
    print(f"  W/L change re-render, one view, full 7.5 MP           {ms(wl_full)}")
    print(f"  W/L change re-render, one view, {DISPLAY_SIDE}px display copy   {ms(wl_small)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
