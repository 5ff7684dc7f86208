"""Training configuration: dataclasses, YAML loading with ``base`` files and dotted overrides.

The dataclasses are the schema: OmegaConf merges the YAML and the ``key=value``
overrides onto them, so an unknown key or a value of the wrong type fails before
any data is read, with a message naming the key, the value and what is allowed.
Choices (precision, device, ...) are checked in ``__post_init__``.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from cxrclip.config import ModelConfig

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cuda", "cpu")
SCHEDULES = ("cosine", "constant")
LABEL_VIEWS = ("each", "max", "frontal")
PKG_PREFIX = "pkg:"


class ConfigError(ValueError):
    """A training config key or value is not allowed."""


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not allowed; choose one of {list(allowed)}")


def _at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{key}={value!r} must be >= {low}")


def _check_findings(key: str, weights: dict[str, float], minimum: float) -> None:
    """A {finding: number} option: every key one of the label-term findings, every value >= minimum."""
    from training.data.text import LABEL_LOSS_FINDINGS

    for finding, weight in weights.items():
        if finding not in LABEL_LOSS_FINDINGS:
            raise ConfigError(f"{key}: unknown finding {finding!r}; allowed: {', '.join(LABEL_LOSS_FINDINGS)}")
        _at_least(f"{key}.{finding}", weight, minimum)


@dataclass
class DataConfig:
    """Which manifests to read and how to turn studies into pairs."""

    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    train_split: str = "train"
    val_split: str = "validate"
    num_workers: int = 4
    shuffle_sentences: bool = True
    max_replacement_tries: int = 10
    # Draw training studies with a finding more often: {Fracture: 4.0} makes a study with a
    # fracture 4 times as likely to be drawn (a study's weight is the largest of its findings'
    # multipliers, 1 without any). Epochs keep their length; {} draws every study once per epoch.
    oversample: dict[str, float] = field(default_factory=dict)
    # Keep twins together: a training study whose id is another's plus this suffix (a phantom's
    # intact twin, `cxrclip phantom generate --fracture-twins`: "-intact") is drawn right after
    # it, and it right after the twin, so both land in one batch and the contrastive terms can
    # only tell their reports apart by what the two images differ in. "" (default): off.
    twin_suffix: str = ""

    def __post_init__(self) -> None:
        _at_least("data.num_workers", self.num_workers, 0)
        _at_least("data.max_replacement_tries", self.max_replacement_tries, 1)
        _check_findings("data.oversample", self.oversample, 1.0)


@dataclass
class AugmentConfig:
    """Training augmentation (evaluation uses ``cxrclip.preprocess`` only)."""

    crop_scale_min: float = 0.8
    crop_scale_max: float = 1.1
    crop_ratio_min: float = 0.75
    crop_ratio_max: float = 1.333
    clahe: bool = True
    clahe_probability: float = 0.5
    clahe_clip_limit: float = 2.0
    clahe_tile: int = 8
    brightness: float = 0.1
    contrast: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.crop_scale_min <= self.crop_scale_max:
            raise ConfigError(f"augment.crop_scale_min={self.crop_scale_min} and crop_scale_max="
                              f"{self.crop_scale_max} must satisfy 0 < min <= max")
        if not 0 <= self.clahe_probability <= 1:
            raise ConfigError(f"augment.clahe_probability={self.clahe_probability} must be in [0, 1]")


@dataclass
class LossConfig:
    """Weights of the CXR-CLIP loss terms (paper: ICL 1.0, TCL 0.5)."""

    # Weight of the image-text terms. clip_weight = i2i_weight = t2t_weight = 0 leaves the run to
    # the label terms alone (a curriculum stage that teaches the image tower one finding).
    clip_weight: float = 1.0
    i2i_weight: float = 1.0
    t2t_weight: float = 0.5
    label_smoothing: float = 0.0
    # Weight of `cxrclip.losses.label_prompt_loss` (0: the paper's loss). Needs finding labels in
    # the manifests; label sentences (assets/prompts/label_sentences.json) are its prompts.
    label_weight: float = 0.0
    # Weight each finding's present labels by negatives / positives in the training labels
    # (capped at 20), so that rare findings count as much as their absence.
    label_balance: bool = False
    # Multiply every label-term entry of the named findings (present or absent), e.g.
    # {Fracture: 5.0} for a small finding the contrastive terms do not teach. Keys: the
    # findings of `training.data.text.LABEL_LOSS_FINDINGS`.
    label_finding_weights: dict[str, float] = field(default_factory=dict)
    # Score each finding along the unit vector of its positive-minus-negative sentence
    # embeddings (`label_prompt_loss(unit_contrast=True)`): the same ranking as the recipe,
    # without the collapse of the prompts onto each other for a finding not yet seen.
    label_unit_contrast: bool = False
    # How the label term treats a study's two views: "each" (every view against the study's
    # labels), "max" (the larger of the two views' logits: a finding needs one view that
    # shows it, e.g. a rib fracture drawn on the frontal view only) or "frontal" (the study's
    # frontal view alone, the view the evaluation scores; the first view when neither is).
    label_views: str = "each"
    # Weight of `cxrclip.losses.head_label_loss` (0: off): a linear head on the image embeddings
    # trained against the finding labels (an auxiliary classifier, with label_balance above and
    # its own findings and views below). The head belongs to the trainer: saved with its state for
    # --resume, never exported; it starts from train.init_from's when that checkpoint has one.
    head_label_weight: float = 0.0
    # The head's own finding multipliers and views (as label_finding_weights / label_views), so a
    # run can keep the head on one finding (e.g. {Fracture: 1}, the rest 0) while the label term
    # trains all 13.
    head_finding_weights: dict[str, float] = field(default_factory=dict)
    head_views: str = "each"
    # Hard negatives of the label terms (label term, head, dense term): {Fracture: {Pleural Other:
    # 5.0}} makes a study labelled without a fracture but with a pleural finding weigh 5 times in
    # fracture's entries (`cxrclip.losses.hard_negative_weights`): the negatives a finding is
    # confused with (`python -m training.evaluation.twins` lists them). Factors >= 1.
    hard_negatives: dict[str, dict[str, float]] = field(default_factory=dict)
    # Weight of `cxrclip.losses.dense_label_loss` (0: off): the label term scored at every
    # feature-map location and pooled by a smooth maximum, so a finding's evidence sits where
    # the finding is (heatmaps). Shares the label sentences and the weights above.
    dense_label_weight: float = 0.0
    # Sharpness of that pooling (log-mean-exp of sharpness x logit): small = mean, large = max.
    dense_label_sharpness: float = 1.0

    def __post_init__(self) -> None:
        terms = ("clip_weight", "i2i_weight", "t2t_weight", "label_weight", "head_label_weight", "dense_label_weight")
        for key in terms:
            _at_least(f"loss.{key}", getattr(self, key), 0.0)
        if sum(getattr(self, key) for key in terms) == 0:
            raise ConfigError(f"loss: every term has weight 0 ({', '.join(terms)}); at least one must be > 0")
        if self.dense_label_sharpness <= 0:
            raise ConfigError(f"loss.dense_label_sharpness={self.dense_label_sharpness} must be > 0")
        _check_findings("loss.label_finding_weights", self.label_finding_weights, 0.0)
        _choice("loss.label_views", self.label_views, LABEL_VIEWS)
        _check_findings("loss.head_finding_weights", self.head_finding_weights, 0.0)
        _choice("loss.head_views", self.head_views, LABEL_VIEWS)
        _check_findings("loss.hard_negatives", {name: 1.0 for name in self.hard_negatives}, 0.0)
        for name, lookalikes in self.hard_negatives.items():
            _check_findings(f"loss.hard_negatives.{name}", lookalikes, 1.0)


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule."""

    lr: float = 5e-5
    weight_decay: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    schedule: str = "cosine"
    warmup_steps: int = 0
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.0
    max_grad_norm: float = 0.0
    fused: bool = True
    # Learning rate of the label head (loss.head_label_weight), on the same schedule; null: optim.lr.
    # (For rib fracture on the demo phantoms 10x optim.lr did not help: the image feature is the limit.)
    head_lr: float | None = None

    def __post_init__(self) -> None:
        _choice("optim.schedule", self.schedule, SCHEDULES)
        if self.lr <= 0:
            raise ConfigError(f"optim.lr={self.lr} must be > 0")
        if self.head_lr is not None and self.head_lr <= 0:
            raise ConfigError(f"optim.head_lr={self.head_lr} must be > 0 (or null: optim.lr)")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"optim.warmup_ratio={self.warmup_ratio} must be in [0, 1)")


@dataclass
class TrainSection:
    """Loop length, batch, precision, checkpointing and logging."""

    epochs: int = 15
    batch_size: int = 128
    grad_accum_steps: int = 1
    max_steps: int | None = None
    stop_after_steps: int | None = None
    precision: str = "auto"
    device: str = "auto"
    gradient_checkpointing: bool = False
    channels_last: bool = True
    compile: bool = False
    seed: int = 42
    log_every: int = 10
    ckpt_every_steps: int = 1000
    keep_best: bool = True
    keep_last: int = 2
    export_onnx: bool = True  # at the end: ONNX exports of best/ (else the last checkpoint), as export-onnx
    max_consecutive_nonfinite: int = 20
    max_logit_scale: float = 100.0
    progress: bool = True
    init_from: str | None = None  # a cxrclip model dir to fine-tune from (checkpoint, converted official model)
    freeze_text_layers: int = 0  # text embeddings + this many bottom layers stay fixed (trainer/freezing.py)

    def __post_init__(self) -> None:
        _choice("train.precision", self.precision, PRECISIONS)
        _choice("train.device", self.device, DEVICES)
        for key in ("epochs", "batch_size", "grad_accum_steps", "log_every",
                    "max_consecutive_nonfinite"):
            _at_least(f"train.{key}", getattr(self, key), 1)
        _at_least("train.ckpt_every_steps", self.ckpt_every_steps, 0)
        _at_least("train.freeze_text_layers", self.freeze_text_layers, 0)


@dataclass
class ExperimentConfig:
    """The whole training run."""

    output_dir: str = "runs/cxrclip"
    model: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainSection = field(default_factory=TrainSection)

    def model_config(self) -> ModelConfig:
        """The ``model`` section as a validated ``cxrclip`` ModelConfig."""
        try:
            return ModelConfig.from_dict(self.model)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"model: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for saving next to checkpoints and in the model card)."""
        return dataclasses.asdict(self)


def resolve_text_path(path: str) -> str:
    """Turn ``pkg:module`` into the directory the module's ``get_model_path()`` returns."""
    if not path.startswith(PKG_PREFIX):
        return path
    module_name = path[len(PKG_PREFIX):]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model.text.path={path!r}: package {module_name!r} is not installed; "
                          f"pip install {module_name.replace('_', '-')}") from exc
    getter = getattr(module, "get_model_path", None)
    if getter is None:
        raise ConfigError(f"model.text.path={path!r}: {module_name} has no get_model_path()")
    return str(getter())


def _load_yaml_with_bases(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """Load YAML; a top-level ``base`` (str or list, relative to the file) is merged first."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"config base cycle: {' -> '.join(map(str, seen + (path,)))}")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; see training/configs/ for examples")
    raw = OmegaConf.load(path)
    bases = raw.pop("base", None)
    merged = OmegaConf.create()
    for base in [bases] if isinstance(bases, str) else list(bases or []):
        merged = OmegaConf.merge(merged, _load_yaml_with_bases(path.parent / base, seen + (path,)))
    return OmegaConf.merge(merged, raw)


def _explain(exc: OmegaConfBaseException) -> ConfigError:
    key = getattr(exc, "full_key", None) or "?"
    obj_type = getattr(exc, "object_type", None)
    if isinstance(exc, ConfigKeyError) and obj_type is not None and dataclasses.is_dataclass(obj_type):
        allowed = [f.name for f in dataclasses.fields(obj_type)]
        return ConfigError(f"unknown config key {key!r}; allowed keys here: {allowed}")
    first_line = str(exc).splitlines()[0]
    return ConfigError(f"bad config value for {key!r}: {first_line}")


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Schema ← YAML (with bases) ← ``key=value`` overrides, validated."""
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"override {bad[0]!r} must look like key=value, e.g. train.batch_size=64")
    try:
        cfg = OmegaConf.structured(ExperimentConfig)
        if path is not None:
            cfg = OmegaConf.merge(cfg, _load_yaml_with_bases(Path(path)))
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
        exp = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError):
            raise cause from exc
        raise _explain(exc) from exc
    if not isinstance(exp, ExperimentConfig):
        raise ConfigError(f"config {path} did not produce an ExperimentConfig")
    text = dict(exp.model.get("text") or {})
    if "path" in text:
        text["path"] = resolve_text_path(str(text["path"]))
        exp.model["text"] = text
    exp.model_config()
    return exp
