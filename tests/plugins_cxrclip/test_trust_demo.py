"""One recipe, calibration, OOD guard and the `cxrclip score` contract with the bundled demo model.

The engine, the evaluation runner and the plugin's service must give the same numbers for
the same study; the demo model ships calibrated with an OOD guard, which flags real and
non-chest radiographs and blank images. Skipped where the bundled model is absent.
(Zero-shot uses 3 class prompts per finding here, see conftest; all three paths alike.)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxrclip.cli import main
from cxrclip.engine import Engine, StudyInput, ViewInput
from cxrclip.image_io import read_study

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "assets" / "models" / "cxrclip-demo"
SAMPLES = REPO / "assets" / "sample_studies"
CARDIO = SAMPLES / "02_cardiomegaly_bilateral_effusions"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (DEMO / "calibration.json").is_file(),
                                 reason="calibrated demo model assets/models/cxrclip-demo is not present")]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(DEMO, device="cpu")


def _runner_probabilities(tmp_path: Path, views: list[np.ndarray], findings: list[str],
                          scoring: str = "frontal") -> dict[str, float]:
    """The evaluation runner's scoring of a study (first view PA, the rest lateral) written as a
    manifest, from its frontal view or (``scoring="study"``) from all its views."""
    from PIL import Image

    from training.data.manifest import ManifestHeader, StudyRecord, read_manifest, write_manifest
    from training.evaluation.embedding import study_embeddings
    from training.evaluation.runner import binary_classifier, load_engine

    (tmp_path / "images" / "s1").mkdir(parents=True)
    names = [f"s1/view{i}.png" for i in range(len(views))]
    for name, pixels in zip(names, views):
        Image.fromarray(pixels).save(tmp_path / "images" / name)
    positions = ["PA"] + ["LL"] * (len(views) - 1)
    record = StudyRecord("s1", names, positions, "Cardiomegaly.", None, {"Cardiomegaly": 1}, "test", "t")
    write_manifest(tmp_path, ManifestHeader("t", int(max(views[0].shape))), [record])
    runner_engine = load_engine(str(DEMO), "cpu")
    split = study_embeddings(runner_engine, [read_manifest(tmp_path)], "test", scoring)
    classifier = binary_classifier(runner_engine, findings, "ensemble", rsna=False)
    probs = classifier.probabilities(split.embeddings)[0]
    return {name: float(probs[classifier.names.index(name)]) for name in findings}


def test_engine_runner_and_plugin_give_the_same_findings(engine, tmp_path, helpers) -> None:
    from cxrclip.prompts import CHEXPERT_14
    from plugins.cxrclip_findings.service import FindingsService

    folder = read_study(CARDIO)
    frontal = next(im for im in folder.images if im.label.upper().startswith("PA"))
    by_engine = {f.finding: f for f in engine.zero_shot(StudyInput("s", [ViewInput("pa", frontal.pixels)]))}
    by_runner = _runner_probabilities(tmp_path / "m", [frontal.pixels], list(CHEXPERT_14))

    FindingsService.load(DEMO, device="cpu").warm_up()  # prompt embeddings saved to the disk cache
    service = FindingsService.load(DEMO, device="cpu")  # ... and read back from it, as the app does
    assert len(service.engine.store) > 0
    handle = helpers.study_handle(CARDIO)
    pa = [v for v in handle.views if v.meta.view_position == "PA"]
    by_plugin = {f.finding: f for f in service.zero_shot(service.prepare("s", pa))}
    both = {f.finding: f for f in service.zero_shot(service.prepare("s", handle.views))}
    views = [ViewInput(v.view_id, handle_pixels, v.meta.display_label)
             for v, handle_pixels in ((v, v.display_uint8()) for v in handle.views)]
    engine_both = {f.finding: f for f in engine.zero_shot(StudyInput("s2", views))}
    # `cxrclip eval --views study` scores a two-view study as the viewer does (mean view embedding).
    runner_both = _runner_probabilities(tmp_path / "m2", [v.pixels for v in views], list(CHEXPERT_14), "study")
    assert len(views) == 2

    assert set(by_engine) == set(by_plugin) == set(by_runner) == set(CHEXPERT_14)
    for name in CHEXPERT_14:
        assert by_engine[name].calibrated and by_plugin[name].calibrated
        assert by_engine[name].probability == pytest.approx(by_runner[name], abs=1e-6)
        assert by_plugin[name].probability == pytest.approx(by_engine[name].probability, abs=1e-6)
        assert both[name].probability == pytest.approx(engine_both[name].probability, abs=1e-6)
        assert runner_both[name] == pytest.approx(engine_both[name].probability, abs=1e-6)
    no_finding = by_engine["No Finding"]
    assert 0.0 <= no_finding.probability <= 1.0 and no_finding.positive is (
        no_finding.probability >= no_finding.operating_point)


def _external_images(pydicom_data_dir: Path) -> dict[str, np.ndarray]:
    from pydicom.data import get_testdata_file

    images = {name: read_study(pydicom_data_dir / f"{name}.dcm").images[0].pixels
              for name in ("RG1_UNCR", "RG3_UNCR", "MR2_UNCR")}
    images["CT_small"] = read_study(Path(get_testdata_file("CT_small.dcm"))).images[0].pixels
    for value in (0, 128, 255):
        images[f"blank{value}"] = np.full((256, 256), value, np.uint8)
    return images


def test_real_non_chest_and_blank_images_are_flagged(engine, pydicom_data_dir) -> None:
    images = _external_images(pydicom_data_dir)
    verdicts = engine.out_of_distribution([ViewInput(k, v) for k, v in images.items()])
    assert {v.view_id: v.flag for v in verdicts} == dict.fromkeys(images, True)
    assert all(v.score > v.threshold for v in verdicts)
    findings = engine.zero_shot(StudyInput("cr", [ViewInput("RG1_UNCR", images["RG1_UNCR"])]))
    assert all(f.out_of_distribution for f in findings)


def test_bundled_phantom_samples_are_in_distribution(engine) -> None:
    for folder in (p for p in sorted(SAMPLES.iterdir()) if p.is_dir()):
        views = [ViewInput(im.view_id, im.pixels) for im in read_study(folder).images]
        assert not any(v.flag for v in engine.out_of_distribution(views)), folder.name


def test_prompt_hint_for_gibberish_not_for_report_wording(engine) -> None:
    pixels = read_study(CARDIO).images[0].pixels
    result = engine.score(StudyInput("s", [ViewInput("pa", pixels)]), ["asdfgh", "right pleural effusion"])
    gibberish, effusion = result.prompts
    assert gibberish.unfamiliar and gibberish.unknown_words == ("asdfgh",)
    assert not effusion.unfamiliar and effusion.unknown_words == ()
    assert gibberish.suggestion is None and effusion.suggestion is None


def test_an_unread_abbreviation_is_spelled_out_as_a_suggestion(engine) -> None:
    pixels = read_study(CARDIO).images[0].pixels
    (ptx,) = engine.score(StudyInput("s", [ViewInput("pa", pixels)]), ["small apical PTX"]).prompts
    assert ptx.unfamiliar and ptx.unknown_words == ("ptx",)
    assert ptx.suggestion == "small apical pneumothorax"
    assert ptx.prompt == "small apical PTX"  # scored as typed, not rewritten


def test_score_cli_contract_for_several_studies(capsys) -> None:
    paths = [str(SAMPLES / "01_normal"), str(SAMPLES / "03_right_pneumothorax")]
    assert main(["score", *paths, "--model", str(DEMO), "--findings", "--json", "--device", "cpu"]) == 0
    studies = json.loads(capsys.readouterr().out)
    assert isinstance(studies, list) and [s["path"] for s in studies] == paths
    for study in studies:
        assert study["calibrated"] is True and len(study["findings"]) == 14
        for f in study["findings"]:
            assert {"finding", "probability", "positive", "calibrated", "operating_point"} <= set(f)
            assert f["calibrated"] is True and f["positive"] is (f["probability"] >= f["operating_point"])
        assert len(study["files"]) == 2
        for file in study["files"]:
            ood = file["out_of_distribution"]
            assert set(ood) == {"flag", "score", "threshold"} and ood["flag"] is False
            assert isinstance(ood["score"], float) and ood["score"] < ood["threshold"]
    top = {s["path"]: max(s["findings"], key=lambda f: f["probability"])["finding"] for s in studies}
    assert top[paths[1]] == "Pneumothorax"


def test_score_cli_single_path_is_an_object_and_nothing_to_score_is_an_error(capsys) -> None:
    path = str(SAMPLES / "01_normal")
    assert main(["score", path, "--model", str(DEMO), "--findings", "--json", "--device", "cpu"]) == 0
    study = json.loads(capsys.readouterr().out)
    assert isinstance(study, dict) and study["study_id"] and "findings" in study
    assert main(["score", path, "--model", str(DEMO)]) == 2
    assert "give --prompt TEXT" in capsys.readouterr().err


def test_bundled_calibration_has_no_cliff() -> None:
    """A raw-logit change of 0.01 (float noise of another runtime or CPU is ~1e-6) moves no
    calibrated probability by more than 0.02: plain isotonic interpolation had moved Lung
    Opacity by 0.23 for 0.007."""
    from cxrclip.calibration import Calibration

    calibration = Calibration.load(DEMO)
    raw = np.linspace(-10.0, 10.0, 20001)
    for finding, fitted in calibration.findings.items():
        steps = np.abs(np.diff(fitted.probability(raw)))  # grid step 0.001
        worst = np.convolve(steps, np.ones(10), "valid").max()  # over any 0.01
        assert worst <= 0.02, f"{finding} ({fitted.method}): {worst:.3f}"
