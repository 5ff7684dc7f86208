"""Scan a folder (or one file) for DICOM and PNG/JPEG images, headers only."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from viewer.model.study import StudyTree


@dataclass(frozen=True)
class Problem:
    """A file that could not be used, with a readable reason."""

    path: Path
    reason: str


@dataclass
class ScanResult:
    studies: StudyTree = field(default_factory=StudyTree)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # DICOMDIR and similar, silently ignored
    cancelled: bool = False


def scan_folder(path: str | Path, progress: Callable[[int, int], None] | None = None,
                cancel: Callable[[], bool] | None = None) -> ScanResult:
    """Recursively read headers of every file under ``path`` (stub, filled in next)."""
    raise NotImplementedError
