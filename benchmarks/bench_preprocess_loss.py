"""Speed of the preprocessing function, map_to_image and CXRClipLoss (CPU).

Run: .venv/bin/python benchmarks/bench_preprocess_loss.py [--repeats N]
Prints the median wall time of each step in milliseconds.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from cxrclip.config import PreprocessConfig
from cxrclip.losses import CXRClipLoss
from cxrclip.preprocess import map_to_image, preprocess_image


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def loss_step(batch: int, dim: int) -> Callable[[], object]:
    gen = torch.Generator().manual_seed(0)
    raw = [torch.randn(batch, dim, generator=gen, requires_grad=True) for _ in range(4)]
    loss = CXRClipLoss()
    scale = torch.tensor(1 / 0.07)

    def step() -> None:
        emb = [torch.nn.functional.normalize(r, dim=-1) for r in raw]
        loss(*emb, scale).total.backward()

    return step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    config = PreprocessConfig.imagenet()
    u8 = rng.integers(0, 256, (2500, 2048), dtype=np.uint8)
    u16 = rng.integers(0, 4096, (2500, 2048), dtype=np.uint16)
    grid = rng.random((7, 7))
    rows = [
        ("preprocess_image uint8 2500x2048 -> 224", lambda: preprocess_image(u8, config)),
        ("preprocess_image uint16 2500x2048 -> 224", lambda: preprocess_image(u16, config)),
        ("map_to_image 7x7 -> 2500x2048 bilinear", lambda: map_to_image(grid, 2500, 2048, config)),
        ("CXRClipLoss fwd+bwd B=64 D=512", loss_step(64, 512)),
        ("CXRClipLoss fwd+bwd B=256 D=512", loss_step(256, 512)),
    ]
    print(f"torch {torch.__version__}, 1 thread, median of {args.repeats}")
    for name, fn in rows:
        print(f"{name:45s} {median_ms(fn, args.repeats):8.2f} ms")


if __name__ == "__main__":
    main()
