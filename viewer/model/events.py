"""A tiny observer used by the pure models; Qt views subscribe to it.

The models in ``viewer.model`` must not import Qt, yet Qt widgets need to hear
about changes. ``Signal`` is the minimal bridge (napari-style): a list of
callbacks called in connection order.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Signal:
    """Observer list: ``connect(cb)``, ``disconnect(cb)``, ``emit(*args)``."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []
        self._blocked = False

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Subscribe ``callback``; connecting the same callable twice is a no-op.

        Returns the callback so ``connect`` can be used as a decorator.
        """
        if not callable(callback):
            raise TypeError(f"Signal.connect needs a callable, got {callback!r}")
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        """Unsubscribe ``callback``; unknown callbacks raise ValueError."""
        try:
            self._callbacks.remove(callback)
        except ValueError:
            raise ValueError(f"{callback!r} is not connected to this Signal") from None

    def is_connected(self, callback: Callable[..., Any]) -> bool:
        """True when ``callback`` is subscribed."""
        return callback in self._callbacks

    def disconnect_if_connected(self, callback: Callable[..., Any]) -> None:
        """Unsubscribe ``callback`` when it is subscribed (no error otherwise)."""
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        """Call every subscriber with ``args`` (unless blocked)."""
        if self._blocked:
            return
        for callback in list(self._callbacks):
            callback(*args)

    def blocked(self) -> "_Blocker":
        """Context manager that suppresses emits, e.g. during a batch update."""
        return _Blocker(self)

    def __len__(self) -> int:
        return len(self._callbacks)


class _Blocker:
    def __init__(self, signal: Signal) -> None:
        self._signal = signal
        self._previous = False

    def __enter__(self) -> Signal:
        self._previous = self._signal._blocked
        self._signal._blocked = True
        return self._signal

    def __exit__(self, *exc: object) -> None:
        self._signal._blocked = self._previous
