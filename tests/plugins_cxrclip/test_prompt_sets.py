"""Prompt sets (JSON round trip, validation) and prompt history."""
from __future__ import annotations

import json

import pytest

from plugins.cxrclip_findings.prompt_sets import (
    Prompt, PromptHistory, PromptSet, PromptSetError, bundled_prompt_sets, load_prompt_set,
    save_prompt_set)


def test_round_trip(tmp_path):
    ps = PromptSet("Mine", (Prompt("small left pleural effusion"),
                            Prompt("large right pneumothorax", "no pneumothorax")))
    path = save_prompt_set(ps, tmp_path / "sub" / "mine.json")
    assert load_prompt_set(path) == ps
    data = json.loads(path.read_text())
    assert data["format"] == "cxrclip-prompt-set" and data["prompts"][1]["negative"] == "no pneumothorax"


@pytest.mark.parametrize("payload, message", [
    ({"format": "other"}, "not a prompt set"),
    ({"format": "cxrclip-prompt-set", "version": 9, "prompts": []}, "unsupported prompt set version 9"),
    ({"format": "cxrclip-prompt-set", "version": 1, "prompts": [{"text": " "}]}, "prompt #1"),
    ({"format": "cxrclip-prompt-set", "version": 1, "prompts": [{"text": "a", "negative": 3}]},
     "invalid \"negative\""),
])
def test_bad_files_name_the_problem(tmp_path, payload, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(PromptSetError, match=message):
        load_prompt_set(path)


def test_unreadable_and_missing(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(PromptSetError, match="cannot read"):
        load_prompt_set(tmp_path / "broken.json")
    with pytest.raises(PromptSetError, match="no such"):
        load_prompt_set(tmp_path / "missing.json")


def test_plain_strings_accepted_and_name_defaults_to_stem(tmp_path):
    path = tmp_path / "quick.json"
    path.write_text(json.dumps({"format": "cxrclip-prompt-set", "version": 1,
                                "prompts": ["edema"]}))
    assert load_prompt_set(path) == PromptSet("quick", (Prompt("edema"),))


def test_bundled_sets_load():
    sets = bundled_prompt_sets()
    assert len(sets) >= 3
    assert all(s.prompts for s in sets)


def test_history_most_recent_first_dedup_and_limit():
    hist = PromptHistory(limit=3)
    for text in ["edema", "large  right pneumothorax", "Edema", "  ", "nodule", "mass"]:
        hist.add(text)
    assert hist.items() == ("mass", "nodule", "Edema")
    assert PromptHistory(5, ["a", "b"]).items() == ("a", "b")
