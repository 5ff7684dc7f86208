"""Compatibility names: the Hide-PHI rule lives in `viewer.model.phi` (no Qt)."""
from __future__ import annotations

from viewer.model.phi import ANONYMOUS, IDENTIFYING_KEYWORDS, MASK, is_identifying

PHI_KEYWORDS = IDENTIFYING_KEYWORDS

__all__ = ["ANONYMOUS", "MASK", "PHI_KEYWORDS", "is_identifying", "mask_name", "mask_id"]


def mask_name(text: str, hide: bool) -> str:
    """``text`` unchanged, or "Anonymous" when PHI is hidden."""
    return ANONYMOUS if hide else text


def mask_id(text: str, hide: bool) -> str:
    """``text`` unchanged, or "***" when PHI is hidden."""
    return MASK if hide else text
