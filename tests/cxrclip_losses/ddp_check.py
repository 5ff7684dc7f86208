"""Two-process gloo check of CXRClipLoss, run as a script by test_losses.py.

Each rank embeds its half of a fixed global batch with a shared linear layer and
computes the loss with gathered negatives; rank 0 saves the rank-averaged loss
terms, the per-rank input gradients and the all-reduce-averaged weight and
logit-scale gradients, for comparison with one process on the whole batch.
Usage: python ddp_check.py OUT_DIR
"""
from __future__ import annotations

import faulthandler
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
LOCAL_BATCH = 3
IN_DIM = 5
EMB_DIM = 4
STREAMS = ("image", "image_view2", "text", "text_section2")


def make_problem() -> tuple[dict[str, torch.Tensor], torch.nn.Linear, torch.Tensor]:
    """The same global inputs, layer and logit scale in every process."""
    gen = torch.Generator().manual_seed(1234)
    inputs = {k: torch.randn(WORLD * LOCAL_BATCH, IN_DIM, generator=gen) for k in STREAMS}
    layer = torch.nn.Linear(IN_DIM, EMB_DIM)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(EMB_DIM, IN_DIM, generator=gen))
        layer.bias.copy_(torch.randn(EMB_DIM, generator=gen))
    logit_scale = torch.tensor(3.0, requires_grad=True)
    return inputs, layer, logit_scale


def run_loss(inputs: dict[str, torch.Tensor], layer: torch.nn.Linear, logit_scale: torch.Tensor,
             label_smoothing: float):
    """Embed, normalise and compute the loss; inputs must require grad."""
    from cxrclip.losses import CXRClipLoss

    emb = {k: torch.nn.functional.normalize(layer(v), dim=-1) for k, v in inputs.items()}
    loss_fn = CXRClipLoss(i2i_weight=1.0, t2t_weight=0.5, label_smoothing=label_smoothing)
    return loss_fn(emb["image"], emb["image_view2"], emb["text"], emb["text_section2"], logit_scale)


def worker(rank: int, init_file: str, out_dir: str) -> None:
    faulthandler.enable()  # a crash inside gloo prints the Python stack
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        from cxrclip import distributed

        if not (distributed.is_distributed() and distributed.rank() == rank
                and distributed.world_size() == WORLD):
            raise RuntimeError("cxrclip.distributed does not see the process group")
        inputs, layer, logit_scale = make_problem()
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        local = {k: v[rows].clone().requires_grad_(True) for k, v in inputs.items()}
        out = run_loss(local, layer, logit_scale, label_smoothing=0.1)
        out.total.backward()
        terms = torch.stack([out.total, out.clip, out.i2t, out.t2i, out.i2i, out.t2t]).detach()
        dist.all_reduce(terms)
        grads = torch.cat([layer.weight.grad.flatten(), layer.bias.grad, logit_scale.grad.view(1)])
        dist.all_reduce(grads)
        input_grads = torch.stack([local[k].grad for k in STREAMS])
        gathered = [torch.empty_like(input_grads) for _ in range(WORLD)]
        dist.all_gather(gathered, input_grads)
        if rank == 0:
            torch.save({"terms": terms / WORLD, "param_grads": grads / WORLD,
                        "input_grads": torch.cat(gathered, dim=1)}, Path(out_dir) / "ddp.pt")
        dist.barrier()  # no rank tears gloo down while another still uses it
    finally:
        dist.destroy_process_group()


def main(out_dir: str) -> None:
    init_file = str(Path(out_dir) / "pg_init")
    mp.spawn(worker, args=(init_file, out_dir), nprocs=WORLD, join=True)


if __name__ == "__main__":
    main(sys.argv[1])
