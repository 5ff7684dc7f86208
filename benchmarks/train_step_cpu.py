"""One training step of a real config on a phantom manifest, variants side by side (CPU).

Times forward + backward + optimizer step of ``cxrclip train``'s Trainer on the same
batches for each variant (config overrides), rounds interleaved so that load on the machine
affects every variant alike. Use it to choose the demo model's recipe, e.g. how much of the
text tower to freeze (``train.freeze_text_layers``) or which image size to train at:

    python benchmarks/train_step_cpu.py --data runs/demo-build/train \
        --variant "all trainable=" --variant "freeze 4=train.freeze_text_layers=4"

A variant is ``NAME=OVERRIDE[,OVERRIDE...]`` (dotted ``key=value`` config overrides; an
empty list is the config as written). Prints the median step time per variant and its ratio
to the first variant.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from training.config import load_config
from training.trainer.loop import Trainer


def parse_variant(text: str) -> tuple[str, list[str]]:
    """``"NAME=k=v,k2=v2"`` → (NAME, ["k=v", "k2=v2"])."""
    name, _, overrides = text.partition("=")
    return name.strip(), [o for o in overrides.split(",") if o.strip()]


def build(config: str, data: str, overrides: list[str], out: str) -> Trainer:
    base = [f"data.train=[{data}]", "data.val=[]", f"output_dir={out}", "train.progress=false",
            "data.num_workers=0", "train.device=cpu"]
    return Trainer(load_config(config, base + overrides))


def step_seconds(trainer: Trainer, batch: dict) -> float:
    start = time.perf_counter()
    trainer.compute_loss(batch).total.backward()
    trainer._optimizer_step()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="training/configs/demo.yaml")
    p.add_argument("--data", required=True, help="phantom or prepared manifest directory")
    p.add_argument("--variant", action="append", required=True, help="NAME=OVERRIDE[,OVERRIDE...]")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    variants = [parse_variant(v) for v in args.variant]
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {name: build(args.config, args.data, ov, f"{tmp}/{i}")
                    for i, (name, ov) in enumerate(variants)}
        batches = {name: next(iter(t.train_loader)) for name, t in trainers.items()}
        for t in trainers.values():
            t.model.train()
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for name, t in trainers.items():  # warm-up step, not counted
            step_seconds(t, batches[name])
        for _ in range(args.rounds):
            for name, t in trainers.items():
                times[name].append(step_seconds(t, batches[name]))
        for t in trainers.values():
            t.close()
    first = statistics.median(times[variants[0][0]])
    print(f"{'variant':<24} {'median s/step':>14} {'ratio':>7}  (rounds: {args.rounds}, threads: {args.threads})")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<24} {med:14.2f} {med / first:7.2f}")


if __name__ == "__main__":
    main()
