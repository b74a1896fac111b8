"""The de-identification entry point: a teaching copy of one instance (PS3.15 Annex E).

`deidentify` never changes the caller's dataset: it builds a new one, element by element, at
every depth of nested sequences:
- private attributes (odd groups, private creators included) are removed at every depth
  (PS3.15 Table E.1-1 "Private Attributes": X; the Retain Safe Private option is not offered);
- group length elements and file meta elements found in the body are dropped (they would be
  wrong after the edit); the file meta (group 0002) is rebuilt from scratch, so no original
  Implementation Version Name, Source Application Entity Title or private meta survives, with
  Media Storage SOP Instance UID equal to the copy's SOP Instance UID;
- each listed attribute gets its Table E.1-1 action (`teaching.deid.actions.resolve`), each
  unlisted one the VR-based extension of `resolve_unlisted` (UIDs remapped, free text cleaned);
- an overlay group (60xx) follows its Overlay Data row as a whole: removed with it, or kept with
  the bitmap zeroed and its text cleaned under Clean Graphics (a plane without data is invalid);
- the copy records the method (`teaching.deid.method`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from storage.dicom_text import UNDECODABLE, attribute_text
from teaching.deid.actions import (
    Action,
    Context,
    Mode,
    apply,
    resolve,
    resolve_unlisted,
)
from teaching.deid.burned_in import BurnedInAssessment, assess_burned_in
from teaching.deid.dates import patient_shift_days
from teaching.deid.method import record_method
from teaching.deid.options import DeidOptions
from teaching.deid.profile import Profile, default_profile
from teaching.deid.uids import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    UidMap,
    UidMapper,
    normalize_uid,
)

MIN_SECRET_BYTES = 16
OVERLAY_DATA = 0x3000


@dataclass(frozen=True)
class DeidResult:
    """The teaching copy and what the caller needs to keep about it.

    `uid_map` holds the (original -> replacement) UID pairs to persist, access-controlled, so a
    later export of the same patient joins the same teaching study; `burned_in` says whether an
    educator must review the pixels before publication; `date_shift_days` is the patient's shift
    (None when dates were not modified).
    """

    dataset: Dataset
    uid_map: UidMap
    burned_in: BurnedInAssessment
    date_shift_days: int | None
    options: DeidOptions = field(default_factory=DeidOptions)


def deployment_key(secret: bytes | str) -> bytes:
    """The HMAC key from the deployment secret; a short secret would make the mapping guessable."""
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the de-identification secret needs at least {MIN_SECRET_BYTES} bytes")
    return key


def _text_or_empty(ds: Dataset, keyword: str) -> str:
    """The attribute as text, and "" also when pydicom cannot decode its value: such an
    element is left out of the copy (see ``_Walker``), so the date shift and the file meta
    fall back as they would for an absent one. Any other error is a fault and goes up."""
    try:
        return attribute_text(ds, keyword)
    except UNDECODABLE:
        return ""


def shift_subject(ds: Dataset) -> tuple[str, str]:
    """Whose date shift applies: Patient ID and its issuer, or the study when there is no ID.

    Without a Patient ID the priors of the patient cannot be linked anyway; the study's UID at
    least keeps every instance of the study on one shift.
    """
    patient_id = _text_or_empty(ds, "PatientID")
    if patient_id:
        return patient_id, _text_or_empty(ds, "IssuerOfPatientID")
    return "study:" + normalize_uid(_text_or_empty(ds, "StudyInstanceUID")), ""


def _is_overlay_group(group: int) -> bool:
    return group >> 8 == 0x60 and group % 2 == 0 and (group & 0xFF) <= 0x1E


class _Walker:
    def __init__(self, profile: Profile, options: DeidOptions, ctx: Context) -> None:
        self.profile = profile
        self.options = options
        self.ctx = ctx
        ctx.recurse = self.dataset

    def dataset(self, source: Dataset, mode: Mode) -> Dataset:
        out = Dataset()
        for tag in list(source.keys()):
            tag = BaseTag(tag)
            if self._dropped(tag):
                continue
            try:
                element = source[tag]
            except Exception:
                # A value pydicom cannot decode cannot be inspected: leave it out.
                continue
            new = self.element(element, mode)
            if new is not None:
                out.add(new)
        return out

    def _dropped(self, tag: BaseTag) -> bool:
        """Private tags, group lengths, file meta and (unlisted) command elements in a body."""
        if tag.is_private or tag.element == 0 or tag.group == 0x0002:
            return True
        return tag.group == 0x0000 and self.profile.lookup(tag) is None

    def element(self, element: DataElement, mode: Mode) -> DataElement | None:
        tag = element.tag
        rule = self.profile.lookup(tag)
        if rule is None and _is_overlay_group(tag.group):
            rule = self.profile.lookup((tag.group << 16) | OVERLAY_DATA)
        if rule is not None:
            return apply(resolve(rule, self.options), element, self.ctx)
        resolved = resolve_unlisted(element, self.options, mode)
        if element.VR == "SQ" and resolved.action is Action.KEEP:
            # An unlisted sequence inherits the mode of the sequence it sits in.
            items = [self.dataset(item, mode) for item in element.value or []]
            return DataElement(tag, "SQ", Sequence(items))
        return apply(resolved, element, self.ctx)


def transfer_syntax_of(source: Dataset) -> str:
    """The transfer syntax of `source`: its file meta, else how it was read, else explicit LE."""
    meta = getattr(source, "file_meta", None)
    syntax = normalize_uid(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else ""
    if syntax:
        return syntax
    implicit, little = getattr(source, "original_encoding", (None, None))
    if implicit:
        return ImplicitVRLittleEndian
    if little is False:
        return ExplicitVRBigEndian
    return ExplicitVRLittleEndian


def _file_meta(source: Dataset, copy: Dataset, mapper: UidMapper, options: DeidOptions) -> None:
    """Rebuild group 0002 (PS3.10 7.1) from the copy, never from the original's meta."""
    source_meta = getattr(source, "file_meta", None)
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    sop_class = _text_or_empty(copy, "SOPClassUID")
    if not sop_class and source_meta is not None:
        sop_class = mapper.remap(_text_or_empty(source_meta, "MediaStorageSOPClassUID"))
    if sop_class:
        meta.MediaStorageSOPClassUID = UID(sop_class)
    original_media = (
        _text_or_empty(source_meta, "MediaStorageSOPInstanceUID") if source_meta else ""
    )
    media = original_media if options.retain_uids else mapper.remap(original_media)
    sop_instance = _text_or_empty(copy, "SOPInstanceUID") or media
    if sop_instance:
        meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = UID(transfer_syntax_of(source))
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    copy.file_meta = meta


def deidentify(
    dataset: Dataset,
    *,
    secret: bytes | str,
    options: DeidOptions | None = None,
    profile: Profile | None = None,
) -> DeidResult:
    """A de-identified copy of `dataset` under PS3.15's Basic Profile and `options`.

    The same instance de-identified twice with the same secret gives the same copy (same UIDs,
    same dates); a different secret gives different UIDs and a different date shift.
    """
    options = options or DeidOptions()
    key = deployment_key(secret)
    mapper = UidMapper(key)
    shift = None
    if options.retain_modified_dates:
        shift = patient_shift_days(key, *shift_subject(dataset))
    ctx = Context(key=key, uids=mapper, shift_days=shift, recurse=lambda ds, mode: ds)
    walker = _Walker(profile or default_profile(), options, ctx)
    copy = walker.dataset(dataset, Mode.NORMAL)
    _file_meta(dataset, copy, mapper, options)
    record_method(copy, options)
    return DeidResult(
        dataset=copy,
        uid_map=mapper.uid_map(),
        burned_in=assess_burned_in(dataset),
        date_shift_days=shift,
        options=options,
    )


__all__ = ["DeidResult", "deidentify", "deployment_key", "shift_subject", "transfer_syntax_of"]
