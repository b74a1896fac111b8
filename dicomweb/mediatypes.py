"""Media type parsing and formatting (RFC 9110 §8.3.1, §5.6).

DICOMweb is media-type driven: the Accept header selects the representation
(PS3.18 §8.7) and the Content-Type of a STOW-RS request carries the multipart
``boundary`` and ``type`` parameters (PS3.18 §8.7.3.5.1, RFC 2387). Both go
through :func:`parse_media_type`, so the grammar lives in one place:

    media-type = type "/" subtype parameters          ; RFC 9110 §8.3.1
    parameters = *( OWS ";" OWS [ parameter ] )       ; RFC 9110 §5.6.6
    parameter  = parameter-name "=" parameter-value
    parameter-value = ( token / quoted-string )

The parser is strict where ambiguity could change meaning (unterminated quotes,
missing ``=``, duplicate parameters, garbage after a quoted string) and lenient
where real clients deviate harmlessly:

* Unquoted parameter values may contain any visible character except ``"``,
  ``;``, ``,`` and ``\\``. RFC 9110 requires a *token*, which excludes ``/``,
  yet OHIF sends ``type=application/octet-stream`` and many STOW-RS clients send
  ``type=application/dicom`` unquoted. Commas stay excluded so that a list
  element never swallows the next one (RFC 9110 §5.6.1).
* Whitespace around ``=`` (``"BWS"``) is skipped; it cannot change meaning.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "MediaType",
    "MediaTypeError",
    "format_media_type",
    "is_token",
    "parse_media_type",
    "quote_parameter_value",
    "split_list",
]

#: RFC 9110 §5.6.2 ``tchar``.
TCHARS = frozenset("!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters)
_OWS = " \t"
_UNQUOTED_EXCLUDED = frozenset('";,\\')
_MAX_ECHO = 120


class MediaTypeError(ValueError):
    """A media type (or one element of a media-type list) is malformed."""


@dataclass(frozen=True)
class MediaType:
    """A parsed media type.

    ``type``, ``subtype`` and parameter names are lowercased because RFC 9110
    §8.3.1 makes them case-insensitive; parameter values keep their case since
    their sensitivity depends on the parameter (a multipart ``boundary`` is
    case-sensitive, RFC 2046 §5.1.1).
    """

    type: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def essence(self) -> str:
        """``type/subtype`` without parameters: what matching compares."""
        return f"{self.type}/{self.subtype}"

    def __str__(self) -> str:
        return format_media_type(self.essence, self.params)


def is_token(value: str) -> bool:
    """True if ``value`` is a non-empty RFC 9110 §5.6.2 token."""
    return bool(value) and all(ch in TCHARS for ch in value)


def quote_parameter_value(value: str) -> str:
    """Return ``value`` as a token if it is one, else as a quoted-string.

    RFC 9110 §5.6.4: inside a quoted-string only ``"`` and ``\\`` need a
    backslash. Control characters (other than HTAB) cannot be represented and
    are rejected rather than silently dropped.
    """
    if is_token(value):
        return value
    for ch in value:
        if (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F or ord(ch) > 0xFF:
            raise ValueError(f"character {ch!r} cannot appear in a parameter value")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def format_media_type(essence: str, params: Mapping[str, str]) -> str:
    """Serialise ``essence`` and ``params`` as ``type/subtype; name=value``.

    Values are quoted only when they are not tokens, so
    ``{"type": "application/dicom"}`` becomes ``type="application/dicom"`` (the
    ``/`` forces quoting, as in the PS3.18 examples) while a transfer syntax UID
    stays bare.
    """
    parts = [essence]
    for name, value in params.items():
        if not is_token(name):
            raise ValueError(f"invalid parameter name {name!r}")
        parts.append(f"{name}={quote_parameter_value(value)}")
    return "; ".join(parts)


class _Cursor:
    """Character cursor over a header value, producing positioned errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ows(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _OWS:
            self.pos += 1

    def error(self, problem: str) -> MediaTypeError:
        shown = self.text if len(self.text) <= _MAX_ECHO else self.text[:_MAX_ECHO] + "..."
        return MediaTypeError(f"{problem} at position {self.pos} in media type {shown!r}")

    def token(self, what: str) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in TCHARS:
            self.pos += 1
        if self.pos == start:
            found = repr(self.peek()) if not self.at_end() else "end of input"
            raise self.error(f"expected {what}, found {found}")
        return self.text[start : self.pos]

    def expect(self, char: str, problem: str) -> None:
        if self.peek() != char:
            raise self.error(problem)
        self.pos += 1

    def quoted_string(self) -> str:
        """Read a quoted-string (RFC 9110 §5.6.4); the cursor is on the ``"``."""
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                self.pos += 1
                if self.at_end():
                    break
                ch = self.text[self.pos]
            if (ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F:
                raise self.error(f"control character {ch!r} in quoted string")
            out.append(ch)
            self.pos += 1
        raise self.error("unterminated quoted string")

    def unquoted_value(self, name: str) -> str:
        start = self.pos
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in _OWS or ch in _UNQUOTED_EXCLUDED or ord(ch) < 0x20 or ord(ch) == 0x7F:
                break
            self.pos += 1
        if self.pos == start:
            raise self.error(f"parameter {name!r} has an empty value")
        return self.text[start : self.pos]


def _parse_parameter(cur: _Cursor, params: dict[str, str]) -> None:
    name = cur.token("parameter name").lower()
    cur.skip_ows()
    cur.expect("=", f"parameter {name!r} has no '=value'")
    cur.skip_ows()
    value = cur.quoted_string() if cur.peek() == '"' else cur.unquoted_value(name)
    if name in params:
        # RFC 6838 §4.3: "It is an error for a specific parameter to be
        # specified more than once." Picking one would be a guess.
        raise cur.error(f"duplicate parameter {name!r}")
    params[name] = value


def parse_media_type(value: str) -> MediaType:
    """Parse ``type/subtype *( ; name=value )`` (RFC 9110 §8.3.1).

    Wildcards (``*/*``, ``image/*``) parse like any token; whether they are
    allowed is for the caller (they are only meaningful in Accept).
    Raises :class:`MediaTypeError` naming the problem and its position.
    """
    cur = _Cursor(value)
    cur.skip_ows()
    if cur.at_end():
        raise cur.error("empty media type")
    type_ = cur.token("media type name").lower()
    cur.expect("/", f"missing '/' after {type_!r}")
    subtype = cur.token("media subtype").lower()
    params: dict[str, str] = {}
    while True:
        cur.skip_ows()
        if cur.at_end():
            return MediaType(type_, subtype, params)
        cur.expect(";", f"unexpected character {cur.peek()!r}")
        cur.skip_ows()
        if cur.at_end() or cur.peek() == ";":
            continue  # empty parameter, allowed by RFC 9110 §5.6.6 grammar
        _parse_parameter(cur, params)


def split_list(value: str) -> list[str]:
    """Split a comma-separated header list (RFC 9110 §5.6.1).

    Commas inside quoted strings (with backslash escapes) do not separate
    elements; empty elements are dropped as §5.6.1 requires recipients to
    accept them. Elements are stripped of surrounding whitespace. An
    unterminated quote extends to the end, so that element fails to parse
    later instead of being cut somewhere arbitrary.
    """
    elements: list[str] = []
    start = 0
    in_quotes = False
    escaped = False
    for index, ch in enumerate(value):
        if escaped:
            escaped = False
        elif in_quotes:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == ",":
            elements.append(value[start:index])
            start = index + 1
    elements.append(value[start:])
    return [element.strip(_OWS) for element in elements if element.strip(_OWS)]
