"""Private, atomic file writes for everything the viewer and its plugins save (exports, drafts).

Files are created 0600 (owner read/write only: they may hold patient
identifiers or report text), written to a temporary file in the target folder
and renamed into place, so a reader never sees half a file and a failed write
leaves the old file untouched.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

PRIVATE_MODE = 0o600


def write_private(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically with mode 0600; returns the path."""
    return write_private_with(path, lambda fh: fh.write(data))


def write_private_with(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(binary_file)`` on a 0600 temporary file, then rename it to ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.chmod(tmp, PRIVATE_MODE)  # mkstemp makes 0600 already; say it where it matters
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    os.chmod(path, PRIVATE_MODE)
    return path


def free_path(folder: str | Path, stem: str, suffix: str) -> Path:
    """``folder/stem+suffix``, or ``stem-2``, ``stem-3``... if that name is taken."""
    folder = Path(folder)
    candidate = folder / f"{stem}{suffix}"
    n = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{n}{suffix}"
        n += 1
    return candidate
