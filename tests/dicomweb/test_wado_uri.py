"""WADO-URI (PS3.18 §9) and bad input across every picture resource: rendered, thumbnail,
frames rendered and WADO-URI never answer 5xx, and every refusal says why."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from starlette.testclient import TestClient

from tests.dicomweb.render_util import (
    decode_image,
    instance_url,
    read,
    reference,
    store,
    wado_url,
)
from tests.factories import CORPUS_DIR, make_instance, stow, to_bytes

EXPLICIT_LE = "1.2.840.10008.1.2.1"
JPEG_2000 = "1.2.840.10008.1.2.4.91"


def test_cornerstone_wadouri_request_gets_the_stored_file_byte_for_byte(
    dicomweb_client: TestClient,
) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "CT_small.dcm")  # stored in Explicit VR Little Endian
    response = dicomweb_client.get(wado_url(ds, contentType="application/dicom"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom"
    assert response.content == (CORPUS_DIR / "CT_small.dcm").read_bytes()
    assert "immutable" in response.headers["cache-control"]
    again = dicomweb_client.get(
        wado_url(ds, contentType="application/dicom"),
        headers={"If-None-Match": response.headers["etag"]},
    )
    assert again.status_code == 304


def test_dicom_defaults_to_explicit_vr_little_endian_and_honours_transfer_syntax(
    dicomweb_client: TestClient,
) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "JPEG2000.dcm")
    default = dicomweb_client.get(wado_url(ds, contentType="application/dicom"))
    assert default.status_code == 200
    transcoded = read(default.content)
    assert transcoded.file_meta.TransferSyntaxUID == EXPLICIT_LE  # PS3.18 §9.4.2.4
    assert transcoded.SOPInstanceUID == ds.SOPInstanceUID
    assert np.array_equal(transcoded.pixel_array, ds.pixel_array)
    stored = dicomweb_client.get(
        wado_url(ds, contentType="application/dicom", transferSyntax=JPEG_2000)
    )
    assert stored.content == (CORPUS_DIR / "JPEG2000.dcm").read_bytes()
    refused = dicomweb_client.get(
        wado_url(ds, contentType="application/dicom", transferSyntax="1.2.840.10008.1.2.4.50")
    )
    assert refused.status_code == 406
    assert EXPLICIT_LE in refused.text


def test_a_single_frame_image_defaults_to_jpeg_and_png_matches_the_reference(
    dicomweb_client: TestClient,
) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "MR_small.dcm")
    default = dicomweb_client.get(wado_url(ds))
    assert default.status_code == 200
    assert default.headers["content-type"] == "image/jpeg"
    png = dicomweb_client.get(wado_url(ds, contentType="image/png"))
    assert png.headers["content-type"] == "image/png"
    assert np.array_equal(decode_image(png.content), reference(ds, 0))
    rendered = dicomweb_client.get(instance_url(ds) + "/rendered", headers={"Accept": "image/png"})
    assert png.content == rendered.content
    gif = dicomweb_client.get(wado_url(ds, contentType="image/gif"))
    assert gif.headers["content-type"] == "image/gif"


def test_frame_number_of_a_multi_frame_instance(dicomweb_client: TestClient) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "examples_ybr_color.dcm")
    assert dicomweb_client.get(wado_url(ds)).headers["content-type"] == "application/dicom"
    frame = dicomweb_client.get(wado_url(ds, contentType="image/png", frameNumber="7"))
    assert frame.status_code == 200
    assert np.array_equal(decode_image(frame.content), reference(ds, 6))
    jpeg = dicomweb_client.get(wado_url(ds, frameNumber="7"))  # a single frame: the image default
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert (
        dicomweb_client.get(wado_url(ds, contentType="image/png", frameNumber="31")).status_code
        == 400
    )


def test_rows_columns_region_and_window(dicomweb_client: TestClient) -> None:
    ds = store(dicomweb_client, CORPUS_DIR / "CT_small.dcm")  # 128 x 128

    def image(**params: str) -> np.ndarray:
        response = dicomweb_client.get(wado_url(ds, contentType="image/png", **params))
        assert response.status_code == 200, response.text
        return decode_image(response.content)

    assert image(rows="64").shape == (64, 64)
    assert image(columns="32").shape == (32, 32)
    assert image(rows="100", columns="50").shape == (50, 50)
    assert np.array_equal(image(region="0.25,0.5,0.75,1.0"), reference(ds, 0)[64:, 32:96])
    windowed = image(windowCenter="40", windowWidth="400")
    assert np.array_equal(windowed, reference(ds, 0, (40.0, 400.0, "LINEAR")))
    assert not np.array_equal(windowed, reference(ds, 0))
    assert image(annotation="patient", charset="UTF-8", imageQuality="80").shape == (128, 128)


def test_an_instance_without_pixel_data_is_dicom_by_default(dicomweb_client: TestClient) -> None:
    report = make_instance()
    del report.PixelData
    stow(dicomweb_client, [to_bytes(report)])
    assert dicomweb_client.get(wado_url(report)).headers["content-type"] == "application/dicom"
    response = dicomweb_client.get(wado_url(report, contentType="image/jpeg"))
    assert response.status_code == 404
    assert "no pixel data" in response.text


def test_unknown_uids_are_404(dicomweb_client: TestClient) -> None:
    response = dicomweb_client.get(
        "/dicomweb/wado?requestType=WADO&studyUID=1.2.3&seriesUID=1.2.4&objectUID=1.2.5"
    )
    assert response.status_code == 404
    assert response.text


# -- bad input ---------------------------------------------------------------------------------

RENDERED = "{instance}/rendered"
FRAMES = "{instance}/frames/{frames}/rendered"
THUMBNAIL = "{instance}/thumbnail"
STUDY_THUMBNAIL = "/dicomweb/studies/{study}/thumbnail"
WADO = "{wado}"

BAD = [
    (RENDERED + "?window=abc", "window"),
    (RENDERED + "?window=40", "window"),
    (RENDERED + "?window=40,400", "window"),
    (RENDERED + "?window=40,0,linear", "window"),
    (RENDERED + "?window=40,-5,linear", "window"),
    (RENDERED + "?window=40,0.5,linear", "window"),
    (RENDERED + "?window=40,0,sigmoid", "window"),
    (RENDERED + "?window=40,400,cubic", "window"),
    (RENDERED + "?window=nan,400,linear", "window"),
    (RENDERED + "?window=1e999,400,linear", "window"),
    (RENDERED + "?window=40,400,linear&window=1,2,linear", "window"),
    (RENDERED + "?viewport=-1,10", "viewport"),
    (RENDERED + "?viewport=0,10", "viewport"),
    (RENDERED + "?viewport=10", "viewport"),
    (RENDERED + "?viewport=a,b", "viewport"),
    (RENDERED + "?viewport=99999,10", "viewport"),
    (RENDERED + "?viewport=10,10,1,2,3", "viewport"),
    (RENDERED + "?viewport=10,10,-1,0,5,5", "viewport"),
    (RENDERED + "?viewport=10,10,0,0,0,5", "viewport"),
    (RENDERED + "?viewport=10,10,120,120,50,50", "viewport"),
    (RENDERED + "?viewport=10,10,500,0,,", "viewport"),
    (RENDERED + "?quality=0", "quality"),
    (RENDERED + "?quality=101", "quality"),
    (RENDERED + "?quality=abc", "quality"),
    (RENDERED + "?quality=", "quality"),
    (RENDERED + "?annotation=everything", "annotation"),
    (FRAMES.replace("{frames}", "0"), "frame"),
    (FRAMES.replace("{frames}", "2"), "frame"),
    (FRAMES.replace("{frames}", "x"), "frame"),
    (FRAMES.replace("{frames}", "1") + "?window=40,abc,linear", "window"),
    (THUMBNAIL + "?viewport=-1,10", "viewport"),
    (THUMBNAIL + "?viewport=10,10,0,0,5,5", "viewport"),
    (THUMBNAIL + "?quality=abc", "quality"),
    (STUDY_THUMBNAIL + "?viewport=x,y", "viewport"),
    ("{instance}/frames/0/thumbnail", "frame"),
    ("{instance}/frames/9/thumbnail", "frame"),
    (WADO + "&contentType=image/png&rows=-1", "rows"),
    (WADO + "&contentType=image/png&rows=abc", "rows"),
    (WADO + "&contentType=image/png&columns=0", "columns"),
    (WADO + "&contentType=image/png&region=0,0,2,1", "region"),
    (WADO + "&contentType=image/png&region=0.5,0,0.5,1", "region"),
    (WADO + "&contentType=image/png&region=a,b,c,d", "region"),
    (WADO + "&contentType=image/png&region=0,0,1", "region"),
    (WADO + "&contentType=image/png&windowCenter=40", "window"),
    (WADO + "&contentType=image/png&windowCenter=40&windowWidth=0", "windowWidth"),
    (WADO + "&contentType=image/png&windowCenter=x&windowWidth=10", "windowCenter"),
    (WADO + "&contentType=image/png&imageQuality=0", "imageQuality"),
    (WADO + "&contentType=image/jpeg&imageQuality=abc", "imageQuality"),
    (WADO + "&contentType=image/png&frameNumber=1", "frameNumber"),
    (WADO + "&contentType=image/png&frameNumber=0", "frameNumber"),
    (WADO + "&contentType=image/png&annotation=bogus", "annotation"),
    (WADO + "&contentType=application/dicom&rows=10", "rows"),
    (WADO + "&contentType=application/dicom&transferSyntax=banana", "transferSyntax"),
    (WADO + "&contentType=image/png&transferSyntax=1.2.840.10008.1.2.1", "transferSyntax"),
    (WADO + "&contentType=video/mpeg", "contentType"),
    (WADO + "&contentType=;;;", "contentType"),
    (WADO + "&anonymize=yes", "anonymize"),
    (WADO + "&presentationUID=1.2.3", "presentationUID"),
    ("/dicomweb/wado?requestType=WADO&studyUID={study}&seriesUID={series}", "objectUID"),
    ("/dicomweb/wado?studyUID={study}&seriesUID={series}&objectUID={sop}", "requestType"),
    ("/dicomweb/wado?requestType=WADO&studyUID=x&seriesUID={series}&objectUID={sop}", "studyUID"),
    ("/dicomweb/wado?requestType=RSS&studyUID={study}&seriesUID={series}&objectUID={sop}", "WADO"),
    (RENDERED + "?accept=application/dicom", "Not Acceptable"),
    (THUMBNAIL + "?accept=multipart/related;type=image/jpeg", "Not Acceptable"),
]


@pytest.fixture
def ct(dicomweb_client: TestClient) -> Dataset:
    return store(dicomweb_client, CORPUS_DIR / "CT_small.dcm")


@pytest.mark.parametrize(("template", "named"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_a_4xx_that_says_what_was_wrong(
    dicomweb_client: TestClient, ct: Dataset, template: str, named: str
) -> None:
    url = template.format(
        instance=instance_url(ct),
        study=ct.StudyInstanceUID,
        series=ct.SeriesInstanceUID,
        sop=ct.SOPInstanceUID,
        wado=wado_url(ct),
    )
    response = dicomweb_client.get(url)
    assert response.status_code in (400, 404, 406), (response.status_code, response.text)
    assert named in response.text
