"""Worker of the two-process gloo DDP test (importable by name from spawned processes)."""
from __future__ import annotations

import os

import torch


def run(rank: int, world: int, port: int, overrides: list[str], out_dir: str) -> None:
    """One rank: join via torchrun-style env vars, train one step, save a parameter digest."""
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    import tiny_encoder

    tiny_encoder.register()
    from training.config import load_config
    from training.trainer.loop import Trainer
    from training.trainer.runtime import teardown_runtime

    trainer = Trainer(load_config(None, overrides))
    # Parameters only: BatchNorm running stats are per rank on CPU (no SyncBatchNorm there).
    first = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    progress = trainer.fit()
    state = {k: v.detach() for k, v in trainer.model.named_parameters()}
    if trainer.label_head is not None:
        state.update({f"label_head.{k}": v.detach() for k, v in trainer.label_head.named_parameters()})
    changed = sum(int(not torch.equal(first[k], state[k])) for k in first)
    is_sync = any(type(m).__name__ == "SyncBatchNorm" for m in trainer.model.modules())
    torch.save({"params": {k: v.cpu() for k, v in state.items()}, "step": progress.step,
                "changed": changed, "sync_bn": is_sync, "world": trainer.rt.world_size,
                "distributed": torch.distributed.is_initialized()},
               os.path.join(out_dir, f"rank{rank}.pt"))
    trainer.close()
    teardown_runtime()
