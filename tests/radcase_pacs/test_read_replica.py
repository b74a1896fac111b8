"""``index_read_url``: searches (QIDO-RS, C-FIND) and the teaching analytics read from a real
PostgreSQL streaming replica once it has replayed the tenant's latest write, and from the
primary otherwise: a client finds what it has just stored, in whichever process; a replica
that is stopped, paused or lagging serves nothing and fails nothing.

One primary and one replica for the module (tests/streaming_replica.py), a schema and a Redis
prefix per test."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelFind
from starlette.testclient import TestClient

from radcase_pacs.settings import Settings
from tests.apps import served
from tests.backends import REDIS_URL
from tests.factories import free_port, make_instance, multipart_body, to_bytes
from tests.serving import serve
from tests.streaming_replica import StreamingPair, streaming_pair
from tests.teaching.learning_world import add_case, add_question, answer_for, multiple_choice, world

APPLICATION = "radcase-replica-test"
"""The application_name the servers' replica connections carry, to find them on the replica."""


@pytest.fixture(scope="module")
def pair() -> Iterator[StreamingPair]:
    with streaming_pair() as running:
        yield running


@pytest.fixture
def schema(pair: StreamingPair) -> Iterator[str]:
    """A schema of the test's own on the primary (and so on the replica), dropped afterwards
    with the teaching collection's."""
    name = f"radcase_test_{secrets.token_hex(6)}"
    yield name
    for dropped in (name, f"{name}_teaching"):
        pair.primary_sql(f'DROP SCHEMA IF EXISTS "{dropped}" CASCADE')


@pytest.fixture
def urls(pair: StreamingPair, schema: str) -> dict[str, str]:
    return {
        "index": pair.url(pair.primary_port, schema=schema),
        "read": pair.url(pair.replica_port, application_name=APPLICATION),
    }


def settings_for(tmp_path: Path, urls: dict[str, str], redis_prefix: str, **more: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "index_url": urls["index"],
        "index_read_url": urls["read"],
        "cache_url": f"{REDIS_URL}?prefix={redis_prefix}",
        "index_read_max_lag_seconds": 5.0,
        **more,
    }
    return Settings(**values)


def reads(metrics_text: str) -> dict[str, float]:
    """radcase_index_reads_total by target, and the replica gauges, from /metrics."""
    found = {"replica": 0.0, "primary": 0.0}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "radcase_index_reads_total":
                found[sample.labels["target"]] += sample.value
            elif sample.name.startswith("radcase_index_replica_"):
                found[sample.name.removeprefix("radcase_index_replica_")] = sample.value
    return found


def store(client: TestClient | httpx.Client, *datasets: Dataset) -> None:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    response = client.post(
        "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text


def found(client: TestClient | httpx.Client, study_uid: str) -> bool:
    response = client.get("/dicomweb/studies", params={"StudyInstanceUID": study_uid})
    assert response.status_code == 200, response.text
    return [r["0020000D"]["Value"][0] for r in response.json()] == [study_uid]


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {target: after[target] - before[target] for target in ("replica", "primary")}


# -- one process ----------------------------------------------------------------------------


def test_a_search_right_after_a_store_finds_it_and_caught_up_searches_are_the_replicas(
    pair: StreamingPair, urls: dict[str, str], redis_key_prefix: str, tmp_path: Path
) -> None:
    with served(settings_for(tmp_path, urls, redis_key_prefix)) as client:
        studies = []
        for _ in range(10):
            ds = make_instance()
            store(client, ds)
            assert found(client, ds.StudyInstanceUID)
            studies.append(ds.StudyInstanceUID)

        pair.wait_caught_up()
        before = reads(client.get("/metrics").text)
        for uid in studies:
            assert found(client, uid)
        after = reads(client.get("/metrics").text)
        moved = delta(before, after)
        assert moved["primary"] == 0 and moved["replica"] >= len(studies)
        assert after["up"] == 1 and after["lag_seconds"] < 5

        # A search asked for the first time (not cached) runs on the replica's connection.
        fresh = client.get("/dicomweb/studies", params={"PatientID": "PID1", "limit": "3"})
        assert fresh.status_code == 200 and len(fresh.json()) == 3
        queries = pair.replica_sql(
            f"SELECT query FROM pg_stat_activity WHERE application_name = '{APPLICATION}'"
        )
        assert any("FROM studies" in str(q) for (q,) in queries), queries


def test_reads_go_to_the_primary_while_the_replica_is_stopped_and_back_when_it_returns(
    pair: StreamingPair, urls: dict[str, str], redis_key_prefix: str, tmp_path: Path
) -> None:
    with served(settings_for(tmp_path, urls, redis_key_prefix)) as client:
        first = make_instance()
        store(client, first)
        pair.stop_replica()
        try:
            before = reads(client.get("/metrics").text)
            second = make_instance()
            store(client, second)
            assert found(client, first.StudyInstanceUID)
            assert found(client, second.StudyInstanceUID)
            after = reads(client.get("/metrics").text)
            moved = delta(before, after)
            assert moved["replica"] == 0 and moved["primary"] >= 2
            assert after["up"] == 0
        finally:
            pair.start_replica()
        pair.wait_caught_up()
        deadline = time.monotonic() + 15  # the replica is asked again a second after a fault
        while reads(client.get("/metrics").text)["up"] != 1:
            assert found(client, second.StudyInstanceUID)
            assert time.monotonic() < deadline, "the replica was not used again"
            time.sleep(0.2)
        before = reads(client.get("/metrics").text)
        assert found(client, first.StudyInstanceUID)
        moved = delta(before, reads(client.get("/metrics").text))
        assert moved["primary"] == 0 and moved["replica"] >= 1


def test_a_paused_replay_serves_within_the_bound_then_sends_every_read_to_the_primary(
    pair: StreamingPair, urls: dict[str, str], redis_key_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, urls, redis_key_prefix, index_read_max_lag_seconds=2.0)
    with served(settings) as client:
        old = make_instance()
        store(client, old)
        pair.wait_caught_up()
        pair.pause_replay()
        try:
            pair.primary_sql("SELECT txid_current()")  # a commit the replica now lags behind
            before = reads(client.get("/metrics").text)
            assert found(client, old.StudyInstanceUID)  # the replica has it: it answers
            moved = delta(before, reads(client.get("/metrics").text))
            assert moved["primary"] == 0 and moved["replica"] >= 1

            fresh = make_instance()
            store(client, fresh)  # not replayed: the writer's next search is the primary's
            before = reads(client.get("/metrics").text)
            assert found(client, fresh.StudyInstanceUID)
            moved = delta(before, reads(client.get("/metrics").text))
            assert moved["replica"] == 0 and moved["primary"] >= 1

            time.sleep(2.5)  # past the bound: nobody's reads go to the replica
            before = reads(client.get("/metrics").text)
            assert found(client, old.StudyInstanceUID)
            after = reads(client.get("/metrics").text)
            moved = delta(before, after)
            assert moved["replica"] == 0 and moved["primary"] >= 1
            assert after["lag_seconds"] > 2.0
        finally:
            pair.resume_replay()
        pair.wait_caught_up()
        before = reads(client.get("/metrics").text)
        assert found(client, fresh.StudyInstanceUID)
        moved = delta(before, reads(client.get("/metrics").text))
        assert moved["primary"] == 0 and moved["replica"] >= 1


def test_a_server_not_in_recovery_is_no_replica_and_the_primary_answers(
    pair: StreamingPair, urls: dict[str, str], redis_key_prefix: str, tmp_path: Path
) -> None:
    not_a_replica = {**urls, "read": pair.url(pair.primary_port)}
    with served(settings_for(tmp_path, not_a_replica, redis_key_prefix)) as client:
        ds = make_instance()
        store(client, ds)
        before = reads(client.get("/metrics").text)
        assert found(client, ds.StudyInstanceUID)
        after = reads(client.get("/metrics").text)
        moved = delta(before, after)
        assert moved["replica"] == 0 and moved["primary"] >= 1
        assert after["up"] == 0


def test_without_redis_a_process_finds_what_it_stored_itself(
    pair: StreamingPair,
    urls: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="radcase_pacs.read_replica")
    with served(settings_for(tmp_path, urls, "unused", cache_url="memory://")) as client:
        assert "without a Redis cache" in caplog.text
        pair.wait_caught_up()
        pair.pause_replay()
        try:
            ds = make_instance()
            store(client, ds)
            assert found(client, ds.StudyInstanceUID)
        finally:
            pair.resume_replay()


# -- the teaching analytics ----------------------------------------------------------------


def test_progress_right_after_an_answer_counts_it_and_caught_up_progress_is_the_replicas(
    pair: StreamingPair, urls: dict[str, str], redis_key_prefix: str, tmp_path: Path
) -> None:
    with world(settings_for(tmp_path, urls, redis_key_prefix)) as w:
        case = add_case(w, title="Apical pneumothorax")
        question = add_question(w, case, multiple_choice())
        group = w.ok("edu", "POST", "/api/groups", 201, json={"name": "R1", "members": ["ann"]})
        session = w.ok("ann", "POST", "/api/quiz/sessions", 201, json={"source": "due"})
        url = f"/api/quiz/sessions/{session['id']}/items/1"
        w.ok("ann", "GET", url)
        pair.wait_caught_up()
        pair.pause_replay()
        try:
            w.ok("ann", "POST", f"{url}/answer", json=answer_for(question, right=True))
            progress = w.ok("ann", "GET", "/api/progress")  # the replica has not the answer
            assert progress["overall"]["reviews"] == 1 and progress["overall"]["correct"] == 1
            cohort = w.ok("edu", "GET", f"/api/groups/{group['id']}/progress")
            assert cohort["overall"]["reviews"] == 1
        finally:
            pair.resume_replay()

        pair.wait_caught_up()
        metrics = w.client.app.state.deployment.metrics  # type: ignore[attr-defined]
        before = reads(metrics.exposition().decode())
        assert w.ok("ann", "GET", "/api/progress")["overall"]["reviews"] == 1
        assert w.ok("edu", "GET", f"/api/groups/{group['id']}/progress")["overall"]["reviews"]
        moved = delta(before, reads(metrics.exposition().decode()))
        assert moved["primary"] == 0 and moved["replica"] > 0


# -- two processes sharing Redis -------------------------------------------------------------


@pytest.fixture
def server_env(
    urls: dict[str, str], redis_key_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("RADCASE_"):
            monkeypatch.delenv(name)
    return {
        **os.environ,
        "RADCASE_INDEX_URL": urls["index"],
        "RADCASE_INDEX_READ_URL": urls["read"],
        "RADCASE_CACHE_URL": f"{REDIS_URL}?prefix={redis_key_prefix}",
        "RADCASE_BLOB_URL": f"file://{tmp_path / 'blobs'}",
        "RADCASE_DATA_DIR": str(tmp_path / "data"),
        "RADCASE_AUTH": "off",
    }


def c_store(port: int, ds: Dataset) -> None:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADCASE")
    assert assoc.is_established
    assert int(assoc.send_c_store(ds).Status) == 0
    assoc.release()


def c_find_studies(port: int, study_uid: str) -> list[str]:
    ae = AE(ae_title="WORKSTATION")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADCASE")
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    matches, final = [], None
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        if status.Status in (0xFF00, 0xFF01):
            matches.append(str(identifier.StudyInstanceUID))
        else:
            final = status.Status
    assoc.release()
    assert final == 0x0000
    return matches


@pytest.mark.e2e
def test_what_one_process_stored_the_other_finds_at_once_through_the_replica(
    pair: StreamingPair, server_env: dict[str, str]
) -> None:
    dimse_a, dimse_b = free_port(), free_port()
    with (
        serve({**server_env, "RADCASE_DIMSE_PORT": str(dimse_a)}) as a_url,
        serve({**server_env, "RADCASE_DIMSE_PORT": str(dimse_b)}) as b_url,
        httpx.Client(base_url=a_url, timeout=30) as a,
        httpx.Client(base_url=b_url, timeout=30) as b,
    ):
        stored = []
        for n in range(10):
            ds = make_instance()
            if n % 2:
                store(a, ds)  # STOW-RS to one process,
                assert found(b, ds.StudyInstanceUID)  # QIDO-RS to the other at once
            else:
                c_store(dimse_a, ds)  # C-STORE to one,
                assert c_find_studies(dimse_b, ds.StudyInstanceUID) == [ds.StudyInstanceUID]
            stored.append(ds.StudyInstanceUID)

        pair.pause_replay()
        try:
            unreplayed = make_instance()
            store(a, unreplayed)
            assert found(b, unreplayed.StudyInstanceUID)
            assert c_find_studies(dimse_b, unreplayed.StudyInstanceUID) == [
                unreplayed.StudyInstanceUID
            ]
        finally:
            pair.resume_replay()

        pair.wait_caught_up()
        before = reads(b.get("/metrics").text)
        for uid in stored:
            assert found(b, uid)
            assert c_find_studies(dimse_b, uid) == [uid]
        moved = delta(before, reads(b.get("/metrics").text))
        assert moved["primary"] == 0 and moved["replica"] >= 2 * len(stored)


# -- settings ---------------------------------------------------------------------------------


def test_a_replica_needs_the_index_on_postgresql_and_reads_in_its_schema(tmp_path: Path) -> None:
    replica = "postgresql://reader@replica.internal/radcase"
    with pytest.raises(ValidationError, match="index_url on PostgreSQL"):
        Settings(data_dir=tmp_path, index_read_url=replica)
    with pytest.raises(ValidationError, match="PostgreSQL server"):
        Settings(index_url="postgresql://db/radcase", index_read_url="sqlite:///x.sqlite3")
    with pytest.raises(ValidationError, match="leave out schema"):
        Settings(index_url="postgresql://db/radcase?schema=a", index_read_url=f"{replica}?schema=b")
    settings = Settings(index_url="postgresql://db/radcase?schema=a", index_read_url=replica)
    read_url = settings.resolved_index_read_url
    assert read_url is not None and read_url.startswith(f"{replica}?schema=a&")
    # Bounded like the primary, but with short waits for a connection: its reads can go
    # elsewhere (libpq's shortest connect timeout is 2 s).
    params = dict(parse_qsl(urlsplit(read_url).query))
    assert (params["connect_timeout"], params["pool_timeout"]) == ("2", "1")
    assert params["statement_timeout"] == f"{settings.postgres_statement_timeout:g}"
    teaching_url = settings.resolved_teaching_index_read_url
    assert teaching_url is not None
    assert dict(parse_qsl(urlsplit(teaching_url).query))["schema"] == "a_teaching"
    elsewhere = settings.model_copy(update={"teaching_index_url": "postgresql://other/teaching"})
    assert elsewhere.resolved_teaching_index_read_url is None


def test_the_replica_connections_name_the_application(pair: StreamingPair) -> None:
    """The marker the tests above look for on the replica reaches it (libpq's own parameter
    passes through the URL)."""
    with psycopg.connect(pair.url(pair.replica_port, application_name=APPLICATION)) as conn:
        assert conn.execute("SHOW application_name").fetchone() == (APPLICATION,)
