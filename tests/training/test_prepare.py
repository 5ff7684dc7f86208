"""`cxrclip prepare` on small hand-made copies of each official layout, and clear missing-file errors."""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.adapters import prepare_dataset
from training.data.adapters.common import LayoutError, findings_impression
from training.data.manifest import read_manifest

CHEXPERT_COLS = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum",
                 "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia",
                 "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]


def _img(path: Path, shape=(120, 100), mode="L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(len(str(path))).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(arr).convert(mode).save(path)


def _csv(path: Path, header: list[str], rows: list[list], gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    with opener(path, "wt", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def make_mimic(root: Path) -> None:
    meta, split = [], []
    for sub, study, dicoms, sp in (("10000032", "50414267", ["aaa", "bbb"], "train"),
                                   ("10000032", "53189527", ["ccc"], "test"),
                                   ("11000011", "50000001", ["ddd"], "validate")):
        for i, d in enumerate(dicoms):
            meta.append([d, sub, study, "PA" if i == 0 else "LATERAL"])
            split.append([d, study, sub, sp])
            _img(root / "files" / f"p{sub[:2]}" / f"p{sub}" / f"s{study}" / f"{d}.jpg")
    _csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", ["dicom_id", "subject_id", "study_id", "ViewPosition"], meta, gz=True)
    _csv(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], split, gz=True)
    reports = root / "mimic-cxr-reports" / "files" / "p10" / "p10000032"
    reports.mkdir(parents=True)
    (reports / "s50414267.txt").write_text(
        "FINAL REPORT\n EXAMINATION: CHEST (PA AND LAT)\n\n FINDINGS: \n There is no focal consolidation.\n"
        " Heart size is normal.\n\n IMPRESSION: \n No acute cardiopulmonary process.\n")
    (reports / "s53189527.txt").write_text("IMPRESSION: Small left effusion.\n")
    # the third study has no report → left out


def make_chexpert(root: Path) -> None:
    def row(path, fl, apa, labels):
        vals = {c: "" for c in CHEXPERT_COLS[5:]}
        vals.update(labels)
        return [path, "Male", 60, fl, apa] + [vals[c] for c in CHEXPERT_COLS[5:]]
    base = "CheXpert-v1.0-small"
    rows = [row(f"{base}/train/patient00001/study1/view1_frontal.jpg", "Frontal", "AP", {"Edema": "1.0", "Cardiomegaly": "-1.0"}),
            row(f"{base}/train/patient00001/study1/view2_lateral.jpg", "Lateral", "", {"Edema": "1.0", "Cardiomegaly": "-1.0"}),
            row(f"{base}/train/patient00002/study1/view1_frontal.jpg", "Frontal", "PA", {"No Finding": "1.0"})]
    _csv(root / "train.csv", CHEXPERT_COLS, rows)
    _csv(root / "valid.csv", CHEXPERT_COLS, [row(f"{base}/valid/patient64541/study1/view1_frontal.jpg", "Frontal", "AP",
                                                 {"Pleural Effusion": "0.0", "Edema": "1.0"})])
    for r in rows + [[f"{base}/valid/patient64541/study1/view1_frontal.jpg"]]:
        _img(root / Path(r[0]).relative_to(base))


def make_nih(root: Path) -> None:
    names = ["00000001_000.png", "00000001_001.png", "00000002_000.png"]
    _csv(root / "Data_Entry_2017.csv", ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "View Position"],
         [[names[0], "Cardiomegaly|Effusion", 0, 1, "PA"], [names[1], "No Finding", 1, 1, "AP"],
          [names[2], "Hernia", 0, 2, "PA"]])
    (root / "train_val_list.txt").write_text("\n".join(names[:2]) + "\n")
    (root / "test_list.txt").write_text(names[2] + "\n")
    for n in names:
        _img(root / "images_001" / "images" / n, mode="RGBA")


def make_openi(root: Path) -> None:
    xml = """<?xml version="1.0"?><eCitation><uId id="CXR{n}"/><MedlineCitation><Article><Abstract>
      <AbstractText Label="COMPARISON">None.</AbstractText>
      <AbstractText Label="FINDINGS">The lungs are clear. Heart size normal.</AbstractText>
      <AbstractText Label="IMPRESSION">No active disease.</AbstractText></Abstract></Article></MedlineCitation>
      <parentImage id="CXR{n}_IM-0001-1001"/><parentImage id="CXR{n}_IM-0001-2001"/></eCitation>"""
    (root / "ecgen-radiology").mkdir(parents=True)
    for n in (1, 2):
        (root / "ecgen-radiology" / f"{n}.xml").write_text(xml.format(n=n))
        for k in (1, 2):
            _img(root / "NLMCXR_png" / f"CXR{n}_IM-0001-{k}001.png")


def test_mimic(tmp_path):
    make_mimic(tmp_path / "mimic")
    summary = prepare_dataset("mimic", tmp_path / "mimic", tmp_path / "out", size=64, workers=0, progress=False)
    m = read_manifest(tmp_path / "out")
    assert summary.studies == 2 and m.header.image_size == 64 and m.header.dataset == "mimic"
    s = {r.study_id: r for r in m.records}["s50414267"]
    assert s.findings == "There is no focal consolidation. Heart size is normal."
    assert s.impression == "No acute cardiopulmonary process."
    assert s.view_positions == ["PA", "LATERAL"] and s.split == "train"
    assert s.images[0] == "p10/p10000032/s50414267/aaa.png"
    assert read_image_shape(m.image_path(s.images[0])) == (77, 64)  # 120x100 → shorter side 64, 76.8 rounds to 77
    assert {r.split for r in m.records} == {"train", "test"}
    again = prepare_dataset("mimic", tmp_path / "mimic", tmp_path / "out", size=64, workers=0, progress=False)
    assert again.images_written == 0 and again.images_skipped == 3


def read_image_shape(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.height, im.width


def test_chexpert(tmp_path):
    make_chexpert(tmp_path / "chexpert")
    prepare_dataset("chexpert", tmp_path / "chexpert", tmp_path / "out", size=64, workers=0, progress=False)
    m = read_manifest(tmp_path / "out")
    s = {r.study_id: r for r in m.records}
    assert s["patient00001/study1"].labels == {"Cardiomegaly": -1, "Edema": 1}
    assert s["patient00001/study1"].view_positions == ["AP", "LATERAL"]
    assert s["patient64541/study1"].split == "validate"
    assert s["patient64541/study1"].labels == {"Edema": 1, "Pleural Effusion": 0}
    assert m.image_path(s["patient00002/study1"].images[0]).is_file()


def test_chestxray14(tmp_path):
    make_nih(tmp_path / "nih")
    prepare_dataset("chestxray14", tmp_path / "nih", tmp_path / "out", size=64, workers=0, progress=False)
    m = read_manifest(tmp_path / "out")
    s = {r.study_id: r for r in m.records}
    assert s["00000001_000"].labels["Cardiomegaly"] == 1 and s["00000001_000"].labels["Effusion"] == 1
    assert s["00000001_000"].labels["Hernia"] == 0
    assert s["00000001_001"].labels["No Finding"] == 1
    assert s["00000002_000"].split == "test" and s["00000002_000"].view_positions == ["PA"]


def test_openi(tmp_path):
    make_openi(tmp_path / "openi")
    prepare_dataset("openi", tmp_path / "openi", tmp_path / "out", size=64, workers=0, progress=False)
    m = read_manifest(tmp_path / "out")
    r = {r.study_id: r for r in m.records}["CXR1"]
    assert r.findings == "The lungs are clear. Heart size normal." and r.impression == "No active disease."
    assert r.images == ["CXR1_IM-0001-1001.png", "CXR1_IM-0001-2001.png"] and r.split == "test"


@pytest.mark.parametrize("name, make, remove, message", [
    ("mimic", make_mimic, "mimic-cxr-2.0.0-split.csv.gz", "mimic-cxr-2.0.0-split.csv.gz is missing.*split table"),
    ("chexpert", make_chexpert, "valid.csv", "valid.csv is missing.*validation table"),
    ("chestxray14", make_nih, "test_list.txt", "test_list.txt is missing.*official test image list"),
    ("openi", make_openi, "NLMCXR_png", "NLMCXR_png is missing.*PNG images"),
])
def test_missing_file_is_named(tmp_path, name, make, remove, message):
    root = tmp_path / name
    make(root)
    target = root / remove
    if target.is_dir():
        import shutil

        shutil.rmtree(target)
    else:
        target.unlink()
    with pytest.raises(LayoutError, match=message):
        prepare_dataset(name, root, tmp_path / "out", size=64, workers=0, progress=False)


def test_report_sections_parser():
    f, i = findings_impression("INDICATION: cough.\nFINDINGS:\n  Lungs  clear.\nIMPRESSION: Normal.\n")
    assert (f, i) == ("Lungs clear.", "Normal.")
    assert findings_impression("No headers here.") == (None, None)


def test_prepare_cli_unknown_root(tmp_path, capsys):
    from training.cli import main

    assert main(["prepare", "openi", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    assert "is not a folder" in capsys.readouterr().err
