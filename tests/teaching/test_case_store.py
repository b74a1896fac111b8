"""The case store's contract on SQLite and PostgreSQL: one SQL text, the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage.urls import open_database
from teaching.cases.models import CaseStatus, PixelReview
from teaching.cases.store import CaseFilter, CaseStore, NewCase, TeachingInstance


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CaseStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'teaching.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    case_store = CaseStore(open_database(url))
    case_store.open()
    yield case_store
    case_store.close()


def instance(sop: str, review: PixelReview = PixelReview.NOT_NEEDED) -> TeachingInstance:
    return TeachingInstance(
        sop_uid=sop,
        study_uid="2.25.1",
        series_uid="2.25.2",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        burned_in=review is PixelReview.PENDING,
        reasons=("because",) if review is PixelReview.PENDING else (),
        review=review,
        pending_key="_pending/default/x.dcm" if review is PixelReview.PENDING else None,
    )


def new_case(case_id: str, tenant: str = "default", **content: object) -> NewCase:
    return NewCase(
        tenant=tenant,
        case_id=case_id,
        content={"title": case_id, **content},
        status=CaseStatus.DRAFT,
        author="educator",
        note="",
        origin="api",
        source_study_uid="1.2.3",
        teaching_study_uid="2.25.1",
        created_at=datetime.now(UTC),
    )


def test_a_case_reads_back_with_its_instances_and_uid_pairs(store: CaseStore) -> None:
    store.insert_case(
        new_case("c1", findings="Ünïcode ✓"),
        [instance("2.25.10"), instance("2.25.11", PixelReview.PENDING)],
        [("1.2.3", "2.25.1"), ("1.2.3.10", "2.25.10")],
    )
    case = store.get("default", "c1")
    assert case is not None and case.findings == "Ünïcode ✓"
    assert [i.sop_instance_uid for i in case.instances] == ["2.25.10", "2.25.11"]
    assert case.pending_reviews == 1
    assert store.teaching_uid("default", "1.2.3.10") == "2.25.10"
    assert store.original_uid("default", "2.25.10") == "1.2.3.10"
    assert store.teaching_uid("other", "1.2.3.10") is None
    assert store.get("other", "c1") is None


def test_the_uid_map_keeps_the_first_mapping(store: CaseStore) -> None:
    store.insert_case(new_case("c1"), [], [("1.2.3", "2.25.1")])
    store.insert_case(new_case("c2"), [], [("1.2.3", "2.25.1")])
    assert store.teaching_uid("default", "1.2.3") == "2.25.1"


def test_search_matches_words_literally_and_is_scoped_by_tenant(store: CaseStore) -> None:
    store.insert_case(new_case("c1", history="50% stenosis_left"), [], [])
    store.insert_case(new_case("c2", history="5 stenosis left"), [], [])
    store.insert_case(new_case("c3", "other", history="50% stenosis_left"), [], [])

    def found(text: str) -> set[str]:
        return {c.id for c in store.search("default", CaseFilter(text=text), 10, 0)[1]}

    assert found("50%") == {"c1"}
    assert found("stenosis_left") == {"c1"}
    assert found("STENOSIS") == {"c1", "c2"}
    total, _ = store.search("other", CaseFilter(), 10, 0)
    assert total == 1


def test_deleting_returns_only_instances_no_other_case_uses(store: CaseStore) -> None:
    store.insert_case(new_case("c1"), [instance("2.25.10"), instance("2.25.11")], [])
    store.insert_case(new_case("c2"), [instance("2.25.11")], [])
    unused = store.delete("default", "c1")
    assert unused is not None and [i.sop_uid for i in unused] == ["2.25.10"]
    assert store.teaching_instance("default", "2.25.11") is not None
    assert store.teaching_instance("default", "2.25.10") is None
    assert store.delete("default", "c1") is None


def test_a_review_decision_is_kept(store: CaseStore) -> None:
    store.insert_case(new_case("c1"), [instance("2.25.10", PixelReview.PENDING)], [])
    store.set_review("default", "2.25.10", PixelReview.BLANKED)
    got = store.instance("default", "c1", "2.25.10")
    assert got is not None and got.review is PixelReview.BLANKED and got.pending_key is None


def test_concurrent_first_uses_agree_on_one_secret(store: CaseStore, tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: store.secret(), range(16)))
    assert len(secrets) == 1 and len(secrets.pop()) == 64
