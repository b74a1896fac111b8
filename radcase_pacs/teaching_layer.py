"""Wiring of the teaching layer: its own archive and case store, built from settings beside
the clinical ones, and the KOS intake hooked onto the clinical archive."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from starlette.requests import Request

from radcase_pacs.auth.principal import principal_of
from radcase_pacs.auth.users import UserStore
from radcase_pacs.settings import Settings
from storage.archive import Archive
from storage.urls import open_blobs, open_cache, open_database, open_index
from teaching.api import Caller
from teaching.cases.service import CaseService
from teaching.cases.store import CaseStore
from teaching.learning.service import LearningService, utc_now


def build_teaching_archive(settings: Settings) -> Archive:
    """The teaching collection: an archive of its own that only ever holds de-identified
    copies; by default the clinical stores' kind, in a namespace of its own."""
    return Archive(
        index=open_index(settings.resolved_teaching_index_url),
        blobs=open_blobs(
            settings.resolved_teaching_blob_url, s3_endpoint_url=settings.s3_endpoint_url
        ),
        cache=open_cache(settings.resolved_teaching_cache_url),
        tenant=settings.tenant,
    )


def build_case_service(settings: Settings, clinical: Archive) -> CaseService:
    return CaseService(
        store=CaseStore(open_database(settings.resolved_teaching_index_url)),
        clinical=clinical,
        teaching=build_teaching_archive(settings),
        configured_secret=settings.deid_secret,
    )


def build_learning_service(
    settings: Settings,
    cases: CaseService,
    users: UserStore,
    clock: Callable[[], datetime] | None = None,
) -> LearningService:
    """Quizzes and spaced repetition, in the teaching database beside the cases. Group
    members are checked against the institution's accounts when there are accounts to check
    (not when the server runs without authentication)."""

    def unknown_users(tenant: str, names: Sequence[str]) -> list[str]:
        return [name for name in names if users.user(name, tenant) is None]

    return LearningService.over(
        open_database(settings.resolved_teaching_index_url),
        cases,
        clock=clock or utc_now,
        unknown_users=unknown_users if settings.auth == "on" else None,
    )


def with_intake(archive: Archive, cases: CaseService) -> Archive:
    """The clinical archive with teaching-file KOS intake: a KOS "For Teaching File Export"
    stored by STOW-RS or C-STORE becomes a draft case."""
    return replace(archive, after_ingest=(*archive.after_ingest, cases.intake))


def identify(settings: Settings) -> Callable[[Request], Caller]:
    """Who calls the teaching API: the user and institution an authentication layer put on
    the request, else the server's own institution."""

    def caller(request: Request) -> Caller:
        state = request.state
        principal = principal_of(request.scope)
        return Caller(
            user=getattr(state, "user", None) or "anonymous",
            tenant=getattr(state, "tenant", None) or settings.tenant,
            role=principal.role.value if principal else None,
        )

    return caller
