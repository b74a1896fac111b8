"""PS3.15 Table E.1-1 conformance, generated from the shipped table.

For every row and for the default options and each option toggled, a dataset carries the
attribute at the top level and inside sequences (one and two levels deep); the teaching copy is
checked against the action the row calls for. The expected action is computed here, from the
table, the options and the curated IOD types, not by the engine's resolver:
X absent; Z zero-length; D non-empty and different (a sequence keeps an item whose text is
dummy); K unchanged (a kept sequence keeps its items, whose own listed attributes follow their
rules); C changed (dates: shifted by the patient's shift, times and UTC offsets kept, see
teaching.deid.dates; sequences keep their items with identifying content replaced); U a 2.25
UID, the same wherever the original UID occurs.

Placement notes: file meta attributes (group 0002) are tested in the file meta only, since a
sequence item cannot hold them (PS3.10 7.1); the "(50xx,xxxx)" curve row is instantiated as
Curve Description (5000,0022), the overlay rows in group 6000; the private-attributes row as a
private creator and a private element in group 0009.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from teaching.deid import DeidOptions, deidentify
from teaching.deid.dates import shift_date, shift_datetime
from teaching.deid.iod_types import STRICTEST_TYPE
from teaching.deid.profile import default_profile, table_rows
from teaching.deid.uids import remap_uid

SECRET = b"conformance-test-secret-0123456789"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
OUTER = Tag("SharedFunctionalGroupsSequence")
INNER = Tag("FrameAnatomySequence")
ITEM_UID = "1.2.826.0.1.3680043.9.7777.99.1"

DEFAULT = DeidOptions()
OPTION_SETS: dict[str, DeidOptions] = {
    "default": DEFAULT,
    "no-patient-characteristics": dataclasses.replace(
        DEFAULT, retain_patient_characteristics=False
    ),
    "no-modified-dates": dataclasses.replace(DEFAULT, retain_modified_dates=False),
    "no-clean-descriptors": dataclasses.replace(DEFAULT, clean_descriptors=False),
    "no-clean-structured-content": dataclasses.replace(DEFAULT, clean_structured_content=False),
    "no-clean-graphics": dataclasses.replace(DEFAULT, clean_graphics=False),
    "retain-uids": dataclasses.replace(DEFAULT, retain_uids=True),
    "retain-device-identity": dataclasses.replace(DEFAULT, retain_device_identity=True),
    "retain-institution-identity": dataclasses.replace(DEFAULT, retain_institution_identity=True),
    "retain-full-dates": dataclasses.replace(
        DEFAULT, retain_modified_dates=False, retain_full_dates=True
    ),
}
# Which option switches which column of the table, restated here rather than imported.
COLUMN_OF = {
    "retain_uids": "rtnUIDsOpt",
    "retain_device_identity": "rtnDevIdOpt",
    "retain_institution_identity": "rtnInstIdOpt",
    "retain_patient_characteristics": "rtnPatCharsOpt",
    "retain_full_dates": "rtnLongFullDatesOpt",
    "retain_modified_dates": "rtnLongModifDatesOpt",
    "clean_descriptors": "cleanDescOpt",
    "clean_structured_content": "cleanStructContOpt",
    "clean_graphics": "cleanGraphOpt",
}
ROWS = table_rows()
BINARY = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}


def _row_id(row: dict[str, Any]) -> str:
    return str(row["id"])


def concrete_tag(row: dict[str, Any]) -> int:
    """A tag to put in a dataset for the row; wildcard rows get a representative member."""
    row_id = str(row["id"]).lower()
    if row_id.startswith("gggg"):
        return 0x00091001
    if row_id == "50xxxxxx":
        return 0x50000022  # Curve Description
    return int(row_id.replace("x", "0"), 16)


def vr_of(tag: int) -> str:
    vr = dictionary_VR(tag) if tag != 0x00091001 else "LO"
    return vr.split(" or ")[0]


def sample_value(vr: str, tag: int) -> Any:
    """A plausible, identifying-looking value of the VR."""
    values: dict[str, Any] = {
        "AE": "SCANNER_AE01",
        "AS": "045Y",
        "CS": "VALUE_A",
        "DA": "20200115",
        "DT": "20200115103000.123456+0100",
        "TM": "103000.5",
        "DS": "12.5",
        "IS": "42",
        "LO": "Jane Doe at General",
        "LT": "Seen by Dr Who at General on 15 January",
        "PN": "DOE^JANE",
        "SH": "ID-7781",
        "ST": "Jane Doe, 12 High Street",
        "UC": "Jane Doe device 7781",
        "UT": "Jane Doe was seen by Dr Who",
        "UR": "http://hospital.example/jane",
        "UI": f"1.2.826.0.1.3680043.9.7777.{tag & 0xFFFFFF}",
        "US": 7,
        "UL": 7,
        "SS": -7,
        "SL": -7,
        "FL": 1.5,
        "FD": 2.5,
    }
    if vr in BINARY:
        return b"\x01\x02\x03\x04"
    return values[vr]


def sample_item() -> Dataset:
    item = Dataset()
    item.CodeValue = "T-D4000"
    item.CodingSchemeDesignator = "SRT"
    item.CodeMeaning = "Abdomen"
    item.PersonName = "DOE^JOHN"
    item.TextValue = "John Doe was seen by Dr Who"
    item.ReferencedSOPClassUID = CT_IMAGE_STORAGE
    item.ReferencedSOPInstanceUID = ITEM_UID
    return item


def make_element(tag: int) -> DataElement:
    vr = vr_of(tag)
    if vr == "SQ":
        return DataElement(tag, "SQ", Sequence([sample_item()]))
    return DataElement(tag, vr, sample_value(vr, tag))


def _place(ds: Dataset, tag: int) -> None:
    if tag == 0x00091001:
        ds.add_new(0x00090010, "LO", "ACME PRIVATE")
    ds.add(make_element(tag))


def build_dataset(tag: int) -> Dataset:
    """The attribute at the top level and one and two sequence levels down."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    if tag >> 16 == 0x0002:
        ds.file_meta.add(make_element(tag))
        ds.SOPInstanceUID = ds.file_meta[tag].value
        return ds
    _place(ds, tag)
    inner = Dataset()
    _place(inner, tag)
    outer = Dataset()
    _place(outer, tag)
    outer.add(DataElement(INNER, "SQ", Sequence([inner])))
    ds.add(DataElement(OUTER, "SQ", Sequence([outer])))
    return ds


def expected(row: dict[str, Any], options: DeidOptions) -> tuple[str, str | None]:
    """(action code, column that asked for C), from the table, the options and the types."""
    enabled = {column for name, column in COLUMN_OF.items() if getattr(options, name)}
    by_option = {c: row[c] for c in enabled if row.get(c)}
    cleaners = [c for c, code in by_option.items() if code == "C"]
    if cleaners:
        for column in ("rtnLongModifDatesOpt", "cleanGraphOpt"):
            if column in cleaners:
                return "C", column
        return "C", cleaners[0]
    if by_option:
        return "K", None
    code = str(row["basicProfile"])
    if "/" not in code:
        return code, None
    allowed = code.replace("*", "").split("/")
    level = STRICTEST_TYPE[int(row["id"], 16)].strictest
    if level == 1:
        return ("U" if "U" in allowed else "D"), None
    if level == 2:
        return ("Z" if "Z" in allowed else "D"), None
    return ("X" if "X" in allowed else "Z"), None


def _is_empty(element: DataElement) -> bool:
    value = element.value
    return value is None or len(value) == 0


def _locations(copy: Dataset, tag: int) -> list[Dataset | None]:
    """The datasets of the copy where the attribute was placed (None where a level is gone)."""
    if tag >> 16 == 0x0002:
        return [copy.file_meta]
    levels: list[Dataset | None] = [copy]
    outer = copy[OUTER].value[0] if OUTER in copy and copy[OUTER].value else None
    levels.append(outer)
    inner = None
    if outer is not None and INNER in outer and outer[INNER].value:
        inner = outer[INNER].value[0]
    levels.append(inner)
    return levels


def _check_sequence(action: str, element: DataElement, options: DeidOptions) -> None:
    items = element.value
    if action == "Z":
        assert len(items) == 0
        return
    assert len(items) == 1
    item = items[0]
    assert str(item.PersonName) != "DOE^JOHN"
    assert item.get("TextValue") != "John Doe was seen by Dr Who"
    remapped = remap_uid(SECRET, ITEM_UID)
    assert item.ReferencedSOPInstanceUID == (ITEM_UID if options.retain_uids else remapped)
    assert item.ReferencedSOPClassUID == CT_IMAGE_STORAGE
    if action == "D":
        # dummy mode: even the coded text is replaced, the structure stays
        assert item.CodeMeaning != "Abdomen"
    else:
        assert (item.CodeValue, item.CodeMeaning) == ("T-D4000", "Abdomen")


def _check_value(
    action: str, column: str | None, original: Any, element: DataElement, shift: int | None
) -> None:
    vr = element.VR
    value = element.value
    if action == "Z":
        assert _is_empty(element)
    elif action == "K":
        assert value == original
    elif action == "D":
        assert not _is_empty(element)
        assert str(value) != str(original)
    elif action == "U":
        assert vr == "UI"
        assert value == remap_uid(SECRET, original)
        assert value.startswith("2.25.")
    elif action == "C" and column == "rtnLongModifDatesOpt":
        assert shift is not None and -3650 <= shift <= -365
        if vr == "DA":
            assert value == shift_date(original, shift) != original
        elif vr == "DT":
            assert value == shift_datetime(original, shift) != original
        elif vr in BINARY:
            assert value != original and not any(value)
        else:  # TM and the UTC offset: a whole-day shift keeps them
            assert value == original
    elif action == "C":
        assert value != original
        if vr in BINARY:
            assert not any(value)
    else:  # pragma: no cover - the table holds no other code
        raise AssertionError(f"unexpected action {action}")


def _conformance_cases() -> list[Any]:
    cases = []
    for row in ROWS:
        for name, options in OPTION_SETS.items():
            cases.append(pytest.param(row, options, id=f"{_row_id(row)}-{name}"))
    return cases


@pytest.mark.parametrize(("row", "options"), _conformance_cases())
def test_row_conforms(row: dict[str, Any], options: DeidOptions) -> None:
    tag = concrete_tag(row)
    source = build_dataset(tag)
    result = deidentify(source, secret=SECRET, options=options)
    action, column = expected(row, options)
    original = make_element(tag).value
    seen_uids = set()
    for level, location in enumerate(_locations(result.dataset, tag)):
        assert location is not None, f"the sequence holding level {level} disappeared"
        if action == "X":
            assert tag not in location, f"level {level} kept an attribute to remove"
            if tag == 0x00091001:
                assert not any(e.tag.is_private for e in location)
            continue
        assert tag in location, f"level {level} lost an attribute the profile keeps"
        element = location[tag]
        if element.VR == "SQ":
            _check_sequence(action, element, options)
        else:
            _check_value(action, column, original, element, result.date_shift_days)
        if element.VR == "UI":
            seen_uids.add(element.value)
    assert len(seen_uids) <= 1, "one original UID mapped to several UIDs"


def test_every_row_is_generated() -> None:
    assert len(ROWS) == len(default_profile()) == 621
    assert len(_conformance_cases()) == len(ROWS) * len(OPTION_SETS)


def test_every_combined_code_has_a_curated_type() -> None:
    combined = {int(r["id"], 16) for r in ROWS if "/" in str(r["basicProfile"])}
    assert len(combined) == 49
    assert combined == set(STRICTEST_TYPE)
    assert all(entry.strictest in (1, 2, 3) and entry.source for entry in STRICTEST_TYPE.values())


def test_nesting_containers_are_not_in_the_table() -> None:
    profile = default_profile()
    assert profile.lookup(OUTER) is None and profile.lookup(INNER) is None


def test_wildcard_rows_match_only_their_repeating_groups() -> None:
    profile = default_profile()
    assert profile.lookup(0x50000022).name == "Curve Data"
    assert profile.lookup(0x501E3000).name == "Curve Data"
    assert profile.lookup(0x50200022) is None  # beyond 501E: not a repeating curve group
    assert profile.lookup(0x60024000).name == "Overlay Comments"
    assert profile.lookup(0x60003000).name == "Overlay Data"
    assert profile.lookup(0x60010010) is None  # odd group: private, not an overlay
    assert profile.lookup(0x60000010) is None  # overlay rows: not listed themselves


def test_options_that_exclude_each_other_are_refused() -> None:
    with pytest.raises(ValueError, match="alternatives"):
        DeidOptions(retain_full_dates=True)


def test_overlay_group_follows_its_data_row() -> None:
    source = Dataset()
    source.add_new(0x60000010, "US", 4)  # Overlay Rows
    source.add_new(0x60000011, "US", 4)  # Overlay Columns
    source.add_new(0x60000022, "LO", "Jane Doe's marker")  # Overlay Description
    source.add_new(0x60003000, "OW", b"\xff\xff")
    kept = deidentify(source, secret=SECRET).dataset
    assert kept[0x60000010].value == 4 and kept[0x60003000].value == b"\x00\x00"
    assert kept[0x60000022].value != "Jane Doe's marker"
    removed = deidentify(source, secret=SECRET, options=OPTION_SETS["no-clean-graphics"])
    assert not any(e.tag.group == 0x6000 for e in removed.dataset)


def test_private_attributes_are_removed_at_every_depth() -> None:
    source = build_dataset(0x00091001)
    source[OUTER].value[0].add_new(0x00111010, "LO", "ACME")
    source[OUTER].value[0].add_new(0x00111001, "SQ", Sequence([sample_item()]))
    copy = deidentify(source, secret=SECRET).dataset

    def walk(ds: Dataset) -> None:
        for element in ds:
            assert not element.tag.is_private
            if element.VR == "SQ":
                for item in element.value:
                    walk(item)

    walk(copy)


def test_the_callers_dataset_is_not_changed() -> None:
    source = build_dataset(0x00100010)
    source.PatientID = "PID-1"
    source.StudyDate = "20200115"
    before = source.to_json_dict()
    deidentify(source, secret=SECRET)
    assert source.to_json_dict() == before
