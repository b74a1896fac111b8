"""CORS for browser viewers on other origins (OHIF served elsewhere)."""

from __future__ import annotations

import io

import pytest
from starlette.testclient import TestClient

from storage.archive import Archive
from tests.factories import dicomweb_app, make_instance, stow, to_bytes


def test_preflight_allows_authorization_and_is_cached_for_a_day(
    dicomweb_client: TestClient,
) -> None:
    response = dicomweb_client.options(
        "/dicomweb/studies",
        headers={
            "Origin": "https://viewer.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, accept",
        },
    )
    assert response.status_code == 200
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert response.headers["access-control-max-age"] == "86400"
    assert "GET" in response.headers["access-control-allow-methods"]


def test_responses_expose_the_headers_viewers_read(dicomweb_client: TestClient) -> None:
    ds = make_instance()
    stow(dicomweb_client, [to_bytes(ds)])
    response = dicomweb_client.get(
        f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata",
        headers={"Origin": "https://viewer.example"},
    )
    assert response.headers["access-control-allow-origin"] == "*"
    exposed = response.headers["access-control-expose-headers"].lower()
    for header in ("content-type", "etag", "warning", "content-location"):
        assert header in exposed
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"


def test_an_internal_error_is_readable_cross_origin_and_still_raised(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 500 is answered inside the CORS and request-id layers (a viewer on another origin
    reads it and its request id), and the exception goes on to the server, which logs it."""
    ds = make_instance()
    archive.ingest(io.BytesIO(to_bytes(ds)))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Archive, "metadata", broken)
    url = f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata"
    origin = {"Origin": "https://viewer.example"}
    with TestClient(dicomweb_app(archive), raise_server_exceptions=False) as client:
        response = client.get(url, headers=origin)
    assert response.status_code == 500
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["x-request-id"] in response.text
    with TestClient(dicomweb_app(archive)) as client, pytest.raises(RuntimeError, match="a bug"):
        client.get(url, headers=origin)
