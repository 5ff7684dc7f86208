"""NIH ChestX-ray14: one frontal image per study, labels from 'Finding Labels'.

Expected under ``--root``: ``Data_Entry_2017.csv`` (or ``Data_Entry_2017_v2020.csv``),
``train_val_list.txt``, ``test_list.txt`` and the PNGs in ``images/`` or
``images_001/images/`` ... ``images_012/images/``. 5% of train_val patients
(fixed by a hash of the patient id) form the ``validate`` split.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from training.data.adapters.common import (LayoutError, PreparedStudy, check_columns, read_csv,
                                           require_file, stable_fraction)
from training.data.manifest import StudyRecord

NAME = "chestxray14"
FINDINGS_14 = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule",
               "Pneumonia", "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis",
               "Pleural_Thickening", "Hernia")
VALIDATE_FRACTION = 0.05


def _image_index(root: Path) -> dict[str, Path]:
    index = {}
    for folder in [root / "images", *sorted(root.glob("images_*/images")), *sorted(root.glob("images_*"))]:
        if folder.is_dir():
            for png in folder.glob("*.png"):
                index.setdefault(png.name, png)
    if not index:
        raise LayoutError(f"no PNG images under {root}/images/ or {root}/images_*/images/; "
                          "extract the images_*.tar.gz archives there")
    return index


def _read_list(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def studies(root: Path, images: bool = True) -> Iterator[PreparedStudy]:
    """One study per image; ``images=False`` does not index the image folders."""
    table = require_file(root, ["Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv"],
                         "the ChestX-ray14 label table (Image Index, Finding Labels, Patient ID)")
    train_val = _read_list(require_file(root, ["train_val_list.txt"], "official train+val image list"))
    test = _read_list(require_file(root, ["test_list.txt"], "official test image list"))
    index = _image_index(root) if images else {}
    for i, row in enumerate(read_csv(table)):
        if i == 0:
            check_columns(table, row, ["Image Index", "Finding Labels", "Patient ID", "View Position"])
        name = row["Image Index"]
        if name in test:
            split = "test"
        elif name in train_val:
            split = "validate" if stable_fraction(row["Patient ID"]) < VALIDATE_FRACTION else "train"
        else:
            continue
        found = set(row["Finding Labels"].split("|"))
        labels = {f: int(f in found) for f in FINDINGS_14}
        if "No Finding" in found:
            labels["No Finding"] = 1
        source = index.get(name, root / "images" / name)
        record = StudyRecord(study_id=Path(name).stem, images=[name], view_positions=[row["View Position"] or None],
                             findings=None, impression=None, labels=labels, split=split, dataset=NAME)
        yield PreparedStudy(record, [source])
