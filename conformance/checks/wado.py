"""WADO-RS retrieval of DICOM instances (PS3.18 §10.4): what comes back is what was sent."""

from __future__ import annotations

from pydicom.dataset import Dataset

from conformance.context import Context
from conformance.corpus import Instance
from conformance.registry import check, expect

SERVICE = "wado"


def same_instance(got: Dataset, sent: Instance) -> None:
    """The retrieved dataset is the sent one: same SOP Instance UID, same decoded patient
    name, same pixel data bytes (for native pixel data)."""
    expect(
        str(got.SOPInstanceUID) == sent.sop_uid,
        f"SOPInstanceUID {got.get('SOPInstanceUID')}, expected {sent.sop_uid}",
    )
    expect(
        str(got.PatientName) == str(sent.dataset.PatientName),
        f"PatientName {got.get('PatientName')!r}, expected {sent.dataset.PatientName!r}",
    )
    if "PixelData" in sent.dataset:
        expect("PixelData" in got, "PixelData missing from the retrieved instance")
        expect(
            bytes(got.PixelData) == bytes(sent.dataset.PixelData),
            f"{sent.label}: PixelData differs from what was stored",
        )


@check(
    service=SERVICE,
    name="retrieve instance as application/dicom equals what was stored",
    section="PS3.18 §10.4 (Retrieve Instance), §8.7.3 (application/dicom, default transfer syntax)",
)
def retrieve_instance(context: Context) -> None:
    context.stored()
    for label in ("utf8", "latin1", "multiframe", "ct_small"):
        sent = context.corpus[label]
        got = context.client.retrieve_instance(sent.study_uid, sent.series_uid, sent.sop_uid)
        same_instance(got, sent)


@check(
    service=SERVICE,
    name="retrieve JPEG 2000 instance in its stored transfer syntax keeps its fragments",
    section="PS3.18 §8.7.3 (transfer-syntax media type parameter)",
)
def retrieve_compressed(context: Context) -> None:
    context.stored()
    sent = context.corpus["jpeg2000"]
    syntax = str(sent.dataset.file_meta.TransferSyntaxUID)
    got = context.client.retrieve_instance(
        sent.study_uid, sent.series_uid, sent.sop_uid, media_types=(("application/dicom", syntax),)
    )
    expect(str(got.SOPInstanceUID) == sent.sop_uid, "wrong instance")
    expect(
        str(got.file_meta.TransferSyntaxUID) == syntax,
        f"transfer syntax {got.file_meta.TransferSyntaxUID}, asked for {syntax}",
    )
    expect(bytes(got.PixelData) == bytes(sent.dataset.PixelData), "encapsulated PixelData differs")


@check(
    service=SERVICE,
    name="retrieve study returns every instance of the study",
    section="PS3.18 §10.4 (Retrieve Study)",
)
def retrieve_study(context: Context) -> None:
    context.stored()
    study = context.corpus["multiframe"].study_uid
    got = context.client.retrieve_study(study)
    expected = {i.sop_uid for i in context.corpus.in_study(study)}
    uids = [str(ds.SOPInstanceUID) for ds in got]
    expect(set(uids) == expected and len(uids) == len(expected), f"expected {expected}, got {uids}")


@check(
    service=SERVICE,
    name="retrieve series returns every instance of the series",
    section="PS3.18 §10.4 (Retrieve Series)",
)
def retrieve_series(context: Context) -> None:
    context.stored()
    one = context.corpus["utf8"]
    got = context.client.retrieve_series(one.study_uid, one.series_uid)
    by_uid = {str(ds.SOPInstanceUID): ds for ds in got}
    expected = context.corpus.in_series(one.series_uid)
    expect(
        set(by_uid) == {i.sop_uid for i in expected} and len(got) == len(expected),
        f"expected {len(expected)} instances, got {sorted(by_uid)}",
    )
    for sent in expected:
        same_instance(by_uid[sent.sop_uid], sent)
