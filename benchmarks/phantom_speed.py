"""Phantom generator speed: studies per second for the training cache and for DICOM output.

Run: python benchmarks/phantom_speed.py [--studies 60] [--workers 1 2]
Prints the median of a few repeats per configuration (render only, PNG+manifest,
PNG+DICOM) so figures can go into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from training.phantoms.dataset import GenerateOptions, generate_dataset
from training.phantoms.study import generate_study


def _render_only(size: int, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        generate_study(0, i, size)
    return n / (time.perf_counter() - start)


def _files(size: int, n: int, workers: int, dicom: bool, dicom_size: int | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        opts = GenerateOptions(out=Path(tmp), seed=0, size=size, dicom=dicom,
                               dicom_size=dicom_size)
        start = time.perf_counter()
        generate_dataset(opts, n, workers=workers)
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--studies", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    n, r = args.studies, args.repeats
    rows = [("render only (2 views), 224 px", lambda: _render_only(224, n)),
            ("render only (2 views), 512 px", lambda: _render_only(512, n))]
    for w in args.workers:
        rows.append((f"PNG 224 + manifest, no DICOM, {w} worker(s)",
                     lambda w=w: _files(224, n, w, False, None)))
        rows.append((f"PNG 512 + DICOM 512 + manifest, {w} worker(s)",
                     lambda w=w: _files(512, n, w, True, None)))
        rows.append((f"PNG 512 + DICOM 1024 + manifest, {w} worker(s)",
                     lambda w=w: _files(512, n // 2, w, True, 1024)))
    print(f"{'configuration':52s} studies/s (median of {r})")
    for name, fn in rows:
        rates = [fn() for _ in range(r)]
        print(f"{name:52s} {statistics.median(rates):8.1f}")


if __name__ == "__main__":
    main()
