"""Report text for training pairs: two sections, sentence shuffling, labels → sentences.

Sentences are split by ``cxrclip.sentences.split_sentences``, the project's one
splitter (numbered impressions, abbreviations, decimals).
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from cxrclip.prompts import CHEXPERT_14
from cxrclip.sentences import split_sentences
from training.data.manifest import StudyRecord

_ENDS_SENTENCE = re.compile(r"[.!?]$")

__all__ = ["LABEL_LOSS_FINDINGS", "balancing_weights", "fit_sentences", "label_prompt_pairs", "label_vector",
           "labels_text", "report_sentences", "shuffle_sentences", "study_texts"]

# The findings `loss.label_weight` supervises: the zero-shot recipe's, without No Finding
# (which the recipe derives from the others).
LABEL_LOSS_FINDINGS: tuple[str, ...] = tuple(f for f in CHEXPERT_14 if f != "No Finding")


def report_sentences(text: str) -> list[str]:
    """Sentences of a report section (the project splitter; any sentence with a letter is kept)."""
    return split_sentences(text, min_letters=1)


def _terminated(sentence: str) -> str:
    """The sentence with a final period when it has no end punctuation ("1. A 2. B" items)."""
    return sentence if _ENDS_SENTENCE.search(sentence) else sentence + "."


def shuffle_sentences(text: str, rng: np.random.Generator) -> str:
    """The same sentences in a random order (the paper's text augmentation)."""
    sentences = [_terminated(s) for s in report_sentences(text)]
    if not sentences:
        return text.strip()
    if len(sentences) == 1:
        return sentences[0]
    order = rng.permutation(len(sentences))
    return " ".join(sentences[i] for i in order)


def labels_text(labels: dict[str, int], rng: np.random.Generator) -> str:
    """A report-like text from label sentences: positive and uncertain labels first, then negatives.

    Each group is shuffled on its own. Putting the findings first means a text longer
    than the tokenizer's ``max_length`` loses "no X" sentences, never a finding
    (``fit_sentences`` then drops whole trailing sentences).
    """
    from cxrclip.prompts import label_sentences

    present = {k: v for k, v in labels.items() if v != 0}
    absent = {k: v for k, v in labels.items() if v == 0}
    return " ".join(label_sentences(present, rng) + label_sentences(absent, rng))


def label_vector(labels: dict[str, int]) -> np.ndarray:
    """A study's labels over `LABEL_LOSS_FINDINGS`: 1.0 present, 0.0 absent or not mentioned
    (as the evaluation counts them), NaN uncertain (left out of the label loss). Labels of
    other findings (ChestX-ray14's Hernia, say) are ignored."""
    from cxrclip.prompts import canonical_finding

    known = {}
    for name, value in labels.items():
        try:
            known[canonical_finding(name)] = value
        except ValueError:
            continue
    return np.array([np.nan if known.get(f) == -1 else float(known.get(f) == 1) for f in LABEL_LOSS_FINDINGS],
                    dtype=np.float32)


def balancing_weights(vectors: np.ndarray, cap: float = 20.0, sampling: np.ndarray | None = None) -> np.ndarray:
    """Per finding, negatives / positives among ``label_vector`` rows (N x F), between 1 and
    ``cap`` (1 where a finding has no positive): the label term's ``positive_weight``. With
    ``sampling`` (N weights, `oversampling_weights`) the rows count as often as they are drawn."""
    rows = np.ones(len(vectors)) if sampling is None else np.asarray(sampling, np.float64)
    positives = np.sum((vectors == 1) * rows[:, None], axis=0)
    negatives = np.sum((vectors == 0) * rows[:, None], axis=0)
    ratio = np.divide(negatives, positives, out=np.ones_like(negatives), where=positives > 0)
    return np.clip(ratio, 1.0, cap).astype(np.float32)


def oversampling_weights(vectors: np.ndarray, multipliers: dict[str, float]) -> np.ndarray:
    """``data.oversample``: each study's sampling weight, the largest multiplier among the
    findings it has (``label_vector`` rows, N x F), 1 for a study with none of them."""
    per_finding = np.array([float(multipliers.get(f, 1.0)) for f in LABEL_LOSS_FINDINGS])
    present = np.nan_to_num(vectors, nan=0.0) == 1
    return np.max(np.where(present, per_finding[None, :], 1.0), axis=1, initial=1.0)


def label_prompt_pairs(rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(positives, negatives): one label sentence of each polarity per `LABEL_LOSS_FINDINGS`
    entry, drawn from assets/prompts/label_sentences.json (training wording, not the class
    prompts the zero-shot evaluation uses)."""
    from cxrclip.prompts import label_sentences

    positives = [label_sentences({f: 1}, rng)[0] for f in LABEL_LOSS_FINDINGS]
    negatives = [label_sentences({f: 0}, rng)[0] for f in LABEL_LOSS_FINDINGS]
    return positives, negatives


def fit_sentences(texts: list[str], tokenizer: Any, max_length: int) -> list[str]:
    """Each text cut to its leading whole sentences that fit ``max_length`` tokens.

    Texts that fit are returned unchanged; a text whose first sentence alone is too
    long is returned unchanged too (the tokenizer truncates it). WordPiece splits at
    spaces, so a text's token count is the sum of its sentences' counts.
    """
    probe = tokenizer(texts, truncation=True, max_length=max_length + 1)["input_ids"]
    long = [i for i, ids in enumerate(probe) if len(ids) > max_length]
    if not long:
        return list(texts)
    split = {i: report_sentences(texts[i]) for i in long}
    flat = [s for i in long for s in split[i]]
    counts = iter(len(ids) for ids in tokenizer(flat, add_special_tokens=False, truncation=True,
                                                max_length=max_length + 1)["input_ids"])
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    out = list(texts)
    for i in long:
        kept, used = [], 0
        lengths = [next(counts) for _ in split[i]]
        for sentence, n in zip(split[i], lengths):
            if used + n > budget:
                break
            kept.append(sentence)
            used += n
        out[i] = " ".join(kept) if kept else texts[i]
    return out


def study_texts(record: StudyRecord, rng: np.random.Generator,
                shuffle: bool = True) -> tuple[str, str]:
    """Two texts of one study: (findings, impression) when both exist, else two samples of one.

    Label-only studies get two independently sampled label reports.
    """
    sections = record.report_sections()
    if not sections:
        if not record.labels:
            raise ValueError(f"study {record.study_id!r} has no report sections and no labels")
        return labels_text(record.labels, rng), labels_text(record.labels, rng)
    if len(sections) == 1:
        sections = [sections[0], sections[0]]
    elif rng.random() < 0.5:
        sections = [sections[1], sections[0]]
    if shuffle:
        return shuffle_sentences(sections[0], rng), shuffle_sentences(sections[1], rng)
    return sections[0], sections[1]
