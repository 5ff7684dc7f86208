"""Seeded fuzzing of the viewer's scan -> decode -> render -> tag path on damaged DICOM files.

Each case derives one file from a ``pydicom-data`` sample (random byte
flips, a truncation, or one hostile tag edit such as Rows 30000, Bits
Allocated 24, Window Width 1e400, Photometric "RGB" on grey data) and runs
it through what the viewer does with a file: ``scan_folder``, ``load_image``
(isolated as in the app), the render calls of the image view and the model
input, the window presets through ``DisplayState``, and the tag browser's
row formatting. Cases run in child processes (``viewer.io.subproc``), so a
crash or a hang of the whole path is counted, not fatal. Outcome classes:

- ok: shown (notes about ignored values allowed);
- problem-listed: the file is in Problems with a reason (scan or decode);
- crash: the case's process died; hang: it ran past ``--timeout``;
- uncaught exception: anything else raised on the viewer path;
- reason > 300 chars: a Problems reason longer than 300 characters;
- not generated: the mutation could not be written (not a viewer outcome).

Usage: ``python -m benchmarks.fuzz_viewer --n 10000 --seed 0 [--jobs 2] [--out table.md]``
(``make fuzz N=10000``). The same seed gives the same files.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MAX_SAMPLE_BYTES = 1_500_000
CLASSES = ("ok", "problem-listed", "crash", "hang", "uncaught exception", "reason > 300 chars",
           "not generated")

# One-tag edits: keyword -> values (hostile, odd, and ordinary ones).
TAG_EDITS: dict[str, list] = {
    "Rows": [0, 1, 2, 3, 17, 255, 4096, 30000, 65535],
    "Columns": [0, 1, 2, 3, 17, 255, 4096, 30000, 65535],
    "BitsAllocated": [0, 1, 8, 12, 16, 24, 32, 48, 64],
    "BitsStored": [0, 1, 7, 8, 12, 16, 24, 32, 64],
    "HighBit": [0, 7, 11, 15, 31, 63],
    "PixelRepresentation": [0, 1, 2],
    "SamplesPerPixel": [0, 1, 2, 3, 4, 255],
    "PlanarConfiguration": [0, 1, 2],
    "NumberOfFrames": ["0", "1", "2", "7", "100000", "-1", "999999999"],
    "PhotometricInterpretation": ["MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR",
                                  "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "ARGB", "BOGUS", ""],
    "WindowWidth": ["1e400", "-1e400", "nan", "inf", "0", "-5", "1e-300", "abc", "1\\2\\3", ""],
    "WindowCenter": ["1e400", "nan", "-inf", "abc", "1e38", ""],
    "RescaleSlope": ["1e400", "0", "nan", "-1", "1e-30", "abc"],
    "RescaleIntercept": ["1e400", "-1e400", "nan", "-1024"],
    "PixelSpacing": ["0\\0", "1e400\\1", "-1\\-1", "nan\\nan"],
}
SYNTAXES = ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
            "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
            "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.3.4.5"]


def samples(data_dir: Path) -> list[Path]:
    """The pydicom-data files small enough to fuzz quickly, sorted (stable across runs)."""
    return sorted(p for p in data_dir.iterdir()
                  if p.is_file() and p.stat().st_size <= MAX_SAMPLE_BYTES)


def case_spec(seed: int, index: int, sample_names: list[str]) -> dict:
    """The mutation of case ``index`` (derived from ``seed`` and ``index`` only)."""
    rng = random.Random(f"{seed}:{index}")
    spec = {"index": index, "sample": rng.choice(sample_names), "rng": rng.random()}
    kind = rng.choices(["flip", "truncate", "tag", "syntax"], weights=[35, 20, 40, 5])[0]
    spec["kind"] = kind
    if kind == "tag":
        keyword = rng.choice(sorted(TAG_EDITS))
        spec.update(keyword=keyword, value=rng.choice(TAG_EDITS[keyword]))
    elif kind == "syntax":
        spec.update(keyword="TransferSyntaxUID", value=rng.choice(SYNTAXES))
    return spec


def describe(spec: dict) -> str:
    """``"SC_rgb.dcm, Rows=30000"``-style label of a case."""
    kind = spec["kind"]
    what = (f"{spec['keyword']}={spec['value']!s:.24}" if kind in ("tag", "syntax")
            else spec.get("detail", kind))
    return f"{spec['sample']}, {what}"


# --- the case runner (child process) --------------------------------------------

def _mutate(spec: dict, source: Path, target: Path) -> str:
    """Write the mutated file; returns a short description of what was done."""
    rng = random.Random(spec["rng"])
    data = bytearray(source.read_bytes())
    if spec["kind"] == "flip":
        count = rng.randint(1, 16)
        head = min(len(data), 4096)
        for _ in range(count):
            pos = rng.randrange(head) if rng.random() < 0.5 else rng.randrange(len(data))
            data[pos] = rng.randrange(256)
        target.write_bytes(bytes(data))
        return f"{count} byte(s) changed"
    if spec["kind"] == "truncate":
        size = rng.randrange(len(data))
        target.write_bytes(bytes(data[:size]))
        return f"truncated to {size} of {len(data)} bytes"
    return _edit_tag(source, target, spec["keyword"], spec["value"])


def _edit_tag(source: Path, target: Path, keyword: str, value) -> str:
    import pydicom
    from pydicom import config

    config.settings.writing_validation_mode = config.IGNORE
    config.settings.reading_validation_mode = config.IGNORE
    ds = pydicom.dcmread(source, force=True)
    if keyword == "TransferSyntaxUID":
        ds.file_meta.TransferSyntaxUID = value
    else:
        setattr(ds, keyword, value)
    ds.save_as(target, enforce_file_format=False)
    return f"{keyword}={value}"


def _format_tags(path: Path) -> None:
    """What the tag browser does: read the header, format every row (guarded per element)."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - the browser shows a read error; not an uncaught failure
        return
    try:
        from viewer.qt.tag_rows import dataset_rows
    except ImportError:
        for elem in ds.iterall():
            str(elem)
        return
    dataset_rows(ds)


def _render(image) -> list[str]:
    """The image view's and the model's render calls; returns notes."""
    from viewer.model.display import DisplayState
    from viewer.render import (data_range, default_display_uint8, display_range,
                               downsample_for_display, pixel_value_at, render_display,
                               window_presets)

    small = render_display(image, None, False, None, 1024)
    downsample_for_display(small, 96)
    default_display_uint8(image)
    data_range(image)
    display_range(image)
    state = DisplayState()
    for preset in window_presets(image)[:3]:
        state.set_window(preset.center, preset.width)
        render_display(image, (state.window_center, state.window_width), True, None, 1024)
    rows, cols = image.shape
    pixel_value_at(image, rows // 2, cols // 2)
    _ = image.modality
    return list(image.notes)


def run_case(spec: dict, stage) -> dict:
    """Worker entry point: generate, then scan -> decode -> render -> tags; classify."""
    from viewer.io.decode import DecodeError, load_image
    from viewer.io.scan import scan_folder

    data_dir = Path(spec["data_dir"])
    with tempfile.TemporaryDirectory(prefix="cxrclip-fuzz-") as tmp:
        path = Path(tmp) / spec["sample"]
        stage("generate")
        try:
            detail = _mutate(spec, data_dir / spec["sample"], path)
        except Exception as exc:  # noqa: BLE001 - the mutation could not be written
            return {"outcome": "not generated", "detail": f"{type(exc).__name__}: {exc}"[:200]}
        reasons, notes, outcome = [], [], "ok"
        stage("scan")
        result = scan_folder(path)
        reasons += [p.reason for p in result.problems]
        for view in result.studies.views():
            stage("decode")
            try:
                image = load_image(view)
            except DecodeError as exc:
                reasons.append(str(exc))
                continue
            stage("render")
            try:
                notes += _render(image)
            except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
                return _uncaught("render", exc, detail)
        stage("tags")
        try:
            _format_tags(path)
        except Exception as exc:  # noqa: BLE001
            return _uncaught("tag browser", exc, detail)
    if any(len(r) > 300 for r in reasons):
        outcome = "reason > 300 chars"
    elif reasons:
        outcome = "problem-listed"
    example = reasons[0] if reasons else (notes[0] if notes else "")
    return {"outcome": outcome, "detail": detail, "example": example[:400],
            "longest": max((len(r) for r in reasons), default=0)}


def _uncaught(where: str, exc: Exception, detail: str) -> dict:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return {"outcome": "uncaught exception", "detail": detail,
            "example": f"{where}: {type(exc).__name__}: {text}"}


# --- the parent ---------------------------------------------------------------------

def run(n: int, seed: int, jobs: int, timeout: float, data_dir: Path,
        progress=None) -> tuple[Counter, dict, float]:
    """Run ``n`` cases on ``jobs`` runner processes; returns (counts, examples, seconds)."""
    from viewer.io.subproc import TaskError, WorkerFailed, WorkerPool

    os.environ.setdefault("CXRCLIP_DECODE_WORKERS", "1")
    names = [p.name for p in samples(data_dir)]
    runners = WorkerPool("benchmarks.fuzz_viewer:run_case", jobs, None, max_requests=400)
    counts: Counter = Counter()
    examples: dict[str, str] = {}
    lock = threading.Lock()
    done = [0]

    def one(index: int) -> None:
        spec = case_spec(seed, index, names)
        spec["data_dir"] = str(data_dir)
        try:
            reply = runners.call(spec, timeout)
        except WorkerFailed as exc:
            reply = {"outcome": "hang" if exc.what.startswith("stopped") else "crash",
                     "example": str(exc), "detail": ""}
        except TaskError as exc:
            reply = {"outcome": "uncaught exception", "example": f"runner: {exc}", "detail": ""}
        spec["detail"] = reply.get("detail") or spec["kind"]
        with lock:
            counts[reply["outcome"]] += 1
            examples.setdefault(reply["outcome"],
                                f"{describe(spec)} → {reply.get('example', '')}")
            done[0] += 1
            if progress is not None:
                progress(done[0], n)

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(jobs) as threads:
            list(threads.map(one, range(n)))
    finally:
        runners.close()
    return counts, examples, time.perf_counter() - start


def table(counts: Counter, examples: dict, n: int, seed: int, seconds: float) -> str:
    """The markdown table of outcome classes."""
    lines = [f"Fuzzing {n:,} files derived from pydicom-data (seed {seed}), "
             f"{seconds / 60:.1f} min:", "",
             "| class | count | example |", "|---|---:|---|"]
    for name in CLASSES:
        example = examples.get(name, "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {name} | {counts.get(name, 0):,} | {example[:300]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of files (cases)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="parallel case runners")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per case (hang)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args(argv)
    import data_store

    data_dir = Path(data_store.__file__).resolve().parent / "data"

    def progress(done: int, total: int) -> None:
        if done % 250 == 0 or done == total:
            print(f"{done}/{total}", file=sys.stderr, flush=True)

    counts, examples, seconds = run(args.n, args.seed, args.jobs, args.timeout, data_dir,
                                    progress)
    text = table(counts, examples, args.n, args.seed, seconds)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    bad = sum(counts.get(k, 0) for k in ("crash", "hang", "uncaught exception",
                                         "reason > 300 chars"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
