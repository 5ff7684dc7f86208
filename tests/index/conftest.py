"""Fixtures of the archive-index tests: a tiny random model and a small phantom archive.

The model is resnet10_slim at 64 px with a 1-layer random text tower (all-MiniLM-L6-v2
config and tokenizer): the index logic needs embeddings, not trained weights.
The archive holds DICOM studies (grouped by StudyInstanceUID) and the same studies'
PNGs in a MIMIC-CXR-JPG style layout (pXX/pNNNNNNNN/sNNNNNNNN/*.png).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ARCHIVE_STUDIES = 6


@pytest.fixture(scope="session")
def index_model_dir(tmp_path_factory, minilm_dir: Path) -> Path:
    import torch
    from transformers import AutoConfig

    from cxrclip.checkpoint import save_model
    from cxrclip.config import ImageEncoderConfig, ModelConfig, PreprocessConfig, ProjectionConfig, TextEncoderConfig
    from cxrclip.model import CXRClip
    from cxrclip.text_encoder import load_tokenizer

    torch.manual_seed(3)
    config = ModelConfig(image=ImageEncoderConfig(name="resnet10_slim", image_size=64),
                         text=TextEncoderConfig(path=str(minilm_dir), max_length=24),
                         projection=ProjectionConfig(kind="linear", dim=16),
                         preprocess=PreprocessConfig.imagenet(64), name="index-test")
    model = CXRClip(config, text_model_config=AutoConfig.from_pretrained(str(minilm_dir), num_hidden_layers=1))
    out = tmp_path_factory.mktemp("models") / "index-tiny"
    save_model(model, load_tokenizer(minilm_dir), out)
    return out


@pytest.fixture(scope="session")
def index_loaded(index_model_dir: Path):
    from cxrclip.checkpoint import load_model

    return load_model(index_model_dir, "cpu")


@pytest.fixture(scope="session")
def shared_engine(index_loaded):
    """One torch-runtime engine for the session (its text cache keeps the zero-shot ensembles),
    counting the images it embeds in ``engine.embedded``."""
    from cxrclip.engine import Engine

    engine = Engine(index_loaded.model, index_loaded.tokenizer, index_loaded.model_id, "cpu")
    embed = engine.image_vectors  # embed_images goes through it too

    def counting(pixels):
        engine.embedded += len(pixels)
        return embed(pixels)

    engine.image_vectors = counting
    return engine


@pytest.fixture()
def index_engine(shared_engine):
    """The shared engine with its image counter reset."""
    shared_engine.embedded = 0
    return shared_engine


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    from training.phantoms.dataset import GenerateOptions, generate_dataset

    out = tmp_path_factory.mktemp("phantoms")
    generate_dataset(GenerateOptions(out=out, seed=7, size=64), studies=ARCHIVE_STUDIES, workers=1)
    return out


def mimic_copy(png_study: Path, target_root: Path, number: int) -> Path:
    """Copy one phantom PNG study to ``target_root/p1N/p1N000000/s5N000000/`` (MIMIC-CXR-JPG style)."""
    study = target_root / f"p1{number % 10}" / f"p1{number % 10}{number:06d}" / f"s5{number:07d}"
    study.mkdir(parents=True, exist_ok=True)
    for image in sorted(png_study.glob("*.png")):
        shutil.copy2(image, study / image.name)
    return study


@pytest.fixture()
def archive(tmp_path: Path, phantom_dir: Path) -> Path:
    """A fresh copy: ``archive/dicom/...`` (DICOM studies) and ``archive/mimic/...`` (PNG studies)."""
    root = tmp_path / "archive"
    shutil.copytree(phantom_dir / "dicom", root / "dicom")
    for number, study in enumerate(sorted((phantom_dir / "png").iterdir())):
        mimic_copy(study, root / "mimic", number)
    return root
