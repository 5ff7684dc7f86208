"""The installed PySide6 must not corrupt reference counts (6.12.0 on CPython 3.11 does)."""
import sys

from viewer.qt.pyside_check import broken_pyside_message


def test_installed_pyside_keeps_reference_counts(qapp):
    from PySide6.QtCore import QObject

    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(500):
        obj.setObjectName("x")
    assert sys.getrefcount(None) >= before - 5
    assert broken_pyside_message() is None
