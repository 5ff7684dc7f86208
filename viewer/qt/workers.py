"""Run functions off the UI thread and get their results back on it.

`run_in_pool(fn, on_done, on_error)` queues ``fn`` on a QThreadPool; the
callbacks run on the UI thread (delivered through a QObject that lives there,
so the connection is queued). `CancelToken` lets long jobs stop early.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from viewer.io.priority import lower_thread_priority

log = logging.getLogger(__name__)


class CancelToken:
    """A thread-safe flag a worker polls (``token()`` or ``token.cancelled``)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once `cancel` was called."""
        return self._event.is_set()

    def __call__(self) -> bool:
        return self._event.is_set()


class _Relay(QObject):
    """Lives on the UI thread; its signals carry results from the worker back to it."""

    finished = Signal(object)
    failed = Signal(object)
    progress = Signal(int, int)

    def __init__(self, on_done: Callable[[Any], None] | None,
                 on_error: Callable[[BaseException], None] | None,
                 on_progress: Callable[[int, int], None] | None) -> None:
        super().__init__()
        self._on_done, self._on_error, self._on_progress = on_done, on_error, on_progress
        self.finished.connect(self._deliver_done)
        self.failed.connect(self._deliver_error)
        self.progress.connect(self._deliver_progress)

    def _deliver_done(self, result: Any) -> None:
        _PENDING.discard(self)
        if self._on_done is not None:
            self._on_done(result)

    def _deliver_error(self, exc: BaseException) -> None:
        _PENDING.discard(self)
        if self._on_error is not None:
            self._on_error(exc)
        else:
            log.error("background job failed: %s", exc, exc_info=exc)

    def _deliver_progress(self, done: int, total: int) -> None:
        if self._on_progress is not None:
            self._on_progress(done, total)


# Relays waiting for their job; kept here so Python does not collect them early.
_PENDING: set[_Relay] = set()


class _Job(QRunnable):
    def __init__(self, fn: Callable[..., Any], relay: _Relay, with_progress: bool) -> None:
        super().__init__()
        self._fn, self._relay, self._with_progress = fn, relay, with_progress
        self.setAutoDelete(True)

    def run(self) -> None:
        lower_thread_priority()  # pool threads do background work: the UI thread goes first
        try:
            result = self._fn(self._progress) if self._with_progress else self._fn()
        except BaseException as exc:  # noqa: BLE001 - pyo3 panics are BaseExceptions; report, never lose
            self._deliver(self._relay.failed, exc)
            return
        self._deliver(self._relay.finished, result)

    def _progress(self, done: int, total: int) -> None:
        self._deliver(self._relay.progress, done, total)

    @staticmethod
    def _deliver(signal, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the relay was deleted: the app is shutting down, drop the result
            log.debug("dropping a background result: receiver deleted")


def run_in_pool(fn: Callable[..., Any], on_done: Callable[[Any], None] | None = None,
                on_error: Callable[[BaseException], None] | None = None,
                on_progress: Callable[[int, int], None] | None = None,
                pool: QThreadPool | None = None, priority: int = 0) -> None:
    """Run ``fn()`` in a worker; ``on_done(result)`` / ``on_error(exc)`` run on the UI thread.

    With ``on_progress``, ``fn`` is called as ``fn(progress)`` where
    ``progress(done, total)`` may be called from the worker.
    Queued jobs with a higher ``priority`` start first. Must be called from
    the UI thread.
    """
    relay = _Relay(on_done, on_error, on_progress)
    _PENDING.add(relay)
    (pool or QThreadPool.globalInstance()).start(_Job(fn, relay, on_progress is not None), priority)


def pending_jobs() -> int:
    """Number of jobs whose results have not been delivered yet (tests wait on 0)."""
    return len(_PENDING)


def shutdown_pool(timeout_ms: int = 3000, pool: QThreadPool | None = None) -> bool:
    """Drop queued jobs and wait for running ones (call when the main window closes)."""
    pool = pool or QThreadPool.globalInstance()
    pool.clear()
    return pool.waitForDone(timeout_ms)
