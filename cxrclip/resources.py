"""Find the project's data files (``assets/``) from a source checkout or an installed copy.

``assets/`` at the repository root is the single source of truth (prompt files,
sentence bank, demo model). Search order:

1. the folder named by the environment variable ``CXRCLIP_ASSETS``;
2. ``<repo>/assets`` next to the ``cxrclip`` package (source checkout or
   ``pip install -e .``);
3. ``<sys.prefix>/share/cxrclip-viewer/assets`` (where a wheel install puts
   data files, see docs/losses_prompts.md).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path, PurePosixPath

__all__ = ["ASSETS_ENV", "asset_path", "asset_roots"]

ASSETS_ENV = "CXRCLIP_ASSETS"


def asset_roots() -> list[Path]:
    """Candidate ``assets`` folders in search order (they need not exist)."""
    roots = []
    if os.environ.get(ASSETS_ENV):
        roots.append(Path(os.environ[ASSETS_ENV]).expanduser())
    roots.append(Path(__file__).resolve().parents[1] / "assets")
    roots.append(Path(sys.prefix) / "share" / "cxrclip-viewer" / "assets")
    return roots


def asset_path(relative: str) -> Path:
    """Absolute path of ``assets/<relative>`` (e.g. ``"prompts/class_prompts.json"``).

    Raises:
        ValueError: ``relative`` is absolute or climbs out with ``..``.
        FileNotFoundError: no candidate folder holds the file; the message lists
            the places searched and how to fix it.
    """
    parts = PurePosixPath(relative.replace("\\", "/"))
    if parts.is_absolute() or ".." in parts.parts or not parts.parts:
        raise ValueError(f"asset path must be relative inside assets/, got {relative!r}")
    tried = [root / parts for root in asset_roots()]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"asset {relative!r} not found; looked in: {', '.join(str(p) for p in tried)}. "
        f"Run from a source checkout (pip install -e .), or set {ASSETS_ENV} to the folder "
        "that contains the project's assets/ files."
    )
