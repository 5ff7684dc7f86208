"""Dataset adapters: official layouts → study manifests + resized image cache.

Each adapter module has ``NAME`` and ``studies(root, images=True) -> Iterator[PreparedStudy]``;
with ``images=False`` (``prepare --no-images``) an adapter does not look at image files.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from training.data.image_cache import CacheJob, CacheReport, build_cache
from training.data.manifest import ManifestHeader, write_manifest

log = logging.getLogger(__name__)

ADAPTERS = {"mimic": "training.data.adapters.mimic",
            "chexpert": "training.data.adapters.chexpert",
            "chestxray14": "training.data.adapters.chestxray14",
            "openi": "training.data.adapters.openi"}
# More than this share of the images failing means a wrong --root or a partial download,
# not a few bad files: prepare stops before writing the manifest (exit status 2).
MAX_FAILED_FRACTION = 0.5
EXAMPLES_SHOWN = 5


class ImagesMissing(RuntimeError):
    """Most images of a ``prepare`` run could not be read; the message says what to do."""


@dataclass
class PrepareSummary:
    """What ``prepare`` did."""

    dataset: str
    out: str
    studies: int
    images_written: int
    images_skipped: int
    images_failed: int
    failed_examples: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (f"{self.dataset}: {self.studies} studies → {self.out} (images written "
                f"{self.images_written}, already cached {self.images_skipped}, failed {self.images_failed})")
        if self.failed_examples:
            text += f"; studies of failed images left out, e.g. {', '.join(self.failed_examples)}"
        return text


def _failure_text(report: CacheReport, total: int) -> str:
    failed = report.failed or []
    missing = sum(1 for _, reason in failed if reason.startswith("FileNotFoundError"))
    shown = ", ".join(src for src, _ in failed[:EXAMPLES_SHOWN])
    more = f" and {len(failed) - EXAMPLES_SHOWN} more" if len(failed) > EXAMPLES_SHOWN else ""
    first_reason = failed[0][1] if failed else ""
    return (f"{len(failed)} of {total} images could not be cached ({missing} missing, "
            f"{len(failed) - missing} unreadable): {shown}{more}; first reason: {first_reason}")


def _check_failures(name: str, root: Path, report: CacheReport, total: int) -> None:
    """Log one summary line; raise ImagesMissing when more than MAX_FAILED_FRACTION failed."""
    failed = len(report.failed or [])
    if not failed:
        return
    text = _failure_text(report, total)
    if failed > MAX_FAILED_FRACTION * total:
        raise ImagesMissing(
            f"{text}. More than {MAX_FAILED_FRACTION:.0%} of the images failed, so no manifest was "
            f"written. Check that --root {root} is the {name} folder as downloaded (with its image "
            "folders), or pass --no-images to write the manifest without caching images; images "
            "already cached are kept and skipped on the next run.")
    log.warning("%s; their studies are left out of the manifest", text)


def prepare_dataset(name: str, root: str | Path, out: str | Path, size: int = 512, workers: int = 4,
                    limit: int | None = None, images: bool = True, progress: bool = True) -> PrepareSummary:
    """Read dataset ``name`` at ``root``, cache its images and write the manifest to ``out``.

    Raises ``ImagesMissing`` (nothing written but the cached images) when more than
    ``MAX_FAILED_FRACTION`` of the images cannot be read.
    """
    if name not in ADAPTERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(ADAPTERS)}")
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"--root {root} is not a folder; point it at the downloaded {name} dataset")
    adapter = importlib.import_module(ADAPTERS[name])
    prepared = []
    for study in adapter.studies(root, images=images):
        prepared.append(study)
        if limit is not None and len(prepared) >= limit:
            break
    image_root = out / "images"
    jobs = [CacheJob(src, image_root / rel, size) for p in prepared
            for src, rel in zip(p.sources, p.record.images)]
    report = build_cache(jobs, workers=workers, progress=progress) if images else CacheReport(failed=[])
    _check_failures(name, root, report, len(jobs))
    failed = {src for src, _ in report.failed or []}
    records, left_out = [], []
    for p in prepared:
        (left_out if failed.intersection(map(str, p.sources)) else records).append(p.record)
    header = ManifestHeader(dataset=name, image_size=size, source=str(root.resolve()))
    write_manifest(out, header, records)
    return PrepareSummary(name, str(out), len(records), report.written, report.skipped, len(failed),
                          [r.study_id for r in left_out[:EXAMPLES_SHOWN]])
