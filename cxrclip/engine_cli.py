"""`cxrclip score` and `cxrclip bank build`: the engine from the command line.

`register(subparsers)` is called by `cxrclip.cli`; each sub-parser's `func`
default is a handler `(args) -> int`. Heavy imports (torch) happen inside the
handlers, so `cxrclip --help` stays fast.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `score` and `bank` sub-commands."""
    _add_score(subparsers)
    _add_bank(subparsers)


def _add_score(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score", help="score prompts and/or the zero-shot findings of one or more studies",
        description="Score prompts against each view of a DICOM/PNG/JPEG file or study folder and the "
                    "study as a whole. Probability = softmax(logit_scale * [cos(negative), cos(prompt)])[1]. "
                    "--findings adds the CheXpert-14 zero-shot findings (calibrated, with a 'positive' flag, "
                    "when the model folder has calibration.json). Each file carries its out-of-distribution "
                    "verdict when the folder has ood.json. Several PATHs: one study each, a JSON list.")
    parser.add_argument("path", type=Path, nargs="+",
                        help="DICOM/PNG/JPEG file, or a folder with one study's images (one study per PATH)")
    parser.add_argument("--prompt", action="append", metavar="TEXT",
                        help="prompt to score (repeat for several)")
    parser.add_argument("--findings", action="store_true",
                        help="also score the CheXpert-14 findings with the model's zero-shot recipe")
    parser.add_argument("--negative", action="append", metavar="TEXT",
                        help="negative prompt: once for all prompts or once per prompt (default: 'no <prompt>')")
    parser.add_argument("--model", required=True, type=Path, metavar="DIR", help="model directory")
    parser.add_argument("--aggregate", choices=["mean", "max"], default="mean",
                        help="study level: score of the mean view embedding, or max over views")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                        help="weights dtype for inference (bfloat16: ~2x faster on recent CPUs)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=_cmd_score)


def _add_bank(subparsers: argparse._SubParsersAction) -> None:
    bank = subparsers.add_parser("bank", help="sentence banks for nearest-sentence lookup",
                                 description="Build sentence banks (report sentences + embeddings).")
    bank_sub = bank.add_subparsers(dest="bank_command", metavar="ACTION")
    build = bank_sub.add_parser(
        "build", help="split reports into sentences and embed them",
        description="SOURCE is a CSV (report column), a TXT (one report or sentence per line) or an "
                    "OpenI/IU-Xray XML folder. Sentences are de-duplicated with counts and embedded.")
    build.add_argument("source", type=Path, help="CSV file, TXT file or OpenI XML folder")
    build.add_argument("-o", "--output", required=True, type=Path, metavar="BANK", help="output bank directory")
    build.add_argument("--model", required=True, type=Path, metavar="DIR", help="model directory")
    build.add_argument("--column", help="CSV column with report text (default: report/text/findings/impression)")
    build.add_argument("--batch-size", type=int, default=128, help="sentences per forward pass")
    build.add_argument("--float32", action="store_true", help="store float32 embeddings (default float16)")
    build.add_argument("--min-letters", type=int, default=4, help="drop sentences with fewer letters")
    build.add_argument("--sections", metavar="NAMES",
                       help="comma-separated report sections to keep, e.g. findings,impression "
                            "(texts without those headers are kept whole; default: all text)")
    build.add_argument("--device", default="auto")
    build.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    build.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                       help="weights dtype for inference")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(func=_cmd_bank_build)
    bank.set_defaults(func=lambda args: _usage(bank))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _load_engine(model_dir: Path, device: str, num_threads: int | None = None, dtype: str = "float32"):
    from cxrclip.checkpoint import missing_folder_error
    from cxrclip.engine import Engine

    if not model_dir.is_dir():
        raise missing_folder_error(model_dir)
    return Engine.load(model_dir, device=device, num_threads=num_threads, dtype=dtype)


def score_payload(path: Path, prompts: list[str], negatives: list[str] | None, model_dir: Path,
                  aggregate: str = "mean", device: str = "auto", num_threads: int | None = None,
                  dtype: str = "float32", findings: bool = False) -> dict[str, Any]:
    """Read `path`, score `prompts` (and the findings), and return the JSON-ready result of `cxrclip score`."""
    return score_payloads([path], prompts, negatives, model_dir, aggregate, device, num_threads, dtype,
                          findings)[0]


def score_payloads(paths: list[Path], prompts: list[str] | None, negatives: list[str] | None, model_dir: Path,
                   aggregate: str = "mean", device: str = "auto", num_threads: int | None = None,
                   dtype: str = "float32", findings: bool = False) -> list[dict[str, Any]]:
    """One `cxrclip score` result per path (every path is read before the model loads).

    With one path an unreadable study raises `ImageReadError`; with several, it becomes
    ``{"path", "error"}`` in its place and the others are scored."""
    from cxrclip.image_io import ImageReadError, read_study

    studies: list[Any] = []
    for path in paths:
        try:
            studies.append(read_study(path))
        except ImageReadError as exc:
            if len(paths) == 1:
                raise
            studies.append({"path": str(path), "error": str(exc)})
    if all(isinstance(s, dict) for s in studies):
        return studies
    engine = _load_engine(model_dir, device, num_threads, dtype)
    return [s if isinstance(s, dict) else _study_payload(engine, s, path, prompts or [], negatives, aggregate,
                                                          findings)
            for s, path in zip(studies, paths)]


def _study_payload(engine: Any, folder: Any, path: Path, prompts: list[str], negatives: list[str] | None,
                   aggregate: str, findings: bool) -> dict[str, Any]:
    from cxrclip.engine import StudyInput, ViewInput

    views = [ViewInput(im.view_id, im.pixels, im.label) for im in folder.images]
    study = StudyInput(folder.study_id, views)
    payload: dict[str, Any] = {"model_id": engine.model_id, "study_id": folder.study_id, "path": str(path),
                               "aggregate": aggregate, "logit_scale": engine.logit_scale,
                               "calibrated": engine.calibration is not None}
    if prompts:
        negs: list[str] | str | None = negatives[0] if negatives and len(negatives) == 1 else negatives
        payload["prompts"] = engine.score(study, prompts, negs, aggregate=aggregate).to_dict()["prompts"]
    if findings:
        payload["findings"] = [finding_dict(f) for f in engine.zero_shot(study, aggregate=aggregate)]
    ood = {v.view_id: v.to_dict() for v in engine.out_of_distribution(views)}
    payload["out_of_distribution"] = any(v["flag"] for v in ood.values())
    payload["files"] = [{"view_id": im.view_id, "label": im.label, "path": str(im.path),
                         "out_of_distribution": ood.get(im.view_id)} for im in folder.images]
    payload["skipped"] = [{"path": str(p), "reason": reason} for p, reason in folder.skipped]
    return payload


def finding_dict(score: Any) -> dict[str, Any]:
    """A `FindingScore` as the JSON of `cxrclip score --findings`."""
    return {"finding": score.finding, "probability": score.probability, "positive": score.positive,
            "calibrated": score.calibrated, "operating_point": score.operating_point,
            "raw_probability": score.raw_probability, "similarity": score.similarity,
            "out_of_distribution": score.out_of_distribution,
            "views": [{"view_id": v.view_id, "label": v.label, "probability": v.probability,
                       "similarity": v.similarity} for v in score.views]}


def format_table(payload: dict[str, Any]) -> str:
    """Human-readable table of a `score_payload`."""
    lines = [f"study {payload['study_id']}  model {payload['model_id']}  "
             f"aggregate {payload['aggregate']}  logit scale {payload['logit_scale']:.2f}"]
    for file in payload.get("files", []):
        ood = file.get("out_of_distribution")
        if ood and ood["flag"]:
            lines.append(f"OUTSIDE THIS MODEL'S EXPERIENCE: {file['label'] or file['path']} "
                         f"(distance {ood['score']:.2f} > {ood['threshold']:.2f})")
    if "findings" in payload:
        state = "calibrated" if payload.get("calibrated") else "uncalibrated"
        lines += ["", f"findings ({state}):", f"  {'finding':<28} {'prob':>7} {'point':>7}  positive"]
        for f in payload["findings"]:
            point = "" if f["operating_point"] is None else f"{f['operating_point']:.3f}"
            mark = {True: "yes", False: "no", None: "-"}[f["positive"]]
            lines.append(f"  {f['finding']:<28} {f['probability']:>7.3f} {point:>7}  {mark}")
    for prompt in payload.get("prompts", []):
        lines.append("")
        lines.append(f"prompt: {prompt['prompt']!r}   negative: {prompt['negative']!r}")
        lines.append(f"  {'view':<40} {'cosine':>8} {'prob':>7}")
        for view in prompt["views"]:
            name = view["label"] or view["view_id"]
            lines.append(f"  {name[:40]:<40} {view['similarity']:>8.4f} {view['probability']:>7.3f}")
        lines.append(f"  {'STUDY':<40} {prompt['similarity']:>8.4f} {prompt['probability']:>7.3f}")
        if prompt.get("unfamiliar"):
            unknown = ", ".join(prompt.get("unknown_words") or ())
            why = f"words it never saw: {unknown}" if unknown else f"cosine {prompt.get('familiarity')}"
            lines.append(f"  hint: wording far from the model's training text ({why})")
            if prompt.get("suggestion"):
                lines.append(f"  try: {prompt['suggestion']!r}")
    for skipped in payload["skipped"]:
        lines.append(f"skipped {skipped['path']}: {skipped['reason']}")
    return "\n".join(lines)


def _cmd_score(args: argparse.Namespace) -> int:
    if not args.prompt and not args.findings:
        print("cxrclip score: error: nothing to score; give --prompt TEXT (repeatable) and/or --findings",
              file=sys.stderr)
        return 2
    payloads = score_payloads(args.path, args.prompt, args.negative, args.model, args.aggregate, args.device,
                              args.threads, args.dtype, args.findings)
    if args.json:
        print(json.dumps(payloads[0] if len(payloads) == 1 else payloads, indent=2))
    else:
        print("\n\n".join(format_table(p) for p in payloads if "error" not in p))
    failed = [p for p in payloads if "error" in p]
    for payload in failed:
        print(f"cxrclip score: error: {payload['error']}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_bank_build(args: argparse.Namespace) -> int:
    from cxrclip.sentence_bank import SentenceBank
    from cxrclip.sentences import collect_sentences, read_report_source

    texts = read_report_source(args.source, column=args.column)
    sections = [name for name in (args.sections or "").split(",") if name.strip()]
    sentences = collect_sentences(texts, min_letters=args.min_letters, sections=sections or None)
    engine = _load_engine(args.model, args.device, args.threads, args.dtype)
    # Chunks of 8 forward batches: embed_texts sorts each chunk by length, so batches pad little.
    bank = SentenceBank.build(sentences, lambda chunk: engine.embed_texts(chunk, batch_size=args.batch_size),
                              engine.model_id, batch_size=args.batch_size * 8, progress=not args.no_progress,
                              source=str(args.source))
    bank.save(args.output, dtype="float32" if args.float32 else "float16")
    print(f"wrote {args.output}: {len(bank)} sentences from {len(texts)} texts, "
          f"dim {bank.dim}, model {bank.model_id}")
    return 0
