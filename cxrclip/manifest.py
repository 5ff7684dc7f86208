"""``MANIFEST.sha256``: the SHA-256 sum of every file of a model folder, checked on load.

The file has ``sha256sum``'s format (``<64 hex>  <relative path>`` per line,
sorted by path, ``/`` as separator), so ``sha256sum -c MANIFEST.sha256`` inside
the folder checks it too. It covers every file in the folder except itself.
Folders saved before manifests existed have none and are not checked.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MANIFEST_FILE = "MANIFEST.sha256"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


@dataclass(frozen=True)
class ManifestProblem:
    """One thing wrong with a folder against its manifest (``path`` is relative to the folder)."""

    path: str
    reason: str  # "missing", "changed" or "malformed"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path) -> Path:
    """Write ``folder/MANIFEST.sha256`` over every other file in ``folder`` (recursively)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    lines = [f"{sha256_file(p)}  {p.relative_to(folder).as_posix()}\n" for p in files]
    path = folder / MANIFEST_FILE
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _entries(folder: Path) -> list[tuple[str, str]] | ManifestProblem:
    """(digest, relative path) pairs, or the problem that makes the manifest unreadable."""
    entries = []
    for number, line in enumerate((folder / MANIFEST_FILE).read_text(encoding="utf-8").splitlines(), 1):
        match = _LINE.match(line.strip("\r"))
        relative = PurePosixPath(match.group(2)) if match else None
        if relative is None or relative.is_absolute() or ".." in relative.parts:
            return ManifestProblem(MANIFEST_FILE, f"malformed (line {number})")
        entries.append((match.group(1), match.group(2)))
    return entries


def check_manifest(folder: Path) -> ManifestProblem | None:
    """The first file that is missing or differs from ``MANIFEST.sha256``; None when all match.

    A folder without a manifest (saved by an older cxrclip) has nothing to check.
    """
    if not (folder / MANIFEST_FILE).is_file():
        return None
    entries = _entries(folder)
    if isinstance(entries, ManifestProblem):
        return entries
    for digest, relative in entries:
        path = folder / relative
        if not path.is_file():
            return ManifestProblem(relative, "missing")
        if sha256_file(path) != digest:
            return ManifestProblem(relative, "changed")
    return None
