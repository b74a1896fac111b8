"""HTTP caching, compression and byte ranges through the DICOMweb app (RFC 9110 §8.8, §12.5.3,
§13, §14, §15.4.5).

One small archive per test: a study with a three-frame native instance and a second instance
in one series, a third instance in another series, and pydicom's overlay example, whose
overlay data is a bulk data value (a bare ``application/octet-stream`` body).
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid
from starlette.datastructures import Headers
from starlette.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from dicomweb.compression import CompressedMemo, GzipJsonMiddleware, gzip_quality, merge_vary
from dicomweb.httpcache import EntityTag, parse_if_none_match
from dicomweb.ranges import ByteRange, parse_range
from storage.archive import Archive
from tests.dicomweb.multipart_util import split_multipart
from tests.factories import CORPUS_DIR, make_instance, stow, to_bytes

ANY_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
BARE_DICOM = "application/dicom; transfer-syntax=*"
OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"
OCTET = "application/octet-stream"
JSON = "application/dicom+json"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
OVERLAY_DATA = "60003000"
ROWS, COLUMNS, FRAMES = 4, 6, 3
FRAME_SIZE = ROWS * COLUMNS * 2


@dataclass(frozen=True)
class Stored:
    study: str
    series: str
    other_series: str
    sop: str
    second_sop: str
    pixel_data: bytes
    overlay: pydicom.Dataset

    @property
    def study_url(self) -> str:
        return f"/dicomweb/studies/{self.study}"

    @property
    def series_url(self) -> str:
        return f"{self.study_url}/series/{self.series}"

    @property
    def instance_url(self) -> str:
        return f"{self.series_url}/instances/{self.sop}"

    @property
    def overlay_url(self) -> str:
        ds = self.overlay
        return (
            f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}/bulk/{OVERLAY_DATA}"
        )

    @property
    def overlay_value(self) -> bytes:
        return bytes(self.overlay[0x60003000].value)


@pytest.fixture
def stored(dicomweb_client: TestClient) -> Stored:
    study, series, other = generate_uid(), generate_uid(), generate_uid()
    first = make_instance(
        study_uid=study, series_uid=series, rows=ROWS, columns=COLUMNS, frames=FRAMES
    )
    second = make_instance(study_uid=study, series_uid=series, instance_number=2)
    third = make_instance(study_uid=study, series_uid=other, series_number=2)
    overlay_bytes = (CORPUS_DIR / "examples_overlay.dcm").read_bytes()
    response = stow(
        dicomweb_client, [to_bytes(first), to_bytes(second), to_bytes(third), overlay_bytes]
    )
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        overlay = pydicom.dcmread(io.BytesIO(overlay_bytes))
    return Stored(
        study,
        series,
        other,
        str(first.SOPInstanceUID),
        str(second.SOPInstanceUID),
        first.PixelData,
        overlay,
    )


def fetch(
    dicomweb_client: TestClient,
    url: str,
    *,
    encoding: str | None = None,
    method: str = "GET",
    **headers: str,
) -> tuple[httpx.Response, bytes]:
    """One request with exactly the Accept-Encoding given (None: no such header at all), and
    the body as it came over the wire (the response's ``content`` is decoded)."""
    request = dicomweb_client.build_request(
        method, url, headers={k.replace("_", "-"): v for k, v in headers.items()}
    )
    del request.headers["accept-encoding"]
    if encoding is not None:
        request.headers["accept-encoding"] = encoding
    response = dicomweb_client.send(request, stream=True)
    try:
        raw = b"".join(response.iter_raw())
    finally:
        response.close()
    return response, raw


# -- the retrievable resources ----------------------------------------------------------------

IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"


@dataclass(frozen=True)
class Resource:
    url: Callable[[Stored], str]
    accept: str
    cache_control: str


RESOURCES = {
    "instance multipart": Resource(lambda s: s.instance_url, ANY_DICOM, IMMUTABLE),
    "instance bare": Resource(lambda s: s.instance_url, BARE_DICOM, IMMUTABLE),
    "series": Resource(lambda s: s.series_url, ANY_DICOM, REVALIDATE),
    "study": Resource(lambda s: s.study_url, ANY_DICOM, REVALIDATE),
    "study metadata": Resource(lambda s: s.study_url + "/metadata", JSON, REVALIDATE),
    "series metadata": Resource(lambda s: s.series_url + "/metadata", JSON, REVALIDATE),
    "instance metadata": Resource(lambda s: s.instance_url + "/metadata", JSON, REVALIDATE),
    "one frame bare": Resource(lambda s: s.instance_url + "/frames/2", OCTET, IMMUTABLE),
    "frames multipart": Resource(lambda s: s.instance_url + "/frames/3,1", OHIF_FRAMES, IMMUTABLE),
    "bulk value": Resource(lambda s: s.overlay_url, OCTET, IMMUTABLE),
    "bulk pixel data": Resource(
        lambda s: s.instance_url + "/bulk/7FE00010", OHIF_FRAMES, IMMUTABLE
    ),
    "search studies": Resource(lambda s: "/dicomweb/studies", JSON, REVALIDATE),
    "search series": Resource(lambda s: s.study_url + "/series", JSON, REVALIDATE),
    "search instances": Resource(lambda s: s.series_url + "/instances", JSON, REVALIDATE),
}


@pytest.mark.parametrize("name", RESOURCES)
def test_if_none_match_with_the_etag_just_received_is_304_without_a_body(
    dicomweb_client: TestClient, stored: Stored, name: str
) -> None:
    resource = RESOURCES[name]
    url = resource.url(stored)
    first = dicomweb_client.get(url, headers={"Accept": resource.accept})
    assert first.status_code == 200, first.text
    etag = first.headers["etag"]
    again = dicomweb_client.get(url, headers={"Accept": resource.accept, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    # RFC 9110 §15.4.5: the 304 carries the validators and caching fields of the 200.
    for field in ("etag", "cache-control", "vary"):
        assert again.headers[field] == first.headers[field], field
    assert "content-type" not in again.headers
    listed = dicomweb_client.get(
        url, headers={"Accept": resource.accept, "If-None-Match": f'"other", {etag}, "more"'}
    )
    assert listed.status_code == 304
    star = dicomweb_client.get(url, headers={"Accept": resource.accept, "If-None-Match": "*"})
    assert star.status_code == 304
    other = dicomweb_client.get(
        url, headers={"Accept": resource.accept, "If-None-Match": '"other"'}
    )
    assert other.status_code == 200
    assert other.headers["etag"] == etag


@pytest.mark.parametrize("name", RESOURCES)
def test_cache_control_says_whether_the_resource_can_change(
    dicomweb_client: TestClient, stored: Stored, name: str
) -> None:
    resource = RESOURCES[name]
    response = dicomweb_client.get(resource.url(stored), headers={"Accept": resource.accept})
    assert response.headers["cache-control"] == resource.cache_control
    assert "Accept" in [v.strip() for v in response.headers["vary"].split(",")]


def test_if_none_match_compares_weakly(dicomweb_client: TestClient, stored: Stored) -> None:
    url = stored.series_url + "/metadata"
    etag = dicomweb_client.get(url).headers["etag"]
    assert not etag.startswith("W/")
    assert dicomweb_client.get(url, headers={"If-None-Match": "W/" + etag}).status_code == 304


def test_multipart_bodies_have_weak_tags_and_bare_bodies_strong_ones(
    dicomweb_client: TestClient, stored: Stored
) -> None:
    """A multipart body gets a fresh boundary each time: same parts, other bytes."""
    multipart = dicomweb_client.get(stored.instance_url, headers={"Accept": ANY_DICOM}).headers[
        "etag"
    ]
    bare = dicomweb_client.get(stored.instance_url, headers={"Accept": BARE_DICOM}).headers["etag"]
    assert multipart.startswith('W/"')
    assert bare.startswith('"')


# -- validators follow the content ------------------------------------------------------------


def _tags(dicomweb_client: TestClient, stored: Stored) -> dict[str, str]:
    urls = {
        "study metadata": (stored.study_url + "/metadata", JSON),
        "series metadata": (stored.series_url + "/metadata", JSON),
        "study": (stored.study_url, ANY_DICOM),
        "series": (stored.series_url, ANY_DICOM),
        "search": (stored.series_url + "/instances", JSON),
        "untouched series": (f"{stored.study_url}/series/{stored.other_series}", ANY_DICOM),
        "untouched instance": (stored.instance_url, ANY_DICOM),
        "untouched instance metadata": (stored.instance_url + "/metadata", JSON),
    }
    tags = {}
    for name, (url, accept) in urls.items():
        response = dicomweb_client.get(url, headers={"Accept": accept})
        assert response.status_code == 200, (name, response.text)
        tags[name] = response.headers["etag"]
    return tags


CHANGED = ("study metadata", "series metadata", "study", "series", "search")
UNCHANGED = ("untouched series", "untouched instance", "untouched instance metadata")


@pytest.mark.backends  # the tags follow the index's version of a study and series
def test_a_new_instance_in_the_series_changes_the_study_and_series_tags(
    dicomweb_client: TestClient, stored: Stored
) -> None:
    before = _tags(dicomweb_client, stored)
    assert _tags(dicomweb_client, stored) == before  # stable while nothing changes
    new = make_instance(study_uid=stored.study, series_uid=stored.series, instance_number=3)
    assert stow(dicomweb_client, [to_bytes(new)]).status_code == 200  # type: ignore[attr-defined]
    after = _tags(dicomweb_client, stored)
    for name in CHANGED:
        assert after[name] != before[name], name
    for name in UNCHANGED:
        assert after[name] == before[name], name
    stale = dicomweb_client.get(
        stored.series_url + "/metadata", headers={"If-None-Match": before["series metadata"]}
    )
    assert stale.status_code == 200
    assert len(stale.json()) == 3


@pytest.mark.backends
def test_a_deleted_instance_changes_the_study_and_series_tags(
    dicomweb_client: TestClient, stored: Stored
) -> None:
    before = _tags(dicomweb_client, stored)
    assert (
        dicomweb_client.delete(f"{stored.series_url}/instances/{stored.second_sop}").status_code
        == 204
    )
    after = _tags(dicomweb_client, stored)
    for name in CHANGED:
        assert after[name] != before[name], name
    for name in UNCHANGED:
        assert after[name] == before[name], name
    response = dicomweb_client.get(
        stored.study_url, headers={"Accept": ANY_DICOM, "If-None-Match": before["study"]}
    )
    assert response.status_code == 200
    assert len(split_multipart(response)) == 2  # the overlay example is a study of its own


def _etag(dicomweb_client: TestClient, url: str, accept: str) -> str:
    response = dicomweb_client.get(url, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    return response.headers["etag"]


def test_each_representation_has_its_own_tag(dicomweb_client: TestClient, stored: Stored) -> None:
    frame = stored.instance_url + "/frames/1"
    pairs = [
        (stored.instance_url, ANY_DICOM, BARE_DICOM),
        (frame, OCTET, OHIF_FRAMES),
        (stored.overlay_url, OCTET, f"multipart/related; type={OCTET}"),
    ]
    for url, one, other in pairs:
        assert _etag(dicomweb_client, url, one) != _etag(dicomweb_client, url, other), url
        assert _etag(dicomweb_client, url, one) == _etag(dicomweb_client, url, one), url


def test_a_transcoded_instance_has_another_tag_than_the_stored_bytes(
    dicomweb_client: TestClient,
) -> None:
    data = (CORPUS_DIR / "JPEG2000.dcm").read_bytes()
    assert stow(dicomweb_client, [data]).status_code == 200  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    url = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    transcoded = f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}'
    assert _etag(dicomweb_client, url, ANY_DICOM) != _etag(dicomweb_client, url, transcoded)


def test_the_tag_of_a_multipart_body_follows_the_public_root(
    dicomweb_client: TestClient, stored: Stored
) -> None:
    """Each part's Content-Location (and each BulkDataURI) carries the public root."""
    for url, accept in ((stored.series_url, ANY_DICOM), (stored.series_url + "/metadata", JSON)):
        direct = dicomweb_client.get(url, headers={"Accept": accept}).headers["etag"]
        proxied = dicomweb_client.get(
            url, headers={"Accept": accept, "X-Forwarded-Host": "pacs.example"}
        ).headers["etag"]
        assert direct != proxied


# -- gzip ---------------------------------------------------------------------------------------


def _json_urls(stored: Stored) -> list[str]:
    return [stored.study_url + "/metadata", "/dicomweb/studies?includefield=all"]


@pytest.mark.parametrize(
    "encoding",
    ["gzip", "GZIP", "x-gzip", "gzip, deflate", "*", "deflate, gzip;q=0.8", "gzip;q=0.1"],
)
def test_json_is_gzipped_when_the_client_accepts_gzip(
    dicomweb_client: TestClient, stored: Stored, encoding: str
) -> None:
    for url in _json_urls(stored):
        identity, identity_raw = fetch(dicomweb_client, url, encoding=None)
        zipped, zipped_raw = fetch(dicomweb_client, url, encoding=encoding)
        assert zipped.status_code == 200
        assert zipped.headers["content-encoding"] == "gzip"
        assert gzip.decompress(zipped_raw) == identity_raw
        assert int(zipped.headers["content-length"]) == len(zipped_raw) < len(identity_raw)
        assert "Accept-Encoding" in zipped.headers["vary"]
        assert "Accept-Encoding" in identity.headers["vary"]
        # RFC 9110 §8.8.3: another representation, another tag.
        assert zipped.headers["etag"] == identity.headers["etag"][:-1] + '-gzip"'


@pytest.mark.parametrize(
    "encoding",
    [
        None,
        "",
        "identity",
        "gzip;q=0",
        "deflate",
        "br",
        "*;q=0",
        "gzip;q=0.5, identity",
        "gzip;q=abc",
    ],
)
def test_json_is_not_gzipped_when_the_client_does_not_accept_or_prefer_it(
    dicomweb_client: TestClient, stored: Stored, encoding: str | None
) -> None:
    for url in _json_urls(stored):
        response, raw = fetch(dicomweb_client, url, encoding=encoding)
        assert response.status_code == 200
        assert "content-encoding" not in response.headers
        assert raw.startswith(b"[{")
        assert int(response.headers["content-length"]) == len(raw)
        assert not response.headers["etag"].endswith('-gzip"')


def test_if_none_match_works_for_the_gzipped_copy(
    dicomweb_client: TestClient, stored: Stored
) -> None:
    url = stored.series_url + "/metadata"
    zipped, _ = fetch(dicomweb_client, url, encoding="gzip")
    tag = zipped.headers["etag"]
    assert tag.endswith('-gzip"')
    again, raw = fetch(dicomweb_client, url, encoding="gzip", If_None_Match=tag)
    assert again.status_code == 304
    assert again.headers["etag"] == tag
    assert raw == b""
    # A client that no longer accepts gzip cannot use the gzipped copy: full identity body.
    plain, raw = fetch(dicomweb_client, url, encoding="identity", If_None_Match=tag)
    assert plain.status_code == 200
    assert raw.startswith(b"[{")
    assert plain.headers["etag"] == tag.removesuffix('-gzip"') + '"'


@pytest.mark.parametrize(
    "name",
    [
        "instance multipart",
        "instance bare",
        "study",
        "one frame bare",
        "frames multipart",
        "bulk value",
        "bulk pixel data",
    ],
)
def test_dicom_frames_and_bulk_data_are_never_gzipped(
    dicomweb_client: TestClient, stored: Stored, name: str
) -> None:
    resource = RESOURCES[name]
    response, _ = fetch(
        dicomweb_client, resource.url(stored), encoding="gzip", Accept=resource.accept
    )
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert "Accept-Encoding" not in response.headers.get("vary", "")


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_head_carries_the_fields_of_get(
    dicomweb_client: TestClient, stored: Stored, encoding: str | None
) -> None:
    url = stored.study_url + "/metadata"
    get, _ = fetch(dicomweb_client, url, encoding=encoding)
    head, raw = fetch(dicomweb_client, url, encoding=encoding, method="HEAD")
    assert head.status_code == 200
    assert raw == b""
    for name in ("content-length", "content-encoding", "etag", "vary", "cache-control"):
        assert head.headers.get(name) == get.headers.get(name), name


def test_small_json_and_errors_go_out_as_they_are(
    dicomweb_client: TestClient, stored: Stored
) -> None:
    empty, raw = fetch(dicomweb_client, "/dicomweb/studies?PatientID=nobody", encoding="gzip")
    assert raw == b"[]"
    assert "content-encoding" not in empty.headers
    error, raw = fetch(dicomweb_client, "/dicomweb/studies?limit=x", encoding="gzip")
    assert error.status_code == 400
    assert "content-encoding" not in error.headers
    assert b"limit" in raw


def _ct_slice(study: str, series: str, number: int) -> bytes:
    """A CT slice with the attributes a real scanner writes and a viewer reads."""
    ds = make_instance(
        study_uid=study, series_uid=series, instance_number=number, rows=4, columns=4
    )
    z = round(-300.0 + 1.25 * number, 2)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.SeriesDescription = "AXIAL 1.25mm STD"
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "FFS"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.100"
    ds.AcquisitionNumber = 1
    ds.ContentTime = f"1015{number % 60:02d}.{number:06d}"
    ds.ImagePositionPatient = [-175.0, -175.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = z
    ds.PixelSpacing = [0.683594, 0.683594]
    ds.SliceThickness = 1.25
    ds.KVP = 120
    ds.XRayTubeCurrent = 250
    ds.ExposureTime = 500
    ds.ConvolutionKernel = "STANDARD"
    ds.WindowCenter = [40, 400]
    ds.WindowWidth = [400, 1500]
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    return to_bytes(ds)


@pytest.mark.slow
def test_metadata_of_a_500_slice_series_shrinks_at_least_eightfold(
    dicomweb_client: TestClient, archive: Archive
) -> None:
    study, series = generate_uid(), generate_uid()
    for number in range(1, 501):
        archive.ingest(io.BytesIO(_ct_slice(study, series, number)))
    url = f"/dicomweb/studies/{study}/series/{series}/metadata"
    identity, identity_raw = fetch(dicomweb_client, url, encoding=None)
    _, zipped_raw = fetch(dicomweb_client, url, encoding="gzip, deflate, br")
    _, again_raw = fetch(dicomweb_client, url, encoding="gzip")
    assert again_raw == zipped_raw  # the memoised copy is what compressing again gives
    assert identity.status_code == 200
    assert len(json.loads(identity_raw)) == 500
    assert gzip.decompress(zipped_raw) == identity_raw
    ratio = len(identity_raw) / len(zipped_raw)
    print(
        f"500-slice series metadata: {len(identity_raw)} -> {len(zipped_raw)} bytes, {ratio:.1f}x"
    )
    assert ratio >= 8


def test_the_memo_compresses_a_body_once_and_forgets_the_least_recently_used() -> None:
    bodies = [json.dumps([{"n": n, "pad": "x" * 3000}] * 40).encode() for n in range(3)]
    memo = CompressedMemo(capacity=2 * len(gzip.compress(bodies[0], 6, mtime=0)) + 50)
    first = memo.compress(bodies[0], 6)
    assert gzip.decompress(first) == bodies[0]
    assert first == gzip.compress(bodies[0], compresslevel=6, mtime=0)
    assert memo.compress(bodies[0], 6) is first  # not compressed again
    other_level = CompressedMemo()
    assert other_level.compress(bodies[0], 6) == first
    assert other_level.compress(bodies[0], 1) != first  # another level, another entry
    memo.compress(bodies[1], 6)
    memo.compress(bodies[0], 6)  # used again: now the most recent
    memo.compress(bodies[2], 6)  # over capacity: out goes the least recently used
    assert memo.compress(bodies[0], 6) is first
    assert CompressedMemo(capacity=10).compress(bodies[0], 6) == first  # too big to keep


# -- byte ranges --------------------------------------------------------------------------------


def _range(
    dicomweb_client: TestClient, url: str, value: str | bytes, **headers: str
) -> httpx.Response:
    return dicomweb_client.get(url, headers={"Accept": OCTET, "Range": value, **headers})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", slice(0, 10)),
        ("bytes=10-", slice(10, None)),
        ("bytes=-5", slice(-5, None)),
        ("bytes=7-7", slice(7, 8)),
        ("bytes=100-18149", slice(100, None)),
        ("bytes=100-99999999", slice(100, None)),
        ("bytes=-99999999", slice(0, None)),
        ("BYTES=0-0", slice(0, 1)),
        ("bytes = 2-3", slice(2, 4)),
    ],
)
def test_one_satisfiable_range_is_206_with_exactly_those_bytes(
    dicomweb_client: TestClient, stored: Stored, header: str, expected: slice
) -> None:
    value = stored.overlay_value
    whole = dicomweb_client.get(stored.overlay_url, headers={"Accept": OCTET})
    assert whole.headers["accept-ranges"] == "bytes"
    response = _range(dicomweb_client, stored.overlay_url, header)
    assert response.status_code == 206
    part = value[expected]
    assert response.content == part
    start = expected.indices(len(value))[0]
    assert (
        response.headers["content-range"] == f"bytes {start}-{start + len(part) - 1}/{len(value)}"
    )
    assert response.headers["content-length"] == str(len(part))
    assert response.headers["content-type"] == OCTET
    assert response.headers["etag"] == whole.headers["etag"]
    assert response.headers["cache-control"] == IMMUTABLE


@pytest.mark.parametrize(
    "header", ["bytes=18150-", "bytes=18150-18160", "bytes=-0", "bytes=99999999999999999999999-"]
)
def test_a_range_past_the_end_is_416_with_the_length(
    dicomweb_client: TestClient, stored: Stored, header: str
) -> None:
    assert len(stored.overlay_value) == 18150
    response = _range(dicomweb_client, stored.overlay_url, header)
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */18150"
    assert "18150 bytes" in response.text


@pytest.mark.parametrize(
    "header",
    [
        "bytes=5-2",
        "items=0-1",
        "bytes=0-1,4-5",
        "bytes=abc",
        "bytes=",
        "bytes=-",
        "bytes=1-2-3",
        "0-1",
        "bytes=0x1-2",
        b"bytes=\xb2-",
    ],
)
def test_a_range_we_do_not_serve_is_ignored_and_the_whole_body_sent(
    dicomweb_client: TestClient, stored: Stored, header: str | bytes
) -> None:
    response = _range(dicomweb_client, stored.overlay_url, header)
    assert response.status_code == 200
    assert response.content == stored.overlay_value
    assert "content-range" not in response.headers


def test_if_range_applies_the_range_only_to_the_same_representation(
    dicomweb_client: TestClient, stored: Stored
) -> None:
    etag = dicomweb_client.get(stored.overlay_url, headers={"Accept": OCTET}).headers["etag"]
    value = stored.overlay_value
    same = _range(dicomweb_client, stored.overlay_url, "bytes=0-3", If_Range=etag)
    assert same.status_code == 206
    assert same.content == value[:4]
    for validator in ('"other"', "W/" + etag, "Tue, 15 Nov 1994 08:12:31 GMT", "garbage"):
        response = _range(
            dicomweb_client, stored.overlay_url, "bytes=0-3", **{"If-Range": validator}
        )
        assert response.status_code == 200, validator
        assert response.content == value


def test_if_none_match_is_evaluated_before_range(
    dicomweb_client: TestClient, stored: Stored
) -> None:
    etag = dicomweb_client.get(stored.overlay_url, headers={"Accept": OCTET}).headers["etag"]
    response = _range(dicomweb_client, stored.overlay_url, "bytes=0-3", **{"If-None-Match": etag})
    assert response.status_code == 304


def test_head_ignores_range(dicomweb_client: TestClient, stored: Stored) -> None:
    response = dicomweb_client.head(
        stored.overlay_url, headers={"Accept": OCTET, "Range": "bytes=0-3"}
    )
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(stored.overlay_value))


def test_a_bare_native_frame_can_be_ranged_too(dicomweb_client: TestClient, stored: Stored) -> None:
    url = stored.instance_url + "/frames/2"
    response = _range(dicomweb_client, url, "bytes=4-7")
    assert response.status_code == 206
    assert response.content == stored.pixel_data[FRAME_SIZE + 4 : FRAME_SIZE + 8]
    assert response.headers["content-range"] == f"bytes 4-7/{FRAME_SIZE}"


def test_multipart_bodies_are_not_ranged(dicomweb_client: TestClient, stored: Stored) -> None:
    url = stored.instance_url + "/frames/1,2"
    response = dicomweb_client.get(url, headers={"Accept": OHIF_FRAMES, "Range": "bytes=0-3"})
    assert response.status_code == 200
    assert "accept-ranges" not in response.headers
    assert [p.body for p in split_multipart(response)] == [
        stored.pixel_data[:FRAME_SIZE],
        stored.pixel_data[FRAME_SIZE : 2 * FRAME_SIZE],
    ]


# -- the parsers on their own -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("*", "*"),
        (' "a" ', [EntityTag("a")]),
        ('"a", W/"b"', [EntityTag("a"), EntityTag("b", weak=True)]),
        ('"a,b", "c"', [EntityTag("a,b"), EntityTag("c")]),  # a comma is a legal etagc
        ('"a",,  , "b"', [EntityTag("a"), EntityTag("b")]),  # empty list elements
        ('""', [EntityTag("")]),
        ("a", None),
        ('"a', None),
        ('"a" "b"', None),
        ('w/"a"', None),  # the weak prefix is case-sensitive (RFC 9110 §8.8.3)
        ("", None),
        ('"a b"', None),  # SP is not an etagc
    ],
)
def test_if_none_match_parsing(header: str | None, expected: list[EntityTag] | str | None) -> None:
    assert parse_if_none_match(header) == expected


@pytest.mark.parametrize(
    ("header", "accepts"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("*", True),
        ("*;q=0", False),
        ("*, gzip;q=0", False),
        ("identity", False),
        ("identity, *;q=0.5", False),  # identity preferred
        ("identity;q=0.5, *", True),
        ("gzip;q=0.5, identity;q=0.9", False),
        ("gzip;q=0.9, identity;q=0.5", True),
        ("x-gzip", True),
        ("gzip;q=2", False),
        ("gzip;q=nan", False),
        (",,gzip,,", True),
        ("br, zstd", False),
    ],
)
def test_accept_encoding_decides_gzip(header: str | None, accepts: bool) -> None:
    assert gzip_quality(header) is accepts


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", ByteRange(0, 0)),
        ("bytes=0-", ByteRange(0, 9)),
        ("bytes=-3", ByteRange(7, 9)),
        ("bytes=-30", ByteRange(0, 9)),
        ("bytes=5-500", ByteRange(5, 9)),
        ("bytes=10-", "unsatisfiable"),
        ("bytes=-0", "unsatisfiable"),
        ("bytes=9-8", None),
        ("bytes=0-1,2-3", None),
        ("bytes=0-1,", ByteRange(0, 1)),  # an empty list element is not a second range
        ("pages=0-1", None),
        ("bytes=٠-١", None),  # Arabic-Indic digits are not DIGIT
        ("bytes=" + "9" * 5000 + "-", "unsatisfiable"),
        ("bytes=0-" + "9" * 5000, ByteRange(0, 9)),
    ],
)
def test_range_parsing(header: str, expected: ByteRange | str | None) -> None:
    assert parse_range(header, 10) == expected


def test_range_on_an_empty_body_is_ignored() -> None:
    assert parse_range("bytes=-5", 0) is None


def test_vary_lists_each_field_once() -> None:
    assert merge_vary("Accept, accept-encoding", "Accept-Encoding") == "Accept, accept-encoding"
    assert merge_vary(None, "Accept-Encoding") == "Accept-Encoding"
    assert merge_vary("Accept", "Accept-Encoding") == "Accept, Accept-Encoding"


# -- the middleware on its own ------------------------------------------------------------------


async def _run(
    messages: list[Message], accept_encoding: str = "gzip"
) -> tuple[list[Message], list[int]]:
    """What a client receives when an app sends ``messages`` through the middleware, and how
    many messages it had received at the moment the app sent each one (what was held back)."""
    received: list[Message] = []
    forwarded: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            forwarded.append(len(received))
            await send(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        received.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(b"accept-encoding", accept_encoding.encode())],
    }
    await GzipJsonMiddleware(app, minimum_size=10)(scope, receive, send)
    return received, forwarded


def _start(content_type: str, *extra: tuple[bytes, bytes]) -> Message:
    headers = [(b"content-type", content_type.encode()), *extra]
    return {"type": "http.response.start", "status": 200, "headers": headers}


def _body(data: bytes, more: bool) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def test_streamed_dicom_passes_through_message_for_message() -> None:
    chunks = [b"A" * 5000, b"B" * 5000, b""]
    messages = [_start("multipart/related; type=application/dicom; boundary=x")]
    messages += [_body(c, more=i < 2) for i, c in enumerate(chunks)]
    received, forwarded = asyncio.run(_run(messages))
    assert received == messages  # the same messages, unchanged
    assert forwarded == [0, 1, 2, 3]  # each one passed on before the app sent the next


def test_streamed_json_is_compressed_chunk_by_chunk() -> None:
    chunks = [b'[{"a":1}', b',{"a":2}' * 200, b"]"]
    messages = [_start("application/dicom+json", (b"content-length", b"1610"), (b"etag", b'"t"'))]
    messages += [_body(c, more=i < 2) for i, c in enumerate(chunks)]
    received, forwarded = asyncio.run(_run(messages))
    assert forwarded == [0, 0, 2, 3]  # only the start waits, for the first body message
    headers = Headers(raw=received[0]["headers"])
    assert headers["content-encoding"] == "gzip"
    assert "content-length" not in headers
    assert headers["etag"] == '"t-gzip"'
    assert len(received) == 4
    assert gzip.decompress(b"".join(m["body"] for m in received[1:])) == b"".join(chunks)


def test_a_response_already_encoded_is_not_compressed_again() -> None:
    data = gzip.compress(b"[" + b"1," * 1000 + b"1]")
    start = _start("application/json", (b"content-encoding", b"gzip"))
    received, _ = asyncio.run(_run([start, _body(data, more=False)]))
    assert [m.get("body") for m in received[1:]] == [data]
    assert Headers(raw=received[0]["headers"]).getlist("content-encoding") == ["gzip"]


def test_a_head_style_body_shorter_than_its_length_is_left_alone() -> None:
    start = _start("application/json", (b"content-length", b"5000"))
    received, _ = asyncio.run(_run([start, _body(b"", more=False)]))
    headers = Headers(raw=received[0]["headers"])
    assert headers["content-length"] == "5000"
    assert "content-encoding" not in headers


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/dicom+json", "application/vnd.api+json; charset=utf-8"],
)
def test_every_json_type_is_compressed(content_type: str) -> None:
    data = b'{"key": "' + b"v" * 100 + b'"}'
    received, _ = asyncio.run(_run([_start(content_type), _body(data, more=False)]))
    assert Headers(raw=received[0]["headers"])["content-encoding"] == "gzip"
    assert gzip.decompress(received[1]["body"]) == data


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/dicom", "image/jpeg", "application/jsonx", ""]
)
def test_nothing_else_is_compressed(content_type: str) -> None:
    data = b"x" * 5000
    received, _ = asyncio.run(_run([_start(content_type), _body(data, more=False)]))
    assert "content-encoding" not in Headers(raw=received[0]["headers"])
    assert received[1]["body"] == data
