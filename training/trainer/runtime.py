"""Process setup: torchrun environment → process group, device, precision, seeds."""
from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Where this process runs and its place in the job."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={value!r} must be an integer "
                         "(set by torchrun)") from exc


def resolve_device(choice: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU fails clearly."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is visible; use "
                           "train.device=cpu or check CUDA_VISIBLE_DEVICES")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def setup_runtime(device_choice: str) -> Runtime:
    """Join the torchrun job if RANK/WORLD_SIZE are set (NCCL on CUDA, gloo on CPU)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = resolve_device(device_choice)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        log.info("joined process group: rank %d/%d, backend %s", rank, world, backend)
    return Runtime(device=device, rank=rank, world_size=world, local_rank=local_rank)


def teardown_runtime() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def resolve_precision(choice: str, device: torch.device) -> str:
    """``auto`` → bf16 on CUDA with bf16 support, fp16 on older CUDA, fp32 on CPU."""
    if device.type != "cuda":
        if choice in ("bf16", "fp16"):
            log.warning("train.precision=%s requested on CPU; using fp32", choice)
        return "fp32"
    if choice == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return choice


def autocast_dtype(precision: str) -> torch.dtype | None:
    """dtype for ``torch.autocast`` or None for fp32."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def worker_init(worker_id: int) -> None:
    """DataLoader worker seeds derived from torch's per-worker seed. Workers ignore the stop
    signals: a scheduler (Slurm) or a terminal signals every process, and a worker killed
    by it would make the main process fail before it saves its checkpoint; the main process
    ends its workers itself (training/trainer/interrupt.py)."""
    from training.trainer.interrupt import ignore_stop_signals

    ignore_stop_signals()
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def all_reduce_sum(value: float, device: torch.device) -> float:
    """Sum a number over ranks (identity without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())
