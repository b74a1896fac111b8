"""gzip for JSON responses, and nothing else (RFC 9110 §8.4, §12.5.3).

Metadata and search results are JSON full of repeated keys and VRs: the metadata of a long
CT series shrinks about tenfold. Instances and frames are not touched: they are streamed
straight from storage (never buffered here), pixel data is either already compressed or
gains little, and a viewer wants the first frame bytes now, not after a compressor.

The middleware is pure ASGI. A response whose Content-Type is not JSON passes through as it
comes, message for message. A JSON response is held for its first body message only: a
complete body at least ``minimum_size`` long is compressed in one go with its Content-Length
corrected; a streamed body (``more_body``) is compressed chunk by chunk without a length.

A large complete body is compressed on a worker thread (zlib lets go of the GIL), so that the
event loop goes on serving other requests meanwhile, and only once: its gzip bytes are kept
in a bounded in-process memo under a digest of the identity bytes (``mtime=0`` makes the
compression of a body always the same bytes). The metadata of a 600-slice series is about
1.5 MB of JSON and some 40 ms of gzip, paid once per series version rather than by every
viewer that opens it; the digest costs about 1 ms. Keyed by content, not by URL or tag, an
entry can only ever be given for the very body it was made from, whoever asks.

A gzipped representation is a different representation, so its ETag differs
(RFC 9110 §8.8.3): ``"tag"`` becomes ``"tag-gzip"``. A client that holds the gzipped copy
revalidates with ``"tag-gzip"``; when it still accepts gzip the suffix is taken off before
the handler compares tags, and put back on the 304, so ``If-None-Match`` works for both.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomweb.httpcache import EntityTag, format_if_none_match, parse_entity_tag
from dicomweb.httpcache import parse_if_none_match as parse_tags
from dicomweb.lanes import in_thread

GZIP_SUFFIX = "-gzip"
MINIMUM_SIZE = 1024
OFF_LOOP_SIZE = 64 * 1024
"""Bodies from this size up are compressed on a worker thread, not on the event loop."""
MEMO_BYTES = 64 * 1024 * 1024
"""What the memo of compressed bodies may hold, per process."""
_DIGEST_SIZE = 20
# Bodies without content, partial content (its ranges refer to the identity bytes) and 304s.
_UNTOUCHED_STATUSES = frozenset({204, 206, 304})


def is_json(content_type: str | None) -> bool:
    """``application/json``, ``application/dicom+json`` and any other ``+json`` type."""
    if not content_type:
        return False
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence == "application/json" or essence.endswith("+json")


def gzip_quality(accept_encoding: str | None) -> bool:
    """Whether ``Accept-Encoding`` lets us send gzip and prefers it to identity (RFC 9110
    §12.5.3).

    ``gzip`` (or its alias ``x-gzip``, §8.4.1.3) or ``*`` with q > 0 allows it; ``gzip;q=0``
    forbids it even under ``*``; an explicit ``identity`` with a higher q than gzip keeps
    the body as it is. An absent header allows any coding by the letter of §12.5.3, but
    clients that send none are scripts and test tools reading bytes, so they get identity.
    Elements that do not parse are skipped.
    """
    if accept_encoding is None:
        return False
    qualities: dict[str, float] = {}
    for element in accept_encoding.split(","):
        coding, _, params = element.partition(";")
        name = coding.strip().lower()
        if not name:
            continue
        quality = _quality(params)
        if quality is not None:
            qualities.setdefault("gzip" if name == "x-gzip" else name, quality)
    star = qualities.get("*")
    gzip_q = qualities.get("gzip", star)
    identity_q = qualities.get("identity", star)
    if gzip_q is None or gzip_q <= 0:
        return False
    return identity_q is None or gzip_q >= identity_q


def _quality(params: str) -> float | None:
    """The ``q`` weight of one element (RFC 9110 §12.4.2); 1 when absent, None if invalid."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return None
            return q if 0 <= q <= 1 else None
    return 1.0


def gzip_tag(tag: EntityTag) -> EntityTag:
    return EntityTag(tag.opaque + GZIP_SUFFIX, tag.weak)


def merge_vary(existing: str | None, *fields: str) -> str:
    """A Vary value listing ``existing`` fields and ``fields`` once each."""
    names = [f.strip() for f in (existing or "").split(",") if f.strip()]
    known = {n.lower() for n in names}
    names += [f for f in fields if f.lower() not in known]
    return ", ".join(names)


def _identity_tags(header: str) -> tuple[str, set[str]] | None:
    """``If-None-Match`` with the gzip suffix taken off each tag, and the opaque parts that
    had it; None when there is nothing to rewrite."""
    tags = parse_tags(header)
    if not isinstance(tags, list) or not any(t.opaque.endswith(GZIP_SUFFIX) for t in tags):
        return None
    stripped: set[str] = set()
    plain: list[EntityTag] = []
    for tag in tags:
        if tag.opaque.endswith(GZIP_SUFFIX):
            tag = EntityTag(tag.opaque.removesuffix(GZIP_SUFFIX), tag.weak)
            stripped.add(tag.opaque)
        plain.append(tag)
    return format_if_none_match(plain), stripped


def _replace_header(
    raw: Iterable[tuple[bytes, bytes]], name: bytes, value: bytes
) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in raw if k.lower() != name] + [(name, value)]


class CompressedMemo:
    """Gzip bytes by digest of the identity bytes, least recently used out first once they
    hold more than ``capacity`` bytes. Used from worker threads, hence the lock."""

    def __init__(self, capacity: int = MEMO_BYTES) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def compress(self, body: bytes, level: int) -> bytes:
        """``body`` gzipped at ``level``, compressed now only if not memoised."""
        key = hashlib.blake2b(body, digest_size=_DIGEST_SIZE, person=bytes([level])).digest()
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        compressed = _gzip(body, level)
        self._put(key, compressed)
        return compressed

    def _put(self, key: bytes, compressed: bytes) -> None:
        if len(compressed) > self.capacity:
            return
        with self._lock:
            previous = self._items.pop(key, None)
            self._size -= len(previous) if previous is not None else 0
            self._items[key] = compressed
            self._size += len(compressed)
            while self._size > self.capacity:
                _, dropped = self._items.popitem(last=False)
                self._size -= len(dropped)


class GzipJsonMiddleware:
    """Compress JSON responses for clients that accept gzip; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        minimum_size: int = MINIMUM_SIZE,
        level: int = 6,
        memo: CompressedMemo | None = None,
    ) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.level = level
        self.memo = memo or CompressedMemo()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        accepts = gzip_quality(headers.get("accept-encoding"))
        stripped: set[str] = set()
        condition = headers.get("if-none-match")
        if accepts and condition is not None:
            rewritten = _identity_tags(condition)
            if rewritten is not None:
                value, stripped = rewritten
                raw = _replace_header(scope["headers"], b"if-none-match", value.encode("latin-1"))
                scope = {**scope, "headers": raw}
        responder = _Responder(send, accepts, stripped, self.minimum_size, self.level, self.memo)
        await self.app(scope, receive, responder)


class _Responder:
    """The ``send`` of one response: decides on the start message, acts on the body."""

    def __init__(
        self,
        send: Send,
        accepts: bool,
        stripped: set[str],
        minimum_size: int,
        level: int,
        memo: CompressedMemo,
    ) -> None:
        self.send = send
        self.accepts = accepts
        self.stripped = stripped
        self.minimum_size = minimum_size
        self.level = level
        self.start: Message | None = None  # held until the first body message
        self.compressor: zlib._Compress | None = None
        self.passthrough = True
        self.memo = memo

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._on_start(message)
        elif message["type"] == "http.response.body" and not self.passthrough:
            await self._on_body(message)
        else:
            await self.send(message)

    async def _on_start(self, message: Message) -> None:
        headers = MutableHeaders(raw=list(message.get("headers", [])))
        status = message["status"]
        if status == 304:
            self._restore_gzip_tag(headers)
        elif (
            is_json(headers.get("content-type"))
            and "content-encoding" not in headers
            and status >= 200
            and status not in _UNTOUCHED_STATUSES
        ):
            # The body depends on Accept-Encoding whether or not this one is compressed.
            headers["Vary"] = merge_vary(headers.get("vary"), "Accept-Encoding")
            if self.accepts:
                self.passthrough = False
                self.start = {**message, "headers": headers.raw}
                return
        await self.send({**message, "headers": headers.raw})

    def _restore_gzip_tag(self, headers: MutableHeaders) -> None:
        """A 304 for a tag the client sent with the gzip suffix stands for the gzipped copy
        it holds: same identity body, and this client still accepts gzip."""
        tag = parse_entity_tag(headers.get("etag", ""))
        if tag is not None and tag.opaque in self.stripped:
            headers["ETag"] = str(gzip_tag(tag))

    async def _on_body(self, message: Message) -> None:
        assert self.start is not None or self.compressor is not None
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        if self.start is None:  # streaming, already started
            assert self.compressor is not None
            chunk = self.compressor.compress(body)
            if not more:
                chunk += self.compressor.flush()
            await self.send({**message, "body": chunk})
            return
        start, self.start = self.start, None
        headers = MutableHeaders(raw=start["headers"])
        declared = headers.get("content-length")
        if not more and (
            len(body) < self.minimum_size or (declared is not None and declared != str(len(body)))
        ):
            # Small, or a body-less answer (HEAD) whose length describes another body.
            self.passthrough = True
            await self.send(start)
            await self.send(message)
            return
        headers["Content-Encoding"] = "gzip"
        tag = parse_entity_tag(headers.get("etag", ""))
        if tag is not None:
            headers["ETag"] = str(gzip_tag(tag))
        if more:
            del headers["content-length"]
            self.compressor = zlib.compressobj(self.level, zlib.DEFLATED, 31)
            chunk = self.compressor.compress(body)
        else:
            # mtime=0: the same identity body always gives the same gzip bytes, so the
            # "-gzip" tag is as strong as the identity one.
            if len(body) >= OFF_LOOP_SIZE:
                chunk = await in_thread(self.memo.compress, body, self.level)
            else:
                chunk = _gzip(body, self.level)
            headers["Content-Length"] = str(len(chunk))
        await self.send(start)
        await self.send({**message, "body": chunk})


def _gzip(body: bytes, level: int) -> bytes:
    return gzip.compress(body, compresslevel=level, mtime=0)
