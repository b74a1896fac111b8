"""``serve --workers 2``: what the supervising process alone counts (the DIMSE listener's
associations and the instances C-STORE brought in) reaches /metrics beside what the HTTP
workers count, whichever worker answers the scrape."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from tests.factories import free_port, make_instance
from tests.serving import serve


def scraped(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.e2e
def test_the_supervisors_dimse_counts_reach_a_scrape_of_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("RADCASE_"):
            monkeypatch.delenv(name)
    port = free_port()
    env = {
        **os.environ,
        "RADCASE_DATA_DIR": str(tmp_path / "data"),
        "RADCASE_DIMSE_PORT": str(port),
        "RADCASE_AE_TITLE": "RADCASE",
        "RADCASE_AUTH": "off",
    }
    with serve(env, "--workers", "2") as base:
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", port, ae_title="RADCASE")
        assert assoc.is_established
        try:
            assert assoc.send_c_store(make_instance()).Status == 0x0000
        finally:
            assoc.release()
        httpx.get(f"{base}/dicomweb/studies", timeout=10)

        found = scraped(base)
        accepted = ("radcase_dimse_associations_total", frozenset({("outcome", "accepted")}))
        stored = frozenset({("edge", "c-store"), ("outcome", "stored")})
        assert found.get(accepted) == 1
        assert found.get(("radcase_ingests_total", stored)) == 1
        searches = frozenset({("method", "GET"), ("route", "/dicomweb/studies"), ("status", "200")})
        assert found.get(("radcase_http_requests_total", searches)) == 1
