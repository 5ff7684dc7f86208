"""The one zero-shot recipe: prompt ensembles, negatives, No Finding, views, calibration.

Every place that turns image embeddings into finding probabilities - the engine
(`Engine.zero_shot`, hence the plugin and `cxrclip score --findings`) and the
evaluation runner (`cxrclip eval`, `cxrclip calibrate`) - calls this module, so
the viewer shows exactly what evaluation measured.

Recipe for a finding X (CheXpert names, see `cxrclip.prompts`):

1. **Ensembles.** The positive text is the re-normalised mean embedding of X's
   class prompts (severity x subtype x location); the negative is the
   re-normalised mean of its negatives (the binary "no X").
2. **Raw logit** of a view or study embedding e:
   ``s * (cos(e, pos) - cos(e, neg))`` with ``s = min(exp(logit_scale), 100)``
   (CLIP's clamp), so the raw probability ``sigmoid(logit)`` equals
   ``softmax(s * [cos(neg), cos(pos)])[1]``.
3. **No Finding** is not scored from text (its negative "acute cardiopulmonary
   abnormality" vs "no ..." was ill-posed: held-out AUROC 0.46). Its logit is
   ``-max_j logit_j`` over the other findings except Support Devices (CheXpert's
   definition: no finding = none of the others; devices allowed), i.e.
   ``P(No Finding) = 1 - max_j P(j)`` over the raw probabilities; a calibrated
   model then calibrates this complement like any other finding (taking the max
   over *calibrated* probabilities instead ranks worse: held-out AUROC 0.89 vs 0.95,
   because low-prevalence findings with weak separation dominate the max). Mode
   ``"text"`` keeps the old text pair (for comparison only).
4. **Views.** ``aggregate="mean"`` scores the re-normalised mean of the view
   embeddings (`study_embedding`: the viewer's study score, also what ``cxrclip eval
   --views study`` and ``cxrclip calibrate --views study`` score); ``"max"`` takes the
   largest view logit per finding.
5. **Calibration** (`cxrclip.calibration`): a per-finding map of the raw logit
   (Platt or isotonic), fitted by ``cxrclip calibrate``; ``probability`` is the
   calibrated value when the model has a calibration, ``positive`` compares it
   with the finding's operating point.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from cxrclip.towers import MAX_LOGIT_SCALE

if TYPE_CHECKING:
    from cxrclip.calibration import Calibration

NO_FINDING = "No Finding"
NOT_ABNORMAL = ("No Finding", "Support Devices")
"""Findings that do not make a study abnormal (CheXpert's No Finding allows devices)."""
NoFindingMode = Literal["complement", "text"]
NO_FINDING_MODES = ("complement", "text")
Aggregate = Literal["mean", "max"]
EmbedFn = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class ViewScore:
    """A prompt's or finding's score on one view."""

    view_id: str
    label: str
    similarity: float
    probability: float
    negative_similarity: float


@dataclass(frozen=True)
class ViewOOD:
    """Out-of-distribution verdict of one view (`cxrclip.ood`)."""

    view_id: str
    flag: bool
    score: float
    threshold: float

    def to_dict(self) -> dict[str, float | bool]:
        return {"flag": bool(self.flag), "score": float(self.score), "threshold": float(self.threshold)}


@dataclass(frozen=True)
class FindingScore:
    """Zero-shot result for one finding.

    ``probability`` is calibrated when ``calibrated`` is True, else the raw
    probability; ``positive`` is None without an operating point. ``ood`` holds
    the verdicts of the views it was scored on (empty when the model has no
    out-of-distribution statistics).
    """

    finding: str
    similarity: float
    probability: float
    views: list[ViewScore] = field(default_factory=list)
    raw_probability: float | None = None
    calibrated: bool = False
    operating_point: float | None = None
    positive: bool | None = None
    ood: tuple[ViewOOD, ...] = ()

    @property
    def out_of_distribution(self) -> bool:
        """True when any view it was scored on is outside the model's experience."""
        return any(v.flag for v in self.ood)


def clamp_logit_scale(scale: float) -> float:
    """CLIP's clamp of the multiplier exp(logit_scale) at 100 (scale given already exponentiated)."""
    return float(min(float(scale), MAX_LOGIT_SCALE))


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """1 / (1 + exp(-x)) in float64, without overflow warnings."""
    x = np.asarray(x, np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def binary_probability(positive: np.ndarray, negative: np.ndarray, logit_scale: float) -> np.ndarray:
    """softmax(logit_scale * [negative, positive])[1], computed stably as a sigmoid."""
    diff = logit_scale * (np.asarray(positive, np.float64) - np.asarray(negative, np.float64))
    return sigmoid(diff)


def unit(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x / max(|x|, 1e-12) along ``axis``."""
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


@dataclass(frozen=True)
class Ensemble:
    """The prompts of one finding: positives against negatives."""

    finding: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]


def study_embedding(view_emb: np.ndarray) -> np.ndarray:
    """A study's embedding for ``aggregate="mean"``: the re-normalised mean of its (unit) view
    embeddings (V, D) -> (D,). Evaluation (`cxrclip eval --views study`) uses the same."""
    return unit(np.asarray(view_emb, np.float64).mean(axis=0))


def finding_ensembles(findings: Sequence[str], max_prompts: int | None = None) -> list[Ensemble]:
    """Prompt ensembles of ``findings`` (canonical names) from `cxrclip.prompts.zero_shot_prompts`."""
    from cxrclip.prompts import canonical_finding, zero_shot_prompts

    out = []
    for name in findings:
        positives, negatives = zero_shot_prompts(name, max_prompts=max_prompts)
        out.append(Ensemble(canonical_finding(name), tuple(positives), tuple(negatives)))
    return out


def scored_findings(findings: Sequence[str] | None, no_finding: NoFindingMode) -> list[str]:
    """Canonical findings to encode: the requested ones (default CheXpert-14) plus, for
    No Finding in "complement" mode, every abnormal CheXpert finding it depends on."""
    from cxrclip.prompts import CHEXPERT_14, canonical_finding

    names = [canonical_finding(f) for f in (CHEXPERT_14 if findings is None else findings)]
    if no_finding == "complement" and NO_FINDING in names:
        names += [f for f in CHEXPERT_14 if f not in NOT_ABNORMAL and f not in names]
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class StudyLogits:
    """Raw scores of every encoded finding: per view (V, F) and for the study (F,)."""

    view_sims: np.ndarray
    view_neg_sims: np.ndarray
    view_logits: np.ndarray
    study_sims: np.ndarray
    study_logits: np.ndarray


class ZeroShotClassifier:
    """Finding ensembles encoded once; turns image embeddings into `FindingScore`s."""

    def __init__(self, names: Sequence[str], positive: np.ndarray, negative: np.ndarray,
                 logit_scale: float, calibration: Calibration | None = None,
                 no_finding: NoFindingMode = "complement", requested: Sequence[str] | None = None):
        if no_finding not in NO_FINDING_MODES:
            raise ValueError(f"no_finding must be one of {list(NO_FINDING_MODES)}, got {no_finding!r}")
        if positive.shape != negative.shape or positive.shape[0] != len(names):
            raise ValueError(f"ensembles do not match {len(names)} findings: positive {positive.shape}, "
                             f"negative {negative.shape}")
        self.names = list(names)
        self.positive = np.asarray(positive, np.float64)
        self.negative = np.asarray(negative, np.float64)
        self.logit_scale = clamp_logit_scale(logit_scale)
        self.calibration = calibration
        self.no_finding = no_finding
        self.requested = list(requested) if requested is not None else list(self.names)

    @classmethod
    def build(cls, embed: EmbedFn, logit_scale: float, findings: Sequence[str] | None = None,
              calibration: Calibration | None = None, no_finding: NoFindingMode | None = None,
              max_prompts: int | None = None) -> ZeroShotClassifier:
        """Encode the ensembles with ``embed`` (texts -> L2-normalised (N, D)) in one call.

        ``no_finding`` defaults to the calibration's mode, else "complement".
        """
        from cxrclip.prompts import CHEXPERT_14, canonical_finding

        mode = no_finding or (calibration.no_finding if calibration is not None else "complement")
        requested = [canonical_finding(f) for f in (CHEXPERT_14 if findings is None else findings)]
        names = scored_findings(requested, mode)
        ensembles = finding_ensembles(names, max_prompts)
        groups = [e.positives for e in ensembles] + [e.negatives for e in ensembles]
        flat = np.asarray(embed([p for group in groups for p in group]), np.float64)
        bounds = np.cumsum([0] + [len(g) for g in groups])
        means = unit(np.stack([flat[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]))
        return cls(names, means[:len(names)], means[len(names):], logit_scale, calibration, mode, requested)

    # ----- raw scores ---------------------------------------------------------------
    def logits(self, view_emb: np.ndarray) -> StudyLogits:
        """Raw text-pair logits of each view and of the re-normalised mean view (one study)."""
        view_emb = np.asarray(view_emb, np.float64)
        if view_emb.ndim != 2 or view_emb.shape[0] == 0:
            raise ValueError(f"view embeddings must be (V >= 1, D), got shape {view_emb.shape}")
        sims, neg = view_emb @ self.positive.T, view_emb @ self.negative.T
        study = study_embedding(view_emb)
        s_sims, s_neg = study @ self.positive.T, study @ self.negative.T
        return StudyLogits(sims, neg, self.logit_scale * (sims - neg), s_sims,
                           self.logit_scale * (s_sims - s_neg))

    def _calibrated(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(raw, calibrated) probabilities of (..., F) text logits, No Finding by its rule."""
        raw = sigmoid(self._with_no_finding(logits, logits))
        if self.calibration is None:
            return raw, raw
        inputs = self._calibration_inputs(logits)
        cal = np.stack([self.calibration.logit(n, inputs[..., j]) for j, n in enumerate(self.names)],
                       axis=-1)
        return raw, sigmoid(cal)

    def _calibration_inputs(self, logits: np.ndarray) -> np.ndarray:
        """What each finding's calibration maps: its raw logit; for No Finding ("complement")
        -max over the other findings' raw logits."""
        return self._with_no_finding(logits, logits)

    def _with_no_finding(self, text_logits: np.ndarray, source: np.ndarray) -> np.ndarray:
        """``text_logits`` with No Finding's column replaced by -max over ``source``'s abnormal columns."""
        out = np.array(text_logits, np.float64, copy=True)
        if self.no_finding != "complement" or NO_FINDING not in self.names:
            return out
        abnormal = [j for j, n in enumerate(self.names) if n not in NOT_ABNORMAL]
        out[..., self.names.index(NO_FINDING)] = -np.max(source[..., abnormal], axis=-1)
        return out

    def _text_logits(self, embeddings: np.ndarray) -> np.ndarray:
        emb = unit(np.asarray(embeddings, np.float64))
        return self.logit_scale * (emb @ self.positive.T - emb @ self.negative.T)

    def calibration_inputs(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, F) logits each finding's calibration map receives, for N single-embedding studies
        (columns in ``self.names`` order)."""
        return self._calibration_inputs(self._text_logits(embeddings))

    def probabilities(self, embeddings: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """(N, F) probabilities of N studies given one embedding each (evaluation: the frontal view)."""
        raw, cal = self._calibrated(self._text_logits(embeddings))
        return cal if calibrated else raw

    # ----- one study ----------------------------------------------------------------
    def score_study(self, view_ids: Sequence[str], labels: Sequence[str], view_emb: np.ndarray,
                    aggregate: Aggregate = "mean", ood: Sequence[ViewOOD] = ()) -> list[FindingScore]:
        """`FindingScore` of each requested finding for one study, highest probability first."""
        if aggregate not in ("mean", "max"):
            raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
        lg = self.logits(view_emb)
        view_raw, view_cal = self._calibrated(lg.view_logits)
        if aggregate == "max":
            study_raw, study_cal = view_raw.max(axis=0), view_cal.max(axis=0)
            study_sims = lg.view_sims.max(axis=0)
        else:
            study_raw, study_cal = self._calibrated(lg.study_logits)
            study_sims = lg.study_sims
        out = []
        for name in self.requested:
            j = self.names.index(name)
            views = [ViewScore(vid, lab, float(lg.view_sims[i, j]), float(view_cal[i, j]),
                               float(lg.view_neg_sims[i, j]))
                     for i, (vid, lab) in enumerate(zip(view_ids, labels))]
            point = self.calibration.operating_point(name) if self.calibration is not None else None
            prob = float(study_cal[j])
            out.append(FindingScore(name, float(study_sims[j]), prob, views, float(study_raw[j]),
                                    self.calibration is not None and self.calibration.has(name), point,
                                    None if point is None else bool(prob >= point), tuple(ood)))
        return sorted(out, key=lambda s: s.probability, reverse=True)
