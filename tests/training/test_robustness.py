"""The held-out robustness prompts: well-formed, and never in the generator's report templates."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cxrclip.prompts import CHEXPERT_14
from training.evaluation.robustness import PROMPTS_FILE, load_prompts

ROOT = Path(__file__).resolve().parents[2]


def _all_prompts() -> list[str]:
    return [p for entry in load_prompts().values() for p in entry["positive"] + entry["negative"]]


def test_every_abnormal_finding_has_radiologist_wording() -> None:
    prompts = load_prompts()
    assert set(prompts) == set(CHEXPERT_14) - {"No Finding"}
    words = " ".join(_all_prompts())
    for term in ("PTX", "CHF", "blunted costophrenic angle", "cardiac silhouette enlarged"):
        assert term in words


@pytest.mark.parametrize("source", ["training/phantoms/report.py", "assets/prompts/class_prompts.json"])
def test_no_prompt_appears_verbatim_in_templates_or_class_prompts(source: str) -> None:
    text = " ".join((ROOT / source).read_text(encoding="utf-8").lower().split())
    found = [p for p in _all_prompts() if re.search(r"\b" + re.escape(p.lower()) + r"\b", text)]
    assert found == []


def test_a_bad_prompt_file_names_the_finding(tmp_path: Path) -> None:
    bad = tmp_path / "prompts.json"
    bad.write_text(json.dumps({"findings": {"Edema": {"positive": ["CHF"], "negative": []}}}))
    with pytest.raises(ValueError, match="'Edema' needs non-empty"):
        load_prompts(bad)
    assert PROMPTS_FILE.is_file()
