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
from training.data.dataset import LOAD_ERRORS, EvalDataset
from training.data.image_cache import read_gray_uint8
from training.data.manifest import Manifest, StudyRecord

log = logging.getLogger(__name__)
CHUNK = 64


@dataclass
class SplitEmbeddings:
    """One embedding per readable study (its frontal view) and the matching records."""

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


def study_embeddings(engine: Engine, manifests: Sequence[Manifest], split: str) -> SplitEmbeddings:
    """The frontal view of every study of ``split`` (as `EvalDataset.pick_image` picks it)."""
    views, records, unreadable = [], [], 0
    for manifest in manifests:
        for record in manifest.split(split):
            view = _read(manifest, record, EvalDataset.pick_image(record))
            if view is None:
                unreadable += 1
                continue
            views.append(view)
            records.append(record)
    if not views and not unreadable:
        raise ValueError(f"no studies with split {split!r} in {[str(m.root) for m in manifests]}")
    return SplitEmbeddings(_vectors(engine, views)[0], records, unreadable)


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
