"""Freezing the bottom of the text tower: what stays fixed, what still learns, bad counts."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from training.config import ConfigError, load_config
from training.trainer.freezing import freeze_text_layers
from training.trainer.loop import Trainer


def _two_layer_clip() -> nn.Module:
    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=32))
    model = nn.Module()
    model.text_encoder = nn.Module()
    model.text_encoder.text_encoder = bert
    model.text_projection = nn.Linear(16, 8)
    return model


def _trainable(module: nn.Module) -> set[bool]:
    return {p.requires_grad for p in module.parameters()}


def test_freezes_embeddings_and_bottom_layers_only():
    model = _two_layer_clip()
    bert = model.text_encoder.text_encoder
    frozen = freeze_text_layers(model, 1)
    expected = sum(p.numel() for p in bert.embeddings.parameters()) + \
        sum(p.numel() for p in bert.encoder.layer[0].parameters())
    assert frozen == expected
    assert _trainable(bert.embeddings) == {False} and _trainable(bert.encoder.layer[0]) == {False}
    assert _trainable(bert.encoder.layer[1]) == {True} and _trainable(model.text_projection) == {True}


def test_zero_freezes_nothing_and_too_many_names_the_key():
    model = _two_layer_clip()
    assert freeze_text_layers(model, 0) == 0 and _trainable(model) == {True}
    with pytest.raises(ConfigError, match=r"train.freeze_text_layers.*allowed 0..2"):
        freeze_text_layers(model, 3)
    with pytest.raises(ConfigError, match="train.freeze_text_layers"):
        load_config(None, ["train.freeze_text_layers=-1"])


def test_frozen_text_stays_fixed_while_training_moves_the_rest(overrides_for, toy_manifest, tmp_path):
    trainer = Trainer(load_config(None, overrides_for(
        toy_manifest, tmp_path / "run", **{"train.freeze_text_layers": 1, "data.val": "[]"})))
    text = trainer.model.text_encoder.text_encoder
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in optimised for p in text.parameters())
    before_text = [p.detach().clone() for p in text.parameters()]
    before_proj = [p.detach().clone() for p in trainer.model.text_projection.parameters()]
    before_image = [p.detach().clone() for p in trainer.model.image_encoder.parameters()]
    trainer.fit()
    trainer.close()
    assert all(torch.equal(a, b) for a, b in zip(before_text, text.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before_proj, trainer.model.text_projection.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before_image, trainer.model.image_encoder.parameters()))
