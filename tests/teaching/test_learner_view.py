"""Learners reach only the published cases of their institution through /teaching/dicomweb;
educators keep seeing every case. With authentication on, on the embedded default and on
PostgreSQL + Redis + S3.

Institution A (the home institution) holds two cases made from two clinical studies: one
published, one draft. A learner of A must find only the published study, and the draft must
answer exactly like a study that does not exist; a learner of institution B finds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from pydicom.uid import generate_uid
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from radcase_pacs.auth.principal import Principal, Role, attach
from radcase_pacs.learner_view import LearnerView
from radcase_pacs.settings import Settings
from storage.errors import BackendFailure
from tests.apps import served
from tests.factories import make_instance, multipart_body, to_bytes

A, B = "default", "hospital-b"
PASSWORD = "a long password"
DICOM_JSON = {"Accept": "application/dicom+json"}
MADE_UP = "1.2.826.0.1.3680043.99999.1"
STUDY_UID = "0020000D"
SOP_UID = "00080018"


@dataclass(frozen=True)
class Copy:
    """A case's teaching study: its UIDs (two instances in one series)."""

    case_id: str
    study: str
    series: str
    instances: tuple[str, ...]

    def paths(self, study: str | None = None) -> dict[str, tuple[str, dict[str, str]]]:
        """Resources under the study (the study UID replaced when given), with the Accept
        header that gets each one."""
        root = f"/teaching/dicomweb/studies/{study or self.study}"
        series = f"{root}/series/{self.series}"
        instance = f"{series}/instances/{self.instances[0]}"
        any_dicom = {"Accept": "multipart/related; type=application/dicom; transfer-syntax=*"}
        return {
            "study": (root, any_dicom),
            "study metadata": (f"{root}/metadata", DICOM_JSON),
            "study series": (f"{root}/series", DICOM_JSON),
            "study instances": (f"{root}/instances", DICOM_JSON),
            "series": (series, any_dicom),
            "series metadata": (f"{series}/metadata", DICOM_JSON),
            "instance": (instance, any_dicom),
            "instance metadata": (f"{instance}/metadata", DICOM_JSON),
            "frames": (
                f"{instance}/frames/1",
                {"Accept": "multipart/related; type=application/octet-stream"},
            ),
            "bulk": (
                f"{instance}/bulk/7FE00010",
                {"Accept": "multipart/related; type=application/octet-stream"},
            ),
            "instance rendered": (f"{instance}/rendered", {"Accept": "image/png"}),
            "series rendered": (
                f"{series}/rendered",
                {"Accept": 'multipart/related; type="image/jpeg"'},
            ),
            "study thumbnail": (f"{root}/thumbnail", {"Accept": "image/jpeg"}),
            "instance thumbnail": (f"{instance}/thumbnail", {"Accept": "image/jpeg"}),
        }


@dataclass
class World:
    client: TestClient
    educator: dict[str, str]
    learner: dict[str, str]
    learner_b: dict[str, str]
    published: Copy
    draft: Copy


def login(client: TestClient, username: str) -> dict[str, str]:
    response = client.post(
        "/api/auth/token",
        data={"grant_type": "password", "username": username, "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def make_case(client: TestClient, service: dict[str, str], educator: dict[str, str]) -> Copy:
    study_uid, series_uid = generate_uid(), generate_uid()
    datasets = [
        make_instance(study_uid=study_uid, series_uid=series_uid, instance_number=n) for n in (1, 2)
    ]
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    stored = client.post(
        "/dicomweb/studies", content=body, headers={**service, "Content-Type": content_type}
    )
    assert stored.status_code == 200, stored.text
    made = client.post(
        "/api/cases", json={"study_instance_uid": study_uid, "title": "t"}, headers=educator
    )
    assert made.status_code == 201, made.text
    case = made.json()
    assert case["status"] == "draft"
    (series,) = {i["series_instance_uid"] for i in case["instances"]}
    return Copy(
        case["id"],
        case["teaching_study_instance_uid"],
        series,
        tuple(sorted(i["sop_instance_uid"] for i in case["instances"])),
    )


@pytest.fixture
def world(server_settings: Settings) -> Iterator[World]:
    """The server of tests/teaching/conftest.py (both kinds of stores), authentication on."""
    settings = Settings(
        **{
            **server_settings.model_dump(exclude_unset=True),
            "auth": "on",
            "admin_password": PASSWORD,
            "password_hash_rounds": 4,
        }
    )
    with served(settings) as client:
        users = client.app.state.auth.users  # type: ignore[attr-defined]
        users.ensure_institution(B, "Hospital B")
        users.add_user("educator-a", A, Role.EDUCATOR, PASSWORD)
        users.add_user("learner-a", A, Role.LEARNER, PASSWORD)
        users.add_user("learner-b", B, Role.LEARNER, PASSWORD)
        _, key = users.add_api_key(A, "modality-bridge")
        service = {"Authorization": f"Bearer {key}"}
        educator = login(client, "educator-a")
        published = make_case(client, service, educator)
        draft = make_case(client, service, educator)
        done = client.post(f"/api/cases/{published.case_id}/publish", headers=educator)
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "published"
        yield World(
            client,
            educator,
            login(client, "learner-a"),
            login(client, "learner-b"),
            published,
            draft,
        )


def search(world: World, who: dict[str, str], path: str) -> list[dict[str, Any]]:
    response = world.client.get(f"/teaching/dicomweb{path}", headers={**who, **DICOM_JSON})
    assert response.status_code == 200, response.text
    return list(response.json())


def values(results: list[dict[str, Any]], key: str) -> set[str]:
    return {r[key]["Value"][0] for r in results}


def test_the_store_lists_the_published_studies_of_a_tenant(world: World) -> None:
    """What the app's learner view is given: the case store's published studies."""
    routes = world.client.app.routes  # type: ignore[attr-defined]
    (mount,) = [r for r in routes if getattr(r, "path", "") == "/teaching/dicomweb"]
    assert isinstance(mount.app, LearnerView)
    published = mount.app.published
    assert published(A) == frozenset({world.published.study})
    assert published(B) == frozenset()


def test_a_learner_searches_the_published_studies_only(world: World) -> None:
    learner, pub, draft = world.learner, world.published.study, world.draft.study
    assert values(search(world, learner, "/studies"), STUDY_UID) == {pub}
    assert search(world, learner, f"/studies?StudyInstanceUID={draft}") == []
    assert search(world, learner, f"/studies?{STUDY_UID}={draft}") == []
    assert search(world, learner, f"/studies?0020000d={draft}") == []
    both = values(search(world, learner, f"/studies?StudyInstanceUID={pub},{draft}"), STUDY_UID)
    assert both == {pub}
    both = values(search(world, learner, f"/studies?StudyInstanceUID={draft}%2C{pub}"), STUDY_UID)
    assert both == {pub}
    assert values(search(world, learner, "/studies?StudyInstanceUID="), STUDY_UID) == {pub}
    series = search(world, learner, "/series")
    assert values(series, STUDY_UID) == {pub} and len(series) == 1
    instances = search(world, learner, "/instances")
    assert values(instances, SOP_UID) == set(world.published.instances)
    assert search(world, learner, f"/series?StudyInstanceUID={draft}") == []
    assert search(world, learner, f"/instances?{STUDY_UID}={draft}") == []
    assert search(world, learner, f"/studies/{draft}/instances") == []


def test_a_draft_search_answers_as_a_search_that_matches_nothing(world: World) -> None:
    """Status, body and ETag of the learner's search for a draft are those of the
    educator's search for a study that does not exist."""
    get = world.client.get
    for resource in ("studies", "series", "instances"):
        draft = get(
            f"/teaching/dicomweb/{resource}?StudyInstanceUID={world.draft.study}",
            headers={**world.learner, **DICOM_JSON},
        )
        missing = get(
            f"/teaching/dicomweb/{resource}?StudyInstanceUID={MADE_UP}",
            headers={**world.educator, **DICOM_JSON},
        )
        assert (draft.status_code, draft.content) == (missing.status_code, missing.content)
        assert draft.headers["etag"] == missing.headers["etag"]
        assert draft.headers["content-type"] == missing.headers["content-type"]
    bad = get(
        "/teaching/dicomweb/studies?StudyInstanceUID=1.2.x", headers={**world.learner, **DICOM_JSON}
    )
    assert bad.status_code == 400 and "StudyInstanceUID" in bad.text


def test_the_draft_answers_like_a_study_that_does_not_exist(world: World) -> None:
    draft, pub = world.draft, world.published
    get = world.client.get
    for name, (path, accept) in draft.paths().items():
        # The educator sees that the draft is there ...
        assert get(path, headers={**world.educator, **accept}).status_code == 200, name
        # ... and the learner gets what a made-up study gives.
        hidden = get(path, headers={**world.learner, **accept})
        fake_path, _ = draft.paths(MADE_UP)[name]
        missing = get(fake_path, headers={**world.learner, **accept})
        assert hidden.status_code == missing.status_code, name
        assert hidden.content.replace(draft.study.encode(), MADE_UP.encode()) == missing.content
        assert hidden.headers.get("content-type") == missing.headers.get("content-type"), name
        assert set(hidden.headers) == set(missing.headers), name
        expected = 200 if name in ("study series", "study instances") else 404
        assert hidden.status_code == expected, name
        if expected == 200:
            assert hidden.json() == []
        # The published study opens for the learner.
        pub_path, _ = pub.paths()[name]
        opened = get(pub_path, headers={**world.learner, **accept})
        assert opened.status_code == 200, (name, opened.text)
    # Also a HEAD, and a malformed UID answered as for any other caller.
    path, accept = draft.paths()["study metadata"]
    assert world.client.head(path, headers={**world.learner, **accept}).status_code == 404
    bad = get("/teaching/dicomweb/studies/1.2.x/metadata", headers={**world.learner, **DICOM_JSON})
    assert bad.status_code == 400


def test_wado_uri_of_the_draft_answers_like_an_unknown_object(world: World) -> None:
    def wado(who: dict[str, str], copy: Copy, study: str | None = None) -> Any:
        return world.client.get(
            "/teaching/dicomweb/wado",
            params={
                "requestType": "WADO",
                "studyUID": study or copy.study,
                "seriesUID": copy.series,
                "objectUID": copy.instances[0],
                "contentType": "application/dicom",
            },
            headers=who,
        )

    assert wado(world.educator, world.draft).status_code == 200
    hidden = wado(world.learner, world.draft)
    missing = wado(world.learner, world.draft, MADE_UP)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content  # names the instance, not the study
    assert hidden.headers["content-type"] == missing.headers["content-type"]
    opened = wado(world.learner, world.published)
    assert opened.status_code == 200 and opened.content[128:132] == b"DICM"
    # Naming the study twice cannot smuggle the draft past the check.
    query = (
        f"requestType=WADO&studyUID={world.published.study}&studyUID={world.draft.study}"
        f"&seriesUID={world.draft.series}&objectUID={world.draft.instances[0]}"
    )
    twice = world.client.get(f"/teaching/dicomweb/wado?{query}", headers=world.learner)
    assert twice.status_code == 400 and world.draft.instances[0] not in twice.text


def test_an_educator_sees_every_case(world: World) -> None:
    everything = {world.published.study, world.draft.study}
    assert values(search(world, world.educator, "/studies"), STUDY_UID) == everything
    assert values(search(world, world.educator, "/series"), STUDY_UID) == everything
    assert len(search(world, world.educator, "/instances")) == 4


def test_other_query_parameters_survive_the_rewrite(world: World) -> None:
    """The learner's search gives what the educator's gets for the same parameters narrowed
    to the published study by hand: nothing else of the query changed."""
    pub = world.published.study
    for query in (
        "includefield=00081030%2C00080020&limit=1",
        "limit=1",
        "offset=1",
        "includefield=all&ModalitiesInStudy=CT",
        "fuzzymatching=false&StudyDate=20000101-",
        "SOPInstanceUID=" + "%2C".join(world.published.instances),
    ):
        level = "instances" if "SOPInstanceUID" in query or "offset" in query else "studies"
        learner = world.client.get(
            f"/teaching/dicomweb/{level}?{query}", headers={**world.learner, **DICOM_JSON}
        )
        educator = world.client.get(
            f"/teaching/dicomweb/{level}?{query}&StudyInstanceUID={pub}",
            headers={**world.educator, **DICOM_JSON},
        )
        assert learner.status_code == educator.status_code == 200, (query, learner.text)
        assert learner.json() == educator.json(), query
        assert learner.headers.get("warning") == educator.headers.get("warning"), query
    limited = search(world, world.learner, "/instances?limit=1")
    assert len(limited) == 1
    included = search(world, world.learner, "/studies?includefield=00081030")
    assert "00081030" in included[0]
    refused = world.client.get(
        "/teaching/dicomweb/studies?nonsense=1", headers={**world.learner, **DICOM_JSON}
    )
    assert refused.status_code == 400 and "nonsense" in refused.text


def test_a_learner_of_another_institution_sees_none_of_them(world: World) -> None:
    other = world.learner_b
    for resource in ("studies", "series", "instances"):
        assert search(world, other, f"/{resource}") == []
        assert search(world, other, f"/{resource}?StudyInstanceUID={world.published.study}") == []
    for copy in (world.published, world.draft):
        for name, (path, accept) in copy.paths().items():
            response = world.client.get(path, headers={**other, **accept})
            assert response.status_code in (200, 404), name
            if response.status_code == 200:
                assert response.json() == [], name


def test_publishing_opens_the_case_at_once(world: World) -> None:
    draft = world.draft
    path, accept = draft.paths()["study metadata"]
    assert world.client.get(path, headers={**world.learner, **accept}).status_code == 404
    done = world.client.post(f"/api/cases/{draft.case_id}/publish", headers=world.educator)
    assert done.status_code == 200, done.text
    assert world.client.get(path, headers={**world.learner, **accept}).status_code == 200
    found = values(search(world, world.learner, "/studies"), STUDY_UID)
    assert found == {world.published.study, draft.study}


# -- the middleware alone -----------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def call(app: LearnerView, role: Role | None, path: str, query: bytes = b"") -> list[Message]:
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": f"/teaching/dicomweb{path}",
        "root_path": "/teaching/dicomweb",
        "query_string": query,
        "headers": [],
    }
    if role is not None:
        attach(scope, Principal("someone", A, role))
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    return sent


def test_only_learners_are_given_the_published_studies_and_nothing_is_rewritten() -> None:
    asked: list[str] = []

    def published(tenant: str) -> frozenset[str]:
        asked.append(tenant)
        return frozenset({"1.2.3"})

    inner = Recorder()
    app = LearnerView(inner, published)
    for role in (None, Role.ADMIN, Role.EDUCATOR, Role.SERVICE):
        call(app, role, "/studies/1.2.9/metadata")
        call(app, role, "/studies", b"limit=1")
    assert not asked
    assert all("visible_studies" not in s.get("state", {}) for s in inner.scopes)
    inner.scopes.clear()
    call(app, Role.LEARNER, "/studies/1.2.9/metadata")
    call(app, Role.LEARNER, "/studies", b"limit=1")
    assert asked == [A, A]
    assert [s["state"]["visible_studies"] for s in inner.scopes] == [frozenset({"1.2.3"})] * 2
    assert [s["state"]["tenant"] for s in inner.scopes] == [A, A]
    assert [s["path"] for s in inner.scopes] == [
        "/teaching/dicomweb/studies/1.2.9/metadata",
        "/teaching/dicomweb/studies",
    ]
    assert inner.scopes[1]["query_string"] == b"limit=1"


def test_a_learner_is_refused_when_the_case_store_fails() -> None:
    def published(tenant: str) -> frozenset[str]:
        raise BackendFailure("database down")

    inner = Recorder()
    sent = call(LearnerView(inner, published), Role.LEARNER, "/studies")
    assert sent[0]["status"] == 503 and not inner.scopes
