"""Error statuses (PS3.18 §8.5, Table 8.5-1, and each transaction's status table): a client can
only recover from an error the server names correctly."""

from __future__ import annotations

from pydicom.uid import generate_uid

from conformance.context import Context
from conformance.registry import check, expect

SERVICE = "errors"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"'


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """The media type of a Content-Type value, lower case, and its parameters (unquoted)."""
    name, *rest = content_type.split(";")
    parameters = {}
    for item in rest:
        key, _, value = item.partition("=")
        parameters[key.strip().lower()] = value.strip().strip('"').lower()
    return name.strip().lower(), parameters


@check(
    service=SERVICE,
    name="unknown (well-formed) UIDs: 404 for study, instance and metadata",
    section="PS3.18 Table 10.4.3-1 (404: the Target Resource does not exist), Table 8.5-1",
)
def unknown_uid(context: Context) -> None:
    study, series, sop = generate_uid(), generate_uid(), generate_uid()
    for path in (
        f"/studies/{study}",
        f"/studies/{study}/metadata",
        f"/studies/{study}/series/{series}/instances/{sop}",
    ):
        accept = "application/dicom+json" if path.endswith("metadata") else MULTIPART_DICOM
        response = context.http.get(path, headers={"Accept": accept})
        expect(response.status_code == 404, f"GET {path}: expected 404, got {response.status_code}")


@check(
    service=SERVICE,
    name="a malformed UID in a retrieve path: 400 (or 404: no such resource)",
    section="PS3.18 Table 10.4.3-1 (400 errors in the request / 404 no such Target Resource)",
)
def bad_uid(context: Context) -> None:
    """Retrieve resources only: a Search resource under a malformed UID (``/studies/1.2.3..4/
    series``) is a search that matches nothing, which §8.3.4.4.1 answers with 204 (or 200 []),
    so no error status can be asked of it."""
    for path, accept in (
        ("/studies/not-a-uid/metadata", "application/dicom+json"),
        ("/studies/1.2.3..4", MULTIPART_DICOM),
    ):
        response = context.http.get(path, headers={"Accept": accept})
        expect(
            response.status_code in (400, 404),
            f"GET {path}: expected 400 or 404, got {response.status_code}",
        )


@check(
    service=SERVICE,
    name="an invalid QIDO parameter value (limit=abc): 400",
    section="PS3.18 §8.3 (supported Query Parameter with an invalid value: 400), §8.3.4.4 (uint)",
)
def bad_qido_parameter(context: Context) -> None:
    response = context.http.get(
        "/studies", params={"limit": "abc"}, headers={"Accept": "application/dicom+json"}
    )
    expect(response.status_code == 400, f"limit=abc: expected 400, got {response.status_code}")


@check(
    service=SERVICE,
    name="an Accept the resource cannot satisfy: 406 (or the resource's default media type)",
    section="PS3.18 Table 10.4.3-1 (406); §8.3.3.1, Table 8.7.3-1 (else the Default media type)",
)
def not_acceptable(context: Context) -> None:
    """The standard allows two answers when none of the Acceptable Media Types is supported:
    406 (Table 10.4.3-1, and §8.7.8.1 via Table 10.4.4-1 Note 3), or the Default media type of
    the resource (§8.3.3.1; Table 8.7.3-1: "The origin server shall return this media type when
    none of the Acceptable Media Types ... are supported"). Any other status is wrong."""
    context.stored()
    one = context.corpus["utf8"]
    for path, accept, default in (
        (context.url(one), "application/x-not-a-dicom-type", MULTIPART_DICOM),
        (context.url(one, "/metadata"), "image/jpeg", "application/dicom+json"),
    ):
        response = context.http.get(path, headers={"Accept": accept})
        if response.status_code == 406:
            continue
        got = media_type(response.headers.get("content-type", ""))
        want = media_type(default)
        expect(
            response.status_code == 200
            and got[0] == want[0]
            and all(got[1].get(k) == v for k, v in want[1].items()),
            f"GET {path} Accept: {accept}: expected 406 or 200 as {default}, got "
            f"{response.status_code} {response.headers.get('content-type')!r}",
        )


@check(
    service=SERVICE,
    name="STOW-RS with an unsupported Content-Type: 415",
    section="PS3.18 Table 10.5.3-1 (415 Unsupported Media Type)",
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
