"""Unexpected errors become a Problems row and a status message, never a crash dialog."""
from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from types import TracebackType

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


class _ErrorRelay(QObject):
    """Carries (where, reason) to the UI thread whatever thread the error happened on."""

    error = Signal(str, str)


class ExceptHook:
    """Installs ``sys.excepthook`` / ``threading.excepthook``; `uninstall` restores them."""

    def __init__(self, report: Callable[[str, str], None]) -> None:
        self._relay = _ErrorRelay()
        self._relay.error.connect(report)
        self._previous = (sys.excepthook, threading.excepthook)

    def install(self) -> "ExceptHook":
        sys.excepthook = self._handle
        threading.excepthook = self._handle_thread
        return self

    def uninstall(self) -> None:
        sys.excepthook, threading.excepthook = self._previous

    def _handle(self, exc_type: type[BaseException], exc: BaseException,
                tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            self._previous[0](exc_type, exc, tb)
            return
        log.error("unexpected error", exc_info=(exc_type, exc, tb))
        self._relay.error.emit("viewer", f"unexpected {exc_type.__name__}: {exc} (details in the log)")

    def _handle_thread(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        self._handle(args.exc_type, args.exc_value, args.exc_traceback)
