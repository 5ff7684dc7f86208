"""Dataset adapters: official layouts → study manifests + resized image cache.

Each adapter module has ``NAME`` and ``studies(root) -> Iterator[PreparedStudy]``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from training.data.image_cache import CacheJob, build_cache
from training.data.manifest import ManifestHeader, write_manifest

ADAPTERS = {"mimic": "training.data.adapters.mimic",
            "chexpert": "training.data.adapters.chexpert",
            "chestxray14": "training.data.adapters.chestxray14",
            "openi": "training.data.adapters.openi"}


@dataclass
class PrepareSummary:
    """What ``prepare`` did."""

    dataset: str
    out: str
    studies: int
    images_written: int
    images_skipped: int
    images_failed: int

    def __str__(self) -> str:
        return (f"{self.dataset}: {self.studies} studies → {self.out} (images written "
                f"{self.images_written}, already cached {self.images_skipped}, failed {self.images_failed})")


def prepare_dataset(name: str, root: str | Path, out: str | Path, size: int = 512, workers: int = 4,
                    limit: int | None = None, images: bool = True, progress: bool = True) -> PrepareSummary:
    """Read dataset ``name`` at ``root``, cache its images and write the manifest to ``out``."""
    if name not in ADAPTERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(ADAPTERS)}")
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"--root {root} is not a folder; point it at the downloaded {name} dataset")
    adapter = importlib.import_module(ADAPTERS[name])
    prepared = []
    for study in adapter.studies(root):
        prepared.append(study)
        if limit is not None and len(prepared) >= limit:
            break
    image_root = out / "images"
    jobs = [CacheJob(src, image_root / rel, size) for p in prepared
            for src, rel in zip(p.sources, p.record.images)]
    report = build_cache(jobs, workers=workers, progress=progress) if images else None
    failed = {src for src, _ in (report.failed if report else [])}
    records = [p.record for p in prepared if not failed.intersection(map(str, p.sources))]
    header = ManifestHeader(dataset=name, image_size=size, source=str(root.resolve()))
    write_manifest(out, header, records)
    return PrepareSummary(name, str(out), len(records), report.written if report else 0,
                          report.skipped if report else 0, len(failed))
