"""Request bookkeeping for the engine worker, free of Qt.

- `Generations`: one counter per topic ("study", "prompt", ...). Every new
  request bumps its topic; a result is applied only if its generation is still
  the current one, so results for a closed study or an old prompt are dropped.
- `LatestQueue`: the worker's inbox. Jobs carry a key; a new job replaces a
  queued job with the same key (typing fast never builds a backlog), and the
  worker takes jobs in submission order, blocking while empty.
- `Debounce`: decides when a burst of edits has settled (used with a Qt timer,
  but the rule is plain so it is tested without Qt).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class Generations:
    """Per-topic request counters; thread-safe."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()

    def bump(self, topic: str) -> int:
        """Start a new generation for ``topic`` and return it (older ones become stale)."""
        with self._lock:
            self._counters[topic] = self._counters.get(topic, 0) + 1
            return self._counters[topic]

    def current(self, topic: str) -> int:
        """The latest generation of ``topic`` (0 before the first bump)."""
        with self._lock:
            return self._counters.get(topic, 0)

    def is_current(self, topic: str, generation: int) -> bool:
        """True when ``generation`` is the latest of ``topic``."""
        return self.current(topic) == generation


@dataclass
class Job:
    """A unit of work for the worker: ``run()`` is called on the worker thread."""

    key: str
    run: Callable[[], Any]
    topic: str = ""
    generation: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


class QueueClosed(RuntimeError):
    """Raised by `LatestQueue.take` once the queue is closed and empty."""


class LatestQueue:
    """A blocking FIFO where a job replaces any queued job with the same key."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._cond = threading.Condition()
        self._closed = False
        self.replaced = 0

    def put(self, job: Job) -> None:
        """Queue ``job``; a queued job with the same key is dropped (it is stale)."""
        with self._cond:
            if self._closed:
                raise QueueClosed(f"cannot queue job {job.key!r}: the worker has stopped")
            if job.key in self._jobs:
                del self._jobs[job.key]
                self.replaced += 1
            self._jobs[job.key] = job
            self._cond.notify()

    def take(self, timeout: float | None = None) -> Job | None:
        """The oldest job; blocks while empty. None on timeout; `QueueClosed` once closed."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._jobs or self._closed, timeout):
                return None
            if not self._jobs:
                raise QueueClosed("worker queue closed")
            _, job = self._jobs.popitem(last=False)
            return job

    def discard(self, predicate: Callable[[Job], bool]) -> int:
        """Drop queued jobs matching ``predicate`` (e.g. all jobs of a closed study)."""
        with self._cond:
            stale = [k for k, j in self._jobs.items() if predicate(j)]
            for key in stale:
                del self._jobs[key]
            return len(stale)

    def close(self) -> None:
        """Wake the worker so it can exit; queued jobs are dropped."""
        with self._cond:
            self._closed = True
            self._jobs.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._jobs)


class Debounce:
    """Fire once edits have paused for ``delay_s``; each edit pushes the deadline back."""

    def __init__(self, delay_s: float) -> None:
        if delay_s < 0:
            raise ValueError(f"debounce delay must be >= 0 s, got {delay_s}")
        self.delay_s = delay_s
        self._deadline: float | None = None
        self._value: Any = None

    def push(self, value: Any, now: float) -> float:
        """Record an edit at time ``now``; returns the new deadline."""
        self._value = value
        self._deadline = now + self.delay_s
        return self._deadline

    def poll(self, now: float) -> tuple[bool, Any]:
        """(True, latest value) once the deadline has passed, then resets; else (False, None)."""
        if self._deadline is None or now < self._deadline:
            return False, None
        value, self._deadline, self._value = self._value, None, None
        return True, value

    @property
    def pending(self) -> bool:
        """True while an edit waits for its deadline."""
        return self._deadline is not None
