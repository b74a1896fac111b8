"""WADO-URI (PS3.18 §9): one instance by query parameters, as DICOM or as a JPEG. Its URL is
not under the DICOMweb root by any rule, so the CLI takes it (default ``<root>/wado``)."""

from __future__ import annotations

from io import BytesIO

from PIL import Image
from pydicom import dcmread

from conformance.context import Context
from conformance.registry import check, expect

SERVICE = "wado_uri"


def get(context: Context, label: str, content_type: str) -> bytes:
    context.stored()
    one = context.corpus[label]
    params = {
        "requestType": "WADO",
        "studyUID": one.study_uid,
        "seriesUID": one.series_uid,
        "objectUID": one.sop_uid,
        "contentType": content_type,
    }
    response = context.http.get(context.wado_uri, params=params)
    expect(
        response.status_code == 200, f"contentType={content_type}: status {response.status_code}"
    )
    got = response.headers.get("content-type", "").split(";")[0].strip().lower()
    expect(got == content_type, f"Content-Type {got!r}, expected {content_type}")
    return response.content


@check(
    service=SERVICE,
    name="contentType=application/dicom returns the stored instance",
    section="PS3.18 §9 (URI Service, contentType application/dicom)",
)
def as_dicom(context: Context) -> None:
    sent = context.corpus["latin1"]
    got = dcmread(BytesIO(get(context, "latin1", "application/dicom")))
    expect(str(got.SOPInstanceUID) == sent.sop_uid, f"SOPInstanceUID {got.SOPInstanceUID}")
    expect(str(got.PatientName) == "Gérard^Hélène", f"PatientName {got.PatientName!r}")
    expect(bytes(got.PixelData) == bytes(sent.dataset.PixelData), "PixelData differs from sent")


@check(
    service=SERVICE,
    name="contentType=image/jpeg returns a JPEG of the image's size",
    section="PS3.18 §9 (URI Service, contentType image/jpeg)",
)
def as_jpeg(context: Context) -> None:
    image = Image.open(BytesIO(get(context, "ct_small", "image/jpeg")))
    image.load()
    dataset = context.corpus["ct_small"].dataset
    expect(image.format == "JPEG", f"decoded as {image.format}")
    want = (int(dataset.Columns), int(dataset.Rows))
    expect(image.size == want, f"size {image.size}, expected {want}")
