"""Header scan rate of viewer.io.scan on a folder of 2,000 small DICOM files.

Generates the files in a temp dir (8 x 8 uint16 pixels, a realistic set of
header attributes), then times ``scan_folder`` several times and prints the
median files/s. The page cache is warm after the first pass, so the figure is
parsing cost, not disk speed.
Run: .venv/bin/python benchmarks/viewer_scan.py [--files N] [--repeats N]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
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

from viewer.io.scan import scan_folder  # noqa: E402


def write_files(folder: Path, count: int) -> None:
    pixels = np.zeros((8, 8), np.uint16)
    studies = [(generate_uid(), generate_uid()) for _ in range(max(count // 20, 1))]
    for i in range(count):
        study, series = studies[i % len(studies)]
        write_cr(folder / f"{i:05d}.dcm", pixels, study, series,
                 PatientID=f"P{i % 50}", PatientName="Bench^Patient", PatientSex="F",
                 StudyDate="20200101", StudyTime="120000", Modality="DX",
                 ViewPosition="PA" if i % 2 else "LL", InstitutionName="Bench Hospital",
                 Manufacturer="Bench", PixelSpacing=[0.1, 0.1], WindowCenter=2048, WindowWidth=4096)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print the top 15 functions")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_files(folder, args.files)
        scan_folder(folder)  # warm page cache and imports
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = scan_folder(folder)
            times.append(time.perf_counter() - start)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(scan_folder, folder)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(15)
    median = statistics.median(times)
    print(f"header scan of {args.files} small DICOM files ({len(result.studies)} views, "
          f"{len(result.problems)} problems), median of {args.repeats}:")
    print(f"  {median * 1000:.0f} ms total, {args.files / median:,.0f} files/s, "
          f"{median / args.files * 1e6:.0f} us/file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
