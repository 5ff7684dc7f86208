"""The worker processes behind load_image: real crashes, panics, hangs and memory limits."""
from __future__ import annotations

import time

import pytest

from viewer.io.subproc import TaskError, Worker, WorkerFailed, WorkerPool

TASKS = "tests.viewer.crash_tasks"


def test_abort_in_worker_names_stage_and_signal_and_pool_recovers():
    pool = WorkerPool(f"{TASKS}:abort", size=1)
    try:
        with pytest.raises(WorkerFailed) as info:
            pool.call(None, timeout=30)
        assert info.value.stage == "native decoder (abort test)"
        assert info.value.detail == "SIGABRT" and "crashed" in str(info.value)
        with pytest.raises(WorkerFailed):  # a fresh worker takes the next request
            pool.call(None, timeout=30)
        assert pool.restarts == 2
    finally:
        pool.close()


def test_base_exception_panic_becomes_task_error_and_worker_lives_on():
    worker = Worker(f"{TASKS}:panic")
    try:
        for _ in range(2):
            with pytest.raises(TaskError, match=r"FakePanic: called `Option::unwrap\(\)`"):
                worker.call(None, timeout=30)
        assert worker.alive
    finally:
        worker.close()


def test_hang_is_stopped_at_the_time_limit():
    pool = WorkerPool(f"{TASKS}:sleep", size=1)
    try:
        assert pool.call(0.01, timeout=30) == "woke up"
        with pytest.raises(WorkerFailed, match=r"stopped after 0\.5 s during slow decoder"):
            pool.call(60, timeout=0.5)
        assert pool.call(0.01, timeout=30) == "woke up"
    finally:
        pool.close()


def test_the_limit_counts_from_the_request_and_names_the_stage_already_sent(monkeypatch):
    """A caller that reads late (descheduled right after sending) gets the answer the child
    sent in time, or else the time-limit error naming the stage the child had reported."""
    from viewer.io import subproc

    worker = Worker(f"{TASKS}:sleep")
    try:
        assert worker.call(0.01, timeout=30) == "woke up"  # started and warm
        write = subproc._write_frame

        def write_then_stall(stream, data):
            write(stream, data)
            time.sleep(0.6)  # the child reports its stage meanwhile; the limit passes

        monkeypatch.setattr(subproc, "_write_frame", write_then_stall)
        assert worker.call(0.05, timeout=0.3) == "woke up"  # it answered in time; we read late
        with pytest.raises(WorkerFailed, match=r"stopped after 0\.3 s during slow decoder"):
            worker.call(5, timeout=0.3)
        assert not worker.alive  # killed at the limit
    finally:
        worker.close()


def test_memory_limit_turns_a_huge_allocation_into_an_error():
    worker = Worker(f"{TASKS}:allocate", memory_bytes=2 << 30)
    try:
        assert worker.call(10 << 20, timeout=30) == 10 << 20
        with pytest.raises(TaskError, match="MemoryError"):
            worker.call(8 << 30, timeout=30)
        assert worker.call(1 << 20, timeout=30) == 1 << 20
    finally:
        worker.close()


def test_large_payload_round_trip():
    worker = Worker(f"{TASKS}:echo")
    try:
        data = bytes(range(256)) * 40000  # 10 MB through the pipes
        assert worker.call(data, timeout=30) == data
    finally:
        worker.close()
