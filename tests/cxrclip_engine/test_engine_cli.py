"""`cxrclip score` and `cxrclip bank build` driven through cxrclip.cli.main."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cxrclip.cli import main
from cxrclip.engine_cli import format_table
from cxrclip.sentence_bank import SentenceBank

VIEW_KEYS = {"view_id", "label", "similarity", "probability", "negative_similarity"}


def _score_json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_score_png_json(tmp_path, tiny_model_dir, capsys) -> None:
    path = tmp_path / "cxr.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90), dtype=np.uint8)).save(path)
    out = _score_json(capsys, ["score", str(path), "--prompt", "pleural effusion", "--prompt", "edema",
                               "--model", str(tiny_model_dir), "--json", "--device", "cpu"])
    assert {"model_id", "study_id", "aggregate", "logit_scale", "prompts", "files", "skipped"} <= set(out)
    assert [p["prompt"] for p in out["prompts"]] == ["pleural effusion", "edema"]
    assert out["prompts"][0]["negative"] == "no pleural effusion"
    (view,) = out["prompts"][0]["views"]
    assert set(view) == VIEW_KEYS and view["view_id"] == f"file:{path.resolve()}"
    assert 0.0 < out["prompts"][0]["probability"] < 1.0
    table = format_table(out)
    assert "prompt: 'edema'" in table and "STUDY" in table and "cxr.png" in table


def test_score_dicom_folder_with_negative_and_max(tmp_path, tiny_model_dir, pydicom_data_dir, capsys) -> None:
    for name in ("RG3_UNCI.dcm", "JPEG2000_UNC.dcm"):
        shutil.copy(pydicom_data_dir / name, tmp_path / name)
    out = _score_json(capsys, ["score", str(tmp_path), "--prompt", "cardiomegaly", "--negative", "normal heart size",
                               "--aggregate", "max", "--model", str(tiny_model_dir), "--json", "--device", "cpu"])
    prompt = out["prompts"][0]
    assert prompt["negative"] == "normal heart size" and out["aggregate"] == "max"
    assert len(prompt["views"]) == 2 and prompt["views"][1]["label"] == "AP"
    assert prompt["probability"] == pytest.approx(max(v["probability"] for v in prompt["views"]))


def test_score_errors_are_one_line(tmp_path, tiny_model_dir, capsys) -> None:
    assert main(["score", str(tmp_path / "none.png"), "--prompt", "x", "--model", str(tiny_model_dir)]) == 1
    assert "none.png does not exist" in capsys.readouterr().err
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    assert main(["score", str(path), "--prompt", "x", "--model", str(tmp_path / "nomodel")]) == 1
    assert "model directory" in capsys.readouterr().err


def test_score_several_paths_keeps_going_past_an_unreadable_one(tmp_path, tiny_model_dir, pydicom_data_dir,
                                                                capsys) -> None:
    good = tmp_path / "a.png"
    Image.fromarray(np.full((32, 32), 90, np.uint8)).save(good)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not a dicom file")
    raw = pydicom_data_dir / "OT-PAL-8-face.dcm"  # real DICOM without preamble: read, not refused
    argv = ["score", str(good), str(broken), str(raw), "--findings", "--json", "--model", str(tiny_model_dir),
            "--device", "cpu"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    first, failed, third = json.loads(captured.out)
    assert failed == {"path": str(broken), "error": failed["error"]} and "broken.dcm: not a readable DICOM" in failed["error"]
    assert first["path"] == str(good) and third["path"] == str(raw)
    assert first["findings"] and third["findings"] and len(third["files"]) == 1
    assert captured.err.strip().splitlines() == [f"cxrclip score: error: {failed['error']}"]
    # Only unreadable paths: no model is loaded (the model folder does not even exist), exit status 1.
    assert main(["score", str(broken), str(broken), "--prompt", "x", "--model", str(tmp_path / "nomodel")]) == 1
    assert capsys.readouterr().err.count("broken.dcm: not a readable DICOM") == 2


def _write_source(tmp_path, kind: str):
    """The same two reports as CSV, TXT or an OpenI XML folder."""
    if kind == "csv":
        source = tmp_path / "reports.csv"
        source.write_text('id,findings\n1,"Lungs are clear. No effusion."\n2,"no effusion. Mild edema."\n')
    elif kind == "txt":
        source = tmp_path / "reports.txt"
        source.write_text("Lungs are clear. No effusion.\nno effusion. Mild edema.\n")
    else:
        source = tmp_path / "xml"
        source.mkdir()
        (source / "1.xml").write_text('<r><AbstractText Label="FINDINGS">Lungs are clear. No effusion.</AbstractText>'
                                      '<AbstractText Label="IMPRESSION">no effusion. Mild edema.</AbstractText></r>')
    return source


def test_bank_build_cli_from_csv(tmp_path, tiny_model_dir, capsys) -> None:
    out_dir = tmp_path / "bank"
    assert main(["bank", "build", str(_write_source(tmp_path, "csv")), "-o", str(out_dir), "--model",
                 str(tiny_model_dir), "--no-progress", "--device", "cpu", "--batch-size", "2"]) == 0
    assert "3 sentences from 2 texts" in capsys.readouterr().out
    from cxrclip.checkpoint import read_config

    bank = SentenceBank.load(out_dir, expected_model_id=read_config(tiny_model_dir)["model_id"])
    assert bank.sentences == ["No effusion.", "Lungs are clear.", "Mild edema."]
    assert bank.counts.tolist() == [2, 1, 1] and bank.dim == 32


@pytest.mark.parametrize("kind", ["txt", "xml"])
def test_bank_build_from_txt_and_xml(tmp_path, engine, kind: str) -> None:
    from cxrclip.sentences import collect_sentences, read_report_source

    sentences = collect_sentences(read_report_source(_write_source(tmp_path, kind)))
    bank = SentenceBank.build(sentences, engine.embed_texts, engine.model_id, batch_size=2, progress=False)
    assert bank.sentences == ["No effusion.", "Lungs are clear.", "Mild edema."]
    assert bank.counts.tolist() == [2, 1, 1]
    np.testing.assert_allclose(bank.embeddings, engine.encode_text(bank.sentences), atol=1e-5)


def test_bank_nearest_finds_sentence_from_its_own_text_embedding(tmp_path, engine) -> None:
    source = tmp_path / "s.txt"
    source.write_text("Small left pleural effusion.\nLarge right pneumothorax.\nNormal heart size.\n")
    from cxrclip.sentences import collect_sentences, read_report_source

    bank = SentenceBank.build(collect_sentences(read_report_source(source)), engine.embed_texts,
                              engine.model_id, progress=False)
    query = engine.encode_text("Large right pneumothorax.")[0]
    best = bank.nearest(query, k=1)[0]
    assert best.sentence == "Large right pneumothorax." and best.similarity == pytest.approx(1.0, abs=1e-5)


def test_default_sentence_bank_source(repo_root) -> None:
    from cxrclip.prompts import CHEXPERT_14  # noqa: F401  (the source covers all 14 classes)
    from cxrclip.sentences import collect_sentences, read_report_source

    sentences = collect_sentences(read_report_source(repo_root / "assets/sentence_bank/sentences.txt"))
    texts = " ".join(s.text.lower() for s in sentences)
    assert len(sentences) >= 300 and all(s.count == 1 for s in sentences)
    for word in ("cardiomegaly", "effusion", "pneumothorax", "atelectasis", "edema", "consolidation",
                 "pneumonia", "nodule", "fracture", "pleural thickening", "mediastinum", "opacity",
                 "endotracheal tube", "no acute cardiopulmonary", "left", "right", "compared to the prior"):
        assert word in texts, word
