"""QIDO-RS paging (PS3.18 §8.3.4.4): pages with limit/offset give every match once, in one
order, on every backend; a client paging forward resumes from a cursor, so a study deleted
from an earlier page does not make the next page skip a match."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.factories import make_instance, stow, to_bytes

pytestmark = pytest.mark.backends

STUDIES = 23


def _store(dicomweb_client: TestClient) -> list[str]:
    datasets = [
        make_instance(patient_name=f"PAGE^{n:02d}", patient_id="PAGER") for n in range(STUDIES)
    ]
    assert stow(dicomweb_client, [to_bytes(ds) for ds in datasets]).status_code == 200
    return [ds.StudyInstanceUID for ds in datasets]


def _page(dicomweb_client: TestClient, offset: int, limit: int) -> list[str]:
    response = dicomweb_client.get(
        "/dicomweb/studies", params={"PatientID": "PAGER", "limit": limit, "offset": offset}
    )
    assert response.status_code == 200, response.text
    return [study["0020000D"]["Value"][0] for study in response.json()]


def test_pages_give_every_match_once_in_one_order(dicomweb_client: TestClient) -> None:
    _store(dicomweb_client)
    everything = _page(dicomweb_client, 0, 1000)
    assert len(everything) == STUDIES
    for limit in (1, 4, 7, 23, 50):
        paged: list[str] = []
        offset = 0
        while page := _page(dicomweb_client, offset, limit):
            paged += page
            offset += limit
        assert paged == everything, limit
    # Jumps (no cursor for that offset) give the same rows as walking there.
    assert _page(dicomweb_client, 17, 3) == everything[17:20]
    assert _page(dicomweb_client, 5, 2) == everything[5:7]


def test_a_delete_behind_the_cursor_skips_nothing(dicomweb_client: TestClient) -> None:
    _store(dicomweb_client)
    everything = _page(dicomweb_client, 0, 1000)
    first = _page(dicomweb_client, 0, 10)
    assert first == everything[:10]
    assert dicomweb_client.delete(f"/dicomweb/studies/{first[3]}").status_code in (200, 202, 204)
    # The next page continues after the last study shown; with a bare OFFSET the study
    # that moved up into position 10 would never be shown.
    assert _page(dicomweb_client, 10, 10) == everything[10:20]


def test_other_searches_keep_their_own_cursors(dicomweb_client: TestClient) -> None:
    _store(dicomweb_client)
    other = [make_instance(patient_name="OTHER^X", patient_id="OTHER") for _ in range(5)]
    assert stow(dicomweb_client, [to_bytes(ds) for ds in other]).status_code == 200
    assert len(_page(dicomweb_client, 0, 4)) == 4
    response = dicomweb_client.get("/dicomweb/studies", params={"PatientID": "OTHER", "offset": 4})
    # The PAGER search left a cursor for offset 4; this search must not resume from it.
    assert [s["0020000D"]["Value"][0] for s in response.json()] == [other[-1].StudyInstanceUID]
