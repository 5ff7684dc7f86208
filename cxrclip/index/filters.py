"""``--where`` filters: ``"Pleural Effusion>0.8"``, ``"view=PA"``, ``"date>=20200101"``.

A finding filter compares the study-level zero-shot probability (the recipe of
`cxrclip.zero_shot`, stored at build time); ``view`` restricts which views count
(a study keeps only its views that pass, and is dropped when none does);
``date`` compares the StudyDate (YYYYMMDD; ``2020-01-01`` is accepted too).
"""
from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq,
    ">": operator.gt, "<": operator.lt, "=": operator.eq}
SPECIAL_KEYS = ("view", "date")
_EXPR = re.compile(r"^\s*(?P<key>[^<>=!]+?)\s*(?P<op>>=|<=|!=|==|>|<|=)\s*(?P<value>.+?)\s*$")


class FilterError(ValueError):
    """A ``--where`` expression that cannot be understood; the message lists what is allowed."""


@dataclass(frozen=True)
class Filter:
    """One comparison: ``key`` ("view", "date" or a canonical finding name), operator, value."""

    key: str
    op: str
    value: Any

    @property
    def on_views(self) -> bool:
        return self.key == "view"

    def accepts(self, actual: Any) -> bool:
        """True when ``actual`` passes (a missing value never passes)."""
        if actual is None:
            return False
        return OPERATORS[self.op](actual, self.value)


def _help(expr: str, why: str) -> FilterError:
    return FilterError(
        f"--where {expr!r}: {why}. Write KEY OP VALUE with OP one of {', '.join(sorted(set(OPERATORS)))}; "
        f"KEY is a finding (e.g. 'Pleural Effusion>0.8', probability 0..1), 'view' (view=PA, = or != only) "
        f"or 'date' (date>=20200101)")


def _date(expr: str, text: str) -> str:
    digits = text.replace("-", "")
    if not re.fullmatch(r"\d{8}", digits):
        raise _help(expr, f"date {text!r} is not YYYYMMDD")
    return digits


def parse_where(expr: str) -> Filter:
    """Parse one ``--where`` expression; raises `FilterError` naming the allowed keys and operators."""
    match = _EXPR.match(expr or "")
    if match is None:
        raise _help(expr, "not of the form KEY OP VALUE")
    key, op, value = match["key"].strip(), match["op"], match["value"].strip().strip("'\"")
    if key.lower() == "view":
        if op not in ("=", "==", "!="):
            raise _help(expr, f"'view' takes = or !=, not {op}")
        return Filter("view", op, value.upper())
    if key.lower() == "date":
        return Filter("date", op, _date(expr, value))
    from cxrclip.prompts import canonical_finding

    try:
        name = canonical_finding(key)
    except ValueError as exc:
        raise _help(expr, f"{key!r} is not 'view', 'date' or a finding ({exc})") from None
    try:
        number = float(value)
    except ValueError:
        raise _help(expr, f"{value!r} is not a number") from None
    if not 0.0 <= number <= 1.0:
        raise _help(expr, f"probability {number} is outside 0..1")
    return Filter(name, op, number)


def check_findings(filters: Sequence[Filter], known: Sequence[str]) -> None:
    """Raise `FilterError` when a finding filter names a finding this index did not score."""
    for f in filters:
        if f.key not in SPECIAL_KEYS and f.key not in known:
            raise FilterError(f"--where {f.key}: this index has no scores for {f.key!r}; it has "
                              f"{', '.join(known)}")


def view_passes(filters: Sequence[Filter], view_position: str | None) -> bool:
    """All ``view`` filters accept this view position."""
    return all(f.accepts((view_position or "").upper()) for f in filters if f.on_views)


def study_passes(filters: Sequence[Filter], study_date: str | None, findings: dict[str, float]) -> bool:
    """All ``date`` and finding filters accept this study."""
    for f in filters:
        if f.on_views:
            continue
        actual = (study_date or None) if f.key == "date" else findings.get(f.key)
        if not f.accepts(actual):
            return False
    return True
