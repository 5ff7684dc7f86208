"""Stop a training run cleanly on SIGTERM / SIGINT / SIGUSR1: checkpoint, then exit.

Clusters preempt jobs with SIGTERM (Slurm can send SIGUSR1 ahead of the time limit with
``--signal``); a person presses Ctrl-C. Either way the run should end at the next step
boundary with a checkpoint that ``--resume`` continues from exactly, not lose the
steps since the last epoch. The first signal asks for that; a second Ctrl-C interrupts
at once (the default behaviour) for someone who does not want to wait.

With several processes (torchrun) every rank must stop after the same step, or the
others would wait forever in the next gradient all-reduce: `StopRequest.agreed` takes
the maximum of the ranks' flags once per step (one one-element all-reduce).
"""
from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), signal.SIGINT, getattr(signal, "SIGUSR1", None))
                     if s is not None)
EXIT_STOPPED = 75  # EX_TEMPFAIL: stopped early with a checkpoint; run again with --resume


def ignore_stop_signals() -> None:
    """For helper processes (DataLoader workers): the stop signals are the main process's business."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class StopRequest:
    """Signal handlers that turn the first stop signal into a flag the trainer polls."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """True once this process received a stop signal."""
        return self.signal_name is not None

    def install(self) -> StopRequest:
        """Install the handlers (main thread only; elsewhere Python forbids it: then a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        """Restore the handlers that were there before `install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without the checkpoint
        if not self.requested:
            self.signal_name = name
            log.warning("%s received: stopping after this step with a checkpoint "
                        "(press Ctrl-C again to stop at once)", name)

    def agreed(self, distributed: bool, device: Any = None) -> bool:
        """True when any rank was asked to stop (the same answer on every rank)."""
        if not distributed:
            return self.requested
        import torch
        import torch.distributed as dist

        flag = torch.tensor([1.0 if self.requested else 0.0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)
