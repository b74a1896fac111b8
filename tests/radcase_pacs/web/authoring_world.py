"""A case to author, built through the server's API as an educator would: a small CT stack
and a screen capture with "text" burned into its top rows (Burned In Annotation YES), which
the case service holds back for review. Used by the HTTP and the browser tests of the
authoring pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.factories import make_instance, multipart_body, to_bytes

EDUCATOR = "teacher"
PASSWORD = "a long password for tests"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
CAPTURE_SIZE = 64
TEXT_ROWS = 6
"""The capture's "text" is its top rows, 4095 on a background of 1000."""
CT_SIZE = 64
SLICES = 3


def capture(study_uid: str) -> Dataset:
    ds = make_instance(
        study_uid=study_uid, rows=CAPTURE_SIZE, columns=CAPTURE_SIZE, modality="OT", series_number=9
    )
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    ds.BurnedInAnnotation = "YES"
    ds.BitsStored, ds.HighBit = 16, 15
    pixels = np.full((CAPTURE_SIZE, CAPTURE_SIZE), 1000, dtype=np.uint16)
    pixels[:TEXT_ROWS, :] = 4095
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    ds.PixelData = pixels.tobytes()
    return ds


def ct_stack(study_uid: str) -> list[Dataset]:
    series = generate_uid()
    out = []
    for number in range(1, SLICES + 1):
        ds = make_instance(
            study_uid=study_uid,
            series_uid=series,
            instance_number=number,
            rows=CT_SIZE,
            columns=CT_SIZE,
            series_number=1,
        )
        y, x = np.mgrid[0:CT_SIZE, 0:CT_SIZE]
        pixels = np.full((CT_SIZE, CT_SIZE), 200 * number, dtype=np.uint16)
        pixels[np.hypot(x - 40, y - 30) < 8] = 3000
        ds.PixelData = pixels.astype("<u2").tobytes()
        out.append(ds)
    return out


@dataclass
class Authoring:
    case_id: str
    teaching_study: str
    flagged_sop: str
    flagged_series: str
    ct_sops: list[str]
    educator: dict[str, str]


def bearer(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    answer = client.post(
        "/api/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def build(client: httpx.Client, admin_password: str) -> Authoring:
    """An educator (made by the first admin) and a draft case with one flagged capture."""
    admin = bearer(client, "admin", admin_password)
    made = client.post(
        "/api/users",
        json={"username": EDUCATOR, "password": PASSWORD, "role": "educator"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    return new_case(client, bearer(client, EDUCATOR, PASSWORD))


def new_case(client: httpx.Client, educator: dict[str, str]) -> Authoring:
    """A draft case of a new study: a CT stack and one flagged capture."""
    study = generate_uid()
    instances = [*ct_stack(study), capture(study)]
    body, content_type = multipart_body([to_bytes(ds) for ds in instances])
    stored = client.post(
        "/dicomweb/studies",
        content=body,
        headers={**educator, "Content-Type": content_type, "Accept": "application/dicom+json"},
    )
    assert stored.status_code == 200, stored.text
    case = client.post(
        "/api/cases", json={"study_instance_uid": study, "title": "Capture case"}, headers=educator
    )
    assert case.status_code == 201, case.text
    made_case: dict[str, Any] = case.json()
    (flagged,) = [i for i in made_case["instances"] if i["burned_in"]]
    ct = [i["sop_instance_uid"] for i in made_case["instances"] if not i["burned_in"]]
    return Authoring(
        case_id=made_case["id"],
        teaching_study=made_case["teaching_study_instance_uid"],
        flagged_sop=flagged["sop_instance_uid"],
        flagged_series=flagged["series_instance_uid"],
        ct_sops=ct,
        educator=educator,
    )


def sign_in(client: httpx.Client, username: str = EDUCATOR, password: str = PASSWORD) -> None:
    """A browser's sign-in: the session cookie is kept by the client."""
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "next": "/", "csrf": ""},
        headers={"Origin": str(client.base_url).rstrip("/")},
    )
    assert answer.status_code == 303, answer.text


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]*)"', page)
    assert found is not None, page
    return found.group(1)


def teaching_frame(client: httpx.Client, world: Authoring, headers: dict[str, str]) -> bytes:
    """The flagged instance's first frame as the teaching root serves it, native."""
    url = (
        f"/teaching/dicomweb/studies/{world.teaching_study}/series/{world.flagged_series}"
        f"/instances/{world.flagged_sop}/frames/1"
    )
    answer = client.get(
        url,
        headers={
            **headers,
            "Accept": 'multipart/related; type="application/octet-stream"; '
            "transfer-syntax=1.2.840.10008.1.2.1",
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.content
    start = body.index(b"\r\n\r\n") + 4
    end = body.rindex(b"\r\n--")
    return body[start:end]
