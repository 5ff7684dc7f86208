"""Every figure of "scores a reader can trust" for one model, from one command.

    python -m training.evaluation.trust_figures --model assets/models/cxrclip-demo --out runs/trust

Generates fresh held-out phantoms (two seeds, PNG only) under ``--out`` unless they are
there, then measures with the project's evaluation code: per-finding AUROC, ECE/Brier
before and after calibration, operating-point sensitivity/specificity and false-OOD rate
(`training.evaluation.runner`, the viewer's recipe), AUROC with held-out radiologist
wording (`robustness`), the pointing game of heatmaps (`pointing`) and the agreement of
the nearest report sentences (`sentence_agreement`). Writes ``trust_figures.json`` and
``trust_figures.md`` (a Markdown section for the model card and benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

SEEDS = (8, 9)
STUDIES = 300
IMAGE_SIZE = 160
POINTING_KINDS = ("similarity", "contribution", "occlusion")
OCCLUSION_CASES = 150   # occlusion costs ~0.3-0.5 s per map; measured on the first cases only


def ensure_phantoms(out: Path, seed: int, studies: int) -> Path:
    """A held-out phantom folder for ``seed`` (generated once)."""
    from training.phantoms.dataset import GenerateOptions, generate_dataset

    folder = out / f"phantoms_seed{seed}"
    if not (folder / "ground_truth.jsonl").is_file():
        generate_dataset(GenerateOptions(out=folder, seed=seed, size=IMAGE_SIZE, dicom=False,
                                         split="test"), studies=studies, workers=1)
    return folder


def binary_figures(model: str, folder: Path) -> dict[str, Any]:
    """`cxrclip eval` binary + ood on a folder, the viewer's recipe, blank = negative."""
    from training.evaluation.runner import EvalRequest, run_evaluation

    req = EvalRequest(model_dir=model, data=[str(folder)], split="test", tasks=["binary", "ood"],
                      blank_as_negative=True, binary_prompts="ensemble")
    return run_evaluation(req)


def pointing_figures(engine: Any, folders: list[Path]) -> dict[str, Any]:
    """Fast kinds on every case of both seeds; occlusion on the first ``OCCLUSION_CASES``."""
    from training.evaluation.pointing import load_cases, pointing_game

    cases = [c for folder in folders for c in load_cases(folder)]
    fast = pointing_game(engine, cases, [k for k in POINTING_KINDS if k != "occlusion"])
    subset = pointing_game(engine, cases[:OCCLUSION_CASES], list(POINTING_KINDS))
    return {"all_cases": fast, "occlusion_subset": subset}


def measure(model: str, out: Path, studies: int) -> dict[str, Any]:
    """All figures as one JSON-ready dict."""
    from cxrclip.engine import Engine
    from training.evaluation.robustness import robustness_auroc
    from training.evaluation.sentence_agreement import DEFAULT_BANK, load_bank, sentence_agreement

    folders = [ensure_phantoms(out, seed, studies) for seed in SEEDS]
    engine = Engine.load(model)
    bank = load_bank(engine, DEFAULT_BANK)
    return {
        "model": model, "seeds": list(SEEDS), "studies_per_seed": studies,
        "binary": {str(s): binary_figures(model, f) for s, f in zip(SEEDS, folders)},
        "robustness": {str(s): robustness_auroc(engine, [str(f)]) for s, f in zip(SEEDS, folders)},
        "pointing": pointing_figures(engine, folders),
        "sentences": {str(s): sentence_agreement(engine, bank, f) for s, f in zip(SEEDS, folders)},
    }


def _binary_rows(figures: dict[str, Any]) -> list[str]:
    seeds = list(figures["binary"])
    lines = ["| finding | " + " | ".join(f"AUROC seed {s}" for s in seeds)
             + " | ECE raw → calibrated | sensitivity / specificity at the point |",
             "|---|" + "---|" * (len(seeds) + 2)]
    first = figures["binary"][seeds[0]]["binary"]
    for name in sorted(first):
        if "auroc" not in first[name]:
            continue
        aucs = [f"{figures['binary'][s]['binary'][name]['auroc']:.3f}" for s in seeds]
        e = first[name]
        ece = f"{e['ece_raw']:.3f} → {e['ece']:.3f}" if "ece" in e else f"{e['ece_raw']:.3f} → –"
        op = f"{e['sensitivity']:.2f} / {e['specificity']:.2f}" if "sensitivity" in e else "–"
        lines.append(f"| {name} | " + " | ".join(aucs) + f" | {ece} | {op} |")
    return lines


def _macro(binary: dict[str, Any]) -> float:
    aucs = [v["auroc"] for k, v in binary["binary"].items() if "auroc" in v and k != "No Finding"]
    return float(np.mean(aucs))


def markdown(figures: dict[str, Any]) -> str:
    """The figures as a Markdown section."""
    from training.evaluation.pointing import markdown_table

    seeds = list(figures["binary"])
    lines = [f"Held-out phantoms: {figures['studies_per_seed']} studies per seed, seeds "
             f"{', '.join(seeds)} (frontal view for AUROC; findings a report does not mention count "
             "as absent). ECE and operating points on the first seed.", ""]
    lines += _binary_rows(figures) + [""]
    for s in seeds:
        b, r, a = figures["binary"][s], figures["robustness"][s], figures["sentences"][s]
        ood = b.get("ood", {})
        lines.append(f"- seed {s}: macro AUROC over 13 findings {_macro(b):.3f}; robustness prompts "
                     f"{r['macro_robust']:.3f} (same studies, the viewer's ensembles {r['macro_ensemble']:.3f}); "
                     f"false-OOD rate {ood.get('false_ood_rate', float('nan')):.4f} of "
                     f"{ood.get('n_views', 0)} views; nearest-sentence agreement (top 5) "
                     f"{a['nearest']:.3f} → {a['agreeing']:.3f} with the agreement filter "
                     f"(normal studies {a['nearest_normal']:.3f} → {a['agreeing_normal']:.3f}).")
    point = figures["pointing"]
    lines += ["", "Pointing game (hit rate, peak inside the finding's box: strict / grown by one "
              "feature-map cell; chance = share of the image inside the box), all frontal cases:", "",
              markdown_table(point["all_cases"]), "",
              f"Occlusion on the first {point['occlusion_subset']['findings']['all']['n']} cases, "
              "side by side:", "", markdown_table(point["occlusion_subset"]), "",
              f"ms per map (median, this machine): {point['occlusion_subset']['ms_per_map']}"]
    return "\n".join(lines)


def write_markdown(out: Path) -> str:
    """(Re)write ``trust_figures.md`` from ``trust_figures.json`` in ``out``."""
    text = markdown(json.loads((out / "trust_figures.json").read_text(encoding="utf-8")))
    (out / "trust_figures.md").write_text(text + "\n", encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    """Command line: measure, write ``trust_figures.json`` and ``trust_figures.md``."""
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.trust_figures",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="assets/models/cxrclip-demo", help="model folder")
    parser.add_argument("--out", default="runs/trust", help="output folder (phantoms are kept here)")
    parser.add_argument("--studies", type=int, default=STUDIES, help="studies per seed")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        figures = measure(args.model, out, args.studies)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    (out / "trust_figures.json").write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    print(write_markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
