"""Trainer: loss goes down, kill + resume equals an uninterrupted run, bad images skipped."""
from __future__ import annotations

import torch

from training.config import load_config
from training.trainer.loop import Trainer


def test_loss_decreases_on_fixed_batch(overrides_for, toy_manifest, tmp_path):
    trainer = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "run")))
    trainer.model.train()
    batch = next(iter(trainer.train_loader))
    batch.pop("skipped"), batch.pop("study_ids")
    losses = []
    for _ in range(8):
        out = trainer.compute_loss(batch)
        out.total.backward()
        trainer._optimizer_step()
        losses.append(float(out.total.detach()))
    assert losses[-1] < losses[0] * 0.8, losses
    trainer.close()
