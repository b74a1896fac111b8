"""QIDO-RS (PS3.18 §10.6): matching (PS3.4 C.2.2.2), paging, includefield, the JSON answer.

Searches are confined to the corpus by its per-run Patient ID prefix (``CF<token>*``), so the
expected result sets are exact even on a server full of other data.
"""

from __future__ import annotations

from typing import Any

from pydicom.uid import generate_uid

from conformance.context import Context, json_body
from conformance.dicomjson import (
    MODALITIES,
    SERIES_UID,
    SOP_CLASS,
    SOP_UID,
    STUDY_UID,
    Document,
    alphabetic,
    first,
    uids,
    values,
)
from conformance.registry import check, expect

SERVICE = "qido"
WILDCARD_SECTION = "PS3.18 §8.3.4.1 / PS3.4 C.2.2.2.4 (Wild Card Matching of LO, SH; PN excepted)"


def ours(context: Context) -> dict[str, str]:
    return {"PatientID": f"{context.corpus.patient_id_prefix}*"}


def study_search(context: Context, **filters: Any) -> list[Document]:
    context.stored()
    fields = filters.pop("fields", None)
    return list(context.client.search_for_studies(search_filters=filters, fields=fields))


def study_set(documents: list[Document]) -> set[str]:
    return set(uids(documents, STUDY_UID))


def expect_studies(found: list[Document], expected: set[str], query: str) -> None:
    got = study_set(found)
    expect(
        got == expected and len(found) == len(expected),
        f"{query}: expected studies {sorted(expected)}, got {sorted(got)} ({len(found)} results)",
    )


@check(
    service=SERVICE,
    name="study search by PatientID",
    section="PS3.18 §10.6, §8.3.4.1 / PS3.4 C.2.2.2.1 (single value matching)",
)
def by_patient_id(context: Context) -> None:
    instance = context.corpus["utf8"]
    found = study_search(context, PatientID=str(instance.dataset.PatientID))
    expect_studies(found, {instance.study_uid}, "PatientID")


# Wild Card Matching is tested on LO and SH attributes (Patient ID, Accession Number: Required
# Keys of PS3.4 Table C.6-5), where PS3.4 C.2.2.2.4 says "*" and "?" shall match; for PN
# attributes (Patient's Name) it leaves Wild Card Matching implementation dependent. The suite
# sends "*" and "?" percent-encoded, as PS3.18 §8.3.4.1 requires of characters that are not
# qp-chars. Accession Number is only used on studies whose every instance the suite made itself
# (the pydicom files keep their own).


@check(
    service=SERVICE,
    name="study search with wildcard '*' (LO PatientID, SH AccessionNumber)",
    section=WILDCARD_SECTION,
)
def wildcard_star(context: Context) -> None:
    corpus = context.corpus
    token = corpus.token
    cases = {
        "PatientID": (f"*{token}-2", corpus["latin1"].study_uid),
        "AccessionNumber": (f"*{token}-1", corpus["utf8"].study_uid),
    }
    for key, (value, expected) in cases.items():
        expect_studies(study_search(context, **{key: value}), {expected}, f"{key}={value}")
    value = f"C*{token}-4"
    found = study_search(context, PatientID=value)
    expect_studies(found, {corpus["jpeg2000"].study_uid}, f"PatientID={value}")


@check(
    service=SERVICE,
    name="study search with wildcard '?' (one character)",
    section=WILDCARD_SECTION,
)
def wildcard_question_mark(context: Context) -> None:
    corpus = context.corpus
    token = corpus.token
    value = f"CF{token}-?"
    expect_studies(study_search(context, PatientID=value), set(corpus.study_uids()), value)
    value = f"?F{token}-3"
    found = study_search(context, PatientID=value)
    expect_studies(found, {corpus["multiframe"].study_uid}, f"PatientID={value}")
    value = f"CF{token[:-1]}?-2"
    found = study_search(context, AccessionNumber=value)
    expect_studies(found, {corpus["latin1"].study_uid}, f"AccessionNumber={value}")


@check(
    service=SERVICE,
    name="study search by StudyDate range (closed and open-ended)",
    section="PS3.18 §8.3.4.1 / PS3.4 C.2.2.2.5 (range matching)",
)
def date_range(context: Context) -> None:
    corpus = context.corpus
    cases = {
        "20150101-20181231": {corpus["utf8"].study_uid, corpus["latin1"].study_uid},
        "-20151231": {corpus["utf8"].study_uid, corpus["rtplan"].study_uid},
        "20210101-": {corpus["multiframe"].study_uid, corpus["jpeg2000"].study_uid},
        "20211105": {corpus["multiframe"].study_uid},
    }
    for text, expected in cases.items():
        found = study_search(context, StudyDate=text, **ours(context))
        expect_studies(found, expected, f"StudyDate={text}")


@check(
    service=SERVICE,
    name="study search by ModalitiesInStudy",
    section="PS3.18 §10.6 (study-level matching) / PS3.4 C.6.2.1 (Study Root, study keys)",
)
def modalities_in_study(context: Context) -> None:
    corpus = context.corpus
    found = study_search(context, ModalitiesInStudy="CT", **ours(context))
    expected = {uid for uid in corpus.study_uids() if "CT" in corpus.modalities(uid)}
    expect_studies(found, expected, "ModalitiesInStudy=CT")
    for document in found:
        uid = first(document, STUDY_UID)
        got = set(values(document, MODALITIES))
        want = corpus.modalities(uid)
        expect(
            got == want, f"study {uid}: ModalitiesInStudy {sorted(got)}, expected {sorted(want)}"
        )


@check(
    service=SERVICE,
    name="limit and offset page through the matches",
    section="PS3.18 §8.3.4.4 (Response Pagination)",
)
def paging(context: Context) -> None:
    everything = study_set(study_search(context, **ours(context)))
    expected = set(context.corpus.study_uids())
    expect(
        everything == expected,
        f"all corpus studies: expected {len(expected)}, got {len(everything)}",
    )
    pages: list[set[str]] = []
    for offset in range(0, len(expected), 2):
        found = context.client.search_for_studies(
            search_filters=ours(context), limit=2, offset=offset
        )
        expect(
            len(found) == min(2, len(expected) - offset),
            f"offset={offset} limit=2: {len(found)} results",
        )
        pages.append(study_set(found))
    union = set().union(*pages)
    expect(
        union == expected and sum(map(len, pages)) == len(expected),
        f"pages overlap or miss studies: {[sorted(p) for p in pages]}",
    )


@check(
    service=SERVICE,
    name="includefield=all and includefield=<tag> return StudyDescription",
    section="PS3.18 §8.3.4.3, §10.6.3.3 (includefield=all: every supported Optional Key)",
)
def includefield(context: Context) -> None:
    instance = context.corpus["latin1"]
    description = str(instance.dataset.StudyDescription)
    for field in ("all", "00081030", "StudyDescription"):
        found = study_search(context, PatientID=str(instance.dataset.PatientID), fields=[field])
        expect(len(found) == 1, f"includefield={field}: {len(found)} results, expected 1")
        got = first(found[0], "00081030")
        expect(
            got == description,
            f"includefield={field}: StudyDescription {got!r}, expected {description!r}",
        )


@check(
    service=SERVICE,
    name="series search within a study",
    section="PS3.18 §10.6 (/studies/{study}/series)",
)
def series_in_study(context: Context) -> None:
    context.stored()
    corpus = context.corpus
    study = corpus["multiframe"].study_uid
    found = context.client.search_for_series(study_instance_uid=study)
    expected = {i.series_uid: str(i.dataset.Modality) for i in corpus.in_study(study)}
    got = {first(d, SERIES_UID): first(d, "00080060") for d in found}
    expect(
        got == expected and len(found) == len(expected), f"expected series {expected}, got {got}"
    )


@check(
    service=SERVICE,
    name="instance search within a series",
    section="PS3.18 §10.6 (/studies/{study}/series/{series}/instances)",
)
def instances_in_series(context: Context) -> None:
    context.stored()
    one = context.corpus["utf8"]
    found = context.client.search_for_instances(
        study_instance_uid=one.study_uid, series_instance_uid=one.series_uid
    )
    expected = {i.sop_uid: i.sop_class for i in context.corpus.in_series(one.series_uid)}
    got = {first(d, SOP_UID): first(d, SOP_CLASS) for d in found}
    expect(got == expected and len(found) == len(expected), f"expected {expected}, got {got}")


@check(
    service=SERVICE,
    name="non-ASCII names (UTF-8 and Latin-1 sources) come back as UTF-8 JSON",
    section="PS3.18 §8.7.3 (application/dicom+json) and Annex F.2 (UTF-8, PN Alphabetic)",
)
def non_ascii_names(context: Context) -> None:
    context.stored()
    for label in ("utf8", "latin1"):
        dataset = context.corpus[label].dataset
        response = context.http.get(
            "/studies",
            params={"PatientID": str(dataset.PatientID)},
            headers={"Accept": "application/dicom+json"},
        )
        expect(response.status_code == 200, f"{label}: status {response.status_code}")
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        expect(media == "application/dicom+json", f"{label}: Content-Type {media!r}")
        found = json_body(response)
        expect(len(found) == 1, f"{label}: {len(found)} results")
        got = alphabetic(found[0])
        want = str(dataset.PatientName)
        expect(got == want, f"{label}: PatientName Alphabetic {got!r}, expected {want!r}")


@check(
    service=SERVICE,
    name="a search matching nothing: 200 with [] or 204",
    section="PS3.18 §8.3.4.4.1 (no matches: 204 No Content; 2026a Table 11.9.3-1 words it 200 [])",
)
def no_match(context: Context) -> None:
    """§8.3.4.4.1 (Paging Behavior) answers a search without matches with 204 and an empty
    payload; later editions answer one with 200 and an empty list (the UPS Search table of
    PS3.18 2026a, Table 11.9.3-1, says so in as many words), so either passes."""
    response = context.http.get(
        "/studies",
        params={"StudyInstanceUID": generate_uid()},
        headers={"Accept": "application/dicom+json"},
    )
    if response.status_code == 204:
        expect(not response.content, f"204 with a body: {response.content[:80]!r}")
        return
    expect(response.status_code == 200, f"expected 200 or 204, got {response.status_code}")
    expect(json_body(response) == [], f"expected [], got {response.text[:200]!r}")


@check(
    service=SERVICE,
    name="NumberOfStudyRelatedSeries and NumberOfStudyRelatedInstances",
    section="PS3.18 §8.3.4.3 (includefield) / PS3.4 C.3.4 (additional study-level keys)",
)
def related_counts(context: Context) -> None:
    corpus = context.corpus
    for label in ("utf8", "multiframe"):
        one = corpus[label]
        found = study_search(
            context,
            StudyInstanceUID=one.study_uid,
            fields=["NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"],
        )
        expect(len(found) == 1, f"{label}: {len(found)} results")
        instances = corpus.in_study(one.study_uid)
        series = {i.series_uid for i in instances}
        got = (first(found[0], "00201206"), first(found[0], "00201208"))
        want = (len(series), len(instances))
        expect(got == want, f"study of {label}: (series, instances) {got}, expected {want}")
