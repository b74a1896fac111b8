"""Malformed input against every route of the DICOMweb app: always a 4xx whose body names the
problem, never a 5xx (DESIGN "Errors": input never causes a 500).

The table is built from the routes themselves: every path with a UID in it gets every kind of
malformed UID in every UID position, and every route gets its own malformed parameters,
headers and bodies. A few rows expect 200 on purpose: a malformed ``Range`` or
``If-None-Match`` is ignored (RFC 9110 §14.2 and §13.1.2 let a server serve the whole
representation), and a well-formed search scoped to an unknown study finds nothing.

One archive serves the whole module: no row may change it (each is refused or read-only).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from dicomweb.app import routes
from radcase_pacs.settings import Settings
from tests.apps import served
from tests.factories import CORPUS_DIR, make_instance, multipart_body, to_bytes

STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"
FRAMES = INSTANCE + "/frames/{frames}"
BULK = INSTANCE + "/bulk/{path:path}"
KNOWN = {
    "study": "1.2.826.0.1.3680043.8.498.501",
    "series": "1.2.826.0.1.3680043.8.498.502",
    "instance": "1.2.826.0.1.3680043.8.498.503",
    "frames": "1",
    "path:path": "7FE00010",
}
UNKNOWN_UID = "1.2.826.0.1.3680043.8.498.999"
KEYWORDS = {
    "study": "StudyInstanceUID",
    "series": "SeriesInstanceUID",
    "instance": "SOPInstanceUID",
}
BAD_UIDS = {
    "too long": "1." * 32 + "1",
    "letters": "1.2.abc",
    "leading zero": "1.02.3",
    "empty component": "1..2",
    "trailing dot": "1.2.",
    "space": "1.2%203",
    "non-UTF-8": "1.2%FF",
}
OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"
ANY_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
OCTET = "application/octet-stream"
CONTENT_TYPE = 'multipart/related; type="application/dicom"; boundary=b'


@dataclass(frozen=True)
class Case:
    method: str
    route: str  # a route path of dicomweb.app.routes(), placeholders filled from ``values``
    expected: frozenset[int]
    names: str  # case-insensitive text the body must contain (the problem, named)
    values: dict[str, str] = field(default_factory=dict)
    query: str = ""
    headers: dict[str, str | bytes] = field(default_factory=dict)
    body: bytes | None = None

    def url(self) -> str:
        path = self.route
        for key, default in KNOWN.items():
            path = path.replace("{" + key + "}", self.values.get(key, default))
        return "/dicomweb" + path + (f"?{self.query}" if self.query else "")


def _case(method: str, route: str, expected: int | set[int], names: str, **kw: object) -> Case:
    codes = frozenset({expected} if isinstance(expected, int) else expected)
    return Case(method, route, codes, names, **kw)  # type: ignore[arg-type]


def _route_table() -> list[tuple[str, str]]:
    """(method, path) of every route this sweep covers: all but those of the rendered,
    thumbnail and WADO-URI services, which their own tests sweep."""
    table = []
    for route in routes():
        assert isinstance(route, Route)
        module = getattr(route.endpoint, "__module__", "")
        if module.endswith(("rendered", "wado_uri", "rendering")):
            continue
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                table.append((method, route.path))
    return table


def _bad_uid_cases() -> Iterator[tuple[str, Case]]:
    for method, route in _route_table():
        for key in ("study", "series", "instance"):
            if "{" + key + "}" not in route:
                continue
            for label, uid in BAD_UIDS.items():
                case = _case(method, route, 400, f"{KEYWORDS[key]} in the path", values={key: uid})
                if method == "POST":
                    case = Case(**{**case.__dict__, "headers": {"Content-Type": CONTENT_TYPE}})
                yield f"{method} {route} {key} {label}", case


def _unknown_uid_cases() -> Iterator[tuple[str, Case]]:
    for method, route in _route_table():
        if method == "POST" or "{study}" not in route:
            continue
        for key in ("study", "series", "instance"):
            if "{" + key + "}" not in route:
                continue
            search = route.endswith(("/series", "/instances"))
            expected, names = (200, "[]") if search else (404, "not found")
            case = _case(method, route, expected, names, values={key: UNKNOWN_UID})
            yield f"{method} {route} unknown {key}", case


def _frame_cases() -> Iterator[tuple[str, Case]]:
    bad = ["0", "-1", "1,,2", "abc", "1.5", "%20", ",", "1,", "1;2", "%C2%B2", "%D9%A3", "00"]
    bad += ["99999999999999999999", "9" * 5000, "0" * 5000]
    for frames in bad:
        yield f"frames {frames[:24]}", _case("GET", FRAMES, 400, "frame", values={"frames": frames})
    yield "frame past the end", _case("GET", FRAMES, 404, "3 frames", values={"frames": "4"})
    yield "one frame past the end", _case("GET", FRAMES, 404, "3 frames", values={"frames": "1,4"})
    yield (
        "too many frames",
        _case("GET", FRAMES, 400, "at most", values={"frames": ",".join(["1"] * 10001)}),
    )


def _bulk_cases() -> Iterator[tuple[str, Case]]:
    for path in ["nothing", "..%2F..%2Fetc%2Fpasswd", "7FE00010/extra", "x" * 3000, "%00", "%FF"]:
        yield (
            f"bulk {path[:24]}",
            _case("GET", BULK, 404, "no bulk data", values={"path:path": path}),
        )


ACCEPT_ROUTES = {
    "study": (STUDY, ANY_DICOM),
    "series": (SERIES, ANY_DICOM),
    "instance": (INSTANCE, ANY_DICOM),
    "study metadata": (STUDY + "/metadata", "application/dicom+json"),
    "series metadata": (SERIES + "/metadata", "application/dicom+json"),
    "instance metadata": (INSTANCE + "/metadata", "application/dicom+json"),
    "frames": (FRAMES, OHIF_FRAMES),
    "bulk": (BULK, OHIF_FRAMES),
    "search studies": ("/studies", "application/dicom+json"),
    "search series": (STUDY + "/series", "application/dicom+json"),
    "search instances": (SERIES + "/instances", "application/dicom+json"),
}
UNPARSEABLE_ACCEPT = [
    "garbage",
    "multipart/related; type=",
    "*/*;q=abc",
    "application/dicom; transfer-syntax=",
    "*/json",
    ";;;",
]
UNSERVABLE_ACCEPT = [
    "image/png",
    "text/html",
    'multipart/related; type="application/dicom"; transfer-syntax=1.2.3.4',
    "multipart/related; type=application/octet-stream; transfer-syntax=1.2.3.4",
    "application/dicom+json;q=0",
    'multipart/related; type="application/dicom"; transfer-syntax=' + "1" * 3000,
]


def _accept_cases() -> Iterator[tuple[str, Case]]:
    for name, (route, _) in ACCEPT_ROUTES.items():
        for accept in UNPARSEABLE_ACCEPT:
            case = _case("GET", route, 400, "Accept", headers={"Accept": accept})
            yield f"{name} Accept {accept[:30]}", case
        for accept in UNSERVABLE_ACCEPT:
            case = _case("GET", route, 406, "Not Acceptable", headers={"Accept": accept})
            yield f"{name} Accept {accept[:70]}", case
        yield f"{name} accept=garbage", _case("GET", route, 400, "Accept", query="accept=garbage")
        yield f"{name} accept=%FF", _case("GET", route, 400, "UTF-8", query="accept=%FF")


def _header_cases() -> Iterator[tuple[str, Case]]:
    """Malformed conditional and range headers are ignored: the whole body, 200."""
    for name, (route, accept) in ACCEPT_ROUTES.items():
        for value in ['"unterminated', "W/", "garbage", '"a" "b"', '"' + "a" * 5000 + '"']:
            headers = {"Accept": accept, "If-None-Match": value}
            yield (
                f"{name} If-None-Match {value[:16]}",
                _case("GET", route, 200, "", headers=headers),
            )
    for value in ["bytes=5-2", "items=0-1", "bytes=0-1,4-5", "bytes=abc", "bytes=", "=", "-"]:
        headers = {"Accept": OCTET, "Range": value}
        yield f"bulk Range {value}", _overlay_case(200, "", headers)
    headers = {"Accept": OCTET, "Range": b"bytes=\xb2-"}
    yield "bulk Range non-ASCII", _overlay_case(200, "", headers)  # type: ignore[arg-type]
    for value in ["bytes=18150-", "bytes=-0", "bytes=" + "9" * 5000 + "-"]:
        headers = {"Accept": OCTET, "Range": value}
        yield f"bulk Range {value[:20]}", _overlay_case(416, "18150 bytes", headers)


OVERLAY = {
    "study": "1.2.124.113532.10.122.1.203.20051130.122937.2950157",
    "series": "1.3.12.2.1107.5.2.30.25641.30010005113009191059300000190",
    "instance": "1.2.826.0.1.3680043.8.498.56065470899706926608807826667383533307",
    "path:path": "60003000",
}


def _overlay_case(expected: int, names: str, headers: dict[str, str | bytes]) -> Case:
    return _case("GET", BULK, expected, names, values=OVERLAY, headers=headers)


QIDO_PARAMETERS = [
    ("limit=-1", "limit"),
    ("limit=abc", "limit"),
    ("limit=%C2%B2", "limit"),
    ("limit=", "limit"),
    ("offset=abc", "offset"),
    ("offset=-5", "offset"),
    ("limit=1&limit=2", "more than once"),
    ("offset=1&offset=2", "more than once"),
    ("fuzzymatching=true&fuzzymatching=false", "more than once"),
    ("fuzzymatching=maybe", "fuzzymatching"),
    ("StudyDate=2020", "StudyDate"),
    ("StudyDate=20201301", "StudyDate"),
    ("StudyDate=2020-01-01", "StudyDate"),
    ("StudyDate=20200101-20190101", "StudyDate"),
    ("StudyDate=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%900101", "StudyDate"),  # full-width digits
    ("StudyTime=25", "StudyTime"),
    ("StudyTime=12%3A61", "StudyTime"),
    ("includefield=NotAKeyword", "includefield"),
    ("includefield=%FF", "UTF-8"),
    ("NotAKeyword=1", "NotAKeyword"),
    ("0010001=x", "0010001"),
    ("ZZZZZZZZ=1", "ZZZZZZZZ"),
    ("PatientID=1&PatientID=2", "more than once"),
    ("PatientID=1&00100020=2", "more than once"),
    ("PatientName=%01%02", "control characters"),
    ("PatientName=a%0Ab", "control characters"),
    ("PatientName=" + "A" * 2000, "2000 characters"),
    ("PatientName=%FF%FE", "UTF-8"),
    ("PatientID=%C3%28", "UTF-8"),
    ("%FF=1", "UTF-8"),
    ("StudyInstanceUID=1.02", "StudyInstanceUID"),
    ("StudyInstanceUID=1.2.3%0A", "StudyInstanceUID"),
    ("StudyInstanceUID=1.2,abc", "StudyInstanceUID"),
    ("StudyInstanceUID=" + "1." * 40 + "1", "StudyInstanceUID"),
    ("InstanceNumber=1", "InstanceNumber"),  # instance-level key in a study search
    ("NumberOfStudyRelatedInstances=1", "NumberOfStudyRelatedInstances"),
    ("ModalitiesInStudy=%7F", "control characters"),
]
QIDO_INSTANCE_PARAMETERS = [
    ("InstanceNumber=abc", "InstanceNumber"),
    ("InstanceNumber=99999999999999999999", "InstanceNumber"),
    ("InstanceNumber=" + "9" * 5000, "InstanceNumber"),
    ("SeriesNumber=%C2%B2", "SeriesNumber"),
]


def _qido_cases() -> Iterator[tuple[str, Case]]:
    for route in ("/studies", "/series", "/instances"):
        for query, names in QIDO_PARAMETERS:
            if route == "/instances" and query == "InstanceNumber=1":
                continue
            yield f"search {route} {query[:40]}", _case("GET", route, 400, names, query=query)
    for query, names in QIDO_INSTANCE_PARAMETERS:
        yield f"search instances {query[:40]}", _case("GET", "/instances", 400, names, query=query)
    # Past every result is not an error: an empty page.
    query = "offset=" + "9" * 5000
    yield "search huge offset", _case("GET", "/studies", 200, "[]", query=query)


def _stow_cases() -> Iterator[tuple[str, Case]]:
    part, content_type = multipart_body([b"not DICOM at all"])
    rows = [
        ("no Content-Type", {}, b"x", 415, "Content-Type"),
        ("JSON", {"Content-Type": "application/json"}, b"{}", 415, "Content-Type"),
        ("no boundary", {"Content-Type": "multipart/related"}, b"x", 415, "boundary"),
        (
            "JSON parts",
            {"Content-Type": 'multipart/related; type="application/json"; boundary=b'},
            b"x",
            415,
            "application/json",
        ),
        ("garbage body", {"Content-Type": CONTENT_TYPE}, b"garbage", 400, "multipart"),
        ("empty body", {"Content-Type": CONTENT_TYPE}, b"", 400, "body"),
        ("no parts", {"Content-Type": CONTENT_TYPE}, b"--b--\r\n", 400, "no parts"),
        (
            "unservable Accept",
            {"Content-Type": content_type, "Accept": "image/png"},
            part,
            406,
            "Not Acceptable",
        ),
        ("bad Accept", {"Content-Type": content_type, "Accept": "garbage"}, part, 400, "Accept"),
        (
            "not DICOM",
            {"Content-Type": content_type, "Accept": "application/dicom+json"},
            part,
            409,
            "not a readable DICOM",
        ),
    ]
    for label, headers, body, expected, names in rows:
        for route in ("/studies", STUDY):
            case = _case("POST", route, expected, names, headers=headers, body=body)
            yield f"STOW {route} {label}", case


CASES = dict(
    [
        *_bad_uid_cases(),
        *_unknown_uid_cases(),
        *_frame_cases(),
        *_bulk_cases(),
        *_accept_cases(),
        *_header_cases(),
        *_qido_cases(),
        *_stow_cases(),
    ]
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One archive for the whole sweep: a three-frame instance at the KNOWN UIDs and the
    overlay example (its overlay data is a bulk data value)."""
    tmp: Path = tmp_path_factory.mktemp("bad-input")
    with served(Settings(data_dir=tmp / "data"), raise_server_exceptions=False) as client:
        ds = make_instance(
            study_uid=KNOWN["study"],
            series_uid=KNOWN["series"],
            sop_uid=KNOWN["instance"],
            frames=3,
        )
        for data in (to_bytes(ds), (CORPUS_DIR / "examples_overlay.dcm").read_bytes()):
            body, content_type = multipart_body([data])
            stored = client.post(
                "/dicomweb/studies", content=body, headers={"Content-Type": content_type}
            )
            assert stored.status_code == 200, stored.text
        yield client


@pytest.mark.parametrize("name", CASES)
def test_malformed_input_is_a_4xx_that_names_the_problem(shared: TestClient, name: str) -> None:
    case = CASES[name]
    response = shared.request(case.method, case.url(), headers=case.headers, content=case.body)
    assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    assert response.status_code in case.expected, f"{response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        # A STOW-RS refusal is the Store Instances Response (PS3.18 §10.5.3) in JSON, with the
        # reason in a Warning header; every other error is a short text.
        said = response.text + " ".join(response.headers.get_list("warning"))
        assert case.names.lower() in said.lower(), said[:300]
        json_report = case.method == "POST" and response.status_code == 409
        expected_type = "application/dicom+json" if json_report else "text/plain"
        assert response.headers["content-type"].startswith(expected_type)


def test_the_sweep_covers_every_route() -> None:
    covered = {(c.method, c.route) for c in CASES.values()}
    missing = [route for route in _route_table() if route not in covered]
    assert not missing, missing


def test_the_known_uids_are_those_of_the_stored_instances(shared: TestClient) -> None:
    """Guards the table: the rows that expect 400 and 404 must be refused for what they say,
    not because the data they build on is missing."""
    url = Case("GET", FRAMES, frozenset({200}), "", headers={"Accept": OHIF_FRAMES}).url()
    assert shared.get(url, headers={"Accept": OHIF_FRAMES}).status_code == 200
    overlay = _overlay_case(200, "", {"Accept": OCTET})
    assert shared.get(overlay.url(), headers={"Accept": OCTET}).status_code == 200
