"""QIDO-RS: search for studies, series and instances (PS3.18 §10.6).

Query parameters are parsed once into a typed :class:`storage.query.Query` (PS3.18 §8.3.4);
every parameter we cannot honour is a 400 that names it. Results are built from the level
documents stored at ingest plus the values the index derives (counts, modalities).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, Literal

from pydicom.datadict import tag_for_keyword
from starlette.requests import Request
from starlette.responses import Response

from dicomweb import uri
from dicomweb.context import Service
from dicomweb.errors import HttpError, bad_request, check_query_encoding, not_acceptable
from dicomweb.httpcache import REVALIDATE, entity_tag, precondition
from dicomweb.lanes import in_thread
from dicomweb.negotiation import NotAcceptableHeader, accept_from_request, parse_accept
from storage.archive import Archive
from storage.attributes import (
    BY_KEY,
    BY_KEYWORD,
    DEFAULT_RETURN,
    Level,
    QueryAttribute,
    visible_at,
)
from storage.errors import InvalidQuery
from storage.query import Condition, Query, condition, is_valid_uid
from storage.records import Match
from storage.results import dictionary_vr, match_attributes

CONTROL_PARAMETERS = frozenset(
    {"includefield", "fuzzymatching", "limit", "offset", "accept", "charset"}
)
DICOM_JSON = "application/dicom+json"
RETRIEVE_URL = 0x00081190
MAX_SQL_INTEGER = 2**63 - 1
MAX_VALUE_LENGTH = 1024
MAX_SHOWN = 40
SINGLETONS = frozenset({"fuzzymatching", "limit", "offset"})


def parse_query(
    params: Iterable[tuple[str, str]],
    level: Level,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
) -> Query:
    """Compile QIDO-RS query parameters (PS3.18 §8.3.4) into a typed query."""
    conditions: list[Condition] = []
    seen: set[str] = set()
    include: set[int] = set()
    include_all = False
    fuzzy = False
    limit: int | None = None
    offset = 0
    given: set[str] = set()
    for name, value in params:
        if name in SINGLETONS:
            if name in given:
                raise bad_request(name, "given more than once")
            given.add(name)
        if name == "includefield":
            for item in filter(None, (v.strip() for v in value.split(","))):
                if item == "all":
                    include_all = True
                else:
                    include.add(_include_tag(item))
        elif name == "fuzzymatching":
            if value not in ("true", "false"):
                raise bad_request(name, f"must be true or false, not {value!r}")
            fuzzy = value == "true"
        elif name in ("limit", "offset"):
            number = _non_negative(name, value)
            if name == "limit":
                limit = number
            else:
                offset = number
        elif name in ("accept", "charset"):
            continue
        else:
            attribute = _attribute(name, level)
            if attribute.key in seen:
                raise bad_request(name, "given more than once")
            seen.add(attribute.key)
            _check_value(name, value, attribute)
            try:
                conditions.append(condition(attribute, value))
            except InvalidQuery as exc:
                raise bad_request(name, exc.reason) from exc
    return Query(
        level=level,
        conditions=tuple(conditions),
        study_uid=study_uid,
        series_uid=series_uid,
        include="all" if include_all else frozenset(include),
        fuzzy=fuzzy,
        limit=limit,
        offset=offset,
    )


def _non_negative(name: str, value: str) -> int:
    # ASCII digits only: str.isdigit also takes '²' and other scripts' digits.
    if not (value.isascii() and value.isdigit()):
        raise bad_request(name, f"must be a non-negative integer, not {_shown(value)}")
    # Databases take 64-bit LIMIT/OFFSET; a larger offset is past every result anyway. The
    # length is checked first because int() refuses strings of more than 4300 digits.
    if len(value.lstrip("0")) > len(str(MAX_SQL_INTEGER)):
        return MAX_SQL_INTEGER
    return min(int(value), MAX_SQL_INTEGER)


def _shown(value: str) -> str:
    """A parameter value quoted for an error message, cut short when long."""
    return repr(value) if len(value) <= MAX_SHOWN else repr(value[:MAX_SHOWN]) + "..."


def _check_value(name: str, value: str, attribute: QueryAttribute) -> None:
    """A matching value that no stored value can equal is a client mistake worth naming
    (a 400, like any other invalid query parameter).

    Control characters: PS3.5 Table 6.2-1 allows none but ESC in the VRs searched here, and
    text from a URL carries no ISO 2022 escapes. Length: except for UID lists, a value far
    longer than those VRs hold (64 characters per PN component group, fewer for LO, SH and
    CS); the bound leaves ample room for wildcards and value lists.
    """
    if any(ch < " " or ch == "\x7f" for ch in value):
        raise bad_request(name, f"{_shown(value)} contains control characters")
    if attribute.vr != "UI" and len(value) > MAX_VALUE_LENGTH:
        raise bad_request(
            name, f"the value is {len(value)} characters long; at most {MAX_VALUE_LENGTH}"
        )


def _resolve_tag(item: str) -> int | None:
    if len(item) == 8:
        try:
            return int(item, 16)
        except ValueError:
            pass
    return tag_for_keyword(item)


def _include_tag(item: str) -> int:
    """An includefield value: keyword or tag, a dotted sequence path meaning its top-level
    sequence (PS3.18 §8.3.4.3)."""
    tag = _resolve_tag(item.split(".", 1)[0])
    if tag is None:
        raise bad_request("includefield", f"{item!r} is not a DICOM keyword or tag")
    return tag


def _attribute(name: str, level: Level) -> QueryAttribute:
    """The catalogue attribute a matching key names (keyword, tag, or dotted sequence path)."""
    attribute = BY_KEYWORD.get(name) or BY_KEY.get(name.upper())
    if attribute is None and "." in name:
        parts = [_resolve_tag(p) for p in name.split(".")]
        if None not in parts:
            attribute = BY_KEY.get(".".join(f"{t:08X}" for t in parts if t is not None))
    if attribute is None:
        if _resolve_tag(name.split(".")[0]) is None:
            raise bad_request(name, "unknown query parameter or attribute")
        supported = ", ".join(
            a.keyword for a in BY_KEYWORD.values() if a.matchable and visible_at(a, level)
        )
        raise bad_request(
            name,
            f"matching on this attribute is not supported at the "
            f"{level.lower()} level (supported: {supported})",
        )
    if not attribute.matchable:
        raise bad_request(name, "is returned by the server and cannot be matched")
    if not visible_at(attribute, level):
        raise bad_request(
            name,
            f"is a {attribute.level.lower()}-level attribute and cannot "
            f"be matched in a {level.lower()} search",
        )
    return attribute


def return_tags(query: Query) -> set[int] | Literal["all"]:
    """Default attributes of the level (PS3.18 Tables 10.6.3-3..5), those of the levels above
    when the search is not scoped to them (PS3.18 §10.6.3.3), the matching keys and the
    includefield attributes."""
    if query.include == "all":
        return "all"
    tags = set(DEFAULT_RETURN[query.level])
    if query.level is not Level.STUDY and query.study_uid is None:
        tags |= DEFAULT_RETURN[Level.STUDY]
    if query.level is Level.INSTANCE and query.series_uid is None:
        tags |= DEFAULT_RETURN[Level.SERIES]
    tags |= {c.attribute.sequence or c.attribute.tag for c in query.conditions}
    tags |= set(query.include)
    return tags


def result_object(match: Match, tags: set[int] | Literal["all"], root: str) -> dict[str, Any]:
    """One result in the DICOM JSON model (PS3.18 §F.2): the requested attributes, empty
    when the instance has no value (PS3.18 §10.6.3.3), and the RetrieveURL."""
    merged = {
        key: value
        for key, value in match_attributes(match).items()
        if tags == "all" or int(key, 16) in tags
    }
    if tags != "all":
        for tag in tags:
            key = f"{tag:08X}"
            if key not in merged and tag != RETRIEVE_URL:
                merged[key] = {"vr": dictionary_vr(tag)}
    merged[f"{RETRIEVE_URL:08X}"] = {"vr": "UR", "Value": [_retrieve_url(match, root)]}
    return dict(sorted(merged.items()))


def _retrieve_url(match: Match, root: str) -> str:
    if match.sop_uid is not None and match.series_uid is not None:
        return uri.instance_url(root, match.study_uid, match.series_uid, match.sop_uid)
    if match.series_uid is not None:
        return uri.series_url(root, match.study_uid, match.series_uid)
    return uri.study_url(root, match.study_uid)


def _check_accept(request: Request) -> None:
    """QIDO-RS answers in DICOM JSON (PS3.18 §10.6.1.3); a client that accepts neither it,
    application/json nor a wildcard gets 406."""
    check_query_encoding(request)
    header = accept_from_request(
        request.headers.get("accept"), request.query_params.getlist("accept")
    )
    try:
        acceptable = parse_accept(header)
    except NotAcceptableHeader as exc:
        raise bad_request("Accept", str(exc)) from exc
    if not any(a.matches(DICOM_JSON) or a.matches("application/json") for a in acceptable):
        raise not_acceptable("search results are available as application/dicom+json only")


async def search(request: Request, level: Level) -> Response:
    service: Service = request.app.state.service
    path = request.path_params
    study_uid, series_uid = path.get("study"), path.get("series")
    for name, value in (("StudyInstanceUID", study_uid), ("SeriesInstanceUID", series_uid)):
        if value is not None and not is_valid_uid(value):
            raise HttpError(400, f"{name} in the path: {value!r} is not a valid UID")
    _check_accept(request)
    query = parse_query(
        request.query_params.multi_items(), level, study_uid=study_uid, series_uid=series_uid
    )
    cap = service.options.max_results
    wanted = cap if query.limit is None else min(query.limit, cap)
    archive = service.archive_for(request)
    root = service.root(request)
    answer = await in_thread(
        archive.cached_search,
        repr((query, wanted, root)),
        lambda: _answer(archive, query, wanted, root),
    )
    headers: dict[str, str] = {}
    more, body = answer[:1] == MORE, answer[1:]
    if more:
        headers["Warning"] = '299 radcase-pacs "There are additional results that can be requested"'
    elif query.limit is not None and query.limit > cap:
        headers["Warning"] = (
            f'299 radcase-pacs "The limit {query.limit} exceeds the maximum of {cap} results"'
        )
    # Results change with every store and delete, so caches revalidate (RFC 9111 §5.2.2.4);
    # the tag is a hash of the body itself, which is small and already in memory.
    tag = entity_tag("search", hashlib.blake2b(body, digest_size=16).hexdigest())
    headers.update(
        {"ETag": str(tag), "Cache-Control": REVALIDATE, "Vary": "Accept, Accept-Encoding"}
    )
    return precondition(request, tag, headers) or Response(
        body, media_type=DICOM_JSON, headers=headers
    )


MORE = b"+"
"""First byte of a cached answer whose search has more results than it returns."""


def _answer(archive: Archive, query: Query, wanted: int, root: str) -> bytes:
    """The search's results as a DICOM JSON body, after :data:`MORE` or a space."""
    # One row more than returned reveals whether further results exist (PS3.18 §8.3.4.4).
    matches = archive.query(query, limit=wanted + 1)
    more = len(matches) > wanted
    tags = return_tags(query)
    results = [result_object(match, tags, root) for match in matches[:wanted]]
    body = json.dumps(results, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return (MORE if more else b" ") + body


async def search_studies(request: Request) -> Response:
    return await search(request, Level.STUDY)


async def search_series(request: Request) -> Response:
    return await search(request, Level.SERIES)


async def search_instances(request: Request) -> Response:
    return await search(request, Level.INSTANCE)
