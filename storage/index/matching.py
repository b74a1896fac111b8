"""Compile typed query conditions to SQL: one function per PS3.4 C.2.2.2 matching type.

The same SQL serves SQLite and PostgreSQL; the only dialect difference, case-sensitive
pattern matching, goes through :class:`PatternSyntax` (SQLite's GLOB, PostgreSQL's LIKE).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from storage import normalize
from storage.attributes import Kind, Level
from storage.query import Condition, Range, SingleValue, UidList, Universal, Wildcard

ALIASES = {Level.STUDY: "s", Level.SERIES: "se", Level.INSTANCE: "i"}


class PatternSyntax(Protocol):
    """How a dialect writes a case-sensitive wildcard match of a column (PS3.4 C.2.2.2.4),
    and membership of a column in a set of values."""

    def pattern(self, column: str, parts: list[str | None]) -> tuple[str, list[Any]]:
        """SQL and parameters matching ``parts``: literal text, None for '*' (any run of
        characters) and :data:`ONE` for '?' (exactly one character)."""
        ...

    def one_of(self, column: str, values: frozenset[str]) -> tuple[str, list[Any]]:
        """SQL and parameters for ``column`` being one of ``values``: one condition with one
        parameter whatever the set's size (a learner may see thousands of studies, more
        than a statement may carry parameters)."""
        ...


ONE = "\x00?"  # marker for the single-character wildcard inside ``parts``


@dataclass
class Fragment:
    sql: str
    params: list[Any]


def compile_condition(cond: Condition, syntax: PatternSyntax, fuzzy: bool) -> Fragment | None:
    """SQL for one condition, or None when it constrains nothing (universal matching)."""
    matcher = cond.matcher
    attribute = cond.attribute
    if isinstance(matcher, Universal):
        return None
    if attribute.kind is Kind.MODALITIES:
        inner = _column_match("m.modality", Kind.TEXT, matcher, syntax, fuzzy=False)
        return Fragment(
            f"EXISTS (SELECT 1 FROM series m WHERE m.study_pk = s.id AND {inner.sql})",
            inner.params,
        )
    alias = ALIASES[attribute.level]
    column = f"{alias}.{attribute.column}"
    if attribute.kind is Kind.PN:
        column += "_fuzzy" if fuzzy else "_ci"
    return _column_match(column, attribute.kind, matcher, syntax, fuzzy)


def _column_match(
    column: str, kind: Kind, matcher: object, syntax: PatternSyntax, fuzzy: bool
) -> Fragment:
    if isinstance(matcher, UidList):
        marks = ", ".join("?" for _ in matcher.values)
        return Fragment(f"{column} IN ({marks})", list(matcher.values))
    if isinstance(matcher, Range):
        return _range(column, matcher)
    if kind is Kind.PN and isinstance(matcher, SingleValue | Wildcard):
        return _person_name(column, matcher, syntax, fuzzy)
    if isinstance(matcher, SingleValue):
        return Fragment(f"{column} = ?", [matcher.value])
    if isinstance(matcher, Wildcard):
        sql, params = syntax.pattern(column, wildcard_parts(matcher.pattern))
        return Fragment(sql, params)
    raise AssertionError(matcher)


def _range(column: str, matcher: Range) -> Fragment:
    """PS3.4 C.2.2.2.5: inclusive bounds on canonical strings; an absent value never matches."""
    clauses, params = [f"{column} IS NOT NULL"], []
    if matcher.start is not None:
        clauses.append(f"{column} >= ?")
        params.append(matcher.start)
    if matcher.end is not None:
        clauses.append(f"{column} <= ?")
        params.append(matcher.end)
    return Fragment("(" + " AND ".join(clauses) + ")", params)


def _person_name(
    column: str, matcher: SingleValue | Wildcard, syntax: PatternSyntax, fuzzy: bool
) -> Fragment:
    """Match any component group of a PN (alphabetic, ideographic, phonetic; PS3.5 §6.2.1).

    Stored names are case-folded, groups joined by '='. Non-fuzzy single values must equal a
    whole group; fuzzy values (PS3.18 §8.3.4.2) match the start of any name component or word,
    so 'joh' finds 'DOE^JOHN' and 'Müller' finds 'MULLER'.
    """
    fold = normalize.person_name_fuzzy if fuzzy else normalize.person_name_ci
    raw = str(matcher.value) if isinstance(matcher, SingleValue) else matcher.pattern
    parts = wildcard_parts(fold(raw))
    if isinstance(matcher, SingleValue) and fuzzy:
        shapes = [
            [*parts, None],
            [None, "^", *parts, None],
            [None, " ", *parts, None],
            [None, "=", *parts, None],
        ]
    else:
        shapes = [parts, [*parts, "=", None], [None, "=", *parts], [None, "=", *parts, "=", None]]
    sqls, params = [], []
    for shape in shapes:
        sql, shape_params = syntax.pattern(column, _merge(shape))
        sqls.append(sql)
        params.extend(shape_params)
    return Fragment("(" + " OR ".join(sqls) + ")", params)


def wildcard_parts(pattern: str) -> list[str | None]:
    """Split a PS3.4 C.2.2.2.4 pattern into literal runs, None for '*' and ONE for '?'."""
    parts: list[str | None] = []
    literal: list[str] = []
    for char in pattern:
        if char in "*?":
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(None if char == "*" else ONE)
        else:
            literal.append(char)
    if literal:
        parts.append("".join(literal))
    return _merge(parts)


def _merge(parts: list[str | None]) -> list[str | None]:
    """Join adjacent literals and collapse runs of '*'."""
    merged: list[str | None] = []
    for part in parts:
        if part is None and merged and merged[-1] is None:
            continue
        if part not in (None, ONE) and merged and merged[-1] not in (None, ONE):
            merged[-1] = f"{merged[-1]}{part}"
            continue
        merged.append(part)
    return merged
