"""Archive-index build throughput with the demo and a paper-sized model, the two stages apart,
and a GPU projection (an estimate from FLOPs, not a measurement).

Run:  .venv/bin/python benchmarks/index_throughput.py [--studies 60] [--size 1024]
                       [--workdir runs/index_throughput] [--runtimes onnx torch]

In one run, on the same phantom archive (``--studies`` studies, 2 DICOM views each, seed 12,
``--size`` px; generated once in ``--workdir`` and reused):

- **build**: `cxrclip.index.build_index` into a fresh index folder, views/s, for the bundled demo
  model and a paper-sized random model (ResNet50 at 224 px + BERT-base; built and exported to
  ONNX once by `benchmarks/onnx_bench.py`'s functions, cached in ``--workdir``), per runtime;
- **decode + preprocess**: the build's own decode path (`cxrclip.index.decode.read_view`) and
  `cxrclip.preprocess.preprocess_array` for each model, in ONE process (files per second and
  per CPU second);
- **embed**: the image tower alone (`engine.towers.encode_image`, what `Engine.embed_images`
  runs per batch of ``engine.batch_size``) on the preprocessed views, images/s.

Then the GPU projection: image-tower images/s on one H200 from its FLOPs at an assumed share of
the bf16 peak, against the decode rate measured here per core times the GPU machine's cores,
and the resulting time for MIMIC-CXR's images on 1 and 8 GPUs. Figures go to
``--workdir/results.json``; the tables are printed in Markdown.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets" / "models" / "cxrclip-demo"
SEED = 12
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class GpuAssumptions:
    """What the projection assumes; every number is a parameter, none is measured here."""

    peak_bf16_tflops: float = 989.0      # H200 SXM dense bf16 (NVIDIA lists 1,979 with 2:4 sparsity)
    utilisation: tuple[float, float] = (0.20, 0.30)  # achieved share of the peak (conservative)
    gmacs_per_image: float = 4.1         # ResNet50 forward at 224 px (multiply-adds; 1 MAC = 2 FLOP)
    cores_per_gpu: int = 16              # the GPU machine: 16 CPU cores per H200
    archive_images: int = 377_110        # MIMIC-CXR images
    gpus: tuple[int, ...] = (1, 8)
    full_size_pixels: int = 2544 * 3056  # a typical MIMIC-CXR image (DICOM and full-size JPG)
    bytes_per_pixel: int = 2             # uncompressed 16-bit DICOM pixel data (MIMIC-CXR: ~4.7 TB)


def load_average() -> float:
    """The 1-minute load average (other processes on the machine count)."""
    return round(os.getloadavg()[0], 2)


# ----- inputs ----------------------------------------------------------------------------
def phantom_archive(out: Path, studies: int, size: int) -> Path:
    """A DICOM-only phantom archive of ``studies`` studies at ``size`` px, reused when complete."""
    from training.phantoms.dataset import GenerateOptions, generate_dataset

    truth = out / "ground_truth.jsonl"
    if truth.is_file() and sum(1 for _ in truth.open(encoding="utf-8")) == studies:
        return out
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    generate_dataset(GenerateOptions(out=out, seed=SEED, size=size, png=False), studies, workers=2)
    print(f"generated {studies} studies at {size} px in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def paper_model(workdir: Path) -> Path:
    """The paper-sized random model with its ONNX exports, built once (needs torch)."""
    from benchmarks.onnx_bench import build_paper_model
    from cxrclip.onnx_export import export_onnx

    folder = workdir / "paper-model"
    if not (folder / "onnx" / "export.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        build_paper_model(folder)
        export_onnx(folder)
        print(f"built and exported the paper-sized model in {time.perf_counter() - started:.0f} s", flush=True)
    return folder


def load_engine(model_dir: Path, runtime: str):
    """An engine on the CPU whose zero-shot ensembles are already encoded (kept out of the clock)."""
    from cxrclip.engine import Engine

    engine = Engine.load(model_dir, device="cpu", runtime=runtime)
    engine.zero_shot_classifier()
    return engine


# ----- the three measurements ------------------------------------------------------------------
def measure_build(engine, model_dir: Path, archive: Path, index_dir: Path, workers: int, batch_size: int) -> dict:
    """`build_index` into a fresh folder: views/s over the whole build (walk, decode, embed, commit)."""
    from cxrclip.index import build_index
    from cxrclip.index.build import remove_index

    remove_index(index_dir)
    report = build_index([archive / "dicom"], index_dir, engine, batch_size=batch_size, workers=workers,
                         model_dir=model_dir)
    return {"views": report.added, "failed": report.failed, "seconds": round(report.seconds, 2),
            "views_per_s": round(report.views_per_second, 2), "load_after": load_average()}


def measure_decode(archive: Path, preprocess: dict[str, object]) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """Decode every file with the build's decode path, then preprocess it for each model, in this
    one process; returns the rates and the preprocessed views per model. Rates are given per
    wall-clock second and per CPU second of this process (what one dedicated core does, whatever
    else runs on the machine)."""
    from cxrclip.index.decode import DecodedView, read_view
    from cxrclip.index.walk import list_files
    from cxrclip.preprocess import preprocess_array

    wall = {"decode": 0.0, **dict.fromkeys(preprocess, 0.0)}
    cpu = dict(wall)
    inputs: dict[str, list[np.ndarray]] = {name: [] for name in preprocess}
    files = list_files([archive / "dicom"])

    def timed(stage: str, work):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = work()
        wall[stage] += time.perf_counter() - started
        cpu[stage] += time.process_time() - started_cpu
        return result

    for source in files:
        view = timed("decode", lambda: read_view(source))
        if not isinstance(view, DecodedView):
            raise RuntimeError(f"benchmark archive file failed to decode: {view.reason}")
        for name, config in preprocess.items():
            inputs[name].append(timed(name, lambda: preprocess_array(view.pixels, config)))
    n = len(files)
    rates = {"files": n, "decode_files_per_s": round(n / wall["decode"], 2),
             "decode_files_per_cpu_s": round(n / cpu["decode"], 2),
             "preprocess_files_per_s": {m: round(n / wall[m], 1) for m in preprocess},
             "decode_and_preprocess_files_per_s": {m: round(n / (wall["decode"] + wall[m]), 2) for m in preprocess},
             "decode_and_preprocess_files_per_cpu_s": {m: round(n / (cpu["decode"] + cpu[m]), 2) for m in preprocess},
             "load_after": load_average()}
    return rates, inputs


def measure_embed(engine, inputs: list[np.ndarray]) -> dict:
    """Image tower only, in batches of ``engine.batch_size`` as `Engine.embed_images` runs it (one
    warm-up batch first): images/s."""
    size = engine.batch_size
    engine.towers.encode_image(np.stack(inputs[:size]))
    started = time.perf_counter()
    for start in range(0, len(inputs), size):
        engine.towers.encode_image(np.stack(inputs[start:start + size]))
    seconds = time.perf_counter() - started
    return {"images": len(inputs), "seconds": round(seconds, 2), "images_per_s": round(len(inputs) / seconds, 2),
            "batch_size": size, "load_after": load_average()}


def measure_model(name: str, model_dir: Path, runtime: str, archive: Path, inputs: list[np.ndarray],
                  args: argparse.Namespace) -> dict:
    """Build and embed figures of one (model, runtime) pair."""
    engine = load_engine(model_dir, runtime)
    build = measure_build(engine, model_dir, archive, args.workdir / f"index-{name}-{runtime}",
                          args.workers, args.batch_size)
    embed = measure_embed(engine, inputs)
    row = {"model": name, "runtime": engine.runtime, "build": build, "embed": embed}
    print(f"{name} / {engine.runtime}: build {build['views_per_s']} views/s, "
          f"embed {embed['images_per_s']} images/s", flush=True)
    return row


# ----- the projection -----------------------------------------------------------------------
def gpu_projection(decode_per_core: float, image_size: int, gpu: GpuAssumptions = GpuAssumptions()) -> dict:
    """Estimated index-build rate on H200s: the slower of the image tower (from FLOPs) and the
    CPU decode (measured files per CPU second x cores per GPU; scaled by pixel count for full-size
    images), and the time for the archive."""
    gflop = 2 * gpu.gmacs_per_image
    tower = [gpu.peak_bf16_tflops * 1e3 * u / gflop for u in gpu.utilisation]
    decode = decode_per_core * gpu.cores_per_gpu
    full_size_decode = decode * image_size ** 2 / gpu.full_size_pixels
    per_gpu = [min(t, decode) for t in tower]
    out = {"assumptions": asdict(gpu), "gflop_per_image": gflop,
           "tower_images_per_s_per_gpu": [round(t) for t in tower],
           "decode_images_per_s_per_gpu": round(decode, 1),
           "decode_images_per_s_per_gpu_full_size": round(full_size_decode, 1),
           "bound": "decode" if decode < min(tower) else "compute",
           "read_mb_per_s_per_gpu_full_size": round(full_size_decode * gpu.full_size_pixels * gpu.bytes_per_pixel / 1e6),
           "hours": {}}
    for n in gpu.gpus:
        out["hours"][str(n)] = {
            "measured_size": [round(gpu.archive_images / (r * n) / 3600, 2) for r in per_gpu],
            "full_size": round(gpu.archive_images / (min(full_size_decode, min(tower)) * n) / 3600, 2)}
    return out


# ----- output -------------------------------------------------------------------------------
def print_tables(results: dict) -> None:
    decode = results["decode"]
    print(f"\n## Build throughput ({results['files']} DICOM views at {results['size']} px; "
          f"load average {results['load_before']} before, {results['load_max']} max)\n")
    print("| model | runtime | build (views/s) | decode + preprocess, 1 process (files/s) "
          "| embed, image tower (images/s) |\n|---|---|---|---|---|")
    for row in results["runs"]:
        print(f"| {row['model']} | {row['runtime']} | {row['build']['views_per_s']:.3g} | "
              f"{decode['decode_and_preprocess_files_per_s'][row['model']]:.3g} | "
              f"{row['embed']['images_per_s']:.3g} |")
    print(f"\ndecode alone: {decode['decode_files_per_s']:.3g} files/s ({decode['decode_files_per_cpu_s']:.3g} per CPU "
          f"second); decode + preprocess per CPU second: "
          + ", ".join(f"{k} {v:.3g}" for k, v in decode["decode_and_preprocess_files_per_cpu_s"].items())
          + "; preprocess alone: "
          + ", ".join(f"{k} {v:.4g} files/s" for k, v in decode["preprocess_files_per_s"].items()))
    print_projection(results["projection"])


def print_projection(p: dict) -> None:
    a, lo, hi = p["assumptions"], *p["tower_images_per_s_per_gpu"]
    print(f"\n## GPU projection (ESTIMATE from FLOPs, not a measurement)\n\n"
          f"- image tower on one H200: {a['peak_bf16_tflops']:.0f} TFLOP/s bf16 dense x "
          f"{a['utilisation'][0]:.0%}-{a['utilisation'][1]:.0%} / {p['gflop_per_image']:.1f} GFLOP per image "
          f"= {lo:,}-{hi:,} images/s\n"
          f"- CPU decode + preprocess: measured rate per CPU second x {a['cores_per_gpu']} cores = "
          f"{p['decode_images_per_s_per_gpu']:,} images/s per GPU at the phantom size "
          f"({p['decode_images_per_s_per_gpu_full_size']:,} if decode time grows with pixels, at "
          f"{a['full_size_pixels']:,} px per image, which reads "
          f"{p['read_mb_per_s_per_gpu_full_size']:,} MB/s per GPU of uncompressed DICOM)\n- bound: {p['bound']}")
    print(f"\n| GPUs | {a['archive_images']:,} images, phantom size (h) | full-size images (h) |\n|---|---|---|")
    for n, hours in p["hours"].items():
        low, high = sorted(hours["measured_size"])
        span = f"{low:.2g}" if low == high else f"{low:.2g}-{high:.2g}"
        print(f"| {n} | {span} | {hours['full_size']:.2g} |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=60, help="phantom studies (2 views each)")
    parser.add_argument("--size", type=int, default=1024, help="DICOM image size in px")
    parser.add_argument("--workdir", type=Path, default=Path("runs/index_throughput"))
    parser.add_argument("--runtimes", nargs="+", choices=("onnx", "torch"), default=["onnx", "torch"])
    parser.add_argument("--paper-model", type=Path, help="use this model folder (with ONNX exports when "
                        "onnx is measured) instead of building the paper-sized random model")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes of the builds")
    parser.add_argument("--batch-size", type=int, default=32)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.workdir.mkdir(parents=True, exist_ok=True)
    load_before = load_average()
    archive = phantom_archive(args.workdir / f"phantoms-seed{SEED}-{args.studies}x{args.size}",
                              args.studies, args.size)
    models = {"demo": DEMO, "paper": args.paper_model or paper_model(args.workdir)}
    from cxrclip.checkpoint import read_config
    from cxrclip.config import ModelConfig

    preprocess = {name: ModelConfig.from_dict(read_config(folder)["model"]).preprocess
                  for name, folder in models.items()}
    decode, inputs = measure_decode(archive, preprocess)
    runs = [measure_model(name, folder, runtime, archive, inputs[name], args)
            for name, folder in models.items() for runtime in args.runtimes]
    per_core = decode["decode_and_preprocess_files_per_cpu_s"]["paper"]
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
               "files": decode["files"], "size": args.size, "load_before": load_before,
               "load_max": max([load_before, decode["load_after"]]
                               + [r[s]["load_after"] for r in runs for s in ("build", "embed")]),
               "decode": decode, "runs": runs, "projection": gpu_projection(per_core, args.size)}
    (args.workdir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print_tables(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
