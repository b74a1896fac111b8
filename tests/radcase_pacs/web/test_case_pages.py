"""The educators' pages over HTTP: the clinical study browser, making a case, the case editor
(tags, key images, giveaway warnings), the library's filters, publication and deletion; each
change audited, learners refused, and another institution's studies and cases never shown."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from radcase_pacs.auth.principal import Role
from radcase_pacs.settings import Settings
from radcase_pacs.web.teach.giveaways import find_giveaways, words
from tests.apps import served
from tests.factories import make_instance, multipart_body, to_bytes
from tests.radcase_pacs.web.test_signin import PASSWORD, csrf_of, sign_in

EDUCATOR = "teacher"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


@dataclass
class Site:
    client: TestClient
    """The educator, signed in with the session cookie."""
    admin: TestClient

    def csrf(self) -> str:
        return csrf_of(self.client.get("/teach/cases").text)

    def post(self, url: str, data: dict[str, Any] | list[tuple[str, str]]) -> httpx.Response:
        pairs = list(data.items()) if isinstance(data, dict) else list(data)
        return self.client.post(
            url,
            content=urlencode([*pairs, ("csrf", self.csrf())]),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def store(self, *datasets: Dataset) -> None:
        body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
        answer = self.client.post(
            "/dicomweb/studies",
            content=body,
            headers={"Content-Type": content_type, "X-CSRF-Token": self.csrf()},
        )
        assert answer.status_code == 200, answer.text

    def case(self, case_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/api/cases/{case_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def make_case(self, study_uid: str, title: str = "A case", **form: Any) -> str:
        made = self.post(f"/teach/studies/{study_uid}", {"title": title, **form})
        assert made.status_code == 303, made.text
        location = made.headers["location"]
        assert location.endswith("?notice=created")
        return location.split("/teach/cases/")[1].split("?")[0]

    def actions(self) -> list[str]:
        entries = self.admin.get("/api/audit", params={"actor": EDUCATOR}).json()["entries"]
        return [e["action"] for e in entries]


def signed_in(app: Any, username: str, password: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    answer = client.post(
        "/login", data={"username": username, "password": password, "next": "/", "csrf": ""}
    )
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(
        data_dir=tmp_path / "data", auth="on", admin_password=PASSWORD, password_hash_rounds=4
    )
    with served(settings, follow_redirects=False) as admin:
        users = admin.app.state.auth.users  # type: ignore[attr-defined]
        users.add_user(EDUCATOR, "default", Role.EDUCATOR, PASSWORD)
        users.add_user("resident", "default", Role.LEARNER, PASSWORD)
        users.ensure_institution("hospital-b", "Hospital B")
        users.add_user("b-teacher", "hospital-b", Role.EDUCATOR, PASSWORD)
        assert sign_in(admin).status_code == 303
        yield Site(signed_in(admin.app, EDUCATOR, PASSWORD), admin)


def study(
    *,
    series: int = 1,
    per_series: int = 1,
    modality: str = "CT",
    **fields: Any,
) -> list[Dataset]:
    study_uid = generate_uid()
    out = []
    for s in range(series):
        series_uid = generate_uid()
        for i in range(per_series):
            out.append(
                make_instance(
                    study_uid=study_uid,
                    series_uid=series_uid,
                    series_number=s + 1,
                    instance_number=i + 1,
                    modality=modality,
                    **fields,
                )
            )
    return out


def listed_studies(page: str) -> list[str]:
    return re.findall(r'href="/teach/studies/([0-9.]+)"', page)


def text_of(page: str) -> str:
    """The page's text as read: tags out, entities decoded, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def manifest_of(page: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" class="stack-manifest">(.*?)</script>', page
    )
    assert found is not None, page
    return dict(json.loads(found.group(1)))


# -- the study browser -----------------------------------------------------------------


def test_studies_are_found_by_wildcard_name_date_range_and_modality(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    john = study(patient_name="DOE^JOHN", study_date="20240102", patient_id="P-1")
    jane = study(
        patient_name="DOE^JANE",
        study_date="20240315",
        modality="MR",
        accession="ACC-JANE",
        study_description="MR BRAIN",
    )
    richard = study(patient_name="ROE^RICHARD", study_date="20231201")
    site.store(*john, *jane, *richard)
    uid = {name: ds[0].StudyInstanceUID for name, ds in (("john", john), ("jane", jane))}
    uid["richard"] = richard[0].StudyInstanceUID

    def found(**params: str) -> set[str]:
        page = site.client.get("/teach/studies", params=params)
        assert page.status_code == 200, page.text
        return set(listed_studies(page.text))

    assert found() == set(uid.values())
    assert found(name="DOE^*") == {uid["john"], uid["jane"]}
    assert found(name="?oe^j*n*") == {uid["john"], uid["jane"]}
    assert found(name="*^JOHN") == {uid["john"]}
    assert found(name="doe") == {uid["john"], uid["jane"]}  # a plain name: any part's start
    assert found(**{"from": "2024-01-01", "to": "2024-02-01"}) == {uid["john"]}
    assert found(**{"from": "2024-01-01"}) == {uid["john"], uid["jane"]}
    assert found(to="20231231") == {uid["richard"]}
    assert found(modality="mr") == {uid["jane"]}
    assert found(modality="CT", name="DOE*") == {uid["john"]}
    assert found(description="BRAIN") == {uid["jane"]}
    assert found(accession="ACC-JANE") == {uid["jane"]}
    assert found(pid="P-1") == {uid["john"]}

    page = site.client.get("/teach/studies", params={"name": "DOE^JANE"}).text
    assert "DOE, JANE" in page and "MR BRAIN" in page and "2024-03-15" in page
    assert "1 series · 1 images" in page
    thumbnail = f"/dicomweb/studies/{uid['jane']}/thumbnail?viewport=96,96"
    assert f'src="{thumbnail}"' in page
    image = site.client.get(thumbnail)
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    assert "clinical.search" in site.actions()

    monkeypatch.setattr("radcase_pacs.web.teach.worklist.PAGE", 2)
    monkeypatch.setattr("radcase_pacs.web.teach.studies.PAGE", 2)
    first = site.client.get("/teach/studies").text
    second = site.client.get("/teach/studies", params={"page": "2"}).text
    assert len(listed_studies(first)) == 2 and "page=2" in first
    assert len(listed_studies(second)) == 1
    assert set(listed_studies(first) + listed_studies(second)) == set(uid.values())


@pytest.mark.parametrize(
    ("params", "sentence"),
    [
        ({"from": "yesterday"}, "Study date from: not a date"),
        ({"from": "2024-02-30"}, "Study date from: not a date"),
        ({"from": "2024-03-01", "to": "2024-01-01"}, "Study date to: the range ends before"),
        ({"name": "x" * 80}, "Patient name: at most 64 characters"),
        ({"pid": "a\x01b"}, "Patient ID: at most 64 characters, on one line"),
        ({"page": "-3", "from": "nope"}, "Study date from"),
    ],
)
def test_a_bad_search_says_which_field_is_wrong(
    site: Site, params: dict[str, str], sentence: str
) -> None:
    page = site.client.get("/teach/studies", params=params)
    assert page.status_code == 400
    assert sentence in html.unescape(page.text)


def test_a_case_is_made_from_the_chosen_series_and_opens_in_its_editor(site: Site) -> None:
    instances = study(series=2, per_series=2)
    site.store(*instances)
    uid = instances[0].StudyInstanceUID
    page = site.client.get(f"/teach/studies/{uid}")
    assert page.status_code == 200
    manifest = manifest_of(page.text)
    assert manifest["root"] == "/dicomweb" and manifest["study"] == uid
    assert [len(s["images"]) for s in manifest["series"]] == [2, 2]
    assert page.text.count('name="series"') == 2
    assert "clinical.read" in site.actions()

    first_series = instances[0].SeriesInstanceUID
    case_id = site.make_case(uid, "Two of four", scope="series", series=first_series)
    case = site.case(case_id)
    assert case["title"] == "Two of four" and case["author"] == EDUCATOR
    assert len(case["instances"]) == 2
    assert len({i["series_instance_uid"] for i in case["instances"]}) == 1
    editor = site.client.get(f"/teach/cases/{case_id}?notice=created")
    assert editor.status_code == 200
    assert "Case made: the study was de-identified" in editor.text
    shown = manifest_of(editor.text)
    assert shown["root"] == "/teaching/dicomweb"
    assert [len(s["images"]) for s in shown["series"]] == [2]
    whole = site.make_case(uid, "All four")
    assert len(site.case(whole)["instances"]) == 4
    assert site.actions().count("case.create") == 2


def test_making_a_case_refuses_bad_forms_naming_the_field(site: Site) -> None:
    instances = study()
    site.store(*instances)
    uid = instances[0].StudyInstanceUID
    untitled = site.post(f"/teach/studies/{uid}", {"title": "  "})
    assert untitled.status_code == 400 and "Title:" in untitled.text
    none_chosen = site.post(f"/teach/studies/{uid}", {"title": "t", "scope": "series"})
    assert none_chosen.status_code == 400 and "Series: choose at least one" in none_chosen.text
    foreign = site.post(
        f"/teach/studies/{uid}", {"title": "t", "scope": "series", "series": "1.2.3.4"}
    )
    assert foreign.status_code == 400 and "not in this study" in foreign.text
    odd = site.post(f"/teach/studies/{uid}", {"title": "t", "scope": "sideways"})
    assert odd.status_code == 400 and "Make the case from:" in odd.text
    assert site.client.get("/teach/studies/1.2.3.999").status_code == 404
    assert site.client.get("/teach/studies/not-a-uid").status_code == 404
    assert site.post("/teach/studies/1.2.3.999", {"title": "t"}).status_code == 404
    assert site.client.get("/api/cases").json()["total"] == 0
    forged = site.client.post(f"/teach/studies/{uid}", data={"title": "t", "csrf": "0" * 64})
    assert forged.status_code == 403


def test_kos_drafts_are_listed_to_pick_up(site: Site) -> None:
    instances = study()
    site.store(*instances)
    case_id = site.make_case(instances[0].StudyInstanceUID, "Pneumothorax, left apex")
    store = site.client.app.state.deployment.cases.store  # type: ignore[attr-defined]
    with store.db.transaction() as cur:
        cur.execute(
            "UPDATE cases SET origin = 'kos', author = 'HOUSE^GREGORY' WHERE case_id = ?",
            (case_id,),
        )
    page = site.client.get("/teach/studies").text
    assert "Flagged for teaching (1)" in page
    assert f'href="/teach/cases/{case_id}"' in page and "HOUSE^GREGORY" in page


# -- the editor ------------------------------------------------------------------------


def test_the_editor_saves_every_field_tags_and_key_images(site: Site) -> None:
    instances = study(series=1, per_series=3)
    site.store(*instances)
    case_id = site.make_case(instances[0].StudyInstanceUID, "Nodule")
    sops = [i["sop_instance_uid"] for i in site.case(case_id)["instances"]]
    form: list[tuple[str, str]] = [
        ("title", "Solitary pulmonary nodule"),
        ("history", "Smoker, cough."),
        ("findings", "Spiculated mass."),
        ("diagnosis", "Adenocarcinoma"),
        ("differential", "Granuloma\n\n  Metastasis  \n"),
        ("discussion", "Fleischner."),
        ("category", "TCE302"),
        ("category", "TCE310"),
        ("level", "TCE202"),
        ("modalities", "ct, mr"),
        ("anatomy", "Lung, right upper lobe"),
        ("free", "oncology"),
        ("status", "awaiting_pathology"),
        ("key-0", f"{sops[1]}:"),
        ("key-0-note", "The mass"),
        ("key-3", f"{sops[2]}:1"),
        ("key-3-note", ""),
    ]
    saved = site.post(f"/teach/cases/{case_id}", form)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/teach/cases/{case_id}?notice=saved"
    case = site.case(case_id)
    assert case["title"] == "Solitary pulmonary nodule"
    assert case["differential"] == ["Granuloma", "Metastasis"]
    assert case["status"] == "awaiting_pathology"
    assert case["tags"] == {
        "categories": ["TCE302", "TCE310"],
        "level": "TCE202",
        "modalities": ["CT", "MR"],
        "anatomy": ["Lung", "right upper lobe"],
        "free": ["oncology"],
    }
    assert case["key_images"] == [
        {"sop_instance_uid": sops[1], "frame": None, "note": "The mass"},
        {"sop_instance_uid": sops[2], "frame": 1, "note": ""},
    ]
    page = site.client.get(saved.headers["location"]).text
    assert "Saved." in page and "Series 1 · image" in page and "The mass" in page
    assert 'value="TCE310" checked' in page and 'value="ct, mr"' not in page
    assert "case.update" in site.actions()

    removed = site.post(
        f"/teach/cases/{case_id}",
        [
            *[(k, v) for k, v in form if not k.startswith("key-")],
            ("key-0", f"{sops[1]}:"),
            ("key-0-note", "The mass"),
            ("key-0-remove", "1"),
        ],
    )
    assert removed.status_code == 303
    assert site.case(case_id)["key_images"] == []


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        ({"title": ""}, "Title:"),
        ({"category": "TCE999"}, "Category 1: Value error, not an IHE TCE category code"),
        ({"level": "hard"}, "Level: Value error, not an IHE TCE level code"),
        ({"modalities": "C T"}, "Modality 1:"),
        ({"status": "published"}, "Status:"),
        ({"key-0": "1.2.3.4:"}, "Key image 1, sop instance uid: instance 1.2.3.4 is not part"),
        ({"key-0": "junk:x"}, "Key image 1, sop instance uid"),
        ({"title": "t" * 201}, "Title: String should have at most 200 characters"),
    ],
)
def test_bad_editor_input_is_400_naming_the_field_and_keeps_what_was_typed(
    site: Site, change: dict[str, str], sentence: str
) -> None:
    instances = study()
    site.store(*instances)
    case_id = site.make_case(instances[0].StudyInstanceUID, "Kept title")
    form = {"title": "Typed title", "history": "Typed history", "status": "draft", **change}
    answer = site.post(f"/teach/cases/{case_id}", form)
    assert answer.status_code == 400, answer.text
    text = html.unescape(answer.text)
    assert sentence in text and "Nothing was changed" in text
    assert "Typed history" in text
    assert site.case(case_id)["title"] == "Kept title"


def test_a_word_of_the_diagnosis_left_visible_is_warned_about_with_where_it_is(
    site: Site,
) -> None:
    instances = study(series=2)
    for ds in instances:
        procedure = Dataset()
        procedure.CodeValue, procedure.CodingSchemeDesignator = "CTCH", "99LOCAL"
        procedure.CodeMeaning = "CT chest for pneumothorax"
        ds.ProcedureCodeSequence = [procedure]
        ds.SeriesDescription = "Pneumothorax follow-up"  # cleaned by Clean Descriptors
    site.store(*instances)
    case_id = site.make_case(instances[0].StudyInstanceUID, "Tension pneumothorax")
    saved = site.post(
        f"/teach/cases/{case_id}",
        {
            "title": "Tension pneumothorax",
            "history": "Sudden dyspnoea after a fall; tension on examination.",
            "diagnosis": "Tension pneumothorax",
            "modalities": "CT",
            "status": "draft",
        },
    )
    assert saved.status_code == 303
    page = text_of(site.client.get(f"/teach/cases/{case_id}").text)
    assert "Something visible may give the answer away (2)" in page
    assert (
        "“pneumothorax” (from the title and the diagnosis) in Procedure Code Sequence "
        "(0008,1032) › Code Meaning (0008,0104) , series 1, 2 “CT chest for pneumothorax”"
    ) in page
    assert "“tension” (from the title and the diagnosis) in History" in page
    assert "Series Description" not in page  # cleaned: "CLEANED" gives nothing away
    learner = site.client.get(f"/teach/cases/{case_id}/as-learner")
    assert learner.status_code == 200
    view = text_of(learner.text)
    assert "History Sudden dyspnoea after a fall" in view and "Modality CT" in view
    assert "› Code Meaning (0008,0104)" in view
    assert manifest_of(learner.text)["root"] == "/teaching/dicomweb"


def test_giveaways_are_found_in_any_text_left_and_ignore_stop_words() -> None:
    documents = [
        {
            "00200011": {"vr": "IS", "Value": [3]},
            "0008103E": {"vr": "LO", "Value": ["Axial nodules RUL"]},
            "00080060": {"vr": "CS", "Value": ["CT"]},
            "00120063": {"vr": "LO", "Value": ["Nodule profile"]},
            "00091010": {"vr": "LO", "Value": ["private nodule"]},
            "00081030": {"vr": "LO", "Value": ["CLEANED"]},
        }
    ]
    hits = find_giveaways(
        {"title": "The nodule of the CT", "diagnosis": "", "findings": "with a spiculated edge"},
        "Known nodule",
        documents,
    )
    assert [(h.word, h.sources, h.where, h.series) for h in hits] == [
        ("nodule", ("title",), "History", ()),
        ("nodule", ("title",), "Series Description (0008,103E)", (3,)),
    ]
    assert words("The nodules of the 12 and a ct") == {"nodule"}


# -- the library -----------------------------------------------------------------------


def test_the_library_filters_by_words_tags_status_author_and_origin(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    instances = study()
    site.store(*instances)
    uid = instances[0].StudyInstanceUID
    lung = site.make_case(uid, "Lung nodule")
    brain = site.make_case(uid, "Glioma")
    flagged = site.make_case(uid, "Flagged fracture")
    site.post(
        f"/teach/cases/{lung}",
        {
            "title": "Lung nodule",
            "findings": "upper lobe",
            "category": "TCE302",
            "level": "TCE201",
            "modalities": "CT",
            "anatomy": "lung",
            "free": "oncology",
            "status": "awaiting_pathology",
        },
    )
    store = site.client.app.state.deployment.cases.store  # type: ignore[attr-defined]
    with store.db.transaction() as cur:
        cur.execute(
            "UPDATE cases SET origin = 'kos', author = 'HOUSE' WHERE case_id = ?", (flagged,)
        )

    def found(**params: str) -> set[str]:
        page = site.client.get("/teach/cases", params=params)
        assert page.status_code == 200, page.text
        return set(re.findall(r'<a href="/teach/cases/([0-9a-f]+)">', page.text))

    assert found() == {lung, brain, flagged}
    assert found(q="upper lobe") == {lung}
    assert found(q="glioma") == {brain}
    assert found(category="TCE302") == {lung}
    assert found(level="TCE201", modality="ct", anatomy="Lung", tag="ONCOLOGY") == {lung}
    assert found(status="awaiting_pathology") == {lung}
    assert found(status="draft") == {brain, flagged}
    assert found(author=EDUCATOR) == {lung, brain}
    assert found(origin="kos") == {flagged}
    assert found(origin="api", status="draft") == {brain}
    bad = site.client.get("/teach/cases", params={"status": "lost", "origin": "fax"})
    assert bad.status_code == 400
    assert "Status: 'lost' is not one of the choices." in html.unescape(bad.text)
    assert "Origin: 'fax'" in html.unescape(bad.text)

    monkeypatch.setattr("radcase_pacs.web.teach.cases.PAGE", 2)
    first = found()
    second = found(page="2")
    assert len(first) == 2 and len(second) == 1 and first | second == {lung, brain, flagged}


# -- publication and deletion ------------------------------------------------------------


def test_publish_unpublish_and_delete_with_its_consequences_stated(site: Site) -> None:
    instances = study()
    site.store(*instances)
    case_id = site.make_case(instances[0].StudyInstanceUID, "To publish")
    store = site.client.app.state.deployment.cases.store  # type: ignore[attr-defined]
    teaching_uid = site.case(case_id)["teaching_study_instance_uid"]

    published = site.post(f"/teach/cases/{case_id}/publish", {})
    assert published.status_code == 303
    assert site.case(case_id)["status"] == "published"
    page = site.client.get(published.headers["location"]).text
    assert "Published: learners meet it" in page and "Unpublish" in page
    assert teaching_uid in store.published_study_uids("default")

    unpublished = site.post(f"/teach/cases/{case_id}/unpublish", {})
    assert unpublished.status_code == 303
    assert site.case(case_id)["status"] == "draft"
    assert teaching_uid not in store.published_study_uids("default")

    question = site.client.post(
        f"/api/cases/{case_id}/questions",
        json={"prompt": "Name it", "key": {"kind": "free_text", "accepted": ["x"]}},
        headers={"X-CSRF-Token": site.csrf()},
    )
    assert question.status_code == 201, question.text
    confirm = site.client.get(f"/teach/cases/{case_id}/delete")
    assert confirm.status_code == 200
    text = html.unescape(confirm.text)
    assert "with its 1 question." in text
    assert "Learners keep their review history of it" in text
    assert "unless another case uses them" in text
    unconfirmed = site.post(f"/teach/cases/{case_id}/delete", {})
    assert unconfirmed.status_code == 400 and "Confirm:" in unconfirmed.text
    assert site.case(case_id)["title"] == "To publish"

    deleted = site.post(f"/teach/cases/{case_id}/delete", {"confirm": "yes"})
    assert deleted.status_code == 303 and deleted.headers["location"].startswith("/teach/cases")
    gone = site.client.get(f"/teach/cases/{case_id}")
    assert gone.status_code == 404 and "Not available" in gone.text
    assert site.client.get(f"/api/cases/{case_id}/questions").status_code == 404
    actions = site.actions()
    for action in ("case.create", "case.publish", "case.unpublish", "case.delete"):
        assert action in actions, action


def test_publication_waits_for_the_burned_in_review(site: Site) -> None:
    instances = study()
    capture = make_instance(study_uid=instances[0].StudyInstanceUID, modality="OT", rows=16)
    capture.SOPClassUID = capture.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    capture.BurnedInAnnotation = "YES"
    capture.BitsStored, capture.HighBit = 16, 15
    capture.PixelData = np.full((16, 8), 1000, dtype=np.uint16).tobytes()
    site.store(*instances, capture)
    case_id = site.make_case(instances[0].StudyInstanceUID, "Held")
    editor = site.client.get(f"/teach/cases/{case_id}").text
    assert "Burned-in review (1 to review)" in editor
    assert f'href="/teach/cases/{case_id}/review"' in editor
    assert f'href="/teach/cases/{case_id}/questions"' in editor
    refused = site.post(f"/teach/cases/{case_id}/publish", {})
    assert refused.status_code == 409
    assert "Not published: 1 instance(s) may carry burned-in text" in refused.text
    assert site.case(case_id)["status"] == "draft"


# -- who may see what -----------------------------------------------------------------------


def test_learners_are_refused_every_educator_page(site: Site) -> None:
    learner = signed_in(site.client.app, "resident", PASSWORD)
    token = csrf_of(learner.get("/").text)
    for url in ("/teach/studies", "/teach/cases", "/teach/studies/1.2.3", "/teach/cases/x"):
        answer = learner.get(url)
        assert answer.status_code == 403 and "Not allowed" in answer.text, url
    posted = learner.post("/teach/cases/x/publish", data={"csrf": token})
    assert posted.status_code == 403


def test_another_institutions_studies_and_cases_are_never_shown(site: Site) -> None:
    instances = study(patient_name="SECRET^PATIENT")
    site.store(*instances)
    uid = instances[0].StudyInstanceUID
    case_id = site.make_case(uid, "Secret case title")
    other = signed_in(site.client.app, "b-teacher", PASSWORD)
    token = csrf_of(other.get("/teach/cases").text)
    for url in ("/teach/studies", "/teach/cases", "/teach/studies?name=SECRET*"):
        page = other.get(url)
        assert page.status_code == 200
        assert "SECRET, PATIENT" not in page.text and "SECRET^PATIENT" not in page.text
        assert uid not in page.text and case_id not in page.text
    for url in (
        f"/teach/studies/{uid}",
        f"/teach/cases/{case_id}",
        f"/teach/cases/{case_id}/as-learner",
        f"/teach/cases/{case_id}/delete",
    ):
        answer = other.get(url)
        assert answer.status_code == 404, url
        assert "Secret case title" not in answer.text
    for url in (f"/teach/cases/{case_id}/publish", f"/teach/cases/{case_id}/delete"):
        assert other.post(url, data={"csrf": token, "confirm": "yes"}).status_code == 404
    made = other.post(f"/teach/studies/{uid}", data={"csrf": token, "title": "x"})
    assert made.status_code == 404
    assert site.case(case_id)["status"] == "draft"
