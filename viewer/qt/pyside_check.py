"""Refuse to run on a PySide6 build that corrupts Python's reference counts.

PySide6-Essentials 6.12.0 on CPython 3.11 returns ``None`` from void methods
and ``True`` from ``Signal.emit`` without taking a reference, so each call
lowers the singleton's count by one; after a few thousand calls CPython aborts
with "Fatal Python error: none_dealloc". pyproject.toml pins
``PySide6-Essentials<6.12``; this check turns a broken environment (someone
upgraded PySide6 by hand) into one clear message instead of a crash minutes
into a reading session. On CPython >= 3.12 the singletons are immortal.
"""
from __future__ import annotations

import sys

FIX = 'pip install "PySide6-Essentials>=6.7,<6.12"'


def leaks_singleton_refs(calls: int = 200) -> bool:
    """True when void PySide6 calls lower ``None``'s reference count."""
    if sys.version_info >= (3, 12):
        return False
    from PySide6.QtCore import QObject

    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(calls):
        obj.setObjectName("probe")
    return before - sys.getrefcount(None) > calls // 2


def broken_pyside_message() -> str | None:
    """A message naming the version and the fix, or None when PySide6 is sound."""
    if not leaks_singleton_refs():
        return None
    import PySide6

    return (f"PySide6 {PySide6.__version__} corrupts reference counts on Python "
            f"{sys.version_info.major}.{sys.version_info.minor} and would crash the viewer; "
            f"install a sound build: {FIX}")
