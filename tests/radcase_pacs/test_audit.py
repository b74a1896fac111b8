"""The audit log: the store on SQLite and PostgreSQL (append-only enforced by the database),
the clinical DICOMweb middleware (one entry per request, written before the app runs, 503
when it cannot be), the DIMSE server's entries and refusals, and the admin router."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi import FastAPI, Request
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, StoragePresentationContexts, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

import radcase_pacs.audit.store as audit_store
from radcase_pacs.audit.api import audit_router
from radcase_pacs.audit.changes import ChangeAuditMiddleware
from radcase_pacs.audit.middleware import AuditMiddleware
from radcase_pacs.audit.store import AuditEntry, AuditLog
from radcase_pacs.auth.principal import Principal, Role, attach
from radcase_pacs.dimse.server import DimseServer, no_delay
from radcase_pacs.settings import Settings
from storage.archive import Archive
from storage.database.base import Database
from storage.errors import BackendFailure, NotFound
from storage.stores import Stores
from storage.urls import open_database
from tests.apps import served
from tests.factories import free_port, make_instance, multipart_body, stow, to_bytes

CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"


def entry(**values: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "tenant": "default",
        "actor": "alice",
        "action": "clinical.read",
        "channel": "http",
        "route": "GET /dicomweb/studies/{study}",
        "study_uid": "1.2.3",
        "detail": "",
        "source": "10.0.0.1",
        "role": "educator",
    }
    fields.update(values)
    return AuditEntry(**fields)


def sqlite_log(tmp_path: Path) -> AuditLog:
    log = AuditLog(open_database(f"sqlite:///{tmp_path / 'audit.sqlite3'}"))
    log.open()
    return log


@pytest.fixture(params=["sqlite", "postgres"])
def audit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditLog]:
    """An opened audit log on each dialect."""
    if request.param == "sqlite":
        log = sqlite_log(tmp_path)
    else:
        log = AuditLog(open_database(request.getfixturevalue("postgres_url")))
        log.open()
    yield log
    log.close()


# -- the store ----------------------------------------------------------------------------


def test_record_then_search_newest_first_with_every_filter(audit: AuditLog) -> None:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    audit.record(entry(at=start, actor="alice", study_uid="1.1"))
    audit.record(entry(at=start + timedelta(minutes=1), actor="bob", action="clinical.search"))
    audit.record(entry(at=start + timedelta(minutes=2), actor="alice", study_uid="1.2"))
    audit.record(entry(at=start + timedelta(minutes=3), tenant="other", actor="carol"))
    audit.record(
        entry(at=start + timedelta(minutes=4), channel="dimse", action="dimse.find", role=None)
    )

    total, page = audit.search("default", limit=10)
    assert total == 4
    assert [e.actor for e in page] == ["alice", "alice", "bob", "alice"]
    assert page[0].channel == "dimse" and page[0].role is None
    assert all(e.id is not None for e in page)

    assert audit.search("default", actor="alice", limit=10)[0] == 3
    assert [e.actor for e in audit.search("default", action="clinical.search", limit=10)[1]] == [
        "bob"
    ]
    assert [e.study_uid for e in audit.search("default", study_uid="1.2", limit=10)[1]] == ["1.2"]
    assert audit.search("default", channel="dimse", limit=10)[0] == 1
    # since inclusive, until exclusive
    window = audit.search(
        "default", since=start + timedelta(minutes=1), until=start + timedelta(minutes=2), limit=9
    )
    assert [e.actor for e in window[1]] == ["bob"]
    # paging: the total counts every page
    total, second = audit.search("default", limit=2, offset=2)
    assert total == 4 and [e.actor for e in second] == ["bob", "alice"]
    # None: every tenant
    assert audit.search(None, limit=10)[0] == 5
    assert [e.actor for e in audit.search("other", limit=10)[1]] == ["carol"]


def test_times_are_utc_with_microseconds_and_naive_means_utc(audit: AuditLog) -> None:
    plus_two = timezone(timedelta(hours=2))
    audit.record(entry(at=datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=plus_two)))
    audit.record(entry(at=datetime(2024, 5, 1, 13, 0, 0, 5)))  # naive: UTC
    _, (later, earlier) = audit.search(None, limit=5)
    assert later.at == datetime(2024, 5, 1, 13, 0, 0, 5, tzinfo=UTC)
    assert earlier.at == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
    with audit.db.read() as cur:
        stamps = [r[0] for r in cur.execute("SELECT at FROM audit_log ORDER BY id").fetchall()]
    assert stamps == ["2024-05-01T12:00:00.123456+00:00", "2024-05-01T13:00:00.000005+00:00"]
    # A naive bound is UTC too.
    assert audit.search(None, since=datetime(2024, 5, 1, 12, 30), limit=5)[0] == 1


def test_csv_export_streams_every_entry_oldest_first_with_a_header(
    audit: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_store, "EXPORT_BATCH", 3)  # several batches
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(8):
        audit.record(entry(at=start + timedelta(seconds=n), actor=f"user{n}"))
    audit.record(entry(at=start, actor="x", detail='a,b "quoted"\nnext line', role=None))
    audit.record(entry(tenant="other", actor="nobody"))

    lines = list(audit.export_csv("default"))
    assert lines[0] == ("id,at,tenant,actor,role,action,channel,route,study_uid,detail,source\r\n")
    rows = list(csv.DictReader(io.StringIO("".join(lines))))
    assert len(rows) == 9
    assert [r["actor"] for r in rows] == [*(f"user{n}" for n in range(8)), "x"]
    assert rows[-1]["detail"] == 'a,b "quoted"\nnext line'
    assert rows[-1]["role"] == "" and rows[0]["role"] == "educator"
    assert rows[0]["at"] == "2024-01-01T00:00:00.000000+00:00"
    assert [r["actor"] for r in csv.DictReader(audit.export_csv("default", actor="user3"))] == [
        "user3"
    ]
    assert len(list(audit.export_csv(None))) == 11


def test_update_and_delete_are_refused_by_the_database(audit: AuditLog) -> None:
    audit.record(entry(actor="alice"))
    statements = ["UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"]
    if audit.db.dialect == "postgresql":
        statements += [
            "DELETE FROM audit_log WHERE id = -1",  # statement-level: even matching no row
            "TRUNCATE audit_log",
        ]
    else:  # REPLACE deletes the row it collides with without firing a DELETE trigger
        statements.append(
            "INSERT OR REPLACE INTO audit_log (id, at, tenant, actor, action, channel, route, "
            "detail, source) SELECT id, at, tenant, 'mallory', action, channel, route, detail, "
            "source FROM audit_log"
        )
    for statement in statements:
        with pytest.raises(BackendFailure, match="append-only"), audit.db.transaction() as cur:
            cur.execute(statement)
    total, (kept,) = audit.search(None, limit=5)
    assert total == 1 and kept.actor == "alice"


def test_long_values_are_cut_and_marked(audit: AuditLog) -> None:
    audit.record(entry(detail="x" * 10_000, route="GET " + "/a" * 1000, study_uid="9" * 500))
    _, (stored,) = audit.search(None, limit=1)
    assert len(stored.detail) == 2048 and stored.detail.endswith("[truncated]")
    assert len(stored.route) == 512 and len(stored.study_uid or "") == 128


def test_reopening_migrates_nothing_twice(audit: AuditLog) -> None:
    audit.record(entry())
    audit.close()
    audit.open()
    assert audit.search(None, limit=1)[0] == 1
    with audit.db.read() as cur:
        assert cur.execute("SELECT MAX(version) FROM audit_schema_version").fetchone()[0] == 1


def test_a_record_the_database_refuses_raises_backend_failure(tmp_path: Path) -> None:
    unmigrated = AuditLog(open_database(f"sqlite:///{tmp_path / 'empty.sqlite3'}"))
    with pytest.raises(BackendFailure, match="no such table"):
        unmigrated.record(entry())


def test_a_bug_under_record_propagates_as_itself_not_as_an_outage() -> None:
    """Only the database layer's own failure is BackendFailure (a 503 refusal); anything
    else is a fault in our code and must reach the caller with its traceback."""

    class Broken(Database):
        dialect = "sqlite"
        types: ClassVar[dict[str, str]] = {}

        def open(self) -> None: ...
        def close(self) -> None: ...
        def transaction(self) -> Any:
            raise RuntimeError("a bug")

        def read(self) -> Any:
            raise RuntimeError("a bug")

        def drain_writers(self) -> None: ...

    with pytest.raises(RuntimeError, match="a bug"):
        AuditLog(Broken()).record(entry())


def test_a_closed_postgres_log_raises_backend_failure(postgres_url: str) -> None:
    log = AuditLog(open_database(postgres_url))
    log.open()
    log.close()
    with pytest.raises(BackendFailure):
        log.record(entry())


# -- the DICOMweb middleware --------------------------------------------------------------


def principal_app(app: Callable[..., Any], principal: Principal) -> Callable[..., Any]:
    """What the authentication middleware does: the principal in the scope's state."""

    async def authenticated(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            attach(scope, principal)
        await app(scope, receive, send)

    return authenticated


def test_the_entry_is_written_before_the_app_runs_and_names_the_principal(
    tmp_path: Path,
) -> None:
    log = sqlite_log(tmp_path)
    entries_when_called: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        entries_when_called.append(log.search(None, limit=1)[0])
        await PlainTextResponse("ok")(scope, receive, send)

    wrapped = AuditMiddleware(app, log, "default")
    alice = Principal(user="alice", tenant="north", role=Role.EDUCATOR, session="s1")
    client = TestClient(principal_app(wrapped, alice))
    assert client.get("/studies/1.2.3/metadata?includefield=all").status_code == 200
    assert entries_when_called == [1]
    _, (recorded,) = log.search(None, limit=1)
    assert (recorded.actor, recorded.tenant, recorded.role) == ("alice", "north", "educator")
    assert (recorded.action, recorded.study_uid) == ("clinical.read", "1.2.3")
    assert recorded.route == "GET /studies/1.2.3/metadata"  # no routes known: the path
    assert recorded.detail == "includefield=all"
    assert recorded.source == "testclient"
    log.close()


def test_an_unwritable_entry_is_503_and_the_app_never_runs(tmp_path: Path) -> None:
    class FailingLog(AuditLog):
        def record(self, entry: AuditEntry) -> None:
            raise BackendFailure("audit database down")

    called: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope["path"])
        await PlainTextResponse("PHI")(scope, receive, send)

    log = FailingLog(open_database(f"sqlite:///{tmp_path / 'a.sqlite3'}"))
    client = TestClient(AuditMiddleware(app, log, "default"))
    for method in ("GET", "HEAD", "POST", "DELETE"):
        response = client.request(method, "/studies/1.2.3")
        assert response.status_code == 503
        assert "PHI" not in response.text
    assert "audit log" in client.get("/studies").text
    assert client.options("/studies").status_code == 200  # a preflight reads nothing
    assert called == ["/studies"]


class BuggyLog(AuditLog):
    def record(self, entry: AuditEntry) -> None:
        raise KeyError("a bug in the audit code")


class DownLog(AuditLog):
    def record(self, entry: AuditEntry) -> None:
        raise BackendFailure("audit database down")


def _refusing_apps(log: AuditLog, called: list[str]) -> list[TestClient]:
    """The clinical and the change-auditing middleware over an app that records its calls;
    server exceptions are answered as the server would, 500."""

    async def create_case(request: StarletteRequest) -> PlainTextResponse:
        called.append(request.url.path)
        return PlainTextResponse("PHI")

    app = Starlette(routes=[Route("/cases", create_case, methods=["POST"])])
    return [
        TestClient(AuditMiddleware(app, log, "default"), raise_server_exceptions=False),
        TestClient(ChangeAuditMiddleware(app, log, "default"), raise_server_exceptions=False),
    ]


def test_a_bug_in_the_audit_code_is_a_500_not_a_silent_503(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    called: list[str] = []
    log = BuggyLog(open_database(f"sqlite:///{tmp_path / 'a.sqlite3'}"))
    for client in _refusing_apps(log, called):
        response = client.post("/cases")
        assert response.status_code == 500
        assert "PHI" not in response.text
    assert called == []  # fail-closed all the same
    assert not [r for r in caplog.records if "refused" in r.getMessage()]


def test_a_refusal_for_a_failing_audit_database_is_logged_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    called: list[str] = []
    log = DownLog(open_database(f"sqlite:///{tmp_path / 'a.sqlite3'}"))
    for client in _refusing_apps(log, called):
        assert client.post("/cases").status_code == 503
    assert called == []
    refusals = [r for r in caplog.records if "audit entry not written" in r.getMessage()]
    assert len(refusals) == 2
    for record in refusals:
        assert record.exc_info is not None
        assert isinstance(record.exc_info[1], BackendFailure)
        assert "audit database down" in caplog.text


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def stored_study(archive: Archive) -> Dataset:
    ds = make_instance(frames=2)
    archive.ingest(io.BytesIO(to_bytes(ds)))
    return ds


def test_every_clinical_route_kind_gets_one_entry(
    app_settings: Settings, archive: Archive, stores: Stores
) -> None:
    ds = stored_study(archive)
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    s, se, i = "/dicomweb/studies/{study}", "/series/{series}", "/instances/{instance}"
    instance = f"/dicomweb/studies/{study}/series/{series}/instances/{sop}"
    other = generate_uid()
    wado = f"requestType=WADO&studyUID={study}&seriesUID={series}&objectUID={sop}"
    cases: list[tuple[str, str, str, str, str | None]] = [
        ("GET", "/dicomweb/studies?PatientID=PID1", "clinical.search", "/dicomweb/studies", None),
        (
            "GET",
            f"/dicomweb/studies?StudyInstanceUID={study}",
            "clinical.search",
            "/dicomweb/studies",
            study,
        ),
        (
            "GET",
            f"/dicomweb/studies?0020000D={study}",
            "clinical.search",
            "/dicomweb/studies",
            study,
        ),
        (
            "GET",
            f"/dicomweb/studies?StudyInstanceUID={study},{other}",
            "clinical.search",
            "/dicomweb/studies",
            None,
        ),
        ("GET", "/dicomweb/series", "clinical.search", "/dicomweb/series", None),
        ("GET", "/dicomweb/instances", "clinical.search", "/dicomweb/instances", None),
        ("GET", f"/dicomweb/studies/{study}/series", "clinical.search", s + "/series", study),
        ("GET", f"/dicomweb/studies/{study}/instances", "clinical.search", s + "/instances", study),
        (
            "GET",
            f"/dicomweb/studies/{study}/series/{series}/instances",
            "clinical.search",
            s + se + "/instances",
            study,
        ),
        ("GET", f"/dicomweb/studies/{study}", "clinical.read", s, study),
        ("GET", f"/dicomweb/studies/{study}/metadata", "clinical.read", s + "/metadata", study),
        ("HEAD", f"/dicomweb/studies/{study}/metadata", "clinical.read", s + "/metadata", study),
        ("GET", f"/dicomweb/studies/{study}/series/{series}", "clinical.read", s + se, study),
        ("GET", instance, "clinical.read", s + se + i, study),
        ("GET", f"{instance}/metadata", "clinical.read", s + se + i + "/metadata", study),
        ("GET", f"{instance}/frames/1,2", "clinical.read", s + se + i + "/frames/{frames}", study),
        (
            "GET",
            f"{instance}/bulk/7FE00010",
            "clinical.read",
            s + se + i + "/bulk/{path:path}",
            study,
        ),
        ("GET", f"{instance}/rendered", "clinical.read", s + se + i + "/rendered", study),
        ("GET", f"/dicomweb/studies/{study}/thumbnail", "clinical.read", s + "/thumbnail", study),
        ("GET", f"/dicomweb/wado?{wado}", "clinical.read", "/dicomweb/wado", study),
        ("GET", "/dicomweb/nothing/here", "clinical.read", "/dicomweb/nothing/here", None),
        ("PUT", f"/dicomweb/studies/{study}", "clinical.other", s, study),
        ("DELETE", f"/dicomweb/studies/{other}", "clinical.delete", s, other),
    ]
    with served(app_settings, stores=stores) as client:
        app: Any = client.app
        log: AuditLog = app.state.audit
        for count, (method, url, action, route, study_uid) in enumerate(cases, start=1):
            client.request(method, url)
            total, (newest, *_) = log.search(None, limit=1)
            assert total == count, url
            assert (newest.action, newest.route, newest.study_uid) == (
                action,
                f"{method} {route}",
                study_uid,
            ), url
            # Authentication is off in this suite: the open-mode principal acts as an admin.
            assert (newest.actor, newest.tenant, newest.role) == ("anonymous", "default", "admin")
            assert (newest.channel, newest.source) == ("http", "testclient")
            assert newest.detail == url.partition("?")[2]

        body, content_type = multipart_body([to_bytes(make_instance(study_uid=study))])
        stored = client.post(
            f"/dicomweb/studies/{study}", content=body, headers={"Content-Type": content_type}
        )
        assert stored.status_code == 200
        assert stow(client, [to_bytes(make_instance())]).status_code == 200  # type: ignore[attr-defined]
        total, (plain, targeted, *_) = log.search(None, action="clinical.store", limit=5)
        assert total == 2
        assert (plain.route, plain.study_uid) == ("POST /dicomweb/studies", None)
        assert (targeted.route, targeted.study_uid) == ("POST /dicomweb/studies/{study}", study)

        preflight = client.options(
            "/dicomweb/studies",
            headers={"Origin": "http://viewer", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.status_code == 200
        assert log.search(None, limit=1)[0] == len(cases) + 2


def test_the_teaching_root_the_api_and_health_are_not_clinical(
    app_settings: Settings, stores: Stores
) -> None:
    with served(app_settings, stores=stores) as client:
        app: Any = client.app
        assert client.get("/teaching/dicomweb/studies").status_code == 200
        assert client.get("/teaching/dicomweb/studies/1.2.3/metadata").status_code == 404
        assert client.get("/api/cases").status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert app.state.audit.search(None, limit=1)[0] == 0


def test_a_failing_audit_log_refuses_clinical_requests_and_stores_nothing(
    app_settings: Settings, archive: Archive, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = stored_study(archive)
    with served(app_settings, stores=stores) as client:
        app: Any = client.app

        def fail(entry: AuditEntry) -> None:
            raise BackendFailure("audit database down")

        monkeypatch.setattr(app.state.audit, "record", fail)
        new = make_instance()
        response = stow(client, [to_bytes(new)])
        assert response.status_code == 503  # type: ignore[attr-defined]
        assert "audit log is unavailable" in response.text  # type: ignore[attr-defined]
        with pytest.raises(NotFound):
            archive.instances(new.StudyInstanceUID)
        read = client.get(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata")
        assert read.status_code == 503 and "00100010" not in read.text
        assert client.get("/teaching/dicomweb/studies").status_code == 200


def test_a_closed_postgres_audit_log_refuses_clinical_requests(
    tmp_path: Path, postgres_url: str, archive: Archive, stores: Stores
) -> None:
    ds = stored_study(archive)
    settings = Settings(data_dir=tmp_path / "data", index_url=postgres_url)
    with served(settings, stores=stores) as client:
        app: Any = client.app
        url = f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata"
        assert client.get(url).status_code == 200
        assert app.state.audit.search(None, limit=1)[0] == 1  # kept in PostgreSQL
        app.state.audit.close()
        assert client.get(url).status_code == 503
        new = make_instance()
        assert stow(client, [to_bytes(new)]).status_code == 503  # type: ignore[attr-defined]
        with pytest.raises(NotFound):
            archive.instances(new.StudyInstanceUID)
        health = client.get("/healthz")
        assert health.status_code == 503 and "not open" in health.json()["reason"]


# -- DIMSE --------------------------------------------------------------------------------


class FailingLog(AuditLog):
    def record(self, entry: AuditEntry) -> None:
        raise BackendFailure("audit database down")


@pytest.fixture
def destination() -> Iterator[tuple[int, list[Dataset]]]:
    """A Storage SCP (AE ``DEST``) for C-MOVE: its port and what it received."""
    received: list[Dataset] = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset)
        return 0x0000

    ae = AE(ae_title="DEST")
    ae.supported_contexts = StoragePresentationContexts
    ae.add_supported_context(Verification)
    port = free_port()
    server = ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)]
    )
    yield port, received
    server.shutdown()


@pytest.fixture
def start_server(
    tmp_path: Path, archive: Archive, destination: tuple[int, list[Dataset]]
) -> Iterator[Callable[[AuditLog], DimseServer]]:
    started: list[DimseServer] = []

    def start(log: AuditLog) -> DimseServer:
        settings = Settings(
            data_dir=tmp_path / "data",
            dimse_port=free_port(),
            ae_title="RADCASE",
            dimse_peers=f"DEST=127.0.0.1:{destination[0]}",
        )
        server = DimseServer(settings, archive, audit=log)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def associate(server: DimseServer) -> Any:
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    for model in (
        Verification,
        StudyRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelMove,
        StudyRootQueryRetrieveInformationModelGet,
    ):
        ae.add_requested_context(model)
    assoc = ae.associate(
        "127.0.0.1",
        server.port,
        ae_title="RADCASE",
        ext_neg=[build_role(CTImageStorage, scu_role=True, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000), (evt.EVT_CONN_OPEN, no_delay)],
    )
    assert assoc.is_established
    return assoc


def query(level: str = "STUDY", **keys: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_dimse_requests_are_recorded_with_their_association(
    tmp_path: Path,
    archive: Archive,
    start_server: Callable[[AuditLog], DimseServer],
    destination: tuple[int, list[Dataset]],
) -> None:
    log = sqlite_log(tmp_path)
    server = start_server(log)
    ds = make_instance()
    study = ds.StudyInstanceUID
    assoc = associate(server)

    assert assoc.send_c_store(ds).Status == 0x0000
    found = list(
        assoc.send_c_find(
            query(PatientName="DOE*", StudyInstanceUID=study),
            StudyRootQueryRetrieveInformationModelFind,
        )
    )
    assert [s.Status for s, _ in found] == [0xFF00, 0x0000]
    moved = list(
        assoc.send_c_move(
            query(StudyInstanceUID=study), "DEST", StudyRootQueryRetrieveInformationModelMove
        )
    )
    assert moved[-1][0].Status == 0x0000
    assert [str(d.SOPInstanceUID) for d in destination[1]] == [ds.SOPInstanceUID]
    got = list(
        assoc.send_c_get(query(StudyInstanceUID=study), StudyRootQueryRetrieveInformationModelGet)
    )
    assert got[-1][0].Status == 0x0000
    assert assoc.send_c_echo().Status == 0x0000  # not clinical: not recorded
    assoc.release()

    total, newest_first = log.search(None, limit=10)
    assert total == 4
    store, find, move, get = reversed(newest_first)
    for recorded in (store, find, move, get):
        assert recorded.route == "MODALITY1 -> RADCASE"
        assert (recorded.actor, recorded.role, recorded.tenant) == ("MODALITY1", None, "default")
        assert (recorded.channel, recorded.source, recorded.study_uid) == (
            "dimse",
            "127.0.0.1",
            study,
        )
    assert [e.action for e in (store, find, move, get)] == [
        "dimse.store",
        "dimse.find",
        "dimse.move",
        "dimse.get",
    ]
    assert store.detail == f"SOPClassUID={CT_SOP_CLASS}; SOPInstanceUID={ds.SOPInstanceUID}"
    assert find.detail == (f"QueryRetrieveLevel=STUDY; PatientName=DOE*; StudyInstanceUID={study}")
    assert (
        move.detail == f"MoveDestination=DEST; QueryRetrieveLevel=STUDY; StudyInstanceUID={study}"
    )
    assert get.detail == f"QueryRetrieveLevel=STUDY; StudyInstanceUID={study}"
    log.close()


def test_a_failing_audit_log_refuses_dimse_requests_with_a700(
    tmp_path: Path,
    archive: Archive,
    start_server: Callable[[AuditLog], DimseServer],
    destination: tuple[int, list[Dataset]],
) -> None:
    existing = stored_study(archive)
    server = start_server(FailingLog(open_database(f"sqlite:///{tmp_path / 'x.sqlite3'}")))
    assoc = associate(server)

    new = make_instance()
    stored = assoc.send_c_store(new)
    assert stored.Status == 0xA700 and "audit" in str(stored.ErrorComment)
    with pytest.raises(NotFound):
        archive.instances(new.StudyInstanceUID)

    study = query(StudyInstanceUID=existing.StudyInstanceUID)
    found = list(assoc.send_c_find(study, StudyRootQueryRetrieveInformationModelFind))
    assert [(s.Status, i) for s, i in found] == [(0xA700, None)]
    moved = list(assoc.send_c_move(study, "DEST", StudyRootQueryRetrieveInformationModelMove))
    assert moved[-1][0].Status == 0xA700
    assert destination[1] == []
    got = list(assoc.send_c_get(study, StudyRootQueryRetrieveInformationModelGet))
    assert got[-1][0].Status == 0xA700
    assert int(got[-1][0].get("NumberOfCompletedSuboperations", 0)) == 0
    assert assoc.send_c_echo().Status == 0x0000  # the association carries on
    assoc.release()


# -- the admin router ---------------------------------------------------------------------


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[tuple[TestClient, AuditLog]]:
    log = sqlite_log(tmp_path)
    api = FastAPI()

    def tenant_of(request: Request) -> str:
        return request.headers.get("x-tenant", "default")

    api.include_router(audit_router(log, tenant_of))
    with TestClient(api) as client:
        yield client, log
    log.close()


def test_the_router_pages_filters_and_scopes_to_the_callers_tenant(
    admin: tuple[TestClient, AuditLog],
) -> None:
    client, log = admin
    start = datetime(2024, 3, 1, tzinfo=UTC)
    for n in range(5):
        log.record(entry(at=start + timedelta(hours=n), actor=f"user{n % 2}"))
    log.record(entry(tenant="other", actor="carol"))

    page = client.get("/audit", params={"limit": 2}).json()
    assert page["total"] == 5 and len(page["entries"]) == 2
    first = page["entries"][0]
    assert first["actor"] == "user0" and first["at"].startswith("2024-03-01T04:00:00")
    assert set(first) == {
        "id",
        "at",
        "tenant",
        "actor",
        "role",
        "action",
        "channel",
        "route",
        "study_uid",
        "detail",
        "source",
    }
    assert client.get("/audit", params={"actor": "user1"}).json()["total"] == 2
    window = {"since": "2024-03-01T01:00:00Z", "until": "2024-03-01T03:00:00+00:00"}
    assert client.get("/audit", params=window).json()["total"] == 2
    assert client.get("/audit", params={"since": "2024-03-01T01:00:00"}).json()["total"] == 4
    other = client.get("/audit", headers={"x-tenant": "other"}).json()
    assert [e["actor"] for e in other["entries"]] == ["carol"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2024-13-01"}, "until"),
        ({"limit": "1001"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"channel": "ftp"}, "channel"),
    ],
)
def test_bad_parameters_are_422_naming_them(
    admin: tuple[TestClient, AuditLog], params: dict[str, str], field: str
) -> None:
    client, _ = admin
    for path in ("/audit", "/audit.csv"):
        if path == "/audit.csv" and field in ("limit", "offset"):
            continue
        response = client.get(path, params=params)
        assert response.status_code == 422
        assert [d["loc"] for d in response.json()["detail"]] == [["query", field]]


def test_the_csv_export_streams_the_callers_entries(
    admin: tuple[TestClient, AuditLog],
) -> None:
    client, log = admin
    for n in range(3):
        log.record(entry(actor=f"user{n}", detail=f"q={n},x"))
    log.record(entry(tenant="other"))
    response = client.get("/audit.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["actor"], r["detail"]) for r in rows] == [
        ("user0", "q=0,x"),
        ("user1", "q=1,x"),
        ("user2", "q=2,x"),
    ]
    filtered = client.get("/audit.csv", params={"actor": "user1"}).text
    assert len(list(csv.DictReader(io.StringIO(filtered)))) == 1
