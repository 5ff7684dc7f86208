"""Export findings, prompt scores and the draft as JSON (schema ``cxrclip-findings`` v1).

Patient identifiers (name, ID, birth date, accession number, file names, which
may contain names) are left out unless ``include_identifiers`` is set. DICOM
UIDs are kept: they link the result to the images and carry no name. Views of
PNG/JPEG studies, whose ids are file paths, are then called ``view-1``,
``view-2``... See docs/plugin_cxrclip.md for the schema.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from plugins.cxrclip_findings.export_data import ExportContent, ScoreEntry, ViewRef
from viewer.io.private_files import write_private

SCHEMA = "cxrclip-findings"
SCHEMA_VERSION = 1
_ROUND = 6


def _view_key(view: ViewRef, index: int, include_identifiers: bool) -> str:
    if view.source == "dicom" or include_identifiers:
        return view.view_id
    return f"view-{index + 1}"


def _view_dict(view: ViewRef, key: str, include_identifiers: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": key, "label": view.label, "modality": view.modality,
                           "view_position": view.view_position, "laterality": view.laterality,
                           "source": view.source}
    if view.source == "dicom":
        out.update(sop_class_uid=view.sop_class_uid, sop_instance_uid=view.sop_instance_uid,
                   series_instance_uid=view.series_instance_uid)
    if include_identifiers and view.file_name:
        out["file_name"] = view.file_name
    return out


def _score_dict(entry: ScoreEntry, keys: dict[str, str], finding: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"name": entry.name, "probability": round(entry.probability, _ROUND),
                           "similarity": round(entry.similarity, _ROUND)}
    if finding:
        out.update(calibrated=entry.calibrated, positive=entry.positive,
                   operating_point=entry.operating_point,
                   raw_probability=None if entry.raw_probability is None else round(entry.raw_probability, _ROUND))
    if entry.negative:
        out["negative"] = entry.negative
    if entry.unfamiliar:
        out["unfamiliar_wording"] = True
    out["views"] = [{"view": keys.get(v.view_id, v.view_id),
                     "probability": round(v.probability, _ROUND),
                     "similarity": round(v.similarity, _ROUND)} for v in entry.views]
    return out


def build_export(content: ExportContent, include_identifiers: bool = False,
                 created: datetime | None = None) -> dict[str, Any]:
    """The export as a JSON-ready dict (see module docstring for what is left out)."""
    study = content.study
    keys = {v.view_id: _view_key(v, i, include_identifiers) for i, v in enumerate(study.views)}
    study_out: dict[str, Any] = {
        "study_instance_uid": study.study_instance_uid, "study_date": study.study_date,
        "description": study.study_description,
        "views": [_view_dict(v, keys[v.view_id], include_identifiers) for v in study.views]}
    ood = {v.view_id: v for v in content.ood}
    for view, out_view in zip(study.views, study_out["views"]):
        if view.view_id in ood:
            v = ood[view.view_id]
            out_view["out_of_distribution"] = {"flag": v.flag, "score": round(v.score, 4),
                                               "threshold": round(v.threshold, 4)}
    out: dict[str, Any] = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "created": (created or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "identifiers_included": include_identifiers,
        "model": {"name": content.model.name, "model_id": content.model.model_id,
                  "backbone": content.model.backbone, "device": content.model.device,
                  "synthetic": content.model.synthetic,
                  "intended_use": content.model.intended_use,
                  "operating_points": dict(content.model.operating_points)},
        "study": study_out,
        "out_of_distribution": content.out_of_distribution,
        "findings": [_score_dict(f, keys, finding=True) for f in content.findings],
        "prompts": [_score_dict(p, keys) for p in content.prompts],
        "draft": {"text": content.draft, "contradictions": list(content.contradictions)},
    }
    if include_identifiers:
        p = study.patient
        out["patient"] = {"name": p.name, "id": p.patient_id, "birth_date": p.birth_date,
                          "sex": p.sex, "age": p.age}
        study_out["accession_number"] = study.accession_number
    return out


def write_export(content: ExportContent, path: str | Path, include_identifiers: bool = False,
                 created: datetime | None = None) -> Path:
    """Write `build_export` to ``path`` atomically, mode 0600 (UTF-8, indented)."""
    data = build_export(content, include_identifiers, created)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return write_private(path, text.encode("utf-8"))
