"""What every check gets: where the server is, the clients that talk to it, the corpus.

dicomweb-client does the ordinary STOW/QIDO/WADO calls (as a viewer or script would);
``http`` (httpx) does what that client cannot express: raw multipart bodies, Accept
negotiation, error statuses, CORS headers. The corpus is uploaded once, by the first check
that needs it (the STOW check, which runs first), and its STOW response kept for the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import requests
from dicomweb_client.api import DICOMwebClient

from conformance.corpus import Corpus, Instance
from conformance.registry import Failure


@dataclass(frozen=True)
class DimseTarget:
    host: str
    port: int
    ae_title: str

    @classmethod
    def parse(cls, text: str) -> DimseTarget:
        host, port, ae_title = text.rsplit(":", 2)
        return cls(host, int(port), ae_title)


@dataclass
class Upload:
    """The answer to the STOW-RS of the whole corpus."""

    status: int
    body: dict[str, Any]


@dataclass
class Context:
    base: str
    client: DICOMwebClient
    http: httpx.Client
    corpus: Corpus
    wado_uri: str
    origin: str
    dimse: DimseTarget | None = None
    statuses: list[int] = field(default_factory=list)
    upload: Upload | None = None

    @classmethod
    def create(
        cls,
        base: str,
        corpus: Corpus,
        *,
        wado_uri: str | None = None,
        origin: str = "https://viewer.example",
        dimse: DimseTarget | None = None,
        timeout: float = 60,
    ) -> Context:
        base = base.rstrip("/")
        session = requests.Session()
        context = cls(
            base=base,
            client=DICOMwebClient(url=base, session=session, timeout=timeout),
            http=httpx.Client(base_url=base, timeout=timeout),
            corpus=corpus,
            wado_uri=wado_uri or f"{base}/wado",
            origin=origin,
            dimse=dimse,
        )
        # dicomweb-client sends "Host: <host>" without the port (RFC 9110 §7.2 wants it), so a
        # server that builds absolute URLs (RetrieveURL, BulkDataURI) from Host would be given
        # a wrong one; its Host header is taken from this attribute alone.
        context.client.host = urlsplit(base).netloc
        # The status of each response dicomweb-client saw: it hides 200 versus 202 and 204.
        session.hooks["response"].append(
            lambda response, *args, **kwargs: context.statuses.append(response.status_code)
        )
        return context

    def close(self) -> None:
        self.http.close()

    def url(self, instance: Instance, suffix: str = "") -> str:
        """The WADO-RS path of ``instance`` (relative to the base), plus ``suffix``."""
        return (
            f"/studies/{instance.study_uid}/series/{instance.series_uid}"
            f"/instances/{instance.sop_uid}{suffix}"
        )

    def stored(self) -> Upload:
        """The corpus upload; a check that needs the corpus fails if it could not be stored."""
        if self.upload is None:
            self.upload = self.store_corpus()
        if self.upload.status not in (200, 202):
            raise Failure(f"the corpus could not be stored (STOW-RS {self.upload.status})")
        return self.upload

    def store_corpus(self) -> Upload:
        body, content_type = multipart([i.data for i in self.corpus.instances])
        response = self.http.post(
            "/studies",
            content=body,
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        )
        return Upload(response.status_code, json_body(response))


def multipart(parts: list[bytes], media_type: str = "application/dicom") -> tuple[bytes, str]:
    """A multipart/related body of ``parts`` (RFC 2387) and its Content-Type."""
    boundary = "conformance-boundary-7f3a9c"
    chunks = []
    for part in parts:
        chunks.append(f"--{boundary}\r\nContent-Type: {media_type}\r\n\r\n".encode())
        chunks.append(part + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    content_type = f'multipart/related; type="{media_type}"; boundary={boundary}'
    return b"".join(chunks), content_type


def json_body(response: httpx.Response) -> Any:
    """The JSON of a response, or ``{}`` when it has none (a status-only answer)."""
    if not response.content:
        return {}
    try:
        return json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Failure(f"{response.request.url}: body is not UTF-8 JSON ({exc})") from exc
