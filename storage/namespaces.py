"""A second, separate store of the same kind as a configured one.

The teaching collection needs its own index, blob store and cache next to the clinical ones,
on whatever backends the deployment uses, without another line of configuration: its stores
are the clinical URLs moved into a namespace of their own. Nothing the clinical archive
writes can land in it, and nothing in it is reachable through the clinical archive.

    sqlite:///D/index.sqlite3         -> sqlite:///D/index-NAME.sqlite3
    postgresql://...?schema=S          -> postgresql://...?schema=S_NAME   (S: public)
    file:///P                          -> file:///P-NAME
    s3://BUCKET/PREFIX                 -> s3://BUCKET/PREFIX-NAME
    s3://BUCKET                        -> s3://BUCKET/_NAME
    memory://...                       -> memory://...   (a separate instance anyway)
    redis://...?prefix=P               -> redis://...?prefix=PNAME:        (P: radcase:)

Blob stores become siblings, never sub-folders, so that listing the clinical store never
walks into the other one; at a bucket's root, ``_NAME`` cannot collide with a clinical key
(those start with a tenant name: a letter or a digit).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import parse_qsl, urlencode, urlsplit

from storage.urls import UnsupportedUrl, mask_password

# Not the tenant rule (storage.tenants): a namespace name is spliced into an unquoted SQL
# schema name (no "-"), and "_NAME" at a bucket's root must not look like a tenant's key.
NAME = re.compile(r"^[a-z][a-z0-9]{0,30}$")
DEFAULT_SCHEMA = "public"
DEFAULT_REDIS_PREFIX = "radcase:"


def namespaced_url(url: str, name: str) -> str:
    if not NAME.match(name):
        raise ValueError(f"invalid namespace {name!r}")
    base, _, query = url.partition("?")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        path = PurePosixPath(base[len("sqlite://") :])
        return _join(f"sqlite://{path.with_name(f'{path.stem}-{name}{path.suffix}')}", query)
    if scheme in ("postgresql", "postgres"):
        return _with_param(base, query, "schema", DEFAULT_SCHEMA, f"_{name}")
    if scheme == "file" or (scheme == "s3" and urlsplit(base).path.strip("/")):
        return _join(f"{base.rstrip('/')}-{name}", query)
    if scheme == "s3":
        return _join(f"{base.rstrip('/')}/_{name}", query)
    if scheme == "memory":
        return url
    if scheme in ("redis", "rediss"):
        return _with_param(base, query, "prefix", DEFAULT_REDIS_PREFIX, f"{name}:")
    raise UnsupportedUrl(f"cannot derive a {name} store from {mask_password(url)!r}")


def _join(base: str, query: str) -> str:
    return f"{base}?{query}" if query else base


def _with_param(base: str, query: str, param: str, default: str, suffix: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    current = next((v for k, v in pairs if k == param), None) or default
    kept = [(k, v) for k, v in pairs if k != param]
    return f"{base}?{urlencode([*kept, (param, current + suffix)])}"
