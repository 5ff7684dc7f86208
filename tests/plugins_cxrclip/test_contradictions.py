"""Contradiction check of draft sentences (pure function)."""
from __future__ import annotations

import pytest

from plugins.cxrclip_findings.contradictions import (
    contradicting_indices, extract_mentions, find_contradictions, split_sentences)


@pytest.mark.parametrize("sentences, expected", [
    (["Right pleural effusion.", "No pleural effusion."], {0, 1}),
    (["Small left pleural effusion.", "No right pleural effusion."], set()),
    (["Bilateral pleural effusions.", "No left pleural effusion."], {0, 1}),
    (["Pleural effusion.", "No right pleural effusion."], set()),
    (["Cardiomegaly.", "Heart size is normal."], {0, 1}),
    (["The heart is enlarged.", "Normal cardiomediastinal silhouette."], {0, 1}),
    (["Right lower lobe consolidation.", "The lungs are clear."], {0, 1}),
    (["No acute cardiopulmonary abnormality.", "Large right pneumothorax."], {0, 1}),
    (["No acute cardiopulmonary abnormality.", "Endotracheal tube in place."], set()),
    (["No acute cardiopulmonary abnormality.", "No pneumothorax."], set()),
    (["Possible left lower lobe pneumonia.", "No pneumonia."], {0, 1}),
    (["Right pneumothorax.", "No pleural effusion."], set()),
    (["Left pneumothorax has resolved.", "Left pneumothorax."], {0, 1}),
    (["No pleural effusion or pneumothorax.", "Small right pneumothorax."], {0, 1}),
    (["Right pleural effusion, no pneumothorax."], set()),
    (["Right pleural effusion; no pleural effusion on the left."], set()),
    (["Right pleural effusion; no pleural effusion."], {0}),
    ([], set()),
])
def test_contradicting_indices(sentences, expected):
    assert contradicting_indices(sentences) == expected


def test_contradiction_names_finding_and_phrases():
    [c] = find_contradictions(["Small right pleural effusion.", "Normal heart size.",
                               "No pleural effusion."])
    assert (c.first, c.second, c.finding) == (0, 2, "Pleural Effusion")
    assert "pleural effusion" in c.reason and "absent" in c.reason


@pytest.mark.parametrize("sentence, finding, polarity, side", [
    ("Large right pneumothorax.", "Pneumothorax", "present", "right"),
    ("No evidence of pneumothorax.", "Pneumothorax", "absent", None),
    ("Pneumothorax is not seen.", "Pneumothorax", "absent", None),
    ("Cannot exclude early pneumonia.", "Pneumonia", "uncertain", None),
    ("Effusion on the left.", "Pleural Effusion", "present", "left"),
    ("Small left and moderate right pleural effusions.", "Pleural Effusion", "present", "both"),
])
def test_single_mention(sentence, finding, polarity, side):
    [m] = extract_mentions(sentence)
    assert (m.finding, m.polarity, m.side) == (finding, polarity, side)


def test_two_findings_keep_their_own_sides():
    mentions = extract_mentions("Right pneumothorax and left pleural effusion.")
    assert [(m.finding, m.side) for m in mentions] == [("Pneumothorax", "right"),
                                                        ("Pleural Effusion", "left")]


def test_split_sentences_keeps_decimals_and_lines():
    text = "A 1.5 cm nodule. No effusion.\nHeart size is normal."
    assert split_sentences(text) == ["A 1.5 cm nodule.", "No effusion.", "Heart size is normal."]
