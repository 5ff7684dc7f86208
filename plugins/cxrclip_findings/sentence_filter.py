"""Report sentences that compare with an earlier study ("... since the prior study").

The sentence bank comes from real reports, many of which compare with a prior
examination. The model only sees the open study, so such a sentence in a
draft would speak of a study nobody looked at. `needs_prior` spots them; the
service leaves them out unless the viewer has a prior study open. The rule lives
in `cxrclip.report_mentions`, beside the other sentence rules.
"""
from __future__ import annotations

from cxrclip.report_mentions import needs_prior, without_comparisons

__all__ = ["needs_prior", "without_comparisons"]
