"""Report sentences that compare with an earlier study ("... since the prior study").

The sentence bank comes from real reports, many of which compare with a prior
examination. The model only sees the open study, so such a sentence in a
draft would speak of a study nobody looked at. `needs_prior` spots them; the
service leaves them out unless the viewer has a prior study open.
"""
from __future__ import annotations

import re

_EARLIER = r"(?:prior|previous|preceding|earlier|last|recent|old|comparison)"
_STUDY = r"(?:study|studies|exam|exams|examination|radiograph|radiographs|film|films|image|images|" \
         r"x-?ray|chest x-?ray|cxr|ct|one)"
_PATTERNS = (
    rf"\b{_EARLIER}\s+{_STUDY}\b",
    rf"\b(?:compared|comparison)\s+(?:to|with)\b",
    r"\b(?:since|than|from|to|with|on)\s+(?:the\s+)?(?:prior|previous|preceding|earlier)"
    r"\s*(?:[.,;:]|$)",
    r"^\s*stable\b",
    r"\b(?:unchanged|interval(?:ly)?|again (?:seen|noted|demonstrated)|has (?:improved|worsened|"
    r"increased|decreased|resolved|progressed)|have (?:improved|worsened|increased|decreased|"
    r"resolved|progressed)|(?:is|are) (?:new|stable|improved|worsened)|no longer (?:seen|visible)|"
    r"previously (?:seen|noted|described)|newly)\b",
)
_PRIOR_RE = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)


def needs_prior(sentence: str) -> bool:
    """True when ``sentence`` compares with an earlier study (so it needs one to be true)."""
    return _PRIOR_RE.search(sentence) is not None


def without_comparisons(sentences: list, text=lambda s: s) -> list:
    """The items whose ``text(item)`` does not compare with an earlier study, order kept."""
    return [s for s in sentences if not needs_prior(text(s))]
