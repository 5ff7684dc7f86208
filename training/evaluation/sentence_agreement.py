"""Do the nearest report sentences agree with the study? Measured on held-out phantoms.

For each study the top-5 sentences of the model's sentence bank nearest to the study
embedding (both views, as the viewer's Report panel; comparisons with a prior study left
out, as the viewer does without a prior) are checked against the study's ground truth
(`cxrclip.report_mentions.contradicts_study`): a sentence *contradicts* when it asserts
or suggests a finding the study lacks, negates one it has (on an overlapping side), or
calls a study with findings normal. Agreement = share of the shown sentences that do not
contradict. Two rankings are measured side by side:

- ``nearest``: the plain top 5 (the viewer before);
- ``agreeing``: the top 5 after dropping candidates that contradict the study's own
  calibrated zero-shot findings (`cxrclip.sentence_bank.agreeing`).

    python -m training.evaluation.sentence_agreement --model DIR --data DIR [--bank DIR]
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrclip.engine import Engine, StudyInput, ViewInput
from cxrclip.report_mentions import contradicts_study, needs_prior, side_of_ground_truth, study_mentions
from cxrclip.sentence_bank import OVERFETCH, SentenceBank, agreeing, zero_shot_mentions

TOP_K = 5
DEFAULT_BANK = Path(__file__).resolve().parents[2] / "assets" / "sentence_bank"


def ground_truth_rows(data_dir: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of a phantom folder's ``ground_truth.jsonl``."""
    path = Path(data_dir) / "ground_truth.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: --data must be a folder written by "
                                "`cxrclip phantom generate --png`")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return rows[:limit] if limit else rows


def truth_mentions(row: dict[str, Any]) -> list:
    """The study's ground truth as mentions (every CheXpert finding it lacks is absent)."""
    from cxrclip.prompts import CHEXPERT_14

    present = {f["name"]: side_of_ground_truth(f.get("side")) for f in row["findings"]}
    return study_mentions(present, list(CHEXPERT_14))


def study_input(data_dir: Path, study_id: str) -> StudyInput:
    """Both written views of a phantom study."""
    from cxrclip.image_io import read_image

    views = [ViewInput(f"{study_id}/{p.stem}", read_image(p).pixels, p.stem)
             for p in sorted((data_dir / "png" / study_id).glob("*.png"))]
    return StudyInput(study_id, views)


def agreement_share(sentences: Sequence[str], truth: Sequence) -> float:
    """Share of ``sentences`` that do not contradict the ground truth."""
    return float(np.mean([contradicts_study(s, truth) is None for s in sentences])) if sentences else 1.0


def score_study(engine: Engine, bank: SentenceBank, data_dir: Path, row: dict[str, Any]) -> dict[str, Any]:
    """Agreement of both rankings for one study, and its top sentence of each."""
    study = study_input(data_dir, row["study_id"])
    candidates = bank.nearest(engine.study_embedding(study), TOP_K * OVERFETCH)
    plain = [n.sentence for n in candidates if not needs_prior(n.sentence)][:TOP_K]
    kept = [n.sentence for n in agreeing(candidates, zero_shot_mentions(engine.zero_shot(study)), TOP_K)]
    truth = truth_mentions(row)
    normal = not {f["name"] for f in row["findings"]} - {"Support Devices"}
    return {"study_id": row["study_id"], "normal": normal, "nearest": agreement_share(plain, truth),
            "agreeing": agreement_share(kept, truth), "shown": len(kept),
            "contradicting": [s for s in plain if contradicts_study(s, truth)]}


def sentence_agreement(engine: Engine, bank: SentenceBank, data_dir: str | Path,
                       limit: int | None = None) -> dict[str, Any]:
    """Mean agreement of both rankings over a phantom folder (all studies and normal ones)."""
    rows = [score_study(engine, bank, Path(data_dir), r) for r in ground_truth_rows(data_dir, limit)]
    engine.clear_caches()
    normal = [r for r in rows if r["normal"]]
    worst: dict[str, int] = {}
    for r in rows:
        for s in r["contradicting"]:
            worst[s] = worst.get(s, 0) + 1
    return {"k": TOP_K, "studies": len(rows), "normal_studies": len(normal),
            "nearest": float(np.mean([r["nearest"] for r in rows])),
            "agreeing": float(np.mean([r["agreeing"] for r in rows])),
            "nearest_normal": float(np.mean([r["nearest"] for r in normal])) if normal else None,
            "agreeing_normal": float(np.mean([r["agreeing"] for r in normal])) if normal else None,
            "mean_shown_agreeing": float(np.mean([r["shown"] for r in rows])),
            "most_contradicting_nearest": sorted(worst.items(), key=lambda kv: -kv[1])[:5]}


def load_bank(engine: Engine, bank_root: Path) -> SentenceBank:
    """The bank under ``bank_root`` (or a sub-folder) built with the engine's model."""
    for folder in [bank_root, *sorted(p for p in bank_root.iterdir() if p.is_dir())]:
        if (folder / "bank.json").is_file():
            try:
                return engine.load_bank(folder)
            except ValueError:
                continue
    raise FileNotFoundError(f"no sentence bank for model {engine.model_id} under {bank_root}; "
                            "build one with `cxrclip bank build`")


def main(argv: list[str] | None = None) -> int:
    """Command line: print both agreements (and write JSON with ``--out``)."""
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.sentence_agreement",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--data", required=True, help="phantom folder (cxrclip phantom generate --png)")
    parser.add_argument("--bank", default=str(DEFAULT_BANK), help="sentence bank folder")
    parser.add_argument("--limit", type=int, default=None, help="at most this many studies")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    from training.evaluation.cli_report import run_and_report

    def compute() -> dict[str, Any]:
        engine = Engine.load(args.model)
        return sentence_agreement(engine, load_bank(engine, Path(args.bank)), args.data, args.limit)

    return run_and_report(compute, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
