"""STOW-RS (PS3.18 §10.5): storing, and what the response says about each instance."""

from __future__ import annotations

import requests

from conformance.context import Context, json_body, multipart
from conformance.dicomjson import (
    FAILED_SOP,
    FAILURE_REASON,
    REFERENCED_SOP,
    REFERENCED_SOP_UID,
    RETRIEVE_URL,
    first,
    uids,
    values,
)
from conformance.registry import Failure, check, expect

SERVICE = "stow"


def instance_count(context: Context, sop_uid: str) -> int:
    """How many instances a QIDO-RS instance search by SOP Instance UID finds."""
    found = context.client.search_for_instances(search_filters={"SOPInstanceUID": sop_uid})
    return len(found)


@check(
    service=SERVICE,
    name="store the corpus: 200, every instance referenced with a RetrieveURL",
    section="PS3.18 §10.5.3 (Store response, ReferencedSOPSequence)",
)
def store_corpus(context: Context) -> None:
    upload = context.upload = context.store_corpus()
    expect(upload.status == 200, f"expected 200 for a valid corpus, got {upload.status}")
    failed = values(upload.body, FAILED_SOP)
    expect(not failed, f"expected no FailedSOPSequence, got {failed}")
    referenced = values(upload.body, REFERENCED_SOP)
    sent = {i.sop_uid for i in context.corpus.instances}
    got = set(uids(referenced, REFERENCED_SOP_UID))
    expect(got == sent, f"ReferencedSOPSequence names {len(got)} of {len(sent)} instances sent")
    missing = [
        first(item, REFERENCED_SOP_UID) for item in referenced if not first(item, RETRIEVE_URL)
    ]
    expect(not missing, f"ReferencedSOPSequence items without RetrieveURL: {missing}")


@check(
    service=SERVICE,
    name="storing an instance again keeps exactly one copy",
    section="PS3.18 §10.5.3 (200 stored / 202 or 409 with FailedSOPSequence)",
)
def store_duplicate(context: Context) -> None:
    context.stored()
    instance = context.corpus["utf8"]
    try:
        response = context.client.store_instances([instance.dataset])
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        expect(status == 409, f"a duplicate may be refused with 409, got {status}")
    else:
        status = context.statuses[-1]
        referenced = {
            str(i.ReferencedSOPInstanceUID) for i in response.get("ReferencedSOPSequence", [])
        }
        failed = {str(i.ReferencedSOPInstanceUID) for i in response.get("FailedSOPSequence", [])}
        expect(
            instance.sop_uid in referenced | failed,
            f"the response ({status}) names the instance in neither Referenced nor Failed SOP "
            "Sequence",
        )
    count = instance_count(context, instance.sop_uid)
    expect(count == 1, f"after storing it twice, an instance search finds {count} copies")


@check(
    service=SERVICE,
    name="a malformed part fails alone: 202, FailedSOPSequence, good part stored",
    section="PS3.18 Table 10.5.3-1 (202: some stored, failures for others; 400: none stored)",
)
def malformed_part(context: Context) -> None:
    context.stored()
    good = context.corpus.extra_instance("stow-good")
    body, content_type = multipart([good.data, b"this is not a DICOM Part 10 file"])
    response = context.http.post(
        "/studies",
        content=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )
    expect(response.status_code == 202, f"expected 202, got {response.status_code}")
    document = json_body(response)
    failed = values(document, FAILED_SOP)
    expect(len(failed) == 1, f"expected one FailedSOPSequence item, got {failed}")
    expect(
        first(failed[0], FAILURE_REASON) is not None,
        f"failed item without FailureReason: {failed[0]}",
    )
    referenced = uids(values(document, REFERENCED_SOP), REFERENCED_SOP_UID)
    expect(good.sop_uid in referenced, f"good instance not in ReferencedSOPSequence: {referenced}")
    expect(
        instance_count(context, good.sop_uid) == 1, "the good part of the request was not stored"
    )


@check(
    service=SERVICE,
    name="an instance of another study posted to /studies/{study} is refused",
    section="PS3.18 Table 10.5.1-1 (/studies/{study}: one Study Instance UID), Table 10.5.3-1",
)
def wrong_study(context: Context) -> None:
    """Table 10.5.1-1 (§10.5.1.1.1): the Study resource "stores a set of representations that
    belong to the same Study, i.e., each representation shall have the same Study Instance UID";
    Table 10.5.3-1 gives 409 for "Study Instance UID mismatch" when nothing could be stored, and
    Annex I requires the Failed SOP Sequence item of the instance that failed."""
    context.stored()
    target = context.corpus["latin1"]
    stranger = context.corpus.extra_instance("stow-stranger")
    body, content_type = multipart([stranger.data])
    response = context.http.post(
        f"/studies/{target.study_uid}",
        content=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
    )
    expect(
        response.status_code == 409, f"expected 409 (nothing stored), got {response.status_code}"
    )
    failed = uids(values(json_body(response), FAILED_SOP), REFERENCED_SOP_UID)
    expect(stranger.sop_uid in failed, f"the instance is not in FailedSOPSequence: {failed}")
    if instance_count(context, stranger.sop_uid):
        raise Failure("the instance of another study was stored anyway")
