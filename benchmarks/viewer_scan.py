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
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from viewer.io.scan import scan_folder  # noqa: E402


def write_files(folder: Path, count: int) -> None:
    pixels = np.zeros((8, 8), np.uint16).tobytes()
    studies = [(generate_uid(), generate_uid()) for _ in range(max(count // 20, 1))]
    for i in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = studies[i % len(studies)]
        ds.PatientID, ds.PatientName, ds.PatientSex = f"P{i % 50}", "Bench^Patient", "F"
        ds.StudyDate, ds.StudyTime, ds.Modality = "20200101", "120000", "DX"
        ds.ViewPosition = "PA" if i % 2 else "LL"
        ds.InstitutionName, ds.Manufacturer = "Bench Hospital", "Bench"
        ds.Rows = ds.Columns = 8
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelSpacing, ds.WindowCenter, ds.WindowWidth = [0.1, 0.1], 2048, 4096
        ds.PixelData = pixels
        ds.save_as(folder / f"{i:05d}.dcm", enforce_file_format=True)


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
