"""Scanning a folder in a worker, with progress and Cancel in the status bar, and the
background thumbnails of the other studies.

``scanned(path, ScanResult)`` and ``failed(path, exception)`` report the
latest scan only: a scan that a newer one (or Cancel) superseded is dropped.
``thumbnail_ready(view_id, uint8)`` delivers background thumbnails;
``thumbnail_failed(view, message)`` reports a file whose thumbnail could not be decoded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QProgressBar, QPushButton, QStatusBar

from viewer.io.scan import scan_folder
from viewer.model.study import Study, View
from viewer.qt.theme import icon
from viewer.qt.image_source import THUMB_SIZE, thumbnail
from viewer.qt.workers import CancelToken, run_in_pool
from viewer.render import render_display

MAX_BACKGROUND_THUMBS = 300
PRIORITY_THUMB = -10  # after the shown views


def thumbnail_job(view: View) -> np.ndarray:
    """Decode (isolated for compressed DICOM, see viewer.io.decode) and shrink; colour stays colour."""
    from viewer.io.decode import load_image

    return thumbnail(render_display(load_image(view), max_side=THUMB_SIZE))


class ScanLoader(QObject):
    """Runs `viewer.io.scan.scan_folder` in the pool; owns the progress bar and Cancel."""

    scanned = Signal(object, object)
    failed = Signal(object, object)
    thumbnail_ready = Signal(str, object)
    thumbnail_failed = Signal(object, str)

    def __init__(self, status_bar: QStatusBar) -> None:
        super().__init__(status_bar)
        self.status_bar = status_bar
        self.progress = QProgressBar(status_bar)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton(icon("mdi6.cancel"), "Cancel", status_bar)
        self.cancel_button.clicked.connect(self.cancel)
        status_bar.addPermanentWidget(self.progress)
        status_bar.addPermanentWidget(self.cancel_button)
        self._token: CancelToken | None = None
        self._gen = 0
        self._set_busy(False)

    def open_path(self, path: Path, busy_text: str) -> None:
        """Scan ``path`` (folder, recursive, or one file); a running scan is cancelled."""
        self.cancel(quiet=True)
        self._gen += 1
        gen, token = self._gen, CancelToken()
        self._token = token
        self._set_busy(True, busy_text)
        run_in_pool(lambda progress: scan_folder(path, progress=progress, cancel=token),
                    lambda result: self._done(gen, path, result),
                    lambda exc: self._failed(gen, path, exc),
                    lambda done, total: self._progress(gen, done, total))

    def cancel(self, quiet: bool = False) -> None:
        """Stop a running scan (its partial result is dropped)."""
        if self._token is None:
            return
        self._token.cancel()
        self._token = None
        self._gen += 1
        self._set_busy(False)
        if not quiet:
            self.status_bar.showMessage("Loading cancelled", 4000)

    def queue_thumbnails(self, studies: list[Study]) -> None:
        """Thumbnails of ``studies`` in the background (dropped when another scan starts)."""
        gen = self._gen
        for view in [v for s in studies for v in s.views()][:MAX_BACKGROUND_THUMBS]:
            def job(v: View = view) -> np.ndarray | None:
                return None if gen != self._gen else thumbnail_job(v)

            run_in_pool(job, lambda thumb, v=view: self._thumb(gen, v.view_id, thumb),
                        lambda exc, v=view: self._thumb_failed(gen, v, exc), priority=PRIORITY_THUMB)

    def _thumb(self, gen: int, view_id: str, thumb: np.ndarray | None) -> None:
        if gen == self._gen and thumb is not None:
            self.thumbnail_ready.emit(view_id, thumb)

    def _thumb_failed(self, gen: int, view: View, exc: BaseException) -> None:
        """A file of a study not on screen failed to decode: reported now, not when opened."""
        if gen == self._gen:
            self.thumbnail_failed.emit(view, str(exc))

    def _set_busy(self, busy: bool, text: str = "") -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)
            self.status_bar.showMessage(text)

    def _progress(self, gen: int, done: int, total: int) -> None:
        if gen == self._gen and total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat(f"{done}/{total} files")

    def _finish(self, gen: int) -> bool:
        if gen != self._gen:
            return False
        self._token = None
        self._set_busy(False)
        return True

    def _done(self, gen: int, path: Path, result) -> None:
        if self._finish(gen):
            self.scanned.emit(path, result)

    def _failed(self, gen: int, path: Path, exc: BaseException) -> None:
        if self._finish(gen):
            self.failed.emit(path, exc)
