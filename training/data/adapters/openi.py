"""Open-I / IU X-ray: XML reports with FINDINGS/IMPRESSION and their PNG images.

Expected under ``--root``: XML reports in ``ecgen-radiology/`` (or any ``*.xml`` under
the root) with ``<AbstractText Label="FINDINGS">``, ``<AbstractText Label="IMPRESSION">``
and ``<parentImage id="CXR1_1_IM-0001-3001">``, and the images as
``NLMCXR_png/<id>.png``. Views come from the DICOM headers (``openi_views``):
``nlmcxr_dicom_metadata.csv.gz`` or ``NLMCXR_dcm/`` under the root, when present.
Every study goes to the ``test`` split (Open-I is an evaluation set in the paper).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from cxrclip.openi import OpenIReportError, read_openi_report
from training.data.adapters.common import LayoutError, PreparedStudy, require_dir
from training.data.adapters.openi_views import metadata_key, read_views
from training.data.manifest import StudyRecord

NAME = "openi"
log = logging.getLogger(__name__)


def _xml_files(root: Path) -> list[Path]:
    folder = root / "ecgen-radiology"
    files = sorted((folder if folder.is_dir() else root).rglob("*.xml"))
    if not files:
        raise LayoutError(f"{folder} is missing: no XML reports (ecgen-radiology/*.xml) under {root}")
    return files


def parse_report(path: Path) -> tuple[str, str | None, str | None, list[str]]:
    """(study id, findings, impression, image ids) of one Open-I XML report."""
    try:
        report = read_openi_report(path)
    except OpenIReportError as exc:
        raise LayoutError(str(exc)) from exc
    sections = report.sections
    return report.study_id, sections.get("FINDINGS"), sections.get("IMPRESSION"), report.image_ids


def studies(root: Path, images: bool = True) -> Iterator[PreparedStudy]:
    """One study per XML report with an image and a FINDINGS or IMPRESSION section."""
    png_dir = (require_dir(root, ["NLMCXR_png", "images"], "the Open-I PNG images (NLMCXR_png/*.png)")
               if images else root / "NLMCXR_png")
    views, source = read_views(root)
    if source is None:
        log.warning("no Open-I view information under %s (nlmcxr_dicom_metadata.csv.gz or "
                    "NLMCXR_dcm/): view positions stay null", root)
    for xml in _xml_files(root):
        study, findings, impression, ids = parse_report(xml)
        if not ids or not (findings or impression):
            continue
        record = StudyRecord(study_id=study, images=[f"{i}.png" for i in ids],
                             view_positions=[views.get(metadata_key(i)) for i in ids],
                             findings=findings, impression=impression, labels=None,
                             split="test", dataset=NAME)
        yield PreparedStudy(record, [png_dir / f"{i}.png" for i in ids])
