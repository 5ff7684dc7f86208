"""Which image vector should the out-of-distribution guard score? Both, side by side.

    python benchmarks/ood_representations.py --model assets/models/cxrclip-demo \
        --stats runs/demo-build/ood --threshold-data runs/demo-build/val --split validate \
        --heldout runs/trust/phantoms_seed8 runs/trust/phantoms_seed9

Fits the guard exactly as ``cxrclip calibrate --ood-data`` does (Mahalanobis to every view
of ``--stats``, threshold = 99.5th percentile of every view of ``--threshold-data``'s
split) once per representation of `cxrclip.ood` (``mean_feature_map``: the projected
feature map's spatial mean, not normalised; ``unit_embedding``: the L2-normalised image
embedding), from one image-tower pass per view, and reports for each: the share of the
held-out phantom views flagged (false-OOD rate) and, for the real, non-chest and blank
images of `training.evaluation.ood_examples` (pydicom-data's CR chest radiograph and its
8 mild variants among them), how many are flagged and the smallest distance / threshold
ratio. The model folder is not changed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cxrclip.engine import Engine  # noqa: E402
from cxrclip.ood import REPRESENTATIONS, OODGuard  # noqa: E402
from training.data.manifest import read_manifest  # noqa: E402
from training.evaluation.embedding import all_view_vectors  # noqa: E402
from training.evaluation.ood_examples import example_views  # noqa: E402

PERCENTILE = 99.5


def _vectors(engine: Engine, folders: list[Path], split: str | None) -> dict[str, np.ndarray]:
    embeddings, mean_maps = all_view_vectors(engine, [read_manifest(f) for f in folders], split)
    return {"unit_embedding": embeddings, "mean_feature_map": mean_maps}


def compare(engine: Engine, stats: list[Path], threshold_data: list[Path], split: str,
            heldout: list[Path]) -> list[dict]:
    fit_on, threshold_on = _vectors(engine, stats, None), _vectors(engine, threshold_data, split)
    held = [_vectors(engine, [folder], None) for folder in heldout]
    views = example_views()[0]
    embeddings, mean_maps = engine.image_vectors([view.pixels for _, _, view in views])
    examples = {"unit_embedding": embeddings, "mean_feature_map": mean_maps}
    rows = []
    for name in REPRESENTATIONS:
        guard = OODGuard.fit(fit_on[name], representation=name)
        threshold = guard.set_threshold(threshold_on[name], PERCENTILE)
        ratios = guard.scores(examples[name]) / threshold
        real = [r for (label, _, _), r in zip(views, ratios) if label.startswith("RG1")]
        rows.append({"representation": name, "threshold": round(threshold, 3),
                     "false_ood": [round(float((guard.scores(h[name]) > threshold).mean()), 4) for h in held],
                     "examples_flagged": f"{int((ratios > 1).sum())}/{len(ratios)}",
                     "real_chest_flagged": f"{sum(r > 1 for r in real)}/{len(real)}",
                     "lowest_ratio_real_chest": round(float(min(real)), 3) if real else None,
                     "lowest_ratio_all": round(float(ratios.min()), 3)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO / "assets" / "models" / "cxrclip-demo")
    parser.add_argument("--stats", type=Path, nargs="+", required=True)
    parser.add_argument("--threshold-data", type=Path, nargs="+", required=True)
    parser.add_argument("--split", default="validate")
    parser.add_argument("--heldout", type=Path, nargs="*", default=[])
    args = parser.parse_args(argv)
    engine = Engine.load(args.model, device="cpu")
    rows = compare(engine, args.stats, args.threshold_data, args.split, args.heldout)
    print(json.dumps({"model": str(args.model), "model_id": engine.model_id, "runtime": engine.runtime,
                      "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
