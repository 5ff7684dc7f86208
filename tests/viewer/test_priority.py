"""Background threads and decode processes run at a lower CPU priority than the UI thread."""
from __future__ import annotations

import os
import sys
import threading

import pytest

from viewer.io.isolate import WARM_UP
from viewer.io.priority import BACKGROUND_NICE, lower_thread_priority
from viewer.io.subproc import Worker

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")


def _nice(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


@linux_only
def test_lowering_a_thread_leaves_the_others_and_happens_once():
    main_before = _nice(threading.get_native_id())
    seen = {}

    def work():
        tid = threading.get_native_id()
        before = _nice(tid)
        seen["first"] = lower_thread_priority()
        seen["second"] = lower_thread_priority()  # a pool thread runs many jobs: no further drop
        seen["delta"] = _nice(tid) - before

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == {"first": True, "second": True, "delta": min(BACKGROUND_NICE, 19 - main_before)}
    assert _nice(threading.get_native_id()) == main_before  # the calling (UI) thread is untouched


@linux_only
def test_decode_worker_processes_run_niced():
    worker = Worker("viewer.io.isolate:child_decode")
    try:
        assert worker.call(WARM_UP, 60) == {}  # the child is up and serving (niced before it serves)
        assert _nice(worker._proc.pid) >= min(os.getpriority(os.PRIO_PROCESS, 0) + BACKGROUND_NICE, 19)
    finally:
        worker.close()
