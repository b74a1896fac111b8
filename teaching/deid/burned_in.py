"""Which instances may carry identifying text in their pixels (PS3.15 E.3.1, PS3.3 C.7.6.1).

De-identifying the header does nothing for text burned into the image. An instance is flagged
when it says so (Burned In Annotation (0028,0301) "YES", General Image Module) or when it is of
a kind that routinely carries such text whatever it says: secondary captures and screen captures
(a grabbed screen shows whatever the screen showed), ultrasound (the scanner writes the patient
banner into the image), video and visible-light photographs (labels, faces), and radiation dose
reports (dose screens and reports carry the patient banner). A flagged case needs an educator's
decision before publication: confirm the pixels are clean, or blank regions
(`teaching.deid.blanking`). Recognizable Visual Features "YES" (a face, PS3.15 E.3.2) is
flagged too.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset

from storage.dicom_text import attribute_text
from teaching.deid.uids import normalize_uid

SECONDARY_CAPTURE = {
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.1": "Multi-frame Single Bit Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.2": "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.3": "Multi-frame Grayscale Word Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.7.4": "Multi-frame True Color Secondary Capture Image Storage",
}
ULTRASOUND = {
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound Image Storage",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage",
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound Image Storage (Retired)",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image Storage (Retired)",
    "1.2.840.10008.5.1.4.1.1.6.2": "Enhanced US Volume Storage",
}
VIDEO_AND_PHOTOGRAPHIC = {
    "1.2.840.10008.5.1.4.1.1.77.1.1": "VL Endoscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.1.1": "Video Endoscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.2.1": "Video Microscopic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.4.1": "Video Photographic Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.5.1": "Ophthalmic Photography 8 Bit Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.5.2": "Ophthalmic Photography 16 Bit Image Storage",
}
DOSE_REPORTS = {
    "1.2.840.10008.5.1.4.1.1.88.67": "X-Ray Radiation Dose SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.68": "Radiopharmaceutical Radiation Dose SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.73": "Patient Radiation Dose SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.76": "Enhanced X-Ray Radiation Dose SR Storage",
}
_KINDS = (
    (SECONDARY_CAPTURE, "secondary or screen capture"),
    (ULTRASOUND, "ultrasound"),
    (VIDEO_AND_PHOTOGRAPHIC, "video or visible-light photograph"),
    (DOSE_REPORTS, "radiation dose report"),
)
# Modality of screen captures and "other" images stored under other classes (PS3.3 C.7.3.1.1.1).
_CAPTURE_MODALITIES = {"SC": "secondary capture", "OT": "other (often a screen capture)"}


@dataclass(frozen=True)
class BurnedInAssessment:
    """Whether the pixels need an educator's review before publication, and why."""

    flagged: bool
    reasons: tuple[str, ...] = ()


def _upper(ds: Dataset, keyword: str) -> str:
    """A code string compared case-blind (writers are not all careful about CS case)."""
    return attribute_text(ds, keyword).upper()


def assess_burned_in(ds: Dataset) -> BurnedInAssessment:
    """Flag instances that say, or are of a kind known, to carry identifying text in pixels."""
    reasons: list[str] = []
    if _upper(ds, "BurnedInAnnotation") == "YES":
        reasons.append("Burned In Annotation (0028,0301) is YES")
    if _upper(ds, "RecognizableVisualFeatures") == "YES":
        reasons.append("Recognizable Visual Features (0028,0302) is YES")
    sop_class = normalize_uid(str(ds.get("SOPClassUID", "")))
    for classes, kind in _KINDS:
        if sop_class in classes:
            reasons.append(f"{classes[sop_class]} is a {kind}, which often carries burned-in text")
    modality = _upper(ds, "Modality")
    if modality in _CAPTURE_MODALITIES:
        reasons.append(f"Modality {modality} ({_CAPTURE_MODALITIES[modality]})")
    return BurnedInAssessment(flagged=bool(reasons), reasons=tuple(reasons))
