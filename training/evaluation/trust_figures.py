"""Every figure of "scores a reader can trust" for one model, from one command.

    python -m training.evaluation.trust_figures --model assets/models/cxrclip-demo --out runs/trust

Generates fresh held-out phantoms (two seeds, PNG only) under ``--out`` unless they are
there, then measures with the project's evaluation code: per-finding AUROC, ECE/Brier
before and after calibration, operating-point sensitivity/specificity and false-OOD rate
(`training.evaluation.runner`, the viewer's recipe), AUROC with held-out radiologist
wording (`robustness`), the pointing game of heatmaps (`pointing`) and the agreement of
the nearest report sentences (`sentence_agreement`), and the OOD guard's verdict on real,
non-chest and blank images (`ood_examples`). Writes ``trust_figures.json`` and
``trust_figures.md`` (a Markdown section for the model card and benchmarks/RESULTS.md);
``--card`` also puts that section into the model's ``MODEL_CARD.md`` (between markers,
replaced on re-runs), a summary into ``model_card.json`` (``extra.trust_figures``) and
rewrites ``MANIFEST.sha256``.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SEEDS = (8, 9)
STUDIES = 300
IMAGE_SIZE = 160   # the smallest phantom side; a model with a larger input gets phantoms of its own size
LARGE_SEED, LARGE_STUDIES, LARGE_SIZE = 10, 100, 1024   # phantoms as DICOM phantoms and the samples are drawn
POINTING_KINDS = ("similarity", "raw_contribution", "contribution", "occlusion", "agreement")
OCCLUSION_KINDS = ("occlusion", "agreement")   # one set of occluded image forwards per view (~0.15 s)


COMMAND = "make trust-figures"
CARD_START = "<!-- trust-figures:start (written by python -m training.evaluation.trust_figures --card) -->"
CARD_END = "<!-- trust-figures:end -->"


@dataclass(frozen=True)
class TrustRun:
    """What to measure: the model, where phantoms and results go, and the sizes."""

    model: str
    out: Path
    studies: int = STUDIES
    size: int | None = None   # default: the model's input size, at least IMAGE_SIZE
    occlusion_cases: int | None = None   # cases that get the occlusion kinds (None: all)
    bank: Path | None = None   # default: the project's bank built with this model
    large_studies: int = LARGE_STUDIES   # phantoms drawn at large_size for a false-OOD rate (0: none)
    large_size: int = LARGE_SIZE


def ensure_phantoms(out: Path, seed: int, studies: int, size: int = IMAGE_SIZE) -> Path:
    """A held-out phantom folder for ``seed`` (generated once, kept for re-runs)."""
    from training.phantoms.dataset import GenerateOptions, generate_dataset

    folder = out / f"phantoms_seed{seed}"
    if not (folder / "ground_truth.jsonl").is_file():
        generate_dataset(GenerateOptions(out=folder, seed=seed, size=size, dicom=False,
                                         split="test"), studies=studies, workers=1)
    return folder


def large_phantom_ood(engine: Any, run: TrustRun) -> dict[str, Any] | None:
    """False-OOD rate on phantoms drawn at ``run.large_size`` px and shrunk by the model's
    preprocessing, as `cxrclip phantom` DICOMs (1024 px) and the sample studies reach the viewer."""
    from training.data.manifest import read_manifest
    from training.evaluation.runner import out_of_distribution

    if run.large_studies <= 0:
        return None
    folder = ensure_phantoms(run.out / f"large{run.large_size}", LARGE_SEED, run.large_studies, run.large_size)
    return {"seed": LARGE_SEED, "studies": run.large_studies, "size": run.large_size,
            **out_of_distribution(engine, [read_manifest(folder)], "test")}


def phantom_size(model_input: int) -> int:
    """Held-out phantoms at the model's input side (never upsampled into it), at least IMAGE_SIZE."""
    return max(IMAGE_SIZE, int(model_input))


def binary_figures(model: str, folder: Path) -> dict[str, Any]:
    """`cxrclip eval` binary + ood on a folder, the viewer's recipe, blank = negative, each study
    scored from all its views as the viewer scores it; beside it (``frontal_only``) the macro
    AUROC and per-finding AUROCs of the frontal view alone (the paper's evaluation)."""
    from training.evaluation.runner import EvalRequest, run_evaluation

    def request(tasks: list[str], views: str) -> EvalRequest:
        return EvalRequest(model_dir=model, data=[str(folder)], split="test", tasks=tasks,
                           blank_as_negative=True, binary_prompts="ensemble", views=views)

    figures = run_evaluation(request(["binary", "ood"], "study"))
    frontal = run_evaluation(request(["binary"], "frontal"))
    figures["frontal_only"] = {"binary_macro": frontal["binary_macro"],
                               "auroc": {k: v["auroc"] for k, v in frontal["binary"].items() if "auroc" in v}}
    return figures


def pointing_figures(engine: Any, folders: list[Path], occlusion_cases: int | None = None) -> dict[str, Any]:
    """Every kind on every case of both seeds; with ``occlusion_cases`` the occlusion kinds
    only on the first that many (0: none), side by side with the others."""
    from training.evaluation.pointing import load_cases, pointing_game

    cases = [c for folder in folders for c in load_cases(folder)]
    if occlusion_cases is None or occlusion_cases >= len(cases):
        return {"all_cases": pointing_game(engine, cases, list(POINTING_KINDS)), "occlusion_subset": None}
    fast = pointing_game(engine, cases, [k for k in POINTING_KINDS if k not in OCCLUSION_KINDS])
    subset = pointing_game(engine, cases[:occlusion_cases], list(POINTING_KINDS)) if occlusion_cases > 0 else None
    return {"all_cases": fast, "occlusion_subset": subset}


def measure(run: TrustRun) -> dict[str, Any]:
    """All figures as one JSON-ready dict."""
    from cxrclip.engine import Engine
    from training.evaluation.ood_examples import ood_examples
    from training.evaluation.robustness import robustness_auroc
    from training.evaluation.sentence_agreement import DEFAULT_BANK, load_bank, sentence_agreement

    engine = Engine.load(run.model)
    size = run.size or phantom_size(engine.config.preprocess.resize_shorter)
    folders = [ensure_phantoms(run.out, seed, run.studies, size) for seed in SEEDS]
    bank = load_bank(engine, run.bank or DEFAULT_BANK)
    return {
        "model": run.model, "seeds": list(SEEDS), "studies_per_seed": run.studies,
        "phantom_size": size,
        "binary": {str(s): binary_figures(run.model, f) for s, f in zip(SEEDS, folders)},
        "robustness": {str(s): robustness_auroc(engine, [str(f)], views="study") for s, f in zip(SEEDS, folders)},
        "ood_examples": ood_examples(engine),
        "large_phantoms_ood": large_phantom_ood(engine, run),
        "pointing": pointing_figures(engine, folders, run.occlusion_cases),
        "sentences": {str(s): sentence_agreement(engine, bank, f) for s, f in zip(SEEDS, folders)},
    }


def _scored(binary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The findings of one `cxrclip eval` result that have an AUROC."""
    return {k: v for k, v in binary["binary"].items() if "auroc" in v}


def _binary_rows(figures: dict[str, Any]) -> list[str]:
    seeds = list(figures["binary"])
    lines = ["| finding | " + " | ".join(f"AUROC seed {s}" for s in seeds)
             + " | ECE raw → calibrated | sensitivity / specificity at the point |",
             "|---|" + "---|" * (len(seeds) + 2)]
    first = _scored(figures["binary"][seeds[0]])
    for name in sorted(first):
        aucs = [_auroc_cell(_scored(figures["binary"][s]).get(name, {})) for s in seeds]
        e = first[name]
        ece = f"{e['ece_raw']:.3f} → {e['ece']:.3f}" if "ece" in e else f"{e['ece_raw']:.3f} → –"
        op = f"{e['sensitivity']:.2f} / {e['specificity']:.2f}" if "sensitivity" in e else "–"
        lines.append(f"| {name} | " + " | ".join(aucs) + f" | {ece} | {op} |")
    return lines


def _auroc_cell(entry: dict[str, Any]) -> str:
    """"0.948 (0.93–0.96)": an AUROC with its study-bootstrap 95 % interval when there is one."""
    ci = entry.get("auroc_ci95")
    return _fmt(entry.get("auroc")) + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else "")


def _macro(binary: dict[str, Any]) -> float:
    """Macro AUROC over the findings except No Finding (13 for CheXpert)."""
    return float(np.mean([v["auroc"] for k, v in _scored(binary).items() if k != "No Finding"]))


def _mean(binary: dict[str, Any], key: str) -> float | None:
    """Mean of ``key`` over the findings that have it (None when none has)."""
    values = [v[key] for v in _scored(binary).values() if key in v]
    return float(np.mean(values)) if values else None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def seed_summary(figures: dict[str, Any], seed: str) -> dict[str, Any]:
    """The headline numbers of one seed (also stored in the model card's JSON)."""
    b, r, a = figures["binary"][seed], figures["robustness"][seed], figures["sentences"][seed]
    ood = b.get("ood", {})
    frontal = (b.get("frontal_only") or {}).get("binary_macro") or {}
    return {"macro_auroc_13": _macro(b), "macro_auroc_13_ci95": (b.get("binary_macro") or {}).get("ci95"),
            "macro_auroc_13_frontal": frontal.get("auroc"), "macro_auroc_13_frontal_ci95": frontal.get("ci95"),
            "no_finding_auroc": _scored(b).get("No Finding", {}).get("auroc"),
            "robustness_macro_auroc": r["macro_robust"], "ensemble_macro_auroc": r["macro_ensemble"],
            "mean_ece_raw": _mean(b, "ece_raw"), "mean_ece_calibrated": _mean(b, "ece"),
            "mean_sensitivity_at_point": _mean(b, "sensitivity"),
            "mean_specificity_at_point": _mean(b, "specificity"),
            "false_ood_rate": ood.get("false_ood_rate"), "ood_views": ood.get("n_views", 0),
            "sentences_nearest": a["nearest"], "sentences_agreeing": a["agreeing"],
            "sentences_nearest_normal": a["nearest_normal"], "sentences_agreeing_normal": a["agreeing_normal"],
            "auroc": {k: v["auroc"] for k, v in _scored(b).items()}}


def _seed_line(seed: str, s: dict[str, Any]) -> str:
    return (f"- seed {seed}: macro AUROC over 13 findings {_macro_text(s)}, No Finding "
            f"{_fmt(s['no_finding_auroc'])}; robustness prompts {s['robustness_macro_auroc']:.3f} (same "
            f"studies, the viewer's ensembles {s['ensemble_macro_auroc']:.3f}); mean ECE "
            f"{_fmt(s['mean_ece_raw'])} → {_fmt(s['mean_ece_calibrated'])}; at the operating points mean "
            f"sensitivity {_fmt(s['mean_sensitivity_at_point'], 2)}, specificity "
            f"{_fmt(s['mean_specificity_at_point'], 2)} (points fitted for specificity ≥ 0.9); "
            f"false-OOD rate {_fmt(s['false_ood_rate'], 4)} of {s['ood_views']} views; nearest-sentence "
            f"agreement (top 5) {s['sentences_nearest']:.3f} → {s['sentences_agreeing']:.3f} with the "
            f"agreement filter (normal studies {_fmt(s['sentences_nearest_normal'])} → "
            f"{_fmt(s['sentences_agreeing_normal'])}).")


def _macro_text(s: dict[str, Any]) -> str:
    """"0.951 (95 % interval 0.937–0.965; frontal view alone, the paper's evaluation: 0.948,
    0.932–0.964)"; the parts a summary lacks (figures written before 2026-12-04) are left out."""
    notes = []
    if s.get("macro_auroc_13_ci95"):
        notes.append("95 % interval {:.3f}–{:.3f}".format(*s["macro_auroc_13_ci95"]))
    if s.get("macro_auroc_13_frontal") is not None:
        ci = s.get("macro_auroc_13_frontal_ci95")
        notes.append(f"frontal view alone, the paper's evaluation: {s['macro_auroc_13_frontal']:.3f}"
                     + (", {:.3f}–{:.3f}".format(*ci) if ci else ""))
    return f"{s['macro_auroc_13']:.3f}" + (f" ({'; '.join(notes)})" if notes else "")


def _large_line(large: dict[str, Any] | None) -> list[str]:
    if not large:
        return []
    if "skipped" in large:
        return [f"- phantoms drawn at {large['size']} px: false-OOD rate not measured ({large['skipped']})."]
    return [f"- phantoms drawn at {large['size']} px and shrunk to the model's input (as `cxrclip phantom` "
            f"DICOMs and the sample studies reach the viewer; {large['studies']} studies, seed {large['seed']}): "
            f"false-OOD rate {large['false_ood_rate']:.4f} ({large['flagged']} of {large['n_views']} views)."]


def _pointing_lines(point: dict[str, Any]) -> list[str]:
    from training.evaluation.pointing import markdown_table

    lines = ["Pointing game (hit rate, peak inside the finding's box: strict / grown by one "
             "feature-map cell; chance = share of the image inside the box), all frontal cases:", "",
             markdown_table(point["all_cases"]), ""]
    subset = point["occlusion_subset"]
    if subset is None:  # every kind on every case, or --occlusion-cases 0
        return lines + [f"ms per map (median, this machine): {point['all_cases']['ms_per_map']}"]
    return lines + [f"Occlusion on the first {subset['findings']['all']['n']} cases, side by side:", "",
                    markdown_table(subset), "", f"ms per map (median, this machine): {subset['ms_per_map']}"]


def markdown(figures: dict[str, Any]) -> str:
    """The figures as a Markdown section."""
    from training.evaluation.ood_examples import markdown_rows

    seeds = list(figures["binary"])
    size = f" at {figures['phantom_size']} px" if "phantom_size" in figures else ""
    scoring = ("each study scored from both its views as the viewer scores it, the mean view embedding"
               if "frontal_only" in figures["binary"][seeds[0]] else "frontal view for AUROC")
    lines = [f"Held-out phantoms: {figures['studies_per_seed']} studies per seed{size}, seeds "
             f"{', '.join(seeds)} ({scoring}; findings a report does not mention count "
             "as absent). ECE and operating points on the first seed. In brackets: 95 % intervals from "
             "1,000 bootstrap resamples of the studies (`training.evaluation.metrics.bootstrap_auroc`).", ""]
    lines += _binary_rows(figures) + [""]
    lines += [_seed_line(s, seed_summary(figures, s)) for s in seeds]
    lines += _large_line(figures.get("large_phantoms_ood"))
    lines += ["", "OOD guard on images unlike the training data (8-bit display rendering as "
              "`cxrclip score` reads them; all must be flagged):", ""]
    lines += markdown_rows(figures["ood_examples"]) + [""]
    lines += _pointing_lines(figures["pointing"])
    return "\n".join(lines)


def card_summary(figures: dict[str, Any]) -> dict[str, Any]:
    """The ``extra.trust_figures`` entry of ``model_card.json``."""
    all_cases, subset = figures["pointing"]["all_cases"], figures["pointing"]["occlusion_subset"]
    return {"command": COMMAND, "seeds": figures["seeds"], "studies_per_seed": figures["studies_per_seed"],
            "per_seed": {s: seed_summary(figures, s) for s in figures["binary"]},
            "ood_examples": figures["ood_examples"],
            "large_phantoms_ood": figures.get("large_phantoms_ood"),
            "pointing_all_frontal_cases": all_cases["findings"]["all"],
            "pointing_occlusion_subset": (subset or {}).get("findings", {}).get("all")}


def write_card(model_dir: Path, figures: dict[str, Any], text: str) -> None:
    """Section in ``MODEL_CARD.md``, summary in ``model_card.json``, then ``MANIFEST.sha256``."""
    from cxrclip.manifest import write_manifest
    from training.evaluation.card_section import replace_card_section

    section = "\n".join([CARD_START, "## Trust figures (held-out phantoms, real and non-chest images)", "",
                         f"Reproduce with `{COMMAND}` (= `python -m training.evaluation.trust_figures "
                         "--model assets/models/cxrclip-demo --out runs/trust --card`).", "", text, CARD_END])
    replace_card_section(model_dir / "MODEL_CARD.md", CARD_START, CARD_END, section + "\n")
    card_json = model_dir / "model_card.json"
    card = json.loads(card_json.read_text(encoding="utf-8")) if card_json.is_file() else {}
    card.setdefault("extra", {})["trust_figures"] = card_summary(figures)
    card_json.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    write_manifest(model_dir)


def write_markdown(out: Path) -> str:
    """(Re)write ``trust_figures.md`` from ``trust_figures.json`` in ``out``."""
    text = markdown(json.loads((out / "trust_figures.json").read_text(encoding="utf-8")))
    (out / "trust_figures.md").write_text(text + "\n", encoding="utf-8")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.evaluation.trust_figures",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="assets/models/cxrclip-demo", help="model folder")
    parser.add_argument("--out", default="runs/trust", help="output folder (phantoms are kept here)")
    parser.add_argument("--studies", type=int, default=STUDIES, help="studies per seed")
    parser.add_argument("--size", type=int, default=None,
                        help=f"phantom image side in pixels (default: the model's input size, at least {IMAGE_SIZE})")
    parser.add_argument("--occlusion-cases", type=int, default=None,
                        help="pointing cases that also get the occlusion and agreement maps (default: all)")
    parser.add_argument("--large-studies", type=int, default=LARGE_STUDIES,
                        help=f"phantom studies drawn at --large-size for a false-OOD rate (default {LARGE_STUDIES}; "
                             "0: none)")
    parser.add_argument("--large-size", type=int, default=LARGE_SIZE,
                        help=f"their image side in pixels (default {LARGE_SIZE}, as `cxrclip phantom` DICOMs)")
    parser.add_argument("--bank", default=None, help="sentence bank folder (default: assets/sentence_bank)")
    parser.add_argument("--card", action="store_true",
                        help="also write the figures into the model folder's card and MANIFEST.sha256")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command line: measure, write ``trust_figures.json`` and ``trust_figures.md`` (and the card)."""
    args = _parser().parse_args(argv)
    run = TrustRun(args.model, Path(args.out), args.studies, args.size, args.occlusion_cases,
                   Path(args.bank) if args.bank else None, args.large_studies, args.large_size)
    run.out.mkdir(parents=True, exist_ok=True)
    try:
        figures = measure(run)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}")
        return 1
    (run.out / "trust_figures.json").write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    text = write_markdown(run.out)
    print(text)
    if args.card:
        write_card(Path(args.model), figures, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
