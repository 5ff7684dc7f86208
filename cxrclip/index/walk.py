"""Finding the files of an archive and the study each one belongs to.

Two layouts are understood, mixed freely under any SOURCE folder:

- **DICOM** files (any extension or none; detected by the 'DICM' preamble,
  `cxrclip.image_io.is_dicom`): grouped by StudyInstanceUID from the header.
- **MIMIC-CXR-JPG style** images ``.../pXX/pXXXXXXXX/sXXXXXXXX/*.jpg|png``: the
  study is the ``sNNNN`` folder, the patient the ``pNNNN`` folder. Other image
  files form one study per folder.

A study key is a non-identifying hash (SHA-256 of the StudyInstanceUID, of the
MIMIC patient/study folder names, or of the folder path), so results can be
shown and exported without paths or identifiers (``--hide-phi``).
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_MIMIC_STUDY = re.compile(r"^s\d+$")
_MIMIC_PATIENT = re.compile(r"^p\d+$")
INDEX_FOLDER_MARKER = "index.sqlite"


@dataclass(frozen=True)
class SourceFile:
    """A candidate file and what identifies its version (size, modification time in ns)."""

    path: str
    size: int
    mtime_ns: int


def study_key(kind: str, identity: str) -> str:
    """A stable, non-identifying study key: ``st-`` + 16 hex of SHA-256(kind:identity)."""
    return "st-" + hashlib.sha256(f"{kind}:{identity}".encode()).hexdigest()[:16]


def mimic_study(path: Path) -> tuple[str, str] | None:
    """(patient folder, study folder) of a MIMIC-CXR-JPG style path, else None."""
    parent = path.parent
    if _MIMIC_STUDY.match(parent.name) and _MIMIC_PATIENT.match(parent.parent.name):
        return parent.parent.name, parent.name
    return None


# Companion documents that sit beside studies (READMEs, label tables, reports) and DICOMDIR:
# left out of a folder walk instead of being indexed as failed files. The viewer's folder scan
# skips the same ones (`viewer.io.scan.DOCUMENT_SUFFIXES`; the packages may not import each
# other, and a test keeps the two sets equal).
DOCUMENT_SUFFIXES = frozenset({".md", ".txt", ".json", ".jsonl", ".csv", ".tsv", ".xml",
                               ".html", ".pdf", ".yaml", ".yml", ".log", ".py"})


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _companion(name: str) -> bool:
    return name.upper() == "DICOMDIR" or Path(name).suffix.lower() in DOCUMENT_SUFFIXES


def _is_index_folder(folder: Path) -> bool:
    return (folder / INDEX_FOLDER_MARKER).is_file()


def _walk_folder(folder: Path) -> Iterator[SourceFile]:
    """Every visible file under ``folder`` (index folders, hidden entries and companion documents skipped)."""
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        dirs[:] = [d for d in dirs if not _hidden(d) and not _is_index_folder(root_path / d)]
        for name in files:
            if _hidden(name) or _companion(name):
                continue
            path = root_path / name
            try:
                stat = path.stat()
            except OSError:
                continue  # vanished while walking
            yield SourceFile(str(path), int(stat.st_size), int(stat.st_mtime_ns))


def list_files(sources: Iterable[str | Path]) -> list[SourceFile]:
    """Every file under the sources (a source may also be one file), absolute, sorted by path.

    Raises FileNotFoundError naming a source that does not exist.
    """
    found: dict[str, SourceFile] = {}
    for source in sources:
        source = Path(source).expanduser().resolve()
        if source.is_file():
            stat = source.stat()
            found[str(source)] = SourceFile(str(source), int(stat.st_size), int(stat.st_mtime_ns))
        elif source.is_dir():
            found.update((f.path, f) for f in _walk_folder(source))
        else:
            raise FileNotFoundError(f"source {source} does not exist; give folders of DICOM or "
                                    "MIMIC-CXR-JPG style studies")
    return [found[p] for p in sorted(found)]


def files_to_do(files: list[SourceFile], recorded: dict[str, tuple[int, int]],
                failed: dict[str, tuple[int | None, int | None]], retry_failed: bool) -> list[SourceFile]:
    """Files not yet indexed in this version (same path, size and mtime = done); failed files
    of the same version are skipped unless ``retry_failed``."""
    todo = []
    for f in files:
        if recorded.get(f.path) == (f.size, f.mtime_ns):
            continue
        if not retry_failed and failed.get(f.path) == (f.size, f.mtime_ns):
            continue
        todo.append(f)
    return todo


def split_for_rank(files: list[SourceFile], rank: int, world_size: int) -> list[SourceFile]:
    """Contiguous slice ``rank`` of ``world_size`` of the sorted file list (a study's files stay
    together except at slice boundaries)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
    bounds = [len(files) * r // world_size for r in range(world_size + 1)]
    return files[bounds[rank]:bounds[rank + 1]]
