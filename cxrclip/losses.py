"""CXR-CLIP training loss: image-text InfoNCE over four pairings, plus ICL and TCL.

Each study gives two image views (I1, I2; the second is an augmented copy when the
study has one image) and two report sections (T1, T2). The loss (CXR-CLIP, MICCAI
2023) is

    i2t = mean over (I, T) in {I1, I2} x {T1, T2} of CE(s * I @ T_all^T, y)
    t2i = mean over the same pairs of              CE(s * T @ I_all^T, y)
    clip = (i2t + t2i) / 2
    i2i  = (CE(s * I1 @ I2_all^T, y) + CE(s * I2 @ I1_all^T, y)) / 2      (ICL)
    t2t  = (CE(s * T1 @ T2_all^T, y) + CE(s * T2 @ T1_all^T, y)) / 2      (TCL)
    total = clip + i2i_weight * i2i + t2t_weight * t2t

``s`` is the learned logit scale (already exponentiated) and is shared by all
terms, as in the published code. ``X_all`` are the embeddings gathered from all
ranks (just the local ones without DDP) and ``y = arange(B) + rank * B``. Label
smoothing applies to the image-text terms in training mode only; ICL and TCL use
hard labels, again matching the published code.

`label_prompt_loss` is an optional term of this project (``loss.label_weight``, 0 = the
paper's loss): the zero-shot recipe's binary contrast as a supervised signal, for data
with finding labels (docs/losses_prompts.md). `dense_label_loss` (``loss.dense_label_weight``)
scores the same contrast per feature-map location and pools it by a smooth maximum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cxrclip import distributed

__all__ = ["CXRClipLoss", "LossOutput", "contrastive_pair", "dense_label_loss", "label_prompt_loss"]


@dataclass
class LossOutput:
    """All loss terms of one step; ``total`` is the one to back-propagate."""

    total: torch.Tensor
    clip: torch.Tensor
    i2t: torch.Tensor
    t2i: torch.Tensor
    i2i: torch.Tensor
    t2t: torch.Tensor
    label: torch.Tensor | None = None  # `label_prompt_loss`, when the config weights it
    dense_label: torch.Tensor | None = None  # `dense_label_loss`, when the config weights it
    head_label: torch.Tensor | None = None  # `head_label_loss`, when the config weights it

    def to_dict(self) -> dict[str, float]:
        """Detached float values, convenient for logging."""
        names = ("total", "clip", "i2t", "t2i", "i2i", "t2t", "label", "dense_label", "head_label")
        return {name: float(value.detach()) for name in names if (value := getattr(self, name)) is not None}


def label_prompt_loss(image_emb: torch.Tensor, positive_emb: torch.Tensor, negative_emb: torch.Tensor,
                      labels: torch.Tensor, logit_scale: torch.Tensor | float,
                      positive_weight: torch.Tensor | None = None,
                      finding_weight: torch.Tensor | None = None, unit_contrast: bool = False) -> torch.Tensor:
    """Binary cross-entropy of each finding's zero-shot logit against its label.

    The logit is the zero-shot recipe's (`cxrclip.zero_shot.binary_probability`):
    ``s * (I @ P_f - I @ N_f)`` for a view embedding ``I`` (B x D), a positive and a
    negative sentence embedding of finding f (``positive_emb``/``negative_emb``: F x D,
    all L2-normalised) and the logit scale ``s``. ``labels`` (B x F) holds 1 (present),
    0 (absent) or NaN (unknown: left out of the mean). 0 when no label is known.
    ``positive_weight`` (F) multiplies the terms of present labels, finding by finding (e.g.
    negatives / positives of the training labels, so that a rare finding counts as much as
    its absence); ``finding_weight`` (F, or B x F per study: `hard_negative_weights`) multiplies
    every term of a finding, present or absent (a finding that needs more of the gradient).
    The mean is weighted the same way.
    ``unit_contrast`` scores along the unit vector of ``P_f - N_f``: ``s * I @ (P_f - N_f) /
    |P_f - N_f|``. Same ranking of views as the recipe's logit, but the image side's gradient
    no longer shrinks with the distance between the prompts, which collapses for a finding the
    image tower does not yet see (the loss is then lowest with ``P_f = N_f``).
    ``image_emb`` may also be V x B x D, V views of each study: a finding's logit is then the
    largest over the study's views (multiple-instance), so a study's finding needs one view
    that shows it (a rib fracture is drawn on the frontal view only) and its absence needs
    every view not to.
    """
    _check_label_shapes("label_prompt_loss", image_emb.shape[-2], positive_emb, negative_emb, labels)
    logits = logit_scale * (image_emb @ _contrast(positive_emb, negative_emb, unit_contrast).T)
    if logits.dim() == 3:
        logits = logits.amax(dim=0)
    return _weighted_bce(logits, labels, positive_weight, finding_weight)


def head_label_loss(image_emb: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, labels: torch.Tensor,
                    positive_weight: torch.Tensor | None = None,
                    finding_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of a linear head on the view embeddings against the finding labels.

    ``logits = image_emb @ weight.T + bias`` (``weight``: F x D, ``bias``: F), one per finding
    of ``labels`` (B x F, NaN = unknown). An auxiliary classifier: it teaches the image tower
    a finding along a direction of its own, not the text tower's ``P_f - N_f``, so the image
    side's target does not move with the sentences drawn each step. ``image_emb`` may be
    V x B x D (largest logit over the views), and the weights are those of `label_prompt_loss`.
    """
    _check_label_shapes("head_label_loss", image_emb.shape[-2], weight, weight, labels)
    logits = image_emb @ weight.T + bias
    if logits.dim() == 3:
        logits = logits.amax(dim=0)
    return _weighted_bce(logits, labels, positive_weight, finding_weight)


def dense_label_loss(feature_map: torch.Tensor, positive_emb: torch.Tensor, negative_emb: torch.Tensor,
                     labels: torch.Tensor, logit_scale: torch.Tensor | float, sharpness: float = 1.0,
                     positive_weight: torch.Tensor | None = None,
                     finding_weight: torch.Tensor | None = None, unit_contrast: bool = False) -> torch.Tensor:
    """`label_prompt_loss` scored per location and pooled by a smooth maximum (multiple-instance).

    Each location of the projected feature map (``feature_map``: B x D x h x w, not
    normalised) is L2-normalised and scored like a view, ``l = s * u @ (P_f - N_f)``; a
    finding's logit is the log-mean-exp of ``sharpness * l`` over the locations, divided by
    ``sharpness`` (between the mean, as sharpness -> 0, and the maximum, as it grows).
    A present finding then needs some location that looks like it; an absent one needs
    every location not to, so the term puts the evidence where the finding is and the
    similarity map of a finding's prompts points at it. Weights and unknown labels as in
    `label_prompt_loss`.
    """
    if feature_map.dim() != 4:
        raise ValueError(f"dense_label_loss: feature map {tuple(feature_map.shape)}, expected B x D x h x w")
    if sharpness <= 0:
        raise ValueError(f"dense_label_loss: sharpness must be > 0, got {sharpness}")
    _check_label_shapes("dense_label_loss", feature_map.shape[0], positive_emb, negative_emb, labels)
    units = F.normalize(feature_map.flatten(2), dim=1)                    # B x D x hw
    local = logit_scale * torch.einsum("bdl,fd->bfl", units,
                                       _contrast(positive_emb, negative_emb, unit_contrast))
    pooled = (torch.logsumexp(sharpness * local, dim=-1) - math.log(local.shape[-1])) / sharpness
    return _weighted_bce(pooled, labels, positive_weight, finding_weight)


def _check_label_shapes(name: str, batch: int, positive_emb: torch.Tensor, negative_emb: torch.Tensor,
                        labels: torch.Tensor) -> None:
    if positive_emb.shape != negative_emb.shape or labels.shape != (batch, positive_emb.shape[0]):
        raise ValueError(f"{name}: batch {batch}, positive {tuple(positive_emb.shape)}, "
                         f"negative {tuple(negative_emb.shape)}, labels {tuple(labels.shape)}; "
                         "expected B x D (or B x D x h x w), F x D, F x D and B x F")


def _contrast(positive_emb: torch.Tensor, negative_emb: torch.Tensor, unit: bool) -> torch.Tensor:
    """``P - N`` per finding (F x D), or its unit vector."""
    contrast = positive_emb - negative_emb
    return contrast / contrast.norm(dim=-1, keepdim=True).clamp_min(1e-6) if unit else contrast


def hard_negative_weights(labels: torch.Tensor, rules: list[tuple[int, int, float]]) -> torch.Tensor:
    """B x F multipliers of the label terms (``loss.hard_negatives``): for each rule (finding f,
    finding g, factor), a study labelled 0 for f and 1 for g weighs ``factor`` in f's entry
    (a negative of f that looks like it: a pleural plaque for a rib fracture). 1 elsewhere;
    factors of several rules that meet multiply."""
    weight = torch.ones_like(labels, dtype=torch.float32)
    for f, g, factor in rules:
        hit = (labels[:, f] == 0) & (labels[:, g] == 1)
        weight[:, f] = torch.where(hit, weight[:, f] * factor, weight[:, f])
    return weight


def _weighted_bce(logits: torch.Tensor, labels: torch.Tensor, positive_weight: torch.Tensor | None,
                  finding_weight: torch.Tensor | None) -> torch.Tensor:
    """Mean BCE over the known labels (not NaN), weighted as `label_prompt_loss` describes."""
    known = ~torch.isnan(labels)
    if not bool(known.any()):
        return logits.sum() * 0.0
    targets = labels.to(logits.dtype)
    if positive_weight is None and finding_weight is None:
        return F.binary_cross_entropy_with_logits(logits[known], targets[known])
    weight = torch.ones_like(targets)
    if positive_weight is not None:
        weight = torch.where(targets == 1, positive_weight.to(logits.dtype).expand_as(targets), weight)
    if finding_weight is not None:
        weight = weight * finding_weight.to(logits.dtype)
    terms = F.binary_cross_entropy_with_logits(logits[known], targets[known], reduction="none")
    return (terms * weight[known]).sum() / weight[known].sum()


def contrastive_pair(a: torch.Tensor, b: torch.Tensor, a_all: torch.Tensor,
                     b_all: torch.Tensor, logit_scale: torch.Tensor | float,
                     labels: torch.Tensor, label_smoothing: float = 0.0,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE both ways for one pairing: (CE(s a b_all^T), CE(s b a_all^T)).

    ``a``/``b`` are this rank's rows, ``a_all``/``b_all`` the gathered columns.
    """
    a_to_b = F.cross_entropy(logit_scale * a @ b_all.T, labels, label_smoothing=label_smoothing)
    b_to_a = F.cross_entropy(logit_scale * b @ a_all.T, labels, label_smoothing=label_smoothing)
    return a_to_b, b_to_a


def _check_inputs(tensors: dict[str, torch.Tensor]) -> None:
    """Raise ValueError unless all embeddings are 2-D and share one shape."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    first = next(iter(shapes.values()))
    if len(first) != 2 or any(s != first for s in shapes.values()):
        raise ValueError(f"CXRClipLoss expects four B x D embeddings of one shape, got {shapes}; "
                         "pass L2-normalised projections of both views and both sections")
    if first[0] == 0:
        raise ValueError("CXRClipLoss got an empty batch (B=0); drop empty batches before the loss")


class CXRClipLoss(nn.Module):
    """CLIP loss over two views x two sections, plus image-image (ICL) and text-text (TCL) terms.

    Args:
        clip_weight: weight of the image-text terms (paper: 1.0; 0 with the other two at 0 leaves
            a training run to the label terms alone, e.g. a curriculum stage for one finding).
        i2i_weight: weight of ICL (paper: 1.0).
        t2t_weight: weight of TCL (paper: 0.5).
        label_smoothing: cross-entropy label smoothing of the image-text terms (training mode only).
        gather: gather embeddings from all DDP ranks (with gradients) to use as negatives.
    """

    def __init__(self, i2i_weight: float = 1.0, t2t_weight: float = 0.5,
                 label_smoothing: float = 0.0, gather: bool = True, clip_weight: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if i2i_weight < 0 or t2t_weight < 0 or clip_weight < 0:
            raise ValueError(f"loss weights must be >= 0, got clip_weight={clip_weight}, "
                             f"i2i_weight={i2i_weight}, t2t_weight={t2t_weight}")
        self.clip_weight = float(clip_weight)
        self.i2i_weight = float(i2i_weight)
        self.t2t_weight = float(t2t_weight)
        self.label_smoothing = float(label_smoothing)
        self.gather = gather

    def forward(self, image_emb: torch.Tensor, image_emb_view2: torch.Tensor,
                text_emb: torch.Tensor, text_emb_section2: torch.Tensor,
                logit_scale: torch.Tensor | float) -> LossOutput:
        """Compute all terms for one (local) batch of L2-normalised B x D embeddings.

        ``logit_scale`` is the multiplier itself, i.e. ``model.logit_scale.exp()``.
        """
        local = {"image": image_emb, "image_view2": image_emb_view2,
                 "text": text_emb, "text_section2": text_emb_section2}
        _check_inputs(local)
        use_gather = self.gather and distributed.is_distributed()
        gathered = {k: distributed.gather_with_grad(v) if use_gather else v for k, v in local.items()}
        batch = image_emb.shape[0]
        offset = distributed.rank() * batch if use_gather else 0
        labels = torch.arange(batch, device=image_emb.device) + offset
        smoothing = self.label_smoothing if self.training else 0.0

        i2t_terms, t2i_terms = [], []
        for img in ("image", "image_view2"):
            for txt in ("text", "text_section2"):
                i2t, t2i = contrastive_pair(local[img], local[txt], gathered[img], gathered[txt],
                                            logit_scale, labels, smoothing)
                i2t_terms.append(i2t)
                t2i_terms.append(t2i)
        i2t = torch.stack(i2t_terms).mean()
        t2i = torch.stack(t2i_terms).mean()
        clip = (i2t + t2i) / 2
        i2i = torch.stack(contrastive_pair(local["image"], local["image_view2"], gathered["image"],
                                           gathered["image_view2"], logit_scale, labels)).mean()
        t2t = torch.stack(contrastive_pair(local["text"], local["text_section2"], gathered["text"],
                                           gathered["text_section2"], logit_scale, labels)).mean()
        total = self.clip_weight * clip + self.i2i_weight * i2i + self.t2t_weight * t2t
        return LossOutput(total=total, clip=clip, i2t=i2t, t2i=t2i, i2i=i2i, t2t=t2t)
