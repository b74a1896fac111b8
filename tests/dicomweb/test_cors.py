"""CORS for browser viewers on other origins (OHIF served elsewhere)."""

from __future__ import annotations

from starlette.testclient import TestClient

from tests.factories import make_instance, stow, to_bytes


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
