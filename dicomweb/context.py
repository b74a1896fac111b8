"""What every DICOMweb handler needs from the app: the archive, the options, the tenant of
the request and the public service root."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from dicomweb import uri
from dicomweb.lanes import BlobLane
from storage.archive import Archive


@dataclass(frozen=True)
class DicomwebOptions:
    """Settings of the DICOMweb layer, filled by the composition root.

    ``base_url`` fixes the public root when a proxy cannot be trusted to send forwarding
    headers; ``max_results`` caps a QIDO page; ``max_request_bytes`` bounds a STOW-RS body.
    """

    base_url: str | None = None
    cors_origins: tuple[str, ...] = ("*",)
    max_results: int = 1000
    max_request_bytes: int = 4 * 1024**3
    max_part_bytes: int = 2 * 1024**3
    read_only: bool = False


@dataclass
class Service:
    archive: Archive
    options: DicomwebOptions = field(default_factory=DicomwebOptions)
    blobs: BlobLane = field(default_factory=BlobLane)
    """Where handlers run what reads or writes blobs (see :mod:`dicomweb.lanes`)."""

    def archive_for(self, request: Request) -> Archive:
        """The archive as this request may see it: scoped to its tenant (set by an auth layer
        in ``request.state.tenant``; the archive's own tenant otherwise) and, when an access
        layer set ``request.state.visible_studies``, to those studies alone. Every handler
        reads through this view, so none of them needs to know why a study is hidden."""
        archive = self.archive
        tenant = getattr(request.state, "tenant", None)
        if tenant:
            archive = archive.with_tenant(tenant)
        visible: frozenset[str] | None = getattr(request.state, "visible_studies", None)
        if visible is not None:
            archive = archive.restricted_to(visible)
        return archive

    def root(self, request: Request) -> str:
        return uri.service_root(request, self.options.base_url)
