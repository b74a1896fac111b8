"""The JSON :mod:`storage.raw_json` reads from an element's bytes is the JSON pydicom gives
after converting it: on every element of every file pydicom ships, at every depth, and on
the edge cases of each rule; what it declines is left to pydicom."""

from __future__ import annotations

import struct
import warnings
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from storage.dicomfile import UnreadableInstance, read_instance
from storage.raw_json import element_json
from tests.factories import CORPUS_FILES


def _pydicom_json(raw: RawDataElement, dataset: Dataset) -> dict[str, object] | None:
    """pydicom's JSON of the element, or None when pydicom cannot give one either."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            element = convert_raw_data_element(raw, encoding=dataset._character_set, ds=dataset)
            return element.to_json_dict(None, 1024)
        except Exception:
            return None


def _raw_elements(dataset: Dataset) -> Iterator[tuple[RawDataElement, Dataset]]:
    """Every element still in its raw form, at every depth, with the data set holding it."""
    for tag in sorted(dataset.keys()):
        item = dataset.get_item(tag)
        if isinstance(item, RawDataElement):
            yield item, dataset
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                element = dataset[tag]
            except Exception:
                continue
        if element.VR == "SQ":
            for child in element.value or ():
                yield from _raw_elements(child)


def _read(path: Path) -> Dataset:
    """A fresh copy of the file's header (the shared ``corpus_header`` must not be changed,
    and walking the sequences converts elements in place)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True, stop_before_pixels=True)


def test_the_files_pydicom_ships_are_found() -> None:
    assert len(CORPUS_FILES) > 100


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda path: path.name)
def test_every_element_of_a_shipped_file_reads_as_pydicom_reads_it(path: Path) -> None:
    for raw, holder in _raw_elements(_read(path)):
        ours = element_json(raw)
        if ours is not None:
            assert ours == _pydicom_json(raw, holder), f"{path.name} {Tag(raw.tag)}"


def _raw(tag: int, vr: str | None, value: bytes, *, little: bool = True) -> RawDataElement:
    return RawDataElement(Tag(tag), vr, len(value), value, 0, vr is None, little)


def _compare(raw: RawDataElement) -> dict[str, object] | None:
    ours = element_json(raw)
    if ours is not None:
        assert ours == _pydicom_json(raw, Dataset())
    return ours


@pytest.mark.parametrize(
    ("tag", "vr", "value"),
    [
        (0x0020000D, "UI", b"1.2.3\x00"),
        (0x00080016, "UI", b"1.2.3\\1.2.4 "),
        (0x00080060, "CS", b"CT "),
        (0x00080008, "CS", b"ORIGINAL\\PRIMARY\\\\AXIAL"),
        (0x00080008, "CS", b"  "),
        (0x00080020, "DA", b"20240101"),
        (0x00080030, "TM", b"101010.123 "),
        (0x00101010, "AS", b"045Y"),
        (0x00081030, "LO", b" padded front \\second  "),
        (0x00081030, "LO", b"\\"),
        (0x00200010, "SH", b"S1\x00"),
        (0x00324000, "LT", b"one\\value, kept whole  "),
        (0x00200013, "IS", b" 12 "),
        (0x00200013, "IS", b"+5\\-7\\007"),
        (0x00280030, "DS", b"0.5\\.25 "),
        (0x00181050, "DS", b"1.\\-2e3\\ 4E-1"),
        (0x00100010, "PN", b"Doe^John "),
        (0x00100010, "PN", b"Yamada^Tarou=\x59\x61=yamada^tarou\\Roe^Jane=="),
        (0x00080090, "PN", b"  "),
        (0x00280010, "US", struct.pack("<H", 512)),
        (0x00281052, "SS", struct.pack("<2h", -1, 7)),
        (0x00181151, "SL", struct.pack("<l", -70000)),
        (0x00189087, "FD", struct.pack("<2d", 1.5, -0.25)),
        (0x00189306, "FL", struct.pack("<f", 0.1)),
    ],
)
def test_each_rule_gives_what_pydicom_gives(tag: int, vr: str, value: bytes) -> None:
    assert _compare(_raw(tag, vr, value)) is not None


def test_implicit_vr_takes_the_dictionary_vr() -> None:
    assert _compare(_raw(0x00280010, None, struct.pack("<H", 256))) == {
        "vr": "US",
        "Value": [256],
    }


def test_big_endian_numbers() -> None:
    raw = _raw(0x00280010, "US", struct.pack(">H", 256), little=False)
    assert _compare(raw) == {"vr": "US", "Value": [256]}


def test_an_empty_value_has_no_value_key() -> None:
    assert _compare(_raw(0x00100020, "LO", b"")) == {"vr": "LO"}


@pytest.mark.parametrize(
    ("tag", "vr", "value"),
    [
        (0x00100010, "PN", b"Doe^John\\\\Roe"),  # an empty name among several
        (0x00100010, "PN", b"A=B=C=D"),  # four groups
        (0x00081030, "LO", "Müller".encode("latin-1")),  # non-ASCII: depends on the charset
        (0x00081030, "LO", b"\x1b$B"),  # ISO 2022 escape
        (0x00200013, "IS", b"1.0"),  # an IS pydicom reads leniently
        (0x00200013, "IS", b"1\\\\2"),  # an empty number among others
        (0x00280030, "DS", b"nan"),
        (0x00280010, "US", b"\x01\x02\x03"),  # a length that is not a whole number of values
        (0x00091010, None, b"private"),  # implicit private: no dictionary VR
        (0x00280106, None, b"\x00\x00"),  # implicit "US or SS"
        (0x00080005, "UN", b"ISO_IR 100"),
        (0x00020001, "OB", b"\x00\x01"),
    ],
)
def test_what_needs_pydicom_is_declined(tag: int, vr: str | None, value: bytes) -> None:
    assert element_json(_raw(tag, vr, value)) is None


def test_a_declined_element_is_still_converted_at_ingest() -> None:
    """The reader converts what this module declines, so a bad one is still refused."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "1.2.3"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.StudyDescription = "Müller"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    parsed = read_instance(BytesIO(out.getvalue()))
    assert 0x00080018 in parsed.json  # read from its bytes
    assert 0x00081030 not in parsed.json
    assert isinstance(parsed.dataset.get_item(0x00081030), DataElement)  # converted
    with pytest.raises(UnreadableInstance):
        read_instance(BytesIO(out.getvalue()[:-3]))
