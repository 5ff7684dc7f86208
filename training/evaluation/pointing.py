"""Pointing game of heatmaps on phantoms: does a finding's map peak inside its region?

For every held-out study that has a finding (ground truth, ``ground_truth.jsonl`` of
`training.phantoms`, whose ``regions`` give the finding's boxes per view in the written
PNG's pixels) the heatmap the viewer draws for it (`Engine.finding_map`: the zero-shot
recipe's ensemble pair, the vectors its score uses) is computed on the view, and
its peak (the largest value) scores a hit when it lies inside one of the boxes grown by
``tolerance`` feature-map cells (a cell = the model's crop side over the feature grid's
side, in image pixels: 40 px of a 160 px phantom for the 4 x 4 grid of the demo model).
``chance`` is the share of the image inside the grown boxes: the hit rate of a peak
placed at random.

    python -m training.evaluation.pointing --model assets/models/cxrclip-demo --data DIR
"""
from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrclip.engine import Engine, ViewInput

POINTING_FINDINGS = ("Pleural Effusion", "Pneumothorax", "Cardiomegaly", "Consolidation", "Lung Lesion")
RAW_CONTRIBUTION = "raw_contribution"
"""Evaluation-only kind: "contribution" without the folder's normal reference (the map before it)."""
FAST_KINDS = ("similarity", "probability", RAW_CONTRIBUTION, "contribution")
TOLERANCES = (0, 1)


@dataclass(frozen=True)
class PointingCase:
    """One finding on one view of one study, with its boxes in the view's pixels."""

    study_id: str
    finding: str
    view: str            # PA / AP / LATERAL
    image: Path
    boxes: tuple[tuple[int, int, int, int], ...]


def load_cases(data_dir: str | Path, findings: Sequence[str] = POINTING_FINDINGS,
               views: Sequence[str] = ("frontal",), limit: int | None = None) -> list[PointingCase]:
    """Cases of a phantom folder (``ground_truth.jsonl`` + ``png/``) for ``findings`` on
    ``views`` ("frontal" = PA or AP, "lateral" = LATERAL)."""
    root = Path(data_dir)
    truth = root / "ground_truth.jsonl"
    if not truth.is_file():
        raise FileNotFoundError(f"{truth} is missing: --data must be a folder written by "
                                "`cxrclip phantom generate --png`")
    wanted = {"PA", "AP"} if "frontal" in views else set()
    wanted |= {"LATERAL"} if "lateral" in views else set()
    cases: list[PointingCase] = []
    for line in truth.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        for f in row["findings"]:
            if f["name"] not in findings or "regions" not in f:
                continue
            for view, boxes in f["regions"].items():
                image = root / "png" / row["study_id"] / f"{view}.png"
                if view in wanted and boxes and image.is_file():
                    cases.append(PointingCase(row["study_id"], f["name"], view, image,
                                              tuple(tuple(b) for b in boxes)))
    return cases[:limit] if limit else cases


def peak(heatmap: np.ndarray) -> tuple[int, int]:
    """(row, column) of a map's largest value, NaNs ignored."""
    return tuple(int(i) for i in np.unravel_index(np.nanargmax(heatmap), heatmap.shape))  # type: ignore[return-value]


def grown(boxes: Sequence[Sequence[int]], margin: float) -> list[tuple[float, float, float, float]]:
    """Boxes ``[x0, y0, x1, y1)`` grown by ``margin`` pixels on every side."""
    return [(x0 - margin, y0 - margin, x1 + margin, y1 + margin) for x0, y0, x1, y1 in boxes]


def is_hit(point: tuple[int, int], boxes: Sequence[Sequence[float]]) -> bool:
    """Whether pixel (row, column) lies in one of the boxes."""
    row, col = point
    return any(x0 <= col < x1 and y0 <= row < y1 for x0, y0, x1, y1 in boxes)


def area_share(boxes: Sequence[Sequence[float]], height: int, width: int) -> float:
    """Share of the image covered by the union of the boxes (clipped to the image)."""
    covered = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        covered[max(0, int(np.floor(y0))):max(0, int(np.ceil(y1))),
                max(0, int(np.floor(x0))):max(0, int(np.ceil(x1)))] = True
    return float(covered.mean())


def cell_pixels(engine: Engine, view: ViewInput) -> float:
    """One feature-map cell in the view's pixels: the crop side over the grid side."""
    from cxrclip.preprocess import crop_geometry

    height, width = np.asarray(view.pixels).shape[:2]
    geo = crop_geometry(height, width, engine.config.preprocess)
    grid = engine.feature_map(view).shape[-1]
    return float(geo.size / geo.scale_x / grid)


def _read(path: Path) -> np.ndarray:
    from cxrclip.image_io import read_image

    return read_image(path).pixels


def heatmap(engine: Engine, view: ViewInput, finding: str, kind: str) -> np.ndarray:
    """The viewer's map of ``kind`` for a finding (`Engine.finding_map`: the recipe's ensemble
    pair); `RAW_CONTRIBUTION` is "contribution" with the engine's heatmap reference set aside."""
    if kind != RAW_CONTRIBUTION:
        return engine.finding_map(view, finding, kind=kind)
    reference, engine.heatmap_reference = engine.heatmap_reference, None
    try:
        return engine.finding_map(view, finding, kind="contribution")
    finally:
        engine.heatmap_reference = reference


def score_case(engine: Engine, case: PointingCase, kinds: Sequence[str],
               timings: dict[str, list[float]]) -> dict[str, Any]:
    """Hits per kind and tolerance, and chance, for one case."""
    view = ViewInput(f"{case.study_id}/{case.view}", _read(case.image))
    cell = cell_pixels(engine, view)
    height, width = np.asarray(view.pixels).shape[:2]
    out: dict[str, Any] = {"finding": case.finding, "view": case.view,
                           "chance": {t: area_share(grown(case.boxes, t * cell), height, width)
                                      for t in TOLERANCES}}
    for kind in kinds:
        start = time.perf_counter()
        point = peak(heatmap(engine, view, case.finding, kind))
        timings.setdefault(kind, []).append(time.perf_counter() - start)
        out[kind] = {t: is_hit(point, grown(case.boxes, t * cell)) for t in TOLERANCES}
    return out


def summarise(rows: list[dict[str, Any]], kinds: Sequence[str]) -> dict[str, Any]:
    """Hit rate per kind, tolerance and finding (and over all findings), with chance and n."""
    findings = sorted({r["finding"] for r in rows})
    out: dict[str, Any] = {}
    for finding in [*findings, "all"]:
        mine = [r for r in rows if finding in ("all", r["finding"])]
        entry: dict[str, Any] = {"n": len(mine)}
        for t in TOLERANCES:
            entry[f"chance_tol{t}"] = float(np.mean([r["chance"][t] for r in mine]))
            for kind in kinds:
                entry[f"{kind}_tol{t}"] = float(np.mean([r[kind][t] for r in mine]))
        out[finding] = entry
    return out


def pointing_game(engine: Engine, cases: Sequence[PointingCase],
                  kinds: Sequence[str] = FAST_KINDS) -> dict[str, Any]:
    """Pointing game of ``kinds`` on ``cases``: per-finding hit rates and median ms per map."""
    if not cases:
        raise ValueError("no pointing cases: the data has none of the findings, or was written "
                         "before regions were recorded (regenerate it)")
    timings: dict[str, list[float]] = {}
    rows = [score_case(engine, case, kinds, timings) for case in cases]
    engine.clear_caches()
    return {"kinds": list(kinds), "tolerances_cells": list(TOLERANCES),
            "ms_per_map": {k: round(1000 * float(np.median(v)), 2) for k, v in timings.items()},
            "findings": summarise(rows, kinds)}


def markdown_table(result: dict[str, Any]) -> str:
    """Hit rates as a Markdown table: strict (0 cells) / one-cell tolerance, and chance."""
    kinds = result["kinds"]
    head = "| finding | n | " + " | ".join(f"{k} (0 / 1 cell)" for k in kinds) + " | chance (0 / 1 cell) |"
    lines = [head, "|---|---|" + "---|" * (len(kinds) + 1)]
    for finding, e in result["findings"].items():
        cells = [f"{e[f'{k}_tol0']:.2f} / {e[f'{k}_tol1']:.2f}" for k in kinds]
        lines.append(f"| {finding} | {e['n']} | " + " | ".join(cells)
                     + f" | {e['chance_tol0']:.2f} / {e['chance_tol1']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: print the pointing game's table (and write JSON with ``--out``)."""
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.pointing",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--data", required=True, help="phantom folder (cxrclip phantom generate --png)")
    parser.add_argument("--kinds", default=",".join(FAST_KINDS),
                        help="comma-separated map kinds (similarity, probability, raw_contribution, contribution, "
                             "occlusion, agreement)")
    parser.add_argument("--views", default="frontal", help="frontal, lateral or frontal,lateral")
    parser.add_argument("--limit", type=int, default=None, help="at most this many cases")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    from training.evaluation.cli_report import run_and_report

    def compute() -> dict[str, Any]:
        cases = load_cases(args.data, views=args.views.split(","), limit=args.limit)
        return pointing_game(Engine.load(args.model), cases, args.kinds.split(","))

    return run_and_report(compute, args.out,
                          lambda r: f"{markdown_table(r)}\nms per map: {r['ms_per_map']}")


if __name__ == "__main__":
    raise SystemExit(main())
