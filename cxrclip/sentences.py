"""Report text → clean, de-duplicated sentences, and readers for report sources.

Radiology reports mix section headers ("FINDINGS:"), numbered impressions
("1. ... 2. ..."), abbreviations ("e.g.", "approx.") and decimals ("1.5 cm");
a naive split on "." breaks all of these. This module splits them into
sentences that make sense on their own, which is what a sentence bank needs.

Source readers (CSV, TXT, OpenI/IU-Xray XML folders) return report texts;
`collect_sentences` turns any list of texts into `(sentence, count)` pairs.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cxrclip.openi import OpenIReportError, read_openi_report

# Words after which a period does not end the sentence (compared lower-case,
# without the final period).
_NON_BREAKING = frozenset(
    {"e.g", "i.e", "eg", "ie", "approx", "vs", "cf", "dr", "mr", "mrs", "ms", "incl", "resp", "fig", "prox", "ca"}
)
# Breaking only when the next word starts upper-case ("etc. The heart ..." ends,
# "etc. and" does not).
_SOFT_BREAKING = frozenset({"etc", "al"})

_HEADER_RE = re.compile(
    r"(?:(?<=^)|(?<=[\s.;]))(?:[A-Z][A-Z/&]*(?:[ \t][A-Z/&]+){0,6})[ \t]*:[ \t]*",
    re.MULTILINE,
)
# A list marker "1." / "2)" at the start, after a newline or after ". " / ": ".
_LIST_MARKER_RE = re.compile(r"(?:^|(?<=[\n\x1e.:;!?]))[ \t]*\(?\d{1,2}[.)](?=[ \t]+\S)(?!\d)", re.MULTILINE)
# A numbered item anywhere after a space or comma ("process 2. Stable", "1.No acute"),
# followed by a letter; only taken as a list marker when the numbers run 1, 2, ...
_NUMBERED_ITEM_RE = re.compile(r"(?:^|(?<=[\s,;:\x1e]))[ \t]*\(?(\d{1,2})[.)](?!\d)(?=[ \t]*[A-Za-z])")
_HEADER_JOINER_RE = re.compile(r"\s+AND\s+|\s*[/&]\s*")
_BREAK_RE = re.compile(r"[.!?]+(?=\s|$)")
_WORD_BEFORE_RE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
_SPACE_RE = re.compile(r"\s+")
_PARAGRAPH_RE = re.compile(r"\n[ \t]*\n")
# Hard sentence break inserted for headers, list markers and blank lines; single
# newlines are only line wrapping (reports are often hard-wrapped).
_BREAK = "\x1e"
_EDGE_JUNK = " \t\n\x1e-*•,;:"

DEFAULT_MIN_LETTERS = 4
TEXT_COLUMNS = ("report", "text", "findings", "impression")


class ReportSourceError(ValueError):
    """A report source (CSV/TXT/XML) cannot be read as asked."""


@dataclass(frozen=True)
class SentenceCount:
    """One distinct sentence and how often it occurred in the source."""

    text: str
    count: int


def strip_headers(text: str) -> str:
    """Remove upper-case section headers such as ``FINDINGS:`` or ``IMPRESSION:``.

    The header is replaced by a sentence break so that text before it does
    not run into the section that follows.
    """
    return _HEADER_RE.sub(_BREAK, text)


def select_sections(text: str, names: Sequence[str]) -> str:
    """Keep only the sections whose header is in `names` ("FINDINGS", "IMPRESSION", ...).

    Full reports (e.g. MIMIC-CXR) carry INDICATION/TECHNIQUE/COMPARISON sections
    that do not describe the image. Text without any of the wanted headers is
    returned whole (it is already a section, e.g. a "findings" CSV column).
    """
    wanted = {name.strip().upper() for name in names}
    headers = list(_HEADER_RE.finditer(text))
    kept = [text[h.end():headers[i + 1].start() if i + 1 < len(headers) else len(text)]
            for i, h in enumerate(headers) if wanted & header_parts(h.group(0))]
    return "\n\n".join(kept) if kept else text


def header_parts(header: str) -> set[str]:
    """Section names in one header: "FINDINGS AND IMPRESSION:" → {"FINDINGS", "IMPRESSION"}.

    The header itself is always one of them, so "FINDINGS:" → {"FINDINGS"}.
    """
    name = " ".join(header.strip().rstrip(":").split()).upper()
    return {name, *(part.strip() for part in _HEADER_JOINER_RE.split(name) if part.strip())}


def _numbered_runs(text: str) -> list[tuple[int, int]]:
    """Spans of item numbers that count up from 1 ("1. A 2. B 3. C"), runs of two or more.

    A lone "2." ("There are 2. Small ...") or a number that does not continue the
    run ("Effusion 10. Edema") is left alone.
    """
    spans: list[tuple[int, int]] = []
    run: list[tuple[int, int]] = []
    for match in _NUMBERED_ITEM_RE.finditer(text):
        number = int(match.group(1))
        if number == 1:
            spans.extend(run if len(run) >= 2 else [])
            run = [match.span()]
        elif run and number == len(run) + 1:
            run.append(match.span())
    spans.extend(run if len(run) >= 2 else [])
    return spans


def _mark_list_items(text: str) -> str:
    """Turn numbered list markers into sentence breaks ("1. A. 2. B" → "A. | B").

    Markers at the start of a line or after sentence punctuation always count;
    elsewhere ("1. A 2. B", "1.A. 2.B.") only a run numbered 1, 2, ... does.
    """
    spans = {m.span() for m in _LIST_MARKER_RE.finditer(text)}
    spans.update(_numbered_runs(text))
    out, last = [], 0
    for start, end in sorted(spans):
        if start < last:  # overlapping match of the other rule
            continue
        out.append(text[last:start] + _BREAK)
        last = end
    out.append(text[last:])
    return "".join(out)


def _ends_sentence(text: str, dot_start: int, dot_end: int) -> bool:
    """Whether the punctuation run text[dot_start:dot_end] ends a sentence."""
    if text[dot_start] != ".":
        return True
    match = _WORD_BEFORE_RE.search(text, 0, dot_start)
    word = match.group(1).lower().rstrip(".") if match else ""
    if word in _NON_BREAKING:
        return False
    if word in _SOFT_BREAKING:
        rest = text[dot_end:].lstrip()
        return not rest or rest[0].isupper()
    return True


def _split_plain(text: str) -> list[str]:
    """Split text (no headers, no list markers) at sentence-ending punctuation."""
    pieces: list[str] = []
    start = 0
    for match in _BREAK_RE.finditer(text):
        if _ends_sentence(text, match.start(), match.end()):
            pieces.append(text[start : match.end()])
            start = match.end()
    pieces.append(text[start:])
    return pieces


def normalize_sentence(sentence: str) -> str:
    """Collapse whitespace and trim bullets/separators; keep the original case."""
    return _SPACE_RE.sub(" ", sentence).strip(_EDGE_JUNK)


def sentence_key(sentence: str) -> str:
    """Key used for case-insensitive de-duplication ("No effusion." == "no effusion")."""
    return normalize_sentence(sentence).lower().rstrip(".!? ")


def _letter_count(sentence: str) -> int:
    return sum(ch.isalpha() for ch in sentence)


def split_sentences(text: str, min_letters: int = DEFAULT_MIN_LETTERS) -> list[str]:
    """Split one report into normalised sentences.

    Handles section headers, numbered items ("1. ... 2. ..."), abbreviations
    ("e.g.", "approx.") and decimals ("1.5 cm"). Sentences with fewer than
    `min_letters` letters (e.g. "No.", "___.") are dropped.
    """
    if not isinstance(text, str):
        raise TypeError(f"report text must be str, got {type(text).__name__}")
    prepared = _PARAGRAPH_RE.sub(_BREAK, _mark_list_items(strip_headers(text)))
    sentences: list[str] = []
    for block in prepared.split(_BREAK):
        for piece in _split_plain(block):
            sentence = normalize_sentence(piece)
            if _letter_count(sentence) >= min_letters:
                sentences.append(sentence)
    return sentences


def collect_sentences(texts: Iterable[str], min_letters: int = DEFAULT_MIN_LETTERS,
                      sections: Sequence[str] | None = None) -> list[SentenceCount]:
    """Split all texts and de-duplicate case-insensitively, counting occurrences.

    With `sections`, only those report sections are used (see `select_sections`).
    The first spelling seen is kept. Result is sorted by count (descending),
    ties in order of first appearance.
    """
    first_text: dict[str, str] = {}
    counts: dict[str, int] = {}
    for text in texts:
        if sections:
            text = select_sections(text, sections)
        for sentence in split_sentences(text, min_letters=min_letters):
            key = sentence_key(sentence)
            if key not in counts:
                first_text[key] = sentence
                counts[key] = 0
            counts[key] += 1
    order = {key: i for i, key in enumerate(counts)}
    keys = sorted(counts, key=lambda k: (-counts[k], order[k]))
    return [SentenceCount(first_text[k], counts[k]) for k in keys]


def read_csv_reports(path: Path, column: str | None = None) -> list[str]:
    """Read report texts from one column of a CSV file.

    Without `column`, the first of report/text/findings/impression present
    (case-insensitive) is used. Empty cells are skipped.
    """
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        name = _choose_column(fields, column, path)
        return [row[name] for row in reader if row.get(name) and row[name].strip()]


def _choose_column(fields: list[str], column: str | None, path: Path) -> str:
    by_lower = {f.lower(): f for f in fields}
    wanted = [column] if column else list(TEXT_COLUMNS)
    for name in wanted:
        if name.lower() in by_lower:
            return by_lower[name.lower()]
    hint = f"column {column!r}" if column else f"any of the columns {list(TEXT_COLUMNS)}"
    raise ReportSourceError(
        f"{path}: CSV has no {hint}; its columns are {fields}. Choose one with --column NAME."
    )


def read_txt_reports(path: Path) -> list[str]:
    """Read a text file with one report (or one sentence) per non-empty line."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _xml_sections(file: Path, wanted: set[str]) -> list[str]:
    """Texts of the `<AbstractText Label=...>` sections of one OpenI XML file whose label is wanted."""
    try:
        report = read_openi_report(file)
    except OpenIReportError as exc:
        raise ReportSourceError(str(exc)) from exc
    return [text for label, text in report.sections.items() if label in wanted]


def read_openi_xml(path: Path, labels: tuple[str, ...] = ("FINDINGS", "IMPRESSION")) -> list[str]:
    """Read the FINDINGS/IMPRESSION sections of an OpenI (IU-Xray) XML file or folder.

    Each non-empty `<AbstractText Label="...">` section becomes one text.
    """
    path = Path(path)
    files = sorted(path.rglob("*.xml")) if path.is_dir() else [path]
    if not files:
        raise ReportSourceError(f"{path}: no .xml files found; expected the OpenI/IU-Xray report folder")
    wanted = {label.upper() for label in labels}
    return [text for file in files for text in _xml_sections(file, wanted)]


def read_report_source(path: Path, column: str | None = None) -> list[str]:
    """Read report texts from a CSV file, a TXT file, or an OpenI XML file/folder."""
    path = Path(path)
    if path.is_dir():
        return read_openi_xml(path)
    if not path.is_file():
        raise ReportSourceError(f"report source {path} does not exist; pass a .csv, a .txt or an XML folder")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_csv_reports(path, column)
    if suffix in {".txt", ".text"}:
        return read_txt_reports(path)
    if suffix == ".xml":
        return read_openi_xml(path)
    raise ReportSourceError(f"{path}: unsupported report source type {suffix!r}; use .csv, .txt or an XML folder")
