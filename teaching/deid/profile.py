"""PS3.15 Table E.1-1 loaded from the shipped data into rules, looked up by tag.

The table is data, not code, so that a new edition of the standard is a file replacement and
the conformance test is generated from the same file the engine runs on.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

DATA_FILE = "confidentiality_profile_attributes.json"
OPTION_COLUMNS = (
    "rtnUIDsOpt",
    "rtnDevIdOpt",
    "rtnInstIdOpt",
    "rtnPatCharsOpt",
    "rtnLongFullDatesOpt",
    "rtnLongModifDatesOpt",
    "cleanDescOpt",
    "cleanStructContOpt",
    "cleanGraphOpt",
    "rtnSafePrivOpt",
)
BASIC_CODES = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})
_TAG = re.compile(r"^\(([0-9A-FX]{4}),([0-9A-FX]{4})\)$")
PRIVATE_ROW_PREFIX = "(GGGG,EEEE)"


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1.

    `mask`/`value` match a tag: `tag & mask == value`. A row with x wildcards, such as
    (60xx,3000), masks out the wildcard digits; PS3.5 7.6 restricts such repeating groups to the
    even groups of their range, which `matches` also checks.
    """

    tag_text: str
    name: str
    basic: str
    options: Mapping[str, str] = field(default_factory=dict)
    mask: int = 0xFFFFFFFF
    value: int = 0

    @property
    def is_wildcard(self) -> bool:
        return self.mask != 0xFFFFFFFF

    def matches(self, tag: int) -> bool:
        if tag & self.mask != self.value:
            return False
        if self.is_wildcard and (self.mask >> 16) != 0xFFFF:
            # Repeating groups (50xx, 60xx) are even groups 0xgg00-0xgg1E (PS3.5 7.6).
            group = tag >> 16
            return group % 2 == 0 and (group & 0xFF) <= 0x1E
        return True


@dataclass(frozen=True)
class Profile:
    """All rules of the table: exact tags in a dict, wildcard rows scanned in order."""

    exact: Mapping[int, Rule]
    wildcards: tuple[Rule, ...]
    private: Rule | None

    def lookup(self, tag: int) -> Rule | None:
        """The rule for a public tag, or None when the table does not list it."""
        rule = self.exact.get(tag)
        if rule is not None:
            return rule
        for candidate in self.wildcards:
            if candidate.matches(tag):
                return candidate
        return None

    def __iter__(self) -> Iterator[Rule]:
        yield from self.exact.values()
        yield from self.wildcards
        if self.private is not None:
            yield self.private

    def __len__(self) -> int:
        return len(self.exact) + len(self.wildcards) + (self.private is not None)


def _mask_and_value(tag_text: str) -> tuple[int, int]:
    match = _TAG.match(tag_text.upper())
    if match is None:
        raise ValueError(f"unreadable tag {tag_text!r} in {DATA_FILE}")
    digits = match.group(1) + match.group(2)
    mask = int("".join("0" if d == "X" else "F" for d in digits), 16)
    value = int(digits.replace("X", "0"), 16)
    return mask, value


def rule_from_row(row: Mapping[str, Any]) -> Rule:
    """A Rule from one JSON object of the table; refuses codes the engine does not know."""
    basic = str(row["basicProfile"]).strip()
    if basic not in BASIC_CODES:
        raise ValueError(f"unknown action code {basic!r} for {row['tag']}")
    options = {column: str(row[column]).strip() for column in OPTION_COLUMNS if row.get(column)}
    name = " ".join(str(row["name"]).split())
    tag_text = str(row["tag"]).strip()
    if tag_text.upper().startswith(PRIVATE_ROW_PREFIX):
        return Rule(tag_text=tag_text, name=name, basic=basic, options=options, mask=0, value=0)
    mask, value = _mask_and_value(tag_text)
    return Rule(tag_text=tag_text, name=name, basic=basic, options=options, mask=mask, value=value)


def load_profile(rows: Sequence[Mapping[str, Any]]) -> Profile:
    exact: dict[int, Rule] = {}
    wildcards: list[Rule] = []
    private: Rule | None = None
    for row in rows:
        rule = rule_from_row(row)
        if rule.mask == 0:
            private = rule
        elif rule.is_wildcard:
            wildcards.append(rule)
        else:
            exact[rule.value] = rule
    return Profile(exact=exact, wildcards=tuple(wildcards), private=private)


def table_rows() -> list[dict[str, Any]]:
    """The shipped copy of Table E.1-1, as the list of objects it holds."""
    text = resources.files("teaching").joinpath("data", DATA_FILE).read_text(encoding="utf-8")
    rows = json.loads(text)
    if not isinstance(rows, list):
        raise ValueError(f"{DATA_FILE} does not hold a list of attributes")
    return rows


@functools.cache
def default_profile() -> Profile:
    """The Basic Profile rules of the shipped table, loaded once per process."""
    return load_profile(table_rows())
