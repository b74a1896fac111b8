"""No original identifying value survives in the teaching copy of any file pydicom ships.

For each corpus file (tests/factories.py CORPUS_ALL), de-identified with the default options:
1. Every value the profile does not keep is looked for in the copy: the values of listed
   attributes whose expected action (from the table, see test_profile_conformance.expected) is
   not K, plus, listed or not, every person name, date (DA, DT), UID and free text (LT, ST,
   UT), every private attribute's text (not its numbers or codes) and the original file meta's
   texts. The copy is searched
   at every depth, file meta included, as decoded text (substring match) and as encoded bytes.
   Exempt by design: times (TM) and UTC offsets, which a whole-day date shift keeps
   (teaching.deid.dates).
   Trivial values are skipped, because they legitimately recur in kept attributes (sizes,
   counts, enumerated codes): values shorter than 4 characters, digit-only values shorter than 6
   characters, well-known UIDs, and values found inside the engine's own fixed replacements
   ("ANONYMIZED", "CLEANED", the dummy dates). A value is also exempt when an attribute the
   profile keeps carries the same text in the original (e.g. an Institution Name "TOSHIBA" and
   the Manufacturer "TOSHIBA_MEC", a private "product id" and the Manufacturer's Model Name):
   the copy then holds it because of the kept attribute, not because of the removed one.
2. Every UID in the copy is well-known or one of the copy's own replacement UIDs, and the
   mapping is consistent: the same original UID at two places of the original gives the same
   UID at both places of the copy, different originals give different UIDs.
3. The copy holds no private attribute and can be written and read back.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from teaching.deid import DeidOptions, deidentify, is_well_known
from teaching.deid.actions import CLEAN_TEXT, DUMMY_AGE, DUMMY_TEXT, DUMMY_URI
from teaching.deid.dates import DUMMY_DATE, DUMMY_DATETIME, DUMMY_TIME
from teaching.deid.profile import default_profile, table_rows
from tests.factories import CORPUS_ALL, CORPUS_DIR
from tests.teaching.test_profile_conformance import expected

SECRET = b"corpus-test-secret-0123456789abcdef"
OPTIONS = DeidOptions()
ALWAYS_CHECKED_VRS = {"PN", "DA", "DT", "UI", "LT", "ST", "UT"}
# Private values checked: the text that can name someone (numbers and codes recur legitimately).
PRIVATE_TEXT_VRS = {"AE", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "UC", "UI", "UR", "UT"}
OWN_CONSTANTS = (
    DUMMY_TEXT,
    CLEAN_TEXT,
    DUMMY_AGE,
    DUMMY_URI,
    DUMMY_DATE,
    DUMMY_DATETIME,
    DUMMY_TIME,
)
PROFILE = default_profile()
ROW_OF_RULE = {str(row["tag"]).strip(): row for row in table_rows()}


def _read(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True)


def _values(element: DataElement) -> list[str]:
    value = element.value
    if value is None or element.VR == "SQ" or isinstance(value, bytes | bytearray):
        return []
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)]


def _walk(ds: Dataset, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, element) for every element at every depth; unreadable elements are skipped."""
    for tag in list(ds.keys()):
        try:
            element = ds[tag]
        except Exception:
            continue
        here = (*path, int(tag))
        yield here, element
        if element.VR == "SQ" and element.value is not None:
            for index, item in enumerate(element.value):
                yield from _walk(item, (*here, index))


def _expected_action(tag: int) -> tuple[str, str | None] | None:
    rule = PROFILE.lookup(tag)
    if rule is None and tag >> 24 == 0x60 and (tag >> 16) % 2 == 0:
        rule = PROFILE.lookup((tag & 0xFFFF0000) | 0x3000)
    if rule is None:
        return None
    return expected(ROW_OF_RULE[rule.tag_text], OPTIONS)


def _trivial(value: str) -> bool:
    value = value.strip().rstrip("\x00").strip()
    if len(value) < 4:
        return True
    digits = value.replace(".", "").replace("-", "").replace("+", "").replace(" ", "")
    if digits.isdigit() and len(digits) < 6:
        return True
    if is_well_known(value):
        return True
    return any(value in constant for constant in OWN_CONSTANTS)


def _candidates(value: str, vr: str) -> list[str]:
    values = [value]
    if vr == "PN":
        values += [p for group in value.split("=") for p in group.split("^")]
    return [v.strip().rstrip("\x00").strip() for v in values if not _trivial(v)]


def secrets_of(ds: Dataset) -> tuple[dict[str, str], list[str]]:
    """(value -> where it came from) for every original value the copy must not contain, and
    the texts of the original's kept attributes."""
    found: dict[str, str] = {}
    kept: list[str] = []
    meta = getattr(ds, "file_meta", None)
    sources: list[tuple[str, Dataset]] = [("body", ds)]
    if meta is not None:
        sources.append(("meta", meta))
    for origin, dataset in sources:
        for path, element in _walk(dataset):
            tag = element.tag
            vr = element.VR
            action = None if tag.is_private else _expected_action(int(tag))
            if origin == "meta":
                check = tag.element not in (0x0001, 0x0002, 0x0010)  # version, class, syntax
            elif tag.is_private:
                check = vr in PRIVATE_TEXT_VRS
            elif action is not None:
                code, column = action
                kept_time = column == "rtnLongModifDatesOpt" and vr not in ("DA", "DT")
                check = code != "K" and not kept_time
            else:
                check = vr in ALWAYS_CHECKED_VRS
            if vr == "SQ":
                continue
            if not check:
                if origin == "body" and not tag.is_private:
                    kept.extend(_values(element))
                continue
            for value in _values(element):
                for candidate in _candidates(value, vr):
                    found.setdefault(candidate, f"{origin} {element.name} {path}")
    return found, kept


def texts_of(ds: Dataset) -> list[str]:
    texts = []
    for source in (ds, ds.file_meta):
        for _, element in _walk(source):
            texts.extend(_values(element))
    return texts


def _encoded_without_pixels(ds: Dataset) -> bytes:
    out = io.BytesIO()
    clone = Dataset(ds)
    clone.file_meta = ds.file_meta
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in clone:
            del clone[keyword]
    clone.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _uids(ds: Dataset) -> dict[tuple[Any, ...], str]:
    uids = {}
    for origin, source in (("body", ds), ("meta", getattr(ds, "file_meta", Dataset()))):
        for path, element in _walk(source):
            if element.VR == "UI" and not element.tag.is_private:
                for index, value in enumerate(_values(element)):
                    uids[(origin, *path, index)] = value.strip().rstrip("\x00")
    return uids


def _corpus_id(path: Path) -> str:
    return str(path.relative_to(CORPUS_DIR))


@pytest.mark.parametrize("path", CORPUS_ALL, ids=_corpus_id)
def test_no_original_value_survives(path: Path) -> None:
    original = _read(path)
    result = deidentify(original, secret=SECRET, options=OPTIONS)
    copy = result.dataset
    texts = texts_of(copy)
    encoded = _encoded_without_pixels(copy)
    leaks = []
    secrets, kept = secrets_of(original)
    for value, origin in secrets.items():
        if any(value in text for text in kept):
            continue  # a kept attribute of the original carries the same text
        if any(value in text for text in texts):
            leaks.append(f"{value!r} (from {origin}) in the copy's values")
        elif len(value) >= 6 and value.encode("utf-8", "ignore") in encoded:
            leaks.append(f"{value!r} (from {origin}) in the copy's encoding")
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize("path", CORPUS_ALL, ids=_corpus_id)
def test_every_uid_resolves_inside_the_copy(path: Path) -> None:
    original = _read(path)
    result = deidentify(original, secret=SECRET, options=OPTIONS)
    replacements = result.uid_map.replacements()
    copy_uids = _uids(result.dataset)
    strays = [
        f"{where}: {uid}"
        for where, uid in copy_uids.items()
        if uid and not is_well_known(uid) and uid not in replacements
    ]
    assert not strays, "\n".join(strays)
    # Same place, consistent mapping: equal originals stay equal, different ones stay apart.
    original_uids = _uids(original)
    forward: dict[str, str] = {}
    backward: dict[str, str] = {}
    for where, old in original_uids.items():
        if where[0] == "meta" or where not in copy_uids or not old:
            continue
        new = copy_uids[where]
        assert forward.setdefault(old, new) == new, f"{old} mapped two ways"
        assert backward.setdefault(new, old) == old, f"{new} stands for two UIDs"
        assert new == old if is_well_known(old) else new.startswith("2.25.")
    if "SOPInstanceUID" in result.dataset:
        meta = result.dataset.file_meta
        assert meta.MediaStorageSOPInstanceUID == result.dataset.SOPInstanceUID


@pytest.mark.parametrize("path", CORPUS_ALL, ids=_corpus_id)
def test_copy_has_no_private_attributes_and_round_trips(path: Path) -> None:
    original = _read(path)
    copy = deidentify(original, secret=SECRET, options=OPTIONS).dataset
    assert not any(element.tag.is_private for _, element in _walk(copy))
    buffer = io.BytesIO()
    copy.save_as(buffer, enforce_file_format=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    assert back.PatientIdentityRemoved == "YES"
    assert back.file_meta.ImplementationVersionName == "RADCASE_DEID_1"
    assert "SourceApplicationEntityTitle" not in back.file_meta
