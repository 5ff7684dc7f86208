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


class _Resolver:
    """Finds the image a Path cell names: under the root, its parent, or without the
    ``CheXpert-v1.0*/`` prefix. The base that worked last is tried first (one
    ``stat`` per row); with ``check=False`` nothing touches the filesystem."""

    def __init__(self, root: Path, check: bool) -> None:
        self.root = root
        self.check = check
        self.order = [0, 1, 2]

    def __call__(self, rel: str) -> tuple[Path | None, str]:
        """(source file, or None unchecked; path inside the dataset, "/"-separated) of a Path cell."""
        parts = rel.split("/")
        inner = "/".join(parts[1:]) if parts[0].lower().startswith("chexpert") else rel
        if not self.check:
            return None, inner
        candidates = (self.root / rel, self.root.parent / rel, self.root / inner)
        for k in self.order:
            if candidates[k].is_file():
                self.order = [k] + [j for j in self.order if j != k]
                return candidates[k], inner
        return candidates[2], inner


def _views(rows: list[dict[str, str]]) -> list[str | None]:
    """AP/PA when given, LATERAL for lateral images, else the Frontal/Lateral value."""
    views = []
    for row in rows:
        if row.get("Frontal/Lateral") == "Lateral":
            views.append("LATERAL")
        else:
            views.append((row.get("AP/PA") or row.get("Frontal/Lateral") or "").upper() or None)
    return views


def _grouped(path: Path) -> dict[str, list[dict[str, str]]]:
    grouped: dict[str, list[dict[str, str]]] = defaultdict(list)
    for i, row in enumerate(read_csv(path)):
        if i == 0:
            check_columns(path, row, ["Path", *CHEXPERT_14])
        parts = row["Path"].split("/")
        if len(parts) < 3:
            raise LayoutError(f"{path}: Path {row['Path']!r} is not .../patientX/studyY/view.jpg")
        grouped["/".join(parts[-3:-1])].append(row)
    return grouped


def studies(root: Path, images: bool = True) -> Iterator[PreparedStudy]:
    """One prepared study per patientX/studyY; ``images=False`` never looks at image files."""
    require_file(root, ["train.csv"], "the CheXpert training table (Path + 14 label columns)")
    require_file(root, ["valid.csv"], "the CheXpert validation table (Path + 14 label columns)")
    resolve = _Resolver(root, check=images)
    for name, split in _FILES:
        path = root / name
        if not path.is_file():
            continue
        for study, rows in _grouped(path).items():
            labels = {k: v for k in CHEXPERT_14 if (v := parse_label(rows[0].get(k))) is not None}
            if not labels:
                continue
            resolved = [resolve(r["Path"]) for r in rows]
            record = StudyRecord(study_id=study, images=[cache_name(inner) for _, inner in resolved],
                                 view_positions=_views(rows), findings=None, impression=None,
                                 labels=labels, split=split, dataset=NAME)
            yield PreparedStudy(record, [src for src, _ in resolved if src is not None])
