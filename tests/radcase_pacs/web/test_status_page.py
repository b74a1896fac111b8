"""The administrators' status page: the figures read from the metrics exposition, storage
from the index, DIMSE associations counted, and the page kept to the home institution's
admins."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from starlette.testclient import TestClient

from radcase_pacs.auth.principal import Role
from radcase_pacs.deployment import open_deployment
from radcase_pacs.dimse.server import DimseServer
from radcase_pacs.metrics import Metrics
from radcase_pacs.settings import Settings
from radcase_pacs.web.admin.status import _quantile, read_figures, size_text
from tests.apps import served
from tests.factories import free_port, make_instance, multipart_body, to_bytes
from tests.radcase_pacs.web.test_signin import PASSWORD, csrf_of, sign_in

EXPOSITION = """\
# TYPE radcase_http_requests counter
radcase_http_requests_total{method="GET",route="/dicomweb/studies",status="200"} 8.0
radcase_http_requests_total{method="GET",route="/dicomweb/studies",status="503"} 2.0
radcase_http_requests_total{method="POST",route="/dicomweb/studies",status="200"} 1.0
# TYPE radcase_http_request_duration_seconds histogram
radcase_http_request_duration_seconds_bucket{le="0.01",method="GET",route="/dicomweb/studies"} 5.0
radcase_http_request_duration_seconds_bucket{le="0.1",method="GET",route="/dicomweb/studies"} 10.0
radcase_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/dicomweb/studies"} 10.0
radcase_http_request_duration_seconds_sum{method="GET",route="/dicomweb/studies"} 0.2
radcase_http_request_duration_seconds_count{method="GET",route="/dicomweb/studies"} 10.0
# TYPE radcase_ingests counter
radcase_ingests_total{outcome="stored"} 3.0
radcase_ingests_total{outcome="rejected"} 1.0
# TYPE radcase_cache_requests counter
radcase_cache_requests_total{result="hit"} 9.0
radcase_cache_requests_total{result="miss"} 1.0
# TYPE radcase_dimse_associations counter
radcase_dimse_associations_total{outcome="accepted"} 2.0
# TYPE radcase_dimse_open_associations gauge
radcase_dimse_open_associations 1.0
"""


def test_the_figures_are_those_of_the_exposition() -> None:
    figures = read_figures(EXPOSITION)
    first = figures.routes[0]
    assert (first.method, first.route, first.requests, first.errors) == (
        "GET",
        "/dicomweb/studies",
        10.0,
        2.0,
    )
    assert first.mean_ms == pytest.approx(20.0)
    # rank 9.5 of 10 lies in the (0.01, 0.1] bucket holding ranks 5..10: 0.01 + 0.09 * 0.9
    assert first.p95_ms == pytest.approx(91.0)
    assert figures.requests == 11.0
    assert figures.ingests == {"stored": 3.0, "rejected": 1.0}
    assert figures.hit_rate == pytest.approx(0.9)
    assert figures.associations == {"accepted": 2.0} and figures.open_associations == 1.0


def test_quantiles_and_sizes_at_their_edges() -> None:
    assert _quantile(0.95, {}) is None
    assert _quantile(0.5, {0.01: 0.0, 0.1: 0.0, math.inf: 4.0}) == pytest.approx(100.0)
    assert size_text(512) == "512 bytes"
    assert size_text(3 * 1024**2) == "3.0 MiB"


def test_dimse_associations_are_counted_open_and_closed(tmp_path: Path) -> None:
    metrics = Metrics.create()
    settings = Settings(
        data_dir=tmp_path / "d",
        dimse_port=free_port(),
        ae_title="STATUS",
        dimse_allowed_aets="PROBE",
    )

    with open_deployment(settings) as deployment:
        server = DimseServer(settings, deployment.clinical, metrics=metrics)
        server.start()
        try:
            ae = AE(ae_title="PROBE")
            ae.add_requested_context(Verification)
            assoc = ae.associate("127.0.0.1", server.port, ae_title="STATUS")
            assert assoc.is_established
            assert read_figures(metrics.exposition().decode()).open_associations == 1.0
            assoc.release()
            stranger = AE(ae_title="STRANGER")
            stranger.add_requested_context(Verification)
            assert stranger.associate("127.0.0.1", server.port, ae_title="STATUS").is_rejected
        finally:
            server.stop()
    figures = read_figures(metrics.exposition().decode())
    assert figures.associations == {"accepted": 1.0, "released": 1.0, "rejected": 1.0}
    assert figures.open_associations == 0.0


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path / "data", auth="on", admin_password=PASSWORD, password_hash_rounds=4
    )
    with served(settings, follow_redirects=False) as client:
        assert sign_in(client).status_code == 303
        yield client


def test_the_page_shows_storage_ingests_and_requests(admin: TestClient) -> None:
    token = csrf_of(admin.get("/").text)
    first = make_instance()
    second = make_instance(study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID)
    body, content_type = multipart_body([to_bytes(first), to_bytes(second)])
    stored = admin.post(
        "/dicomweb/studies",
        content=body,
        headers={"Content-Type": content_type, "X-CSRF-Token": token},
    )
    assert stored.status_code == 200, stored.text
    page = admin.get("/admin/status")
    assert page.status_code == 200
    text = page.text
    assert "Serving: the index, the blob store and the cache answer." in text
    row = text.split('<th scope="row">default</th>')[1].split("</tr>")[0]
    assert "<td>1</td><td>2</td>" in row  # one study, two instances
    assert "Stored" in text and "POST /dicomweb/studies" in text


def test_the_page_is_for_the_home_institutions_admins(admin: TestClient) -> None:
    users = admin.app.state.auth.users  # type: ignore[attr-defined]
    users.ensure_institution("hospital-b", "Hospital B")
    users.add_user("b-admin", "hospital-b", Role.ADMIN, PASSWORD)
    users.add_user("resident", "default", Role.LEARNER, PASSWORD)
    for name in ("b-admin", "resident"):
        other = TestClient(admin.app, follow_redirects=False)
        sign_in(other, name)
        assert other.get("/admin/status").status_code == 403
        assert "/admin/status" not in other.get("/admin/users").text
