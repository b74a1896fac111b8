"""A department moves from the embedded default to PostgreSQL + Redis + S3 while it keeps
working: built through the API (an admin, an educator and a learner, an API key, a published
case with a question of each kind, the learner's answers, a group with an assignment, the
audit entries all that made), copied by ``migrate --follow`` while a client keeps storing
studies and answering questions, then switched with ``migrate --switch``. The new servers
then have everything: the same logins (passwords, API key, a token issued before the move),
the same case ids and teaching UIDs, the same review history and progress, the audit log
complete and in order, every acknowledged study and answer; the same study exported again
gets the same teaching UIDs. During and after the switch, the old server refuses writes with
503 and Retry-After and still serves reads."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.uid import generate_uid

from tests.factories import make_instance, multipart_body, to_bytes
from tests.radcase_pacs.migration.sides import (
    ADMIN_PASSWORD,
    embedded_config,
    environment,
    migrate,
    production_config,
)
from tests.serving import serve
from tests.web.department import EDUCATOR, LEARNER, PASSWORD, Department, build, token

pytestmark = pytest.mark.e2e


@dataclass
class Client:
    """Keeps storing one-instance studies (as an admin) and answering the assignment (as
    the learner) on the old server, noting what was acknowledged and what was refused."""

    base: str
    admin: dict[str, str]
    learner: dict[str, str]
    department: Department
    stored: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    """Sessions whose first item was answered."""
    refusals: list[httpx.Response] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    failures: list[str] = field(default_factory=list)

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base, timeout=30) as http:
                while not self.stop.is_set():
                    self.store(http)
                    self.answer(http)
                    time.sleep(0.02)
        except Exception as exc:  # the test fails on it, with what happened
            self.failures.append(repr(exc))

    def noted(self, response: httpx.Response, *ok: int) -> bool:
        if response.status_code in ok:
            return True
        if response.status_code == 503:
            self.refusals.append(response)
            return False
        self.failures.append(f"{response.request.url}: {response.status_code} {response.text}")
        self.stop.set()
        return False

    def store(self, http: httpx.Client) -> None:
        ds = make_instance(study_uid=generate_uid(), series_uid=generate_uid())
        body, content_type = multipart_body([to_bytes(ds)])
        response = http.post(
            "/dicomweb/studies",
            content=body,
            headers={**self.admin, "Content-Type": content_type},
        )
        if self.noted(response, 200):
            self.stored.append(str(ds.SOPInstanceUID))

    def answer(self, http: httpx.Client) -> None:
        started = http.post(
            "/api/quiz/sessions",
            json={"source": "assignment", "assignment_id": self.department.assignment_id},
            headers=self.learner,
        )
        if not self.noted(started, 201):
            return
        session = started.json()["id"]
        item = f"/api/quiz/sessions/{session}/items/1"
        served = http.get(item, headers=self.learner)
        if not self.noted(served, 200):
            return
        answer = right(self.department, served.json()["question"]["kind"])
        if self.noted(http.post(f"{item}/answer", json=answer, headers=self.learner), 200):
            self.answered.append(session)


def right(department: Department, kind: str) -> dict[str, Any]:
    if kind == "multiple_choice":
        return {"kind": kind, "selected": ["b"]}
    if kind == "free_text":
        return {"kind": kind, "text": "qxacceptedanswer"}
    locate = department.locate
    return {
        "kind": kind,
        "sop_instance_uid": locate["sop"],
        "frame": 1,
        "x": locate["x"],
        "y": locate["y"],
    }


@contextmanager
def running(client: Client) -> Iterator[Client]:
    thread = threading.Thread(target=client.run, daemon=True)
    thread.start()
    try:
        yield client
    finally:
        client.stop.set()
        thread.join(timeout=60)


def answer_assignment(http: httpx.Client, department: Department, learner: dict[str, str]) -> None:
    session = http.post(
        "/api/quiz/sessions",
        json={"source": "assignment", "assignment_id": department.assignment_id},
        headers=learner,
    ).json()
    for position in range(1, len(session["items"]) + 1):
        item = f"/api/quiz/sessions/{session['id']}/items/{position}"
        kind = http.get(item, headers=learner).json()["question"]["kind"]
        graded = http.post(f"{item}/answer", json=right(department, kind), headers=learner)
        assert graded.status_code == 200, graded.text


def snapshot(http: httpx.Client, who: dict[str, dict[str, str]], case_id: str) -> dict[str, Any]:
    """What the department's people read through the API (none of it writes)."""
    history = http.get("/api/progress/history", params={"limit": 500}, headers=who["learner"])
    return {
        "history": history.json(),
        "progress": timeless(http.get("/api/progress", headers=who["learner"]).json()),
        "case": http.get(f"/api/cases/{case_id}", headers=who["educator"]).json(),
        "cases": http.get("/api/cases", headers=who["educator"]).json(),
        "groups": http.get("/api/groups", headers=who["educator"]).json(),
        "users": http.get("/api/users", headers=who["admin"]).json(),
        "keys": http.get("/api/api-keys", headers=who["admin"]).json(),
        "program": http.get("/api/program", headers=who["educator"]).json(),
    }


def timeless(value: Any) -> Any:
    """``value`` without what depends on the moment it was asked (the time, the FSRS recall
    probability now)."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if k not in ("as_of", "retention")}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def audit_lines(http: httpx.Client, admin: dict[str, str]) -> list[str]:
    answer = http.get("/api/audit.csv", headers=admin)
    assert answer.status_code == 200, answer.text
    return answer.text.splitlines()


def until(process: Any, text: str, times: int = 1, timeout: float = 120) -> list[str]:
    """Lines of ``process`` up to the ``times``-th containing ``text``."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while sum(text in line for line in lines) < times:
        assert time.monotonic() < deadline, "\n".join(lines)
        line = process.stdout.readline()
        assert line, "migrate ended early:\n" + "\n".join(lines)
        lines.append(line.rstrip("\n"))
    return lines


def test_a_department_moves_while_it_works_and_finds_everything_after_the_switch(
    tmp_path: Path, postgres_url: str, redis_key_prefix: str, s3_bucket_name: str
) -> None:
    source = embedded_config(tmp_path)
    target = production_config(tmp_path, postgres_url, redis_key_prefix, s3_bucket_name)
    # Two HTTP worker processes: the read-only flag must reach every process of the server.
    with serve(environment(source), "--workers", "2", log=tmp_path / "old.log") as old:
        department = build(old, ADMIN_PASSWORD)
        with httpx.Client(base_url=old, timeout=60) as http:
            who = {
                "admin": token(http, "admin", ADMIN_PASSWORD),
                "educator": token(http, EDUCATOR, PASSWORD),
                "learner": token(http, LEARNER, PASSWORD),
            }
            key = http.post("/api/api-keys", json={"name": "lrs"}, headers=who["admin"])
            assert key.status_code == 201, key.text
            api_key = key.json()["token"]
            answer_assignment(http, department, who["learner"])

            client = Client(old, who["admin"], who["learner"], department)
            with running(client):
                follower = migrate(source, target, "--follow", "--interval", "0.2")
                seen = until(follower, "pass ", times=2)
                follower.send_signal(signal.SIGINT)
                rest = follower.communicate(timeout=120)[0]
                assert follower.returncode == 0, "\n".join(seen) + rest
                while len(client.stored) < len(seen) + 2 and not client.failures:
                    time.sleep(0.05)  # more arrives after the follower stopped

                switching = migrate(source, target, "--switch", "--retry-after", "3")
                output = switching.communicate(timeout=180)[0]
                assert switching.returncode == 0, output
                assert "verification: OK" in output and "switched:" in output, output
                refused_before = len(client.refusals)
                deadline = time.monotonic() + 30
                while len(client.refusals) < refused_before + 2 and not client.failures:
                    assert time.monotonic() < deadline, "the old server still takes writes"
                    time.sleep(0.05)
            assert not client.failures, client.failures
            assert client.stored and client.answered
            assert all(r.headers.get("retry-after") == "3" for r in client.refusals)

            # The old server is read-only: reads go on, as long as they write nothing.
            before = snapshot(http, who, department.case_id)
            old_audit = audit_lines(http, who["admin"])
            assert http.get("/api/me", headers=who["learner"]).status_code == 200

    with (
        serve(environment(target), log=tmp_path / "new.log") as new,
        httpx.Client(base_url=new, timeout=60) as http,
    ):
        # The same logins: a token issued before the move, every password, the API key.
        assert http.get("/api/me", headers=who["learner"]).json()["username"] == LEARNER
        assert snapshot(http, who, department.case_id) == before
        for name, password in (
            ("admin", ADMIN_PASSWORD),
            (EDUCATOR, PASSWORD),
            (LEARNER, PASSWORD),
        ):
            token(http, name, password)
        assert http.get("/dicomweb/studies", headers={"X-API-Key": api_key}).status_code == 200

        # Every acknowledged study and answer.
        for sop in client.stored:
            found = http.get(
                "/dicomweb/instances", params={"SOPInstanceUID": sop}, headers=who["admin"]
            )
            assert found.status_code == 200 and len(found.json()) == 1, sop
        reviewed = {r["session_id"] for r in before["history"]["reviews"]}
        assert set(client.answered) <= reviewed

        # The same case ids and teaching UIDs; the same study exported again joins them.
        assert before["case"]["teaching_study_instance_uid"] == department.teaching_study
        series = http.get(
            f"/teaching/dicomweb/studies/{department.teaching_study}/series",
            headers=who["learner"],
        )
        assert series.status_code == 200, series.text
        (clinical,) = http.get(
            "/dicomweb/studies", params={"PatientID": "PHANTOM-1"}, headers=who["admin"]
        ).json()
        again = http.post(
            "/api/cases",
            json={"study_instance_uid": clinical["0020000D"]["Value"][0], "title": "Again"},
            headers=who["educator"],
        )
        assert again.status_code == 201, again.text
        assert again.json()["teaching_study_instance_uid"] == department.teaching_study

        # The audit log: the old one whole, in order, then what the new server added.
        new_audit = audit_lines(http, who["admin"])
        assert new_audit[: len(old_audit)] == old_audit
        assert len(new_audit) > len(old_audit)
