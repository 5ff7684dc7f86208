"""``cxrclip index build | search | info`` (registered by `cxrclip.cli`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cxrclip.engine import Engine
    from cxrclip.index.records import StudyHit


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``index`` command with its ``build``, ``search`` and ``info`` sub-commands."""
    parser = subparsers.add_parser("index", help="build and search an archive index (docs/archive_search.md)",
                                   description="Index folders of DICOM / MIMIC-CXR-JPG studies, then find "
                                               "studies by free text or by example.")
    sub = parser.add_subparsers(dest="index_command", metavar="SUBCOMMAND", required=True)
    _add_build(sub)
    _add_search(sub)
    _add_info(sub)


def _add_engine_options(parser: argparse.ArgumentParser, model_required: bool) -> None:
    parser.add_argument("--model", type=Path, metavar="DIR", required=model_required,
                        help="model directory" + ("" if model_required else
                                                  " (default: the one recorded in the index, if still there)"))
    parser.add_argument("--device", default="auto", help="auto (CUDA when the torch runtime has it), cpu, cuda:1 ...")
    parser.add_argument("--runtime", choices=["auto", "onnx", "torch"], default="auto",
                        help="auto = ONNX Runtime when the model folder has onnx/ exports, else torch")


def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="index (or update) every view under SOURCE folders",
                       description="Resumable and incremental: rerun to continue an interrupted build or to "
                                   "add new files; done files (same path, size, mtime) are skipped.")
    p.add_argument("sources", type=Path, nargs="+", metavar="SOURCE", help="folders (or files) to index")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="INDEX", help="index folder")
    add_dtype_option(p)
    _add_engine_options(p, model_required=True)
    p.add_argument("--batch-size", type=int, default=32, help="views embedded per batch and per transaction")
    p.add_argument("--workers", type=int, default=2, help="decoding processes (0 = decode in this process)")
    p.add_argument("--retry-failed", action="store_true", help="try again the files that failed before")
    p.add_argument("--force-new", action="store_true",
                   help="delete the index in INDEX first (e.g. when it was built with another model)")
    p.set_defaults(func=run_build)


def _add_search(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="rank the studies of an index by a text or like a study")
    p.add_argument("index", type=Path, metavar="INDEX")
    p.add_argument("query", nargs="?", default=None, help="free text, e.g. 'large right pneumothorax'")
    p.add_argument("--like", metavar="STUDY", default=None,
                   help="a study folder/file, or a study key of the index: find studies like it")
    p.add_argument("--k", type=int, default=20, help="number of studies (default 20)")
    p.add_argument("--where", action="append", default=[], metavar="EXPR",
                   help="filter, repeatable: 'Pleural Effusion>0.8', 'view=PA', 'date>=20200101'")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--hide-phi", action="store_true",
                   help="leave out patient identifiers, dates and UIDs; paths become the study key")
    p.add_argument("--export", type=Path, metavar="CSV", help="also write the results to a CSV file")
    p.add_argument("--include-identifiers", action="store_true",
                   help="CSV export: keep identifiers and paths (left out by default)")
    _add_engine_options(p, model_required=False)
    p.set_defaults(func=run_search)


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="counts, model, failures and last build of an index")
    p.add_argument("index", type=Path, metavar="INDEX")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--failures", type=int, default=10, help="failures to list (default 10)")
    p.set_defaults(func=run_info)


def add_dtype_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dtype", choices=["auto", *BUILD_DTYPES], default="auto",
                        help="weights for embedding: auto = bfloat16 on CUDA (torch runtime), else float32")


BUILD_DTYPES = ("float32", "bfloat16")


def build_dtype(choice: str, device: str) -> str:
    """The dtype a build embeds in: ``choice``, or for "auto" bfloat16 when ``device`` resolves to
    CUDA (torch runtime; ONNX Runtime here is float32 on CPU) and float32 otherwise."""
    if choice != "auto":
        return choice
    from cxrclip.engine import resolve_device

    try:
        return "bfloat16" if resolve_device(device).type == "cuda" else "float32"
    except ImportError:  # no torch: the ONNX Runtime path, float32
        return "float32"


def load_engine(model_dir: Path, device: str, runtime: str, dtype: str = "float32") -> Engine:
    """The engine of ``model_dir`` (ONNX Runtime when possible under ``runtime="auto"`` and float32)."""
    from cxrclip.engine import Engine

    if dtype == "float32":
        return Engine.load(model_dir, device=device, runtime=runtime)
    return Engine.load(model_dir, device=device, runtime=runtime, dtype=dtype)


# ----- build ----------------------------------------------------------------------------------
class _Bar:
    """A tqdm progress bar (files, rate, ETA) driven by ``progress(done, total)``."""

    def __init__(self) -> None:
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            if total == 0:
                return
            self.bar = tqdm(total=total, unit="file", desc="indexing", dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_build(args: argparse.Namespace) -> int:
    """Handler of ``index build``."""
    from cxrclip.index.build import build_index, remove_index

    if args.force_new:
        remove_index(args.out)
    engine = load_engine(args.model, args.device, args.runtime, build_dtype(args.dtype, args.device))
    bar = _Bar()
    try:
        report = build_index(args.sources, args.out, engine, batch_size=args.batch_size, workers=args.workers,
                             progress=bar, retry_failed=args.retry_failed, model_dir=args.model)
    except KeyboardInterrupt:
        bar.close()
        print("cxrclip index: interrupted; finished batches are kept, run the same command to resume",
              file=sys.stderr)
        return 130
    bar.close()
    removed = f", removed {report.removed} gone files" if report.removed else ""
    print(f"{args.out}: added {report.added} views, skipped {report.skipped} done files{removed}, {report.failed} failed "
          f"({report.views_per_second:.1f} views/s, {report.seconds:.1f} s, runtime {engine.runtime}, "
          f"{engine.dtype if engine.runtime == 'torch' else 'float32'})")
    if report.failed:
        print(f"see the failures with: cxrclip index info {args.out}")
    return 0


# ----- search ---------------------------------------------------------------------------------
def search_engine(index_model_dir: str | None, args: argparse.Namespace) -> Engine:
    """The engine for a search: --model, else the model folder recorded in the index."""
    model = args.model or (Path(index_model_dir) if index_model_dir else None)
    if model is None or not model.is_dir():
        raise FileNotFoundError(f"the index's model folder {index_model_dir} is not there any more; "
                                f"give the same model with --model DIR")
    return load_engine(model, args.device, args.runtime)


def run_search(args: argparse.Namespace) -> int:
    """Handler of ``index search``."""
    from cxrclip.index.archive import open_index
    from cxrclip.index.filters import parse_where
    from cxrclip.index.search import export_csv

    if (args.query is None) == (args.like is None):
        raise ValueError("give a text QUERY or --like STUDY (exactly one of the two)")
    filters = [parse_where(w) for w in args.where]  # bad filters fail before the model loads
    with open_index(args.index) as index:
        engine = search_engine(index.model_dir, args)
        if args.like is not None:
            hits = index.search_like(engine, args.like, k=args.k, where=filters)
        else:
            hits = index.search_text(engine, args.query, k=args.k, where=filters)
        model_id = index.model_id
    if args.export:
        export_csv(hits, args.export, include_identifiers=args.include_identifiers)
    if args.json:
        query = args.query if args.like is None else {"like": _like_label(args.like, args.hide_phi)}
        print(json.dumps({"index": str(args.index), "query": query, "model": model_id,
                          "results": [h.to_dict(args.hide_phi) for h in hits]}, indent=2))
    else:
        _print_hits(hits, args.hide_phi)
    return 0


def _like_label(like: str, hide_phi: bool) -> str:
    """The --like target as shown: a path is hidden under --hide-phi."""
    return "(study path hidden)" if hide_phi and Path(like).exists() else like


def _print_hits(hits: list[StudyHit], hide_phi: bool) -> None:
    if not hits:
        print("no studies matched")
        return
    for hit in hits:
        data = hit.to_dict(hide_phi)
        match = data["matching_view"]
        ident = "" if hide_phi else f"  {hit.study_date or '-':8}  {hit.patient_id or '-'}"
        print(f"{hit.rank:3d}  {hit.score:.4f}{ident}  {hit.study_key}  {match['view_position'] or '?':8} "
              f"{data['folder']}")


# ----- info -----------------------------------------------------------------------------------
def run_info(args: argparse.Namespace) -> int:
    """Handler of ``index info``."""
    from cxrclip.index.archive import open_index

    with open_index(args.index) as index:
        info = index.info().to_dict()
        failures = [{"path": f.path, "reason": f.reason} for f in index.store.failures(args.failures)]
    if args.json:
        print(json.dumps({**info, "failures_listed": failures}, indent=2))
        return 0
    build = info["last_build"] or {}
    rows = [("index", info["path"]), ("model", info["model_id"]), ("model folder", info["model_dir"]),
            ("views", info["views"]), ("studies", info["studies"]), ("failures", info["failures"]),
            ("search", f"ANN ({info['ann_vectors']} vectors) + exact tail" if info["ann_vectors"]
             else f"exact ({info['exact_only_reason']})" if info["exact_only_reason"] else "exact"),
            ("created", info["created"]),
            ("last build", f"{build.get('finished') or 'not finished'} (+{build.get('added')} views, "
                           f"runtime {build.get('runtime')})" if build else "none")]
    for label, value in rows:
        print(f"{label:>13}: {value}")
    for failure in failures:
        reason = failure["reason"]
        print(f"  failed: {reason if failure['path'] in reason else failure['path'] + ': ' + reason}")
    return 0
