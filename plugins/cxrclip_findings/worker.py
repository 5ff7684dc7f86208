"""The plugin's single engine thread: jobs run one at a time, results come back by signal.

One dedicated `QThread` drains a `LatestQueue`, so model calls are serialised
and a newer request of the same kind replaces a queued older one. Results are
emitted as `JobResult` through ``finished``; Qt queues the signal to the UI
thread, where the controller checks the job's generation and drops stale ones.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QThread, Signal

from plugins.cxrclip_findings.requests import Job, LatestQueue, QueueClosed

log = logging.getLogger(__name__)


@dataclass
class JobResult:
    """Outcome of one job: its value or the exception it raised, and its run time."""

    job: Job
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0


class EngineWorker(QThread):
    """Runs jobs from a coalescing queue on one thread; ``busy`` tells when it works."""

    finished_job = Signal(object)
    busy = Signal(bool)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.queue = LatestQueue()
        self.stopping = threading.Event()  # long jobs (model warm-up) check it and end early
        self.setObjectName("cxrclip-engine")

    def submit(self, job: Job) -> None:
        """Queue ``job`` (replacing a queued job with the same key); starts the thread once."""
        self.queue.put(job)
        if not self.isRunning():
            self.start()

    def run(self) -> None:  # noqa: D401 - QThread entry point
        """Take and run jobs until the queue is closed."""
        while True:
            try:
                job = self.queue.take(timeout=0.5)
            except QueueClosed:
                return
            if job is None:
                continue
            self.busy.emit(True)
            self.finished_job.emit(self._run_one(job))
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

    def stop(self, wait_ms: int = 5000) -> None:
        """Close the queue, ask a long job to end, and wait for the running job to finish."""
        self.stopping.set()
        self.queue.close()
        if self.isRunning() and not self.wait(wait_ms):
            log.warning("engine thread still busy %d ms after stop; the running job is left "
                        "to finish on its own", wait_ms)
