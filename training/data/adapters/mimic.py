"""MIMIC-CXR-JPG 2.0.0 (+ free-text reports from MIMIC-CXR).

Expected under ``--root``:
  mimic-cxr-2.0.0-metadata.csv(.gz)   dicom_id, subject_id, study_id, ViewPosition
  mimic-cxr-2.0.0-split.csv(.gz)      dicom_id, study_id, subject_id, split
  files/pXX/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg
  reports: files/pXX/pXXXXXXXX/sXXXXXXXX.txt, or the same under mimic-cxr-reports/
  optional: mimic-cxr-2.0.0-chexpert.csv(.gz) (labels kept in the manifest)
Studies without FINDINGS or IMPRESSION (and without labels) are left out. A combined
"FINDINGS AND IMPRESSION:" section is the impression (``common.findings_impression``).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from cxrclip.prompts import CHEXPERT_14
from training.data.adapters.common import (LayoutError, PreparedStudy, cache_name, check_columns,
                                           findings_impression, parse_label, read_csv, require_dir,
                                           require_file)
from training.data.manifest import StudyRecord

NAME = "mimic"


def _labels(root: Path) -> dict[str, dict[str, int]]:
    try:
        path = require_file(root, ["mimic-cxr-2.0.0-chexpert.csv.gz", "mimic-cxr-2.0.0-chexpert.csv"], "")
    except LayoutError:
        return {}
    out = {}
    for row in read_csv(path):
        labels = {k: v for k in CHEXPERT_14 if (v := parse_label(row.get(k))) is not None}
        out[row["study_id"]] = labels
    return out


def _report(roots: list[Path], subject: str, study: str) -> str | None:
    """The report text; the folder that held the last report is tried first."""
    rel = Path(f"p{subject[:2]}") / f"p{subject}" / f"s{study}.txt"
    for k, base in enumerate(roots):
        try:
            text = (base / rel).read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            continue
        roots.insert(0, roots.pop(k))
        return text
    return None


def studies(root: Path, images: bool = True) -> Iterator[PreparedStudy]:
    """Walk the layout and yield one prepared study per MIMIC study.

    ``images=False`` does not require the JPG tree (reports may still live in it).
    """
    meta_path = require_file(root, ["mimic-cxr-2.0.0-metadata.csv.gz", "mimic-cxr-2.0.0-metadata.csv"],
                             "the MIMIC-CXR-JPG metadata table (dicom_id, study_id, ViewPosition)")
    split_path = require_file(root, ["mimic-cxr-2.0.0-split.csv.gz", "mimic-cxr-2.0.0-split.csv"],
                              "the MIMIC-CXR-JPG split table (dicom_id, split)")
    files = (require_dir(root, ["files"], "the JPG tree files/pXX/pXXXXXXXX/sXXXXXXXX/*.jpg")
             if images else root / "files")
    report_roots = [files, root / "mimic-cxr-reports" / "files", root / "mimic-cxr-reports"]
    splits = {}
    for i, row in enumerate(read_csv(split_path)):
        if i == 0:
            check_columns(split_path, row, ["dicom_id", "split"])
        splits[row["dicom_id"]] = row["split"]
    grouped: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for i, row in enumerate(read_csv(meta_path)):
        if i == 0:
            check_columns(meta_path, row, ["dicom_id", "subject_id", "study_id", "ViewPosition"])
        grouped[(row["subject_id"], row["study_id"])].append(row)
    labels = _labels(root)
    for (subject, study), rows in grouped.items():
        text = _report(report_roots, subject, study)
        findings, impression = findings_impression(text) if text else (None, None)
        study_labels = labels.get(study) or None
        if not (findings or impression or study_labels):
            continue
        rels = [Path(f"p{subject[:2]}") / f"p{subject}" / f"s{study}" / f"{r['dicom_id']}.jpg" for r in rows]
        record = StudyRecord(
            study_id=f"s{study}", images=[cache_name(r) for r in rels],
            view_positions=[r["ViewPosition"] or None for r in rows], findings=findings,
            impression=impression, labels=study_labels,
            split=splits.get(rows[0]["dicom_id"], "train"), dataset=NAME)
        yield PreparedStudy(record, [files / r for r in rels] if images else [])
