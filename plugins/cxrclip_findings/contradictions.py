"""Flag contradicting statements in a draft report: the rules live in `cxrclip.report_mentions`
(also used to keep nearest sentences that agree with a study, and to measure that)."""
from __future__ import annotations

from cxrclip.report_mentions import (Contradiction, Mention, contradicting_indices, extract_mentions,
                                     find_contradictions, split_sentences)

__all__ = ["Contradiction", "Mention", "contradicting_indices", "extract_mentions",
           "find_contradictions", "split_sentences"]
