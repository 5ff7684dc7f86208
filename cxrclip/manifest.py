"""``MANIFEST.sha256``: the SHA-256 sum of every file of a model folder, checked on load.

The file has ``sha256sum``'s format (``<64 hex>  <relative path>`` per line,
sorted by path, ``/`` as separator), so ``sha256sum -c MANIFEST.sha256`` inside
the folder checks it too. It covers every file in the folder except itself.
Folders saved before manifests existed have none and are not checked.

Hashing a model folder reads all of it (~100 MB for the demo model, ~0.1 s of a core on
every load). An application may keep a `DigestCache` (`use_digest_cache`): a file whose
identity (path, size, modification and status-change times, inode, device) is unchanged
since its digest was computed is not read again. Writing to a file changes its status-change
time, which no user can set, so an edited, replaced or copied-over file is hashed afresh.
The library's default is no cache: every check reads every file.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
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


class DigestCache:
    """SHA-256 digests already computed, keyed by the file's identity, in one JSON file.

    An unreadable or malformed cache file counts as empty; `save` replaces it atomically.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, list] | None = None
        self._dirty = False
        self._lock = threading.Lock()

    @staticmethod
    def _identity(file: Path) -> tuple[str, list[int]]:
        st = file.stat()
        return str(file.resolve()), [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]

    def _load(self) -> dict[str, list]:
        if self._entries is None:
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._entries = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def digest(self, file: Path) -> str:
        """The file's SHA-256: from the cache when its identity is unchanged, else read and kept."""
        key, identity = self._identity(file)
        with self._lock:
            known = self._load().get(key)
        if isinstance(known, list) and known[:-1] == identity and isinstance(known[-1], str):
            return known[-1]
        digest = sha256_file(file)
        with self._lock:
            self._load()[key] = identity + [digest]
            self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache if it changed (best effort: a read-only cache folder is not an error)."""
        with self._lock:
            if not self._dirty:
                return
            tmp = None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(self._entries, fh)
                os.replace(tmp, self.path)
                self._dirty = False
            except OSError:
                if tmp is not None:  # a failed write leaves no temporary file behind
                    Path(tmp).unlink(missing_ok=True)


_digest_cache: DigestCache | None = None


def use_digest_cache(path: str | Path | None) -> None:
    """Let every later `check_manifest` of this process reuse digests kept in ``path`` (None: off)."""
    global _digest_cache
    _digest_cache = DigestCache(path) if path is not None else None


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
    cache = _digest_cache
    try:
        for digest, relative in entries:
            path = folder / relative
            if not path.is_file():
                return ManifestProblem(relative, "missing")
            if (cache.digest(path) if cache is not None else sha256_file(path)) != digest:
                return ManifestProblem(relative, "changed")
        return None
    finally:
        if cache is not None:
            cache.save()
