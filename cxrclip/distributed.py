"""Small helpers for torch.distributed: rank, world size and a gather that keeps gradients.

The contrastive losses need every rank's embeddings as negatives. A plain
``torch.distributed.all_gather`` cuts the autograd graph, so the gather here uses
the autograd-aware collective torch provides: its backward sums the gradients
from all ranks and hands each rank the part for its own rows (a reduce-scatter).
That is ``torch.distributed._functional_collectives.all_gather_single_autograd``
where it exists (recent torch, which points users of the older API there)
and ``torch.distributed.nn.functional.all_gather`` (deprecated since) before.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["gather_with_grad", "is_distributed", "rank", "world_size"]


def is_distributed() -> bool:
    """True when a default process group exists and has more than one member."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process' rank in the default group, 0 when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


def world_size() -> int:
    """Number of processes in the default group, 1 when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from all ranks along dim 0, rank 0's rows first.

    Gradients flow back to every rank's input. All ranks must pass tensors of
    the same shape (use ``drop_last=True`` in the data loader). Without an
    initialised multi-process group this returns ``x`` unchanged.
    """
    if not is_distributed():
        return x
    try:
        from torch.distributed._functional_collectives import all_gather_single_autograd
    except ImportError:  # older torch: the (since deprecated) autograd gather
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(x), dim=0)
    gathered = all_gather_single_autograd(x.contiguous(), 0, dist.group.WORLD)
    # Eager mode returns an AsyncCollectiveTensor; wait() keeps the autograd graph.
    return gathered.wait() if hasattr(gathered, "wait") else gathered
