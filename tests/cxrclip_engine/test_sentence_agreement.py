"""Sentences that contradict a study, and the nearest sentences kept because they agree."""
from __future__ import annotations

import pytest

from cxrclip.prompts import CHEXPERT_14
from cxrclip.report_mentions import contradicts_study, study_mentions
from cxrclip.sentence_bank import Neighbour, agreeing, zero_shot_mentions
from cxrclip.zero_shot import FindingScore

NORMAL = study_mentions({}, list(CHEXPERT_14))
RIGHT_EFFUSION = study_mentions({"Pleural Effusion": "right"}, list(CHEXPERT_14))


@pytest.mark.parametrize("sentence, study, contradicts", [
    ("A 1.5 cm nodule in the right upper lobe.", NORMAL, True),       # asserts what it lacks
    ("Possible small left pleural effusion.", NORMAL, True),          # suggests what it lacks
    ("No pleural effusion.", RIGHT_EFFUSION, True),                   # negates what it has
    ("No left pleural effusion.", RIGHT_EFFUSION, False),             # other side
    ("No acute cardiopulmonary abnormality.", RIGHT_EFFUSION, True),  # normal for abnormal
    ("No acute cardiopulmonary abnormality.", NORMAL, False),
    ("The lungs are clear.", NORMAL, False),
    ("Right basilar opacity.", RIGHT_EFFUSION, True),                 # Lung Opacity absent
    ("A pulmonary nodule is not definitely seen on this study.", NORMAL, False),
])
def test_contradicts_study(sentence: str, study: list, contradicts: bool) -> None:
    assert (contradicts_study(sentence, study) is not None) is contradicts


def test_a_child_finding_brings_its_parent() -> None:
    consolidation = study_mentions({"Consolidation": "left"}, list(CHEXPERT_14))
    assert contradicts_study("Left lower lobe opacity.", consolidation) is None
    assert contradicts_study("The lungs are clear.", consolidation) is not None


def _score(finding: str, positive: bool | None) -> FindingScore:
    return FindingScore(finding, 0.1, 0.9 if positive else 0.05, calibrated=positive is not None,
                        operating_point=0.5 if positive is not None else None, positive=positive)


def test_agreeing_drops_sentences_against_the_zero_shot_findings() -> None:
    scores = [_score("Pleural Effusion", True), _score("Lung Lesion", False),
              _score("Pneumothorax", None)]
    study = zero_shot_mentions(scores)
    found = [Neighbour("Right lung nodule.", 0.9, 1), Neighbour("Moderate right pleural effusion.", 0.8, 1),
             Neighbour("No pleural effusion.", 0.7, 1), Neighbour("Small pneumothorax.", 0.6, 1),
             Neighbour("The effusion is unchanged since the prior study.", 0.5, 1),
             Neighbour("Heart size is normal.", 0.4, 1)]
    kept = [n.sentence for n in agreeing(found, study, k=3)]
    # the uncalibrated finding says nothing; the comparison needs a prior study
    assert kept == ["Moderate right pleural effusion.", "Small pneumothorax.", "Heart size is normal."]
    assert "The effusion is unchanged since the prior study." in \
        [n.sentence for n in agreeing(found, study, k=6, has_prior=True)]
