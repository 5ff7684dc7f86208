"""CheXpert (v1.0 or v1.0-small): label-only studies; text comes from label sentences.

Expected under ``--root``: ``train.csv`` and ``valid.csv`` (optional ``test.csv``) with
columns Path, Frontal/Lateral, AP/PA and the 14 labels (1, 0, -1 or blank), and the
images the Path column names (``CheXpert-v1.0-small/train/patientX/studyY/viewZ.jpg``,
resolved against the root or its parent).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from cxrclip.prompts import CHEXPERT_14
from training.data.adapters.common import (LayoutError, PreparedStudy, cache_name, check_columns,
                                           parse_label, read_csv, require_file)
from training.data.manifest import StudyRecord

NAME = "chexpert"
_FILES = (("train.csv", "train"), ("valid.csv", "validate"), ("test.csv", "test"))


def _resolve(root: Path, rel: str) -> tuple[Path, Path]:
    """(source file, path relative inside the dataset) for a Path cell."""
    parts = Path(rel).parts
    inner = Path(*parts[1:]) if parts and parts[0].lower().startswith("chexpert") else Path(rel)
    for candidate in (root / rel, root.parent / rel, root / inner):
        if candidate.is_file():
            return candidate, inner
    return root / inner, inner


def studies(root: Path) -> Iterator[PreparedStudy]:
    require_file(root, ["train.csv"], "the CheXpert training table (Path + 14 label columns)")
    require_file(root, ["valid.csv"], "the CheXpert validation table (Path + 14 label columns)")
    for name, split in _FILES:
        path = root / name
        if not path.is_file():
            continue
        grouped: dict[str, list[dict[str, str]]] = defaultdict(list)
        for i, row in enumerate(read_csv(path)):
            if i == 0:
                check_columns(path, row, ["Path", *CHEXPERT_14])
            parts = Path(row["Path"]).parts
            if len(parts) < 3:
                raise LayoutError(f"{path}: Path {row['Path']!r} is not .../patientX/studyY/view.jpg")
            grouped["/".join(parts[-3:-1])].append(row)
        for study, rows in grouped.items():
            labels = {k: v for k in CHEXPERT_14 if (v := parse_label(rows[0].get(k))) is not None}
            if not labels:
                continue
            resolved = [_resolve(root, r["Path"]) for r in rows]
            views = [(r.get("AP/PA") or r.get("Frontal/Lateral") or "").upper() or None for r in rows]
            views = ["LATERAL" if v == "LATERAL" or (r.get("Frontal/Lateral") == "Lateral") else v
                     for v, r in zip(views, rows)]
            record = StudyRecord(study_id=study, images=[cache_name(inner) for _, inner in resolved],
                                 view_positions=views, findings=None, impression=None, labels=labels,
                                 split=split, dataset=NAME)
            yield PreparedStudy(record, [src for src, _ in resolved])
