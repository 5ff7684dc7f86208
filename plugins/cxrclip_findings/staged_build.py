"""Build a plugin's widgets a step per event-loop turn.

Building six panels, their docks and menu actions takes 100–400 ms of the UI thread
on a small machine while the model loads on the engine thread; done in one call it
is one long freeze of a window that is already on screen. `StagedBuild` runs one
step, returns to the event loop (paints, input, other results get their turn) and
runs the next from a zero-delay timer. `finish()` runs what is left at once (for
callers that need the widgets now); `cancel()` drops it (the plugin was deactivated).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, QTimer


class StagedBuild(QObject):
    """Runs ``steps`` in order, one per event-loop turn, then ``on_done``."""

    def __init__(self, steps: Sequence[Callable[[], None]], on_done: Callable[[], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._steps = list(steps)
        self._on_done = on_done
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._next)
        self.done = False
        self.cancelled = False

    def start(self) -> None:
        """Run the first step now and schedule the rest."""
        self._next()

    def finish(self) -> None:
        """Run every remaining step now (no-op once done or cancelled)."""
        self._timer.stop()
        while not self.done and not self.cancelled:
            self._run_one()

    def cancel(self) -> None:
        """Drop the remaining steps; ``on_done`` is not called."""
        self._timer.stop()
        self.cancelled = True

    def _next(self) -> None:
        if self.done or self.cancelled:
            return
        self._run_one()
        if not self.done and not self.cancelled:
            self._timer.start()

    def _run_one(self) -> None:
        if self._steps:
            self._steps.pop(0)()
        if not self._steps and not self.done:
            self.done = True
            self._on_done()
