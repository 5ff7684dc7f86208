"""Work around PySide6 builds that drop a reference to None/True/False on every call.

PySide6-Essentials 6.12.0 on CPython 3.11 (this project's venv) returns
``None`` from void methods and ``True`` from ``Signal.emit`` without taking a
reference, so each call lowers the singleton's reference count by one; after a
few thousand calls CPython aborts with "Fatal Python error: none_dealloc" (or
bool_dealloc). 6.11.3 does not do this; on CPython >= 3.12 the singletons are
immortal and nothing happens.

`ensure_guard()` probes for the fault once and, only if present, starts a
daemon thread that keeps a reserve of references to the three singletons so
their counts never reach zero. It costs 8 bytes per leaked reference (tens of
MB per hour of heavy use). The real fix is a PySide6 version without the bug;
see docs/viewer.md.
"""
from __future__ import annotations

import logging
import sys
import threading
import time

log = logging.getLogger(__name__)

LOW_WATER = 200_000  # top up when a singleton has fewer references than this
CHUNK = 400_000  # references added per top-up
PERIOD_S = 0.02

_lock = threading.Lock()
_reserve: list[object] = []
_state = {"probed": False, "active": False}


def leaks_singleton_refs(calls: int = 200) -> bool:
    """True when void PySide6 calls lower ``None``'s reference count (the bug)."""
    from PySide6.QtCore import QObject

    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(calls):
        obj.setObjectName("probe")
    leaked = before - sys.getrefcount(None)
    top_up()  # pay back what the probe took
    return leaked > calls // 2


def top_up() -> None:
    """Add references to None/True/False where their count runs low."""
    with _lock:
        for singleton in (None, True, False):
            if sys.getrefcount(singleton) < LOW_WATER:
                _reserve.extend([singleton] * CHUNK)


def _run() -> None:
    while True:
        top_up()
        time.sleep(PERIOD_S)


def _pin_reserve() -> None:
    """Never free the reserve: freeing it at exit would hand back the leaked drops at once."""
    import ctypes

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(_reserve))


def ensure_guard() -> bool:
    """Start the guard thread if this PySide6 build leaks; returns whether it runs."""
    with _lock:
        probed = _state["probed"]
        _state["probed"] = True
    if probed:
        return _state["active"]
    if sys.version_info >= (3, 12) or not leaks_singleton_refs():
        return False
    import PySide6

    log.warning("PySide6 %s drops references to None/True/False on this Python; running the "
                "reference guard (install a PySide6 without this bug, e.g. 6.11.3)",
                PySide6.__version__)
    _pin_reserve()
    threading.Thread(target=_run, name="pyside-refcount-guard", daemon=True).start()
    _state["active"] = True
    return True


def reserve_size() -> int:
    """References currently held by the guard (for diagnostics)."""
    return len(_reserve)
