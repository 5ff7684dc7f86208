"""A persistent child Python process that runs one function per request, and a pool of them.

Untrusted work (decoding pixel data with native decoders) runs here so that a
crash (SIGABRT, SIGSEGV), a pyo3 panic, an allocation failure or a hang
costs one failed request, not the caller's process. The child is started
with ``python -m viewer.io.subproc module:function`` (no fork of a Qt
process, no re-import of the caller's ``__main__``), talks through its
stdin/stdout pipes in length-prefixed pickle frames, and runs under an
address-space limit. The parent enforces a wall-clock limit per request and
reports which *stage* (e.g. which decoder) the child was in when it died.

Protocol: parent -> child ``payload``; child -> parent any number of
``("stage", name)`` frames, then ``("ok", result)`` or ``("error", text)``.
"""
from __future__ import annotations

import importlib
import os
import pickle
import queue
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from viewer.io.priority import lower_process_priority

_HEADER = struct.Struct("<Q")
_MAX_FRAME = 1 << 30
_PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class WorkerFailed(RuntimeError):
    """The child died or ran out of time; ``stage`` says what it was doing."""

    def __init__(self, what: str, stage: str, detail: str = "") -> None:
        super().__init__(f"{what} during {stage}" + (f" ({detail})" if detail else ""))
        self.what, self.stage, self.detail = what, stage, detail
        self.stderr = ""  # the child's last words, for the log


class TaskError(RuntimeError):
    """The function raised in the child; the message is its (already short) text."""


def _signal_name(returncode: int) -> str:
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


class Worker:
    """One child process running ``target`` (``"package.module:function"``) per request."""

    def __init__(self, target: str, memory_bytes: int | None = None) -> None:
        self.target = target
        self.requests = 0
        self._log = tempfile.TemporaryFile(prefix="cxrclip-worker-")
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
                   MKL_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
                       [_PROJECT_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "viewer.io.subproc", target, str(memory_bytes or 0)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env,
            close_fds=True)

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def call(self, payload: Any, timeout: float,
             on_stage: Callable[[str], None] | None = None) -> Any:
        """Run one request; raises TaskError (function raised) or WorkerFailed (child lost)."""
        self.requests += 1
        stage = "start-up"
        deadline = time.monotonic() + timeout  # the limit counts from the request, however late we read
        try:
            _write_frame(self._proc.stdin, pickle.dumps(payload, protocol=5))
        except (BrokenPipeError, OSError):
            raise self._failure("worker exited", stage) from None
        while True:
            frame = _read_frame(self._proc.stdout, deadline)
            if frame is None and time.monotonic() >= deadline:
                frame = self._sent_frame()  # read late: what the child sent in time still counts
                if frame is None:
                    self.kill()
                    raise WorkerFailed(f"stopped after {timeout:g} s", stage)
            elif frame is None:
                raise self._failure("crashed", stage)
            kind, value = pickle.loads(frame)
            if kind == "stage":
                stage = value
                if on_stage is not None:
                    on_stage(value)
            elif kind == "ok":
                return value
            else:
                raise TaskError(value)

    def _sent_frame(self) -> bytes | None:
        """A frame the child has already written (None when nothing is waiting): after the
        time limit, its reply or its latest stage is read rather than lost."""
        stream = self._proc.stdout
        if not select.select([stream.fileno()], [], [], 0)[0]:
            return None
        return _read_frame(stream, time.monotonic() + 0.05)

    def _failure(self, what: str, stage: str) -> WorkerFailed:
        try:
            code = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self._proc.returncode
        return WorkerFailed(what, stage, _signal_name(code if code is not None else 0))

    def stderr_tail(self, limit: int = 2000) -> str:
        """Last ``limit`` bytes the child wrote to stderr (for logs, not for users)."""
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - limit))
        return self._log.read().decode("utf-8", "replace")

    def kill(self) -> None:
        """Stop the child now (SIGKILL) and reap it."""
        if self._proc.poll() is None:
            self._proc.kill()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        """Ask the child to exit (end of input); kill it if it does not."""
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()
        self._proc.stdout.close()
        self._log.close()


class WorkerPool:
    """Up to ``size`` workers shared by threads; a dead or timed-out worker is replaced."""

    def __init__(self, target: str, size: int = 2, memory_bytes: int | None = None,
                 max_requests: int = 500) -> None:
        self.target, self.size, self.memory_bytes = target, size, memory_bytes
        self.max_requests = max_requests
        self._idle: queue.LifoQueue[Worker] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._all: list[Worker] = []
        self.restarts = 0

    def start(self, count: int | None = None) -> None:
        """Start workers now (so the first request does not pay the start-up)."""
        with self._lock:
            missing = min(count or self.size, self.size) - len(self._all)
            for _ in range(max(0, missing)):
                worker = Worker(self.target, self.memory_bytes)
                self._all.append(worker)
                self._idle.put(worker)

    def call(self, payload: Any, timeout: float,
             on_stage: Callable[[str], None] | None = None) -> Any:
        """Run ``payload`` on a free worker (waits for one); see `Worker.call`."""
        with self._slots:
            worker = self._take()
            try:
                return worker.call(payload, timeout, on_stage)
            except WorkerFailed as exc:
                exc.stderr = worker.stderr_tail()  # e.g. "free(): double free detected"
                self._drop(worker)
                worker = None
                raise
            finally:
                if worker is not None:
                    self._give_back(worker)

    def _take(self) -> Worker:
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                worker = Worker(self.target, self.memory_bytes)
                with self._lock:
                    self._all.append(worker)
                return worker
            if worker.alive:
                return worker
            self._drop(worker)

    def _give_back(self, worker: Worker) -> None:
        if worker.requests >= self.max_requests:
            self._drop(worker)
            return
        self._idle.put(worker)

    def _drop(self, worker: Worker) -> None:
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
                self.restarts += 1
        worker.kill()
        worker.close()

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            worker.close()
        while not self._idle.empty():
            self._idle.get_nowait()


# --- framing ----------------------------------------------------------------

def _write_frame(stream, data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_frame(stream, deadline: float | None) -> bytes | None:
    """One frame, or None at end of stream / past ``deadline``."""
    fd = stream.fileno()
    head = _read_exact(fd, _HEADER.size, deadline)
    if head is None:
        return None
    (size,) = _HEADER.unpack(head)
    if size > _MAX_FRAME:
        return None
    return _read_exact(fd, size, deadline)


# --- child side ---------------------------------------------------------------

def _limit_memory(memory_bytes: int) -> None:
    if memory_bytes <= 0:
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _child_main(target: str, memory_bytes: int) -> int:
    """Serve requests until the parent closes stdin."""
    out = os.fdopen(os.dup(1), "wb")  # protocol channel; fd 1 now goes to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inp = os.fdopen(os.dup(0), "rb")
    module, _, name = target.partition(":")
    lower_process_priority()  # decoding is background work: the viewer's UI thread goes first
    function = getattr(importlib.import_module(module), name)
    _limit_memory(memory_bytes)

    def stage(text: str) -> None:
        _write_frame(out, pickle.dumps(("stage", text)))

    while True:
        frame = _read_frame(inp, None)
        if frame is None:
            return 0
        try:
            reply = ("ok", function(pickle.loads(frame), stage))
        except BaseException as exc:  # noqa: BLE001 - pyo3 PanicException is a BaseException
            reply = ("error", _error_text(exc))
        _write_frame(out, pickle.dumps(reply, protocol=5))


def _error_text(exc: BaseException) -> str:
    """A DecodeError's message as it is (already short); anything else as ``Type: first line``."""
    from viewer.io.messages import DecodeError, clip, first_line

    return clip(str(exc)) if isinstance(exc, DecodeError) else first_line(exc, 300)


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1], int(sys.argv[2])))
