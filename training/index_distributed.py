"""Sharded archive indexing: ``torchrun --nproc_per_node=N -m training index build SOURCE -o INDEX --model DIR``.

Every rank lists the same sorted files, drops those the index already holds,
and embeds its contiguous slice (`cxrclip.index.walk.split_for_rank`) into
``INDEX/shards/rank-R.sqlite`` with the same store code as a single-process
build (so each shard is itself resumable). After a barrier rank 0 merges the
shards into ``INDEX/index.sqlite`` (`cxrclip.index.merge`, idempotent) and
writes the ANN file. NCCL on CUDA (one GPU per local rank), gloo on CPU.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from cxrclip.index.cli import add_dtype_option

log = logging.getLogger("training.index")


def register_index(sub: argparse._SubParsersAction) -> None:
    """Add ``index build`` to ``python -m training`` (the form torchrun runs)."""
    parser = sub.add_parser("index", help="build an archive index with several processes (torchrun)")
    index_sub = parser.add_subparsers(dest="index_command", metavar="SUBCOMMAND", required=True)
    p = index_sub.add_parser("build", help="embed SOURCE folders into INDEX, one shard per rank, then merge")
    p.add_argument("sources", type=Path, nargs="+", metavar="SOURCE")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="INDEX")
    p.add_argument("--model", type=Path, required=True, metavar="DIR")
    p.add_argument("--device", default="auto", help="auto: cuda:LOCAL_RANK when CUDA is visible, else cpu")
    p.add_argument("--runtime", choices=["auto", "onnx", "torch"], default="torch",
                   help="encoder runtime (default torch: CUDA and bf16 on GPUs)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="decoding processes per rank")
    p.add_argument("--retry-failed", action="store_true")
    add_dtype_option(p)
    p.set_defaults(func=run_index_build)


def _existing_model(index_dir: Path) -> str | None:
    """The model id of an existing index (read-only), or None."""
    from cxrclip.index.store import SQLITE_FILE, Store

    if not (index_dir / SQLITE_FILE).is_file():
        return None
    with Store(index_dir / SQLITE_FILE) as store:
        return store.meta().get("model_id")


def _files_to_embed(args: argparse.Namespace) -> list:
    """Files the index does not hold yet, sorted: the same list on every rank."""
    from cxrclip.index.store import SQLITE_FILE, Store
    from cxrclip.index.walk import files_to_do, list_files

    files = list_files(args.sources)
    main_db = args.out / SQLITE_FILE
    if main_db.is_file():
        with Store(main_db) as store:
            files = files_to_do(files, store.recorded_files(), store.failed_files(), args.retry_failed)
    return list(files)


def _embed_shard(args: argparse.Namespace, engine, rank: int, world: int) -> int:
    """Embed this rank's slice into its shard store; returns views added."""
    from tqdm import tqdm

    from cxrclip.index.build import embed_files, open_for_build
    from cxrclip.index.merge import shard_path
    from cxrclip.index.walk import files_to_do, split_for_rank

    store = open_for_build(shard_path(args.out, rank), engine, args.model)
    try:
        mine = split_for_rank(_files_to_embed(args), rank, world)
        mine = files_to_do(mine, store.recorded_files(), store.failed_files(), args.retry_failed)  # shard resume
        classifier = engine.zero_shot_classifier() if mine else None
        with tqdm(total=len(mine), unit="file", desc=f"rank {rank}", disable=rank != 0) as bar:
            counts, _ = embed_files(store, mine, engine, classifier, batch_size=args.batch_size,
                                    workers=args.workers, progress=lambda done, _total: bar.update(done - bar.n),
                                    cancel=None)
    finally:
        store.close()
    return counts.added


def _merge(args: argparse.Namespace, engine, started: float, started_at: str) -> tuple[int, int]:
    """Rank 0: merge every shard, forget files gone from the sources, refresh the ANN file,
    log the build; returns (views added, gone files removed)."""
    from cxrclip.index.build import open_for_build, prune_missing, refresh_ann, utc_now
    from cxrclip.index.merge import merge_shards
    from cxrclip.index.store import SQLITE_FILE
    from cxrclip.index.walk import list_files

    added = merge_shards(args.out, engine, args.model)
    with open_for_build(args.out / SQLITE_FILE, engine, args.model) as store:
        removed = prune_missing(store, args.sources, list_files(args.sources), engine,
                                store.recorded_files(), store.failed_files())
        refresh_ann(store, args.out, engine.embed_dim)
        build_id = store.start_build(started_at, f"{engine.runtime} (sharded)")
        store.finish_build(build_id, utc_now(), added, 0, store.counts()["failures"], False,
                           time.perf_counter() - started)
    return added, removed


def run_index_build(args: argparse.Namespace) -> int:
    """Handler of ``python -m training index build``."""
    import torch.distributed as dist

    from cxrclip.index.build import IndexModelMismatch, utc_now
    from cxrclip.index.cli import build_dtype, load_engine
    from training.trainer.runtime import setup_runtime, teardown_runtime

    started, started_at = time.perf_counter(), utc_now()
    rt = setup_runtime(args.device)
    try:
        engine = load_engine(args.model, rt.device, args.runtime, build_dtype(args.dtype, str(rt.device)))
        existing = _existing_model(args.out)
        if existing is not None and existing != engine.model_id:
            raise IndexModelMismatch(args.out, existing, engine.model_id)
        added = _embed_shard(args, engine, rt.rank, rt.world_size)
        log.info("rank %d embedded %d views", rt.rank, added)
        if rt.distributed:
            dist.barrier()
        if rt.is_main:
            total, removed = _merge(args, engine, started, started_at)
            gone = f", removed {removed} gone files" if removed else ""
            print(f"{args.out}: merged {total} new views from {rt.world_size} shard(s){gone} "
                  f"in {time.perf_counter() - started:.1f} s")
    finally:
        teardown_runtime()
    return 0

