"""Finding mentions of report sentences, and when two statements contradict.

A draft built from report sentences can easily say both "Right pleural
effusion." and "No pleural effusion.". This module finds such pairs with a
small rule set, no model: each sentence is scanned for finding terms (a
vocabulary per CheXpert finding), each mention gets a polarity (present,
absent, uncertain) from negation/uncertainty cues in its clause and a side
(left, right, both, unspecified), and two mentions of the same finding
contradict when one is present or uncertain, the other absent, and their sides
overlap. An absent mention without a side covers both sides; a present mention
without a side only clashes with an absent mention without a side (it may be on
the other side). "No acute cardiopulmonary abnormality" style statements deny
every finding except support devices.

The same rule tells whether a sentence contradicts a study: the study's findings are
written as mentions (`study_mentions`: present ones with their side, the others absent,
"No Finding" present for a study without findings) and a sentence contradicts the study
when one of its mentions clashes with one of those (`contradicts_study`): it asserts (or
suggests) a finding the study lacks, negates one it has, or calls an abnormal study normal.

Everything here is pure Python; tested in tests/plugins_cxrclip and tests/cxrclip_engine.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Polarity = Literal["present", "absent", "uncertain"]
Side = Literal["left", "right", "both"]

NO_FINDING = "No Finding"
SUPPORT_DEVICES = "Support Devices"

# Finding vocabulary: lower-case phrases -> CheXpert finding. Longest phrases win.
_TERMS: dict[str, tuple[str, ...]] = {
    "Pleural Effusion": ("pleural effusion", "pleural effusions", "effusion", "effusions",
                         "pleural fluid", "blunting of the costophrenic angle",
                         "blunted costophrenic angle", "blunting of the costophrenic angles",
                         "blunted costophrenic angles", "hydrothorax"),
    "Pneumothorax": ("pneumothorax", "pneumothoraces", "hydropneumothorax"),
    "Cardiomegaly": ("cardiomegaly", "enlarged heart", "cardiac enlargement",
                     "enlarged cardiac silhouette", "heart is enlarged", "heart is mildly enlarged",
                     "heart is moderately enlarged", "heart is severely enlarged",
                     "cardiac silhouette is enlarged"),
    "Enlarged Cardiomediastinum": ("widened mediastinum", "mediastinal widening",
                                   "enlarged cardiomediastinal silhouette",
                                   "mediastinum is widened", "widening of the mediastinum",
                                   "enlarged cardiomediastinum"),
    "Edema": ("edema", "oedema", "pulmonary edema", "interstitial edema", "vascular congestion",
              "pulmonary vascular congestion", "kerley b lines", "kerley lines"),
    "Consolidation": ("consolidation", "consolidations", "airspace consolidation"),
    "Pneumonia": ("pneumonia", "pneumonias", "bronchopneumonia"),
    "Atelectasis": ("atelectasis", "atelectatic", "atelectases", "lobar collapse"),
    "Lung Lesion": ("nodule", "nodules", "pulmonary nodule", "lung nodule", "mass", "masses",
                    "lung mass", "pulmonary mass", "lung lesion", "nodular opacity"),
    "Lung Opacity": ("opacity", "opacities", "opacification", "infiltrate", "infiltrates",
                     "airspace disease", "airspace opacity", "lung opacity"),
    "Pleural Other": ("pleural thickening", "pleural plaque", "pleural plaques",
                      "pleural calcification", "pleural scarring"),
    "Fracture": ("fracture", "fractures", "fractured"),
    "Support Devices": ("support device", "support devices", "endotracheal tube", "et tube",
                        "nasogastric tube", "ng tube", "enteric tube", "feeding tube", "chest tube",
                        "central line", "central venous catheter", "picc", "picc line",
                        "pacemaker", "defibrillator", "icd", "sternotomy wires", "tracheostomy tube",
                        "swan-ganz catheter", "pacing leads", "pacemaker leads"),
}

# Whole statements of normality: phrase -> findings they deny.
_NORMAL_STATEMENTS: dict[str, tuple[str, ...]] = {
    "heart size is normal": ("Cardiomegaly",),
    "normal heart size": ("Cardiomegaly",),
    "heart is normal in size": ("Cardiomegaly",),
    "heart size is within normal limits": ("Cardiomegaly",),
    "cardiac silhouette is normal": ("Cardiomegaly",),
    "normal cardiac silhouette": ("Cardiomegaly",),
    "normal cardiomediastinal silhouette": ("Cardiomegaly", "Enlarged Cardiomediastinum"),
    "cardiomediastinal silhouette is normal": ("Cardiomegaly", "Enlarged Cardiomediastinum"),
    "cardiomediastinal silhouette is within normal limits": ("Cardiomegaly",
                                                             "Enlarged Cardiomediastinum"),
    "mediastinal contours are normal": ("Enlarged Cardiomediastinum",),
    "normal mediastinal contours": ("Enlarged Cardiomediastinum",),
    "lungs are clear": ("Lung Opacity", "Consolidation", "Pneumonia", "Edema"),
    "clear lungs": ("Lung Opacity", "Consolidation", "Pneumonia", "Edema"),
    "costophrenic angles are sharp": ("Pleural Effusion",),
    "sharp costophrenic angles": ("Pleural Effusion",),
}

# Statements that the whole study is normal: they deny every finding but devices.
_NO_FINDING_STATEMENTS: tuple[str, ...] = (
    "no acute cardiopulmonary abnormality", "no acute cardiopulmonary process",
    "no acute cardiopulmonary disease", "no acute cardiopulmonary findings",
    "no acute intrathoracic abnormality", "no acute intrathoracic process",
    "normal chest radiograph", "normal chest x-ray", "normal study", "no acute abnormality",
    "no acute findings", "no radiographic abnormality",
)

_PRE_NEGATION = ("no", "not", "without", "negative for", "free of", "no evidence of",
                 "no signs of", "no sign of", "absence of", "resolution of", "resolved",
                 "rules out", "ruled out", "nor", "neither", "clear of")
_POST_NEGATION = ("is not seen", "are not seen", "not seen", "is absent", "are absent",
                  "has resolved", "have resolved", "is not identified", "are not identified",
                  "not identified", "is not present", "are not present", "not present",
                  "is excluded", "has been removed", "have been removed",
                  "not definitely seen", "not definitely identified")
_UNCERTAIN = ("possible", "possibly", "probable", "probably", "may represent", "may be",
              "could represent", "could be", "cannot exclude", "can not exclude",
              "cannot be excluded", "not excluded", "questionable", "suspected", "suspicious for",
              "likely", "concerning for", "suggestive of", "suggests", "versus", "equivocal")
_CLAUSE_BREAKS = re.compile(r";|\bbut\b|\bhowever\b|\balthough\b|\bthough\b|\bwhereas\b|"
                            r"\bexcept\b|\bwith the exception of\b")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])|\n+")


@dataclass(frozen=True)
class Mention:
    """One finding mentioned in a sentence, with polarity and side."""

    finding: str
    polarity: Polarity
    side: Side | None
    phrase: str


@dataclass(frozen=True)
class Contradiction:
    """Two sentences (indices into the checked list) that disagree about a finding."""

    first: int
    second: int
    finding: str
    reason: str


def _phrase_pattern(phrases: Sequence[str]) -> re.Pattern[str]:
    ordered = sorted(set(phrases), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(p) for p in ordered) + r")(?![\w-])")


_TERM_TO_FINDING = {term: finding for finding, terms in _TERMS.items() for term in terms}
_TERM_RE = _phrase_pattern(list(_TERM_TO_FINDING))
_NORMAL_RE = _phrase_pattern(list(_NORMAL_STATEMENTS))
_NO_FINDING_RE = _phrase_pattern(_NO_FINDING_STATEMENTS)
_PRE_NEG_RE = _phrase_pattern(_PRE_NEGATION)
_POST_NEG_RE = _phrase_pattern(_POST_NEGATION)
_UNCERTAIN_RE = _phrase_pattern(_UNCERTAIN)
_SIDE_AFTER_RE = re.compile(r"^\s*(?:is |are )?(?:on the |in the |at the )?"
                            r"(left|right|bilaterally|bilateral)\b")


def split_sentences(text: str) -> list[str]:
    """Split a draft into sentences: one per line, and at ". " before a capital or digit."""
    parts = (p.strip() for p in _SENTENCE_SPLIT.split(text))
    return [p for p in parts if p]


def _side_of(window: str) -> Side | None:
    left = re.search(r"\bleft\b", window) is not None
    right = re.search(r"\bright\b", window) is not None
    if re.search(r"\bbilateral(ly)?\b|\bboth\b", window) or (left and right):
        return "both"
    if left:
        return "left"
    if right:
        return "right"
    return None


def _clauses(sentence: str) -> list[tuple[int, int]]:
    """(start, end) spans of the clauses of a lower-cased sentence."""
    spans, start = [], 0
    for match in _CLAUSE_BREAKS.finditer(sentence):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(sentence)))
    return spans


def _polarity(clause: str, term_start: int, term_end: int) -> Polarity:
    """Polarity of a term at [term_start, term_end) inside one clause (clause coordinates)."""
    before, after = clause[:term_start], clause[term_end:]
    if _UNCERTAIN_RE.search(before) or _UNCERTAIN_RE.search(after):
        return "uncertain"
    if _PRE_NEG_RE.search(before) or _POST_NEG_RE.search(after):
        return "absent"
    return "present"


def _clause_mentions(clause: str) -> list[Mention]:
    matches = list(_TERM_RE.finditer(clause))
    mentions: list[Mention] = []
    for i, match in enumerate(matches):
        window_start = matches[i - 1].end() if i else 0
        side = _side_of(clause[window_start:match.end()])
        after = _SIDE_AFTER_RE.match(clause[match.end():])
        if side is None and after:
            side = _side_of(after.group(1))
        polarity = _polarity(clause, match.start(), match.end())
        finding = _TERM_TO_FINDING[match.group(1)]
        mentions.append(Mention(finding, polarity, side, match.group(1)))
    for match in _NORMAL_RE.finditer(clause):
        mentions.extend(Mention(f, "absent", None, match.group(1))
                        for f in _NORMAL_STATEMENTS[match.group(1)])
    for match in _NO_FINDING_RE.finditer(clause):
        mentions.append(Mention(NO_FINDING, "present", None, match.group(1)))
    return mentions


def extract_mentions(sentence: str) -> list[Mention]:
    """All finding mentions of one sentence, in clause order."""
    text = " ".join(sentence.lower().split())
    mentions: list[Mention] = []
    for start, end in _clauses(text):
        mentions.extend(_clause_mentions(text[start:end]))
    return mentions


def _sides_overlap(positive: Side | None, negative: Side | None) -> bool:
    if negative is None:
        return True
    if positive is None:
        return False
    return positive == "both" or negative == "both" or positive == negative


def _clash(a: Mention, b: Mention) -> str | None:
    """Why mentions a and b contradict, or None."""
    if NO_FINDING in (a.finding, b.finding):
        other = b if a.finding == NO_FINDING else a
        if other.finding in (NO_FINDING, SUPPORT_DEVICES) or other.polarity == "absent":
            return None
        return f"'{a.phrase if a.finding == NO_FINDING else b.phrase}' vs '{other.phrase}'"
    if a.finding != b.finding or (a.polarity == "absent") == (b.polarity == "absent"):
        return None
    pos, neg = (a, b) if b.polarity == "absent" else (b, a)
    if not _sides_overlap(pos.side, neg.side):
        return None
    kind = "possible" if pos.polarity == "uncertain" else "present"
    return f"{a.finding}: {kind} ('{pos.phrase}') and absent ('{neg.phrase}')"


def find_contradictions(sentences: Sequence[str]) -> list[Contradiction]:
    """Pairs of sentences (i <= j) whose mentions contradict; one entry per pair and finding."""
    mentions = [extract_mentions(s) for s in sentences]
    found: dict[tuple[int, int, str], Contradiction] = {}
    for i, first in enumerate(mentions):
        for j in range(i, len(mentions)):
            for a_idx, a in enumerate(first):
                start = a_idx + 1 if i == j else 0
                for b in mentions[j][start:]:
                    reason = _clash(a, b)
                    finding = b.finding if a.finding == NO_FINDING else a.finding
                    if reason and (i, j, finding) not in found:
                        found[(i, j, finding)] = Contradiction(i, j, finding, reason)
    return list(found.values())


def contradicting_indices(sentences: Sequence[str]) -> set[int]:
    """Indices of the sentences involved in at least one contradiction."""
    flagged: set[int] = set()
    for c in find_contradictions(sentences):
        flagged.update((c.first, c.second))
    return flagged


# CheXpert's hierarchy: a study with a child finding has its parent too.
PARENTS = {"Lung Opacity": ("Consolidation", "Pneumonia", "Atelectasis", "Edema", "Lung Lesion"),
           "Enlarged Cardiomediastinum": ("Cardiomegaly",)}


def study_mentions(present: dict[str, Side | None], findings: Sequence[str],
                   absent: Sequence[str] | None = None) -> list[Mention]:
    """A study's findings as mentions: ``present`` (finding -> side or None) with parents
    added, and ``absent`` (default: every other of ``findings``) negated; "No Finding" is
    present when nothing but support devices is."""
    have = dict(present)
    for parent, children in PARENTS.items():
        if parent not in have and any(c in have for c in children):
            have[parent] = None
    mentions = [Mention(f, "present", side, "study") for f, side in have.items() if f != NO_FINDING]
    negated = [f for f in findings if f not in have] if absent is None else \
        [f for f in absent if f not in have]
    mentions += [Mention(f, "absent", None, "study") for f in negated if f != NO_FINDING]
    if not set(have) - {SUPPORT_DEVICES, NO_FINDING}:
        mentions.append(Mention(NO_FINDING, "present", None, "study"))
    return mentions


def contradicts_study(sentence: str, study: Sequence[Mention]) -> str | None:
    """Why ``sentence`` contradicts a study given as `study_mentions`, or None."""
    for mention in extract_mentions(sentence):
        for fact in study:
            reason = _clash(mention, fact)
            if reason:
                return reason
    return None


def side_of_ground_truth(side: str | None) -> Side | None:
    """A phantom ground-truth side ("right", "left", "bilateral", None) as a mention side."""
    return "both" if side == "bilateral" else side  # type: ignore[return-value]


# ----- sentences that compare with an earlier study -----------------------------------
# The sentence bank comes from reports, many of which compare with a prior examination. The
# model only sees the open study, so such a sentence would speak of a study nobody looked at.
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
