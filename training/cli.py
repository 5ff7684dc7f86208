"""``cxrclip train | eval | prepare`` sub-commands (registered through entry points).

Each ``register_*`` adds one sub-parser; heavy imports happen inside the handlers
so ``cxrclip --help`` stays fast.
"""
from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("training")


def _setup_logging() -> None:
    import os

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")


# ----- train ----------------------------------------------------------------------------------
def register_train(sub: argparse._SubParsersAction) -> None:
    """Add ``train CONFIG [key=value ...] [--resume]``."""
    p = sub.add_parser("train", help="pre-train CXR-CLIP from a YAML config",
                       description="Train CXR-CLIP. Run under torchrun for several GPUs/nodes.")
    p.add_argument("config", help="YAML config (see training/configs/)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotted overrides, e.g. train.batch_size=64 optim.lr=1e-4")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in output_dir")
    p.set_defaults(func=run_train, trailing_positionals="overrides")  # overrides may follow --resume


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``train``."""
    from training.config import load_config
    from training.data.dataset import DataUnavailable
    from training.trainer.interrupt import EXIT_STOPPED
    from training.trainer.loop import Trainer, TrainingAborted
    from training.trainer.runtime import teardown_runtime

    _setup_logging()
    cfg = load_config(args.config, args.overrides)
    trainer = None
    try:
        trainer = Trainer(cfg, resume=args.resume)
        progress = trainer.fit()
    except TrainingAborted as exc:
        print(f"cxrclip train: aborted: {exc}", file=sys.stderr)
        return 1
    except DataUnavailable as exc:
        print(f"cxrclip train: error: {exc.summary()}", file=sys.stderr)
        return 2
    finally:
        if trainer is not None:
            trainer.close()
        teardown_runtime()
    if trainer.interrupted:
        if trainer.rt.is_main:
            print(f"cxrclip train: stopped by {trainer.stop_request.signal_name or 'a signal on another rank'} "
                  f"at step {progress.step} of {trainer.total_steps}, checkpoint saved in "
                  f"{cfg.output_dir}/checkpoints; run the same command with --resume to go on",
                  file=sys.stderr)
        return EXIT_STOPPED
    if trainer.rt.is_main:
        print(f"done: step {progress.step}, epoch {progress.epoch}, non-finite steps skipped "
              f"{progress.nonfinite_total}, unreadable studies replaced {progress.skipped_images}; "
              f"checkpoints in {cfg.output_dir}/checkpoints")
    return 0


# ----- eval -----------------------------------------------------------------------------------
def register_eval(sub: argparse._SubParsersAction) -> None:
    """Add ``eval MODEL_DIR --data MANIFEST ...``."""
    p = sub.add_parser("eval", help="evaluate a model directory (zero-shot, retrieval, linear probe)")
    p.add_argument("model_dir", help="model directory (checkpoint step_*, best/, or converted)")
    p.add_argument("--data", required=True, action="append",
                   help="manifest directory, or a name resolved under $CXRCLIP_DATA (repeatable)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--train-split", default="train",
                   help="split used to fit the linear probe (default: train)")
    p.add_argument("--tasks", default="zeroshot,retrieval",
                   help="comma list of zeroshot, binary, retrieval, linear_probe")
    p.add_argument("--findings", default=None,
                   help="comma list of findings for zero-shot (default: those in the labels)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None, help="write results as JSON here")
    p.add_argument("--binary-prompts", choices=["pair", "ensemble"], default="pair",
                   help="binary task text: the paper's ['No X', 'X'] pair, or the viewer's class-prompt "
                        "ensemble against 'No X'")
    p.add_argument("--blank-as-negative", action="store_true",
                   help="count findings a study's labels do not mention as absent (complete ground truth)")
    p.add_argument("--views", choices=["frontal", "study"], default="frontal",
                   help="what a study's score comes from: its frontal view (default, the paper's evaluation) "
                        "or all its views as the viewer scores a study (mean embedding)")
    p.set_defaults(func=run_eval)
    from training.evaluation.calibrate import register as register_calibrate

    register_calibrate(sub)  # `calibrate` comes with `eval` (no entry point of its own)


def run_eval(args: argparse.Namespace) -> int:
    """Handler of ``eval``."""
    from training.evaluation.runner import EvalRequest, run_evaluation

    _setup_logging()
    request = EvalRequest(model_dir=args.model_dir, data=args.data, split=args.split,
                          train_split=args.train_split,
                          tasks=[t.strip() for t in args.tasks.split(",") if t.strip()],
                          findings=[f.strip() for f in args.findings.split(",")] if args.findings else None,
                          batch_size=args.batch_size, device=args.device, out=args.out,
                          blank_as_negative=args.blank_as_negative, binary_prompts=args.binary_prompts,
                          views=args.views)
    run_evaluation(request)
    return 0


# ----- prepare --------------------------------------------------------------------------------
def register_prepare(sub: argparse._SubParsersAction) -> None:
    """Add ``prepare DATASET --root DIR --out DIR``."""
    from training.data.adapters import ADAPTERS

    p = sub.add_parser("prepare", help="turn an official dataset layout into a manifest + image cache")
    p.add_argument("dataset", choices=sorted(ADAPTERS), help="which dataset layout to read")
    p.add_argument("--root", required=True, help="the dataset's top folder as downloaded")
    p.add_argument("--out", required=True, help="manifest directory to write")
    p.add_argument("--size", type=int, default=512, help="shorter side of cached images (256 or 512)")
    p.add_argument("--workers", type=int, default=4, help="processes that resize images")
    p.add_argument("--limit", type=int, default=None, help="only the first N studies (trials)")
    p.add_argument("--no-images", action="store_true",
                   help="write the manifest only; image files are not looked at")
    p.set_defaults(func=run_prepare)


def run_prepare(args: argparse.Namespace) -> int:
    """Handler of ``prepare``: exit 2 when more than half of the images cannot be read."""
    from training.data.adapters import ImagesMissing, prepare_dataset

    _setup_logging()
    try:
        summary = prepare_dataset(args.dataset, args.root, args.out, size=args.size,
                                  workers=args.workers, limit=args.limit, images=not args.no_images)
    except ImagesMissing as exc:
        print(f"cxrclip prepare: error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Parser for ``python -m training`` (same sub-commands as ``cxrclip``)."""
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register_train(sub)
    register_eval(sub)
    register_prepare(sub)
    from training.index_distributed import register_index

    register_index(sub)  # `torchrun ... -m training index build` (sharded archive index)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry of ``python -m training`` (e.g. under torchrun)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"{args.command}: error: {exc}", file=sys.stderr)
        return 1
