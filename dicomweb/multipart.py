"""multipart/related bodies (RFC 2387, RFC 2046 §5.1) for STOW-RS and WADO-RS.

STOW-RS requests carry DICOM instances as the parts of a ``multipart/related``
body (PS3.18 §10.5); WADO-RS answers with one (PS3.18 §10.4, §8.7.3.5.1).
Instances are often hundreds of megabytes, so both directions stream:

* :class:`MultipartReader` is an incremental parser. Each completed part is
  spooled to a :class:`tempfile.SpooledTemporaryFile` (memory up to
  ``spool_bytes``, disk beyond), so memory stays bounded by the spool threshold
  plus one network chunk whatever the body size.
* :func:`iter_multipart` / :func:`aiter_multipart` emit part heads around body
  chunks exactly as the caller produces them, so files are never loaded whole.

The wire format, from RFC 2046 §5.1.1::

    multipart-body := [preamble CRLF] dash-boundary *padding CRLF body-part
                      *( CRLF dash-boundary *padding CRLF body-part )
                      CRLF dash-boundary "--" *padding [CRLF epilogue]
    dash-boundary  := "--" boundary

The CRLF before ``--boundary`` belongs to the delimiter, not to the preceding
part: a part whose content ends in CRLF is followed by CRLF CRLF ``--boundary``.
"""

from __future__ import annotations

import enum
import secrets
import string
import tempfile
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, cast

from dicomweb.mediatypes import MediaTypeError, format_media_type, is_token, parse_media_type

__all__ = [
    "MultipartError",
    "MultipartReader",
    "Part",
    "PartTooLarge",
    "TruncatedPart",
    "aiter_multipart",
    "boundary_from_content_type",
    "content_type",
    "encode_close",
    "encode_part_head",
    "iter_multipart",
    "new_boundary",
    "read_parts",
]

_CR = 0x0D
_LF = 0x0A
_DASH = 0x2D
_PADDING = frozenset(b" \t")
_MAX_BOUNDARY = 70  # RFC 2046 §5.1.1: boundary := 0*69<bchars> bcharsnospace
#: Transport padding accepted after a boundary. RFC 2046 sets no limit, but a
#: run longer than this is an attack or a corrupt body, never a real client.
MAX_TRANSPORT_PADDING = 1024
_BCHARS = frozenset(string.ascii_letters + string.digits + "'()+_,-./:=? ")
_PRINTABLE = frozenset(chr(code) for code in range(0x20, 0x7F))


class MultipartError(ValueError):
    """The body cannot be parsed as multipart/related (the message says why)."""


class PartTooLarge(MultipartError):
    """A body part exceeded ``max_part_bytes``; STOW-RS answers 413."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"multipart body part exceeds {limit} bytes (received at least {size})")
        self.size = size
        self.limit = limit


def _boundary_problem(boundary: str, *, strict: bool) -> str | None:
    """Why ``boundary`` is unusable, or None.

    The writer uses RFC 2046 ``bchars`` (``strict``). The reader only needs
    the exact byte sequence, so it accepts any printable ASCII: rejecting a
    client over a ``#`` in its boundary would gain nothing.
    """
    if not 1 <= len(boundary) <= _MAX_BOUNDARY:
        return f"boundary must be 1 to {_MAX_BOUNDARY} characters long, got {len(boundary)}"
    if boundary.endswith(" "):
        return "boundary must not end with a space (RFC 2046 §5.1.1)"
    allowed = _BCHARS if strict else _PRINTABLE
    bad = sorted({ch for ch in boundary if ch not in allowed})
    if bad:
        return f"boundary contains characters not allowed by RFC 2046 §5.1.1: {bad!r}"
    return None


def boundary_from_content_type(content_type: str) -> tuple[str, bytes]:
    """Return ``(type parameter, boundary)`` of a STOW-RS request's Content-Type.

    ``multipart/related; type="application/dicom"; boundary=XYZ`` gives
    ``("application/dicom", b"XYZ")``. Both parameters may be quoted or not
    (dicomweb-client quotes ``type``; many scripts do not). The type is
    lowercased and is ``""`` when absent, leaving the decision to the caller
    (PS3.18 §8.7.3.5.1 requires it, but the part Content-Type headers usually
    say the same thing).
    """
    try:
        media = parse_media_type(content_type)
    except MediaTypeError as exc:
        raise MultipartError(f"invalid Content-Type: {exc}") from exc
    if media.essence != "multipart/related":
        raise MultipartError(f"expected a multipart/related body, got {media.essence!r}")
    boundary = media.params.get("boundary")
    if boundary is None:
        raise MultipartError("multipart/related Content-Type has no boundary parameter")
    problem = _boundary_problem(boundary, strict=False)
    if problem is not None:
        raise MultipartError(problem)
    return media.params.get("type", "").strip().lower(), boundary.encode("ascii")


@dataclass
class Part:
    """One complete body part: every byte up to the next delimiter arrived."""

    headers: dict[str, str]
    """Header fields of the part, names lowercased."""
    content_type: str | None
    """The part's Content-Type header value, if any."""
    body: BinaryIO
    """Spooled content positioned at 0; in memory up to ``spool_bytes``."""
    size: int
    """Content length in bytes."""

    def close(self) -> None:
        """Release the spooled content (deletes the temporary file, if any)."""
        self.body.close()

    def __enter__(self) -> Part:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(frozen=True)
class TruncatedPart:
    """The stream ended inside a part (no closing delimiter): its bytes must not be stored.

    ``received`` counts the bytes that arrived after the part's delimiter line
    (headers and content, including any partial delimiter), for the error
    report.
    """

    received: int


class _State(enum.Enum):
    PREAMBLE = "preamble"
    HEADERS = "headers"
    BODY = "body"
    EPILOGUE = "epilogue"
    FAILED = "failed"
    FINISHED = "finished"
    CLOSED = "closed"


class _Tail(enum.Enum):
    """What follows ``--boundary`` at a line start."""

    NEED_MORE = "need more data"
    NOT_DELIMITER = "not a delimiter"
    DELIMITER = "delimiter"
    CLOSE = "close delimiter"


def _classify_tail(buf: bytearray, start: int) -> tuple[_Tail, int]:
    """Decide whether ``--boundary`` ending at ``start`` is a delimiter line.

    RFC 2046 §5.1.1 allows transport padding (spaces, tabs) and then the line
    end, or ``--`` for the close delimiter. Unlike the RFC's note to
    implementors (a prefix match suffices), ``--boundaryX`` is *not* taken as
    a delimiter: a full-line match means content that happens to contain the
    boundary followed by other bytes is kept intact. A bare LF is accepted as
    the line end because some clients write LF-only bodies. Returns the kind
    and the index just past the delimiter line.
    """
    end = len(buf)
    if start >= end:
        return _Tail.NEED_MORE, start
    if buf[start] == _DASH:
        if start + 1 >= end:
            return _Tail.NEED_MORE, start
        if buf[start + 1] == _DASH:
            return _Tail.CLOSE, start + 2
        return _Tail.NOT_DELIMITER, start
    index = start
    while index < end and buf[index] in _PADDING:
        index += 1
        if index - start > MAX_TRANSPORT_PADDING:
            raise MultipartError(
                f"more than {MAX_TRANSPORT_PADDING} bytes of padding after a boundary"
            )
    if index >= end:
        return _Tail.NEED_MORE, start
    if buf[index] == _LF:
        return _Tail.DELIMITER, index + 1
    if buf[index] == _CR:
        if index + 1 >= end:
            return _Tail.NEED_MORE, start
        if buf[index + 1] == _LF:
            return _Tail.DELIMITER, index + 2
    return _Tail.NOT_DELIMITER, start


class MultipartReader:
    """Incremental multipart/related parser: feed chunks of any size, get completed parts.

    A part is returned only once the *next* delimiter line has been seen, so a
    truncated upload never yields a partial part (:meth:`finish` reports it as
    :class:`TruncatedPart`). Preamble and epilogue are ignored (RFC 2046
    §5.1.1). Delimiters are ``--boundary`` at the start of a line (CRLF or bare
    LF), followed by optional transport padding and the line end, or by ``--``.
    The line break right after a part's header block also counts as a line
    start, so an empty part written as ``--b CRLF CRLF --b`` is accepted.

    Part header lines are ``Name: value`` until an empty line (an empty header
    block is allowed); folded continuation lines are unfolded and repeated
    names are joined with ``", "`` (RFC 9110 §5.3). A part without the empty
    line is malformed: its content would be read as headers and rejected.

    Efficiency: the delimiter is searched with ``bytearray.find`` from where
    the previous search stopped; only the last ``len(boundary) + 3`` bytes of a
    chunk are held back (they may start a delimiter), everything before is
    written to the part's spool file. Work is O(total bytes) and the buffer
    holds at most one chunk plus that tail (plus ``max_header_bytes`` while in
    a header block). Completed parts live in their own spool files: callers
    keep memory bounded by processing and closing each part before feeding
    more.

    Errors are raised as :class:`MultipartError` (:class:`PartTooLarge` for
    ``max_part_bytes``). Parts completed earlier in the same :meth:`feed` call
    are still returned; the error is then raised by the next call, so what a
    caller receives never depends on how the body was chunked.
    """

    def __init__(
        self,
        boundary: bytes,
        *,
        spool_bytes: int = 16 * 2**20,
        max_part_bytes: int | None = None,
        max_header_bytes: int = 16384,
        spool_dir: str | None = None,
    ) -> None:
        problem = _boundary_problem(boundary.decode("latin-1"), strict=False)
        if problem is not None:
            raise MultipartError(problem)
        self._dash = b"--" + boundary
        self._nl_dash = b"\n" + self._dash
        self._spool_bytes = spool_bytes
        self._max_part_bytes = max_part_bytes
        self._max_header_bytes = max_header_bytes
        self._spool_dir = spool_dir
        self._buf = bytearray()
        self._pos = 0  # first unconsumed byte in _buf
        self._scan = 0  # where the next search resumes (>= _pos)
        self._base = 0  # stream offset of _buf[0]
        self._fed = 0  # total bytes fed
        self._state = _State.PREAMBLE
        self._line_start = True  # _pos is at the start of a line
        self._part_start = 0  # stream offset just after the open part's delimiter line
        self._headers: dict[str, str] = {}
        self._last_header: str | None = None
        self._body: tempfile.SpooledTemporaryFile[bytes] | None = None
        self._size = 0
        self._error: MultipartError | None = None
        self._result: TruncatedPart | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes currently held in the search buffer (for monitoring and tests)."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[Part]:
        """Consume ``chunk`` and return the parts it completed, in order."""
        self._ensure_feedable()
        if not chunk:
            return []
        self._fed += len(chunk)
        if self._state is _State.EPILOGUE:
            return []
        self._buf += chunk
        done: list[Part] = []
        try:
            self._advance(done)
        except MultipartError as exc:
            self._fail(exc)
            if not done:
                raise
            return done
        self._compact()
        return done

    def finish(self) -> TruncatedPart | None:
        """Declare the end of the stream; returns what was left open, if anything.

        * ``None`` after the close delimiter, and for an empty body (no parts:
          the caller decides whether that is an error).
        * ``None`` when the stream ends right after a complete delimiter line
          (``...CRLF --b CRLF`` then nothing). Every part before it is
          complete; only the close delimiter is missing, a mistake some
          hand-written clients make. Nothing is lost by accepting it.
        * :class:`TruncatedPart` when any byte of an unfinished part arrived,
          including a delimiter cut before its line end (``...CRLF --b``).
        * :class:`MultipartError` when a non-empty body never contained a
          delimiter line, which usually means a wrong boundary.

        Calling it again returns the same result.
        """
        if self._error is not None:
            raise self._error
        if self._state is _State.FINISHED:
            return self._result
        if self._state is _State.CLOSED:
            raise RuntimeError("finish() called after close()")
        try:
            result = self._end_of_stream()
        except MultipartError as exc:
            self._fail(exc)
            raise
        self.close()
        self._state = _State.FINISHED
        self._result = result
        return result

    def close(self) -> None:
        """Release the open part's spool file and the buffer (idempotent)."""
        if self._body is not None:
            self._body.close()
            self._body = None
        self._buf = bytearray()
        self._pos = self._scan = 0
        if self._state is not _State.FINISHED:
            self._state = _State.CLOSED

    # -- internals -------------------------------------------------------

    def _ensure_feedable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._state is _State.FINISHED:
            raise RuntimeError("feed() called after finish()")
        if self._state is _State.CLOSED:
            raise RuntimeError("feed() called after close()")

    def _fail(self, exc: MultipartError) -> None:
        self.close()
        self._state = _State.FAILED
        self._error = exc

    def _end_of_stream(self) -> TruncatedPart | None:
        state = self._state
        if state is _State.PREAMBLE:
            if self._fed == 0:
                return None
            raise MultipartError(
                f"no delimiter line {self._dash.decode('latin-1')!r} found in the body; "
                "does the boundary in Content-Type match the body?"
            )
        if state is _State.HEADERS:
            received = self._fed - self._part_start
            return TruncatedPart(received) if received else None
        if state is _State.BODY:
            return TruncatedPart(self._fed - self._part_start)
        return None

    def _advance(self, done: list[Part]) -> None:
        while True:
            if self._state is _State.HEADERS:
                progressed = self._read_headers()
            elif self._state is _State.EPILOGUE:
                self._base += len(self._buf)
                self._buf.clear()
                self._pos = self._scan = 0
                return
            else:
                progressed = self._find_delimiter(done)
            if not progressed:
                return

    def _compact(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._base += self._pos
            self._scan -= self._pos
            self._pos = 0

    def _find_delimiter(self, done: list[Part]) -> bool:
        """Look for the next delimiter in PREAMBLE/BODY; True if one was consumed."""
        buf = self._buf
        if self._line_start:
            head = bytes(buf[self._pos : self._pos + len(self._dash)])
            if len(head) < len(self._dash) and self._dash.startswith(head):
                return False
            if head == self._dash:
                kind, end = _classify_tail(buf, self._pos + len(self._dash))
                if kind is _Tail.NEED_MORE:
                    return False
                if kind is not _Tail.NOT_DELIMITER:
                    return self._on_delimiter(self._pos, end, kind, done)
            self._line_start = False
        while True:
            found = buf.find(self._nl_dash, self._scan)
            if found < 0:
                self._consume(max(self._pos, len(buf) - len(self._nl_dash)))
                self._scan = self._pos
                return False
            kind, end = _classify_tail(buf, found + len(self._nl_dash))
            content_end = found - 1 if found > self._pos and buf[found - 1] == _CR else found
            if kind is _Tail.NEED_MORE:
                self._consume(content_end)
                self._scan = found
                return False
            if kind is _Tail.NOT_DELIMITER:
                self._scan = found + 1
                continue
            return self._on_delimiter(content_end, end, kind, done)

    def _on_delimiter(self, content_end: int, end: int, kind: _Tail, done: list[Part]) -> bool:
        if self._state is _State.BODY:
            self._consume(content_end)
            done.append(self._complete_part())
        self._pos = self._scan = end
        if kind is _Tail.CLOSE:
            self._state = _State.EPILOGUE
        else:
            self._state = _State.HEADERS
            self._part_start = self._base + end
            self._headers = {}
            self._last_header = None
        return True

    def _consume(self, end: int) -> None:
        """Move ``_pos`` to ``end``, writing the bytes to the open part (if any)."""
        if end <= self._pos:
            return
        if self._state is _State.BODY:
            assert self._body is not None
            count = end - self._pos
            if self._max_part_bytes is not None and self._size + count > self._max_part_bytes:
                raise PartTooLarge(self._size + count, self._max_part_bytes)
            with memoryview(self._buf) as view:
                self._body.write(view[self._pos : end])
            self._size += count
        self._pos = end
        self._line_start = False

    def _complete_part(self) -> Part:
        body = self._body
        assert body is not None
        body.seek(0)
        part = Part(
            headers=self._headers,
            content_type=self._headers.get("content-type"),
            body=cast(BinaryIO, body),
            size=self._size,
        )
        self._body = None
        self._size = 0
        return part

    def _read_headers(self) -> bool:
        """Parse header lines; True once the empty line ending the block was consumed."""
        buf = self._buf
        while True:
            newline = buf.find(b"\n", self._scan)
            line_end = newline + 1 if newline >= 0 else len(buf)
            if self._base + line_end - self._part_start > self._max_header_bytes:
                raise MultipartError(
                    f"body part header block exceeds {self._max_header_bytes} bytes"
                )
            if newline < 0:
                self._scan = len(buf)
                return False
            line = bytes(buf[self._pos : newline]).removesuffix(b"\r")
            self._pos = self._scan = newline + 1
            if not line:
                self._open_body()
                return True
            self._add_header(line.decode("latin-1"))

    def _add_header(self, line: str) -> None:
        if line[0] in " \t":
            # obs-fold (RFC 5322 §2.2.3): continuation of the previous field.
            if self._last_header is None:
                raise MultipartError("body part header block starts with a continuation line")
            self._headers[self._last_header] += " " + line.strip(" \t")
            return
        name, colon, value = line.partition(":")
        if not colon or not is_token(name):
            raise MultipartError(f"malformed header line in a body part: {line[:80]!r}")
        name = name.lower()
        value = value.strip(" \t")
        previous = self._headers.get(name)
        self._headers[name] = value if previous is None else f"{previous}, {value}"
        self._last_header = name

    def _open_body(self) -> None:
        # The file outlives this call: it becomes Part.body, closed by the caller.
        self._body = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=self._spool_bytes, mode="w+b", dir=self._spool_dir
        )
        self._size = 0
        self._state = _State.BODY
        self._line_start = True


async def read_parts(
    chunks: AsyncIterable[bytes], reader: MultipartReader
) -> AsyncGenerator[Part | TruncatedPart, None]:
    """Drive ``reader`` over an async byte stream (e.g. Starlette's ``request.stream()``).

    Yields each :class:`Part` as soon as it is complete, then a final
    :class:`TruncatedPart` if the stream ended inside a part. Parts not yet
    handed out when the consumer stops early are closed, and so is the reader;
    use :func:`contextlib.aclosing` to make that prompt.
    """
    pending: deque[Part] = deque()
    try:
        async for chunk in chunks:
            pending.extend(reader.feed(chunk))
            while pending:
                yield pending.popleft()
        truncated = reader.finish()
        if truncated is not None:
            yield truncated
    finally:
        for part in pending:
            part.close()
        reader.close()


# -- writer ------------------------------------------------------------------


def new_boundary() -> str:
    """A fresh boundary: 128 random bits, hex, so it is a token and never quoted.

    RFC 2046 §5.1.1 requires that the boundary not occur in any part; with 128
    random bits the chance that DICOM content contains it is negligible, so
    the writer does not scan bodies for it.
    """
    return f"radcase-{secrets.token_hex(16)}"


def _require_boundary(boundary: str) -> bytes:
    problem = _boundary_problem(boundary, strict=True)
    if problem is not None:
        raise ValueError(problem)
    return boundary.encode("ascii")


def content_type(boundary: str, part_type: str, **params: str) -> str:
    """The Content-Type of a multipart/related response (PS3.18 §8.7.3.5.1).

    ``content_type(b, "application/dicom", transfer_syntax="1.2.840.10008.1.2.1")``
    gives ``multipart/related; type="application/dicom"; boundary=b;
    transfer-syntax=1.2.840.10008.1.2.1``. Underscores in keyword names become
    hyphens (media type parameters use hyphens); ``**{"transfer-syntax": uid}``
    works too.
    """
    _require_boundary(boundary)
    values = {"type": part_type, "boundary": boundary}
    for key, value in params.items():
        name = key.replace("_", "-").lower()
        if name in values:
            raise ValueError(f"parameter {name!r} given twice")
        values[name] = value
    return format_media_type("multipart/related", values)


def _encode_header(name: str, value: str) -> bytes:
    if not is_token(name):
        raise ValueError(f"invalid header name {name!r}")
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError(f"header {name!r} value contains CR, LF or NUL")
    try:
        return f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"header {name!r} value is not Latin-1: {value!r}") from exc


def encode_part_head(boundary: str, headers: Mapping[str, str], *, first: bool = False) -> bytes:
    """Delimiter line and header block that open a part.

    The CRLF ending the previous part's content belongs to this delimiter
    (RFC 2046 §5.1.1), so the head starts with CRLF unless ``first``. A leading
    CRLF before the first part would be legal (an empty preamble), but
    hand-written viewer parsers (e.g. Cornerstone's) expect the body to start
    with ``--boundary``.
    """
    lines = [b"" if first else b"\r\n", b"--", _require_boundary(boundary), b"\r\n"]
    lines.extend(_encode_header(name, value) for name, value in headers.items())
    lines.append(b"\r\n")
    return b"".join(lines)


def encode_close(boundary: str) -> bytes:
    """The close delimiter (with the CRLF ending the last part's content)."""
    return b"\r\n--" + _require_boundary(boundary) + b"--\r\n"


def _close_for(boundary: str, any_part: bool) -> bytes:
    # With no part there is no content to end: drop the delimiter's CRLF so
    # the body starts with "--". (RFC 2046 wants at least one part; WADO-RS
    # answers 404 rather than sending an empty multipart.)
    close = encode_close(boundary)
    return close if any_part else close[2:]


def iter_multipart(
    boundary: str, parts: Iterable[tuple[Mapping[str, str], Iterable[bytes]]]
) -> Iterator[bytes]:
    """Stream a multipart body: each part's head, its chunks as given, then the close.

    Chunks are never joined or copied; empty chunks are skipped so a server
    never writes a zero-length chunk.
    """
    first = True
    for headers, body in parts:
        yield encode_part_head(boundary, headers, first=first)
        first = False
        for chunk in body:
            if chunk:
                yield chunk
    yield _close_for(boundary, not first)


async def aiter_multipart(
    boundary: str,
    parts: AsyncIterable[tuple[Mapping[str, str], AsyncIterable[bytes] | Iterable[bytes]]],
) -> AsyncGenerator[bytes, None]:
    """Async :func:`iter_multipart`: parts come from an async source, bodies may be async."""
    first = True
    async for headers, body in parts:
        yield encode_part_head(boundary, headers, first=first)
        first = False
        if isinstance(body, AsyncIterable):
            async for chunk in body:
                if chunk:
                    yield chunk
        else:
            for chunk in body:
                if chunk:
                    yield chunk
    yield _close_for(boundary, not first)
