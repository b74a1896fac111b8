"""Learners reach the published teaching cases only: a middleware in front of the teaching
DICOMweb root (``/teaching/dicomweb``).

Why: the teaching collection holds the de-identified copy of every case of an institution,
but a case is only meant for learners once an educator has published it. Until then it can
carry unreviewed material: instances still waiting for the burned-in text review, a diagnosis
not yet confirmed by pathology, a selection of images nobody has checked. Educators,
administrators and service accounts author and check drafts, so they keep seeing every case
of their institution (and with authentication off every request acts as an admin, so nothing
changes there); a principal with the learner role reaches the studies of the institution's
published cases and nothing else.

How, without teaching the DICOMweb app anything about cases:

* A request that names a study in its path (``/studies/{uid}`` and everything below it) or in
  WADO-URI's ``studyUID`` parameter, when that study is not published, is handed to the app
  unchanged but in a view where no study exists (the archive scoped to a tenant of its own
  that holds nothing). The app then answers exactly as it answers for a study that does not
  exist: the same 404 and body, the same headers, and the same 400 for a malformed request,
  so a learner cannot tell a draft from a study that is not there.
* A QIDO-RS search with no study in its path (``/studies``, ``/series``, ``/instances``) is
  narrowed with UID list matching (PS3.18 §8.3.4.1: a UID key may be "a list of UIDs ...
  separated by commas"; PS3.4 §C.2.2.2.2): a request without a StudyInstanceUID key (by
  keyword or by tag, ``0020000D``) gets one listing the published studies; a request with one
  has its list intersected with them. Only that parameter is rewritten; every other byte of
  the query string is kept. When nothing is left to match, the original search runs in the
  empty view, which gives the app's own answer to a search that matches nothing.
* Anything else (CORS preflights, other paths, other roles) passes through untouched.

The published set is read from the case store on each restricted request, so publishing or
deleting a case takes effect at once. When it cannot be read the request is refused (503):
a learner is never served a study because the check failed.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from radcase_pacs.auth.principal import Role, principal_of
from storage.attributes import BY_KEY, BY_KEYWORD
from storage.errors import ArchiveError
from storage.query import is_valid_uid

log = logging.getLogger(__name__)

Published = Callable[[str], frozenset[str]]
"""The teaching study UIDs of a tenant's published cases."""

SEARCHES = frozenset({"/studies", "/series", "/instances"})
STUDIES_PREFIX = "/studies/"
WADO_URI = "/wado"
STUDY_KEY = BY_KEYWORD["StudyInstanceUID"]
UID_SEPARATORS = re.compile(r"[,\\]")
UNAVAILABLE = "The teaching collection could not complete the request (nothing was served).\n"


class LearnerView:
    """Wraps the teaching DICOMweb app; ``published(tenant)`` gives the studies a learner of
    that tenant may reach. It is called in a worker thread (it reads a database)."""

    def __init__(self, app: ASGIApp, published: Published) -> None:
        self.app = app
        self.published = published
        # Exposed like the other wrapping middlewares: the route table (access rules, the
        # authorization matrix) reaches the mounted app's routes through it.
        self.routes: list[BaseRoute] = list(getattr(app, "routes", ()))
        # A tenant name no institution has (random per process, so none can be made to
        # match it): the archive scoped to it holds nothing.
        self.nowhere = f"void-{secrets.token_hex(16)}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = principal_of(scope)
        if (
            scope["type"] != "http"
            or scope["method"] == "OPTIONS"
            or principal is None
            or principal.role is not Role.LEARNER
        ):
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        study = study_in_path(path)
        if study is None and path not in SEARCHES and path != WADO_URI:
            await self.app(scope, receive, send)
            return
        try:
            found = await run_in_threadpool(self.published, principal.tenant)
        except ArchiveError as exc:
            log.error(
                "published teaching studies of %s could not be read: %s", principal.tenant, exc
            )
            await PlainTextResponse(UNAVAILABLE, 503)(scope, receive, send)
            return
        published = frozenset(uid for uid in found if is_valid_uid(uid))
        if study is not None:
            allowed = study in published
        elif path == WADO_URI:
            named = QueryParams(scope.get("query_string", b"")).getlist("studyUID")
            allowed = bool(named) and all(uid in published for uid in named)
        else:
            narrowed = restrict_search(scope.get("query_string", b""), published)
            if narrowed is not None:
                await self.app({**scope, "query_string": narrowed}, receive, send)
                return
            allowed = False
        await self.app(scope if allowed else self._nowhere(scope), receive, send)

    def _nowhere(self, scope: Scope) -> Scope:
        """The same request, in a view of the collection where no study exists (a copy of
        the scope: the outer layers keep seeing the caller's own state)."""
        return {**scope, "state": {**(scope.get("state") or {}), "tenant": self.nowhere}}


def route_path(scope: Scope) -> str:
    """The path the mounted app routes on: ``path`` less the mount's ``root_path`` (the
    computation of Starlette's router, so both always see the same resource)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


def study_in_path(path: str) -> str | None:
    """The study segment of ``/studies/{study}...`` (possibly empty), None for other paths."""
    if not path.startswith(STUDIES_PREFIX):
        return None
    return path[len(STUDIES_PREFIX) :].split("/", 1)[0]


def is_study_key(name: str) -> bool:
    """Whether a QIDO-RS parameter name is the StudyInstanceUID matching key, resolved as the
    search parser resolves it (keyword, or tag in either case)."""
    return (BY_KEYWORD.get(name) or BY_KEY.get(name.upper())) is STUDY_KEY


def restrict_search(query: bytes, published: frozenset[str]) -> bytes | None:
    """``query`` narrowed to the published studies, None when it can match none of them (or
    its StudyInstanceUID value is malformed, which the app refuses on its own).

    The query string is rewritten piece by piece: each ``&``-separated piece is parsed as
    Starlette parses it, only StudyInstanceUID pieces are replaced (under the name the client
    gave), and every other piece is kept byte for byte, percent-encoding included.
    """
    pieces = query.split(b"&") if query else []
    out: list[bytes] = []
    keyed = False
    for piece in pieces:
        parsed = QueryParams(piece).multi_items()
        if parsed and is_study_key(parsed[0][0]):
            keyed = True
            kept = _within(parsed[0][1], published)
            if not kept:
                return None
            piece = piece.split(b"=", 1)[0] + b"=" + ",".join(kept).encode("ascii")
        out.append(piece)
    if not keyed:
        if not published:
            return None
        # Sorted: the same search gives the same query, so the archive's paging cursors
        # (keyed by the conditions) serve a learner paging through results.
        out.append(b"StudyInstanceUID=" + ",".join(sorted(published)).encode("ascii"))
    return b"&".join(out)


def _within(value: str, published: frozenset[str]) -> list[str]:
    """The UIDs of a StudyInstanceUID value that are published, in the request's order; an
    empty value is universal matching (PS3.4 §C.2.2.2.3), so every published study."""
    if value == "":
        return sorted(published)
    uids = [uid.strip() for uid in UID_SEPARATORS.split(value)]
    if not all(is_valid_uid(uid) for uid in uids):
        return []
    return list(dict.fromkeys(uid for uid in uids if uid in published))
