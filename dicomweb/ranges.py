"""Byte ranges of single-part bodies: bulk data and bare frames (RFC 9110 §14).

A viewer that lost a connection halfway through a large bulk data value, or that only wants
the start of one, asks for ``Range: bytes=...``. Only a bare body (one value, not a
multipart container) has byte positions a client can know in advance, so only those are
ranged; everything else ignores the header, as RFC 9110 §14.2 allows.

What is supported: one range, in any of its three forms (``a-b``, ``a-``, ``-n``), answered
206 with Content-Range; a range that starts past the end (or ``-0``) is 416 with
``Content-Range: bytes */length``. A header that cannot be parsed, names another unit, or
asks for several ranges is ignored and the whole body sent (200): RFC 9110 §14.2 lets a
server ignore any Range, and a client must cope with 200. ``If-Range`` is honoured with our
strong ETag (§13.1.5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import Response

from dicomweb.errors import HttpError
from dicomweb.httpcache import EntityTag, is_multipart, parse_entity_tag

# RFC 9110 §14.1.1: int-range = first-pos "-" [ last-pos ], suffix-range = "-" suffix-length,
# positions are 1*DIGIT (ASCII digits only: a str pattern's \d would take other scripts').
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
# Positions past any real body; capping the digits keeps int() cheap and within its limits.
_MAX_DIGITS = 18


@dataclass(frozen=True)
class ByteRange:
    """``first`` to ``last`` inclusive, both within the body."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


def parse_range(header: str, length: int) -> ByteRange | Literal["unsatisfiable"] | None:
    """The one range ``header`` asks of a body of ``length`` bytes.

    None means "ignore the header": not ``bytes``, malformed, an invalid range (last before
    first), several ranges, or an empty body (RFC 9110 §14.1.1 allows only a suffix range
    on a zero-length body, and Content-Range cannot express the empty result).
    """
    unit, equals, ranges = header.partition("=")
    if not equals or unit.strip().lower() != "bytes" or length == 0:
        return None
    specs = [s.strip() for s in ranges.split(",") if s.strip()]
    if len(specs) != 1:
        return None
    match = _RANGE_SPEC.fullmatch(specs[0])
    if match is None or match.group(0) == "-":
        return None
    first_digits, last_digits = match.groups()
    if not first_digits:  # suffix-range: the last n bytes (all of them if n >= length)
        suffix = _position(last_digits)
        if suffix == 0:
            return "unsatisfiable"
        return ByteRange(max(0, length - suffix), length - 1)
    first = _position(first_digits)
    if last_digits and _position(last_digits) < first:
        return None
    if first >= length:
        return "unsatisfiable"
    last = min(_position(last_digits), length - 1) if last_digits else length - 1
    return ByteRange(first, last)


def _if_range_holds(header: str | None, tag: EntityTag) -> bool:
    """RFC 9110 §13.1.5: with If-Range, the range applies only if the validator matches by
    strong comparison. We send no Last-Modified, so a date never matches."""
    if header is None:
        return True
    given = parse_entity_tag(header)
    return given is not None and given.strong_equals(tag)


def with_ranges(request: Request, response: Response, tag: EntityTag) -> Response:
    """Serve ``response`` whole (200, advertising ``Accept-Ranges: bytes``), as the part a
    ``Range`` asks for (206), or refuse the range (416).

    Only a complete single-part body with a strong tag is ranged; anything else (multipart,
    streamed, non-200, weak tag) is returned unchanged.
    """
    body = getattr(response, "body", None)
    if (
        response.status_code != 200
        or not isinstance(body, bytes)
        or is_multipart(response)
        or tag.weak
    ):
        return response
    response.headers["Accept-Ranges"] = "bytes"
    header = request.headers.get("range")
    # RFC 9110 §14.2: range handling is defined for GET only.
    if request.method != "GET" or header is None:
        return response
    if not _if_range_holds(request.headers.get("if-range"), tag):
        return response
    wanted = parse_range(header, len(body))
    if wanted is None:
        return response
    if wanted == "unsatisfiable":
        raise HttpError(
            416,
            f"Range: {header!r} cannot be satisfied: the body is {len(body)} bytes long",
            {"Content-Range": f"bytes */{len(body)}"},
        )
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    headers["Content-Range"] = f"bytes {wanted.first}-{wanted.last}/{len(body)}"
    return Response(body[wanted.first : wanted.last + 1], status_code=206, headers=headers)
