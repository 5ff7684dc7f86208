"""Fixtures for training tests: a tiny random BERT directory and tiny PNG manifests."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.manifest import ManifestHeader, StudyRecord, write_manifest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import tiny_encoder  # noqa: E402  (needs HERE on sys.path)

SENTENCES = ["The heart is normal in size.", "There is a small left pleural effusion.",
             "No pneumothorax is seen.", "Lungs are clear.", "Mild pulmonary edema is present.",
             "There is right lower lobe consolidation.", "Support devices are in place."]


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory, minilm_dir) -> Path:
    """A 1-layer, 32-wide random BERT with MiniLM's tokenizer (fast to build and run)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    out = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(str(minilm_dir))
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def write_png(path: Path, rng: np.random.Generator, shape=(72, 88)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    Image.fromarray(img).save(path)


def make_manifest(root: Path, n: int = 8, seed: int = 0, splits=("train",), labels_only: int = 0) -> Path:
    """n studies per split: 2 views each (odd ones 1 view), random images, short reports."""
    rng = np.random.default_rng(seed)
    records = []
    for split in splits:
        for i in range(n):
            sid = f"{split}{i:03d}"
            views = 2 if i % 2 == 0 else 1
            imgs = [f"{sid}/v{v}.png" for v in range(views)]
            for rel in imgs:
                write_png(root / "images" / rel, rng)
            picks = rng.choice(len(SENTENCES), size=3, replace=False)
            label_only = i < labels_only
            records.append(StudyRecord(
                study_id=sid, images=imgs, view_positions=["PA", "LATERAL"][:views],
                findings=None if label_only else " ".join(SENTENCES[j] for j in picks[:2]),
                impression=None if label_only else SENTENCES[picks[2]],
                labels={"Edema": int(i % 3 == 0), "Pleural Effusion": 1} if label_only or i % 2 else None,
                split=split, dataset="toy"))
    write_manifest(root, ManifestHeader(dataset="toy", image_size=88), records)
    return root


@pytest.fixture
def toy_manifest(tmp_path) -> Path:
    return make_manifest(tmp_path / "toy", n=8, splits=("train", "validate", "test"), labels_only=2)


def tiny_overrides(text_dir: Path, data: Path, out: Path, **extra) -> list[str]:
    """Dotted overrides for a tiny-CNN@32px + tiny-BERT run on CPU."""
    base = {
        "output_dir": str(out),
        "model.image.name": tiny_encoder.NAME, "model.image.image_size": 32,
        "model.text.path": str(text_dir), "model.text.max_length": 32,
        "model.projection.dim": 16, "model.projection.dropout": 0.0,
        "model.preprocess.image_size": 32, "model.preprocess.resize_shorter": 32,
        "data.train": f"[{data}]", "data.val": f"[{data}]", "data.num_workers": 0,
        "train.batch_size": 4, "train.epochs": 2, "train.device": "cpu", "train.precision": "fp32",
        "train.channels_last": False, "train.log_every": 1, "train.ckpt_every_steps": 0,
        "train.progress": False, "train.export_onnx": False, "optim.lr": 1e-3, "optim.warmup_steps": 1, "optim.fused": False,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture(scope="session", autouse=True)
def _tiny_encoder_registered() -> None:
    tiny_encoder.register()


@pytest.fixture
def overrides_for(tiny_text_dir):
    """``overrides_for(data, out, **extra)`` → dotted overrides of a tiny CPU run."""
    return lambda data, out, **extra: tiny_overrides(tiny_text_dir, data, out, **extra)


@pytest.fixture
def manifest_factory():
    """``manifest_factory(root, n=..., splits=..., labels_only=...)`` writes a toy manifest."""
    return make_manifest
