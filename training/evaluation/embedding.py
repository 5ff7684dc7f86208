"""Image embeddings of manifest studies through `cxrclip.Engine`, the viewer's own path.

Evaluation and calibration read each image as 8-bit grey (`read_gray_uint8`) and
embed it with `Engine.encode_views` (the engine's preprocessing and runtime), so
the numbers they report are the numbers the viewer computes for the same pixels.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from cxrclip.engine import Engine, ViewInput
from cxrclip.zero_shot import study_embedding
from training.data.dataset import LOAD_ERRORS, EvalDataset
from training.data.image_cache import read_gray_uint8
from training.data.manifest import Manifest, StudyRecord

log = logging.getLogger(__name__)
CHUNK = 64


VIEWS = ("frontal", "study")
"""What one study's embedding is: its frontal view (the paper's evaluation), or all its views
as the viewer scores them (`cxrclip.zero_shot.study_embedding`, ``aggregate="mean"``)."""


@dataclass
class SplitEmbeddings:
    """One embedding per readable study (see `VIEWS`) and the matching records."""

    embeddings: np.ndarray
    records: list[StudyRecord]
    unreadable: int


def _vectors(engine: Engine, views: list[ViewInput]) -> tuple[np.ndarray, np.ndarray]:
    """`Engine.image_vectors` of ``views`` in chunks, without filling the engine's LRU cache with them."""
    chunks = [engine.image_vectors([v.pixels for v in views[i:i + CHUNK]]) for i in range(0, len(views), CHUNK)]
    if not chunks:
        return engine.image_vectors([])
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def _read(manifest: Manifest, record: StudyRecord, relative: str) -> ViewInput | None:
    path = manifest.image_path(relative)
    try:
        return ViewInput(str(path), read_gray_uint8(path))
    except LOAD_ERRORS as exc:
        log.warning("image %s of %s unreadable: %s", path, record.study_id, exc)
        return None


def positioned_views(manifests: Sequence[Manifest], keep: Callable[[StudyRecord], bool]
                     ) -> Iterator[tuple[str | None, ViewInput]]:
    """(view position, readable view) of every image of the studies ``keep`` accepts."""
    for manifest in manifests:
        for record in manifest.records:
            if not keep(record):
                continue
            for relative, position in zip(record.images, record.view_positions):
                view = _read(manifest, record, relative)
                if view is not None:
                    yield position, view


def study_embeddings(engine: Engine, manifests: Sequence[Manifest], split: str,
                     views: str = "frontal") -> SplitEmbeddings:
    """One embedding per study of ``split``: its frontal view (as `EvalDataset.pick_image` picks
    it) or, with ``views="study"``, the viewer's study embedding of every readable view."""
    if views not in VIEWS:
        raise ValueError(f"views must be one of {list(VIEWS)}, got {views!r}")
    study_views, records, unreadable = [], [], 0
    for manifest in manifests:
        for record in manifest.split(split):
            chosen = [EvalDataset.pick_image(record)] if views == "frontal" else list(record.images)
            read = [v for v in (_read(manifest, record, rel) for rel in chosen) if v is not None]
            unreadable += len(chosen) - len(read)
            if read:
                study_views.append(read)
                records.append(record)
    if not study_views and not unreadable:
        raise ValueError(f"no studies with split {split!r} in {[str(m.root) for m in manifests]}")
    flat = _vectors(engine, [v for group in study_views for v in group])[0]
    bounds = np.cumsum([0] + [len(group) for group in study_views])
    if views == "study" and study_views:
        flat = np.stack([study_embedding(flat[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]).astype(np.float32)
    return SplitEmbeddings(flat, records, unreadable)


def all_view_vectors(engine: Engine, manifests: Sequence[Manifest], split: str | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """`Engine.image_vectors` (embeddings, mean feature maps) of every readable view (frontal
    and lateral) of ``split`` (all splits when None), for the out-of-distribution guard."""
    views = []
    for manifest in manifests:
        for record in manifest.records if split is None else manifest.split(split):
            views += [v for v in (_read(manifest, record, rel) for rel in record.images) if v is not None]
    if not views:
        raise ValueError(f"no readable images (split {split!r}) in {[str(m.root) for m in manifests]}")
    return _vectors(engine, views)
