"""Typed queries: what QIDO-RS and C-FIND both compile their parameters into.

The archive never sees a query string or a C-FIND identifier, only a :class:`Query` made of
:class:`Condition` objects, each an attribute and one matcher per PS3.4 C.2.2.2 matching type.
:func:`condition` turns a raw key value (the same text form in a URL and in an identifier)
into a condition, raising :class:`InvalidQuery` that names the attribute when it cannot.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from storage import normalize
from storage.attributes import Kind, Level, QueryAttribute
from storage.errors import InvalidQuery

_Norm = Callable[[str], str]

IS_MIN, IS_MAX = -(2**31), 2**31 - 1
UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_valid_uid(value: str) -> bool:
    """PS3.5 §9.1: digits and dots, no leading zeros in a component, at most 64 characters."""
    return 0 < len(value) <= 64 and UID_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class SingleValue:
    """PS3.4 C.2.2.2.1: the value must equal the stored value."""

    value: str | int


@dataclass(frozen=True, slots=True)
class UidList:
    """PS3.4 C.2.2.2.2: the stored UID must be one of the values."""

    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Wildcard:
    """PS3.4 C.2.2.2.4: '*' matches any run of characters, '?' any single character."""

    pattern: str


@dataclass(frozen=True, slots=True)
class Range:
    """PS3.4 C.2.2.2.5: inclusive range on canonical date/time strings; an open end is None."""

    start: str | None
    end: str | None


@dataclass(frozen=True, slots=True)
class Universal:
    """PS3.4 C.2.2.2.3: an empty value matches everything and asks for the attribute back."""


Matcher = SingleValue | UidList | Wildcard | Range | Universal


@dataclass(frozen=True, slots=True)
class Condition:
    attribute: QueryAttribute
    matcher: Matcher


@dataclass(frozen=True)
class Query:
    """A search at one level, optionally scoped to a study and series from the target URI.

    ``include`` is the set of extra tags to return, or "all"; ``limit`` None means the
    caller's own cap applies. ``after`` is a keyset position (a study-level search resumed
    after the row at that position, see ``Archive.query``); ``offset`` counts from there.
    """

    level: Level
    conditions: tuple[Condition, ...] = ()
    study_uid: str | None = None
    series_uid: str | None = None
    include: frozenset[int] | Literal["all"] = field(default_factory=frozenset)
    fuzzy: bool = False
    limit: int | None = None
    offset: int = 0
    after: int | None = None


def condition(attribute: QueryAttribute, raw: str) -> Condition:
    """Parse the text of one key (as a QIDO value or a C-FIND identifier value) by the
    attribute's matching kind."""
    return Condition(attribute, _matcher(attribute, raw))


def _matcher(attribute: QueryAttribute, raw: str) -> Matcher:
    if raw == "" or (raw == "*" and attribute.kind is not Kind.UID):
        return Universal()
    match attribute.kind:
        case Kind.UID:
            return _uid_matcher(attribute, raw)
        case Kind.DATE:
            return _range_matcher(attribute, raw, normalize.date, normalize.date)
        case Kind.TIME:
            return _range_matcher(
                attribute, raw, normalize.time, lambda v: normalize.time(v, upper=True)
            )
        case Kind.NUMBER:
            number = normalize.integer(raw)
            if number is None:
                raise InvalidQuery(attribute.keyword, f"{raw!r} is not an integer")
            if not IS_MIN <= number <= IS_MAX:
                # PS3.5 Table 6.2-1 (IS): -2^31 <= n <= 2^31 - 1; nothing stored lies outside.
                raise InvalidQuery(attribute.keyword, f"{raw!r} is outside the range of IS")
            return SingleValue(number)
        case Kind.PN | Kind.TEXT | Kind.MODALITIES:
            return _text_matcher(raw)
        case Kind.COMPUTED:
            raise InvalidQuery(attribute.keyword, "cannot be used for matching")
    raise AssertionError(attribute.kind)


def _uid_matcher(attribute: QueryAttribute, raw: str) -> Matcher:
    """UIDs come comma-separated in QIDO-RS (PS3.18 §8.3.4.1) and backslash-separated in DIMSE
    identifiers (PS3.5 §6.4); both forms are accepted."""
    values = tuple(v.strip() for v in re.split(r"[,\\]", raw))
    for value in values:
        if not is_valid_uid(value):
            raise InvalidQuery(attribute.keyword, f"{value!r} is not a valid UID")
    return SingleValue(values[0]) if len(values) == 1 else UidList(values)


def _range_matcher(attribute: QueryAttribute, raw: str, low: _Norm, high: _Norm) -> Matcher:
    if "-" not in raw:
        canonical = low(raw)
        _check_temporal(attribute, raw, canonical)
        if attribute.kind is Kind.TIME:
            # A partial time such as '1530' denotes the whole minute (PS3.4 C.2.2.2.1.2 note).
            return Range(canonical, high(raw))
        return SingleValue(canonical)
    start_raw, _, end_raw = raw.partition("-")
    if "-" in end_raw or (not start_raw and not end_raw):
        raise InvalidQuery(attribute.keyword, f"{raw!r} is not a range")
    start = low(start_raw) if start_raw else None
    end = high(end_raw) if end_raw else None
    for given, bound in ((start_raw, start), (end_raw, end)):
        if bound is not None:
            _check_temporal(attribute, given, bound)
    if start and end and start > end:
        raise InvalidQuery(attribute.keyword, f"range {raw!r} ends before it starts")
    return Range(start, end)


def _check_temporal(attribute: QueryAttribute, raw: str, canonical: str) -> None:
    """PS3.5 Table 6.2-1: a DA is a Gregorian calendar date; in a TM, HH is 00-23, MM 00-59
    and SS 00-60 (leap second). Digits are ASCII digits: str.isdigit also takes other
    scripts' digits, which nothing stored can equal."""
    if not canonical.isascii():
        ok = False
    elif attribute.kind is Kind.DATE:
        ok = len(canonical) == 8 and canonical.isdigit() and _is_calendar_date(canonical)
    else:
        ok = (
            len(canonical) == 13
            and canonical[6] == "."
            and canonical[:2] <= "23"
            and canonical[2:4] <= "59"
            and canonical[4:6] <= "60"
        )
    if not ok:
        expected = "YYYYMMDD" if attribute.kind is Kind.DATE else "HHMMSS[.FFFFFF]"
        raise InvalidQuery(attribute.keyword, f"{raw!r} is not a {attribute.vr} value ({expected})")


def _is_calendar_date(value: str) -> bool:
    try:
        datetime.date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return False
    return True


def _text_matcher(raw: str) -> Matcher:
    if "*" in raw or "?" in raw:
        return Wildcard(raw)
    return SingleValue(raw)
