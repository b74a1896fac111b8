"""The studies the viewer is shown: made with pydicom, stored in our server by STOW-RS, and
one of them made into a teaching case through the API.

Why these studies: two patients, one of them with a non-ASCII name (UTF-8, ISO_IR 192), so
the study list proves the names come through QIDO-RS and OHIF intact; a CT series of real
geometry (position, orientation, spacing) so OHIF stacks it as it would a scanner's, with a
picture that differs from slice to slice (a texture that shifts, a disc that moves and
grows) so scrolling visibly changes the pixels; and a window in the data, so the first image
shows the picture and not a uniform grey.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.factories import make_instance, multipart_body, to_bytes

SIZE = 256
HU_OFFSET = 1024  # stored value = HU + 1024 (RescaleIntercept -1024)


@dataclass(frozen=True)
class Study:
    """What the test later looks for in the viewer."""

    study_uid: str
    patient_name: str  # as in the data set, DICOM PN with ^
    patient_id: str
    description: str
    slices: int

    @property
    def name_parts(self) -> list[str]:
        """The name's components, whatever order and separators a viewer shows them in."""
        return [part for part in self.patient_name.split("^") if part]


def studies() -> list[Study]:
    """The studies of one run, with UIDs of their own; the first is the one opened."""
    return [
        Study(generate_uid(), "Müller^Jürgen", "RC-OHIF-1", "CT Thorax e2e Übersicht", 20),
        Study(generate_uid(), "Doe^Jane", "RC-OHIF-2", "CT Abdomen e2e", 4),
    ]


def phantom(index: int, count: int) -> np.ndarray:
    """One slice in stored values: an air background, a soft-tissue body whose texture shifts
    with the slice index, a dark lung, and a bone disc that moves across and grows."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    centre = SIZE / 2
    hu = np.full((SIZE, SIZE), -1000.0)
    body = ((x - centre) / (0.45 * SIZE)) ** 2 + ((y - centre) / (0.38 * SIZE)) ** 2 <= 1
    phase = 0.8 * index  # the texture shifts from slice to slice: most of the picture changes
    hu[body] = 40 + 80 * np.sin(x[body] / 9 + phase) * np.cos(y[body] / 11)
    lung = ((x - 0.35 * SIZE) / (0.1 * SIZE)) ** 2 + ((y - centre) / (0.2 * SIZE)) ** 2 <= 1
    hu[lung] = -850
    fraction = index / max(count - 1, 1)
    disc_x = (0.3 + 0.4 * fraction) * SIZE
    disc_r = (0.04 + 0.06 * fraction) * SIZE
    hu[(x - disc_x) ** 2 + (y - 0.6 * SIZE) ** 2 <= disc_r**2] = 700
    return (hu + HU_OFFSET).clip(0, 4095).astype(np.uint16)


def ct_slice(study: Study, series_uid: str, frame_of_reference: str, index: int) -> Dataset:
    ds = make_instance(
        study_uid=study.study_uid,
        series_uid=series_uid,
        patient_name=study.patient_name,
        patient_id=study.patient_id,
        study_description=study.description,
        accession=study.patient_id.replace("-", ""),
        instance_number=index + 1,
        rows=SIZE,
        columns=SIZE,
        charset="ISO_IR 192",
    )
    ds.SeriesDescription = "Axial 5mm"
    ds.BurnedInAnnotation = "NO"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.FrameOfReferenceUID = frame_of_reference
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-0.5 * SIZE, -0.5 * SIZE, -5.0 * index]
    ds.SliceLocation = -5.0 * index
    ds.SliceThickness = 5
    ds.PixelSpacing = [1, 1]
    ds.RescaleIntercept = -HU_OFFSET
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.PixelData = phantom(index, study.slices).tobytes()
    return ds


def series(study: Study) -> list[Dataset]:
    series_uid, frame_of_reference = generate_uid(), generate_uid()
    return [ct_slice(study, series_uid, frame_of_reference, i) for i in range(study.slices)]


def store(dicomweb: str, study: Study) -> None:
    """STOW-RS the study's series in one request; every instance must be stored."""
    body, content_type = multipart_body([to_bytes(ds) for ds in series(study)])
    response = httpx.post(
        f"{dicomweb}/studies",
        content=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        timeout=60,
    )
    assert response.status_code == 200, f"STOW-RS: {response.status_code} {response.text}"


def teaching_case(base: str, study: Study) -> str:
    """A teaching case of the whole study through the API; its de-identified study's UID.
    No instance may be held back for review (the data say Burned In Annotation NO), else the
    teaching copy would miss the images the viewer is to show."""
    response = httpx.post(
        f"{base}/api/cases",
        json={"study_instance_uid": study.study_uid, "title": "OHIF end-to-end case"},
        timeout=60,
    )
    assert response.status_code == 201, f"POST /api/cases: {response.status_code} {response.text}"
    case = response.json()
    instances = case["instances"]
    assert len(instances) == study.slices, instances
    assert not [i for i in instances if i["burned_in"]], instances
    return str(case["teaching_study_instance_uid"])
