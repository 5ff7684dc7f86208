"""Background work yields the CPU to the UI thread.

On a two-core machine, decoding, plugin imports and model loading compete with
the UI thread for the CPU during launch, and the window stalls while the
scheduler hands their time slices out evenly. Raising their nice value (Linux
nice is per thread; threads a lowered thread creates inherit it, so ONNX
Runtime's own pools follow the engine thread) lets the UI thread run first
whenever it has work, and gives background work all the CPU otherwise.

`lower_thread_priority` renices the calling thread once; `lower_process_priority`
renices a whole worker process. Both are no-ops where the OS offers no per-thread
nice (anything but Linux) or refuses the change.
"""
from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

BACKGROUND_NICE = 5  # added to the nice value: enough for the UI thread to win the CPU
_thread_state = threading.local()


def lower_thread_priority(increment: int = BACKGROUND_NICE) -> bool:
    """Raise the calling thread's nice value by ``increment`` (once per thread).

    Returns True when the thread runs at the lowered priority. Only on Linux,
    where ``setpriority(PRIO_PROCESS, tid)`` applies to one thread; elsewhere the
    same call would renice the whole process (or another process), so it is skipped.
    """
    if getattr(_thread_state, "lowered", None) is not None:
        return _thread_state.lowered
    _thread_state.lowered = False
    if not sys.platform.startswith("linux") or increment <= 0:
        return False
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    except OSError as exc:
        log.debug("could not lower the priority of thread %s: %s", tid, exc)
        return False
    _thread_state.lowered = True
    return True


def lower_process_priority(increment: int = BACKGROUND_NICE) -> bool:
    """Raise this process's nice value by ``increment`` (for worker processes)."""
    if not hasattr(os, "nice") or increment <= 0:
        return False
    try:
        os.nice(increment)
    except OSError as exc:
        log.debug("could not lower the priority of this process: %s", exc)
        return False
    return True
