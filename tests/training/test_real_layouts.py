"""`cxrclip prepare` on official layouts built from the real label/report files, and the
data-side failure modes of training (missing images, data wait accounting).

The real files are those of the torchxrayvision 1.5.7 wheel (fixture ``txv_data_dir``):
CheXpert's train.csv, ChestX-ray14's Data_Entry_2017_v2020.csv, Open-I's 3,955 XML
reports and its DICOM header table. MIMIC-CXR is credentialed, so its layout is
written here with reports in MIMIC's heading styles.
"""
from __future__ import annotations

import argparse
import csv
import functools
import gzip
import json
import logging
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrclip.prompts import canonical_finding
from training.data.adapters import ImagesMissing, prepare_dataset
from training.data.dataset import (FRONTAL, LATERAL, DataUnavailable, EvalDataset, StudyPairDataset,
                                   TrainCollate)
from training.data.manifest import read_manifest
from training.data.text import labels_text, report_sentences, study_texts

CHEXPERT_14 = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum",
               "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other",
               "Pneumonia", "Pneumothorax", "Support Devices"]


def _png(path: Path, shape=(40, 36)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, 90, np.uint8)).save(path)


def _csv_gz(path: Path, header: list[str], rows: list[list]) -> None:
    with gzip.open(path, "wt", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


@functools.lru_cache(maxsize=2)
def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with gzip.open(path, "rt", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, list(reader)


def _sample_rows(path: Path, n: int, seed: int = 0) -> tuple[list[str], list[list[str]]]:
    """Header and ``n`` rows drawn at random (fixed seed) from a real CSV.GZ file."""
    header, rows = _read_rows(path)
    picks = np.random.default_rng(seed).choice(len(rows), size=n, replace=False)
    return header, [rows[i] for i in sorted(picks)]


# ----- MIMIC-CXR-JPG ---------------------------------------------------------------------------
MIMIC_REPORTS = {
    # the usual layout: FINDINGS then IMPRESSION, wrapped lines, a ___ de-identification
    "50414267": """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with new cough  // eval for pneumonia

 TECHNIQUE:  Chest PA and lateral

 COMPARISON:  None.

 FINDINGS:

 The lungs are clear without focal consolidation.  No pleural effusion or
 pneumothorax is seen.  The cardiomediastinal silhouette is normal.

 IMPRESSION:

 No acute cardiopulmonary process.
""",
    # one combined section
    "53189527": """                                 FINAL REPORT
 HISTORY:  Shortness of breath.

 FINDINGS AND IMPRESSION:  Moderate right pleural effusion has increased since
 the prior study.  Mild pulmonary vascular congestion.  No pneumothorax.
""",
    # a wet read before the final report, and a numbered impression
    "56699142": """ WET READ: ___ ___ 9:40 PM
  ET tube in place.  Left basilar opacity.
 ______________________________________________________________________________
                                 FINAL REPORT
 EXAMINATION:  CHEST (PORTABLE AP)

 INDICATION:  Intubated patient.

 FINDINGS:

 Endotracheal tube terminates 4 cm above the carina.  Increased opacity at the
 left base.

 IMPRESSION:

 1.  Endotracheal tube in standard position.
 2.  Increased left basilar opacity, likely atelectasis, though pneumonia is not
 excluded.
 3.  Small left pleural effusion.
""",
}
MIMIC_STUDIES = [("10000032", "50414267", ["02aa804e-bde0afdd", "174413ec-4ec4c1f7"], "train"),
                 ("10000032", "53189527", ["2a2277a9-b0ded155"], "train"),
                 ("10000764", "56699142", ["68b5c4b1-227d0485"], "test")]


def make_mimic(root: Path) -> Path:
    """MIMIC-CXR-JPG 2.0.0 layout: gzipped metadata/split/chexpert tables, files/pXX/... JPGs + reports."""
    meta, split, labels = [], [], []
    for subject, study, dicoms, which in MIMIC_STUDIES:
        for i, dicom in enumerate(dicoms):
            view = "PA" if i == 0 else "LATERAL"
            meta.append([dicom, subject, study, "CHEST (PA AND LAT)", view, 3056, 2544, 21800506,
                         213014.531, "CHEST (PA AND LAT)", "postero-anterior" if i == 0 else "lateral", "Erect"])
            split.append([dicom, study, subject, which])
            jpg = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg"
            jpg.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((60, 50), 100, np.uint8)).save(jpg)
        report = root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"
        report.write_text(MIMIC_REPORTS[study])
        row = {k: "" for k in CHEXPERT_14}
        row.update({"No Finding": "1.0"} if study == "50414267" else {"Pleural Effusion": "1.0"})
        labels.append([subject, study] + [row[k] for k in CHEXPERT_14])
    _csv_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz",
            ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition",
             "Rows", "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
             "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning"], meta)
    _csv_gz(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], split)
    _csv_gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id", *CHEXPERT_14], labels)
    return root


def test_mimic_heading_styles(tmp_path):
    root = make_mimic(tmp_path / "mimic")
    prepare_dataset("mimic", root, tmp_path / "out", size=32, workers=0, progress=False)
    records = {r.study_id: r for r in read_manifest(tmp_path / "out").records}
    assert set(records) == {"s50414267", "s53189527", "s56699142"}
    usual = records["s50414267"]
    assert usual.findings == ("The lungs are clear without focal consolidation. No pleural effusion or "
                              "pneumothorax is seen. The cardiomediastinal silhouette is normal.")
    assert usual.impression == "No acute cardiopulmonary process."
    assert usual.view_positions == ["PA", "LATERAL"] and usual.labels == {"No Finding": 1}
    combined = records["s53189527"]  # FINDINGS AND IMPRESSION → the impression (MIMIC's own parser)
    assert combined.findings is None
    assert combined.impression == ("Moderate right pleural effusion has increased since the prior study. "
                                   "Mild pulmonary vascular congestion. No pneumothorax.")
    numbered = records["s56699142"]
    assert numbered.findings.startswith("Endotracheal tube terminates 4 cm above the carina.")
    assert "WET READ" not in (numbered.findings + numbered.impression) and numbered.split == "test"
    assert report_sentences(numbered.impression) == [
        "Endotracheal tube in standard position.",
        "Increased left basilar opacity, likely atelectasis, though pneumonia is not excluded.",
        "Small left pleural effusion."]


def test_mimic_training_texts_have_no_stray_item_numbers(tmp_path):
    root = make_mimic(tmp_path / "mimic")
    prepare_dataset("mimic", root, tmp_path / "out", size=32, workers=0, progress=False, images=False)
    record = {r.study_id: r for r in read_manifest(tmp_path / "out").records}["s56699142"]
    for seed in range(20):
        for text in study_texts(record, np.random.default_rng(seed)):
            sentences = report_sentences(text)
            assert len(sentences) in (2, 3)  # findings (2) or impression (3)
            assert not re.search(r"(^|\s)\(?\d{1,2}[.)](\s|$)", text), text  # no "1." / "2)" items


# ----- Open-I ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def openi_real(txv_data_dir, tmp_path_factory) -> Path:
    """The official Open-I report folder (all 3,955 XML files) + the DICOM header table."""
    root = tmp_path_factory.mktemp("openi")
    with tarfile.open(txv_data_dir / "NLMCXR_reports.tgz") as tf:
        tf.extractall(root, filter="data")
    shutil.copy(txv_data_dir / "nlmcxr_dicom_metadata.csv.gz", root)
    return root


def test_openi_full_reports_get_views_from_the_dicom_headers(openi_real, tmp_path):
    assert len(list((openi_real / "ecgen-radiology").glob("*.xml"))) == 3955
    prepare_dataset("openi", openi_real, tmp_path / "out", workers=0, progress=False, images=False)
    records = read_manifest(tmp_path / "out").records
    assert len(records) == 3826  # reports with an image and a FINDINGS or IMPRESSION section
    first_lateral = [r for r in records if r.view_positions[0] in LATERAL]
    assert len(first_lateral) == 128
    known = sum(v is not None for r in records for v in r.view_positions)
    assert known == 4866  # images whose header has a View Position
    # evaluation takes a known frontal over a first-listed lateral
    for r in first_lateral:
        picked = r.view_positions[r.images.index(EvalDataset.pick_image(r))]
        frontal_known = any(v in FRONTAL for v in r.view_positions)
        assert picked in FRONTAL if frontal_known else True
        assert picked not in LATERAL or all(v in LATERAL for v in r.view_positions)
    study = {r.study_id: r for r in records}["CXR1043"]
    assert study.images == ["CXR1043_IM-0035-0001-0001.png", "CXR1043_IM-0035-0001-0002.png"]
    assert study.view_positions == ["LL", "PA"]
    assert EvalDataset.pick_image(study) == "CXR1043_IM-0035-0001-0002.png"


def test_openi_views_from_dicom_files_when_no_table(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    root = tmp_path / "openi"
    (root / "ecgen-radiology").mkdir(parents=True)
    (root / "ecgen-radiology" / "7.xml").write_text(
        '<eCitation><uId id="CXR7"/><AbstractText Label="FINDINGS">Lungs are clear.</AbstractText>'
        '<parentImage id="CXR7_1_IM-2254-1001"/><parentImage id="CXR7_2_IM-2254-2001"/>'
        '<parentImage id="CXR7_3_IM-2254-3001"/></eCitation>')
    headers = {"7_IM-2254-1001": ("", ["A", "F"]), "7_IM-2254-2001": ("", ["L", "F"]),
               "7_IM-2254-3001": ("", None)}
    for stem, (view, orientation) in headers.items():
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.ViewPosition = view
        if orientation:
            ds.PatientOrientation = orientation
        path = root / "NLMCXR_dcm" / "7" / f"{stem}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
    prepare_dataset("openi", root, tmp_path / "out", workers=0, progress=False, images=False)
    record, = read_manifest(tmp_path / "out").records
    assert record.view_positions == ["LATERAL", "FRONTAL", None]
    assert EvalDataset.pick_image(record) == "CXR7_2_IM-2254-2001.png"


# ----- ChestX-ray14 ----------------------------------------------------------------------------
def make_nih(root: Path, txv_data_dir: Path, n: int, present: int, seed: int = 0) -> list[str]:
    """Official ChestX-ray14 layout with ``n`` real Data_Entry rows; only ``present`` PNGs exist."""
    header, rows = _sample_rows(txv_data_dir / "Data_Entry_2017_v2020.csv.gz", n, seed)
    root.mkdir(parents=True)
    with (root / "Data_Entry_2017_v2020.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    names = [r[0] for r in rows]
    (root / "train_val_list.txt").write_text("\n".join(names[: n * 4 // 5]) + "\n")
    (root / "test_list.txt").write_text("\n".join(names[n * 4 // 5:]) + "\n")
    for name in names[:present]:
        _png(root / "images_001" / "images" / name)
    return names


def test_chestxray14_mostly_missing_images_exit_2_with_a_summary(txv_data_dir, tmp_path, capsys, caplog):
    from training.cli import main

    root = tmp_path / "nih"
    names = make_nih(root, txv_data_dir, n=2000, present=300)
    with caplog.at_level(logging.WARNING):
        code = main(["prepare", "chestxray14", "--root", str(root), "--out", str(tmp_path / "out"),
                     "--size", "32", "--workers", "0", "--limit", "2000"])
    err = capsys.readouterr().err
    assert code == 2
    assert "1700 of 2000 images could not be cached (1700 missing, 0 unreadable)" in err
    assert names[300] in err and names[1999] not in err  # the first few, not all 1,700
    assert "--no-images" in err and f"--root {root}" in err
    assert len(caplog.records) < 5  # no line per missing file
    assert not (tmp_path / "out" / "studies.jsonl").exists()
    assert len(list((tmp_path / "out" / "images").glob("*.png"))) == 300  # kept for the next run


def test_chestxray14_few_missing_images_summarised_and_left_out(txv_data_dir, tmp_path, caplog):
    root = tmp_path / "nih"
    names = make_nih(root, txv_data_dir, n=40, present=36)
    with caplog.at_level(logging.WARNING):
        summary = prepare_dataset("chestxray14", root, tmp_path / "out", size=32, workers=0, progress=False)
    assert summary.images_failed == 4 and summary.studies == 36
    assert summary.failed_examples == [Path(n).stem for n in names[36:]]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "4 of 40 images could not be cached" in warnings[0]
    with pytest.raises(ImagesMissing, match="no manifest was written"):
        shutil.rmtree(root / "images_001" / "images")
        _png(root / "images_001" / "images" / names[0])
        prepare_dataset("chestxray14", root, tmp_path / "out2", size=32, workers=0, progress=False)


def _positive_sentences(repo_root: Path) -> dict[str, list[str]]:
    spec = json.loads((repo_root / "assets" / "prompts" / "label_sentences.json").read_text())
    return {k: v["positive"] + v.get("uncertain", []) for k, v in spec.items() if not k.startswith("_")}


def test_chestxray14_positive_labels_survive_64_tokens(txv_data_dir, tmp_path, minilm_dir, repo_root):
    from transformers import AutoTokenizer

    root = tmp_path / "nih"
    make_nih(root, txv_data_dir, n=400, present=1)
    prepare_dataset("chestxray14", root, tmp_path / "out", workers=0, progress=False, images=False)
    records = read_manifest(tmp_path / "out").records
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    collate = TrainCollate(tokenizer, max_length=64)
    norm = lambda text: tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True)  # noqa: E731
    options = {k: [norm(s) for s in v] for k, v in _positive_sentences(repo_root).items()}
    # the real rows with the most findings, and every row of the sample
    records.sort(key=lambda r: -sum(v == 1 for v in r.labels.values()))
    assert sum(v == 1 for v in records[0].labels.values()) >= 4
    texts = [labels_text(r.labels, np.random.default_rng([i, k])) for i, r in enumerate(records)
             for k in range(2)]
    raw_lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    ids = collate._tokens(texts)["input_ids"]
    assert ids.shape[1] <= 64
    decoded = tokenizer.batch_decode(ids, skip_special_tokens=True)
    for j, text in enumerate(decoded):
        for label, value in records[j // 2].labels.items():
            if value == 1:
                assert any(o in text for o in options[canonical_finding(label)]), (label, text)
    assert np.median(raw_lengths) > 64  # the texts did need cutting


# ----- CheXpert --------------------------------------------------------------------------------
def test_chexpert_no_images_touches_no_image_file(txv_data_dir, tmp_path, monkeypatch):
    header, rows = _sample_rows(txv_data_dir / "chexpert_train.csv.gz", 500)
    root = tmp_path / "chexpert"
    root.mkdir()
    for name, part in (("train.csv", rows[:450]), ("valid.csv", rows[450:])):
        with (root / name).open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows([[r[0].replace("/train/", "/valid/") if name == "valid.csv" else r[0], *r[1:]]
                              for r in part])
    checked: list[str] = []
    real_is_file, real_exists = Path.is_file, Path.exists
    monkeypatch.setattr(Path, "is_file", lambda self: checked.append(str(self)) or real_is_file(self))
    monkeypatch.setattr(Path, "exists", lambda self: checked.append(str(self)) or real_exists(self))
    summary = prepare_dataset("chexpert", root, tmp_path / "out", workers=0, progress=False, images=False)
    assert summary.studies > 300
    assert not [c for c in checked if c.endswith(".jpg")]
    checked.clear()
    with pytest.raises(ImagesMissing, match="500 of 500 images"):
        prepare_dataset("chexpert", root, tmp_path / "out2", workers=0, progress=False, images=True)
    jpgs = [c for c in checked if c.endswith(".jpg")]
    assert len(jpgs) >= 3 * 500  # with images, each missing image is looked for in its 3 places


# ----- training on a manifest whose images are missing ------------------------------------------
def test_all_images_missing_stops_training_with_a_message(overrides_for, toy_manifest, tmp_path, capsys):
    from training.cli import run_train

    shutil.rmtree(toy_manifest / "images")
    args = argparse.Namespace(config=None, resume=False,
                              overrides=overrides_for(toy_manifest, tmp_path / "run", **{"data.val": "[]"}))
    assert run_train(args) == 2
    err = capsys.readouterr().err
    assert "studies in a row could not be loaded" in err and "Traceback" not in err
    assert str(toy_manifest / "images") in err and "cxrclip prepare" in err
    assert ".png" in err  # names the files


def test_unreadable_image_is_named_once(toy_manifest, caplog):
    from cxrclip.config import PreprocessConfig

    manifest = read_manifest(toy_manifest)
    dataset = StudyPairDataset([manifest], "train", PreprocessConfig(image_size=32, resize_shorter=32), None)
    record = dataset.items[1][1]  # one view
    bad = manifest.image_path(record.images[0])
    bad.write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING):
        samples = [dataset[(1, epoch)] for epoch in range(4)]
    assert all(s["skipped"] >= 1 and s["study_id"] != record.study_id for s in samples)
    named = [r.getMessage() for r in caplog.records if str(bad) in r.getMessage()]
    assert len(named) == 1 and record.study_id in named[0]


def test_data_unavailable_summary_drops_worker_traceback():
    wrapped = DataUnavailable("Caught DataUnavailable in DataLoader worker process 0.\nOriginal Traceback "
                              "(most recent call last):\n  File \"x.py\", line 1\n"
                              "training.data.dataset.DataUnavailable: 10 studies in a row could not be loaded")
    assert wrapped.summary() == "10 studies in a row could not be loaded"
    assert DataUnavailable("plain").summary() == "plain"


# ----- data wait accounting ------------------------------------------------------------------------
def test_data_wait_meter_sums_over_the_window():
    from training.trainer.loop import DataWaitMeter

    now = [100.0]
    meter = DataWaitMeter(clock=lambda: now[0])
    for wait in (0.5, 0.25, 0.25):
        meter.add(wait)
        now[0] += 1.0
    assert meter.take() == (1.0, pytest.approx(1.0 / 3.0))
    now[0] += 2.0
    meter.add(0.5)
    assert meter.take() == (0.5, 0.25)  # a new window


class _SlowLoader:
    """The trainer's loader with a fixed pause before every batch (a slow data pipeline)."""

    def __init__(self, loader, pause: float) -> None:
        self.loader, self.pause = loader, pause

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        import time

        for batch in self.loader:
            time.sleep(self.pause)
            yield batch


def test_trainer_logs_data_wait_of_the_whole_window(overrides_for, toy_manifest, tmp_path):
    from training.config import load_config
    from training.trainer.loop import Trainer

    trainer = Trainer(load_config(None, overrides_for(toy_manifest, tmp_path / "run", **{
        "train.batch_size": 2, "train.log_every": 4, "train.epochs": 1, "data.val": "[]"})))
    trainer.train_loader = _SlowLoader(trainer.train_loader, 0.05)
    logged: list[tuple[str, float, int]] = []
    trainer.writer.add_scalar = lambda tag, value, step: logged.append((tag, float(value), step))
    trainer.fit()
    trainer.close()
    waits = [(v, s) for t, v, s in logged if t == "train/data_wait_s"]
    fracs = [v for t, v, _ in logged if t == "train/data_wait_frac"]
    assert [s for _, s in waits] == [4]  # 8 studies / batch 2 = 4 steps, logged once
    assert waits[0][0] >= 4 * 0.05  # four waits summed, not the last step's one
    assert 0.0 < fracs[0] <= 1.0
