"""What every DICOMweb handler needs from the app: the archive, the options, the tenant of
the request and the public service root."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from dicomweb import uri
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

    def archive_for(self, request: Request) -> Archive:
        """The archive scoped to the request's tenant (set by an auth layer in
        ``request.state.tenant``; the archive's own tenant otherwise)."""
        tenant = getattr(request.state, "tenant", None)
        return self.archive.with_tenant(tenant) if tenant else self.archive

    def root(self, request: Request) -> str:
        return uri.service_root(request, self.options.base_url)
