"""Helpers shared by the dataset adapters: required files, CSV reading, report sections."""
from __future__ import annotations

import csv
import gzip
import hashlib
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

from cxrclip.sentences import header_parts
from training.data.manifest import StudyRecord


class LayoutError(FileNotFoundError):
    """The dataset folder does not have the official layout; the message names the file."""


@dataclass
class PreparedStudy:
    """A manifest record plus the source file of each of its images (same order).

    ``sources`` is empty when the adapter ran with ``images=False`` (nothing to cache).
    """

    record: StudyRecord
    sources: list[Path]


def require_file(root: Path, names: list[str], what: str) -> Path:
    """The first of ``names`` that exists under ``root``; else a LayoutError naming them."""
    for name in names:
        path = root / name
        if path.is_file():
            return path
    raise LayoutError(f"{root / names[0]} is missing (looked for {', '.join(names)}): {what}")


def require_dir(root: Path, names: list[str], what: str) -> Path:
    """Like ``require_file`` for folders."""
    for name in names:
        if (root / name).is_dir():
            return root / name
    raise LayoutError(f"folder {root / names[0]} is missing (looked for {', '.join(names)}): {what}")


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a CSV or CSV.GZ file as dicts."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def check_columns(path: Path, row: dict[str, str], needed: list[str]) -> None:
    """Raise LayoutError when the CSV lacks columns."""
    missing = [c for c in needed if c not in row]
    if missing:
        raise LayoutError(f"{path} lacks columns {missing}; is it the official file?")


_SINGLE = frozenset({"FINDINGS", "IMPRESSION"})
_HEADER = re.compile(r"^\s*([A-Z][A-Z /&()-]{2,40}):", re.MULTILINE)


def report_sections(text: str) -> dict[str, str]:
    """Upper-case ``NAME:`` headed sections of a free-text report, whitespace collapsed."""
    sections: dict[str, str] = {}
    matches = list(_HEADER.finditer(text))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = " ".join(text[m.end():end].split())
        if body:
            sections[m.group(1).strip()] = body
    return sections


def findings_impression(text: str) -> tuple[str | None, str | None]:
    """FINDINGS and IMPRESSION sections of a report (None when absent).

    A combined section ("FINDINGS AND IMPRESSION:", "IMPRESSION AND FINDINGS:",
    "FINDINGS/IMPRESSION:") is the impression, as in MIMIC-CXR's own section
    parser; it fills the findings slot only when the report also has a separate
    IMPRESSION section and no FINDINGS section.
    """
    sections = report_sections(text)
    findings, impression = sections.get("FINDINGS"), sections.get("IMPRESSION")
    combined = [body for name, body in sections.items()
                if name not in _SINGLE and _SINGLE <= header_parts(name)]
    if combined and impression is None:
        impression = " ".join(combined)
    elif combined and findings is None:
        findings = " ".join(combined)
    return findings, impression


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (deterministic splits by patient)."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 2**32


_LABEL_CELLS = {"1.0": 1, "0.0": 0, "-1.0": -1, "1": 1, "0": 0, "-1": -1, "": None}


def parse_label(value: str | None) -> int | None:
    """CheXpert-style cell → 1/0/-1, or None for blank."""
    if value is None:
        return None
    if value in _LABEL_CELLS:  # the common spellings without float parsing (200k-row tables)
        return _LABEL_CELLS[value]
    if not value.strip():
        return None
    number = float(value)
    if number not in (1.0, 0.0, -1.0):
        raise ValueError(f"label value {value!r} is not 1, 0, -1 or blank")
    return int(number)


def cache_name(relative: PurePath | str) -> str:
    """Cache path of a source image: same relative path, ``.png`` suffix, forward slashes.

    String operations only: prepare calls this for every image of 200k-row tables.
    """
    text = relative.as_posix() if isinstance(relative, PurePath) else relative.replace("\\", "/")
    return posixpath.splitext(text)[0] + ".png"
