"""Ingest step 1 and 2: read an instance once, validate its identity and precompute what
reads will need (index values, DICOM JSON, frame table, bulk sidecar).

Nothing here writes anywhere; :mod:`storage.archive` does the writing, in order.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, JPEGBaseline8Bit, JPEGExtended12Bit

from storage import instance_json, normalize
from storage.attributes import in_series_doc, in_study_doc
from storage.dicom_text import attribute_text
from storage.dicomfile import ParsedInstance, UnreadableInstance, read_instance
from storage.errors import ArchiveError, IdentityMismatch, UnreadableDataset
from storage.pixels import PixelDescription, can_decode
from storage.query import is_valid_uid
from storage.raw_json import STRING_VRS
from storage.statuses import DimseStatus
from storage.transcode import first_frame_problem, needs_decoding

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
BIG_ENDIAN = "1.2.840.10008.1.2.2"


@dataclass
class Prepared:
    """An instance ready to be written: the file to store and everything precomputed."""

    source: BinaryIO
    size: int
    sha256: str
    parsed: ParsedInstance
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    body: instance_json.InstanceJson
    sidecar: bytes
    bulk_table: bytes | None
    study_values: dict[str, Any]
    series_values: dict[str, Any]
    instance_values: dict[str, Any]
    study_doc: bytes
    series_doc: bytes
    warnings: list[tuple[int, str]] = field(default_factory=list)
    decode_problem: str | None = None
    """Why the pixel data does not decode with the installed decoder (see
    :func:`decode_problem`); None when it does or nothing needs decoding."""


def prepare(source: BinaryIO, *, expected_study_uid: str | None = None) -> Prepared:
    """Parse and precompute one instance from a seekable binary file positioned anywhere."""
    warnings: list[tuple[int, str]] = []
    parsed = _parse(source)
    if not parsed.is_part10:
        source = _with_file_meta(source, parsed)
        parsed = _parse(source)
        warnings.append(
            (
                DimseStatus.COERCION_OF_DATA_ELEMENTS,
                "the data set had no PS3.10 File Meta Information; one was added (data set bytes "
                "unchanged)",
            )
        )
    ds = parsed.dataset
    header = Header(ds, parsed.json)
    study_uid, series_uid, sop_uid, sop_class_uid = _identity(header)
    if expected_study_uid is not None and study_uid != expected_study_uid:
        raise IdentityMismatch(
            f"StudyInstanceUID {study_uid} does not match the target study {expected_study_uid}",
            sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_uid,
        )
    meta = getattr(ds, "file_meta", None)
    stored_sop = str(meta.get("MediaStorageSOPInstanceUID", "")) if meta is not None else ""
    if stored_sop and stored_sop != sop_uid:
        warnings.append(
            (
                DimseStatus.DATA_SET_DOES_NOT_MATCH_SOP_CLASS_WARNING,
                f"MediaStorageSOPInstanceUID {stored_sop} differs from SOPInstanceUID",
            )
        )
    if parsed.pixel is not None and parsed.pixel.problem:
        warnings.append(
            (
                DimseStatus.DATA_SET_DOES_NOT_MATCH_SOP_CLASS_WARNING,
                f"frames cannot be served: {parsed.pixel.problem}",
            )
        )

    pixel = parsed.pixel
    body = instance_json.build(
        ds,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        little_endian=parsed.transfer_syntax != BIG_ENDIAN,
        pixel_vr=pixel.vr if pixel is not None else None,
        pixel_tag=pixel.tag if pixel is not None else 0x7FE00010,
        known=parsed.json,
    )
    derived = pixel.derived if pixel is not None and pixel.derived else b""
    undecodable = decode_problem(source, parsed, body.top_level)
    bulk_table = _bulk_table(body, shift=len(derived))
    source.seek(0)
    digest = hashlib.file_digest(source, "sha256").hexdigest()  # type: ignore[arg-type]
    # Not tell(): file_digest reads a BytesIO through its buffer without moving its position.
    size = source.seek(0, 2)
    source.seek(0)
    return Prepared(
        source=source,
        size=size,
        sha256=digest,
        parsed=parsed,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        sop_class_uid=sop_class_uid,
        body=body,
        sidecar=derived + body.sidecar,
        bulk_table=bulk_table,
        study_values=study_values(header),
        series_values=series_values(header),
        instance_values=instance_values(header),
        study_doc=_level_doc(body.top_level, in_study_doc),
        series_doc=_level_doc(body.top_level, in_series_doc),
        warnings=warnings,
        decode_problem=undecodable,
    )


DECODED_AT_INGEST = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit})
"""The syntaxes whose decoders may refuse an instance's bits though the syntax is supported."""


def decode_problem(
    source: BinaryIO, parsed: ParsedInstance, document: dict[str, Any]
) -> str | None:
    """Why this instance's compressed pixel data will not decode, found by decoding its
    first frame (:func:`storage.transcode.first_frame_problem`), so that a retrieve asking
    for Explicit VR Little Endian knows before it answers (PS3.18 §8.7.8.2).

    Only the JPEG DCT processes are tried (:data:`DECODED_AT_INGEST`): their decoders
    implement part of the syntax only (12-bit process 4 decodes with one codec and not with
    another: pydicom's ``JPEG-lossy.dcm`` fails, ``JPGExtended.dcm`` does not). The lossless,
    JPEG-LS, JPEG 2000 and RLE decoders implement their whole syntax, and decoding a frame of
    each at ingest cost ten times the ingest of a 512x512 CT (63 ms instead of 6 for JPEG 2000):
    for those, only a damaged stream fails, which the retrieve finds when it transcodes.

    None for native pixel data, no pixel data, or a syntax with no decoder installed (decided
    at read time). Encapsulated pixel data whose frames cannot be located is undecodable for
    the same reason that it cannot be split into frames.
    """
    pixel = parsed.pixel
    syntax = parsed.transfer_syntax
    if pixel is None or not needs_decoding(syntax) or not can_decode(syntax):
        return None
    table = pixel.frame_table
    if table is None:
        return pixel.problem
    if not table.frames or syntax not in DECODED_AT_INGEST:
        return None
    try:
        description = PixelDescription.from_json(document)
    except ArchiveError as exc:
        return str(exc)
    span = table.span(0)
    source.seek(span.offset)
    frame = table.extract(0, source.read(span.length))
    return first_frame_problem(syntax, frame, description)


def _parse(source: BinaryIO) -> ParsedInstance:
    source.seek(0)
    try:
        return read_instance(source)
    except UnreadableInstance as exc:
        raise UnreadableDataset(f"not a readable DICOM data set: {exc}") from exc


def _identity(ds: Header) -> tuple[str, str, str, str]:
    """The four UIDs every stored instance must carry (PS3.3 C.12.1, C.7.2.1, C.7.3.1)."""
    values = []
    sop_uid = ds.text("SOPInstanceUID")
    sop_class_uid = ds.text("SOPClassUID")
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        value = ds.text(keyword)
        if not value:
            raise IdentityMismatch(
                f"{keyword} is missing", sop_class_uid=sop_class_uid, sop_instance_uid=sop_uid
            )
        if not is_valid_uid(value):
            raise IdentityMismatch(
                f"{keyword} {value!r} is not a valid UID",
                sop_class_uid=sop_class_uid,
                sop_instance_uid=sop_uid,
            )
        values.append(value)
    return values[0], values[1], values[2], values[3]


def _with_file_meta(source: BinaryIO, parsed: ParsedInstance) -> BinaryIO:
    """Prefix a bare data set with a preamble and File Meta Information (PS3.10 §7.1) so that
    what WADO-RS returns is a proper PS3.10 file; the data set bytes are kept as they are."""
    ds = parsed.dataset
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(str(ds.get("SOPClassUID", "") or ""))
    meta.MediaStorageSOPInstanceUID = UID(str(ds.get("SOPInstanceUID", "") or ""))
    meta.TransferSyntaxUID = UID(parsed.transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)  # type: ignore[arg-type]
    source.seek(0)
    shutil.copyfileobj(source, out)
    out.seek(0)
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class Header:
    """An instance's attributes as text, read from the DICOM JSON computed from their bytes
    when there is one (:attr:`ParsedInstance.json`), else from the data set; both give the
    text :func:`storage.dicom_text.attribute_text` gives, without converting the element."""

    dataset: Dataset
    json: Mapping[int, dict[str, Any]] = field(default_factory=dict)

    def text(self, keyword: str) -> str:
        tag = tag_for_keyword(keyword) or -1
        value_json = self.json.get(tag)
        if value_json is None:
            return attribute_text(self.dataset, keyword) if tag in self.dataset else ""
        values = value_json.get("Value", ())
        if value_json["vr"] in STRING_VRS:
            return "\\".join(values).strip()
        if value_json["vr"] == "PN":
            return "\\".join("=".join(name.values()) for name in values).strip()
        return attribute_text(self.dataset, keyword)

    def get(self, keyword: str) -> Any:
        """The attribute's converted value (for those that are not text: sequences)."""
        return self.dataset.get(keyword)


def _text(ds: Header, keyword: str) -> str | None:
    """An attribute's value as index text; None (NULL in the index) when absent or empty."""
    return ds.text(keyword) or None


def _number(ds: Header, keyword: str) -> int | None:
    text = _text(ds, keyword)
    return normalize.integer(text) if text is not None else None


def _pn(ds: Header, keyword: str) -> tuple[str | None, str | None]:
    text = _text(ds, keyword)
    if text is None:
        return None, None
    return normalize.person_name_ci(text), normalize.person_name_fuzzy(text)


def _optional(value: str | None, form: Any) -> str | None:
    return form(value) if value is not None else None


def study_values(ds: Header) -> dict[str, Any]:
    name_ci, name_fuzzy = _pn(ds, "PatientName")
    ref_ci, ref_fuzzy = _pn(ds, "ReferringPhysicianName")
    return {
        "study_uid": _text(ds, "StudyInstanceUID"),
        "patient_id": _text(ds, "PatientID"),
        "issuer_of_patient_id": _text(ds, "IssuerOfPatientID"),
        "patient_name_ci": name_ci,
        "patient_name_fuzzy": name_fuzzy,
        "patient_birth_date": _optional(_text(ds, "PatientBirthDate"), normalize.date),
        "patient_sex": _text(ds, "PatientSex"),
        "study_date": _optional(_text(ds, "StudyDate"), normalize.date),
        "study_time": _optional(_text(ds, "StudyTime"), normalize.time),
        "accession_number": _text(ds, "AccessionNumber"),
        "referring_physician_name_ci": ref_ci,
        "referring_physician_name_fuzzy": ref_fuzzy,
        "study_id": _text(ds, "StudyID"),
        "study_description": _text(ds, "StudyDescription"),
    }


def series_values(ds: Header) -> dict[str, Any]:
    request = ds.get("RequestAttributesSequence")
    first = Header(request[0] if request else Dataset())
    return {
        "series_uid": _text(ds, "SeriesInstanceUID"),
        "modality": _text(ds, "Modality"),
        "series_number": _number(ds, "SeriesNumber"),
        "series_description": _text(ds, "SeriesDescription"),
        "body_part_examined": _text(ds, "BodyPartExamined"),
        "pps_start_date": _optional(_text(ds, "PerformedProcedureStepStartDate"), normalize.date),
        "pps_start_time": _optional(_text(ds, "PerformedProcedureStepStartTime"), normalize.time),
        "scheduled_procedure_step_id": _text(first, "ScheduledProcedureStepID"),
        "requested_procedure_id": _text(first, "RequestedProcedureID"),
    }


def instance_values(ds: Header) -> dict[str, Any]:
    return {
        "sop_uid": _text(ds, "SOPInstanceUID"),
        "sop_class_uid": _text(ds, "SOPClassUID"),
        "instance_number": _number(ds, "InstanceNumber"),
    }


def _level_doc(top_level: dict[str, Any], belongs: Any) -> bytes:
    """The DICOM JSON of one level's attributes, bulk data left out (QIDO never returns it)."""
    doc = {
        key: value
        for key, value in top_level.items()
        if belongs(int(key, 16)) and "BulkDataURI" not in value
    }
    return instance_json.dumps(doc)


def _bulk_table(body: instance_json.InstanceJson, *, shift: int) -> bytes | None:
    if not body.bulk:
        return None
    table = {e.path: [e.vr, e.offset + shift, e.length] for e in body.bulk}
    return instance_json.dumps(table)
