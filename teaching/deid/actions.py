"""The action codes of PS3.15 Table E.1-1, resolved per attribute and applied to one element.

Action codes (PS3.15 E.1.1, Table E.1-1 legend):
- X remove; Z replace with a zero-length value; D replace with a non-zero-length dummy value
  consistent with the VR; K keep; C clean (replace with values of similar meaning known not to
  contain identifying information); U replace a UID with a non-zero-length UID that is
  internally consistent within the set of instances.
- Combined codes are resolved by the strictest type of the attribute in any composite IOD
  (`teaching.deid.iod_types`): Z/D, X/Z, X/D, X/Z/D and X/Z/U* pick D (or U) for Type 1, Z for
  Type 2 (D where the code offers no Z) and X for Type 3.
- An option column of the table overrides the Basic Profile code when the option is in force
  (E.3). When several apply, C wins over K: the row belongs to something that must be cleaned
  (e.g. a calibration date is a device property kept by Retain Device Identity, but under the
  Modified Dates option it must be shifted like every other date, or intervals would leak).

Dummy values (D), per VR, chosen to be valid for the VR and obviously not data:
- text VRs (AE, CS, LO, LT, PN, SH, ST, UC, UT): "ANONYMIZED" (fits the 16 characters of AE,
  CS and SH); Patient ID (0010,0020) instead gets a keyed pseudonym "ANON-<16 hex>" so the
  patients of a teaching collection stay apart and a patient's studies stay together;
- DA "19000101", DT "19000101000000", TM "000000"; AS "000Y"; UR "urn:uuid:0...0";
- numbers (IS, DS, binary numbers) 0; bulk data (OB, OW, UN, ...) zero bytes of the same length;
- UI: a remapped UID (a fixed dummy UID would make different instances collide);
- SQ: the sequence is kept and its items processed in "dummy" mode: listed attributes follow
  their own rules, every other text value is replaced by the dummy, code strings (CS), numbers
  and the structure are kept, UIDs remapped. E.g. a Person Identification Code Sequence keeps an
  item, but not the person's code or name.

Clean (C), by the option that asked for it:
- Clean Descriptors (E.3.5), Clean Structured Content (E.3.4), Retain Patient Characteristics'
  cleaned attributes (E.3.7) and Retain Device Identity's AE titles (E.3.8): the only cleaning
  that is safe without a person reading the text is to replace it, so free text becomes the
  fixed neutral text "CLEANED" (a valid value even for Type 1 descriptors); bulk data becomes
  zero bytes; a sequence is kept and its items processed by the profile, so coded entries
  (controlled vocabulary) survive and everything identifying inside is handled by its own rule.
  The educator writes the teaching description; nothing automatic can.
- Retain ... Modified Dates (E.3.6): DA and the date part of DT are shifted by the patient's
  shift (`teaching.deid.dates`); TM, UTC offsets and time parts are kept (whole-day shift);
  opaque binary timestamps become zero bytes.
- Clean Graphics (E.3.3): graphic annotation sequences are processed by the profile (their free
  text cleaned), curve text replaced by "CLEANED" while curve data is kept, and overlay bitmaps
  zeroed: a bitmap can hold rendered text and cannot be read automatically.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from teaching.deid.dates import DUMMY_DATE, DUMMY_DATETIME, DUMMY_TIME, shift_date, shift_datetime
from teaching.deid.iod_types import strictest_type
from teaching.deid.options import (
    CLEAN_GRAPHICS,
    RETAIN_MODIFIED_DATES,
    DeidOptions,
)
from teaching.deid.profile import Rule
from teaching.deid.uids import UidMapper, remap_uid

DUMMY_TEXT = "ANONYMIZED"
CLEAN_TEXT = "CLEANED"
DUMMY_AGE = "000Y"
DUMMY_URI = "urn:uuid:00000000-0000-0000-0000-000000000000"
PATIENT_ID = 0x00100020

TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
FREE_TEXT_VRS = frozenset({"LT", "ST", "UT"})
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})
INT_VRS = frozenset({"US", "UL", "SS", "SL", "UV", "SV", "US or SS"})
FLOAT_VRS = frozenset({"FL", "FD"})
NUMBER_STRING_VRS = frozenset({"IS", "DS"})
TEMPORAL_VRS = frozenset({"DA", "DT", "TM"})
OVERLAY_DATA_ELEMENT = 0x3000


class Action(Enum):
    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    KEEP = "K"
    CLEAN = "C"
    REMAP = "U"


class CleanKind(Enum):
    TEXT = "text"
    TEMPORAL = "temporal"
    GRAPHICS = "graphics"


class Mode(Enum):
    """How the items of a sequence are processed: by the profile, or all text made dummy (D)."""

    NORMAL = "normal"
    DUMMY = "dummy"


@dataclass(frozen=True)
class Resolved:
    action: Action
    clean: CleanKind | None = None


def resolve_combined(code: str, tag: int) -> Action:
    """Pick one action of a combined code by the strictest IOD type of `tag` (PS3.15 E.1.1)."""
    if len(code) == 1:
        return Action(code)
    level = strictest_type(tag)
    allowed = code.replace("*", "").split("/")
    if level == 1:
        for choice in ("U", "D"):
            if choice in allowed:
                return Action(choice)
    if level <= 2:
        # Type 2 must be present; a zero-length value if the code offers it, else a dummy.
        return Action.EMPTY if "Z" in allowed else Action.DUMMY
    return Action.REMOVE if "X" in allowed else Action.EMPTY


def resolve(rule: Rule, options: DeidOptions) -> Resolved:
    """The action for a listed attribute under `options` (option columns override the code)."""
    enabled = options.enabled_columns()
    by_option = {column: code for column, code in rule.options.items() if column in enabled}
    cleaning = [column for column, code in by_option.items() if code == "C"]
    if cleaning:
        if RETAIN_MODIFIED_DATES in cleaning:
            return Resolved(Action.CLEAN, CleanKind.TEMPORAL)
        if CLEAN_GRAPHICS in cleaning:
            return Resolved(Action.CLEAN, CleanKind.GRAPHICS)
        return Resolved(Action.CLEAN, CleanKind.TEXT)
    if by_option:
        return Resolved(Action.KEEP)
    action = resolve_combined(rule.basic, rule.value)
    return Resolved(action, CleanKind.TEXT if action is Action.CLEAN else None)


def resolve_unlisted(element: DataElement, options: DeidOptions, mode: Mode) -> Resolved:
    """What to do with a public attribute Table E.1-1 does not list.

    Table E.1-1 lists the standard attributes known to carry identifying information; PS3.15 E.2
    states the profile's aim as removing all information related to the identity of the
    patient, the staff and the organizations. For what the table does not list (newer or
    retired attributes, attributes nested in unlisted sequences), these rules extend it only
    where the VR itself says the value is identifying or unreadable:
    - every UID is remapped (references inside sequences must follow the remapped instances);
    - free text (LT, ST, UT, e.g. an SR TEXT item's Text Value) is cleaned, as Clean Descriptors
      would, since free text is where names end up;
    - person names are removed, and dates follow the temporal option like listed dates;
    - an element whose VR is unknown (UN) cannot be inspected and is removed;
    - inside a sequence replaced by a dummy (D), every other text value becomes the dummy.
    Everything else (codes, numbers, image geometry, pixel data) is kept.
    """
    vr = element.VR
    if vr == "SQ":
        return Resolved(Action.KEEP)
    if vr == "UI":
        return Resolved(Action.KEEP if options.retain_uids else Action.REMAP)
    if vr == "UN" or vr == "PN":
        return Resolved(Action.REMOVE)
    if vr in TEMPORAL_VRS:
        if options.retain_modified_dates:
            return Resolved(Action.CLEAN, CleanKind.TEMPORAL)
        return Resolved(Action.KEEP if options.retain_full_dates else Action.REMOVE)
    if vr in FREE_TEXT_VRS:
        return Resolved(Action.CLEAN, CleanKind.TEXT)
    if mode is Mode.DUMMY and (vr in TEXT_VRS - {"CS"} or vr == "UR"):
        return Resolved(Action.DUMMY)
    return Resolved(Action.KEEP)


@dataclass
class Context:
    """What applying an action needs beyond the element: keys, the shift and the recursion."""

    key: bytes
    uids: UidMapper
    shift_days: int | None
    recurse: Callable[[Dataset, Mode], Dataset]


def _new(element: DataElement, value: object) -> DataElement:
    vr = element.VR
    if vr in ("OB or OW", "US or OW"):
        vr = "OB" if vr == "OB or OW" else "OW"
    elif vr == "US or SS":
        vr = "US"
    return DataElement(element.tag, vr, value)


def _values(element: DataElement) -> list[object]:
    value = element.value
    if value is None or value == "":
        return []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _per_value(element: DataElement, transform: Callable[[str], str]) -> DataElement:
    values = [transform(str(v)) for v in _values(element)]
    if not values:
        return _new(element, None)
    return _new(element, values[0] if len(values) == 1 else values)


def _zero_bytes(element: DataElement) -> DataElement:
    value = element.value
    length = len(value) if isinstance(value, bytes | bytearray) else 0
    length = max(2, length + (length % 2))
    return _new(element, bytes(length))


def patient_pseudonym(key: bytes, patient_id: str) -> str:
    """A keyed pseudonym for Patient ID: stable per patient, meaningless without the secret."""
    digest = hmac.new(key, b"patient-id\x00" + patient_id.strip().encode(), hashlib.sha256)
    return "ANON-" + digest.hexdigest()[:16].upper()


def _remap(element: DataElement, ctx: Context) -> DataElement:
    return _per_value(element, ctx.uids.remap)


def empty(element: DataElement) -> DataElement:
    """Z: a zero-length value of the same VR (an empty sequence for SQ)."""
    if element.VR == "SQ":
        return DataElement(element.tag, "SQ", Sequence([]))
    if element.VR in BINARY_VRS:
        return _new(element, b"")
    return _new(element, None)


def dummy(element: DataElement, ctx: Context) -> DataElement:
    """D: a non-zero-length dummy value consistent with the VR (see the module docstring)."""
    vr = element.VR
    if vr == "SQ":
        items = [ctx.recurse(item, Mode.DUMMY) for item in element.value or []]
        return DataElement(element.tag, "SQ", Sequence(items))
    if vr == "UI":
        if _values(element):
            return _remap(element, ctx)
        # An empty UID under D still needs a value; a keyed one that maps from nothing.
        return _new(element, remap_uid(ctx.key, f"dummy:{int(element.tag):08X}"))
    if element.tag == PATIENT_ID:
        original = str(element.value or "")
        return _new(element, patient_pseudonym(ctx.key, original))
    if vr == "DA":
        return _new(element, DUMMY_DATE)
    if vr == "DT":
        return _new(element, DUMMY_DATETIME)
    if vr == "TM":
        return _new(element, DUMMY_TIME)
    if vr == "AS":
        return _new(element, DUMMY_AGE)
    if vr == "UR":
        return _new(element, DUMMY_URI)
    if vr in TEXT_VRS:
        return _new(element, DUMMY_TEXT)
    if vr in NUMBER_STRING_VRS:
        return _new(element, "0")
    if vr in INT_VRS:
        return _new(element, 0)
    if vr in FLOAT_VRS:
        return _new(element, 0.0)
    if vr in BINARY_VRS:
        return _zero_bytes(element)
    return copy.deepcopy(element)


def clean(element: DataElement, kind: CleanKind, ctx: Context) -> DataElement:
    """C: replace with a value of similar meaning free of identifying information."""
    vr = element.VR
    if vr == "SQ":
        items = [ctx.recurse(item, Mode.NORMAL) for item in element.value or []]
        return DataElement(element.tag, "SQ", Sequence(items))
    if vr == "UI":
        return _remap(element, ctx)
    if kind is CleanKind.TEMPORAL:
        days = ctx.shift_days
        if vr == "DA":
            return _per_value(element, lambda v: shift_date(v, days) if days else DUMMY_DATE)
        if vr == "DT":
            return _per_value(
                element, lambda v: shift_datetime(v, days) if days else DUMMY_DATETIME
            )
        if vr in BINARY_VRS:
            return _zero_bytes(element)
        return copy.deepcopy(element)
    if kind is CleanKind.GRAPHICS:
        is_overlay_data = element.tag.group >> 8 == 0x60 and element.tag.element == 0x3000
        if is_overlay_data:
            return _zero_bytes(element)
        if vr in TEXT_VRS - {"CS"}:
            return _new(element, CLEAN_TEXT if _values(element) else None)
        return copy.deepcopy(element)
    if vr in TEXT_VRS:
        return _new(element, CLEAN_TEXT if _values(element) else None)
    if vr == "UR":
        return _new(element, DUMMY_URI)
    if vr in BINARY_VRS:
        return _zero_bytes(element)
    if vr in TEMPORAL_VRS:
        return dummy(element, ctx)
    return copy.deepcopy(element)


def keep(element: DataElement, ctx: Context) -> DataElement:
    """K: keep the value; a kept sequence still has its items processed by the profile."""
    if element.VR == "SQ":
        items = [ctx.recurse(item, Mode.NORMAL) for item in element.value or []]
        return DataElement(element.tag, "SQ", Sequence(items))
    return copy.deepcopy(element)


def apply(resolved: Resolved, element: DataElement, ctx: Context) -> DataElement | None:
    """The element that replaces `element` in the copy, or None when it is removed."""
    action = resolved.action
    if action is Action.REMOVE:
        return None
    if action is Action.EMPTY:
        return empty(element)
    if action is Action.DUMMY:
        return dummy(element, ctx)
    if action is Action.CLEAN:
        return clean(element, resolved.clean or CleanKind.TEXT, ctx)
    if action is Action.REMAP:
        if element.VR == "UI":
            return _remap(element, ctx)
        if element.VR == "SQ":
            return keep(element, ctx)
        return dummy(element, ctx)
    return keep(element, ctx)
