"""Fixtures for the model tests: local BERT directories (no download), tiny configs,
and fake published CXR-CLIP checkpoints built from the reference key manifest."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from collections.abc import Callable

import pytest
import torch

WORDS = ("left right pleural effusion no small large pneumonia heart the is normal size "
         "there mild cardiomegaly lungs are clear of focal consolidation").split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
CLINICALBERT = dict(vocab_size=28996, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=512)
TINYBERT = dict(vocab_size=28996, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=128)
LEGACY_SWIN = (("attention.q_proj.", "attention.self.query."), ("attention.k_proj.", "attention.self.key."),
               ("attention.v_proj.", "attention.self.value."),
               ("attention.relative_position_bias.relative_position_bias_table",
                "attention.self.relative_position_bias_table"),
               ("attention.o_proj.", "attention.output.dense."), ("mlp.fc1.", "intermediate.dense."),
               ("mlp.fc2.", "output.dense."))


def write_bert_dir(directory: Path, shape: dict) -> Path:
    """A transformers BERT directory (config + 28996-token tokenizer), no weights."""
    from transformers import BertConfig, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    BertConfig(**shape).save_pretrained(str(directory))
    words = SPECIAL + WORDS
    words += [f"w{i}" for i in range(shape["vocab_size"] - len(words))]
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def clinicalbert_dir(tmp_path_factory) -> Path:
    return write_bert_dir(tmp_path_factory.mktemp("clinicalbert"), CLINICALBERT)


@pytest.fixture(scope="session")
def tinybert_dir(tmp_path_factory) -> Path:
    return write_bert_dir(tmp_path_factory.mktemp("tinybert"), TINYBERT)


@pytest.fixture(scope="session")
def manifest() -> dict:
    """Key names and shapes of the published checkpoints' ``model`` entry (r50, swint)."""
    return json.loads((Path(__file__).parent / "official_cxrclip_checkpoint_keys.json").read_text())


@pytest.fixture
def tiny_config(tinybert_dir) -> Callable:
    """ModelConfig factory: small images, tiny BERT text encoder."""
    from cxrclip.config import ImageEncoderConfig, ModelConfig, PreprocessConfig, TextEncoderConfig

    def make(backbone: str = "resnet18", image_size: int = 64, **kw) -> ModelConfig:
        return ModelConfig(image=ImageEncoderConfig(name=backbone, image_size=image_size),
                           text=TextEncoderConfig(path=str(tinybert_dir)),
                           preprocess=PreprocessConfig(image_size, image_size), **kw)

    return make


def random_state(shapes: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random but sane tensors for every key (BN statistics positive, counters int)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif key == "logit_scale":
            state[key] = torch.tensor(math.log(1 / 0.07))
        elif re.search(r"(bn\d|downsample\.1|LayerNorm|layernorm\w*|norm)\.weight$", key):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            state[key] = 0.05 * torch.randn(shape, generator=gen)
    return state


def official_shapes(manifest: dict, backbone: str, text_dir: Path | None = None) -> dict[str, list[int]]:
    """Manifest shapes; with ``text_dir`` the text keys/shapes come from that (smaller) BERT."""
    shapes = dict(manifest[backbone])
    if text_dir is None:
        return shapes
    from transformers import AutoConfig, AutoModel

    with torch.device("meta"):
        bert = AutoModel.from_config(AutoConfig.from_pretrained(str(text_dir)))
    shapes = {k: v for k, v in shapes.items() if not k.startswith("text_encoder.")}
    shapes.update({f"text_encoder.text_encoder.{k}": list(v.shape) for k, v in bert.state_dict().items()})
    hidden = bert.config.hidden_size
    shapes["text_projection.projection.weight"] = [shapes["text_projection.projection.weight"][0], hidden]
    return shapes


def to_legacy(state: dict[str, torch.Tensor], add_buffers: bool = True, legacy_names: bool = False
              ) -> dict[str, torch.Tensor]:
    """Add the buffers old transformers saved and (optionally) the 4.x Swin names."""
    out = {}
    for key, value in state.items():
        m = re.match(r"^(image_encoder\.image_encoder\.encoder\.layers\.\d+\.blocks\.\d+\.)(.+)$", key)
        if m and legacy_names:
            head, rest = m.groups()
            for new, old in LEGACY_SWIN:
                if rest.startswith(new):
                    rest = old + rest[len(new):]
                    break
            key = head + rest
        out[key] = value
        if add_buffers and m and key.endswith("relative_position_bias_table"):
            out[m.group(1) + "attention.self.relative_position_index"] = torch.zeros(49, 49, dtype=torch.long)
    if add_buffers:
        out["text_encoder.text_encoder.embeddings.position_ids"] = torch.arange(512).unsqueeze(0)
    return out


# The official configs (kakaobrain/cxr-clip configs/train.yaml with its defaults: clahe transform,
# clip_{resnet,swin}_clinical model, adamw, cosine scheduler, cxr_clip loss), written out here.
OFFICIAL_YAML = """
base: {seed: 1234, amp: true, image_size: 224, text_max_length: 256, loss_best: contrastive,
       data_frac: 1.0, output: {checkpoint: ./outputs/checkpoints/, tensorboard: ./outputs/tensorboard/}}
data_train:
  mimic_cxr: {name: mimic_cxr, data_type: imagetext, data_path: datasets/mimic_train.csv,
              image_size: "${base.image_size}", text_max_length: "${base.text_max_length}", data_frac: 1.0}
  chexpert: {name: chexpert, data_type: imagetext, data_path: datasets/chexpert_train.csv,
             image_size: "${base.image_size}", text_max_length: "${base.text_max_length}", data_frac: 1.0}
dataloader:
  train: {pin_memory: true, shuffle: true, drop_last: true, num_workers: 8, prefetch_factor: 8, batch_size: 128}
  valid: {pin_memory: true, shuffle: false, drop_last: false, num_workers: 8, prefetch_factor: 8, batch_size: 128}
tokenizer: {source: huggingface, pretrained_model_name_or_path: emilyalsentzer/Bio_ClinicalBERT,
            cache_dir: huggingface/tokenizers}
transform:
  train:
    RandomResizedCrop: {size: "${base.image_size}", scale: [0.8, 1.1]}
    CLAHE: {clip_limit: 4.0}
    ColorJitter: {brightness: 0.1, contrast: 0.2, saturation: 0.2, hue: 0.1}
    CenterCrop: {size: "${base.image_size}"}
  valid:
    Resize: {size: "${base.image_size}"}
    CenterCrop: {size: "${base.image_size}"}
  test:
    Resize: {size: "${base.image_size}"}
    CenterCrop: {size: "${base.image_size}"}
model:
  name: clip_custom
  temperature: 0.07
  image_encoder: IMAGE_ENCODER
  text_encoder: {source: huggingface, name: emilyalsentzer/Bio_ClinicalBERT, pretrained: true,
                 gradient_checkpointing: false, pooling: eos, cache_dir: huggingface/,
                 trust_remote_code: true, mlm_head: true}
  projection_head: {name: linear, dropout: 0.1, proj_dim: 512}
optimizer: {name: adamw, config: {lr: 5.0e-05, weight_decay: 0.0001}}
scheduler: {name: cosine, config: {total_epochs: 15, warmup_epochs: 1}}
loss: {cxr_clip: {label_smoothing: 0.0, i2i_weight: 1.0, t2t_weight: 0.5, loss_ratio: 1.0}}
"""
IMAGE_ENCODERS = {
    "r50": "{source: torchvision, name: resnet, pretrained: true}",
    "swint": "{source: huggingface, name: microsoft/swin-tiny-patch4-window7-224, pretrained: true, "
             "model_type: swin}",
}


def official_config(backbone: str, image_size: int = 224):
    """The config exactly as the official trainer stores it: hydra's DictConfig, resolved, with
    only the DictConfig nodes turned into dicts, so lists stay omegaconf ListConfig objects."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    cfg = OmegaConf.create(OFFICIAL_YAML.replace("IMAGE_ENCODER", IMAGE_ENCODERS[backbone])
                           .replace("image_size: 224,", f"image_size: {image_size},"))
    OmegaConf.resolve(cfg)

    def only_dictconfig(node):
        if isinstance(node, DictConfig):
            return {key: only_dictconfig(value) for key, value in node.items()}
        return node

    config = only_dictconfig(cfg)
    # what the trainer adds before saving (plain ints on the plain dict)
    config["scheduler"]["config"].update(total_steps=15 * 1000, warmup_steps=1000)
    assert isinstance(config["transform"]["train"]["RandomResizedCrop"]["scale"], ListConfig)
    return config


def official_training_state(n_params: int = 3) -> tuple[dict, dict]:
    """An AdamW state dict (tensors per parameter) and the official warmup-cosine LambdaLR state."""
    state = {i: {"step": torch.tensor(3000.0), "exp_avg": torch.full((4,), 0.01 * i),
                 "exp_avg_sq": torch.full((4,), 1e-4)} for i in range(n_params)}
    groups = [{"lr": 4.9e-05, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0.0001, "amsgrad": False,
               "foreach": None, "maximize": False, "capturable": False, "differentiable": False,
               "fused": None, "initial_lr": 5e-05, "params": list(range(n_params))}]
    scheduler = {"tsteps": 15000, "wsteps": 1000, "base_lrs": [5e-05], "last_epoch": 3000, "verbose": False,
                 "_step_count": 3001, "_get_lr_called_within_step": False, "_last_lr": [4.9e-05],
                 "lr_lambdas": [{}]}
    return {"state": state, "param_groups": groups}, scheduler


def save_official(path: Path, model_state: dict[str, torch.Tensor], backbone: str,
                  image_size: int = 224) -> Path:
    """Write a file the way the official trainer does (cxrclip/trainer.py's torch.save)."""
    import numpy as np

    optimizer, scheduler = official_training_state()
    torch.save({"model": model_state, "optimizer": optimizer, "scheduler": scheduler,
                "config": official_config(backbone, image_size), "epoch": 3, "train_loss": np.float64(1.25)}, path)
    return path


@pytest.fixture
def helpers():
    """Module-level helpers for tests (test files cannot import each other)."""
    return type("Helpers", (), {"random_state": staticmethod(random_state),
                                "official_shapes": staticmethod(official_shapes),
                                "to_legacy": staticmethod(to_legacy),
                                "save_official": staticmethod(save_official),
                                "official_config": staticmethod(official_config),
                                "write_bert_dir": staticmethod(write_bert_dir)})
