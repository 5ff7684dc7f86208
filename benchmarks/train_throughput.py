"""Training throughput: our recipe vs the paper's, side by side in one run.

ours : bf16 autocast, text padded to the longest in the batch, channels_last, fused AdamW
       (optionally torch.compile with --compile)
paper: fp16 autocast + GradScaler, text padded to 256 tokens, contiguous NCHW, plain AdamW

Model: ResNet50 + BERT-base (random weights, vocab 28996), batch 128, 224 px, the full
CXR-CLIP loss (2 views x 2 sections + ICL + TCL). Reports samples/s, step time split
into data wait (host batch build + copy) and compute, peak GPU memory and model FLOPs
utilisation (FLOPs of one step from torch.utils.flop_counter).

    python benchmarks/train_throughput.py                  # CUDA, full size
    python benchmarks/train_throughput.py --device cpu --tiny   # smoke run anywhere
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

from cxrclip.config import ModelConfig
from cxrclip.losses import CXRClipLoss
from cxrclip.model import CXRClip

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


@dataclass
class Recipe:
    name: str
    precision: str  # bf16 | fp16 | fp32
    pad_to: int | None  # None = longest in batch
    channels_last: bool
    fused: bool
    compile: bool = False


def build(args, device):
    from transformers import BertConfig

    if args.tiny:
        text_cfg = BertConfig(vocab_size=28996, hidden_size=32, num_hidden_layers=1,
                              num_attention_heads=2, intermediate_size=64)
        cfg = ModelConfig.from_dict({"image": {"name": "resnet18", "image_size": args.image_size},
                                     "text": {"path": "", "max_length": 256}, "projection": {"dim": 64}})
    else:
        text_cfg = BertConfig(vocab_size=28996)
        cfg = ModelConfig.from_dict({"image": {"name": "resnet50", "image_size": args.image_size},
                                     "text": {"path": "", "max_length": 256}})
    torch.manual_seed(0)
    return CXRClip(cfg, text_model_config=text_cfg).to(device)


def make_batch(args, gen, pad_to):
    """Random images and token ids with report-like lengths (30-140 tokens)."""
    b, s = args.batch_size, args.image_size
    lengths = torch.randint(30, 141, (2, b), generator=gen)
    width = pad_to or int(lengths.max())
    ids = torch.randint(1000, 28000, (2, b, width), generator=gen)
    mask = (torch.arange(width)[None, None] < lengths[..., None]).long()
    return {"image": torch.randn(b, 3, s, s, generator=gen), "image2": torch.randn(b, 3, s, s, generator=gen),
            "ids": ids * mask, "mask": mask}


def step_fn(model, loss_fn, opt, scaler, recipe, device):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(recipe.precision)
    forward = torch.compile(model) if recipe.compile else model

    def step(batch):
        ctx = torch.autocast(device.type, dtype=dtype) if dtype else torch.autocast(device.type, enabled=False)
        with ctx:
            out = forward(images=batch["image"], input_ids=batch["ids"][0], attention_mask=batch["mask"][0],
                          images_view2=batch["image2"], input_ids_section2=batch["ids"][1],
                          attention_mask_section2=batch["mask"][1])
        o = {k: v.float() for k, v in out.items()}
        loss = loss_fn(o["image_emb"], o["image_emb_view2"], o["text_emb"], o["text_emb_section2"],
                       o["logit_scale"]).total
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        return loss
    return step


def to_device(batch, device, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = {}
    for k, v in batch.items():
        v = v.pin_memory() if device.type == "cuda" else v
        v = v.to(device, non_blocking=True)
        out[k] = v.contiguous(memory_format=fmt) if v.ndim == 4 else v
    return out


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def count_flops(step, batch) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(batch)
    return float(counter.get_total_flops())


def run_recipe(args, recipe: Recipe, device) -> dict:
    model = build(args, device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=recipe.fused and device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=recipe.precision == "fp16")
    step = step_fn(model, CXRClipLoss(), opt, scaler, recipe, device)
    gen = torch.Generator().manual_seed(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    flops = count_flops(step, to_device(make_batch(args, gen, recipe.pad_to), device, recipe.channels_last))
    for _ in range(args.warmup):
        step(to_device(make_batch(args, gen, recipe.pad_to), device, recipe.channels_last))
    sync(device)
    waits, computes = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        batch = to_device(make_batch(args, gen, recipe.pad_to), device, recipe.channels_last)
        sync(device)
        t1 = time.perf_counter()
        step(batch)
        sync(device)
        waits.append(t1 - t0)
        computes.append(time.perf_counter() - t1)
    compute = statistics.median(computes)
    wait = statistics.median(waits)
    peak_mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items()
                                     if device.type == "cuda" and k in torch.cuda.get_device_name(device)), None)
    mfu = flops / compute / (peak * 1e12) if peak else float("nan")
    return {"recipe": recipe.name, "samples_s": args.batch_size / (compute + wait), "step_ms": 1e3 * (compute + wait),
            "data_ms": 1e3 * wait, "compute_ms": 1e3 * compute, "peak_gib": peak_mem,
            "tflop_step": flops / 1e12, "mfu": mfu}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="resnet18 + 1-layer BERT, batch 4, 64 px")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--compile", action="store_true", help="also run ours + torch.compile")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak dense TFLOP/s for MFU")
    args = p.parse_args(argv)
    args.batch_size = args.batch_size or (4 if args.tiny else 128)
    args.image_size = args.image_size or (64 if args.tiny else 224)
    args.steps = args.steps or (3 if args.tiny else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 5)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu --tiny")
    low = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    recipes = [Recipe("ours", low, None, True, True),
               Recipe("paper", "fp16" if device.type == "cuda" else "fp32", 256, False, False)]
    if args.compile:
        recipes.append(Recipe("ours+compile", low, None, True, True, compile=True))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; batch {args.batch_size}, {args.image_size} px, {args.steps} timed steps "
          f"(median), {'tiny' if args.tiny else 'ResNet50 + BERT-base'}")
    rows = [run_recipe(args, r, device) for r in recipes]
    cols = ["recipe", "samples_s", "step_ms", "data_ms", "compute_ms", "peak_gib", "tflop_step", "mfu"]
    print("  ".join(f"{c:>12}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]:>12}" if isinstance(r[c], str) else f"{r[c]:>12.3f}" for c in cols))
    if len(rows) >= 2:
        print(f"speed-up ours/paper: {rows[0]['samples_s'] / rows[1]['samples_s']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
