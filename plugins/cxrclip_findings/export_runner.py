"""Exports off the UI thread: one export at a time on a one-thread pool, with progress/cancel.

Building a DICOM SR takes seconds the first time (highdicom is imported then,
and loads its templates) and about a second after, so it never runs on the UI
thread. The export function gets a ``progress(text)`` callback; once the user
cancels, the next call raises `ExportCancelled` and the export ends before its file is
renamed into place (writes are atomic), so a cancelled export leaves nothing.
A progress dialog with Cancel appears only when the export lasts over 0.5 s.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtWidgets import QProgressDialog

log = logging.getLogger(__name__)
SHOW_AFTER_MS = 500
ExportFn = Callable[[Callable[[str], None]], Path]


class ExportCancelled(Exception):
    """The user cancelled the export."""


class _Signals(QObject):
    progress = Signal(str)
    done = Signal(object, float)  # path, seconds
    failed = Signal(object)


class _Task(QRunnable):
    def __init__(self, fn: ExportFn, cancel: threading.Event, signals: _Signals) -> None:
        super().__init__()
        self.fn, self.cancel, self.signals = fn, cancel, signals
        self.setAutoDelete(True)

    def _progress(self, text: str) -> None:
        if self.cancel.is_set():
            raise ExportCancelled("export cancelled")
        self.signals.progress.emit(text)

    def run(self) -> None:  # noqa: D401 - QRunnable entry point
        start = time.perf_counter()
        try:
            path = self.fn(self._progress)
            if self.cancel.is_set():  # cancelled while the file was being renamed in: remove it
                Path(path).unlink(missing_ok=True)
                raise ExportCancelled("export cancelled")
        except Exception as exc:  # any failure goes back to the UI as a message
            if not isinstance(exc, (ExportCancelled, ValueError, OSError)):
                log.warning("export failed", exc_info=True)
            self.signals.failed.emit(exc)
            return
        self.signals.done.emit(path, time.perf_counter() - start)


class ExportRunner(QObject):
    """Runs one export at a time in the background; ``finished(path, seconds)`` or
    ``failed(message)`` come back on the UI thread."""

    finished = Signal(object, float)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, parent_widget: Callable[[], Any] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._parent_widget = parent_widget or (lambda: None)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.pool.setExpiryTimeout(2000)  # an idle export thread goes away, it never holds exit
        self._cancel: threading.Event | None = None
        self._signals: _Signals | None = None
        self.dialog: QProgressDialog | None = None

    @property
    def busy(self) -> bool:
        """True while an export runs."""
        return self._cancel is not None

    def start(self, title: str, fn: ExportFn) -> bool:
        """Run ``fn(progress)`` in the background; False (nothing started) while one runs."""
        if self.busy:
            return False
        self._cancel = threading.Event()
        self._signals = signals = _Signals()
        signals.progress.connect(self._progress)
        signals.done.connect(self._done)
        signals.failed.connect(self._failed)
        self.dialog = self._make_dialog(title)
        self.pool.start(_Task(fn, self._cancel, signals))
        return True

    def _make_dialog(self, title: str) -> QProgressDialog:
        dialog = QProgressDialog(title, "Cancel", 0, 0, self._parent_widget())
        dialog.setWindowTitle("Export")
        dialog.setWindowModality(Qt.WindowModality.NonModal)  # the viewer stays usable
        dialog.setMinimumDuration(SHOW_AFTER_MS)
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        dialog.canceled.connect(self.cancel)
        return dialog

    def cancel(self) -> None:
        """Ask the running export to stop at its next step."""
        if self._cancel is not None:
            self._cancel.set()

    def _progress(self, text: str) -> None:
        if self.dialog is not None:
            self.dialog.setLabelText(text)

    def _end(self) -> None:
        self._cancel, self._signals = None, None
        if self.dialog is not None:
            self.dialog.canceled.disconnect(self.cancel)
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None

    def _done(self, path: Path, seconds: float) -> None:
        self._end()
        self.finished.emit(path, seconds)

    def _failed(self, exc: BaseException) -> None:
        self._end()
        if isinstance(exc, ExportCancelled):
            self.cancelled.emit()
        else:
            self.failed.emit(f"{exc}" if isinstance(exc, (ValueError, OSError))
                             else f"{type(exc).__name__}: {exc}")

    def shutdown(self, wait_ms: int = 3000) -> None:
        """Cancel a running export and wait for the thread to end (app closing)."""
        self.cancel()
        self.pool.waitForDone(wait_ms)
