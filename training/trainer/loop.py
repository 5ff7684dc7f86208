"""The CXR-CLIP training loop: DDP, autocast, accumulation, checkpoints, resume, logging."""
from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from cxrclip.losses import (CXRClipLoss, LossOutput, dense_label_loss, hard_negative_weights, head_label_loss,
                            label_prompt_loss)
from cxrclip.model import CXRClip
from training.config import ExperimentConfig
from training.data.augment import TrainAugment
from training.data.dataset import EpochTaggedSampler, StudyPairDataset, TrainCollate, twin_partners
from training.data.manifest import read_manifest
from training.data.text import (LABEL_LOSS_FINDINGS, balancing_weights, label_prompt_pairs, label_vector,
                                oversampling_weights)
from training.trainer import state as ckpt
from training.trainer.freezing import freeze_text_layers
from training.trainer.interrupt import StopRequest
from training.trainer.optim import build_optimizer, build_scheduler
from training.trainer.runtime import (Runtime, all_reduce_sum, autocast_dtype, resolve_precision,
                                      seed_everything, setup_runtime, worker_init)

log = logging.getLogger(__name__)


class TrainingAborted(RuntimeError):
    """Training stopped on purpose (too many non-finite losses, OOM)."""


@dataclass
class Progress:
    """Where training stands; saved in ``trainer_state.pt``."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    nonfinite_total: int = 0
    nonfinite_run: int = 0
    skipped_images: int = 0
    best_val: float = math.inf
    history: list[dict[str, float]] = field(default_factory=list)


class DataWaitMeter:
    """Seconds spent waiting for batches over one logging window, and their share of it.

    ``add`` is called once per micro-batch with the time ``next(loader)`` took;
    ``take`` returns ``(sum of waits, sum / window wall time)`` and starts a new window.
    """

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock = clock
        self.wait_s = 0.0
        self.started = clock()

    def add(self, seconds: float) -> None:
        self.wait_s += seconds

    def take(self) -> tuple[float, float]:
        now = self.clock()
        wait, elapsed = self.wait_s, now - self.started
        self.wait_s, self.started = 0.0, now
        return wait, (min(wait / elapsed, 1.0) if elapsed > 0 else 0.0)


def _move(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if value.ndim == 4:
                value = value.contiguous(memory_format=fmt)
        out[key] = value
    return out


class Trainer:
    """Build everything from an ``ExperimentConfig`` and run ``fit()``."""

    def __init__(self, config: ExperimentConfig, resume: bool = False,
                 runtime: Runtime | None = None) -> None:
        self.cfg = config
        self.rt = runtime or setup_runtime(config.train.device)
        self.out = Path(config.output_dir)
        self.precision = resolve_precision(config.train.precision, self.rt.device)
        seed_everything(config.train.seed + self.rt.rank)
        self.model = self._build_model()
        self.loss_fn = CXRClipLoss(config.loss.i2i_weight, config.loss.t2t_weight,
                                   config.loss.label_smoothing, clip_weight=config.loss.clip_weight)
        self.train_loader = self._build_loader()
        self.label_positive_weight = self._label_positive_weight()
        loss = config.loss
        self.label_finding_weight = self._finding_weight("loss.label_finding_weights", loss.label_finding_weights)
        self.head_finding_weight = self._finding_weight("loss.head_finding_weights", loss.head_finding_weights)
        self.hard_negative_rules = self._hard_negative_rules(loss.hard_negatives)
        self.val_dataset = self._build_val_dataset()
        self.micro_per_epoch = len(self.train_loader)
        if self.micro_per_epoch < config.train.grad_accum_steps:
            raise ValueError(f"only {self.micro_per_epoch} batches per epoch for "
                             f"train.grad_accum_steps={config.train.grad_accum_steps}; lower it "
                             "or train.batch_size")
        self.steps_per_epoch = self.micro_per_epoch // config.train.grad_accum_steps
        self.total_steps = config.train.max_steps or config.train.epochs * self.steps_per_epoch
        self.label_head = self._build_label_head()
        self.optimizer = build_optimizer(self.model, config.optim, self.rt.device)
        if self.label_head is not None:
            self.optimizer.add_param_group({"params": list(self.label_head.parameters()), "weight_decay": 0.0,
                                            "lr": config.optim.head_lr or config.optim.lr})
        self.scheduler = build_scheduler(self.optimizer, config.optim, self.total_steps)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.progress = Progress()
        self.stop_request = StopRequest()
        self.interrupted = False  # set when a stop signal ended the run early (see interrupt.py)
        self.ddp_model: nn.Module = self._wrap(self.model)
        self.writer = self._writer()
        if resume:
            self.resume()

    # ----- building -----------------------------------------------------------------------
    def _build_model(self) -> CXRClip:
        from cxrclip.text_encoder import load_tokenizer

        model_cfg = self.cfg.model_config()
        if self.cfg.train.gradient_checkpointing:
            model_cfg.image.gradient_checkpointing = True
            model_cfg.text.gradient_checkpointing = True
        model = CXRClip(model_cfg, pretrained_text=self.cfg.train.init_from is None)
        model.tokenizer = load_tokenizer(model_cfg.text.path)
        if self.cfg.train.init_from:
            ckpt.init_weights_from(model, self.cfg.train.init_from)
        for name, param in model.named_parameters():
            if ".pooler." in name:  # BERT pooler: unused by our pooling, would break DDP
                param.requires_grad_(False)
        frozen = freeze_text_layers(model, self.cfg.train.freeze_text_layers)
        if frozen:
            log.info("froze %d text parameters (embeddings + %d layers)", frozen,
                     self.cfg.train.freeze_text_layers)
        if (self.rt.distributed and self.rt.device.type == "cuda"
                and not model_cfg.image.name.startswith("swin")):
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # CUDA-only in torch
        model.to(self.rt.device)
        if self.cfg.train.channels_last and self.rt.device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        return model

    def _datasets(self, paths: list[str], split: str, augment: TrainAugment | None) -> StudyPairDataset:
        if not paths:
            raise ValueError("data.train is empty: list one or more manifest directories "
                             "(written by `cxrclip prepare` or `cxrclip phantom`)")
        manifests = [read_manifest(p) for p in paths]
        return StudyPairDataset(manifests, split, self.model.config.preprocess, augment,
                                seed=self.cfg.train.seed,
                                shuffle_sentences=self.cfg.data.shuffle_sentences,
                                max_tries=self.cfg.data.max_replacement_tries)

    def _label_terms_on(self) -> bool:
        """Whether the label term, its dense form or the label head is weighted (all need finding labels)."""
        loss = self.cfg.loss
        return loss.label_weight > 0 or loss.dense_label_weight > 0 or loss.head_label_weight > 0

    def _build_label_head(self) -> nn.Linear | None:
        """``loss.head_label_weight``: the trainer's linear head, embedding -> one logit per finding."""
        if self.cfg.loss.head_label_weight <= 0:
            return None
        head = nn.Linear(self.model.embed_dim, len(LABEL_LOSS_FINDINGS)).to(self.rt.device)
        self._init_label_head_from(head)
        if self.rt.distributed:  # ranks are seeded apart and DDP does not wrap the head: start from rank 0's
            for param in head.parameters():
                torch.distributed.broadcast(param.data, src=0)
        return head

    def _label_positive_weight(self) -> torch.Tensor | None:
        """``loss.label_balance``: negatives / positives per finding over the training studies as
        the sampler draws them."""
        if not (self._label_terms_on() and self.cfg.loss.label_balance):
            return None
        weight = balancing_weights(self.train_label_vectors, sampling=self.sampler.probabilities)
        log.info("label term: positive weights %s", [round(float(w), 1) for w in weight])
        return torch.from_numpy(weight).to(self.rt.device)

    def _init_label_head_from(self, head: nn.Linear) -> None:
        """Start the head from ``train.init_from``'s when that is a training checkpoint that has one
        (a stage that goes on from an earlier stage's head); a fresh head otherwise."""
        source = self.cfg.train.init_from
        if not source or not (Path(source) / ckpt.TRAINER_STATE).is_file():
            return
        saved = ckpt.load_trainer_state(Path(source), map_location=self.rt.device).get("label_head")
        if saved is not None:
            head.load_state_dict(saved)
            log.info("label head: started from %s", source)

    def _finding_weight(self, key: str, named: dict[str, float]) -> torch.Tensor | None:
        """A finding-weights option (``key``) as one multiplier per label finding (1 when not named)."""
        if not (self._label_terms_on() and named):
            return None
        weight = [float(named.get(finding, 1.0)) for finding in LABEL_LOSS_FINDINGS]
        log.info("%s: %s", key, weight)
        return torch.tensor(weight, device=self.rt.device)

    @staticmethod
    def _hard_negative_rules(named: dict[str, dict[str, float]]) -> list[tuple[int, int, float]]:
        """``loss.hard_negatives`` as (finding index, look-alike index, factor) rules."""
        index = {name: i for i, name in enumerate(LABEL_LOSS_FINDINGS)}
        rules = [(index[f], index[g], float(factor)) for f, lookalikes in named.items()
                 for g, factor in lookalikes.items()]
        if rules:
            log.info("hard negatives: %s", named)
        return rules

    @staticmethod
    def _per_study(finding_weight: torch.Tensor | None, hard: torch.Tensor | None) -> torch.Tensor | None:
        """A finding-weight vector times this batch's hard-negative multipliers ``hard`` (B x F,
        `hard_negative_weights`; None without ``loss.hard_negatives``)."""
        if hard is None:
            return finding_weight
        return hard if finding_weight is None else hard * finding_weight

    def _build_loader(self) -> DataLoader:
        cfg = self.cfg
        augment = TrainAugment(cfg.augment, self.model.config.preprocess.image_size)
        dataset = self._datasets(cfg.data.train, cfg.data.train_split, augment)
        needs_labels = bool(cfg.data.oversample) or self._label_terms_on()
        self.train_label_vectors = (np.stack([label_vector(record.labels or {}) for _, record in dataset.items])
                                    if needs_labels else None)
        weights = self._oversampling(self.train_label_vectors)
        self.sampler = EpochTaggedSampler(dataset, self.rt.world_size, self.rt.rank, cfg.train.seed,
                                          weights=weights, partners=self._twins(dataset))
        workers = cfg.data.num_workers
        generator = torch.Generator().manual_seed(cfg.train.seed)
        return DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=self.sampler,
                          num_workers=workers, drop_last=True, generator=generator,
                          collate_fn=TrainCollate(self.model.tokenizer, self.model.config.text.max_length),
                          pin_memory=self.rt.device.type == "cuda",
                          persistent_workers=workers > 0, worker_init_fn=worker_init,
                          prefetch_factor=4 if workers > 0 else None)

    def _twins(self, dataset: StudyPairDataset) -> np.ndarray | None:
        """``data.twin_suffix``: each training study's twin index (-1: none), or None when off."""
        if not self.cfg.data.twin_suffix:
            return None
        partners = twin_partners([record.study_id for _, record in dataset.items], self.cfg.data.twin_suffix)
        log.info("twins (suffix %r): %d pairs among %d training studies", self.cfg.data.twin_suffix,
                 int((partners >= 0).sum()) // 2, len(partners))
        return partners

    def _oversampling(self, vectors: np.ndarray | None) -> np.ndarray | None:
        """``data.oversample`` as one sampling weight per training study (None: uniform)."""
        if vectors is None or not self.cfg.data.oversample:
            return None
        weights = oversampling_weights(vectors, self.cfg.data.oversample)
        drawn = (vectors == 1) * (weights / weights.sum())[:, None]
        log.info("oversampling %s: share of draws with each finding %s (uniform: %s)", self.cfg.data.oversample,
                 [round(float(x), 3) for x in drawn.sum(axis=0)],
                 [round(float(x), 3) for x in (vectors == 1).mean(axis=0)])
        return weights

    def _build_val_dataset(self) -> StudyPairDataset | None:
        if not self.cfg.data.val:
            return None
        try:
            return self._datasets(self.cfg.data.val, self.cfg.data.val_split, None)
        except ValueError as exc:
            log.warning("no validation data: %s", exc)
            return None

    def _wrap(self, model: nn.Module) -> nn.Module:
        wrapped: nn.Module = model
        if self.rt.distributed:
            ids = [self.rt.device.index] if self.rt.device.type == "cuda" else None
            wrapped = DistributedDataParallel(model, device_ids=ids)
        if self.cfg.train.compile:
            wrapped = torch.compile(wrapped)
        return wrapped

    def _writer(self) -> Any:
        if not self.rt.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.out / "tb"))

    # ----- one step -------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = autocast_dtype(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.rt.device.type, dtype=dtype)

    def compute_loss(self, batch: dict[str, Any]):
        """Forward pass and loss for one (micro-)batch on this rank."""
        dense = self.cfg.loss.dense_label_weight > 0
        with self._autocast():
            out = self.ddp_model(images=batch["image"], input_ids=batch["input_ids"],
                                 attention_mask=batch["attention_mask"],
                                 images_view2=batch["image2"], input_ids_section2=batch["input_ids2"],
                                 attention_mask_section2=batch["attention_mask2"], feature_maps=dense)
        emb = {k: v.float() for k, v in out.items()}
        losses = self.loss_fn(emb["image_emb"], emb["image_emb_view2"], emb["text_emb"],
                              emb["text_emb_section2"], emb["logit_scale"])
        if self._label_terms_on():
            losses = self._add_label_terms(losses, emb, batch["labels"], batch.get("frontal"))
        return losses

    def _add_label_terms(self, losses: LossOutput, emb: dict[str, torch.Tensor],
                         labels: torch.Tensor, frontal: torch.Tensor | None = None) -> LossOutput:
        """``loss.label_weight`` x `label_prompt_loss`, ``loss.head_label_weight`` x `head_label_loss`
        and ``loss.dense_label_weight`` x `dense_label_loss`, with one positive and one negative label sentence per
        finding drawn for this step (the same after a resume). The logit scale is detached: the
        contrastive terms alone set the temperature."""
        labels, scale = labels.to(self.rt.device), emb["logit_scale"].detach()
        hard = hard_negative_weights(labels, self.hard_negative_rules) if self.hard_negative_rules else None
        if self.cfg.loss.label_weight > 0 or self.cfg.loss.dense_label_weight > 0:
            pos, neg = self._label_sentence_embeddings()
        weights = {"positive_weight": self.label_positive_weight,
                   "finding_weight": self._per_study(self.label_finding_weight, hard),
                   "unit_contrast": self.cfg.loss.label_unit_contrast}
        if self.cfg.loss.label_weight > 0:
            label = self._views_label_loss(emb, lambda views: label_prompt_loss(views, pos, neg, labels, scale,
                                                                                **weights), frontal,
                                           self.cfg.loss.label_views)
            losses.total = losses.total + self.cfg.loss.label_weight * label
            losses.label = label
        if self.label_head is not None:
            head = self._views_label_loss(emb, lambda views: head_label_loss(
                views, self.label_head.weight, self.label_head.bias, labels,
                self.label_positive_weight, self._per_study(self.head_finding_weight, hard)), frontal,
                self.cfg.loss.head_views)
            losses.total = losses.total + self.cfg.loss.head_label_weight * head
            losses.head_label = head
        if self.cfg.loss.dense_label_weight > 0:
            sharp = self.cfg.loss.dense_label_sharpness
            dense = (dense_label_loss(emb["image_map"], pos, neg, labels, scale, sharp, **weights)
                     + dense_label_loss(emb["image_map_view2"], pos, neg, labels, scale, sharp, **weights)) / 2
            losses.total = losses.total + self.cfg.loss.dense_label_weight * dense
            losses.dense_label = dense
        return losses

    @staticmethod
    def _views_label_loss(emb: dict[str, torch.Tensor], loss: Callable[[torch.Tensor], torch.Tensor],
                          frontal: torch.Tensor | None = None, views: str = "each") -> torch.Tensor:
        """A label term of a batch's two views (``views``: ``loss.label_views`` or ``loss.head_views``):
        the mean of each view's term ("each"), one term of both views stacked, scored by their
        larger logit ("max"), or the term of each study's frontal view ("frontal"; ``frontal``:
        B x 2 flags of the two views, the first view where neither or no flags are known)."""
        first, second = emb["image_emb"], emb["image_emb_view2"]
        if views == "max":
            return loss(torch.stack([first, second]))
        if views == "frontal":
            if frontal is None:
                return loss(first)
            frontal = frontal.to(first.device)
            take_second = (~frontal[:, 0] & frontal[:, 1]).unsqueeze(1)
            return loss(torch.where(take_second, second, first))
        return (loss(first) + loss(second)) / 2

    def _label_sentence_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This step's positive and negative label sentences per finding, embedded (F x D each)."""
        rng = np.random.default_rng((self.cfg.train.seed, self.progress.step))
        positives, negatives = label_prompt_pairs(rng)
        tokens = self.model.tokenizer(positives + negatives, padding="longest", truncation=True,
                                      max_length=self.model.config.text.max_length, return_tensors="pt")
        with self._autocast():
            text = self.model.encode_text(tokens["input_ids"].to(self.rt.device),
                                          tokens["attention_mask"].to(self.rt.device)).float()
        return text[:len(positives)], text[len(positives):]

    def _all_finite(self, loss: torch.Tensor) -> bool:
        finite = torch.isfinite(loss.detach()).float()
        if self.rt.distributed:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        return bool(finite.item() > 0)

    def _optimizer_step(self) -> float:
        self.scaler.unscale_(self.optimizer)
        self._average_label_head_grads()
        norm = 0.0
        if self.cfg.optim.max_grad_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                        self.cfg.optim.max_grad_norm))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            self.model.logit_scale.clamp_(0.0, math.log(self.cfg.train.max_logit_scale))
        return norm

    def _average_label_head_grads(self) -> None:
        """The label head is not wrapped by DDP: average its gradients over the ranks here."""
        if self.label_head is None or not self.rt.distributed:
            return
        for param in self.label_head.parameters():
            if param.grad is not None:
                torch.distributed.all_reduce(param.grad)
                param.grad /= self.rt.world_size

    def _micro_step(self, batch: dict[str, Any], sync: bool) -> dict[str, float] | None:
        """Forward/backward one micro-batch; None when its loss was not finite."""
        no_sync = getattr(self.ddp_model, "no_sync", None)
        ctx = no_sync() if (no_sync is not None and not sync) else contextlib.nullcontext()
        with ctx:
            losses = self.compute_loss(batch)
            if not self._all_finite(losses.total):
                return None
            self.scaler.scale(losses.total / self.cfg.train.grad_accum_steps).backward()
        return losses.to_dict()

    # ----- the loop ---------------------------------------------------------------------------
    def fit(self) -> Progress:
        """Train until ``total_steps`` (or ``train.stop_after_steps``, or a stop signal: then
        ``interrupted`` is True and the last checkpoint is at the step reached); returns the progress."""
        self.stop_request.install()
        try:
            while self.progress.step < self.total_steps:
                if self._run_epoch():
                    break
            if self.cfg.train.export_onnx and self.rt.is_main and not self.interrupted:
                self._export_onnx()
        except torch.OutOfMemoryError as exc:
            raise TrainingAborted(
                f"CUDA out of memory at train.batch_size={self.cfg.train.batch_size}: lower it "
                f"and raise train.grad_accum_steps (now {self.cfg.train.grad_accum_steps}) to keep "
                "the effective batch, or set train.gradient_checkpointing=true") from exc
        finally:
            self.stop_request.uninstall()
            if self.writer is not None:
                self.writer.flush()
        return self.progress

    def _should_stop(self) -> bool:
        stop = self.cfg.train.stop_after_steps
        return (self.interrupted or self.progress.step >= self.total_steps
                or (stop is not None and self.progress.step >= stop))

    def _poll_stop_signal(self) -> None:
        """Once per optimizer step: did any rank get a stop signal? (See interrupt.py.)"""
        if not self.interrupted and self.stop_request.agreed(self.rt.distributed, self.rt.device):
            self.interrupted = True

    def _run_epoch(self) -> bool:
        """One (possibly partial) epoch; True when training must stop now."""
        p, accum = self.progress, self.cfg.train.grad_accum_steps
        self.sampler.set_epoch(p.epoch)
        self.sampler.set_start(p.batches_in_epoch * self.cfg.train.batch_size)
        self.model.train()
        bar = self._bar(p.batches_in_epoch)
        window: list[dict[str, float]] = []
        self.data_wait = DataWaitMeter()  # one logging window, like ``window``
        t_last = time.perf_counter()
        skipped_epoch = 0
        bad_step = False
        for batch in self.train_loader:
            self.data_wait.add(time.perf_counter() - t_last)
            if p.batches_in_epoch >= (self.micro_per_epoch // accum) * accum:
                break  # leftover micro-batches that do not fill an accumulation step
            skipped_epoch += int(batch.pop("skipped"))
            batch.pop("study_ids")
            p.batches_in_epoch += 1
            boundary = p.batches_in_epoch % accum == 0
            result = self._micro_step(_move(batch, self.rt.device, self.cfg.train.channels_last),
                                      sync=boundary)
            if result is None:
                bad_step = True
            else:
                window.append(result)
            if boundary:
                self._finish_step(bad_step, window)
                self._poll_stop_signal()
                bad_step = False
                if bar is not None:
                    bar.update(accum)
                if self._should_stop():
                    if p.batches_in_epoch >= (self.micro_per_epoch // accum) * accum:
                        break  # the epoch is complete: finish it (validation, checkpoint)
                    self._save()
                    return True
            t_last = time.perf_counter()
        if bar is not None:
            bar.close()
        self._end_epoch(skipped_epoch)
        return self._should_stop()

    def _finish_step(self, bad_step: bool, window: list[dict[str, float]]) -> None:
        p = self.progress
        if bad_step:
            self.optimizer.zero_grad(set_to_none=True)
            p.nonfinite_total += 1
            p.nonfinite_run += 1
            log.warning("non-finite loss at step %d: step skipped (%d in a row)", p.step, p.nonfinite_run)
            if p.nonfinite_run >= self.cfg.train.max_consecutive_nonfinite:
                raise TrainingAborted(
                    f"{p.nonfinite_run} non-finite losses in a row (train.max_consecutive_nonfinite="
                    f"{self.cfg.train.max_consecutive_nonfinite}); lower optim.lr or use "
                    "train.precision=bf16/fp32")
        else:
            p.nonfinite_run = 0
            self._optimizer_step()
        p.step += 1
        if p.step % self.cfg.train.log_every == 0 and window:
            self._log(window)
            window.clear()
        every = self.cfg.train.ckpt_every_steps
        if every and p.step % every == 0 and not self._should_stop():
            self._save()

    def _log(self, window: list[dict[str, float]]) -> None:
        wait, wait_frac = self.data_wait.take()
        if self.writer is None:
            return
        mean = {k: sum(w[k] for w in window) / len(window) for k in window[0]}
        for key, value in mean.items():
            self.writer.add_scalar(f"loss/{key}", value, self.progress.step)
        self.writer.add_scalar("train/logit_scale", float(self.model.logit_scale.detach().exp()), self.progress.step)
        self.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.progress.step)
        self.writer.add_scalar("train/data_wait_s", wait, self.progress.step)  # sum over the window
        self.writer.add_scalar("train/data_wait_frac", wait_frac, self.progress.step)
        now = time.perf_counter()
        last = getattr(self, "_last_log_time", None)
        if last is not None:
            samples = len(window) * self.cfg.train.batch_size * self.rt.world_size
            self.writer.add_scalar("train/samples_per_s", samples / max(now - last, 1e-9),
                                   self.progress.step)
        self._last_log_time = now
        log.info("step %d: total %.4f i2t %.4f t2i %.4f, data wait %.2f s (%.0f %%)",
                 self.progress.step, mean["total"], mean["i2t"], mean["t2i"], wait, 100 * wait_frac)

    def _bar(self, start: int):
        if not (self.rt.is_main and self.cfg.train.progress):
            return None
        from tqdm import tqdm

        return tqdm(total=self.micro_per_epoch, initial=start, desc=f"epoch {self.progress.epoch}",
                    unit="batch", dynamic_ncols=True)

    def _end_epoch(self, skipped_epoch: int) -> None:
        p = self.progress
        skipped = int(all_reduce_sum(skipped_epoch, self.rt.device))
        p.skipped_images += skipped
        if skipped and self.rt.is_main:
            log.warning("epoch %d: %d unreadable studies were replaced by others", p.epoch, skipped)
        val = self.validate()
        record = {"epoch": float(p.epoch), "step": float(p.step), "skipped": float(skipped)}
        if val is not None:
            record["val_loss"] = val
            if self.writer is not None:
                self.writer.add_scalar("val/loss", val, p.step)
        p.history.append(record)
        p.epoch += 1
        p.batches_in_epoch = 0
        self._save()
        if val is not None and val < p.best_val:
            p.best_val = val
            if self.cfg.train.keep_best and self.rt.is_main:
                ckpt.write_model_dir(self.model, self.model.tokenizer, self.out / "best",
                                     self._card(val))

    @torch.no_grad()
    def validate(self) -> float | None:
        """Mean total loss over the validation split (every rank sees a shard)."""
        if self.val_dataset is None:
            return None
        self.model.eval()
        n = len(self.val_dataset)
        idx = list(range(self.rt.rank, n, self.rt.world_size))
        collate = TrainCollate(self.model.tokenizer, self.model.config.text.max_length)
        total, count = 0.0, 0
        bs = self.cfg.train.batch_size
        for start in range(0, len(idx), bs):
            batch = collate([self.val_dataset[(i, 0)] for i in idx[start:start + bs]])
            batch.pop("skipped"), batch.pop("study_ids")
            if batch["image"].shape[0] < 2:
                continue
            with self._no_gather():
                losses = self.compute_loss(_move(batch, self.rt.device, False))
            total += float(losses.total) * batch["image"].shape[0]
            count += batch["image"].shape[0]
        self.model.train()
        total = all_reduce_sum(total, self.rt.device)
        count = all_reduce_sum(count, self.rt.device)
        return total / count if count else None

    @contextlib.contextmanager
    def _no_gather(self):
        previous, self.loss_fn.gather = self.loss_fn.gather, False
        model = self.ddp_model
        self.ddp_model = self.model  # plain forward: ranks may have different batch counts
        try:
            yield
        finally:
            self.loss_fn.gather, self.ddp_model = previous, model

    # ----- checkpoints ---------------------------------------------------------------------
    def _card(self, val: float | None) -> dict[str, Any]:
        return {"title": self.model.config.name, "training": (
            f"cxrclip train, step {self.progress.step}, epoch {self.progress.epoch}, "
            f"data {self.cfg.data.train}"), "metrics": {"val_loss": val} if val is not None else {}}

    def trainer_state(self) -> dict[str, Any]:
        p = self.progress
        return {"version": 1, "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "step": p.step, "epoch": p.epoch, "batches_in_epoch": p.batches_in_epoch,
                "nonfinite_total": p.nonfinite_total, "nonfinite_run": p.nonfinite_run,
                "skipped_images": p.skipped_images, "best_val": p.best_val,
                "history": p.history, "world_size": self.rt.world_size,
                "batch_size": self.cfg.train.batch_size, "total_steps": self.total_steps,
                "label_head": None if self.label_head is None else self.label_head.state_dict()}

    def _barrier(self) -> None:
        if self.rt.distributed:
            torch.distributed.barrier()

    def _save(self) -> None:
        pending = ckpt.pending_dir(self.out, self.progress.step)
        if self.rt.is_main:
            ckpt.write_model_dir(self.model, self.model.tokenizer, pending, self._card(None))
        self._barrier()
        ckpt.atomic_torch_save(ckpt.rng_state(), pending / f"rng_rank{self.rt.rank}.pt")
        self._barrier()
        if self.rt.is_main:
            final = ckpt.finalize(self.out, self.progress.step, self.trainer_state(),
                                  self.cfg.to_dict(), self.cfg.train.keep_last)
            log.info("saved checkpoint %s", final)
        self._barrier()

    def model_folder(self) -> Path | None:
        """The model folder users load: ``best/`` when kept, else the newest checkpoint."""
        best = self.out / "best"
        if self.cfg.train.keep_best and (best / "config.json").is_file():
            return best
        return ckpt.latest_checkpoint(self.out)

    def _export_onnx(self) -> None:
        """ONNX exports of `model_folder` (not of every resume checkpoint); a failure only warns."""
        from cxrclip.onnx_after_save import export_onnx_or_warn
        from cxrclip.runtime_onnx import unavailable_reason

        folder = self.model_folder()
        if folder is None or not unavailable_reason(folder):
            return  # nothing saved, or its exports are already those of these weights
        if export_onnx_or_warn(folder) is not None:
            log.info("wrote ONNX exports of %s", folder)

    def resume(self) -> bool:
        """Continue from the newest checkpoint under ``output_dir``; False when there is none."""
        found = ckpt.latest_checkpoint(self.out)
        if found is None:
            log.warning("--resume: no checkpoint under %s; starting from scratch", self.out)
            return False
        state = ckpt.load_trainer_state(found)
        if state["world_size"] != self.rt.world_size or state["batch_size"] != self.cfg.train.batch_size:
            log.warning("resuming with world size/batch %d/%d instead of %d/%d: the data order differs",
                        self.rt.world_size, self.cfg.train.batch_size, state["world_size"],
                        state["batch_size"])
        ckpt.load_model_weights(self.model, found)
        if self.label_head is not None:
            if state.get("label_head") is None:
                raise ValueError(f"--resume: {found} was saved without the label head that "
                                 "loss.head_label_weight asks for; resume with the run's own config")
            self.label_head.load_state_dict(state["label_head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        p = self.progress
        p.step, p.epoch, p.batches_in_epoch = state["step"], state["epoch"], state["batches_in_epoch"]
        p.nonfinite_total, p.nonfinite_run = state["nonfinite_total"], state["nonfinite_run"]
        p.skipped_images, p.best_val, p.history = state["skipped_images"], state["best_val"], state["history"]
        rng_file = found / f"rng_rank{self.rt.rank}.pt"
        if rng_file.is_file():
            ckpt.set_rng_state(torch.load(rng_file, weights_only=True))
        log.info("resumed from %s (step %d, epoch %d)", found, p.step, p.epoch)
        return True

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
