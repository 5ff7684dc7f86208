"""Cost of each heatmap kind with the bundled demo model, side by side in one run.

For every view of the sample studies (read as `cxrclip score` reads them), with the
runtime the viewer uses (`Engine.load(runtime="auto")`: ONNX Runtime when present):

- first map of a view: its image forwards (feature map; for "occlusion" and
  "agreement" also the occluded copies) plus the map;
- another finding on the same view: the cached forwards, text vectors and resampling.

Prints milliseconds (median over the views) and the ratio to "contribution", the
viewer's map before 2026-12-03 (third session). ``--resnet50`` measures a random
ResNet50 + MiniLM model instead (the image tower of the published checkpoints; torch
runtime, no normal reference), to size the occlusion pass for such a model.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/heatmap_kinds.py [--resnet50]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEMO = REPO / "assets" / "models" / "cxrclip-demo"
SAMPLES = REPO / "assets" / "sample_studies"
KINDS = ("contribution", "occlusion", "agreement")
FINDINGS = ("Cardiomegaly", "Pleural Effusion", "Pneumothorax")


def sample_views() -> list:
    """Every view of the sample studies, read as `cxrclip score` reads them (display rendering)."""
    from cxrclip.engine import ViewInput
    from cxrclip.image_io import read_file

    return [ViewInput(f"{path.parent.name}/{path.stem}", read_file(path).pixels)
            for path in sorted(SAMPLES.glob("*/*.dcm"))]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - start)


def measure(engine, views, kind: str, tag: str) -> tuple[float, float]:
    """(first map of a view, another finding on it), ms, median over the views."""
    from cxrclip.engine import ViewInput

    first, again = [], []
    for view in views:
        fresh = ViewInput(f"{tag}/{kind}/{view.view_id}", view.pixels)
        first.append(timed(lambda: engine.finding_map(fresh, FINDINGS[0], kind=kind, max_side=512)))
        again += [timed(lambda f=f: engine.finding_map(fresh, f, kind=kind, max_side=512)) for f in FINDINGS[1:]]
    return statistics.median(first), statistics.median(again)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(DEMO))
    parser.add_argument("--rounds", type=int, default=3, help="passes over the views (the first warms up)")
    parser.add_argument("--resnet50", action="store_true", help="a random ResNet50 + MiniLM model instead")
    args = parser.parse_args(argv)
    if args.resnet50:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from engine_bench import build_engine

        engine = build_engine("minilm")
    else:
        from cxrclip.engine import Engine

        engine = Engine.load(args.model)
    views = sample_views()
    for f in FINDINGS:
        engine.finding_map(views[0], f, kind="contribution")  # text vectors cached for every kind
    results = {k: [] for k in KINDS}
    for r in range(args.rounds):
        for kind in KINDS:
            results[kind].append(measure(engine, views, kind, f"round{r}"))
    print(f"runtime {engine.runtime}, {len(views)} views, rounds {args.rounds} (first dropped)")
    def kept(kind: str) -> list[tuple[float, float]]:
        return results[kind][1:] or results[kind]

    base = statistics.median(t[0] for t in kept("contribution"))
    print("| kind | first map of a view (ms) | another finding, same view (ms) | first map / contribution's |")
    print("|---|---|---|---|")
    for kind in KINDS:
        first = statistics.median(t[0] for t in kept(kind))
        again = statistics.median(t[1] for t in kept(kind))
        print(f"| {kind} | {first:.1f} | {again:.1f} | {first / base:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
