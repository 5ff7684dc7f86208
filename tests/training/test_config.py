"""Config loading: bases, overrides, and errors that name the key, the value and what is allowed."""
from __future__ import annotations

import pytest

from training.config import ConfigError, load_config


def test_paper_configs_merge_bases(repo_root):
    cfg = load_config(repo_root / "training/configs/swint_mcc.yaml", ["train.batch_size=32"])
    assert cfg.model["image"]["name"] == "swin_tiny"
    assert cfg.model["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert [p.split("/")[-1] for p in cfg.data.train] == ["mimic", "chexpert", "chestxray14"]
    assert cfg.loss.t2t_weight == 0.5 and cfg.train.batch_size == 32


def test_demo_config_resolves_minilm_package(repo_root, minilm_dir):
    cfg = load_config(repo_root / "training/configs/demo.yaml")
    assert cfg.model["text"]["path"] == str(minilm_dir)
    assert cfg.model_config().image.name == "resnet10_slim"


@pytest.mark.parametrize("override, message", [
    ("train.batchsize=3", r"unknown config key 'train.batchsize'; allowed keys here: \[.*'batch_size'"),
    ("train.precision=fp8", r"train.precision='fp8' is not allowed; choose one of \['auto', 'bf16', 'fp16', 'fp32'\]"),
    ("train.batch_size=many", r"'train.batch_size'.*'many'"),
    ("optim.schedule=step", r"optim.schedule='step'.*\['cosine', 'constant'\]"),
    ("model.text.pooling=max", r"text.pooling must be one of \['eos', 'bos', 'mean'\], got 'max'"),
    ("model.imag.name=x", r"unknown key 'imag'"),
    ("train.batch_size", r"must look like key=value"),
    ("loss.label_weight=-0.5", r"loss.label_weight=-0.5 must be >= 0.0"),
    ("loss.label_finding_weights.Fractures=5", r"unknown finding 'Fractures'; allowed: .*Fracture, Support Devices"),
    ("loss.label_finding_weights.Fracture=-1", r"loss.label_finding_weights.Fracture=-1.0 must be >= 0.0"),
    ("loss.dense_label_weight=-1", r"loss.dense_label_weight=-1.0 must be >= 0.0"),
    ("data.oversample.Fractur=4", r"data.oversample: unknown finding 'Fractur'; allowed: .*Fracture"),
    ("data.oversample.Fracture=0.5", r"data.oversample.Fracture=0.5 must be >= 1.0"),
    ("loss.dense_label_sharpness=0", r"loss.dense_label_sharpness=0.0 must be > 0"),
    ("loss.label_views=mean", r"loss.label_views='mean' is not allowed; choose one of \['each', 'max', 'frontal'\]"),
    ("loss.clip_weight=-1", r"loss.clip_weight=-1.0 must be >= 0"),
    ("loss.head_finding_weights.Fractures=1", r"loss.head_finding_weights: unknown finding 'Fractures'"),
    ("optim.head_lr=0", r"optim.head_lr=0.0 must be > 0 \(or null: optim.lr\)"),
    ("loss.head_views=lateral", r"loss.head_views='lateral' is not allowed; choose one of \['each', 'max', 'frontal'\]"),
    ("loss.hard_negatives.Fractur.Edema=2", r"loss.hard_negatives: unknown finding 'Fractur'; allowed: .*Fracture"),
    ("loss.hard_negatives.Fracture.Edemas=2", r"loss.hard_negatives.Fracture: unknown finding 'Edemas'"),
    ("loss.hard_negatives.Fracture.Edema=0.5", r"loss.hard_negatives.Fracture.Edema=0.5 must be >= 1.0"),
    ("loss.hard_negatives.Fracture=2", r"'loss.hard_negatives.Fracture': Value 2 \(int\) is incompatible"),
    ("loss.clip_weight=0 loss.i2i_weight=0 loss.t2t_weight=0", r"loss: every term has weight 0 \(clip_weight"),
])
def test_bad_keys_and_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, override.split())


def test_missing_file_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")
