"""Date modification for the Retain Longitudinal Temporal Information with Modified Dates Option.

PS3.15 E.3.6: dates are modified rather than removed, in a way that keeps the temporal
relationships between a patient's studies, so that a prior stays "14 months earlier". The
modification here is one whole-number-of-days shift per patient:

- the shift is HMAC-SHA256(secret, PatientID + IssuerOfPatientID) read as an integer and folded
  into [-3650, -365] days: always at least a year into the past (a shifted date never lies in
  the future and never equals the original), at most ten years; the same patient gets the same
  shift in every export, different patients almost always different ones, and nobody without
  the secret can undo it;
- DA values and the date part of DT values are shifted; the time of day (TM values, the time part
  of DT values) and UTC offsets are kept, because a whole-day shift moves every date+time pair by
  the same interval and so keeps the intervals exact, which is what E.3.6 asks for;
- a value that is not a valid date is replaced by a dummy date and never raises: a broken date in
  a clinical file must not stop its teaching copy.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re

SHIFT_MIN_DAYS = -3650
SHIFT_MAX_DAYS = -365
DUMMY_DATE = "19000101"
DUMMY_DATETIME = "19000101000000"
DUMMY_TIME = "000000"

_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
# ACR-NEMA style dates (PS3.5 6.2, retired form) are still found in old files.
_DA_LEGACY = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?([+-]\d{4})?$")


def patient_shift_days(key: bytes, patient_id: str, issuer: str = "") -> int:
    """The day shift of one patient: a keyed hash folded into [SHIFT_MIN_DAYS, SHIFT_MAX_DAYS]."""
    message = b"dateshift\x00" + patient_id.strip().encode() + b"\x00" + issuer.strip().encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    span = SHIFT_MAX_DAYS - SHIFT_MIN_DAYS + 1
    return SHIFT_MIN_DAYS + int.from_bytes(digest[:8], "big") % span


def _shift(date: datetime.date, days: int) -> datetime.date | None:
    try:
        return date + datetime.timedelta(days=days)
    except OverflowError:
        return None


def shift_date(value: str, days: int) -> str:
    """A DA value moved by `days`; anything that is not a valid date becomes DUMMY_DATE."""
    text = str(value).strip()
    match = _DA.match(text) or _DA_LEGACY.match(text)
    if match is None:
        return DUMMY_DATE
    try:
        date = datetime.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return DUMMY_DATE
    shifted = _shift(date, days)
    return shifted.strftime("%Y%m%d") if shifted is not None else DUMMY_DATE


def shift_datetime(value: str, days: int) -> str:
    """A DT value with its date part moved by `days`, at the precision it had.

    A DT may stop at the year or the month (PS3.5 Table 6.2-1); missing parts count as the first
    of the month or year for the shift and are left out again in the result.
    """
    text = str(value).strip()
    match = _DT.match(text)
    if match is None:
        return DUMMY_DATETIME
    year, month, day, time_part, offset = match.groups()
    try:
        date = datetime.date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return DUMMY_DATETIME
    shifted = _shift(date, days)
    if shifted is None:
        return DUMMY_DATETIME
    out = f"{shifted.year:04d}"
    if month is not None:
        out += f"{shifted.month:02d}"
    if day is not None:
        out += f"{shifted.day:02d}"
    return out + (time_part or "") + (offset or "")


def is_valid_date(value: str) -> bool:
    """True for a DA value that names a real calendar date (YYYYMMDD)."""
    match = _DA.match(str(value).strip())
    if match is None:
        return False
    try:
        datetime.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return False
    return True
