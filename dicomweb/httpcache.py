"""Validators and conditional GET for every retrievable resource (RFC 9110 §8.8, §13).

One place decides what an ETag looks like, how ``If-None-Match`` is read and what a 304
carries, so that instances, frames, bulk data, metadata and search results all behave alike.

* Tags are opaque hashes of what identifies the representation (the instance's SHA-256 or the
  series' version token, plus everything about the chosen representation: media type,
  transfer syntax, multipart or not, the public root written into URIs), not of the bytes
  of a large body. Search results, small and already in memory, are the exception.
* Strong by default. A multipart body carries a boundary drawn afresh for every response, so
  two responses are the same parts but not the same bytes: its tag is weak (RFC 9110 §8.8.1),
  which is all ``If-None-Match`` needs (it compares weakly, §13.1.2) and keeps ``If-Range``
  (strong comparison only, §13.1.5) from ever splicing two different bodies.
* Cache-Control tells the truth: a stored instance, its frames and its bulk data never change
  (``immutable``, RFC 8246); metadata, study and series retrieval and search results change
  when instances are stored or deleted, so a cache must revalidate (``no-cache``, RFC 9111
  §5.2.2.4). Both are ``private`` (RFC 9111 §5.2.2.7): the bodies carry patient data, which
  shared caches must not keep.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"

#: The 304 response carries these fields of the 200 it stands for (RFC 9110 §15.4.5).
NOT_MODIFIED_FIELDS = ("cache-control", "content-location", "date", "etag", "expires", "vary")

# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE,
# etagc = %x21 / %x23-7E / obs-text (header values are decoded as Latin-1, so obs-text is
# U+0080..U+00FF here). A comma is a legal etagc, so a list is scanned tag by tag, not split.
_ENTITY_TAG = re.compile(r'[ \t]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*')
_LIST_SEPARATOR = re.compile(r"[ \t]*,[ \t]*")


@dataclass(frozen=True)
class EntityTag:
    """One entity-tag: its opaque part (without the quotes) and whether it is weak."""

    opaque: str
    weak: bool = False

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'

    def weak_equals(self, other: EntityTag) -> bool:
        """Weak comparison (RFC 9110 §8.8.3.2): the opaque parts match, weak or not."""
        return self.opaque == other.opaque

    def strong_equals(self, other: EntityTag) -> bool:
        """Strong comparison (RFC 9110 §8.8.3.2): both strong and the opaque parts match."""
        return not self.weak and not other.weak and self.opaque == other.opaque


def entity_tag(*identity: str, weak: bool = False) -> EntityTag:
    """A tag for the representation identified by ``identity`` (each part already says what
    it is: a version token, a SHA-256, a media type...). 128 bits of BLAKE2b: collisions
    between two representations of one resource are not a practical concern."""
    digest = hashlib.blake2b("\x1f".join(identity).encode("utf-8"), digest_size=16)
    return EntityTag(digest.hexdigest(), weak)


def parse_entity_tag(text: str) -> EntityTag | None:
    """One entity-tag, or None when ``text`` is not exactly one."""
    match = _ENTITY_TAG.fullmatch(text)
    return EntityTag(match.group(2), match.group(1) is not None) if match else None


def parse_if_none_match(header: str | None) -> list[EntityTag] | Literal["*"] | None:
    """``If-None-Match`` (RFC 9110 §13.1.2): ``*`` or a list of entity-tags.

    None when the field is absent or cannot be read: a malformed precondition is treated as
    absent, so the full response is sent, which is the outcome that can never leave a client
    with a wrong body. Empty list elements are allowed (RFC 9110 §5.6.1).
    """
    if header is None:
        return None
    text = header.strip(" \t")
    if text == "*":
        return "*"
    tags: list[EntityTag] = []
    position = 0
    while position < len(text):
        separator = _LIST_SEPARATOR.match(text, position)
        if separator is not None:
            position = separator.end()
            continue
        match = _ENTITY_TAG.match(text, position)
        if match is None:
            return None
        tags.append(EntityTag(match.group(2), match.group(1) is not None))
        position = match.end()
        if position < len(text) and _LIST_SEPARATOR.match(text, position) is None:
            return None
    return tags or None


def format_if_none_match(tags: list[EntityTag]) -> str:
    return ", ".join(str(tag) for tag in tags)


def none_match_fails(header: str | None, current: EntityTag) -> bool:
    """True when ``If-None-Match`` is false for ``current``, i.e. the client already holds
    the selected representation and a GET is answered 304 (RFC 9110 §13.1.2: weak
    comparison; ``*`` matches any current representation)."""
    tags = parse_if_none_match(header)
    if tags is None:
        return False
    if tags == "*":
        return True
    return any(tag.weak_equals(current) for tag in tags)


def not_modified(headers: Mapping[str, str]) -> Response:
    """304 Not Modified: no content, and of the 200's fields only those RFC 9110 §15.4.5
    asks for (ETag, Cache-Control, Vary, Content-Location...), so a cache can refresh the
    copy it holds."""
    kept = {k: v for k, v in headers.items() if k.lower() in NOT_MODIFIED_FIELDS}
    return Response(status_code=304, headers=kept)


def precondition(request: Request, tag: EntityTag, headers: Mapping[str, str]) -> Response | None:
    """The 304 for a GET or HEAD whose ``If-None-Match`` matches ``tag``, or None when the
    full response should be sent; ``headers`` are those the 200 would carry.

    Called before the body is produced whenever the tag can be known first, so that a
    revalidation costs an index lookup, not a blob read. Only GET and HEAD get a 304
    (RFC 9110 §13.1.2); other methods never reach here.
    """
    if request.method in ("GET", "HEAD") and none_match_fails(
        request.headers.get("if-none-match"), tag
    ):
        return not_modified(headers)
    return None


def revalidate(request: Request, response: Response, tag: EntityTag, **fields: str) -> Response:
    """Put ``tag`` and ``fields`` (``Cache_Control=...``, ``Vary=...``) on an already built
    response and answer 304 instead when the client holds it; for handlers whose
    representation is only known once the response exists."""
    response.headers["ETag"] = str(tag)
    for name, value in fields.items():
        response.headers[name.replace("_", "-")] = value
    return precondition(request, tag, response.headers) or response


def is_multipart(response: Response) -> bool:
    """Whether the response body is a multipart container (fresh boundary each time)."""
    return response.headers.get("content-type", "").lower().startswith("multipart/")


def representation(response: Response) -> str:
    """The response's Content-Type without its boundary: what the client chose, minus the
    one parameter that differs on every response."""
    value = response.headers.get("content-type", "")
    return ";".join(
        p.strip() for p in value.split(";") if not p.strip().lower().startswith("boundary=")
    )
