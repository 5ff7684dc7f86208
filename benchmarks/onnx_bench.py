"""Torch vs ONNX Runtime Engine, side by side in one run, and what ORT offers for the text tower.

Run:  .venv/bin/python benchmarks/onnx_bench.py [--threads 2] [--repeats 20] [--cold 3] [--skip-paper]

Models: the bundled demo model (copied to the work folder and exported there) and a
paper-sized random model (ResNet50 at 224 px + BERT-base from `BertConfig()`, the size of
Bio_ClinicalBERT; no download, demo tokenizer). For each model, with the same thread count:

- cold start -> first prompt scored on 2 views: a fresh subprocess per run that imports
  cxrclip, loads the engine and scores one prompt (wall time from spawn to exit);
- 1 prompt: text tower forward of one new prompt (tokenizer included, no cache);
- prompt -> probability on 3 cached views: `Engine.score` with a new prompt each time;
- image forward: one preprocessed view through the image tower.

``--spinning`` compares ORT's worker threads busy-waiting after each run (its default)
with the engine's setting (no spinning): both sessions of a model in one process, as the
viewer has them.

Then the text tower under ORT graph optimisation levels and with int8 dynamic
quantisation, with its accuracy (cosine to float32 embeddings, change of zero-shot
probabilities on a 3-view study). Timings are medians in ms (cold starts in s).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "assets" / "models" / "cxrclip-demo"
sys.path.insert(0, str(ROOT))
from benchmarks.engine_bench import p50_ms  # noqa: E402 (needs ROOT on sys.path)

COLD_SCRIPT = """
import sys, numpy as np
from cxrclip.engine import Engine, StudyInput, ViewInput
engine = Engine.load(sys.argv[1], runtime=sys.argv[2], num_threads=int(sys.argv[3]))
rng = np.random.default_rng(0)
views = [ViewInput(f"v{i}", (rng.random((512, 420)) * 255).astype(np.uint8)) for i in range(2)]
result = engine.score(StudyInput("s", views), ["small left pleural effusion"])
print(engine.runtime, "torch" in sys.modules, result.prompts[0].probability)
"""


VARIANT_SCRIPT = """
import sys, time, statistics
from pathlib import Path
from cxrclip.runtime_onnx import ONNX_DIR, OnnxTowers, read_export_info
folder, level, text_file, threads, repeats = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
info = read_export_info(folder)
towers = OnnxTowers(folder / ONNX_DIR, info, info["max_length"], "cpu", threads, level, text_file)
times = []
for i in range(-3, repeats):
    start = time.perf_counter()
    towers.encode_text(*towers.tokenize([f"small left pleural effusion {i}"], info["max_length"]))
    if i >= 0:
        times.append((time.perf_counter() - start) * 1000)
print(statistics.median(times))
"""

SPIN_SCRIPT = """
import sys, time, statistics
import numpy as np, onnxruntime as ort
from cxrclip.runtime_onnx import session_options
folder, spin, threads, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
options = session_options(threads)
options.log_severity_level = 3
for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
    options.add_session_config_entry(key, spin)
image = ort.InferenceSession(f"{folder}/onnx/image.onnx", options, providers=["CPUExecutionProvider"])
text = ort.InferenceSession(f"{folder}/onnx/text.onnx", options, providers=["CPUExecutionProvider"])
size = image.get_inputs()[0].shape[-1]
pixels = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
ids = np.full((2, 10), 1000, np.int64); mask = np.ones_like(ids)
run_text = lambda: text.run(None, {"input_ids": ids, "attention_mask": mask})
run_image = lambda: image.run(None, {image.get_inputs()[0].name: pixels})
def then_python():  # a text run, then 20 ms of a Python thread's own work
    run_text(); start = time.perf_counter()
    while time.perf_counter() - start < 0.02: pass
def median(fn):
    for _ in range(3): fn()
    times, cpu0, wall0 = [], time.process_time(), time.perf_counter()
    for _ in range(repeats):
        start = time.perf_counter(); fn(); times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), (time.process_time() - cpu0) / (time.perf_counter() - wall0)
pair, image_ms, both = median(run_text)[0], median(run_image)[0], median(lambda: (run_image(), run_text()))[0]
print(pair, image_ms, both, median(then_python)[1])
"""
SPIN_COLUMNS = ("text pair (ms)", "image (ms)", "image then text (ms)", "cores busy: text run + 20 ms Python")


def spinning(folder: Path, threads: int, repeats: int, rounds: int = 2) -> dict[str, list[list[float]]]:
    """ORT's worker threads busy-waiting after a run (its default) vs not, each in a fresh process,
    rounds interleaved: both sessions (image, text) of one engine, as the viewer runs them."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out: dict[str, list[list[float]]] = {"spinning (ORT default)": [], "no spinning (the engine's)": []}
    for _ in range(rounds):
        for label, spin in (("spinning (ORT default)", "1"), ("no spinning (the engine's)", "0")):
            run = subprocess.run([sys.executable, "-c", SPIN_SCRIPT, str(folder), spin, str(threads), str(repeats)],
                                 capture_output=True, text=True, env=env, check=True)
            out[label].append([float(x) for x in run.stdout.split()[-4:]])
    return out


def print_spinning(name: str, result: dict[str, list[list[float]]]) -> None:
    print(f"\n## {name}: ORT spinning, per round\n\n| sessions | " + " | ".join(SPIN_COLUMNS) + " |")
    print("|---" * (len(SPIN_COLUMNS) + 1) + "|")
    for label, rows in result.items():
        cells = [" / ".join(f"{row[i]:.3g}" for row in rows) for i in range(len(SPIN_COLUMNS))]
        print(f"| {label} | " + " | ".join(cells) + " |")


def views(n: int) -> list:
    from cxrclip.engine import ViewInput

    rng = np.random.default_rng(1)
    return [ViewInput(f"view{i}", (rng.random((600, 500)) * 255).astype(np.uint8)) for i in range(n)]


def build_paper_model(out: Path) -> Path:
    """Random ResNet50 (224 px) + BERT-base (`BertConfig()`) saved in float32, with the demo tokenizer."""
    import torch
    from transformers import BertConfig

    from cxrclip.checkpoint import save_model
    from cxrclip.config import ImageEncoderConfig, ModelConfig, PreprocessConfig, ProjectionConfig, TextEncoderConfig
    from cxrclip.model import CXRClip
    from cxrclip.text_encoder import load_tokenizer

    torch.manual_seed(0)
    config = ModelConfig(image=ImageEncoderConfig(name="resnet50", image_size=224),
                         text=TextEncoderConfig(path=str(DEMO / "text_encoder"), pooling="eos", max_length=256),
                         projection=ProjectionConfig(kind="linear", dim=512),
                         preprocess=PreprocessConfig.imagenet(224), name="paper-random")
    model = CXRClip(config, text_model_config=BertConfig())
    save_model(model, load_tokenizer(DEMO / "text_encoder"), out)
    return out


def prepare(workdir: Path, skip_paper: bool) -> dict[str, Path]:
    from cxrclip.onnx_export import export_onnx

    folders = {"demo": workdir / "demo"}
    if not (folders["demo"] / "onnx").is_dir():  # the bundled folder ships its exports (in its manifest)
        shutil.rmtree(folders["demo"], ignore_errors=True)
        shutil.copytree(DEMO, folders["demo"])
    if not skip_paper:
        folders["paper"] = workdir / "paper"
        if not (folders["paper"] / "onnx").is_dir():
            build_paper_model(folders["paper"])
            start = time.perf_counter()
            export_onnx(folders["paper"])
            print(f"exported paper-sized model in {time.perf_counter() - start:.0f} s", flush=True)
    return folders


def cold_start(folder: Path, runtime: str, threads: int, runs: int) -> tuple[float, bool]:
    """Median seconds from spawn to exit of a process that loads the engine and scores one prompt."""
    times, torch_loaded = [], False
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", COLD_SCRIPT, str(folder), runtime, str(threads)],
                              capture_output=True, text=True, env=env, check=True)
        times.append(time.perf_counter() - start)
        torch_loaded = done.stdout.split()[1] == "True"
    return statistics.median(times), torch_loaded


def warm_figures(engine, repeats: int) -> dict[str, float]:
    from cxrclip.engine import StudyInput

    study = StudyInput("s3", views(3))
    engine.encode_views(study.views)  # cached from here on
    pixels = engine._preprocess(study.views[0].pixels)[None]
    return {
        "1 prompt (ms)": p50_ms(lambda i: engine.embed_texts([f"small left pleural effusion {i}"]), repeats),
        "prompt -> probability, 3 cached views (ms)":
            p50_ms(lambda i: engine.score(study, [f"moderate right pleural effusion {i}"]), repeats),
        "image forward, 1 view (ms)": p50_ms(lambda i: engine.towers.encode_image(pixels), max(5, repeats // 2)),
    }


def zero_shot_probabilities(engine, study) -> np.ndarray:
    return np.array([s.probability for s in sorted(engine.zero_shot(study), key=lambda s: s.finding)])


def text_variants(folder: Path, threads: int, repeats: int, base) -> dict[str, dict[str, float]]:
    """ORT optimisation levels and int8 text tower: 1-prompt latency and accuracy against float32 ORT."""
    from cxrclip.engine import Engine, StudyInput
    from cxrclip.onnx_export import PARITY_TEXTS, quantize_text_int8
    from cxrclip.prompts import CHEXPERT_14
    from cxrclip.runtime_onnx import ONNX_DIR, OnnxTowers, read_export_info

    info, onnx_dir = read_export_info(folder), folder / ONNX_DIR
    int8 = onnx_dir.parent.parent / f"{folder.name}_text_int8.onnx"
    if not int8.is_file():
        quantize_text_int8(onnx_dir / "text.onnx", int8)
    study = StudyInput("s3", views(3))
    texts = list(PARITY_TEXTS) + [f"{f.lower()} is present" for f in CHEXPERT_14]
    ids, mask = base.towers.tokenize(texts, base.config.text.max_length)
    ref_emb, ref_zero = base.towers.encode_text(ids, mask), zero_shot_probabilities(base, study)
    out = {}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for label, level, text_file in (("ORT basic", "basic", "text.onnx"), ("ORT extended", "extended", "text.onnx"),
                                    ("ORT all", "all", "text.onnx"), ("ORT all + int8 text", "all", str(int8))):
        towers = OnnxTowers(onnx_dir, info, base.config.text.max_length, "cpu", threads, level, text_file)
        engine = Engine.from_towers(towers, base.config, base.model_id)
        engine.attach_model_files(folder)  # calibration and OOD statistics, as the base engine has
        emb = towers.encode_text(ids, mask)
        cos = (emb * ref_emb).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref_emb, axis=1)
        # Timed in a fresh process each: idle ORT/OpenMP pools of other sessions would compete for the cores.
        timed = subprocess.run([sys.executable, "-c", VARIANT_SCRIPT, str(folder), level, text_file, str(threads),
                                str(repeats)], capture_output=True, text=True, env=env, check=True)
        out[label] = {"1 prompt (ms)": float(timed.stdout.split()[-1]),
                      "min cosine to fp32": float(cos.min()),
                      "max |dp| zero-shot": float(np.abs(zero_shot_probabilities(engine, study) - ref_zero).max()),
                      "file (MB)": Path(onnx_dir / text_file).stat().st_size / 1e6}
    return out


def variants_only(folder: Path, threads: int, repeats: int) -> dict:
    from cxrclip.engine import Engine

    return {"text tower variants": text_variants(folder, threads, repeats,
                                                 Engine.load(folder, runtime="onnx", num_threads=threads, device="cpu"))}


def compare(folder: Path, threads: int, repeats: int, cold_runs: int) -> dict:
    import torch

    from cxrclip.engine import Engine

    torch.set_num_threads(threads)
    result = {"cold start -> 1 prompt on 2 views (s)": {}}
    for runtime in ("torch", "onnx"):
        seconds, torch_loaded = cold_start(folder, runtime, threads, cold_runs)
        result["cold start -> 1 prompt on 2 views (s)"][runtime] = seconds
        result[f"{runtime} process imported torch"] = torch_loaded
    engines = {rt: Engine.load(folder, runtime=rt, num_threads=threads, device="cpu") for rt in ("torch", "onnx")}
    for runtime, engine in engines.items():
        for key, value in warm_figures(engine, repeats).items():
            result.setdefault(key, {})[runtime] = value
    result["text tower variants"] = text_variants(folder, threads, repeats, engines["onnx"])
    return result


def print_table(name: str, result: dict) -> None:
    print(f"\n## {name}\n\n| median | torch Engine | ONNX Runtime | ratio |\n|---|---|---|---|")
    for key, value in result.items():
        if isinstance(value, dict) and "torch" in value:
            print(f"| {key} | {value['torch']:.3g} | {value['onnx']:.3g} | {value['onnx'] / value['torch']:.2f} |")
    print(f"\nprocess imported torch: torch runtime {result['torch process imported torch']}, "
          f"onnx runtime {result['onnx process imported torch']}")
    print_variants(result)


def print_variants(result: dict) -> None:
    print("\n| text tower | 1 prompt (ms) | min cosine to fp32 | max abs dp zero-shot | file (MB) |\n|---|---|---|---|---|")
    for label, row in result["text tower variants"].items():
        print(f"| {label} | {row['1 prompt (ms)']:.3g} | {row['min cosine to fp32']:.6f} | "
              f"{row['max |dp| zero-shot']:.2e} | {row['file (MB)']:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cold", type=int, default=3, help="cold-start runs per runtime and model")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cxrclip-onnx-bench"))
    parser.add_argument("--skip-paper", action="store_true", help="demo model only")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--variants-only", action="store_true", help="only the text-tower variants table")
    parser.add_argument("--spinning", action="store_true",
                        help="only: ORT worker threads spinning after a run (ORT's default) vs not (the engine's)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    import onnxruntime
    import torch

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads; "
          f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}", flush=True)
    folders = prepare(args.workdir, args.skip_paper)
    results = {}
    for name, folder in folders.items():
        if args.spinning:
            results[name] = spinning(folder, args.threads, args.repeats)
            print_spinning(name, results[name])
            continue
        if args.variants_only:
            results[name] = variants_only(folder, args.threads, args.repeats)
            print(f"\n## {name}")
            print_variants(results[name])
            continue
        results[name] = compare(folder, args.threads, args.repeats, args.cold)
        print_table(name, results[name])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
