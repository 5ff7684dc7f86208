"""Rebuild the bundled demo model in one command: `python -m training.demo_model`.

Steps (each skipped when its output already exists, so an interrupted build resumes):
1. phantom studies for training (seed 1), for the fine-tune (seed 11) and a held-out set
   from another seed (seed 2);
2. stage 1: `cxrclip train training/configs/demo.yaml` on the training set (resumes from its
   last checkpoint when the run folder has one), kept as fp16 weights in `stage1/`
   (`--stage1-model DIR` takes an existing model folder instead, e.g. an earlier bundled model);
3. stage 2a (curriculum, only with `--focus-config FILE`, e.g. training/configs/demo_fracture.yaml):
   `cxrclip train FILE` from the stage-1 weights on the fine-tune set, the whole loss on one
   finding the contrastive terms do not teach (a rib fracture);
4. stage 2: `cxrclip train training/configs/demo_finetune.yaml` from stage 2a's final
   checkpoint (or the stage-1 weights) on the fine-tune set, with the label term
   (docs/losses_prompts.md); both resume the same way;
5. `cxrclip eval` of the stage-2 final checkpoint on the held-out set;
6. export as fp16 safetensors into `assets/models/cxrclip-demo/` with a model card that
   quotes the held-out metrics, the data, the run and the hardware, plus its ONNX exports
   (`cxrclip export-onnx`; a failure warns and the build goes on);
7. a sentence bank built from the held-out reports plus `assets/sentence_bank/sentences.txt`;
8. `cxrclip calibrate --views study` on a validation set (seed 3) with OOD statistics from another (seed 4)
   and from phantoms drawn at 1024 px (seed 6; threshold views also from seed 7 at 1024 px):
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
FINETUNE_CONFIG = REPO / "training" / "configs" / "demo_finetune.yaml"
FOCUS_CONFIG = REPO / "training" / "configs" / "demo_fracture.yaml"


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
    # The OOD guard also learns phantoms drawn large and shrunk by the preprocessing, as
    # `cxrclip phantom` DICOMs (1024 px) and the sample studies reach the viewer: statistics
    # from seed 6, threshold views from seed 7 (docs/trust.md).
    large_size: int = 1024
    ood_large_studies: int = 300
    ood_large_seed: int = 6
    val_large_studies: int = 150
    val_large_seed: int = 7
    finetune_studies: int = 8000
    finetune_seed: int = 11
    config: Path = CONFIG
    finetune_config: Path = FINETUNE_CONFIG
    focus_config: Path | None = None  # stage 2a between stages 1 and 2 (e.g. FOCUS_CONFIG); None: none
    stage1_model: Path | None = None   # an existing model folder used as stage 1 instead of training it

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
    def ood_large_dir(self) -> Path:
        return self.work / f"ood-{self.large_size}"

    @property
    def val_large_dir(self) -> Path:
        return self.work / f"val-{self.large_size}"

    @property
    def finetune_dir(self) -> Path:
        """The stage-2 set; ``finetune-twins`` when the stage-2 config draws fracture twins together."""
        return self.work / ("finetune-twins" if self.finetune_twins else "finetune")

    @property
    def finetune_twins(self) -> bool:
        """Whether stage 2 trains with fracture twins (its config sets ``data.twin_suffix``)."""
        return finetune_summary(self.finetune_config)["twins"]

    @property
    def run_dir(self) -> Path:
        return self.work / "run"

    @property
    def stage1_dir(self) -> Path:
        """Stage 1's weights as the viewer would load them (fp16), the fine-tune's starting point."""
        return self.work / "stage1"

    @property
    def focus_run_dir(self) -> Path:
        return self.work / "run-focus"

    @property
    def finetune_run_dir(self) -> Path:
        return self.work / "run-finetune"

    @property
    def eval_json(self) -> Path:
        return self.work / "heldout_eval.json"


def _cxrclip(*args: str) -> None:
    """Run one `cxrclip` subcommand in a child process; stop the build if it fails."""
    command = [sys.executable, "-m", "cxrclip.cli", *args]
    print("+", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def generate_data(build: DemoBuild, train_stage1: bool = True, train_stage2: bool = True) -> None:
    """The phantom sets the build needs (training sets only for the stages that train)."""
    size, large = build.image_size, build.large_size
    sets = [(build.heldout_dir, build.heldout_studies, build.heldout_seed, "test", size, False),
            (build.val_dir, build.val_studies, build.val_seed, "validate", size, False),
            (build.ood_dir, build.ood_studies, build.ood_seed, "validate", size, False),
            (build.ood_large_dir, build.ood_large_studies, build.ood_large_seed, "validate", large, False),
            (build.val_large_dir, build.val_large_studies, build.val_large_seed, "validate", large, False)]
    if train_stage1:
        sets.append((build.train_dir, build.train_studies, build.train_seed, "hash", size, False))
    if train_stage2:
        sets.append((build.finetune_dir, build.finetune_studies, build.finetune_seed, "hash", size,
                     build.finetune_twins))
    for out, studies, seed, split, side, twins in sets:
        if (out / "manifest.json").is_file():
            continue
        _cxrclip("phantom", "generate", "--out", _shown(out), "--studies", str(studies), "--seed", str(seed),
                 "--png", "--no-dicom", "--size", str(side), "--workers", "2", "--split", split,
                 *(["--fracture-twins"] if twins else []))


class TrainingStopped(RuntimeError):
    """`cxrclip train` was stopped by a signal after saving a checkpoint (exit status 75)."""


def train(build: DemoBuild) -> float:
    """Stage 1: train (or resume); returns its wall time in seconds over every call so far
    (`_add_train_seconds`). A stop signal (SIGTERM, Ctrl-C) ends training with a checkpoint;
    the build then stops and resumes from it when run again."""
    return _train_run(build, build.config, build.run_dir, "train_seconds.txt",
                      f"data.train=[{_shown(build.train_dir)}]", f"data.val=[{_shown(build.train_dir)}]")


def focus(build: DemoBuild) -> float:
    """Stage 2a: the finding-focused stage from the stage-1 weights (or resume); wall time in seconds."""
    return _train_run(build, build.focus_config, build.focus_run_dir, "focus_seconds.txt",
                      f"train.init_from={_shown(build.stage1_dir)}", f"data.train=[{_shown(build.finetune_dir)}]")


def stage_two_start(build: DemoBuild) -> Path:
    """Where stage 2 starts: stage 2a's final checkpoint, or the stage-1 weights without stage 2a."""
    return final_checkpoint(build.focus_run_dir) if build.focus_config else build.stage1_dir


def finetune(build: DemoBuild) -> float:
    """Stage 2: the label-term fine-tune from `stage_two_start` (or resume); wall time in seconds."""
    return _train_run(build, build.finetune_config, build.finetune_run_dir, "finetune_seconds.txt",
                      f"train.init_from={_shown(stage_two_start(build))}",
                      f"data.train=[{_shown(build.finetune_dir)}]")


def _train_run(build: DemoBuild, config: Path, run_dir: Path, record: str, *overrides: str) -> float:
    from training.trainer.interrupt import EXIT_STOPPED

    start = time.perf_counter()
    resume = ["--resume"] if (run_dir / "checkpoints").is_dir() else []
    try:
        _cxrclip("train", _shown(config), *resume, *overrides, f"output_dir={_shown(run_dir)}")
    except subprocess.CalledProcessError as exc:
        if exc.returncode == EXIT_STOPPED:
            _add_train_seconds(build, time.perf_counter() - start, record)
            raise TrainingStopped(f"training stopped with a checkpoint in {run_dir / 'checkpoints'}; "
                                  "run `python -m training.demo_model` again to resume") from None
        raise
    return _add_train_seconds(build, time.perf_counter() - start, record)


def _add_train_seconds(build: DemoBuild, seconds: float, record: str = "train_seconds.txt") -> float:
    """Wall time of one stage's training over every call (a run resumed across sessions), for the card."""
    total = (recorded_seconds(build, record) or 0.0) + seconds
    (build.work / record).write_text(f"{total:.1f}\n")
    return total


def recorded_seconds(build: DemoBuild, record: str) -> float | None:
    """A stage's training wall time recorded by earlier calls, if any."""
    path = build.work / record
    return float(path.read_text()) if path.is_file() else None


def keep_stage1(build: DemoBuild) -> None:
    """Write stage 1's weights, as fp16 like the bundled model, into ``stage1/`` (once): from
    ``--stage1-model`` when given, else from stage 1's final checkpoint."""
    from cxrclip.checkpoint import WEIGHTS_FILE, load_model, save_model

    if (build.stage1_dir / WEIGHTS_FILE).is_file():
        return
    source = build.stage1_model or final_checkpoint(build.run_dir)
    loaded = load_model(source, device="cpu")
    save_model(loaded.model, loaded.tokenizer, build.stage1_dir, dtype=_float16())


def final_checkpoint(run_dir: Path) -> Path:
    """The newest `step_*` checkpoint of a run."""
    steps = sorted((run_dir / "checkpoints").glob("step_*"))
    if not steps:
        raise FileNotFoundError(f"no checkpoints under {run_dir / 'checkpoints'}; did training run?")
    return steps[-1]


def evaluate(build: DemoBuild, checkpoint: Path) -> dict:
    _cxrclip("eval", _shown(checkpoint), "--data", _shown(build.heldout_dir), "--split", "test",
             "--tasks", "binary,retrieval,zeroshot", "--blank-as-negative",
             "--binary-prompts", "ensemble", "--out", _shown(build.eval_json))
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


def export(build: DemoBuild, checkpoint: Path, metrics: dict, seconds: StageSeconds) -> None:
    from cxrclip.checkpoint import ModelCard, load_model, save_model
    from cxrclip.onnx_after_save import export_onnx_or_warn
    from training.phantoms import GENERATOR_VERSION

    loaded = load_model(checkpoint, device="cpu")
    run, tune = run_summary(build.config), finetune_summary(build.finetune_config)
    focus_text = _focus_text(focus_summary(build.focus_config), seconds.focus) if build.focus_config else ""
    loaded.model.config.name = "cxrclip-demo"  # the bundled model's name, shown in the viewer
    loaded.model.config.text.path = _shown(Path(loaded.model.config.text.path))  # no machine paths in the card
    wall, tune_wall = _minutes(seconds.stage1), _minutes(seconds.stage2)
    card = ModelCard(
        title="CXR-CLIP demo model (synthetic phantoms)",
        description=("A small CXR-CLIP model trained by this project's `training/` package on synthetic "
                     "phantom chest radiographs, so the viewer opens with a model that really works. "
                     f"Metrics: `cxrclip eval` on the {build.heldout_studies} held-out phantom studies "
                     "(frontal view; each finding scored as the viewer does, its class-prompt ensemble "
                     "against 'no X'; findings a report does not mention count as absent)."),
        source=(f"`python -m training.demo_model` (stage 1 config {_shown(build.config)}, "
                + (f"stage 2a config {_shown(build.focus_config)}, " if build.focus_config else "")
                + f"stage 2 config {_shown(build.finetune_config)}, checkpoint {checkpoint.name} of stage 2)"),
        data=(f"Synthetic phantom studies from `cxrclip phantom generate` (generator {GENERATOR_VERSION}): "
              f"{build.train_studies} studies with seed {build.train_seed} for stage 1 and "
              f"{build.finetune_studies} fresh studies with seed {build.finetune_seed} for stage 2 (90/5/5 "
              "hash splits; two views and FINDINGS/IMPRESSION per study), held-out test set of "
              f"{build.heldout_studies} studies with seed {build.heldout_seed}. No real radiographs."),
        training=(f"{run['image']} image tower at {run['size']} px, all-MiniLM-L6-v2 text tower "
                  f"({_text_training(run['freeze_text_layers'])}), "
                  f"linear projections to 256-d, batch {run['batch']}, AdamW with cosine schedules. "
                  f"Stage 1: CXR-CLIP loss (CLIP over 4 pairings + ICL 1.0 + TCL 0.5), {run['epochs']} "
                  f"epochs at lr {run['lr']:g}, wall time {wall}. {focus_text}"
                  f"Stage 2: from the stage-{'2a' if build.focus_config else '1'} weights, "
                  f"the same loss plus {_stage_two_text(tune)}; {tune['steps']} steps at lr {tune['lr']:g}, "
                  f"wall time {tune_wall}."),
        hardware=f"CPU only: {platform.processor() or platform.machine()}, 2 cores, no GPU",
        metrics=metrics,
        intended_use=("Demonstration and testing of the viewer and the training package only. "
                      "Not for clinical use. It has only seen synthetic images and says nothing about "
                      "real radiographs."),
        limitations=(f"Phantoms are stylised; scores on real chest X-rays are meaningless. At {run['size']} px "
                     "with a slim CNN trained on 2 CPU cores, small findings (rib fracture, "
                     "pleural plaques) are the weakest; large ones (effusion, pneumothorax, edema, "
                     "cardiomegaly) are well separated. Per-finding figures are below."),
        license="Apache-2.0",
        extra={"synthetic": True, "generator_version": GENERATOR_VERSION,
               "train_seed": build.train_seed, "finetune_seed": build.finetune_seed,
               "heldout_seed": build.heldout_seed},
    )
    save_model(loaded.model, loaded.tokenizer, build.out, card=card, dtype=_float16())
    export_onnx_or_warn(build.out)  # before calibrate: the viewer starts on ONNX Runtime


@dataclass(frozen=True)
class StageSeconds:
    """Training wall time of each stage, for the card (None: not known to this build)."""

    stage1: float | None = None
    stage2: float | None = None
    focus: float | None = None   # stage 2a


def _minutes(seconds: float | None) -> str:
    return f"{seconds / 60:.1f} min" if seconds else "see the run log"


def run_summary(config: Path = CONFIG) -> dict:
    """Image tower, input size, batch, epochs, learning rate and frozen text layers of the
    demo config, for the card (read through the training config schema, defaults included)."""
    from training.config import load_config

    cfg = load_config(config)
    return {"image": cfg.model["image"]["name"], "size": cfg.model["image"]["image_size"],
            "batch": cfg.train.batch_size, "epochs": cfg.train.epochs, "lr": float(cfg.optim.lr),
            "freeze_text_layers": cfg.train.freeze_text_layers}


def finetune_summary(config: Path = FINETUNE_CONFIG) -> dict:
    """Steps, learning rate and label-term settings of the stage-2 config, for the card."""
    from training.config import load_config

    cfg = load_config(config)
    aug = cfg.augment
    augmented = (aug.crop_scale_min, aug.crop_scale_max, aug.crop_ratio_min, aug.crop_ratio_max) != (1, 1, 1, 1) \
        or aug.clahe or aug.brightness > 0 or aug.contrast > 0
    return {"steps": cfg.train.max_steps, "lr": float(cfg.optim.lr),
            "label_weight": float(cfg.loss.label_weight), "label_balance": bool(cfg.loss.label_balance),
            "unit_contrast": bool(cfg.loss.label_unit_contrast), "oversample": dict(cfg.data.oversample),
            "augmented": bool(augmented), "twins": bool(cfg.data.twin_suffix), **_head_summary(cfg.loss)}


def _head_summary(loss) -> dict:
    """The label head's weight, findings and views, for the card."""
    return {"head_weight": float(loss.head_label_weight), "head_views": loss.head_views,
            "head_findings": _weighted_findings(loss.head_finding_weights)}


def _weighted_findings(weights: dict[str, float]) -> list[str]:
    """The label-loss findings a finding-weight table keeps (weight above 0; unlisted = 1)."""
    from training.data.text import LABEL_LOSS_FINDINGS

    return [name for name in LABEL_LOSS_FINDINGS if weights.get(name, 1.0) > 0]


# How a per-study loss reads its views (loss.label_views / loss.head_views), for the card.
_VIEWS_TEXT = {"max": ", each study scored by its stronger view",
               "frontal": ", each study scored on its frontal view"}


def focus_summary(config: Path = FOCUS_CONFIG) -> dict:
    """Steps, learning rate, focused findings and contrastive weights of the stage-2a config, for the card."""
    from training.config import load_config

    cfg = load_config(config)
    head = cfg.loss.head_label_weight > 0  # the head's findings and views when it is on, else the label term's
    weights = cfg.loss.head_finding_weights if head else cfg.loss.label_finding_weights
    return {"steps": cfg.train.max_steps, "lr": float(cfg.optim.lr),
            "findings": _weighted_findings(weights),
            "contrastive": (cfg.loss.clip_weight, cfg.loss.i2i_weight, cfg.loss.t2t_weight) != (0, 0, 0),
            "head": head, "label_term": cfg.loss.label_weight > 0, "oversample": dict(cfg.data.oversample),
            "label_views": cfg.loss.head_views if head else cfg.loss.label_views, "schedule": cfg.optim.schedule}


def _focus_text(focus: dict, seconds: float | None) -> str:
    """How stage 2a trains, in words, for the card."""
    terms = [name for name, on in (("a linear label head on the image embeddings", focus["head"]),
                                   ("the label term", focus["label_term"])) if on]
    loss = " and ".join(terms) + ("" if focus["contrastive"] else " alone (image-text terms off)")
    drawn = "".join(f", studies with {name} drawn {factor:g} times as often"
                    for name, factor in focus["oversample"].items())
    views = _VIEWS_TEXT.get(focus["label_views"], "")
    schedule = ", at a constant learning rate" if focus["schedule"] == "constant" else ""
    return (f"Stage 2a: from the stage-1 weights, {loss} on {', '.join(focus['findings'])} only{drawn}{views}"
            f"{schedule}; "
            f"{focus['steps']} steps at lr {focus['lr']:g}, wall time {_minutes(seconds)}. ")


def _stage_two_text(tune: dict) -> str:
    """How stage 2 trains, in words, for the card."""
    label = (f"the label term (weight {tune['label_weight']:g}{', balanced' if tune['label_balance'] else ''}"
             f"{', along the unit contrast' if tune['unit_contrast'] else ''}: each finding's zero-shot contrast "
             "trained on the report's labels)")
    extras = []
    if tune.get("head_weight", 0) > 0:
        extras.append(f"a linear label head on the image embeddings (weight {tune['head_weight']:g}) on "
                      f"{', '.join(tune['head_findings'])}{_VIEWS_TEXT.get(tune['head_views'], '')}")
    extras += [f"studies with {name} drawn {factor:g} times as often" for name, factor in tune["oversample"].items()]
    if tune.get("twins"):
        extras.append("each study with a rib fracture drawn into one batch with its intact twin (the same "
                      "phantom without the fracture)")
    if not tune["augmented"]:
        extras.append("no augmentation")
    return label + "".join(f", {e}" for e in extras)


def _text_training(frozen_layers: int) -> str:
    if not frozen_layers:
        return "fine-tuned"
    return f"embeddings and the first {frozen_layers} layers frozen, the rest fine-tuned"


def _shown(path: Path) -> str:
    """A path relative to the repository when it lies inside it (what the card and the model
    folder record, and what the `cxrclip` children, run from the repository, are given)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _float16():
    import torch

    return torch.float16


def calibrate(build: DemoBuild) -> None:
    """Calibration + operating points (seed 3, each study from both its views as the findings
    panel scores it) and the OOD guard (statistics seeds 4 and 6, threshold views seeds 3 and 7)
    into the model folder."""
    _cxrclip("calibrate", _shown(build.out), "--data", _shown(build.val_dir), "--split", "validate",
             "--ood-data", _shown(build.ood_dir), "--ood-data", _shown(build.ood_large_dir),
             "--ood-threshold-data", _shown(build.val_large_dir), "--blank-as-negative", "--views", "study")


def build_bank(build: DemoBuild) -> None:
    """Bank from held-out reports (one sentence source line per report section) plus the project's sentences."""
    source = build.work / "bank_source.txt"
    lines = (REPO / "assets" / "sentence_bank" / "sentences.txt").read_text().splitlines()
    for line in (build.heldout_dir / "studies.jsonl").read_text().splitlines():
        record = json.loads(line)
        lines += [record[k] for k in ("findings", "impression") if record.get(k)]
    source.write_text("\n".join(lines) + "\n")
    _cxrclip("bank", "build", _shown(source), "-o", _shown(build.bank_out), "--model", _shown(build.out))


def parse_args(argv: list[str] | None) -> tuple[DemoBuild, bool, float | None]:
    parser = argparse.ArgumentParser(prog="python -m training.demo_model", description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "demo-build")
    parser.add_argument("--out", type=Path, default=REPO / "assets" / "models" / "cxrclip-demo")
    parser.add_argument("--bank-out", type=Path, default=REPO / "assets" / "sentence_bank" / "cxrclip-demo")
    parser.add_argument("--train-studies", type=int, default=DemoBuild.train_studies)
    parser.add_argument("--heldout-studies", type=int, default=DemoBuild.heldout_studies)
    parser.add_argument("--finetune-studies", type=int, default=DemoBuild.finetune_studies)
    parser.add_argument("--config", type=Path, default=CONFIG,
                        help="stage-1 training config (default training/configs/demo.yaml)")
    parser.add_argument("--finetune-config", type=Path, default=FINETUNE_CONFIG,
                        help="stage-2 training config (default training/configs/demo_finetune.yaml)")
    parser.add_argument("--focus-config", default="none",
                        help="stage-2a config, e.g. training/configs/demo_fracture.yaml (default none: no stage 2a; "
                             "the shipped model was built without it)")
    parser.add_argument("--stage1-model", type=Path, default=None,
                        help="a model folder to start stage 2 from instead of training stage 1")
    parser.add_argument("--skip-train", action="store_true",
                        help="train nothing: use the run folders' newest checkpoints")
    parser.add_argument("--train-minutes", type=float, default=None,
                        help="stage 1's wall time when it was trained elsewhere, for the card")
    args = parser.parse_args(argv)
    build = DemoBuild(work=args.work, out=args.out, bank_out=args.bank_out,
                      train_studies=args.train_studies, heldout_studies=args.heldout_studies,
                      finetune_studies=args.finetune_studies, config=args.config,
                      finetune_config=args.finetune_config, stage1_model=args.stage1_model,
                      focus_config=None if args.focus_config.lower() == "none" else Path(args.focus_config))
    return build, args.skip_train, args.train_minutes


def train_stages(build: DemoBuild, skip_train: bool, train_minutes: float | None) -> StageSeconds:
    """Stage 1 (unless skipped or given), its fp16 weights, stage 2a (when configured), then
    stage 2; raises TrainingStopped."""
    stage1 = train_minutes * 60 if train_minutes else recorded_seconds(build, "train_seconds.txt")
    if not skip_train and build.stage1_model is None:
        stage1 = train(build)
    keep_stage1(build)
    stage2a = None
    if build.focus_config:
        stage2a = recorded_seconds(build, "focus_seconds.txt") if skip_train else focus(build)
    stage2 = recorded_seconds(build, "finetune_seconds.txt") if skip_train else finetune(build)
    return StageSeconds(stage1, stage2, stage2a)


def main(argv: list[str] | None = None) -> int:
    build, skip_train, train_minutes = parse_args(argv)
    generate_data(build, train_stage1=not skip_train and build.stage1_model is None,
                  train_stage2=not skip_train)
    try:
        seconds = train_stages(build, skip_train, train_minutes)
    except TrainingStopped as exc:
        print(f"python -m training.demo_model: {exc}", file=sys.stderr)
        return 75
    checkpoint = final_checkpoint(build.finetune_run_dir)
    metrics = summarise_metrics(evaluate(build, checkpoint))
    export(build, checkpoint, metrics, seconds)
    calibrate(build)
    build_bank(build)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
