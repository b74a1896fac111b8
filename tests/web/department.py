"""A small department for the web app's tests and benchmark, built through the server's own
API as an educator would: a learner, a chest CT with a lung nodule (a synthetic phantom,
generated here), a published case with one question of each kind, a group and an assignment.

Every text the learner must not see before answering carries a marker (``HIDDEN``; the hint
``HINT`` until it is asked for), so a test can search every byte a browser received for them.
The options of the multiple-choice question are shown to the learner by design; which one is
right is not, and the right one is the second (``b``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.factories import make_instance, multipart_body, to_bytes

LEARNER = "resident"
EDUCATOR = "teacher"
PASSWORD = "a long password for tests"
HIDDEN = {
    "title": "Solitary nodule QXTITLE",
    "findings": "Spiculated mass QXFINDINGS",
    "diagnosis": "Adenocarcinoma QXDIAGNOSIS",
    "differential": "Granuloma QXDIFFERENTIAL",
    "discussion": "Fleischner QXDISCUSSION",
    "free_tag": "qxfreetag",
    "free_text": "qxacceptedanswer",
    "synonym": "qxsynonym",
    "feedback": "Look at the right lung QXFEEDBACK",
    "study_description": "CT CHEST NODULE QXSTUDYDESC",
    "series_description": "AXIAL NODULE QXSERIESDESC",
}
SLICES = 20
SIZE = 256
HINT = "Right lower zone QXHINT"
NODULE = (170.0, 140.0, 10, 14.0)
"""Column, row, slice (instance number) and radius in pixels of the nodule."""


def phantom(slice_number: int) -> np.ndarray:
    """A chest-like slice in stored values (rescale intercept -1024): air, body, two lungs,
    a spine, and the nodule on the slices near ``NODULE``'s."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    hu = np.full((SIZE, SIZE), -1000.0, dtype=np.float32)
    body = ((cols - 128) / 110) ** 2 + ((rows - 128) / 85) ** 2 <= 1
    hu[body] = 40
    for centre in (80, 176):
        lung = ((cols - centre) / 38) ** 2 + ((rows - 120) / 55) ** 2 <= 1
        hu[lung] = -820
    spine = (cols - 128) ** 2 + (rows - 190) ** 2 <= 14**2
    hu[spine] = 700
    x, y, z, r = NODULE
    radius = r * max(0.0, 1 - abs(slice_number - z) / 4)
    if radius > 0:
        hu[(cols - x) ** 2 + (rows - y) ** 2 <= radius**2] = 30
    return (hu + 1024).astype(np.int16)


def chest_ct() -> list[Dataset]:
    study = generate_uid()
    series = generate_uid()
    out = []
    for number in range(1, SLICES + 1):
        ds = make_instance(
            study_uid=study,
            series_uid=series,
            instance_number=number,
            rows=SIZE,
            columns=SIZE,
            study_description=HIDDEN["study_description"],
            patient_name="CHEST^PHANTOM",
            patient_id="PHANTOM-1",
        )
        ds.SeriesDescription = HIDDEN["series_description"]
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        ds.PatientAge = "064Y"
        ds.ImagePositionPatient = [0, 0, float(number * 5)]
        ds.PixelData = phantom(number).tobytes()
        out.append(ds)
    return out


@dataclass
class Department:
    base_url: str
    case_id: str
    teaching_study: str
    questions: dict[str, str]
    locate: dict[str, Any]
    assignment_id: str
    hidden: list[str] = field(default_factory=lambda: list(HIDDEN.values()))


def token(client: httpx.Client, username: str, password: str) -> dict[str, str]:
    answer = client.post(
        "/api/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def build(base_url: str, admin_password: str) -> Department:
    """The department on a running server whose first admin has ``admin_password``."""
    with httpx.Client(base_url=base_url, timeout=60) as client:
        admin = token(client, "admin", admin_password)
        for name, role in ((LEARNER, "learner"), (EDUCATOR, "educator")):
            made = client.post(
                "/api/users",
                json={"username": name, "password": PASSWORD, "role": role},
                headers=admin,
            )
            assert made.status_code == 201, made.text
        educator = token(client, EDUCATOR, PASSWORD)

        def ok(method: str, url: str, **kwargs: Any) -> Any:
            answer = client.request(method, url, headers=educator, **kwargs)
            assert answer.status_code in (200, 201), f"{method} {url}: {answer.text}"
            return answer.json()

        instances = chest_ct()
        body, content_type = multipart_body([to_bytes(ds) for ds in instances])
        stored = client.post(
            "/dicomweb/studies",
            content=body,
            headers={**admin, "Content-Type": content_type, "Accept": "application/dicom+json"},
        )
        assert stored.status_code == 200, stored.text
        case = ok(
            "POST",
            "/api/cases",
            json={
                "study_instance_uid": instances[0].StudyInstanceUID,
                "title": HIDDEN["title"],
                "history": "64-year-old smoker with a cough for three months.",
                "findings": HIDDEN["findings"],
                "diagnosis": HIDDEN["diagnosis"],
                "differential": [HIDDEN["differential"]],
                "discussion": HIDDEN["discussion"],
                "tags": {
                    "categories": ["TCE302"],
                    "level": "TCE202",
                    "modalities": ["CT"],
                    "anatomy": ["chest"],
                    "free": [HIDDEN["free_tag"]],
                },
            },
        )
        teaching_study = case["teaching_study_instance_uid"]
        ok("POST", f"/api/cases/{case['id']}/publish")
        found = client.get(
            f"/teaching/dicomweb/studies/{teaching_study}/instances",
            params={"InstanceNumber": str(NODULE[2])},
            headers=educator,
        )
        assert found.status_code == 200, found.text
        nodule_sop = found.json()[0]["00080018"]["Value"][0]
        x, y, _, r = NODULE
        region = {"shape": "ellipse", "cx": x, "cy": y, "rx": r + 2, "ry": r + 2}
        questions = {
            "multiple_choice": ok(
                "POST",
                f"/api/cases/{case['id']}/questions",
                json={
                    "prompt": "What is the most likely diagnosis?",
                    "key": {
                        "kind": "multiple_choice",
                        "options": [
                            {"id": "a", "text": "Pneumonia"},
                            {"id": "b", "text": "Lung cancer"},
                            {"id": "c", "text": "Pneumothorax"},
                            {"id": "d", "text": "Normal study"},
                        ],
                        "correct": ["b"],
                    },
                    "feedback": HIDDEN["feedback"],
                    "hint": HINT,
                },
            )["id"],
            "free_text": ok(
                "POST",
                f"/api/cases/{case['id']}/questions",
                json={
                    "prompt": "Name the finding.",
                    "key": {
                        "kind": "free_text",
                        "accepted": [HIDDEN["free_text"]],
                        "synonyms": [HIDDEN["synonym"]],
                    },
                },
            )["id"],
            "locate": ok(
                "POST",
                f"/api/cases/{case['id']}/questions",
                json={
                    "prompt": "Point at the nodule.",
                    "key": {
                        "kind": "locate",
                        "sop_instance_uid": nodule_sop,
                        "frame": 1,
                        "region": region,
                    },
                },
            )["id"],
        }
        group = ok("POST", "/api/groups", json={"name": "First years", "members": [LEARNER]})
        assignment = ok(
            "POST",
            f"/api/groups/{group['id']}/assignments",
            json={
                "title": "Chest week",
                "case_ids": [case["id"]],
                "due_at": "2030-01-31T17:00:00Z",
            },
        )
        return Department(
            base_url=base_url,
            case_id=case["id"],
            teaching_study=teaching_study,
            questions=questions,
            locate={"sop": nodule_sop, "frame": 1, "x": x, "y": y, "region": region},
            assignment_id=assignment["id"],
        )
