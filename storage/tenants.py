"""The tenant (institution) name rule, one for the archive and for everything that names a
tenant (settings, the institutions API).

A tenant name becomes the first part of every blob key and cache key the archive writes
(``TENANT/STUDY/...``) and a column value in every row, so it is kept to lower-case letters,
digits, ``-`` and ``_``, starting with a letter or a digit, at most 63 characters: safe in a
path, an S3 key and a Redis key as it is.
"""

from __future__ import annotations

import re

TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
"""Also given to pydantic as a string pattern, so written in the syntax both engines share;
check names with :func:`is_valid_tenant` (Python's ``$`` alone would let a trailing newline
through ``match``)."""


def is_valid_tenant(name: str) -> bool:
    return TENANT_PATTERN.fullmatch(name) is not None
