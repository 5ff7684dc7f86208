"""Small thumbnails of search results, decoded off the UI thread and kept in a bounded cache.

A result's matching view is a file somewhere in the archive, not part of the
open study: its header is read and its pixels decoded with the viewer's own
rules (`viewer.io.scan` + `viewer.qt.scan_loader.thumbnail_job`: compressed
DICOM in an isolated worker process) in the viewer's thread pool. ``ready(path)``
fires on the UI thread when a thumbnail arrives; `get` then returns it.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QPixmap

from viewer.qt.image_source import to_qimage
from viewer.qt.workers import run_in_pool

log = logging.getLogger(__name__)
THUMB_SIDE = 72
CACHE_SIZE = 256
PRIORITY = -20  # after the viewer's own thumbnails


def decode_thumbnail(path: Path) -> np.ndarray:
    """Read one file's header and pixels the way the viewer does; uint8, longest side small."""
    from viewer.io.scan import scan_files
    from viewer.qt.scan_loader import thumbnail_job

    result = scan_files([path])
    views = [v for s in result.studies.studies() for v in s.views()]
    if not views:
        reason = result.problems[0].reason if result.problems else "not an image the viewer reads"
        raise ValueError(f"{path.name}: {reason}")
    return thumbnail_job(views[0])


class ThumbnailCache(QObject):
    """Least-recently-used thumbnails by file path; failures are remembered, not retried."""

    ready = Signal(str)

    def __init__(self, side: int = THUMB_SIDE, size: int = CACHE_SIZE,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.side, self.size = side, size
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._pending: set[str] = set()
        self.failed: dict[str, str] = {}

    def get(self, path: str | Path) -> QPixmap | None:
        """The cached thumbnail of ``path``, or None (then it is being decoded, or failed)."""
        key = str(path)
        pixmap = self._pixmaps.get(key)
        if pixmap is not None:
            self._pixmaps.move_to_end(key)
            return pixmap
        if key not in self._pending and key not in self.failed:
            self._pending.add(key)
            run_in_pool(lambda: decode_thumbnail(Path(key)), lambda arr: self._done(key, arr),
                        lambda exc: self._failed(key, exc), priority=PRIORITY)
        return None

    def _done(self, key: str, arr: np.ndarray) -> None:
        self._pending.discard(key)
        pixmap = QPixmap.fromImage(to_qimage(arr)).scaled(
            self.side, self.side, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation)
        self._pixmaps[key] = pixmap
        while len(self._pixmaps) > self.size:
            self._pixmaps.popitem(last=False)
        self.ready.emit(key)

    def _failed(self, key: str, exc: BaseException) -> None:
        self._pending.discard(key)
        self.failed[key] = str(exc)
        log.info("search thumbnail failed: %s", exc)
        self.ready.emit(key)

    def __len__(self) -> int:
        return len(self._pixmaps)
