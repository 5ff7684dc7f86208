"""Trainer: loss goes down, kill + resume equals an uninterrupted run, bad images skipped."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
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


def test_label_weight_adds_the_weighted_label_term(overrides_for, toy_manifest, tmp_path):
    trainer = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "run", **{"loss.label_weight": 0.5})))
    trainer.model.eval()  # no dropout or batch statistics: both passes see the same model
    batch = next(iter(trainer.train_loader))
    with_label = trainer.compute_loss(batch)
    trainer.cfg.loss.label_weight = 0.0
    paper = trainer.compute_loss(batch)
    assert paper.label is None and "label" not in paper.to_dict()
    assert float(with_label.label) > 0 and "label" in with_label.to_dict()
    assert float(with_label.total) == pytest.approx(float(paper.total) + 0.5 * float(with_label.label), rel=1e-5)
    trainer.close()


def test_label_balance_weights_rare_findings(overrides_for, toy_manifest, tmp_path):
    overrides = overrides_for(toy_manifest, tmp_path / "run", **{"loss.label_weight": 1.0, "loss.label_balance": True})
    trainer = Trainer(load_config(None, overrides))
    weight = trainer.label_positive_weight
    assert weight is not None and weight.shape == (13,) and float(weight.min()) >= 1.0 and float(weight.max()) <= 20.0
    trainer.model.eval()
    batch = next(iter(trainer.train_loader))
    assert torch.isfinite(trainer.compute_loss(batch).label)
    trainer.close()


def test_label_finding_weights_multiply_the_named_findings(overrides_for, toy_manifest, tmp_path):
    from training.data.text import LABEL_LOSS_FINDINGS

    overrides = overrides_for(toy_manifest, tmp_path / "run", **{"loss.label_weight": 1.0,
                                                                "loss.label_finding_weights.Fracture": 5.0})
    trainer = Trainer(load_config(None, overrides))
    weight = trainer.label_finding_weight.tolist()
    assert weight[LABEL_LOSS_FINDINGS.index("Fracture")] == 5.0 and sum(weight) == 5.0 + len(weight) - 1
    trainer.model.eval()
    batch = next(iter(trainer.train_loader))
    assert torch.isfinite(trainer.compute_loss(batch).label)
    trainer.close()


def test_dense_label_weight_adds_the_pooled_location_term(overrides_for, toy_manifest, tmp_path):
    from cxrclip.losses import dense_label_loss

    overrides = overrides_for(toy_manifest, tmp_path / "run", **{"loss.dense_label_weight": 0.5,
                                                                "loss.dense_label_sharpness": 2.0})
    trainer = Trainer(load_config(None, overrides))
    trainer.model.eval()
    batch = next(iter(trainer.train_loader))
    both = trainer.compute_loss(batch)
    assert both.label is None and "dense_label" in both.to_dict()
    trainer.cfg.loss.dense_label_weight = 0.0
    paper = trainer.compute_loss(batch)
    assert float(both.total) == pytest.approx(float(paper.total) + 0.5 * float(both.dense_label), rel=1e-5)
    # the term is dense_label_loss of the same pass's feature maps (view 1 and view 2 averaged)
    with torch.no_grad():
        maps = [trainer.model.image_feature_map(batch[key]) for key in ("image", "image2")]
        pos, neg = trainer._label_sentence_embeddings()
        scale = trainer.model.logit_scale.exp()
        want = sum(float(dense_label_loss(m, pos, neg, batch["labels"], scale, 2.0)) for m in maps) / 2
    assert float(both.dense_label) == pytest.approx(want, rel=1e-4)
    trainer.close()


def test_oversample_draws_the_named_findings_more_often_and_rebalances(overrides_for, toy_manifest, tmp_path):
    from training.data.text import LABEL_LOSS_FINDINGS

    plain = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "a", **{"loss.label_weight": 1.0,
                                                                                   "loss.label_balance": True})))
    vectors = plain.train_label_vectors
    finding = int(np.nanargmax(np.nansum(vectors == 1, axis=0) * (np.nanmean(vectors == 1, axis=0) < 0.5)))
    name = LABEL_LOSS_FINDINGS[finding]
    over = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "b", **{
        "loss.label_weight": 1.0, "loss.label_balance": True, f"data.oversample.{name}": 5.0})))
    assert plain.sampler.probabilities is None
    share = float(((vectors[:, finding] == 1) * over.sampler.probabilities).sum())
    assert share > float(np.mean(vectors[:, finding] == 1))
    assert float(over.label_positive_weight[finding]) < float(plain.label_positive_weight[finding])
    plain.close(), over.close()


def test_label_unit_contrast_changes_the_label_term_only(overrides_for, toy_manifest, tmp_path):
    overrides = overrides_for(toy_manifest, tmp_path / "run", **{"loss.label_weight": 1.0})
    trainer = Trainer(load_config(None, overrides))
    trainer.model.eval()
    batch = next(iter(trainer.train_loader))
    plain = trainer.compute_loss(batch)
    trainer.cfg.loss.label_unit_contrast = True
    unit = trainer.compute_loss(batch)
    assert float(unit.i2t) == pytest.approx(float(plain.i2t), rel=1e-6)
    assert torch.isfinite(unit.label) and abs(float(unit.label) - float(plain.label)) > 1e-4
    trainer.close()


def test_label_only_stage_trains_on_the_label_term_alone(overrides_for, toy_manifest, tmp_path):
    """With the image-text terms weighted 0 (the demo build's fracture stage), the total is the
    label term, and one step still moves the image tower."""
    overrides = overrides_for(toy_manifest, tmp_path / "run", **{
        "loss.label_weight": 1.0, "loss.clip_weight": 0.0, "loss.i2i_weight": 0.0, "loss.t2t_weight": 0.0,
        "train.max_steps": 1, "train.ckpt_every_steps": 0})
    trainer = Trainer(load_config(None, overrides))
    trainer.model.eval()
    with torch.no_grad():
        losses = trainer.compute_loss(next(iter(trainer.train_loader)))
    assert float(losses.i2t) > 0
    assert float(losses.total) == pytest.approx(float(losses.label), rel=1e-6)
    before = _params(trainer)
    trainer.model.train()
    trainer.fit()
    after = _params(trainer)
    moved = [k for k in before if k.startswith("image") and not torch.equal(before[k], after[k])]
    assert moved, "the label term alone did not change the image tower"
    trainer.close()


def test_label_head_is_the_trainers_own_and_never_exported(overrides_for, toy_manifest, tmp_path):
    """`loss.head_label_weight`: a linear head (embedding -> 13 logits) in its own optimizer
    group, trained with the model, saved with the trainer state and not in the model folder."""
    from cxrclip.checkpoint import load_model

    overrides = overrides_for(toy_manifest, tmp_path / "run", **{
        "loss.head_label_weight": 1.0, "loss.label_views": "frontal", "train.max_steps": 2, "optim.lr": 1e-4,
        "optim.head_lr": 1e-3, "optim.warmup_steps": 0, "optim.warmup_ratio": 0.0})
    trainer = Trainer(load_config(None, overrides))
    head = trainer.label_head
    assert tuple(head.weight.shape) == (13, trainer.model.embed_dim)
    group = next(g for g in trainer.optimizer.param_groups if any(head.weight is p for p in g["params"]))
    assert group["lr"] == pytest.approx(1e-3) and group["weight_decay"] == 0.0  # optim.head_lr, on the schedule
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    before = head.weight.detach().clone()
    trainer.fit()
    assert not torch.equal(before, head.weight)
    state = trainer.trainer_state()["label_head"]
    assert torch.equal(state["weight"], head.weight)
    folder = trainer.model_folder()
    trainer.close()
    load_model(folder, device="cpu")  # strict load: the head is not among the model's weights


def test_label_head_has_its_own_findings_and_views(overrides_for, toy_manifest, tmp_path):
    """`loss.head_finding_weights` and `loss.head_views` set the head apart from the label term:
    here the head learns fracture alone on the frontal view while the label term keeps all 13
    findings and both views."""
    from cxrclip.losses import head_label_loss
    from training.data.text import LABEL_LOSS_FINDINGS

    zeros = {f"loss.head_finding_weights.{name}": 0.0 for name in LABEL_LOSS_FINDINGS if name != "Fracture"}
    overrides = overrides_for(toy_manifest, tmp_path / "run", **{
        "loss.label_weight": 1.0, "loss.head_label_weight": 1.0, "loss.head_views": "frontal", **zeros})
    trainer = Trainer(load_config(None, overrides))
    assert trainer.label_finding_weight is None
    weight = trainer.head_finding_weight.tolist()
    assert weight[LABEL_LOSS_FINDINGS.index("Fracture")] == 1.0 and sum(weight) == 1.0
    trainer.model.eval()
    batch = next(iter(trainer.train_loader))
    with torch.no_grad():
        losses = trainer.compute_loss(batch)
        first = trainer.model.encode_image(batch["image"])
        second = trainer.model.encode_image(batch["image2"])
        head, trainer.label_head = trainer.label_head, None
        without_head = trainer.compute_loss(batch)
    frontal = batch["frontal"]
    views = torch.where((~frontal[:, 0] & frontal[:, 1]).unsqueeze(1), second, first)
    expected = head_label_loss(views, head.weight, head.bias, batch["labels"], None, trainer.head_finding_weight)
    assert float(losses.head_label) == pytest.approx(float(expected), rel=1e-4)
    assert float(losses.label) == pytest.approx(float(without_head.label), rel=1e-5)
    assert float(losses.total) == pytest.approx(float(without_head.total + losses.head_label), rel=1e-5)
    trainer.close()


def test_label_head_starts_from_the_init_checkpoints_head(overrides_for, toy_manifest, tmp_path):
    """A stage started with train.init_from=<a checkpoint of a run with the head> goes on from that
    head; from a model folder (no trainer state) the head starts fresh."""
    first = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "a", **{
        "loss.head_label_weight": 1.0, "train.max_steps": 2, "train.ckpt_every_steps": 2})))
    first.fit()
    trained = first.label_head.weight.detach().clone()
    first.close()
    checkpoint = next((tmp_path / "a" / "checkpoints").glob("step_*"))
    second = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "b", **{
        "loss.head_label_weight": 1.0, "train.init_from": str(checkpoint)})))
    assert torch.equal(second.label_head.weight.detach(), trained)
    second.close()
    folder = tmp_path / "plain"  # the same weights as a model folder: no trainer state
    shutil.copytree(checkpoint, folder)
    (folder / "trainer_state.pt").unlink()
    third = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "c", **{
        "loss.head_label_weight": 1.0, "train.init_from": str(folder)})))
    assert not torch.equal(third.label_head.weight.detach(), trained)
    third.close()


def test_label_views_max_scores_each_study_by_its_stronger_view(overrides_for, toy_manifest, tmp_path):
    """"max" is the label term of the two views stacked (their larger logit), "each" the mean
    of the two views' terms; the contrastive terms do not change."""
    from cxrclip.losses import label_prompt_loss

    overrides = overrides_for(toy_manifest, tmp_path / "run", **{"loss.label_weight": 1.0})
    trainer = Trainer(load_config(None, overrides))
    trainer.model.eval()
    batch = next(iter(trainer.train_loader))
    each = trainer.compute_loss(batch)
    trainer.cfg.loss.label_views = "max"
    pooled = trainer.compute_loss(batch)
    assert float(pooled.i2t) == pytest.approx(float(each.i2t), rel=1e-6)
    seen = []
    trainer._views_label_loss({"image_emb": torch.zeros(2, 3), "image_emb_view2": torch.ones(2, 3)},
                              lambda views: seen.append(views.shape) or torch.tensor(0.0), views="max")
    assert seen == [(2, 2, 3)]
    first, second = torch.eye(3)[:2], torch.eye(3)[1:]
    pos, neg = torch.eye(3)[:1], torch.eye(3)[2:]
    labels = torch.tensor([[1.0], [0.0]])
    mean = trainer._views_label_loss({"image_emb": first, "image_emb_view2": second},
                                     lambda views: label_prompt_loss(views, pos, neg, labels, 2.0))
    expected = (label_prompt_loss(first, pos, neg, labels, 2.0) + label_prompt_loss(second, pos, neg, labels, 2.0)) / 2
    assert float(mean) == pytest.approx(float(expected), rel=1e-6)
    assert torch.isfinite(pooled.label)
    flags = torch.tensor([[True, False], [False, True]])  # study 1: the first view is frontal; study 2: the second
    picked = trainer._views_label_loss({"image_emb": first, "image_emb_view2": second},
                                       lambda views: label_prompt_loss(views, pos, neg, labels, 2.0), flags,
                                       views="frontal")
    frontal_rows = torch.stack([first[0], second[1]])
    assert float(picked) == pytest.approx(float(label_prompt_loss(frontal_rows, pos, neg, labels, 2.0)), rel=1e-6)
    assert batch["frontal"].shape == (len(batch["study_ids"]), 2) and bool(batch["frontal"].any(dim=1).all())
    trainer.cfg.loss.label_views = "frontal"
    assert torch.isfinite(trainer.compute_loss(batch).label)
    trainer.close()


def _params(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


# 8 train studies, batch 2 → 4 steps per epoch; 2 epochs = 8 steps.
RESUME_RUN = {"train.batch_size": 2, "model.projection.dropout": 0.1, "train.ckpt_every_steps": 0}


def _uninterrupted(overrides_for, toy_manifest, tmp_path, **extra) -> dict[str, torch.Tensor]:
    """Final weights of one uninterrupted `RESUME_RUN`, the reference for resumed runs."""
    full = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "full", **RESUME_RUN, **extra)))
    full.fit()
    ref = _params(full)
    full.close()
    return ref


@pytest.mark.parametrize("loss", [{}, {"loss.label_weight": 1.0}, {"loss.head_label_weight": 1.0}],
                         ids=["paper loss", "with label term", "with label head"])
def test_kill_and_resume_matches_uninterrupted(overrides_for, toy_manifest, tmp_path, loss):
    # 8 train studies, batch 2 → 4 steps per epoch; 2 epochs = 8 steps. Stop at step 3
    # (mid-epoch) then resume to the end, and compare with one uninterrupted run.
    extra = {**RESUME_RUN, **loss}
    ref = _uninterrupted(overrides_for, toy_manifest, tmp_path, **loss)

    cut = overrides_for(toy_manifest, tmp_path / "cut", **extra)
    first = Trainer(load_config(None, cut + ["train.stop_after_steps=3"]))
    assert first.fit().step == 3
    first.close()
    second = Trainer(load_config(None, cut), resume=True)
    assert second.progress.step == 3 and second.progress.batches_in_epoch == 3
    progress = second.fit()
    assert progress.step == 8 and progress.epoch == 2
    got = _params(second)
    second.close()
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-6, msg=key)
    assert (tmp_path / "cut" / "best" / "model.safetensors").is_file()
    assert len(progress.history) == 2 and "val_loss" in progress.history[-1]


def test_nonfinite_losses_skip_then_abort(overrides_for, toy_manifest, tmp_path, monkeypatch):
    from training.trainer.loop import TrainingAborted

    trainer = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "nan", **{
        "train.max_consecutive_nonfinite": 2, "data.val": "[]"})))
    before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    real = trainer.compute_loss

    def nan_loss(batch):
        out = real(batch)
        out.total = out.total * float("nan")
        return out

    monkeypatch.setattr(trainer, "compute_loss", nan_loss)
    with pytest.raises(TrainingAborted, match="2 non-finite losses in a row"):
        trainer.fit()
    assert trainer.progress.nonfinite_total == 2
    for key, value in trainer.model.named_parameters():
        assert torch.equal(value, before[key]), key  # skipped steps leave the weights alone
    trainer.close()


@pytest.mark.gpu
def test_bf16_autocast_step_on_cuda(overrides_for, toy_manifest, tmp_path):
    trainer = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "gpu", **{
        "train.device": "cuda", "train.precision": "auto", "train.channels_last": True,
        "optim.fused": True, "train.stop_after_steps": 2})))
    assert trainer.precision in ("bf16", "fp16")
    progress = trainer.fit()
    assert progress.step == 2 and progress.nonfinite_total == 0
    assert trainer.model.logit_scale.is_cuda
    trainer.close()


def test_init_from_starts_at_another_models_weights(overrides_for, toy_manifest, tmp_path):
    extra = {"train.batch_size": 2, "train.ckpt_every_steps": 0, "train.epochs": 1}
    source = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "src", **extra)))
    source.fit()
    source.close()
    start = tmp_path / "src" / "best"
    tuned = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "ft", **extra)
                                + [f"train.init_from={start}"]))
    from safetensors.torch import load_file

    for key, value in load_file(str(start / "model.safetensors")).items():
        torch.testing.assert_close(tuned.model.state_dict()[key], value, msg=key)
    tuned.close()
    with pytest.raises(FileNotFoundError, match="train.init_from='/nowhere' has no model.safetensors"):
        Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "bad", **extra)
                            + ["train.init_from=/nowhere"]))


def test_stop_signal_checkpoints_at_the_step_and_resume_matches_uninterrupted(overrides_for, toy_manifest,
                                                                             tmp_path, monkeypatch):
    import os
    import signal

    extra = RESUME_RUN
    ref = _uninterrupted(overrides_for, toy_manifest, tmp_path)

    cut = overrides_for(toy_manifest, tmp_path / "cut", **extra)
    first = Trainer(load_config(None, cut))
    step = first._optimizer_step

    def step_then_preempt():  # the scheduler's SIGTERM arrives during step 2 (mid-epoch)
        value = step()
        if first.progress.step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return value

    monkeypatch.setattr(first, "_optimizer_step", step_then_preempt)
    previous = signal.getsignal(signal.SIGTERM)
    progress = first.fit()
    assert first.interrupted and first.stop_request.signal_name == "SIGTERM"
    assert progress.step == 2  # the step under way when the signal came is finished, no more
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored after fit
    assert (tmp_path / "cut" / "checkpoints" / "step_00000002" / "model.safetensors").is_file()
    first.close()
    second = Trainer(load_config(None, cut), resume=True)
    assert second.progress.step == 2 and second.progress.batches_in_epoch == 2
    assert second.fit().step == 8 and not second.interrupted
    got = _params(second)
    second.close()
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-6, msg=key)


def test_twin_suffix_gives_the_sampler_each_studys_twin(overrides_for, toy_manifest, tmp_path):
    trainer = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "run", **{"data.twin_suffix": "1"})))
    ids = [record.study_id for _, record in trainer.train_loader.dataset.items]
    partners = trainer.sampler.partners
    for i, sid in enumerate(ids):        # toy ids: "train001" is the twin of "train00" when both exist
        twin = ids.index(sid + "1") if sid + "1" in ids else (ids.index(sid[:-1]) if sid[:-1] in ids else -1)
        assert partners[i] == twin
    trainer.close()
    plain = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "plain")))
    assert plain.sampler.partners is None
    plain.close()


def test_hard_negatives_weigh_a_findings_look_alike_negatives_in_the_label_terms(overrides_for, toy_manifest,
                                                                                   tmp_path):
    from cxrclip.losses import hard_negative_weights
    from training.data.text import LABEL_LOSS_FINDINGS

    overrides = overrides_for(toy_manifest, tmp_path / "run", **{"loss.label_weight": 1.0,
                                                                 "loss.hard_negatives.Fracture.Pleural Other": 4.0})
    trainer = Trainer(load_config(None, overrides))
    f, g = LABEL_LOSS_FINDINGS.index("Fracture"), LABEL_LOSS_FINDINGS.index("Pleural Other")
    assert trainer.hard_negative_rules == [(f, g, 4.0)]
    labels = torch.zeros(2, len(LABEL_LOSS_FINDINGS))
    labels[0, g] = 1.0                                   # study 0: no fracture, a pleural plaque
    multipliers = hard_negative_weights(labels, trainer.hard_negative_rules)
    per_study = trainer._per_study(torch.full((len(LABEL_LOSS_FINDINGS),), 2.0), multipliers)
    assert per_study[0, f] == 8.0 and per_study[1, f] == 2.0 and per_study[0, g] == 2.0
    batch = next(iter(trainer.train_loader))
    batch.pop("skipped"), batch.pop("study_ids")
    trainer.model.eval()
    batch["labels"][:, f], batch["labels"][:, g] = 0.0, 1.0    # every study a hard negative of fracture
    hard = float(trainer.compute_loss(batch).label)
    trainer.hard_negative_rules = []
    assert hard != pytest.approx(float(trainer.compute_loss(batch).label), rel=1e-4)
    trainer.close()
