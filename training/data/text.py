"""Report text for training pairs: two sections, sentence shuffling, labels → sentences."""
from __future__ import annotations

import re

import numpy as np

from training.data.manifest import StudyRecord

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Split on sentence-ending punctuation followed by whitespace; empty pieces dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def shuffle_sentences(text: str, rng: np.random.Generator) -> str:
    """The same sentences in a random order (the paper's text augmentation)."""
    sentences = split_sentences(text)
    if len(sentences) < 2:
        return text.strip()
    order = rng.permutation(len(sentences))
    return " ".join(sentences[i] for i in order)


def labels_text(labels: dict[str, int], rng: np.random.Generator) -> str:
    """A report-like text sampled from label prompts (``cxrclip.prompts.labels_to_report``)."""
    from cxrclip.prompts import labels_to_report

    return labels_to_report(dict(labels), rng)


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
