"""CORS: browser viewers (OHIF, the teaching UI) call DICOMweb from another origin. PS3.18 does
not define CORS; the Fetch Standard does, and a DICOMweb server a browser cannot read from is
useless to web viewers. The origin the suite sends is ``--origin`` (the server must allow it)."""

from __future__ import annotations

from conformance.context import Context
from conformance.registry import check, expect

SERVICE = "cors"
SECTION = "Fetch Standard §3.2 (CORS protocol); not a PS3.18 requirement"


def allows(context: Context, headers: dict[str, str]) -> None:
    got = {k.lower(): v for k, v in headers.items()}.get("access-control-allow-origin")
    expect(
        got in (context.origin, "*"),
        f"Access-Control-Allow-Origin {got!r}, expected {context.origin!r} or '*'",
    )


@check(
    service=SERVICE, name="a request with Origin gets Access-Control-Allow-Origin", section=SECTION
)
def simple_request(context: Context) -> None:
    context.stored()
    response = context.http.get(
        "/studies",
        params={"PatientID": f"{context.corpus.patient_id_prefix}-1"},
        headers={"Origin": context.origin, "Accept": "application/dicom+json"},
    )
    expect(response.status_code == 200, f"status {response.status_code}")
    allows(context, dict(response.headers))


@check(
    service=SERVICE,
    name="a preflight for STOW-RS (POST, Content-Type) is allowed",
    section=SECTION,
)
def preflight(context: Context) -> None:
    response = context.http.options(
        "/studies",
        headers={
            "Origin": context.origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    expect(response.status_code in (200, 204), f"preflight status {response.status_code}")
    allows(context, dict(response.headers))
    methods = response.headers.get("access-control-allow-methods", "").upper()
    expect("POST" in methods or "*" in methods, f"Access-Control-Allow-Methods {methods!r}")
    allowed = response.headers.get("access-control-allow-headers", "").lower()
    expect("content-type" in allowed or "*" in allowed, f"Access-Control-Allow-Headers {allowed!r}")
