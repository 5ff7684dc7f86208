"""Archive search quality and build throughput on a held-out phantom archive.

Generates ``--studies`` phantom studies with seed 11 (the demo model was trained on
seeds 1-5), builds an index with the bundled demo model, and measures against the
generator's ground truth (``ground_truth.jsonl``: CheXpert labels per StudyInstanceUID):

- precision@10 of plain text queries (the generator's wording and one it never uses) for
  both text rules (``contrast``: P(query vs "no query"), ``cosine``), over all views and over
  frontal views only (``--where view!=LL``);
- ``--like`` for studies sharing a large finding (effusion, pneumothorax, cardiomegaly,
  edema): precision@10, hit rate@10 (at least one relevant study in the top 10) and the
  base rate (a random study shares a finding), for the two study rules;
- build throughput (views/s) of ONNX Runtime and torch, side by side on the same subset.

    python benchmarks/archive_quality.py --studies 2000 --out runs/archive_quality
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import time
from pathlib import Path

LARGE = ("Pleural Effusion", "Pneumothorax", "Cardiomegaly", "Edema")
QUERIES = {  # finding: (generator wording, a wording the generator never uses)
    "Pleural Effusion": ("pleural effusion", "fluid around the lung"),
    "Pneumothorax": ("pneumothorax", "collapsed lung"),
    "Cardiomegaly": ("cardiomegaly", "big heart"),
    "Edema": ("pulmonary edema", "fluid overload in the lungs"),
}
SEED = 11
MODEL = Path(__file__).resolve().parents[1] / "assets" / "models" / "cxrclip-demo"


def generate(out: Path, studies: int, size: int, workers: int) -> Path:
    """The phantom archive (DICOM only), reused when already complete."""
    from training.phantoms.dataset import GenerateOptions, generate_dataset

    truth = out / "ground_truth.jsonl"
    if truth.is_file() and sum(1 for _ in truth.open()) == studies:
        return out
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    generate_dataset(GenerateOptions(out=out, seed=SEED, size=size, png=False), studies, workers=workers)
    print(f"generated {studies} studies in {time.perf_counter() - started:.0f} s")
    return out


def positives(archive: Path) -> dict[str, set[str]]:
    """{StudyInstanceUID: findings labelled 1.0} from the generator's ground truth."""
    out = {}
    for line in (archive / "ground_truth.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        out[row["study_uid"]] = {name for name, value in row["labels"].items() if value == 1.0}
    return out


def build(sources: list[Path], index_dir: Path, runtime: str, workers: int, batch_size: int) -> dict:
    """Build an index from scratch with the demo model; returns the throughput figures."""
    from cxrclip.engine import Engine
    from cxrclip.index import build_index
    from cxrclip.index.build import remove_index

    remove_index(index_dir)
    engine = Engine.load(MODEL, device="cpu", runtime=runtime)
    engine.zero_shot_classifier()  # encode the ensembles before the clock starts (cached by the engine)
    report = build_index(sources, index_dir, engine, batch_size=batch_size, workers=workers, model_dir=MODEL)
    return {"runtime": engine.runtime, "views": report.added, "failed": report.failed,
            "seconds": round(report.seconds, 1), "views_per_s": round(report.views_per_second, 2)}


def subset(archive: Path, patients: int) -> list[Path]:
    """The first ``patients`` patient folders of the archive (for the side-by-side throughput run)."""
    return sorted(p for p in (archive / "dicom").iterdir() if p.is_dir())[:patients]


def precision_at_10(index, engine, truth: dict[str, set[str]], where: list[str], rule: str) -> dict:
    """precision@10 per (finding, wording) and the median query latency (text embeddings cached)."""
    out, latencies = {}, []
    for finding, wordings in QUERIES.items():
        for text in wordings:
            engine.encode_text([text, "no " + text])
            started = time.perf_counter()
            hits = index.search_text(engine, text, k=10, where=where, rule=rule)
            latencies.append(time.perf_counter() - started)
            relevant = [finding in truth.get(h.study_uid or "", set()) for h in hits]
            out[f"{finding} | {text}"] = round(sum(relevant) / 10, 2)
    return {"rule": rule, "where": where, "precision_at_10": out,
            "median_query_ms": round(1000 * statistics.median(latencies), 1)}


def like_figures(index, engine, truth: dict[str, set[str]], queries: int, rule: str) -> dict:
    """--like precision@10 and hit rate@10 for studies sharing a large finding, with the base rate."""
    rows = index.store.conn.execute("SELECT study_key, study_uid FROM studies").fetchall()
    large = {key: truth.get(uid or "", set()) & set(LARGE) for key, uid in rows}
    candidates = sorted(k for k, f in large.items() if f)
    chosen = random.Random(SEED).sample(candidates, min(queries, len(candidates)))
    precisions, hits_any, base = [], [], []
    for key in chosen:
        found = index.search_like(engine, key, k=10, rule=rule)
        shared = [bool(large[h.study_key] & large[key]) for h in found]
        precisions.append(sum(shared) / max(len(shared), 1))
        hits_any.append(any(shared))
        base.append(sum(bool(f & large[key]) for k, f in large.items() if k != key) / (len(large) - 1))
    return {"rule": rule, "queries": len(chosen), "precision_at_10": round(statistics.mean(precisions), 3),
            "hit_rate_at_10": round(statistics.mean(hits_any), 3), "base_rate": round(statistics.mean(base), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256, help="DICOM image size")
    parser.add_argument("--out", type=Path, default=Path("runs/archive_quality"))
    parser.add_argument("--workers", type=int, default=2, help="generation and decoding processes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--throughput-patients", type=int, default=100,
                        help="patients (2 views each) in the ONNX vs torch throughput run")
    parser.add_argument("--like-queries", type=int, default=200)
    parser.add_argument("--reuse-index", action="store_true",
                        help="keep the indexes and build figures of an earlier run (measure searches only)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    archive = generate(args.out / f"phantoms-seed{SEED}-{args.studies}", args.studies, args.size, args.workers)
    truth = positives(archive)
    builds = args.out / "builds.json"
    if not (args.reuse_index and builds.is_file()):
        part = subset(archive, args.throughput_patients)
        throughput = [build(part, args.out / f"index-subset-{rt}", rt, args.workers, args.batch_size)
                      for rt in ("onnx", "torch")]
        full = build([archive / "dicom"], args.out / "index", "onnx", args.workers, args.batch_size)
        builds.write_text(json.dumps({"full": full, "subset": throughput}), encoding="utf-8")
    figures = json.loads(builds.read_text(encoding="utf-8"))

    from cxrclip.engine import Engine
    from cxrclip.index import open_index

    engine = Engine.load(MODEL, device="cpu", runtime="onnx")
    with open_index(args.out / "index") as index:
        results = {"studies": args.studies, "seed": SEED, "build_full": figures["full"],
                   "throughput_subset": figures["subset"],
                   "text": [precision_at_10(index, engine, truth, where, rule)
                            for rule in ("contrast", "cosine") for where in ([], ["view!=LL"])],
                   "like": [like_figures(index, engine, truth, args.like_queries, rule)
                            for rule in ("max_pair", "mean")]}
    (args.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
