"""Accept header handling for DICOMweb (PS3.18 §8.7 Media Types, §8.3.3.1).

DICOMweb negotiates two things at once: the media type of each returned item
(``application/dicom``, ``application/octet-stream``, ``image/jpeg``...) and
whether items come one per response or wrapped in ``multipart/related``
(PS3.18 §8.7.3.5.1, RFC 2387). A multipart range names its item type in the
``type`` parameter, so this module unwraps it: each :class:`Acceptable` carries
the *item* essence plus a ``multipart`` flag, and the ``transfer-syntax``
parameter (PS3.18 §8.7.3.5.2) lifted out of the parameters.

What real clients send, and what it parses to:

* OHIF (via dicomweb-client JS) for frames:
  ``multipart/related; type=application/octet-stream; transfer-syntax=*``
  -> essence ``application/octet-stream``, multipart, transfer syntax ``*``
  ("any": serve the stored encoding without transcoding). Note the unquoted
  ``type`` value, which strict RFC 9110 parsing would reject.
* dicomweb-client (Python) for instances:
  ``multipart/related; type="application/dicom"; transfer-syntax=*``; for
  metadata ``application/dicom+json`` (single part: PS3.18 §10.4.4 encodes all
  instances' metadata in one JSON array, never multipart).
* Browsers and curl: ``*/*``, or
  ``image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8`` for an
  ``<img>``. PS3.18 says ``*/*`` selects the resource category's default media
  type, so callers treat a top-level ``*/*`` as "anything, including the
  default multipart container" (see :attr:`Acceptable.any_container`).

Malformed ranges are skipped rather than failing the request: PS3.18 (§8.7.7 in
the 2019 editions) says values "that are not valid or not supported shall be
ignored". Only when nothing at all can be interpreted is
:class:`NotAcceptableHeader` raised.

A missing Accept header is treated as ``*/*`` (RFC 9110 §12.5.1). Some PS3.18
editions ask for 406 in that case; curl and ad-hoc scripts omit the header, so
the lenient reading serves the default representation instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dicomweb.mediatypes import TCHARS, MediaTypeError, parse_media_type, split_list

__all__ = [
    "ANY",
    "Acceptable",
    "NotAcceptableHeader",
    "accept_from_request",
    "parse_accept",
]

_MULTIPART_RANGES = frozenset({"multipart/related", "multipart/*"})
# RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Acceptable:
    """One media range the client accepts, in preference order.

    ``essence`` is the media type of the *items*: for
    ``multipart/related; type="application/dicom"`` it is
    ``application/dicom`` with ``multipart=True``. It may be a wildcard
    (``*/*``, ``image/*``).

    ``transfer_syntax`` is the ``transfer-syntax`` parameter
    (PS3.18 §8.7.3.5.2): a UID, ``"*"`` meaning any (the server may send the
    stored encoding), or ``None`` when absent, in which case the default
    Transfer Syntax of the resource category applies (PS3.18 §8.7.3 tables).

    ``params`` holds the remaining parameters (``charset``, ``boundary``...)
    with ``q``, ``type`` (multipart only) and ``transfer-syntax`` removed.
    """

    essence: str
    multipart: bool
    transfer_syntax: str | None
    q: float
    params: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @property
    def wildcard(self) -> bool:
        """True for ``*/*`` and ``type/*`` ranges."""
        return self.essence.endswith("/*")

    @property
    def any_container(self) -> bool:
        """True for a single-part ``*/*``: any representation is acceptable.

        ``*/*`` matches every media type, including ``multipart/related``
        itself, so a server may answer it with its default (often multipart)
        representation. ``image/*`` does not have this property: a
        ``multipart/related`` body is not an ``image/*``.
        """
        return self.essence == "*/*" and not self.multipart

    def matches(self, essence: str) -> bool:
        """Whether this range covers the item media type ``essence``.

        Wildcard-aware (``*/*``, ``image/*``), case-insensitive; ignores the
        container, see :meth:`accepts` for that.
        """
        wanted = essence.lower()
        if self.essence == "*/*":
            return True
        if self.wildcard:
            return wanted.split("/", 1)[0] == self.essence[:-2]
        return wanted == self.essence

    def accepts(self, essence: str, *, multipart: bool) -> bool:
        """Whether items of ``essence`` sent single-part or multipart are acceptable.

        A multipart range only admits multipart bodies and vice versa, except
        that a top-level ``*/*`` admits both (see :attr:`any_container`).
        """
        if not self.matches(essence):
            return False
        return self.any_container or self.multipart == multipart


#: What a missing or empty Accept header means (RFC 9110 §12.5.1).
ANY = Acceptable("*/*", multipart=False, transfer_syntax=None, q=1.0)


class NotAcceptableHeader(ValueError):
    """An Accept header in which no media range could be interpreted."""


def _parse_q(value: str | None) -> float:
    if value is None:
        return 1.0
    if not _QVALUE.fullmatch(value):
        raise MediaTypeError(
            f"invalid q-value {value!r}: RFC 9110 §12.4.2 allows 0 to 1 with at most 3 decimals"
        )
    return float(value)


def _check_range(type_: str, subtype: str) -> None:
    # RFC 9110 §12.5.1: media-range = "*/*" / ( type "/*" ) / ( type "/" subtype )
    if type_ == "*" and subtype != "*":
        raise MediaTypeError(f"'{type_}/{subtype}' is not a valid media range")


def _part_type(value: str) -> str:
    """Parse the ``type`` parameter of a multipart range into an item essence.

    RFC 2387 §3.1 makes it a bare ``type/subtype``. dicomweb-client (Python)
    lets callers write ``image/`` for "any image", so a trailing ``/`` is read
    as ``/*``.
    """
    text = value.strip()
    if text.endswith("/"):
        text += "*"
    part = parse_media_type(text)
    if part.params:
        raise MediaTypeError(f"multipart type parameter {value!r} must not carry parameters")
    _check_range(part.type, part.subtype)
    return part.essence


def _parse_range(element: str, default_multipart_type: str | None) -> Acceptable:
    media = parse_media_type(element)
    _check_range(media.type, media.subtype)
    params = dict(media.params)
    q = _parse_q(params.pop("q", None))
    transfer_syntax = params.pop("transfer-syntax", "").strip() or None
    if media.essence in _MULTIPART_RANGES:
        # ``multipart/*`` is read like ``multipart/related``: it is the only
        # multipart subtype DICOMweb defines (PS3.18 §8.7.3.5.1).
        type_param = params.pop("type", None)
        if type_param is not None:
            essence = _part_type(type_param)
        else:
            essence = (default_multipart_type or "*/*").lower()
        return Acceptable(essence, True, transfer_syntax, q, MappingProxyType(params))
    return Acceptable(media.essence, False, transfer_syntax, q, MappingProxyType(params))


CACHED_ACCEPT_LENGTH = 512
"""A viewer sends the same few Accept headers with every request, and parsing one cost about
a twelfth of the CPU of a frame request, so parsed headers are remembered; only short ones,
so that the memory they hold stays small whatever clients send."""


def parse_accept(header: str | None, default_multipart_type: str | None = None) -> list[Acceptable]:
    """Parse an Accept header into :class:`Acceptable` ranges, most preferred first.

    * A missing or empty header yields ``[ANY]`` (``*/*``, q=1).
    * Ranges are sorted by q descending; equal q keeps header order (a stable
      sort), which is how clients such as OHIF express preference.
    * ``q=0`` ranges are dropped. RFC 9110 §12.5.1 would let ``image/png;q=0``
      veto a ``*/*`` in the same header; no DICOMweb client sends that, and
      callers only see the remaining ranges. If every range has q=0 the result
      is empty, which callers answer with 406.
    * ``multipart/related`` without ``type`` gets ``default_multipart_type``
      (the service's default item type) or ``*/*``.
    * A range that does not parse is skipped (PS3.18: invalid values are
      ignored); if none parses, :class:`NotAcceptableHeader` names the problems.
    """
    if header is not None and len(header) > CACHED_ACCEPT_LENGTH:
        return list(_parsed_accept.__wrapped__(header, default_multipart_type))
    return list(_parsed_accept(header, default_multipart_type))


@functools.lru_cache(maxsize=512)
def _parsed_accept(
    header: str | None, default_multipart_type: str | None
) -> tuple[Acceptable, ...]:
    if header is None:
        return (ANY,)
    elements = split_list(header)
    if not elements:
        return (ANY,)
    accepted: list[Acceptable] = []
    problems: list[str] = []
    for element in elements:
        try:
            acceptable = _parse_range(element, default_multipart_type)
        except MediaTypeError as exc:
            problems.append(str(exc))
            continue
        if acceptable.q > 0:
            accepted.append(acceptable)
    if not accepted and len(problems) == len(elements):
        raise NotAcceptableHeader("no valid media range in Accept: " + "; ".join(problems))
    accepted.sort(key=lambda a: a.q, reverse=True)
    return tuple(accepted)


def _restore_plus(value: str) -> str:
    """Undo form-decoding of ``+`` in a media type taken from a query string.

    Starlette decodes query strings as application/x-www-form-urlencoded, so an
    unencoded ``?accept=application/dicom+json`` arrives as
    ``application/dicom json``. Outside quoted strings a single space between
    two token characters never occurs in a valid media-type list (spaces only
    sit next to ``;``, ``,`` or ``=``), so turning it back into ``+`` cannot
    change the meaning of a correctly percent-encoded value.
    """
    out: list[str] = []
    in_quotes = escaped = False
    for index, ch in enumerate(value):
        if escaped:
            escaped = False
        elif in_quotes:
            escaped = ch == "\\"
            in_quotes = ch != '"'
        elif ch == '"':
            in_quotes = True
        elif (
            ch == " "
            and 0 < index < len(value) - 1
            and value[index - 1] in TCHARS
            and value[index + 1] in TCHARS
        ):
            ch = "+"
        out.append(ch)
    return "".join(out)


def accept_from_request(headers_accept: str | None, query_accept: Iterable[str]) -> str | None:
    """The effective Accept value: the ``accept`` query parameter wins (PS3.18 §8.3.3.1).

    The query parameter exists so that links (e.g. in a browser address bar)
    can choose a representation; when present, its values (several
    ``accept=`` parameters are allowed) are joined with ``", "`` and the
    header is ignored. Values that are empty after decoding count as absent.
    A ``+`` that form-decoding turned into a space is restored (see
    :func:`_restore_plus`).
    """
    values = [_restore_plus(value).strip() for value in query_accept]
    values = [value for value in values if value]
    if values:
        return ", ".join(values)
    return headers_accept
