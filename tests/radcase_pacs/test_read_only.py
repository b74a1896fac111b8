"""The read-only moment of a switch to other stores, as every edge shows it: what would write
(a STOW-RS, an audited clinical read, an answer, a sign-in, a web form, a C-STORE) is refused
with 503 and ``Retry-After`` (0xA700 over DIMSE) and leaves nothing behind; what only reads
(the teaching collection, the case list) goes on; and writes resume once the flag is
cleared, in every process within ``read_only_check_seconds``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from radcase_pacs.cli import main
from radcase_pacs.deployment import Deployment, open_deployment
from radcase_pacs.dimse.server import DimseServer
from radcase_pacs.mode import ModeStore, WriteGate
from radcase_pacs.settings import Settings
from storage.errors import ReadOnly
from storage.urls import open_database
from tests.factories import free_port, make_instance, multipart_body, to_bytes
from tests.radcase_pacs.web.test_cohort_pages import browser, post
from tests.teaching.learning_world import (
    PASSWORD,
    World,
    add_case,
    add_question,
    answer_for,
    free_text,
    world,
)

CHECK = 0.05
"""read_only_check_seconds of these tests: each process rereads the flag this often."""


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    settings = Settings(
        data_dir=tmp_path / "data", read_only_check_seconds=CHECK, dimse_port=free_port()
    )
    with world(settings) as made:
        yield made


def deployment_of(w: World) -> Deployment:
    deployment: Deployment = w.client.app.state.deployment  # type: ignore[attr-defined]
    return deployment


def read_only(w: World, retry_after: int = 7) -> None:
    """The flag set from another handle on the database, as the switch's process sets it,
    then as long as a process may still trust its last read."""
    other = ModeStore(open_database(deployment_of(w).settings.resolved_index_url))
    other.open()
    try:
        other.set_read_only("switching to new stores", retry_after)
    finally:
        other.close()
    time.sleep(CHECK * 2)


def writable(w: World) -> None:
    deployment_of(w).mode.set_writable()
    time.sleep(CHECK * 2)


def refused(response: Any, retry_after: str = "7") -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == retry_after


def stow(w: World) -> Any:
    body, content_type = multipart_body([to_bytes(make_instance())])
    return w.client.post(
        "/dicomweb/studies",
        content=body,
        headers={**w.as_("edu"), "Content-Type": content_type},
    )


def test_writes_are_refused_with_retry_after_while_reads_go_on(w: World) -> None:
    case = add_case(w, title="Tension pneumothorax")
    question = add_question(w, case, free_text())
    educator = browser(w, "edu")
    entries_before = deployment_of(w).audit.search(None, limit=10_000)[1]
    read_only(w)

    refused(stow(w))
    refused(w.call("edu", "GET", "/dicomweb/studies"))  # its audit entry cannot be written
    refused(w.call("ann", "POST", "/api/quiz/sessions", json={"source": "due"}))
    refused(
        w.client.post(
            "/api/auth/token",
            data={"grant_type": "password", "username": "ann", "password": PASSWORD},
        )
    )
    page = post(educator, "/teach/groups", {"name": "PGY1", "members": ["ann"]})
    refused(page)
    assert "Try again in 7 seconds" in page.text

    teaching = w.call("ann", "GET", "/teaching/dicomweb/studies")
    assert teaching.status_code == 200 and len(teaching.json()) == 1
    assert [c["id"] for c in w.ok("edu", "GET", "/api/cases")["cases"]] == [case["id"]]
    assert deployment_of(w).audit.search(None, limit=10_000)[1] == entries_before

    writable(w)
    assert stow(w).status_code == 200
    session = w.ok("ann", "POST", "/api/quiz/sessions", 201, json={"source": "due"})
    item = f"/api/quiz/sessions/{session['id']}/items/1"
    w.ok("ann", "GET", item)
    graded = w.ok("ann", "POST", f"{item}/answer", json=answer_for(question, right=True))
    assert graded["correct"] is True


def test_a_c_store_is_refused_with_out_of_resources_and_stored_after(w: World) -> None:
    deployment = deployment_of(w)
    server = DimseServer(
        deployment.settings, deployment.clinical, audit=deployment.audit, metrics=deployment.metrics
    )
    server.start()
    try:
        ae = AE(ae_title="SWITCHSCU")
        ae.add_requested_context(CTImageStorage)
        instance = make_instance()
        read_only(w)
        assoc = ae.associate("127.0.0.1", server.port, ae_title="RADCASE")
        assert assoc.is_established
        assert assoc.send_c_store(instance).Status == 0xA700  # PS3.4 B.2.3: try later
        writable(w)
        assert assoc.send_c_store(instance).Status == 0x0000
        assoc.release()
    finally:
        server.stop()
    assert deployment.clinical.stored(instance.SOPInstanceUID) is not None


def test_the_gate_trusts_its_last_read_for_its_interval_only(tmp_path: Path) -> None:
    store = ModeStore(open_database(f"sqlite:///{tmp_path / 'index.sqlite3'}"))
    store.open()
    now = [100.0]
    gate = WriteGate(store, ttl=1.0, clock=lambda: now[0])
    try:
        gate.check()
        store.set_read_only("switching", 4)
        gate.check()  # the last read is still trusted
        now[0] += 1.0
        with pytest.raises(ReadOnly) as refusal:
            gate.check()
        assert refusal.value.retry_after == 4
        store.mark_taken_over("postgresql://db/old")
        store.set_writable()
        now[0] += 1.0
        gate.check()
        mode = store.mode()
        assert not mode.read_only and mode.took_over_from == "postgresql://db/old"
    finally:
        store.close()


def test_the_read_only_command_sets_and_clears_the_flag_of_a_running_deployment(
    w: World, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(deployment_of(w).settings.data_dir)
    assert main(["--data-dir", data_dir, "read-only", "on", "--retry-after", "9"]) == 0
    assert "read-only since" in capsys.readouterr().out
    time.sleep(CHECK * 2)
    refused(stow(w), retry_after="9")
    assert main(["--data-dir", data_dir, "read-only", "off"]) == 0
    assert capsys.readouterr().out == "writable\n"
    time.sleep(CHECK * 2)
    assert stow(w).status_code == 200


def test_a_process_that_never_signed_a_token_checks_one_while_read_only(w: World) -> None:
    """The signing key is read from the database on a process's first token check: it must
    not write then (a worker that had checked none before the switch would refuse everyone)."""
    token = w.as_("edu")["Authorization"].removeprefix("Bearer ")
    read_only(w)
    other = deployment_of(w).settings
    with open_deployment(other) as fresh:  # another process: its key not yet read
        principal = fresh.auth.authenticator.principal(f"Bearer {token}", "")
    assert principal is not None and principal.user == "edu"
