"""Error statuses (PS3.18 §8.1.2.1 and each transaction's status table): a client can only
recover from an error the server names correctly."""

from __future__ import annotations

from pydicom.uid import generate_uid

from conformance.context import Context
from conformance.registry import check, expect

SERVICE = "errors"


@check(
    service=SERVICE,
    name="unknown (well-formed) UIDs: 404 for study, instance and metadata",
    section="PS3.18 §8.1.2.1 (404 Not Found), §10.4.3 (Retrieve response)",
)
def unknown_uid(context: Context) -> None:
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    for path in (
        f"/studies/{study}",
        f"/studies/{study}/metadata",
        f"/studies/{study}/series/{series}/instances/{sop}",
    ):
        accept = (
            "application/dicom+json"
            if path.endswith("metadata")
            else 'multipart/related; type="application/dicom"'
        )
        response = context.http.get(path, headers={"Accept": accept})
        expect(response.status_code == 404, f"GET {path}: expected 404, got {response.status_code}")


@check(
    service=SERVICE,
    name="a malformed UID in the path: 400 (or 404: no such resource)",
    section="PS3.18 §8.1.2.1 (400 Bad Request / 404 Not Found)",
)
def bad_uid(context: Context) -> None:
    for path in ("/studies/not-a-uid/metadata", "/studies/1.2.3..4/series"):
        response = context.http.get(path, headers={"Accept": "application/dicom+json"})
        expect(
            response.status_code in (400, 404),
            f"GET {path}: expected 400 or 404, got {response.status_code}",
        )


@check(
    service=SERVICE,
    name="an invalid QIDO parameter value (limit=abc): 400",
    section="PS3.18 §8.1.2.1 (400 Bad Request), §8.3.4.4 (limit is an unsigned integer)",
)
def bad_qido_parameter(context: Context) -> None:
    response = context.http.get(
        "/studies", params={"limit": "abc"}, headers={"Accept": "application/dicom+json"}
    )
    expect(response.status_code == 400, f"limit=abc: expected 400, got {response.status_code}")


@check(
    service=SERVICE,
    name="an Accept the resource cannot satisfy: 406",
    section="PS3.18 §8.1.2.1 (406 Not Acceptable), §8.7 (acceptable media types)",
)
def not_acceptable(context: Context) -> None:
    context.stored()
    one = context.corpus["utf8"]
    for path, accept in (
        (context.url(one), "application/x-not-a-dicom-type"),
        (context.url(one, "/metadata"), "image/jpeg"),
    ):
        response = context.http.get(path, headers={"Accept": accept})
        expect(
            response.status_code == 406,
            f"GET {path} Accept: {accept}: expected 406, got {response.status_code}",
        )


@check(
    service=SERVICE,
    name="STOW-RS with an unsupported Content-Type: 415",
    section="PS3.18 §10.5.3 (415 Unsupported Media Type)",
)
def unsupported_media_type(context: Context) -> None:
    response = context.http.post(
        "/studies",
        content=b"just text",
        headers={"Content-Type": "text/plain", "Accept": "application/dicom+json"},
    )
    expect(
        response.status_code == 415, f"text/plain body: expected 415, got {response.status_code}"
    )
