"""Open backends from URLs (``sqlite:///…``, ``file:///…``, ``memory://``), the one place
that knows which implementation a scheme means. Implementations are imported lazily so an
unused driver is never a dependency; passwords never appear in ``repr`` or logs."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from storage.blobs.base import BlobStore
from storage.cache.base import Cache
from storage.index.base import Index

INDEX_SCHEMES = ("sqlite",)
BLOB_SCHEMES = ("file",)
CACHE_SCHEMES = ("memory",)


class UnsupportedUrl(ValueError):
    """A backend URL whose scheme or form is not accepted (the message lists what is)."""


def mask_password(url: str) -> str:
    """The URL with any password replaced by '***', for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


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


def open_index(url: str) -> Index:
    _scheme(url, INDEX_SCHEMES, "index")
    from storage.index.sqlite import SqliteIndex

    return SqliteIndex(_path(url))


def open_blobs(url: str) -> BlobStore:
    _scheme(url, BLOB_SCHEMES, "blob store")
    from storage.blobs.filesystem import FilesystemBlobStore

    return FilesystemBlobStore(_path(url))


def open_cache(url: str) -> Cache:
    _scheme(url, CACHE_SCHEMES, "cache")
    from storage.cache.memory import MemoryCache

    params = parse_qs(urlsplit(url).query)
    try:
        max_bytes = int(params.get("max_bytes", ["268435456"])[0])
    except ValueError as exc:
        raise UnsupportedUrl(f"cache URL {url!r}: max_bytes must be an integer") from exc
    return MemoryCache(max_bytes=max_bytes)
