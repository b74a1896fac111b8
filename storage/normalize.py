"""Canonical forms of indexed values, shared by ingest (what is stored) and queries (what is
compared), so the two can never drift apart.

Dates and times are stored as fixed-width strings so that string order is time order and a
range is a plain ``BETWEEN``; person names are stored case-folded (and, for fuzzy matching,
without accents) because PS3.4 C.2.2.2.1 leaves case sensitivity of PN matching to the
implementation and viewers' users type names in any case.
"""

from __future__ import annotations

import re
import unicodedata

_DIGITS = re.compile(r"\d+")


def person_name_ci(value: str) -> str:
    """A PN value (all component groups, '=' separated) case-folded, trailing empty groups
    and components dropped."""
    groups = [g.rstrip("^") for g in value.split("=")]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups).casefold()


def strip_accents(value: str) -> str:
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def person_name_fuzzy(value: str) -> str:
    """Case- and accent-insensitive form used by ``fuzzymatching=true`` (PS3.18 §8.3.4.2)."""
    return strip_accents(person_name_ci(value))


def date(value: str) -> str:
    """A DA value as YYYYMMDD; the ACR-NEMA form 'YYYY.MM.DD' is accepted (PS3.5 Table 6.2-1
    note). Anything else is kept as given, so it still matches itself exactly."""
    value = value.strip()
    compact = value.replace(".", "") if len(value) == 10 else value
    return compact if len(compact) == 8 and compact.isdigit() else value


def time(value: str, *, upper: bool = False) -> str:
    """A TM value as 'HHMMSS.FFFFFF'. Missing components are filled with zeros, or with their
    maxima when ``upper`` is set, so that '1530' as the end of a range includes 15:30:59
    (PS3.4 C.2.2.2.5). The old 'HH:MM:SS' form is accepted."""
    value = value.strip().replace(":", "")
    whole, _, fraction = value.partition(".")
    if not whole.isdigit() or len(whole) not in (2, 4, 6) or (fraction and not fraction.isdigit()):
        return value
    fill = "595959" if upper else "000000"
    whole = whole + fill[len(whole) :]
    fraction = (fraction + ("9" if upper else "0") * 6)[:6]
    return f"{whole}.{fraction}"


def integer(value: str) -> int | None:
    """An IS value as an int (PS3.4 C.2.2.2.1.1 leaves '+7' vs '007' to the implementation:
    we compare numerically)."""
    try:
        return int(value.strip())
    except ValueError:
        return None
