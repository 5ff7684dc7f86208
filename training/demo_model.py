"""Rebuild the bundled demo model in one command: `python -m training.demo_model`.

Steps (each skipped when its output already exists, so an interrupted build resumes):
1. phantom studies for training (seed 1) and a held-out set from another seed (seed 2);
2. `cxrclip train training/configs/demo.yaml` on the training set (resumes from its
   last checkpoint when the run folder has one);
3. `cxrclip eval` of the final checkpoint on the held-out set;
4. export as fp16 safetensors into `assets/models/cxrclip-demo/` with a model card that
   quotes the held-out metrics, the data, the run and the hardware, plus its ONNX exports
   (`cxrclip export-onnx`; a failure warns and the build goes on);
5. a sentence bank built from the held-out reports plus `assets/sentence_bank/sentences.txt`;
6. `cxrclip calibrate` on a validation set (seed 3) with OOD statistics from another (seed 4):
   calibration, operating points and the out-of-distribution guard (docs/trust.md).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "training" / "configs" / "demo.yaml"


@dataclass(frozen=True)
class DemoBuild:
    """Where the build reads and writes, and the data it makes."""

    work: Path
    out: Path
    bank_out: Path
    train_studies: int = 8000
    heldout_studies: int = 600
    train_seed: int = 1
    heldout_seed: int = 2
    image_size: int = 224
    val_studies: int = 600
    val_seed: int = 3
    ood_studies: int = 400
    ood_seed: int = 4
    config: Path = CONFIG

    @property
    def train_dir(self) -> Path:
        return self.work / "train"

    @property
    def heldout_dir(self) -> Path:
        return self.work / "heldout"

    @property
    def val_dir(self) -> Path:
        return self.work / "val"

    @property
    def ood_dir(self) -> Path:
        return self.work / "ood"

    @property
    def run_dir(self) -> Path:
        return self.work / "run"

    @property
    def eval_json(self) -> Path:
        return self.work / "heldout_eval.json"


def _cxrclip(*args: str) -> None:
    """Run one `cxrclip` subcommand in a child process; stop the build if it fails."""
    command = [sys.executable, "-m", "cxrclip.cli", *args]
    print("+", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def generate_data(build: DemoBuild) -> None:
    for out, studies, seed, split in ((build.train_dir, build.train_studies, build.train_seed, "hash"),
                                      (build.heldout_dir, build.heldout_studies, build.heldout_seed, "test"),
                                      (build.val_dir, build.val_studies, build.val_seed, "validate"),
                                      (build.ood_dir, build.ood_studies, build.ood_seed, "validate")):
        if (out / "manifest.json").is_file():
            continue
        _cxrclip("phantom", "generate", "--out", str(out), "--studies", str(studies), "--seed", str(seed),
                 "--png", "--no-dicom", "--size", str(build.image_size), "--workers", "2", "--split", split)


class TrainingStopped(RuntimeError):
    """`cxrclip train` was stopped by a signal after saving a checkpoint (exit status 75)."""


def train(build: DemoBuild) -> float:
    """Train (or resume); returns the training wall time in seconds over every call so far
    (`_add_train_seconds`). A stop signal (SIGTERM, Ctrl-C) ends training with a checkpoint;
    the build then stops and resumes from it when run again."""
    from training.trainer.interrupt import EXIT_STOPPED

    start = time.perf_counter()
    resume = ["--resume"] if (build.run_dir / "checkpoints").is_dir() else []
    try:
        _cxrclip("train", str(build.config), *resume, f"data.train=[{build.train_dir}]",
                 f"data.val=[{build.train_dir}]", f"output_dir={build.run_dir}")
    except subprocess.CalledProcessError as exc:
        if exc.returncode == EXIT_STOPPED:
            _add_train_seconds(build, time.perf_counter() - start)
            raise TrainingStopped(f"training stopped with a checkpoint in {build.run_dir / 'checkpoints'}; "
                                  "run `python -m training.demo_model` again to resume") from None
        raise
    return _add_train_seconds(build, time.perf_counter() - start)


def _add_train_seconds(build: DemoBuild, seconds: float) -> float:
    """Wall time of training over every call (a run resumed across sessions), for the card."""
    record = build.work / "train_seconds.txt"
    total = (float(record.read_text()) if record.is_file() else 0.0) + seconds
    record.write_text(f"{total:.1f}\n")
    return total


def final_checkpoint(run_dir: Path) -> Path:
    """The newest `step_*` checkpoint of a run."""
    steps = sorted((run_dir / "checkpoints").glob("step_*"))
    if not steps:
        raise FileNotFoundError(f"no checkpoints under {run_dir / 'checkpoints'}; did training run?")
    return steps[-1]


def evaluate(build: DemoBuild, checkpoint: Path) -> dict:
    _cxrclip("eval", str(checkpoint), "--data", str(build.heldout_dir), "--split", "test",
             "--tasks", "binary,retrieval,zeroshot", "--blank-as-negative",
             "--binary-prompts", "ensemble", "--out", str(build.eval_json))
    return json.loads(build.eval_json.read_text())


def summarise_metrics(results: dict) -> dict[str, float]:
    """Flat, rounded figures for the model card: per-finding AUROC, macro AUROC, retrieval recalls."""
    binary = results.get("binary", {})
    auroc = {name: round(float(m["auroc"]), 4) for name, m in binary.items()
             if isinstance(m, dict) and m.get("auroc") is not None}
    summary: dict[str, float] = {f"zero-shot AUROC, {name}": value for name, value in auroc.items()}
    findings = {k: v for k, v in auroc.items() if k != "No Finding"}  # No Finding is derived from them
    if findings:
        summary[f"zero-shot AUROC, macro over {len(findings)} findings"] = round(
            sum(findings.values()) / len(findings), 4)
    for direction in ("image_to_text", "text_to_image"):
        for k, value in results.get("retrieval", {}).get(direction, {}).items():
            summary[f"retrieval {direction.replace('_to_', '→')} {k}"] = round(float(value), 4)
    if "accuracy" in results.get("zeroshot", {}):
        classes = len(results["zeroshot"].get("classes", []))
        summary[f"zero-shot {classes}-class accuracy (CheXpert5x200-style)"] = round(
            float(results["zeroshot"]["accuracy"]), 4)
    return summary


def export(build: DemoBuild, checkpoint: Path, metrics: dict, train_seconds: float | None) -> None:
    from cxrclip.checkpoint import ModelCard, load_model, save_model
    from cxrclip.onnx_after_save import export_onnx_or_warn
    from training.phantoms import GENERATOR_VERSION

    loaded = load_model(checkpoint, device="cpu")
    run = run_summary(build.config)
    loaded.model.config.name = "cxrclip-demo"  # the bundled model's name, shown in the viewer
    wall = f"{train_seconds / 60:.1f} min" if train_seconds else "see the run log"
    card = ModelCard(
        title="CXR-CLIP demo model (synthetic phantoms)",
        description=("A small CXR-CLIP model trained by this project's `training/` package on synthetic "
                     "phantom chest radiographs, so the viewer opens with a model that really works. "
                     f"Metrics: `cxrclip eval` on the {build.heldout_studies} held-out phantom studies "
                     "(frontal view; each finding scored as the viewer does, its class-prompt ensemble "
                     "against 'no X'; findings a report does not mention count as absent)."),
        source=f"`python -m training.demo_model` (config {_shown(build.config)}, checkpoint {checkpoint.name})",
        data=(f"Synthetic phantom studies from `cxrclip phantom generate` (generator {GENERATOR_VERSION}): "
              f"{build.train_studies} studies with seed {build.train_seed} (90/5/5 hash split; two views and "
              f"FINDINGS/IMPRESSION per study), held-out test set of {build.heldout_studies} studies with "
              f"seed {build.heldout_seed}. No real radiographs."),
        training=(f"{run['image']} image tower at {run['size']} px, all-MiniLM-L6-v2 text tower "
                  f"({_text_training(run['freeze_text_layers'])}), "
                  f"linear projections to 256-d, CXR-CLIP loss (CLIP over 4 pairings + ICL 1.0 + TCL 0.5), "
                  f"batch {run['batch']}, AdamW with a cosine schedule, {run['epochs']} epochs at lr "
                  f"{run['lr']:g}. Wall time {wall}."),
        hardware=f"CPU only: {platform.processor() or platform.machine()}, 2 cores, no GPU",
        metrics=metrics,
        intended_use=("Demonstration and testing of the viewer and the training package only. "
                      "Not for clinical use. It has only seen synthetic images and says nothing about "
                      "real radiographs."),
        limitations=(f"Phantoms are stylised; scores on real chest X-rays are meaningless. At {run['size']} px "
                     f"with a slim CNN trained for {wall} on 2 CPU cores, small findings (rib fracture, "
                     "pleural plaques) are the weakest; large ones (effusion, pneumothorax, edema, "
                     "cardiomegaly) are well separated. Per-finding figures are below."),
        license="Apache-2.0",
        extra={"synthetic": True, "generator_version": GENERATOR_VERSION,
               "train_seed": build.train_seed, "heldout_seed": build.heldout_seed},
    )
    save_model(loaded.model, loaded.tokenizer, build.out, card=card, dtype=_float16())
    export_onnx_or_warn(build.out)  # before calibrate: the viewer starts on ONNX Runtime


def run_summary(config: Path = CONFIG) -> dict:
    """Image tower, input size, batch, epochs, learning rate and frozen text layers of the
    demo config, for the card (read through the training config schema, defaults included)."""
    from training.config import load_config

    cfg = load_config(config)
    return {"image": cfg.model["image"]["name"], "size": cfg.model["image"]["image_size"],
            "batch": cfg.train.batch_size, "epochs": cfg.train.epochs, "lr": float(cfg.optim.lr),
            "freeze_text_layers": cfg.train.freeze_text_layers}


def _text_training(frozen_layers: int) -> str:
    if not frozen_layers:
        return "fine-tuned"
    return f"embeddings and the first {frozen_layers} layers frozen, the rest fine-tuned"


def _shown(config: Path) -> str:
    """The config's path relative to the repository when it lies inside it."""
    try:
        return str(config.resolve().relative_to(REPO))
    except ValueError:
        return str(config)


def _float16():
    import torch

    return torch.float16


def calibrate(build: DemoBuild) -> None:
    """Calibration + operating points (seed 3) and the OOD guard (statistics seed 4) into the model folder."""
    _cxrclip("calibrate", str(build.out), "--data", str(build.val_dir), "--split", "validate",
             "--ood-data", str(build.ood_dir), "--blank-as-negative")


def build_bank(build: DemoBuild) -> None:
    """Bank from held-out reports (one sentence source line per report section) plus the project's sentences."""
    source = build.work / "bank_source.txt"
    lines = (REPO / "assets" / "sentence_bank" / "sentences.txt").read_text().splitlines()
    for line in (build.heldout_dir / "studies.jsonl").read_text().splitlines():
        record = json.loads(line)
        lines += [record[k] for k in ("findings", "impression") if record.get(k)]
    source.write_text("\n".join(lines) + "\n")
    _cxrclip("bank", "build", str(source), "-o", str(build.bank_out), "--model", str(build.out))


def parse_args(argv: list[str] | None) -> tuple[DemoBuild, bool, float | None]:
    parser = argparse.ArgumentParser(prog="python -m training.demo_model", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "demo-build")
    parser.add_argument("--out", type=Path, default=REPO / "assets" / "models" / "cxrclip-demo")
    parser.add_argument("--bank-out", type=Path, default=REPO / "assets" / "sentence_bank" / "cxrclip-demo")
    parser.add_argument("--train-studies", type=int, default=DemoBuild.train_studies)
    parser.add_argument("--heldout-studies", type=int, default=DemoBuild.heldout_studies)
    parser.add_argument("--config", type=Path, default=CONFIG,
                        help="training config (default training/configs/demo.yaml)")
    parser.add_argument("--skip-train", action="store_true", help="use the run folder's newest checkpoint")
    parser.add_argument("--train-minutes", type=float, default=None,
                        help="with --skip-train: the wall time of the separate training run, for the card")
    args = parser.parse_args(argv)
    build = DemoBuild(work=args.work, out=args.out, bank_out=args.bank_out,
                      train_studies=args.train_studies, heldout_studies=args.heldout_studies,
                      config=args.config)
    return build, args.skip_train, args.train_minutes


def main(argv: list[str] | None = None) -> int:
    build, skip_train, train_minutes = parse_args(argv)
    generate_data(build)
    if skip_train:
        seconds = train_minutes * 60 if train_minutes else None
    else:
        try:
            seconds = train(build)
        except TrainingStopped as exc:
            print(f"python -m training.demo_model: {exc}", file=sys.stderr)
            return 75
    checkpoint = final_checkpoint(build.run_dir)
    metrics = summarise_metrics(evaluate(build, checkpoint))
    export(build, checkpoint, metrics, seconds)
    calibrate(build)
    build_bank(build)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
