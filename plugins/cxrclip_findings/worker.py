"""The plugin's single engine thread: jobs run one at a time, results come back by signal.

One dedicated thread drains a `LatestQueue`, so model calls are serialised and
a newer request of the same kind replaces a queued older one. Results are
emitted as `JobResult` through ``finished_job``; the worker object lives on the
UI thread, so Qt queues the signal there, where the controller checks the
job's generation and drops stale ones.

The thread is a daemon Python thread, not a QThread: a job that cannot be
interrupted (importing torch, loading a model, one forward pass) must never
keep the application alive after the user quits. `stop` closes the queue, asks
long jobs to end (``stopping``) and waits briefly, once; a job still running
after that is abandoned with the process.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from plugins.cxrclip_findings.requests import Job, LatestQueue, QueueClosed
from viewer.io.priority import lower_thread_priority

log = logging.getLogger(__name__)
STOP_WAIT_MS = 1000


@dataclass
class JobResult:
    """Outcome of one job: its value or the exception it raised, and its run time."""

    job: Job
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0


class EngineWorker(QObject):
    """Runs jobs from a coalescing queue on one thread; ``busy`` tells when it works."""

    finished_job = Signal(object)
    busy = Signal(bool)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.queue = LatestQueue()
        self.stopping = threading.Event()  # long jobs (model warm-up) check it and end early
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def submit(self, job: Job) -> None:
        """Queue ``job`` (replacing a queued job with the same key); starts the thread once."""
        self.queue.put(job)
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self.run, name="cxrclip-engine",
                                                daemon=True)
                self._thread.start()

    def isRunning(self) -> bool:  # noqa: N802 - the QThread name callers know
        """True while the engine thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        """Take and run jobs until the queue is closed (at a lower CPU priority than the UI
        thread; the ONNX Runtime threads it creates inherit it)."""
        lower_thread_priority()
        while True:
            try:
                job = self.queue.take(timeout=0.5)
            except QueueClosed:
                return
            if job is None:
                continue
            self.busy.emit(True)
            result = self._run_one(job)
            if self.stopping.is_set():
                return
            self.finished_job.emit(result)
            if len(self.queue) == 0:
                self.busy.emit(False)

    @staticmethod
    def _run_one(job: Job) -> JobResult:
        start = time.perf_counter()
        try:
            value = job.run()
        except Exception as exc:  # a job failure is reported to the panel, never kills the thread
            log.warning("job %s failed: %s: %s", job.key, type(exc).__name__, exc)
            log.debug("job %s traceback", job.key, exc_info=True)
            return JobResult(job, error=exc, seconds=time.perf_counter() - start)
        return JobResult(job, value, seconds=time.perf_counter() - start)

    def stop(self, wait_ms: int = STOP_WAIT_MS) -> None:
        """Close the queue, ask a long job to end, and wait up to ``wait_ms`` once for the
        running job; later calls return at once."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.queue.close()
        thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(wait_ms / 1000)
            if thread.is_alive():
                log.info("engine job still running at exit; it ends with the process")
