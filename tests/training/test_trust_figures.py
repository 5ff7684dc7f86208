"""`python -m training.evaluation.trust_figures` end to end on a tiny calibrated random model.

The model (2-layer CNN at 32 px + 1-layer random BERT) is calibrated with `cxrclip calibrate`
on a few phantoms so that every part of the report runs on real results: calibrated and
uncalibrated findings, the OOD guard, the sentence bank. Figures of a random model are
meaningless; the test checks the keys, the ranges and the written files.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import tiny_encoder

from training.evaluation import ood_examples, trust_figures
from training.phantoms.dataset import GenerateOptions, generate_dataset
from training.phantoms.findings import Finding

SIZE = 64
POINTING_KINDS = {"similarity", "raw_contribution", "contribution"}


@pytest.fixture(scope="module", autouse=True)
def _few_class_prompts():
    """3 class prompts per finding instead of ~100 (speed; the recipe is the same)."""
    import cxrclip.prompts as prompt_lib

    original = prompt_lib.class_prompts
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prompt_lib, "class_prompts",
                      lambda finding, max_prompts=None, seed=0: original(finding, 3, seed))
        yield


def _phantoms(out: Path, seed: int, studies: int, split: str, forced: dict | None = None) -> Path:
    generate_dataset(GenerateOptions(out=out, seed=seed, size=SIZE, dicom=False, split=split),
                     studies=studies, forced=forced)
    return out


def _build_bank(model_dir: Path, out: Path) -> Path:
    from cxrclip.engine import Engine
    from cxrclip.sentence_bank import SentenceBank
    from cxrclip.sentences import SentenceCount

    engine = Engine.load(model_dir, device="cpu")
    texts = ["No pleural effusion.", "Small right pleural effusion.", "The heart is enlarged.",
             "Heart size is normal.", "No pneumothorax.", "The lungs are clear."]
    bank = SentenceBank.build([SentenceCount(t, 1) for t in texts], engine.embed_texts,
                              engine.model_id, progress=False)
    bank.save(out)
    return out


@pytest.fixture(scope="module")
def calibrated_model(_few_class_prompts, tmp_path_factory, tiny_text_dir) -> tuple[Path, Path]:
    """A calibrated tiny model with an OOD guard, and a sentence bank built with it."""
    from training.evaluation.calibrate import CalibrateRequest, run_calibrate

    root = tmp_path_factory.mktemp("trust")
    model = tiny_encoder.save_tiny_model(root / "model", tiny_text_dir, "tiny-trust-test")
    heart = [Finding("Cardiomegaly", severity="severe")]
    val = _phantoms(root / "val", 31, 20, "validate", {i: heart if i % 2 else [] for i in range(20)})
    ood = _phantoms(root / "ood", 32, 6, "validate")
    run_calibrate(CalibrateRequest(str(model), [str(val)], "validate", [str(ood)],
                                   blank_as_negative=True, device="cpu"))
    return model, _build_bank(model, root / "bank")


def _run(model: Path, bank: Path, out: Path, *extra: str) -> int:
    return trust_figures.main(["--model", str(model), "--out", str(out), "--studies", "6",
                               "--size", str(SIZE), "--occlusion-cases", "2", "--bank", str(bank),
                               "--large-studies", "2", "--large-size", str(2 * SIZE), *extra])


def _unit(value: float) -> bool:
    return 0.0 <= value <= 1.0


def test_trust_figures_json_markdown_and_card(calibrated_model, tmp_path: Path) -> None:
    from cxrclip.manifest import check_manifest

    model, bank = calibrated_model
    out = tmp_path / "run"
    assert _run(model, bank, out, "--card") == 0
    figures = json.loads((out / "trust_figures.json").read_text())
    assert set(figures) == {"model", "seeds", "studies_per_seed", "phantom_size", "binary",
                            "robustness", "ood_examples", "large_phantoms_ood", "pointing", "sentences"}
    large = figures["large_phantoms_ood"]
    assert (large["size"], large["studies"], large["n_views"]) == (2 * SIZE, 2, 4) and _unit(large["false_ood_rate"])
    assert figures["phantom_size"] == SIZE
    seeds = [str(s) for s in trust_figures.SEEDS]
    assert list(figures["binary"]) == seeds and figures["studies_per_seed"] == 6

    heart = figures["binary"][seeds[0]]["binary"]["Cardiomegaly"]
    assert _unit(heart["auroc"]) and _unit(heart["ece_raw"]) and _unit(heart["ece"])
    assert _unit(heart["sensitivity"]) and _unit(heart["specificity"])
    ood = figures["binary"][seeds[0]]["ood"]
    assert ood["n_views"] == 12 and _unit(ood["false_ood_rate"])

    for seed in seeds:
        summary = trust_figures.seed_summary(figures, seed)
        assert _unit(summary["macro_auroc_13"]) and _unit(summary["robustness_macro_auroc"])
        lo, hi = summary["macro_auroc_13_ci95"]
        assert 0.0 <= lo <= hi <= 1.0  # 6 studies: the percentile interval need not hold the point
        assert _unit(summary["macro_auroc_13_frontal"])  # the paper's frontal-view scoring beside the viewer's
        assert _unit(summary["sentences_nearest"]) and _unit(summary["sentences_agreeing"])
        assert summary["mean_ece_calibrated"] is not None   # Cardiomegaly is calibrated
        assert summary["ood_views"] == 12 and _unit(summary["false_ood_rate"])

    examples = figures["ood_examples"]
    blanks = [r for r in examples["rows"] if r["image"].startswith("blank")]
    assert len(blanks) == 3 and examples["judged"] >= 3
    assert all(isinstance(r["flag"], bool) and math.isfinite(r["score"])
               and r["threshold"] == pytest.approx(examples["threshold"], abs=1e-3) for r in blanks)

    all_cases = figures["pointing"]["all_cases"]
    assert set(all_cases["kinds"]) == POINTING_KINDS and all_cases["findings"]["all"]["n"] >= 1
    assert figures["pointing"]["occlusion_subset"]["findings"]["all"]["n"] <= 2
    assert all(_unit(v) for k, v in all_cases["findings"]["all"].items() if k != "n")

    text = (out / "trust_figures.md").read_text()
    assert "| finding | AUROC seed 8 | AUROC seed 9 |" in text and "| Cardiomegaly |" in text
    assert "| blank black 512x512 | blank image |" in text and "Pointing game" in text
    assert "macro AUROC over 13 findings" in text and "nan" not in text.lower()
    assert "(95 % interval " in text and "bootstrap resamples of the studies" in text
    assert "frontal view alone, the paper's evaluation: " in text and "scored from both its views" in text
    assert figures["binary"][seeds[0]]["views"] == "study" and figures["robustness"][seeds[0]]["views"] == "study"
    assert f"phantoms drawn at {2 * SIZE} px and shrunk to the model's input" in text

    card = (model / "MODEL_CARD.md").read_text()
    assert card.count(trust_figures.CARD_START) == 1 and "## Trust figures" in card
    assert "make trust-figures" in card and "## Calibration and operating points" in card
    extra = json.loads((model / "model_card.json").read_text())["extra"]
    assert set(extra["trust_figures"]["per_seed"]) == set(seeds) and "operating_points" in extra
    assert check_manifest(model) is None

    trust_figures.write_card(model, figures, text)        # a re-run replaces the section
    assert (model / "MODEL_CARD.md").read_text().count("## Trust figures") == 1


def test_without_pydicom_data_the_real_images_are_skipped_with_the_reason(
        calibrated_model, monkeypatch) -> None:
    from cxrclip.engine import Engine

    monkeypatch.setattr(ood_examples, "find_test_file", lambda name: None)
    result = ood_examples.ood_examples(Engine.load(calibrated_model[0], device="cpu"))
    skipped = [r for r in result["rows"] if "skipped" in r]
    assert {r["image"] for r in skipped} == {e.name for e in ood_examples.DICOM_EXAMPLES}
    assert all("pip install pydicom" in r["skipped"] for r in skipped)
    assert result["judged"] == 3   # the blank images are still judged
    assert any("skipped: RG1_UNCR.dcm not found" in line for line in ood_examples.markdown_rows(result))


def test_a_model_without_a_sentence_bank_is_a_clear_error(calibrated_model, tmp_path, capsys) -> None:
    model, _ = calibrated_model
    empty = tmp_path / "no-bank"
    empty.mkdir()
    assert _run(model, empty, tmp_path / "run") == 1
    assert "no sentence bank for model" in capsys.readouterr().out


def test_held_out_phantoms_are_drawn_at_the_models_input_size() -> None:
    """A 224 px model is measured on 224 px phantoms, not on 160 px ones upsampled into it."""
    assert trust_figures.phantom_size(224) == 224
    assert trust_figures.phantom_size(128) == trust_figures.IMAGE_SIZE


def test_pointing_without_occlusion_cases_has_no_subset(calibrated_model) -> None:
    from cxrclip.engine import Engine

    model, _ = calibrated_model
    folder = _phantoms(model.parent / "pointing_only", 33, 6, "test")
    point = trust_figures.pointing_figures(Engine.load(model, device="cpu"), [folder], 0)
    assert point["occlusion_subset"] is None and point["all_cases"]["findings"]["all"]["n"] >= 1
    lines = trust_figures._pointing_lines(point)
    assert "Occlusion" not in "\n".join(lines) and lines[-1].startswith("ms per map")


def test_real_variants_crop_mirror_and_remap_the_radiograph() -> None:
    pixels = np.tile(np.arange(200, dtype=np.uint8), (100, 1))          # 100 x 200, a left-to-right ramp
    variants = dict(ood_examples.real_variants(pixels))
    assert list(variants) == ["centre crop 90 %", "centre crop 80 %", "centre crop 70 %", "mirrored",
                              "gamma 0.7", "gamma 1.4", "CLAHE", "top 85 %"]
    assert variants["centre crop 80 %"].shape == (80, 160) and variants["centre crop 80 %"][0, 0] == 20
    assert variants["mirrored"][0, 0] == 199 and variants["mirrored"][0, 199] == 0
    assert variants["gamma 1.4"][0, 128] == round(255 * (128 / 255) ** 1.4)   # 97: darker mid-tones
    assert variants["gamma 0.7"][0, 128] == round(255 * (128 / 255) ** 0.7)   # 158: brighter
    assert variants["gamma 1.4"][0, 0] == 0 and variants["top 85 %"].shape == (85, 200)
    assert variants["CLAHE"].shape == pixels.shape and variants["CLAHE"].dtype == np.uint8


def test_the_real_chest_radiograph_is_judged_with_its_variants(calibrated_model, monkeypatch) -> None:
    from types import SimpleNamespace

    import cxrclip.image_io
    from cxrclip.engine import Engine

    chest = np.tile(np.linspace(0, 255, 256).astype(np.uint8), (256, 1))
    monkeypatch.setattr(ood_examples, "find_test_file", lambda name: name if name == "RG1_UNCR.dcm" else None)
    monkeypatch.setattr(cxrclip.image_io, "read_file", lambda path: SimpleNamespace(pixels=chest))
    result = ood_examples.ood_examples(Engine.load(calibrated_model[0], device="cpu"))
    judged = [r["image"] for r in result["rows"] if "flag" in r]
    assert judged[:2] == ["RG1_UNCR.dcm", "RG1_UNCR.dcm, centre crop 90 %"] and len(judged) == 1 + 8 + 3
    assert result["judged"] == 12
    assert any(line.startswith("| RG1_UNCR.dcm, CLAHE | real CR chest radiograph (MONOCHROME1), variant |")
               for line in ood_examples.markdown_rows(result))
