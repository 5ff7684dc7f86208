"""Stop signals end training cleanly: one flag per process, agreed between ranks."""
from __future__ import annotations

import os
import signal
import threading

import pytest
import torch
import torch.distributed as dist

from training.trainer.interrupt import StopRequest


def test_first_signal_sets_the_flag_second_ctrl_c_interrupts_at_once():
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a background job, Python's default otherwise
    request = StopRequest().install()
    try:
        assert not request.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert request.requested and request.signal_name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        request.uninstall()
    assert signal.getsignal(signal.SIGINT) == before  # restored


def test_install_off_the_main_thread_changes_nothing():
    before = signal.getsignal(signal.SIGTERM)
    done = []
    thread = threading.Thread(target=lambda: done.append(StopRequest().install()))
    thread.start()
    thread.join()
    assert done and signal.getsignal(signal.SIGTERM) is before


def test_ranks_agree_through_an_all_reduce(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        request = StopRequest()
        assert request.agreed(True, torch.device("cpu")) is False
        request.signal_name = "SIGUSR1"  # as the handler sets it
        assert request.agreed(True, torch.device("cpu")) is True
    finally:
        dist.destroy_process_group()


def test_dataloader_workers_outlive_a_stop_signal_sent_to_every_process():
    """Slurm and terminals signal the whole job; a worker killed by it would crash the main
    process before its checkpoint."""
    import subprocess
    import sys

    code = ("import os, signal\n"
            "from training.trainer.runtime import worker_init\n"
            "worker_init(0)\n"
            "for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):\n"
            "    os.kill(os.getpid(), sig)\n"
            "print('alive')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "alive", out.stderr
