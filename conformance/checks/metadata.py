"""WADO-RS metadata (PS3.18 §10.4, Annex F): DICOM JSON per instance, bulk data by reference
or inline, and a BulkDataURI that actually yields the bulk data."""

from __future__ import annotations

import base64
from urllib.parse import urljoin

from conformance.context import Context
from conformance.dicomjson import (
    PIXEL_DATA,
    SERIES_UID,
    SOP_CLASS,
    SOP_UID,
    STUDY_UID,
    Document,
    alphabetic,
    first,
)
from conformance.registry import Failure, check, expect

SERVICE = "metadata"
OCTET_STREAM = "application/octet-stream"


def check_documents(context: Context, documents: list[Document], sop_uids: set[str]) -> None:
    by_uid = {first(d, SOP_UID): d for d in documents}
    expect(
        set(by_uid) == sop_uids and len(documents) == len(sop_uids),
        f"expected metadata of {sorted(sop_uids)}, got {sorted(map(str, by_uid))}",
    )
    for uid, document in by_uid.items():
        sent = next(i for i in context.corpus.instances if i.sop_uid == uid)
        for tag, want in (
            (STUDY_UID, sent.study_uid),
            (SERIES_UID, sent.series_uid),
            (SOP_CLASS, sent.sop_class),
        ):
            got = first(document, tag)
            expect(got == want, f"{sent.label}: {tag} is {got!r}, expected {want!r}")
        if "PixelData" not in sent.dataset:
            continue
        pixel = document.get(PIXEL_DATA)
        if not isinstance(pixel, dict):
            raise Failure(f"{sent.label}: PixelData (7FE00010) missing")
        expect(
            "BulkDataURI" in pixel or "InlineBinary" in pixel,
            f"{sent.label}: PixelData has neither BulkDataURI nor InlineBinary: {list(pixel)}",
        )


@check(
    service=SERVICE,
    name="study metadata: one JSON object per instance, UIDs and bulk data reference",
    section="PS3.18 §10.4 (metadata resources), Annex F.2 (F.2.6 BulkDataURI, F.2.7 InlineBinary)",
)
def study_metadata(context: Context) -> None:
    context.stored()
    study = context.corpus["multiframe"].study_uid
    documents = context.client.retrieve_study_metadata(study)
    check_documents(context, documents, {i.sop_uid for i in context.corpus.in_study(study)})


@check(
    service=SERVICE,
    name="series metadata, with the UTF-8 patient name",
    section="PS3.18 §10.4 (metadata resources), Annex F.2 (PN Alphabetic)",
)
def series_metadata(context: Context) -> None:
    context.stored()
    one = context.corpus["utf8"]
    documents = context.client.retrieve_series_metadata(one.study_uid, one.series_uid)
    check_documents(
        context, documents, {i.sop_uid for i in context.corpus.in_series(one.series_uid)}
    )
    for document in documents:
        got = alphabetic(document)
        expect(got == "Müller^Jürgen", f"PatientName Alphabetic {got!r}")


@check(
    service=SERVICE,
    name="PixelData's BulkDataURI (or InlineBinary) yields the pixel bytes sent",
    section="PS3.18 §10.4, Table 10.4.4-1 (bulkdata: multipart octet-stream, Required), F.2.6",
)
def bulk_data(context: Context) -> None:
    """The BulkDataURI is fetched as multipart/related; type="application/octet-stream", the
    media type Table 10.4.4-1 requires of every origin server for Bulkdata Resources. Not with
    dicomweb-client's default, type="*/*": the DICOM multipart grammar (§8.7.3.5.1) names no
    such type, and a server that does not read it as a wildcard may answer 406 (Table 10.4.3-1),
    which would fail this check for something other than what it tests."""
    context.stored()
    sent = context.corpus["utf8"]
    documents = context.client.retrieve_instance_metadata(
        sent.study_uid, sent.series_uid, sent.sop_uid
    )
    pixel = documents.get(PIXEL_DATA) if isinstance(documents, dict) else None
    if not isinstance(pixel, dict):
        raise Failure("PixelData (7FE00010) missing from instance metadata")
    want = bytes(sent.dataset.PixelData)
    if "InlineBinary" in pixel:
        got = base64.b64decode(pixel["InlineBinary"])
    elif "BulkDataURI" in pixel:
        url = urljoin(context.base + "/", pixel["BulkDataURI"])
        parts = context.client.retrieve_bulkdata(url, media_types=(OCTET_STREAM,))
        expect(len(parts) == 1, f"{url}: {len(parts)} parts, expected 1")
        got = parts[0]
    else:
        raise Failure(f"PixelData has neither BulkDataURI nor InlineBinary: {list(pixel)}")
    expect(got == want, f"bulk data: {len(got)} bytes differing from the {len(want)} sent")
