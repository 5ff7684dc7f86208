"""What searches return: `ViewRecord`, `StudyHit` (with its JSON/CSV form, PHI optionally hidden), `IndexInfo`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PHI_KEYS = ("patient_id", "patient_name", "accession", "study_uid", "study_date")
"""Keys dropped by ``hide_phi`` (as the viewer's Hide-PHI hides name, ID and date; UIDs can be traced)."""


@dataclass(frozen=True)
class ViewRecord:
    """One indexed view (for thumbnails and the matching view of a hit)."""

    row_id: int
    view_id: str
    study_key: str
    path: str
    view_position: str | None
    series_uid: str | None
    findings: dict[str, float] = field(default_factory=dict)
    ood_flag: bool | None = None
    score: float | None = None  # cosine to the query, when it came from a search

    @classmethod
    def from_row(cls, row: dict[str, Any], score: float | None = None) -> ViewRecord:
        flag = row.get("ood_flag")
        return cls(int(row["id"]), row["view_id"], row["study_key"], row["path"], row["view_position"],
                   row["series_uid"], dict(row["findings"]), None if flag is None else bool(flag),
                   None if score is None else float(score))

    def to_dict(self, hide_phi: bool = False, number: int = 1) -> dict[str, Any]:
        """{"path", "view_position", "score"}; the path becomes ``<study_key>/view-<number>`` when hidden."""
        path = f"{self.study_key}/view-{number}" if hide_phi else self.path
        return {"path": path, "view_position": self.view_position,
                "score": None if self.score is None else round(self.score, 6)}


@dataclass(frozen=True)
class StudyHit:
    """A ranked study: score = max over its (filtered) views of the view-level cosine."""

    rank: int
    study_key: str
    study_uid: str | None
    study_date: str | None
    patient_id: str | None
    folder: str
    files: list[str]
    score: float
    matching_view: ViewRecord
    findings: dict[str, float]
    patient_name: str | None = None
    accession: str | None = None

    def to_dict(self, hide_phi: bool = False) -> dict[str, Any]:
        """The JSON contract of ``cxrclip index search --json``; with ``hide_phi`` the identifiers
        (`PHI_KEYS`) are left out and paths/folders become the non-identifying study key."""
        number = self.files.index(self.matching_view.path) + 1 if self.matching_view.path in self.files else 1
        out: dict[str, Any] = {
            "rank": self.rank, "study_key": self.study_key, "study_uid": self.study_uid,
            "study_date": self.study_date, "patient_id": self.patient_id, "patient_name": self.patient_name,
            "accession": self.accession, "folder": self.folder, "files": list(self.files),
            "score": round(self.score, 6), "matching_view": self.matching_view.to_dict(hide_phi, number),
            "findings": {k: round(v, 4) for k, v in self.findings.items()}}
        if hide_phi:
            for key in PHI_KEYS:
                out.pop(key)
            out["folder"] = self.study_key
            out["files"] = [f"{self.study_key}/view-{i}" for i in range(1, len(self.files) + 1)]
        return out


@dataclass(frozen=True)
class IndexInfo:
    """`ArchiveIndex.info()`: counts, the model, the last build."""

    path: str
    model_id: str
    model_dir: str | None
    embed_dim: int
    format_version: int
    created: str | None
    findings: list[str]
    views: int
    studies: int
    failures: int
    ann_vectors: int | None
    last_build: dict[str, Any] | None
    exact_only_reason: str | None = None  # why a large index is searched exactly (no [archive] extra)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)
