"""Finding names, zero-shot class prompts and label-to-sentence conversion.

The words live in two data files under ``assets/prompts/`` (written by this
project, editable without touching code):

- ``class_prompts.json``: per CheXpert finding, lists of severity, subtype and
  location phrases; every combination is one zero-shot prompt.
- ``label_sentences.json``: per CheXpert / ChestX-ray14 label, positive,
  negative and uncertain report sentences, used to turn image labels into
  report text for training.
"""
from __future__ import annotations

import itertools
import json
import math
import random
import re
from collections.abc import Collection, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from cxrclip.resources import asset_path

__all__ = [
    "CHESTXRAY14_EXTRA",
    "CHEXPERT_14",
    "FINDING_ALIASES",
    "RSNA_PNEUMONIA_PROMPTS",
    "binary_prompts",
    "canonical_finding",
    "class_prompts",
    "zero_shot_prompts",
    "label_sentences",
    "labels_to_report",
    "match_finding",
    "negative_prompt",
]

CHEXPERT_14: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
)
"""The 14 CheXpert observations, in the order of the CheXpert label files."""

CHESTXRAY14_EXTRA: tuple[str, ...] = (
    "Infiltration", "Mass", "Nodule", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
"""ChestX-ray14 labels that are not CheXpert observations (names as in its CSV)."""

FINDING_ALIASES: dict[str, tuple[str, ...]] = {
    "No Finding": ("no finding", "no findings", "normal"),
    "Enlarged Cardiomediastinum": ("enlarged cardiomediastinum", "widened mediastinum",
                                   "mediastinal widening", "cardiomediastinal enlargement"),
    "Cardiomegaly": ("cardiomegaly", "enlarged heart", "cardiac enlargement"),
    "Lung Opacity": ("lung opacity", "airspace opacity", "pulmonary opacity", "opacity"),
    "Lung Lesion": ("lung lesion", "pulmonary lesion"),
    "Edema": ("edema", "pulmonary edema", "oedema"),
    "Consolidation": ("consolidation",),
    "Pneumonia": ("pneumonia",),
    "Atelectasis": ("atelectasis", "volume loss"),
    "Pneumothorax": ("pneumothorax", "ptx"),
    "Pleural Effusion": ("pleural effusion", "effusion", "pleural fluid"),
    "Pleural Other": ("pleural other", "pleural abnormality"),
    "Fracture": ("fracture", "fractures", "rib fracture"),
    "Support Devices": ("support devices", "support device", "lines and tubes"),
    "Infiltration": ("infiltration", "infiltrate", "infiltrates"),
    "Mass": ("mass", "lung mass", "pulmonary mass"),
    "Nodule": ("nodule", "lung nodule", "pulmonary nodule"),
    "Emphysema": ("emphysema",),
    "Fibrosis": ("fibrosis", "pulmonary fibrosis"),
    "Pleural_Thickening": ("pleural thickening",),
    "Hernia": ("hernia", "hiatal hernia"),
}
"""Canonical label -> lower-case phrases that name it in user input or other datasets."""

RSNA_PNEUMONIA_PROMPTS: tuple[str, str] = ("No evidence of pneumonia", "Findings suggesting pneumonia")
"""(negative, positive) prompts for the RSNA pneumonia task, as in the paper's evaluation."""

CLASS_PROMPTS_FILE = "prompts/class_prompts.json"
LABEL_SENTENCES_FILE = "prompts/label_sentences.json"
ABBREVIATIONS_FILE = "prompts/abbreviations.json"
_PROMPT_PARTS = ("severity", "subtype", "location")
_POLARITY = {1: "positive", 0: "negative", -1: "uncertain"}
_LEADING_FILLER = re.compile(r"^(?:(?:there|which)\s+(?:is|are)\s+|(?:an?|the)\s+)+", re.IGNORECASE)


class _Rng(Protocol):
    def shuffle(self, x: list[Any]) -> None: ...


def _normalise(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


@lru_cache(maxsize=1)
def _alias_table() -> dict[str, str]:
    table = {_normalise(c): c for c in FINDING_ALIASES}
    for canonical, aliases in FINDING_ALIASES.items():
        table.update({_normalise(a): canonical for a in aliases})
    return table


def canonical_finding(name: str) -> str:
    """Canonical label for a finding name or alias ("effusion", "Pleural_Effusion" ...).

    Raises ValueError naming the unknown input and the known labels.
    """
    found = _alias_table().get(_normalise(name))
    if found is None:
        raise ValueError(f"unknown finding {name!r}; known: {', '.join(FINDING_ALIASES)} "
                         "(aliases in cxrclip.prompts.FINDING_ALIASES)")
    return found


def match_finding(text: str) -> tuple[str, str] | None:
    """First finding named in free text, as (canonical label, matched phrase); None if none.

    Longer aliases win ("pleural effusion" before "effusion"); whole words only.
    """
    norm = _normalise(text)
    for alias in sorted(_alias_table(), key=len, reverse=True):
        match = re.search(rf"\b{re.escape(alias)}\b", norm)
        if match:
            return _alias_table()[alias], match.group(0)
    return None


def _load_json(relative: str) -> dict[str, Any]:
    path = asset_path(relative)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix the file") from exc
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _check_phrase_lists(path: str, label: str, entry: Any, keys: tuple[str, ...]) -> None:
    for key in keys:
        value = entry.get(key) if isinstance(entry, dict) else None
        if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{path}: {label!r} needs a non-empty list of strings under {key!r}, "
                             f"got {value!r}")


@lru_cache(maxsize=1)
def _abbreviations() -> dict[str, str]:
    data = _load_json(ABBREVIATIONS_FILE)
    bad = [k for k, v in data.items() if not (isinstance(v, str) and v.strip() and k == k.lower())]
    if bad:
        raise ValueError(f"{asset_path(ABBREVIATIONS_FILE)}: {bad[0]!r} needs a lower-case key and a "
                         "non-empty spelled-out string")
    return data


def spelled_out(text: str, only: Collection[str] | None = None) -> str:
    """``text`` with the radiology abbreviations of ``abbreviations.json`` written out, whole
    words, any case ("apical PTX" -> "apical pneumothorax"); with ``only``, just those
    (lower-case) words. The viewer offers the result; it never rewrites a prompt itself."""
    table = _abbreviations()

    def expand(match: re.Match[str]) -> str:
        word = match.group(0).lower()
        if word in table and (only is None or word in only):
            return table[word]
        return match.group(0)

    return re.sub(r"[A-Za-z]+", expand, text)


@lru_cache(maxsize=1)
def _class_prompt_spec() -> dict[str, Any]:
    data = _load_json(CLASS_PROMPTS_FILE)
    for label, entry in data.items():
        _check_phrase_lists(CLASS_PROMPTS_FILE, label, entry, _PROMPT_PARTS)
        if "negatives" in entry:
            _check_phrase_lists(CLASS_PROMPTS_FILE, label, entry, ("negatives",))
    return data


@lru_cache(maxsize=1)
def _label_sentence_spec() -> dict[str, Any]:
    data = _load_json(LABEL_SENTENCES_FILE)
    for label, entry in data.items():
        _check_phrase_lists(LABEL_SENTENCES_FILE, label, entry, tuple(_POLARITY.values()))
    return data


def _class_entry(finding: str) -> tuple[str, dict[str, Any]]:
    label = canonical_finding(finding)
    spec = _class_prompt_spec()
    if label not in spec:
        raise ValueError(f"no class prompts for {label!r} in {CLASS_PROMPTS_FILE}; "
                         f"available: {', '.join(spec)}")
    return label, spec[label]


def class_prompts(finding: str, max_prompts: int | None = None, seed: int = 0) -> list[str]:
    """Zero-shot prompts for a finding: every severity x subtype x location sentence.

    The order is the product order of the lists in the file. With ``max_prompts``
    a subset is drawn with ``seed`` (same seed, same subset) and kept in that order.
    """
    _, entry = _class_entry(finding)
    combos = itertools.product(*(entry[part] for part in _PROMPT_PARTS))
    prompts = list(dict.fromkeys(" ".join(p for p in combo if p) for combo in combos))
    if max_prompts is None or max_prompts >= len(prompts):
        return prompts
    if max_prompts < 1:
        raise ValueError(f"max_prompts must be >= 1 or None, got {max_prompts}")
    keep = sorted(random.Random(seed).sample(range(len(prompts)), max_prompts))
    return [prompts[i] for i in keep]


def zero_shot_prompts(finding: str, max_prompts: int | None = None) -> tuple[list[str], list[str]]:
    """(positives, negatives) of a finding's zero-shot ensemble.

    Positives are its class prompts (severity x subtype x location); the negatives are
    the entry's ``negatives`` list when it has one (how reports say a *size* is normal:
    "no cardiomegaly", "normal heart size"), else the finding's binary negative
    ("no pneumothorax") - not each prompt negated: "no mild cardiomegaly" would also be
    true of severe cardiomegaly.
    """
    _, entry = _class_entry(finding)
    negatives = list(entry.get("negatives") or [binary_prompts(finding)[0]])
    return class_prompts(finding, max_prompts=max_prompts), negatives


def binary_prompts(finding: str) -> tuple[str, str]:
    """(negative, positive) prompt pair for a finding, e.g. ("no pneumothorax", "pneumothorax")."""
    _, entry = _class_entry(finding)
    if "binary" in entry:
        negative, positive = entry["binary"]
        return str(negative), str(positive)
    term = entry.get("term") or canonical_finding(finding).lower()
    return f"no {term}", term


def negative_prompt(text: str, strip_modifiers: bool = False) -> str:
    """The negated form of a prompt, used as the 'absent' side of a softmax pair.

    Rule: trim spaces and a final period, drop leading fillers ("there is", "a",
    "the"), lower-case the first letter (unless the first word is all capitals),
    then prefix "no ": "Large right pneumothorax" -> "no large right pneumothorax".
    A prompt that already starts with "no " is un-negated: "no effusion" -> "effusion".
    With ``strip_modifiers`` the negative keeps only the finding phrase when one is
    recognised: "large right pneumothorax" -> "no pneumothorax".
    """
    core = _LEADING_FILLER.sub("", " ".join(text.split()).rstrip(".").strip())
    if not core:
        raise ValueError(f"cannot negate an empty prompt, got {text!r}")
    if core.lower().startswith("no "):
        return core[3:].strip()
    if strip_modifiers and (found := match_finding(core)) is not None:
        return f"no {found[1]}"
    first = core.split()[0]
    if not (first.isupper() and len(first) > 1):
        core = core[0].lower() + core[1:]
    return f"no {core}"


def _polarity(label: str, value: float | None) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    key = int(value) if float(value) in (1.0, 0.0, -1.0) else None
    if key is None:
        raise ValueError(f"label {label!r} has value {value!r}; use 1 (present), 0 (absent), "
                         "-1 (uncertain) or None/NaN (not mentioned)")
    return _POLARITY[key]


def _pick(rng: Any, options: list[str]) -> str:
    if hasattr(rng, "integers"):  # numpy.random.Generator
        return options[int(rng.integers(len(options)))]
    return options[rng.randrange(len(options))]


def label_sentences(labels: Mapping[str, float | None], rng: _Rng | random.Random | int) -> list[str]:
    """One report sentence per mentioned label, in shuffled order.

    ``labels`` maps a label name or alias (CheXpert or ChestX-ray14 spelling) to
    1 (positive sentence), 0 (negative), -1 (uncertain) or None/NaN (skipped).
    ``rng`` is a ``random.Random``, a ``numpy.random.Generator`` or an int seed.
    """
    rng = random.Random(rng) if isinstance(rng, int) else rng
    spec = _label_sentence_spec()
    sentences = []
    for name, value in labels.items():
        polarity = _polarity(name, value)
        if polarity is None:
            continue
        label = canonical_finding(name)
        if label not in spec:
            raise ValueError(f"no sentences for {label!r} in {LABEL_SENTENCES_FILE}; add them there")
        sentences.append(_pick(rng, spec[label][polarity]))
    rng.shuffle(sentences)
    return sentences


def labels_to_report(labels: Mapping[str, float | None], rng: _Rng | random.Random | int) -> str:
    """``label_sentences`` joined into one report text ("" when no label is mentioned)."""
    return " ".join(label_sentences(labels, rng))
