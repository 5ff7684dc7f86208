"""Model-library figures: encode speed, save/load time and checkpoint size.

Builds paper-sized random models (ResNet-50 or Swin-Tiny + a BERT-base with
Bio_ClinicalBERT's shape, written to a temporary directory - nothing is
downloaded) and prints medians. Usage:

    python benchmarks/model_bench.py [--backbone resnet50 swin_tiny] [--batch 8] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from cxrclip.checkpoint import load_model, save_model
from cxrclip.config import default_config
from cxrclip.model import CXRClip


def _bert_dir(directory: Path) -> Path:
    from transformers import BertConfig, BertTokenizer

    BertConfig(vocab_size=28996).save_pretrained(str(directory))
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(28991)]
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(str(directory))
    return directory


def _median_s(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(backbone: str, text_dir: Path, work: Path, batch: int, repeats: int, device: str) -> None:
    model = CXRClip(default_config(backbone, str(text_dir))).eval().to(device)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    pixels = torch.randn(batch, 3, 224, 224, device=device)
    ids = torch.randint(5, 28996, (batch, 64), device=device)
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        t_img = _median_s(lambda: model.encode_image(pixels), repeats)
        t_txt = _median_s(lambda: model.encode_text(ids, mask), repeats)
    print(f"{backbone}: {params:.1f} M parameters, device {device}")
    print(f"  encode_image batch {batch}: {t_img * 1e3:.0f} ms ({batch / t_img:.1f} img/s)")
    print(f"  encode_text  batch {batch} x 64 tokens: {t_txt * 1e3:.0f} ms ({batch / t_txt:.1f} texts/s)")
    model.cpu()
    for label, dtype in (("fp32", None), ("fp16", torch.float16)):
        out = work / f"{backbone}-{label}"
        start = time.perf_counter()
        save_model(model, None, out, dtype=dtype)
        t_save = time.perf_counter() - start
        size = (out / "model.safetensors").stat().st_size / 2**20
        t_load = _median_s(lambda out=out: load_model(out), max(1, repeats // 2))
        print(f"  {label}: model.safetensors {size:.0f} MiB, save {t_save:.2f} s, load_model {t_load:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", nargs="+", default=["resnet50", "swin_tiny"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        text_dir = _bert_dir(Path(tmp) / "bert")
        for backbone in args.backbone:
            bench(backbone, text_dir, Path(tmp), args.batch, args.repeats, args.device)


if __name__ == "__main__":
    main()
