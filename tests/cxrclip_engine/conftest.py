"""A tiny random CXR-CLIP model, saved once per session.

resnet18 at 64 px + a 2-layer random text tower with the all-MiniLM-L6-v2 config and
tokenizer (fixture `minilm_dir`): fast, and the engine logic does not need trained weights.
"""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, minilm_dir: Path) -> Path:
    import torch
    from transformers import AutoConfig

    from cxrclip.checkpoint import save_model
    from cxrclip.config import ImageEncoderConfig, ModelConfig, PreprocessConfig, ProjectionConfig, TextEncoderConfig
    from cxrclip.model import CXRClip
    from cxrclip.text_encoder import load_tokenizer

    torch.manual_seed(0)
    config = ModelConfig(
        image=ImageEncoderConfig(name="resnet18", image_size=64),
        text=TextEncoderConfig(path=str(minilm_dir), max_length=32),
        projection=ProjectionConfig(kind="linear", dim=32),
        preprocess=PreprocessConfig.imagenet(64),
        name="tiny-test",
    )
    text_config = AutoConfig.from_pretrained(str(minilm_dir), num_hidden_layers=2)
    model = CXRClip(config, text_model_config=text_config)
    out = tmp_path_factory.mktemp("models") / "tiny"
    save_model(model, load_tokenizer(minilm_dir), out)
    return out


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir: Path):
    """The tiny model loaded once (loading costs about a second)."""
    from cxrclip.checkpoint import load_model

    return load_model(tiny_model_dir, "cpu")


@pytest.fixture()
def engine(tiny_loaded):
    """A fresh engine (empty caches) around the shared tiny model; CPU only."""
    from cxrclip.engine import Engine

    return Engine(tiny_loaded.model, tiny_loaded.tokenizer, tiny_loaded.model_id, "cpu")
