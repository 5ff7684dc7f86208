"""Resized uint8 PNG cache so training never decodes full-size radiographs each epoch."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CacheJob:
    """Resize ``source`` so its shorter side is ``size`` (never upscaled) into ``target``."""

    source: Path
    target: Path
    size: int


@dataclass
class CacheReport:
    """Counts of one cache run; ``failed`` lists (source, reason), reason ``"TypeName: message"``."""

    written: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] | None = None


def read_gray_uint8(path: str | Path) -> np.ndarray:
    """Read an image file as 2-D uint8 (16-bit PNGs are rescaled, colour → luminance)."""
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I", "F"):
            arr = np.asarray(im, dtype=np.float32)
            lo, hi = float(arr.min()), float(arr.max())
            return ((arr - lo) * (255.0 / max(hi - lo, 1e-6))).astype(np.uint8)
        return np.asarray(im.convert("L"), dtype=np.uint8)


def resize_shorter(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side equals ``size`` (area interpolation); smaller images stay."""
    h, w = pixels.shape[:2]
    short = min(h, w)
    if short <= size:
        return pixels
    scale = size / short
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(pixels, new, interpolation=cv2.INTER_AREA)


def cache_one(job: CacheJob) -> tuple[str, str | None]:
    """Process one job; returns ('written'|'skipped'|'failed', reason). Writes atomically."""
    if job.target.is_file():
        return "skipped", None
    try:
        pixels = resize_shorter(read_gray_uint8(job.source), job.size)
        job.target.parent.mkdir(parents=True, exist_ok=True)
        tmp = job.target.with_name(job.target.stem + f".{os.getpid()}.tmp.png")
        if not cv2.imwrite(str(tmp), pixels):
            raise OSError(f"cv2.imwrite could not write {tmp}")
        os.replace(tmp, job.target)
    except (OSError, ValueError, cv2.error) as exc:
        return "failed", f"{type(exc).__name__}: {exc}"
    return "written", None


def build_cache(jobs: Iterable[CacheJob], workers: int = 0, progress: bool = False) -> CacheReport:
    """Run jobs with a process pool (``workers`` > 1) or inline; existing targets are skipped."""
    jobs = list(jobs)
    report = CacheReport(failed=[])
    if workers > 1 and len(jobs) > 1:
        with get_context("spawn").Pool(workers) as pool:
            results = list(_maybe_tqdm(pool.imap(cache_one, jobs, chunksize=16), len(jobs), progress))
    else:
        results = [cache_one(j) for j in _maybe_tqdm(jobs, len(jobs), progress)]
    for job, (status, reason) in zip(jobs, results):
        if status == "written":
            report.written += 1
        elif status == "skipped":
            report.skipped += 1
        else:
            report.failed.append((str(job.source), reason or ""))
            log.debug("could not cache %s: %s", job.source, reason)  # prepare summarises
    return report


def _maybe_tqdm(it, total: int, enabled: bool):
    if not enabled:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="image cache", unit="img")
