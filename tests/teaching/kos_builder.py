"""Key Object Selection Documents as a workstation sends them to ask for a teaching-file export.

The IOD is PS3.3 A.35.4 (Patient, General Study, Key Object Document Series, General Equipment,
Key Object Document, SR Document Content and SOP Common modules); the content tree is PS3.16
TID 2010 Key Object Selection: a CONTAINER titled by the document title, the observer context
(TID 1002/1003, "HAS OBS CONTEXT"), the Key Object Description TEXT (113012, DCM) and one IMAGE
item per key image, every referenced instance also listed in the Current Requested Procedure
Evidence Sequence (Hierarchical SOP Instance Reference Macro, PS3.3 C.17.2.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

KEY_OBJECT_SELECTION_CLASS = UID("1.2.840.10008.5.1.4.1.1.88.59")

# (code value, coding scheme designator, code meaning) of document titles (PS3.16 CID 7010 and
# IHE RAD TCE).
TEACHING_FILE_EXPORT_IHE = ("TCE001", "IHERADTF", "For Teaching File Export")
TEACHING_FILE_EXPORT_DCM = ("128710", "DCM", "For Teaching File Export")
FOR_TEACHING = ("113004", "DCM", "For Teaching")
OF_INTEREST = ("113000", "DCM", "Of Interest")
TEACHING_TITLES = (TEACHING_FILE_EXPORT_IHE, TEACHING_FILE_EXPORT_DCM, FOR_TEACHING)

KEY_OBJECT_DESCRIPTION = ("113012", "DCM", "Key Object Description")
OBSERVER_TYPE = ("121005", "DCM", "Observer Type")
PERSON = ("121006", "DCM", "Person")
PERSON_OBSERVER_NAME = ("121008", "DCM", "Person Observer Name")


def code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _content_item(relationship: str, value_type: str, concept: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = Sequence([code(*concept)])
    return item


def _sop_reference(image: Dataset, frames: Any = None) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = image.SOPClassUID
    ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
    if frames is not None:
        ref.ReferencedFrameNumber = frames
    return ref


def _evidence(images: Iterable[Dataset]) -> Sequence:
    """Current Requested Procedure Evidence Sequence: study > series > instances."""
    studies: dict[str, dict[str, list[Dataset]]] = {}
    for image in images:
        of_study = studies.setdefault(str(image.StudyInstanceUID), {})
        of_study.setdefault(str(image.SeriesInstanceUID), []).append(image)
    items = []
    for study_uid, by_series in studies.items():
        study = Dataset()
        study.StudyInstanceUID = study_uid
        series_items = []
        for series_uid, members in by_series.items():
            series = Dataset()
            series.SeriesInstanceUID = series_uid
            series.ReferencedSOPSequence = Sequence([_sop_reference(m) for m in members])
            series_items.append(series)
        study.ReferencedSeriesSequence = Sequence(series_items)
        items.append(study)
    return Sequence(items)


def build_kos(
    images: list[Dataset],
    *,
    title: tuple[str, str, str] = TEACHING_FILE_EXPORT_IHE,
    description: str | None = "Classic case of X\nlook at the left lower lobe",
    observer: str | None = "HOUSE^GREGORY",
    key_images: list[Dataset] | None = None,
    frames: Mapping[str, Any] | None = None,
) -> Dataset:
    """A KOS in the study of ``images[0]`` referencing every one of ``images`` (in its
    evidence) and showing ``key_images`` (default: all of them) as IMAGE items; ``frames``
    maps a SOP Instance UID to the value of its Referenced Frame Number."""
    first = images[0]
    frames = frames or {}
    shown = images if key_images is None else key_images

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = KEY_OBJECT_SELECTION_CLASS
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    # SOP Common
    ds.SOPClassUID = KEY_OBJECT_SELECTION_CLASS
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    # Patient and General Study: the study of the images
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
    ):
        setattr(ds, keyword, first.get(keyword, ""))
    # Key Object Document Series
    ds.Modality = "KO"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 99
    ds.ReferencedPerformedProcedureStepSequence = Sequence()
    # General Equipment
    ds.Manufacturer = "RadCase tests"
    # Key Object Document
    ds.InstanceNumber = 1
    ds.ContentDate = "20240103"
    ds.ContentTime = "120000"
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(images)
    # SR Document Content: the root CONTAINER and TID 2010
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = Sequence([code(*title)])
    ds.ContinuityOfContent = "SEPARATE"
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "2010"
    ds.ContentTemplateSequence = Sequence([template])
    content = []
    if observer is not None:
        observer_type = _content_item("HAS OBS CONTEXT", "CODE", OBSERVER_TYPE)
        observer_type.ConceptCodeSequence = Sequence([code(*PERSON)])
        name = _content_item("HAS OBS CONTEXT", "PNAME", PERSON_OBSERVER_NAME)
        name.PersonName = observer
        content += [observer_type, name]
    if description is not None:
        text = _content_item("CONTAINS", "TEXT", KEY_OBJECT_DESCRIPTION)
        text.TextValue = description
        content.append(text)
    for image in shown:
        item = Dataset()
        item.RelationshipType = "CONTAINS"
        item.ValueType = "IMAGE"
        item.ReferencedSOPSequence = Sequence(
            [_sop_reference(image, frames.get(str(image.SOPInstanceUID)))]
        )
        content.append(item)
    ds.ContentSequence = Sequence(content)
    return ds
