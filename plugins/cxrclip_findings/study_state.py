"""Results that belong to one study, kept apart from the widgets (no Qt).

Every result the plugin shows or exports - zero-shot findings, prompt scores,
the heatmap target, the report draft and its contradiction flags - lives in a
`StudyResults` keyed by the StudyInstanceUID in a `ResultsStore`. Panels only
present the results of the open study, and exports read them by study UID, so
nothing typed or computed for one study can end up in another study's file.

`DraftStore` keeps unsaved drafts on disk, one small JSON file per study in
the user's data folder (never beside the images), named by a hash of the
study UID so the folder listing names no patient or study.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from plugins.cxrclip_findings.contradictions import find_contradictions, split_sentences
from viewer.io.private_files import write_private

log = logging.getLogger(__name__)
DRAFT_SCHEMA = "cxrclip-draft"


def study_key(study_uid: str, length: int = 10) -> str:
    """A short, stable key for a study that names no patient (SHA-256 of the UID, hex)."""
    return hashlib.sha256(study_uid.encode("utf-8")).hexdigest()[:length]


@dataclass
class StudyResults:
    """Everything computed or written for one study."""

    study_uid: str
    model_id: str = ""
    findings: list[Any] = field(default_factory=list)
    prompt_scores: dict[str, Any] = field(default_factory=dict)
    heatmap_target: Any = None
    draft: str = ""
    draft_saved: str = ""  # the draft text as last written to disk

    @property
    def contradictions(self) -> list[str]:
        """Readable flags for the draft's contradicting sentences."""
        sentences = split_sentences(self.draft)
        return [f"{sentences[c.first]!r} / {sentences[c.second]!r}: {c.reason}"
                for c in find_contradictions(sentences)]

    def reset_scores(self, model_id: str) -> None:
        """Forget model results (another model is in use); the draft stays."""
        self.model_id = model_id
        self.findings, self.prompt_scores, self.heatmap_target = [], {}, None


class ResultsStore:
    """`StudyResults` by StudyInstanceUID; drafts restored from a `DraftStore` on first use."""

    def __init__(self, drafts: DraftStore | None = None) -> None:
        self._by_uid: dict[str, StudyResults] = {}
        self.drafts = drafts

    def get(self, study_uid: str) -> StudyResults:
        """The study's results, created (with its saved draft) on first use."""
        if not study_uid:
            raise ValueError("results need a StudyInstanceUID; got an empty one")
        results = self._by_uid.get(study_uid)
        if results is None:
            results = StudyResults(study_uid)
            if self.drafts is not None:
                results.draft = results.draft_saved = self.drafts.load(study_uid)
            self._by_uid[study_uid] = results
        return results

    def peek(self, study_uid: str) -> StudyResults | None:
        """The study's results if any exist (never creates)."""
        return self._by_uid.get(study_uid)

    def set_draft(self, study_uid: str, text: str) -> None:
        """Replace the study's draft (saved on `flush`)."""
        self.get(study_uid).draft = text

    def flush(self) -> int:
        """Write every changed draft to the draft store; returns how many were written."""
        if self.drafts is None:
            return 0
        written = 0
        for results in self._by_uid.values():
            if results.draft != results.draft_saved:
                try:
                    self.drafts.save(results.study_uid, results.draft)
                except OSError as exc:
                    log.warning("draft of study %s not saved: %s", study_key(results.study_uid), exc)
                    continue
                results.draft_saved = results.draft
                written += 1
        return written

    def __contains__(self, study_uid: object) -> bool:
        return study_uid in self._by_uid


class DraftStore:
    """One JSON file per study draft in ``folder`` (created 0700, files 0600)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path_for(self, study_uid: str) -> Path:
        """The draft file of a study (named by a hash of its UID)."""
        return self.folder / f"draft-{study_key(study_uid, 24)}.json"

    def load(self, study_uid: str) -> str:
        """The saved draft of a study ("" when none or unreadable)."""
        path = self.path_for(study_uid)
        if not path.is_file():
            return ""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("draft file %s unreadable, ignored: %s", path, exc)
            return ""
        if not isinstance(data, dict) or data.get("study_instance_uid") != study_uid:
            log.warning("draft file %s belongs to another study, ignored", path)
            return ""
        return str(data.get("draft", ""))

    def save(self, study_uid: str, text: str) -> None:
        """Write the draft (an empty draft removes the file)."""
        path = self.path_for(study_uid)
        if not text.strip():
            path.unlink(missing_ok=True)
            return
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {"schema": DRAFT_SCHEMA, "study_instance_uid": study_uid, "draft": text,
                "saved": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_private(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))

    def saved_studies(self) -> list[str]:
        """Study UIDs with a saved draft (for tests and housekeeping)."""
        out = []
        for path in sorted(self.folder.glob("draft-*.json")) if self.folder.is_dir() else []:
            try:
                out.append(str(json.loads(path.read_text(encoding="utf-8"))["study_instance_uid"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return out


def default_data_dir(env: str = "CXRCLIP_DATA_DIR") -> Path | None:
    """The data folder from the environment, or None (the plugin then asks Qt)."""
    value = os.environ.get(env, "").strip()
    return Path(value).expanduser() if value else None
