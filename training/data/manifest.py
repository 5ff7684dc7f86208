"""Study manifests: the one on-disk format every dataset adapter writes and the trainer reads.

A manifest is a directory::

    DIR/manifest.json    header: version, dataset, cache image size, image root, counts
    DIR/studies.jsonl    one JSON object per study (see ``StudyRecord``)
    DIR/images/...       resized image cache (``header.image_root``, relative to DIR)

Paths in ``StudyRecord.images`` are relative to ``DIR/<image_root>``. Keeping the
format in one module means adapters (``prepare``), the phantom generator and the
datasets agree on it by construction.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_VERSION = 1
HEADER_NAME = "manifest.json"
STUDIES_NAME = "studies.jsonl"
SPLITS = ("train", "validate", "test")
LABEL_VALUES = (1, 0, -1)
_RECORD_KEYS = ("study_id", "images", "view_positions", "findings", "impression",
                "labels", "split", "dataset")


class ManifestError(ValueError):
    """A manifest file is missing or a record breaks the format."""


@dataclass
class StudyRecord:
    """One study: its cached images, report sections and/or labels, and split."""

    study_id: str
    images: list[str]
    view_positions: list[str | None]
    findings: str | None
    impression: str | None
    labels: dict[str, int] | None
    split: str
    dataset: str

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ManifestError`` naming the field when the record is malformed."""
        where = f"study {self.study_id!r}"
        if not isinstance(self.study_id, str) or not self.study_id:
            raise ManifestError(f"study_id must be a non-empty string, got {self.study_id!r}")
        if not self.images or not all(isinstance(p, str) and p for p in self.images):
            raise ManifestError(f"{where}: images must be a non-empty list of relative paths, "
                                f"got {self.images!r}")
        for p in self.images:
            if os.path.isabs(p) or ".." in p.replace("\\", "/").split("/"):
                raise ManifestError(f"{where}: image path {p!r} must be relative to the "
                                    "image root without '..'")
        if len(self.view_positions) != len(self.images):
            raise ManifestError(f"{where}: view_positions has {len(self.view_positions)} "
                                f"entries for {len(self.images)} images; give one per image "
                                "(null when unknown)")
        if self.split not in SPLITS:
            raise ManifestError(f"{where}: split {self.split!r} is not one of {SPLITS}")
        if self.labels is not None:
            bad = {k: v for k, v in self.labels.items() if v not in LABEL_VALUES}
            if bad:
                raise ManifestError(f"{where}: label values {bad} are not in {LABEL_VALUES} "
                                    "(1 positive, 0 negative, -1 uncertain; omit blanks)")
        if not (self.findings or self.impression or self.labels):
            raise ManifestError(f"{where}: needs findings, impression or labels for its text")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyRecord:
        """Build from a parsed JSONL line; unknown or missing keys raise."""
        unknown = set(data) - set(_RECORD_KEYS)
        if unknown:
            raise ManifestError(f"unknown manifest keys {sorted(unknown)}; allowed: {_RECORD_KEYS}")
        missing = set(_RECORD_KEYS) - set(data) - {"findings", "impression", "labels",
                                                   "view_positions"}
        if missing:
            raise ManifestError(f"manifest record {data.get('study_id')!r} lacks {sorted(missing)}")
        images = list(data["images"])
        views = data.get("view_positions")
        labels = data.get("labels")
        return cls(
            study_id=str(data["study_id"]), images=images,
            view_positions=list(views) if views is not None else [None] * len(images),
            findings=data.get("findings"), impression=data.get("impression"),
            labels={str(k): int(v) for k, v in labels.items()} if labels is not None else None,
            split=data["split"], dataset=str(data["dataset"]))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict in the key order of the format (one JSONL line)."""
        return {k: getattr(self, k) for k in _RECORD_KEYS}

    def report_sections(self) -> list[str]:
        """The non-empty report sections, findings first."""
        return [s.strip() for s in (self.findings, self.impression) if s and s.strip()]

    def longest_section(self) -> str | None:
        """The longer of findings/impression (the retrieval text in the paper's code)."""
        sections = self.report_sections()
        return max(sections, key=len) if sections else None


@dataclass
class ManifestHeader:
    """Contents of ``manifest.json``."""

    dataset: str
    image_size: int
    version: int = MANIFEST_VERSION
    image_root: str = "images"
    num_studies: int = 0
    num_images: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    source: str | None = None
    notes: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestHeader:
        allowed = set(cls.__dataclass_fields__)
        unknown = set(data) - allowed
        if unknown:
            raise ManifestError(f"unknown manifest.json keys {sorted(unknown)}; "
                                f"allowed: {sorted(allowed)}")
        header = cls(**data)
        if header.version > MANIFEST_VERSION:
            raise ManifestError(f"manifest version {header.version} is newer than this code "
                                f"reads ({MANIFEST_VERSION}); update cxrclip-viewer")
        return header


@dataclass
class Manifest:
    """A loaded manifest: header, records and the resolved image root."""

    root: Path
    header: ManifestHeader
    records: list[StudyRecord]

    @property
    def image_root(self) -> Path:
        return self.root / self.header.image_root

    def image_path(self, relative: str) -> Path:
        """Absolute path of one cached image."""
        return self.image_root / relative

    def split(self, name: str) -> list[StudyRecord]:
        """Records of one split (``train``, ``validate`` or ``test``)."""
        if name not in SPLITS:
            raise ManifestError(f"split {name!r} is not one of {SPLITS}")
        return [r for r in self.records if r.split == name]


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_manifest(out_dir: str | Path, header: ManifestHeader,
                   records: Iterable[StudyRecord]) -> Path:
    """Write ``studies.jsonl`` and ``manifest.json`` (counts filled in) atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = list(records)
    ids = Counter(r.study_id for r in records)
    dupes = [k for k, n in ids.items() if n > 1]
    if dupes:
        raise ManifestError(f"duplicate study_id values {dupes[:5]}; study ids must be unique")
    lines = [json.dumps(r.to_dict(), ensure_ascii=False) for r in records]
    _atomic_write_text(out / STUDIES_NAME, "\n".join(lines) + ("\n" if lines else ""))
    header.num_studies = len(records)
    header.num_images = sum(len(r.images) for r in records)
    header.splits = dict(Counter(r.split for r in records))
    _atomic_write_text(out / HEADER_NAME, json.dumps(asdict(header), indent=2) + "\n")
    return out


def iter_records(path: str | Path) -> Iterator[StudyRecord]:
    """Yield records of a ``studies.jsonl`` file; errors name the file and line."""
    path = Path(path)
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield StudyRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, ManifestError, KeyError, TypeError) as exc:
                raise ManifestError(f"{path}:{lineno}: {exc}") from exc


def read_manifest(path: str | Path) -> Manifest:
    """Load a manifest directory (or its ``manifest.json`` / ``studies.jsonl``)."""
    root = Path(path)
    if root.is_file():
        root = root.parent
    header_file = root / HEADER_NAME
    studies_file = root / STUDIES_NAME
    for f, what in ((header_file, "the header written by `cxrclip prepare`"),
                    (studies_file, "one JSON study per line")):
        if not f.is_file():
            raise ManifestError(f"manifest file {f} is missing ({what}); run "
                                "`cxrclip prepare` or `cxrclip phantom` to create it")
    header = ManifestHeader.from_dict(json.loads(header_file.read_text(encoding="utf-8")))
    return Manifest(root=root, header=header, records=list(iter_records(studies_file)))
