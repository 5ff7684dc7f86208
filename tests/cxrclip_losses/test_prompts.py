"""Prompt files, class prompts, negation rule and label-to-report conversion."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest

from cxrclip import prompts
from cxrclip.resources import ASSETS_ENV, asset_path


@pytest.mark.parametrize("finding", prompts.CHEXPERT_14)
def test_every_chexpert_finding_has_prompts_and_sentences(finding):
    generated = prompts.class_prompts(finding)
    assert len(generated) >= 4
    assert len(set(generated)) == len(generated)
    assert all(p == p.strip() and "  " not in p for p in generated)
    negative, positive = prompts.binary_prompts(finding)
    assert negative != positive
    for value in (1, 0, -1):
        assert len(prompts.label_sentences({finding: value}, 0)) == 1


def test_class_prompts_are_the_cartesian_product_in_file_order(repo_root):
    spec = json.loads((repo_root / "assets/prompts/class_prompts.json").read_text())["Pneumothorax"]
    generated = prompts.class_prompts("pneumothorax")
    assert len(generated) == len(spec["severity"]) * len(spec["subtype"]) * len(spec["location"])
    assert generated[0] == spec["subtype"][0]  # empty severity and location are skipped
    assert "large tension pneumothorax on the left" in generated
    assert generated.index("tiny pneumothorax") < generated.index("large pneumothorax")


def test_class_prompt_subsets_are_deterministic_per_seed():
    full = prompts.class_prompts("Atelectasis")
    first = prompts.class_prompts("Atelectasis", max_prompts=7, seed=3)
    assert first == prompts.class_prompts("Atelectasis", max_prompts=7, seed=3)
    assert first != prompts.class_prompts("Atelectasis", max_prompts=7, seed=4)
    assert len(first) == 7 and set(first) <= set(full)
    assert first == sorted(first, key=full.index)
    assert prompts.class_prompts("Atelectasis", max_prompts=10_000) == full
    with pytest.raises(ValueError, match="max_prompts"):
        prompts.class_prompts("Atelectasis", max_prompts=0)


@pytest.mark.parametrize(("name", "canonical"), [
    ("effusion", "Pleural Effusion"), ("Pleural_Effusion", "Pleural Effusion"),
    ("PLEURAL THICKENING", "Pleural_Thickening"), ("widened mediastinum", "Enlarged Cardiomediastinum"),
    ("Support-Devices", "Support Devices"), ("No Finding", "No Finding"),
])
def test_aliases_resolve(name, canonical):
    assert prompts.canonical_finding(name) == canonical


def test_unknown_finding_names_the_value():
    with pytest.raises(ValueError, match="'bananas'"):
        prompts.class_prompts("bananas")
    with pytest.raises(ValueError, match="Hernia"):  # a known label without class prompts
        prompts.class_prompts("Hernia")


def test_match_finding_prefers_longest_alias():
    assert prompts.match_finding("small left pleural effusion") == ("Pleural Effusion", "pleural effusion")
    assert prompts.match_finding("tiny apical PTX") == ("Pneumothorax", "ptx")
    assert prompts.match_finding("the heart is fine") is None


@pytest.mark.parametrize(("text", "plain", "stripped"), [
    ("pneumothorax", "no pneumothorax", "no pneumothorax"),
    ("Large right pneumothorax", "no large right pneumothorax", "no pneumothorax"),
    ("There is a small left pleural effusion.", "no small left pleural effusion", "no pleural effusion"),
    ("No pleural effusion", "pleural effusion", "pleural effusion"),
    ("ET tube", "no ET tube", "no ET tube"),
])
def test_negation_rule(text, plain, stripped):
    assert prompts.negative_prompt(text) == plain
    assert prompts.negative_prompt(text, strip_modifiers=True) == stripped


def test_negating_nothing_raises():
    with pytest.raises(ValueError, match="empty"):
        prompts.negative_prompt(" . ")


def test_rsna_and_binary_pairs():
    assert prompts.RSNA_PNEUMONIA_PROMPTS == ("No evidence of pneumonia", "Findings suggesting pneumonia")
    assert prompts.binary_prompts("Pleural Effusion") == ("no pleural effusion", "pleural effusion")


def test_zero_shot_ensemble_is_class_prompts_against_the_binary_negative():
    positives, negatives = prompts.zero_shot_prompts("Pneumothorax", max_prompts=4)
    assert positives == prompts.class_prompts("Pneumothorax", max_prompts=4)
    assert negatives == ["no pneumothorax"]
    assert prompts.zero_shot_prompts("No Finding")[1] == ["acute cardiopulmonary abnormality"]


def test_size_findings_are_scored_against_a_normal_size_too():
    """The entry's `negatives` replace "no <term>" in the ensemble; the heatmap pair keeps it."""
    assert prompts.zero_shot_prompts("Cardiomegaly")[1] == ["no cardiomegaly", "normal heart size"]
    assert prompts.zero_shot_prompts("Enlarged Cardiomediastinum")[1] == [
        "no enlarged cardiomediastinum", "normal mediastinal contours"]
    assert prompts.binary_prompts("Cardiomegaly") == ("no cardiomegaly", "cardiomegaly")


def test_a_bad_negatives_list_names_the_file_and_key(monkeypatch):
    monkeypatch.setattr(prompts, "_load_json", lambda relative: {"Cardiomegaly": {
        "term": "cardiomegaly", "severity": [""], "subtype": ["cardiomegaly"], "location": [""],
        "negatives": []}})
    prompts._class_prompt_spec.cache_clear()
    try:
        with pytest.raises(ValueError, match="'negatives'"):
            prompts.zero_shot_prompts("Cardiomegaly")
    finally:
        monkeypatch.undo()
        prompts._class_prompt_spec.cache_clear()


def test_chestxray14_labels_have_sentences(repo_root):
    spec = json.loads((repo_root / "assets/prompts/label_sentences.json").read_text())
    for label in prompts.CHESTXRAY14_EXTRA:
        for value, polarity in ((1, "positive"), (0, "negative"), (-1, "uncertain")):
            (sentence,) = prompts.label_sentences({label: value}, 1)
            assert sentence in spec[label][polarity]
    (sentence,) = prompts.label_sentences({"Effusion": 1}, 1)  # ChestX-ray14 spelling
    assert sentence in spec["Pleural Effusion"]["positive"]


def test_labels_to_report_uses_the_right_polarity(repo_root):
    spec = json.loads((repo_root / "assets/prompts/label_sentences.json").read_text())
    labels = {"Cardiomegaly": 1, "Effusion": 0, "Pneumothorax": -1,
              "Edema": float("nan"), "Fracture": None}
    for seed in range(5):
        sentences = prompts.label_sentences(labels, seed)
        assert len(sentences) == 3
        assert sum(s in spec["Cardiomegaly"]["positive"] for s in sentences) == 1
        assert sum(s in spec["Pleural Effusion"]["negative"] for s in sentences) == 1
        assert sum(s in spec["Pneumothorax"]["uncertain"] for s in sentences) == 1
        report = prompts.labels_to_report(labels, seed)
        assert all(s in report for s in sentences)
        assert not any(s in report for s in spec["Edema"]["positive"] + spec["Edema"]["negative"])
    assert prompts.labels_to_report({"Edema": None}, 0) == ""


def test_label_sentences_are_deterministic_and_shuffled():
    labels = {name: 1 for name in prompts.CHEXPERT_14}
    assert prompts.label_sentences(labels, 7) == prompts.label_sentences(labels, random.Random(7))
    orders = {tuple(prompts.label_sentences(labels, seed)) for seed in range(4)}
    assert len(orders) > 1
    numpy_out = prompts.label_sentences(labels, np.random.default_rng(0))
    assert len(numpy_out) == 14 and all(isinstance(s, str) for s in numpy_out)


def test_bad_label_value_raises():
    with pytest.raises(ValueError, match="0.5"):
        prompts.label_sentences({"Edema": 0.5}, 0)


def test_asset_path_errors_are_helpful(monkeypatch, tmp_path):
    assert asset_path("prompts/class_prompts.json").is_file()
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=ASSETS_ENV):
        asset_path("prompts/missing.json")
    with pytest.raises(ValueError, match="relative"):
        asset_path("../secrets.json")


def test_env_override_wins(monkeypatch, tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "class_prompts.json").write_text("{}")
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path))
    assert asset_path("prompts/class_prompts.json") == tmp_path / "prompts" / "class_prompts.json"


def test_abbreviations_are_spelled_out_as_whole_words_in_any_case():
    assert prompts.spelled_out("Small apical PTX.") == "Small apical pneumothorax."
    assert prompts.spelled_out("ETT tip 4 cm above the carina; no ptx") == \
        "endotracheal tube tip 4 cm above the carina; no pneumothorax"
    assert prompts.spelled_out("rib fxs, RLL opacity") == "rib fractures, right lower lobe opacity"
    assert prompts.spelled_out("ptxs and ettx stay") == "ptxs and ettx stay"  # whole words only
    assert prompts.spelled_out("PTX with CHF", only={"chf"}) == "PTX with congestive heart failure"


def test_a_bad_abbreviation_file_names_the_entry(tmp_path, monkeypatch):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "abbreviations.json").write_text(json.dumps({"PTX": "pneumothorax"}))
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path))
    prompts._abbreviations.cache_clear()
    try:
        with pytest.raises(ValueError, match="'PTX' needs a lower-case key"):
            prompts.spelled_out("PTX")
    finally:
        prompts._abbreviations.cache_clear()
