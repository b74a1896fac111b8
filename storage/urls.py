"""Open backends from URLs, the one place that knows which implementation a scheme means.
Implementations are imported lazily so an unused driver is never a dependency; passwords
never appear in ``repr`` or logs.

    index, database
            sqlite:///PATH[?durable=false]
            postgresql://USER[:PASSWORD]@HOST[:PORT]/DB[?schema=S&pool_min=N&pool_max=N&...]
            (or postgres://; other parameters go to libpq)
    blobs   file:///PATH[?durable=false]
            s3://BUCKET[/PREFIX] (endpoint from the caller, credentials the AWS way)

The embedded stores are durable unless their URL says ``durable=false``: a write acknowledged
by them then survives a crash of the process but not a power cut (no fsync; SQLite's
``synchronous=NORMAL``). The choice travels in the URL, like every other store option here, so
every component opening a store (the index, and the audit log, users, cases and learning
tables beside it) gets the same guarantee from the one URL it is given. PostgreSQL
(``synchronous_commit``) and S3 are durable on their own terms.
    cache   memory://[?max_bytes=N]
            redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?prefix=P&max_value_bytes=N&default_ttl=S]
            (or rediss://; other parameters go to redis-py)

Time bounds travel in the URL too, for the same reason (:func:`with_defaults` adds the
configured ones where a URL does not choose; ``BOUND_PARAMS`` lists them by scheme):
PostgreSQL ``connect_timeout``, ``pool_timeout`` (waiting for a pooled connection),
``statement_timeout``; S3 ``connect_timeout``, ``read_timeout``, ``max_attempts``,
``budget`` (seconds for one request and its retries); both ``breaker_threshold`` and
``breaker_cooldown`` (:mod:`storage.breaker`); Redis ``socket_timeout`` and
``socket_connect_timeout``. Seconds throughout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from storage.blobs.base import BlobStore
from storage.cache.base import Cache
from storage.index.base import Index

if TYPE_CHECKING:
    from storage.database.base import Database
    from storage.database.postgres import PostgresDatabase
    from storage.database.sqlite import SqliteDatabase

DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")
DURABILITY_SCHEMES = ("sqlite", "file")
BLOB_SCHEMES = ("file", "s3")
CACHE_SCHEMES = ("memory", "sqlite", "redis", "rediss")
SECRET_PARAMS = frozenset({"password", "pass", "secret"})
BREAKER_PARAMS = ("breaker_threshold", "breaker_cooldown")
POSTGRES_PARAMS = ("connect_timeout", "pool_timeout", "statement_timeout", *BREAKER_PARAMS)
S3_PARAMS = ("connect_timeout", "read_timeout", "max_attempts", "budget", *BREAKER_PARAMS)
REDIS_PARAMS = ("socket_timeout", "socket_connect_timeout")
BOUND_PARAMS: dict[str, tuple[str, ...]] = {
    "postgresql": POSTGRES_PARAMS,
    "postgres": POSTGRES_PARAMS,
    "s3": S3_PARAMS,
    "redis": REDIS_PARAMS,
    "rediss": REDIS_PARAMS,
}
INTEGER_PARAMS = frozenset({"max_attempts", "breaker_threshold"})


class UnsupportedUrl(ValueError):
    """A backend URL whose scheme or form is not accepted (the message lists what is)."""


def mask_password(url: str) -> str:
    """The URL with any password replaced by '***', for logs and error messages."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    secret_query = any(name.lower() in SECRET_PARAMS for name, _ in pairs)
    if parts.password is None and not secret_query:
        return url  # untouched: urlunsplit would turn sqlite:///x into sqlite:/x
    if parts.password is not None:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        parts = parts._replace(netloc=netloc)
    if secret_query:
        masked = [(n, "***" if n.lower() in SECRET_PARAMS else v) for n, v in pairs]
        parts = parts._replace(query=urlencode(masked, safe="*"))
    return urlunsplit(parts)


def _scheme(url: str, accepted: tuple[str, ...], role: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in accepted:
        names = ", ".join(f"{s}://" for s in accepted)
        raise UnsupportedUrl(f"{role} URL {mask_password(url)!r}: scheme must be one of {names}")
    return scheme


def _path(url: str) -> Path:
    """``scheme:///abs/path`` or ``scheme://relative/path`` (relative to the working dir)."""
    parts = urlsplit(url)
    raw = unquote(parts.netloc + parts.path)
    if not raw:
        raise UnsupportedUrl(f"URL {mask_password(url)!r} names no path")
    return Path(raw)


def _own_params(url: str, names: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """Split our parameters off a URL whose other parameters belong to a driver."""
    base, _, query = url.partition("?")
    ours: dict[str, str] = {}
    theirs = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in names:
            ours[name] = value
        else:
            theirs.append((name, value))
    # Rebuilt by hand: urlunsplit would turn postgresql:///db (a local socket) into postgresql:/db.
    return (f"{base}?{urlencode(theirs)}" if theirs else base), ours


def _durable(url: str) -> bool:
    """The ``durable`` parameter of an embedded store's URL (default true)."""
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    values = [value.lower() for name, value in pairs if name == "durable"]
    if not values or values[-1] in ("true", "1", "yes", "on"):
        return True
    if values[-1] in ("false", "0", "no", "off"):
        return False
    raise UnsupportedUrl(f"URL {mask_password(url)!r}: durable must be true or false")


def with_durability(url: str, durable: bool) -> str:
    """``url`` with ``durable=false`` added when ``durable`` is false, the store is an embedded
    one (``sqlite://``, ``file://``) and the URL does not already choose; else ``url``."""
    parts = urlsplit(url)
    if durable or parts.scheme.lower() not in DURABILITY_SCHEMES:
        return url
    if any(name == "durable" for name, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return url
    return f"{url}{'&' if parts.query else '?'}durable=false"


def with_defaults(url: str, values: dict[str, float | int]) -> str:
    """``url`` with those of ``values`` that apply to its scheme (:data:`BOUND_PARAMS`) and
    that it does not set itself; other URLs unchanged. The URL an operator wrote wins."""
    parts = urlsplit(url)
    names = BOUND_PARAMS.get(parts.scheme.lower(), ())
    present = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    added = [(n, f"{values[n]:g}") for n in names if n in values and n not in present]
    if not added:
        return url
    return f"{url}{'&' if parts.query else '?'}{urlencode(added)}"


def _bounds(url: str, params: dict[str, str]) -> dict[str, Any]:
    """The time bounds ``params`` gives, as numbers (a positive one each)."""
    found: dict[str, Any] = {}
    for name in params:
        number = _number(url, params, name, int if name in INTEGER_PARAMS else float)
        if number <= 0:
            raise UnsupportedUrl(f"URL {mask_password(url)!r}: {name} must be positive")
        found[name] = number
    return found


def _number(url: str, params: dict[str, str], name: str, kind: type[int] | type[float]) -> Any:
    try:
        return kind(params[name])
    except ValueError as exc:
        raise UnsupportedUrl(f"URL {mask_password(url)!r}: {name} must be a number") from exc


def open_database(url: str, *, name: str = "radcase") -> Database:
    """A relational database for a component's own tables (not opened); ``name`` names a
    PostgreSQL database in logs and errors."""
    if _scheme(url, DATABASE_SCHEMES, "database") == "sqlite":
        return _sqlite(url)
    return _postgres(url, "database", name=name)


def open_index(url: str, *, name: str = "radcase-index") -> Index:
    """The index over the database ``url`` names (not opened); ``name`` as for
    :func:`open_database`."""
    if _scheme(url, DATABASE_SCHEMES, "index") == "sqlite":
        from storage.index.sqlite import SqliteIndex

        return SqliteIndex(_sqlite(url))
    from storage.index.postgres import PostgresIndex

    return PostgresIndex(_postgres(url, "index", name=name))


def _sqlite(url: str) -> SqliteDatabase:
    from storage.database.sqlite import SqliteDatabase

    return SqliteDatabase(_path(url), durable=_durable(url))


def _postgres(url: str, role: str, *, name: str = "radcase") -> PostgresDatabase:
    from storage.database.postgres import PostgresDatabase

    conninfo, params = _own_params(url, ("schema", "pool_min", "pool_max", *POSTGRES_PARAMS))
    options: dict[str, Any] = {
        key: _number(url, params, key, int) for key in ("pool_min", "pool_max") if key in params
    }
    options.update(_bounds(url, {k: v for k, v in params.items() if k in POSTGRES_PARAMS}))
    try:
        return PostgresDatabase(conninfo, schema=params.get("schema") or None, name=name, **options)
    except ValueError as exc:
        raise UnsupportedUrl(f"{role} URL {mask_password(url)!r}: {exc}") from exc


def open_blobs(url: str, *, s3_endpoint_url: str | None = None) -> BlobStore:
    """``s3_endpoint_url`` is the S3-compatible endpoint for ``s3://`` URLs (None: AWS)."""
    scheme = _scheme(url, BLOB_SCHEMES, "blob store")
    if scheme == "s3":
        from storage.blobs.s3 import S3BlobStore

        parts = urlsplit(url)
        if not parts.netloc:
            raise UnsupportedUrl(f"blob store URL {url!r} names no bucket (s3://BUCKET/PREFIX)")
        _, params = _own_params(url, S3_PARAMS)
        try:
            return S3BlobStore(
                parts.netloc,
                unquote(parts.path),
                endpoint_url=s3_endpoint_url,
                **_bounds(url, params),
            )
        except ValueError as exc:
            raise UnsupportedUrl(f"blob store URL {url!r}: {exc}") from exc
    from storage.blobs.filesystem import FilesystemBlobStore

    return FilesystemBlobStore(_path(url), durable=_durable(url))


def open_cache(url: str) -> Cache:
    scheme = _scheme(url, CACHE_SCHEMES, "cache")
    if scheme in ("redis", "rediss"):
        return _open_redis(url)
    params = parse_qs(urlsplit(url).query)
    try:
        max_bytes = int(params.get("max_bytes", ["268435456"])[0])
    except ValueError as exc:
        raise UnsupportedUrl(f"cache URL {url!r}: max_bytes must be an integer") from exc
    if scheme == "sqlite":
        from storage.cache.sqlite import SqliteCache

        return SqliteCache(_path(url), max_bytes=max_bytes)
    from storage.cache.memory import MemoryCache

    return MemoryCache(max_bytes=max_bytes)


def _open_redis(url: str) -> Cache:
    from storage.cache.redis import RedisCache

    client_url, params = _own_params(
        url, ("prefix", "max_value_bytes", "default_ttl", *REDIS_PARAMS)
    )
    options: dict[str, Any] = {}
    bounds = _bounds(url, {k: v for k, v in params.items() if k in REDIS_PARAMS})
    if "socket_timeout" in bounds:
        options["timeout"] = bounds["socket_timeout"]
    if "socket_connect_timeout" in bounds:
        options["connect_timeout"] = bounds["socket_connect_timeout"]
    if "prefix" in params:
        options["prefix"] = params["prefix"]
    if "max_value_bytes" in params:
        options["max_value_bytes"] = _number(url, params, "max_value_bytes", int)
    if "default_ttl" in params:
        options["default_ttl"] = _number(url, params, "default_ttl", float)
    return RedisCache(client_url, **options)
