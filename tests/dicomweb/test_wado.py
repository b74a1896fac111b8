"""WADO-RS: instances, frames, bulk data and metadata through HTTP (PS3.18 §10.4)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_frames
from starlette.testclient import TestClient

from tests.dicomweb.multipart_util import split_multipart
from tests.factories import CORPUS_DIR, make_instance, stow, to_bytes

pytestmark = pytest.mark.backends

ANY_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def _store_file(dicomweb_client: TestClient, name: str) -> pydicom.Dataset:
    data = (CORPUS_DIR / name).read_bytes()
    assert stow(dicomweb_client, [data]).status_code in (200, 202)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


def _instance_url(ds: pydicom.Dataset) -> str:
    return (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )


def test_study_retrieval_returns_every_instance_in_one_multipart_body(
    dicomweb_client: TestClient,
) -> None:
    study = "1.2.826.0.1.3680043.8.498.1"
    instances = [make_instance(study_uid=study, instance_number=n) for n in (1, 2, 3)]
    stow(dicomweb_client, [to_bytes(ds) for ds in instances])
    response = dicomweb_client.get(f"/dicomweb/studies/{study}", headers={"Accept": ANY_DICOM})
    assert response.status_code == 200
    parts = split_multipart(response)
    assert sorted(p.body for p in parts) == sorted(to_bytes(ds) for ds in instances)
    assert all(p.headers["content-type"].startswith("application/dicom") for p in parts)


def test_missing_accept_header_serves_the_stored_bytes(dicomweb_client: TestClient) -> None:
    ds = _store_file(dicomweb_client, "CT_small.dcm")
    response = dicomweb_client.get(_instance_url(ds), headers={"Accept": "*/*"})
    assert response.status_code == 200
    (part,) = split_multipart(response)
    assert part.body == (CORPUS_DIR / "CT_small.dcm").read_bytes()


def test_accept_with_several_ranges_and_q_values_picks_the_best_one_we_can_serve(
    dicomweb_client: TestClient,
) -> None:
    ds = _store_file(dicomweb_client, "JPEG2000.dcm")
    accept = (
        'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50;'
        " q=0.9, multipart/related; type=application/dicom; transfer-syntax=*; q=0.5"
    )
    response = dicomweb_client.get(_instance_url(ds), headers={"Accept": accept})
    assert response.status_code == 200
    (part,) = split_multipart(response)
    assert "transfer-syntax=1.2.840.10008.1.2.4.91" in part.headers["content-type"]


def test_compressed_instance_asked_as_explicit_little_endian_is_decompressed(
    dicomweb_client: TestClient,
) -> None:
    ds = _store_file(dicomweb_client, "JPEG2000.dcm")
    accept = f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}'
    response = dicomweb_client.get(_instance_url(ds), headers={"Accept": accept})
    assert response.status_code == 200
    (part,) = split_multipart(response)
    decoded = pydicom.dcmread(io.BytesIO(part.body))
    assert decoded.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert np.array_equal(decoded.pixel_array, ds.pixel_array)


def test_a_syntax_we_cannot_produce_is_406(dicomweb_client: TestClient) -> None:
    ds = _store_file(dicomweb_client, "CT_small.dcm")
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    response = dicomweb_client.get(_instance_url(ds), headers={"Accept": accept})
    assert response.status_code == 406
    assert "1.2.840.10008.1.2.1" in response.text


def test_single_part_application_dicom_is_served_for_one_instance(
    dicomweb_client: TestClient,
) -> None:
    ds = _store_file(dicomweb_client, "MR_small.dcm")
    response = dicomweb_client.get(
        _instance_url(ds), headers={"Accept": "application/dicom; transfer-syntax=*"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/dicom")
    assert response.content == (CORPUS_DIR / "MR_small.dcm").read_bytes()
    assert "immutable" in response.headers["cache-control"]


def test_native_frames_are_octet_stream_slices_of_the_pixel_data(
    dicomweb_client: TestClient,
) -> None:
    ds = make_instance(rows=4, columns=6, frames=5)
    stow(dicomweb_client, [to_bytes(ds)])
    response = dicomweb_client.get(
        _instance_url(ds) + "/frames/2,5,1",
        headers={"Accept": "multipart/related; type=application/octet-stream"},
    )
    assert response.status_code == 200
    size = 4 * 6 * 2
    parts = split_multipart(response)
    assert [p.body for p in parts] == [
        ds.PixelData[size : 2 * size],
        ds.PixelData[4 * size :],
        ds.PixelData[:size],
    ]
    assert parts[0].headers["content-type"] == (
        f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    )
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("JPEG2000.dcm", "image/jp2"),
        ("SC_rgb_rle_2frame.dcm", "image/dicom-rle"),
        ("examples_ybr_color.dcm", "image/jpeg"),
        ("MR_small_jpeg_ls_lossless.dcm", "image/jls"),
    ],
)
def test_encapsulated_frames_come_in_their_own_media_type_or_as_ohif_asks(
    dicomweb_client: TestClient, name: str, media_type: str
) -> None:
    ds = _store_file(dicomweb_client, name)
    count = int(ds.get("NumberOfFrames", 1) or 1)
    expected = list(generate_frames(ds.PixelData, number_of_frames=count))
    frames = ",".join(str(n) for n in range(1, count + 1))
    syntax = str(ds.file_meta.TransferSyntaxUID)
    own = dicomweb_client.get(
        _instance_url(ds) + f"/frames/{frames}",
        headers={"Accept": f'multipart/related; type="{media_type}"; transfer-syntax={syntax}'},
    )
    assert own.status_code == 200
    parts = split_multipart(own)
    assert [p.body for p in parts] == expected
    assert parts[0].headers["content-type"] == f"{media_type}; transfer-syntax={syntax}"
    ohif = dicomweb_client.get(
        _instance_url(ds) + f"/frames/{frames}", headers={"Accept": OHIF_FRAMES}
    )
    assert ohif.status_code == 200
    assert [p.body for p in split_multipart(ohif)] == expected


def test_encapsulated_frames_asked_as_uncompressed_octet_stream_are_decompressed(
    dicomweb_client: TestClient,
) -> None:
    ds = _store_file(dicomweb_client, "JPEG2000.dcm")
    octet = "application/octet-stream"
    response = dicomweb_client.get(
        _instance_url(ds) + "/frames/1",
        headers={"Accept": "multipart/related; type=application/octet-stream"},
    )
    assert response.status_code == 200
    (part,) = split_multipart(response)
    assert part.headers["content-type"] == f"{octet}; transfer-syntax={EXPLICIT_LE}"
    assert np.array_equal(np.frombuffer(part.body, "<i2").reshape(1024, 256), ds.pixel_array)


def test_encapsulated_frames_that_do_not_decode_are_406_saying_why(
    dicomweb_client: TestClient,
) -> None:
    ds = _store_file(dicomweb_client, "JPEG-lossy.dcm")
    response = dicomweb_client.get(
        _instance_url(ds) + "/frames/1",
        headers={"Accept": "multipart/related; type=application/octet-stream"},
    )
    assert response.status_code == 406
    assert "cannot be decoded" in response.text and "transfer-syntax=*" in response.text


@pytest.mark.parametrize("frames", ["0", "-1", "x", "1,,2", "1.5"])
def test_malformed_frame_lists_are_400(dicomweb_client: TestClient, frames: str) -> None:
    ds = make_instance()
    stow(dicomweb_client, [to_bytes(ds)])
    response = dicomweb_client.get(_instance_url(ds) + f"/frames/{frames}")
    assert response.status_code == 400
    assert "frame" in response.text


def test_a_frame_past_the_end_is_404_saying_how_many_there_are(dicomweb_client: TestClient) -> None:
    ds = make_instance(frames=3)
    stow(dicomweb_client, [to_bytes(ds)])
    response = dicomweb_client.get(_instance_url(ds) + "/frames/4")
    assert response.status_code == 404
    assert "3 frames" in response.text


def test_frames_of_a_truncated_pixel_data_element_are_409_with_the_reason(
    dicomweb_client: TestClient,
) -> None:
    ds = _store_file(dicomweb_client, "MR_truncated.dcm")
    response = dicomweb_client.get(_instance_url(ds) + "/frames/1", headers={"Accept": OHIF_FRAMES})
    assert response.status_code == 409
    assert "8192" in response.text


def test_bulk_data_uris_in_metadata_resolve_to_the_values(dicomweb_client: TestClient) -> None:
    ds = _store_file(dicomweb_client, "examples_overlay.dcm")
    (document,) = dicomweb_client.get(_instance_url(ds) + "/metadata").json()
    overlay_uri = document["60003000"]["BulkDataURI"]
    assert overlay_uri.startswith("http://testserver/dicomweb/studies/")
    response = dicomweb_client.get(
        overlay_uri.removeprefix("http://testserver"),
        headers={"Accept": "application/octet-stream"},
    )
    assert response.status_code == 200
    assert response.content == bytes(ds[0x60003000].value)


def test_pixel_data_bulk_uri_returns_the_frames(dicomweb_client: TestClient) -> None:
    ds = make_instance(frames=2)
    stow(dicomweb_client, [to_bytes(ds)])
    (document,) = dicomweb_client.get(_instance_url(ds) + "/metadata").json()
    uri = document["7FE00010"]["BulkDataURI"].removeprefix("http://testserver")
    response = dicomweb_client.get(uri, headers={"Accept": OHIF_FRAMES})
    assert b"".join(p.body for p in split_multipart(response)) == ds.PixelData


def test_metadata_of_a_series_lists_every_instance_and_revalidates(
    dicomweb_client: TestClient,
) -> None:
    series = "1.2.826.0.1.3680043.8.498.7"
    stow(
        dicomweb_client,
        [
            to_bytes(make_instance(series_uid=series, study_uid="1.2.3", instance_number=n))
            for n in (2, 1)
        ],
    )
    url = f"/dicomweb/studies/1.2.3/series/{series}/metadata"
    first = dicomweb_client.get(url)
    assert first.status_code == 200
    assert [d["00200013"]["Value"] for d in first.json()] == [[1], [2]]
    assert first.headers["cache-control"] == "private, no-cache"
    again = dicomweb_client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    stow(
        dicomweb_client,
        [to_bytes(make_instance(series_uid=series, study_uid="1.2.3", instance_number=3))],
    )
    changed = dicomweb_client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200
    assert len(changed.json()) == 3


def test_metadata_uris_follow_the_forwarded_public_origin(dicomweb_client: TestClient) -> None:
    ds = make_instance()
    stow(dicomweb_client, [to_bytes(ds)])
    url = _instance_url(ds) + "/metadata"
    forwarded = dicomweb_client.get(
        url, headers={"Forwarded": 'for=1.2.3.4;proto=https;host="pacs.example"'}
    )
    assert forwarded.json()[0]["7FE00010"]["BulkDataURI"].startswith(
        "https://pacs.example/dicomweb/studies/"
    )
    x_forwarded = dicomweb_client.get(
        url,
        headers={
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "viewer.example:8443",
            "X-Forwarded-Prefix": "/pacs",
        },
    )
    assert x_forwarded.json()[0]["7FE00010"]["BulkDataURI"].startswith(
        "https://viewer.example:8443/pacs/dicomweb/studies/"
    )


@pytest.mark.parametrize(
    "url",
    [
        "/dicomweb/studies/1.2.3",
        "/dicomweb/studies/1.2.3/metadata",
        "/dicomweb/studies/1.2.3/series/4.5/instances/6.7/frames/1",
        "/dicomweb/studies/1.2.3/series/4.5/instances/6.7/bulk/7FE00010",
    ],
)
def test_unknown_uids_are_404(dicomweb_client: TestClient, url: str) -> None:
    assert dicomweb_client.get(url).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/dicomweb/studies/1.02.3",
        "/dicomweb/studies/abc/metadata",
        "/dicomweb/studies/1.2/series/x.y/instances/1.2/frames/1",
    ],
)
def test_malformed_uids_in_the_path_are_400(dicomweb_client: TestClient, url: str) -> None:
    response = dicomweb_client.get(url)
    assert response.status_code == 400
    assert "not a valid UID" in response.text


def test_delete_removes_the_instance_its_blob_and_its_cached_metadata(
    dicomweb_client: TestClient,
) -> None:
    study = "1.2.826.0.1.3680043.8.498.9"
    a, b = make_instance(study_uid=study), make_instance(study_uid=study)
    stow(dicomweb_client, [to_bytes(a), to_bytes(b)])
    assert len(dicomweb_client.get(f"/dicomweb/studies/{study}/metadata").json()) == 2
    assert dicomweb_client.delete(_instance_url(a)).status_code == 204
    assert dicomweb_client.get(_instance_url(a)).status_code == 404
    assert len(dicomweb_client.get(f"/dicomweb/studies/{study}/metadata").json()) == 1
    assert dicomweb_client.delete(f"/dicomweb/studies/{study}").status_code == 204
    assert dicomweb_client.get(f"/dicomweb/studies/{study}/metadata").status_code == 404
    assert dicomweb_client.delete(f"/dicomweb/studies/{study}").status_code == 404
