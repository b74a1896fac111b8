"""The rules written once in storage and used by every layer: an element's value as text, the
tenant name, the UID and LIKE escaping."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from storage.archive import Archive
from storage.blobs.filesystem import FilesystemBlobStore
from storage.cache.memory import MemoryCache
from storage.database.base import Database, like_escape
from storage.dicom_text import UNDECODABLE, attribute_text, element_text, value_text
from storage.index.sqlite import SqliteIndex
from storage.query import is_valid_uid
from storage.stores import Stores
from storage.tenants import is_valid_tenant


def undecodable(keyword_tag: int) -> Dataset:
    """A data set whose element at ``keyword_tag`` says VR US but holds three bytes."""
    ds = Dataset()
    tag = Tag(keyword_tag)
    ds._dict[tag] = RawDataElement(tag, "US", 3, b"abc", 0, False, True)
    return ds


def test_values_read_as_their_encoded_text() -> None:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.StudyDescription = "  chest  "
    ds.AccessionNumber = ""
    assert attribute_text(ds, "PatientName") == "Doe^Jane"
    assert attribute_text(ds, "ImageType") == "ORIGINAL\\PRIMARY"
    assert attribute_text(ds, "StudyDescription") == "chest"
    assert attribute_text(ds, "AccessionNumber") == ""
    assert attribute_text(ds, "Modality") == ""
    assert value_text(b"CT ") == "CT " and value_text(None) == ""
    assert value_text(("1.2", "1.3")) == "1.2\\1.3"
    assert element_text(DataElement(0x00100020, "LO", " 12345 ")) == "12345"


def test_an_undecodable_value_raises_one_of_the_decoding_errors() -> None:
    with pytest.raises(UNDECODABLE):
        attribute_text(undecodable(0x00100020), "PatientID")


def test_tenant_names_are_lowercase_words_and_nothing_else() -> None:
    for good in ("default", "hospital-a", "h_2", "0", "a" * 63):
        assert is_valid_tenant(good), good
    for bad in ("", "Hospital", "-a", "_a", "a/b", "a b", "a" * 64, "default\n"):
        assert not is_valid_tenant(bad), bad


def test_an_archive_refuses_a_tenant_name_with_a_trailing_newline(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid tenant"):
        Archive(
            Stores(
                index=SqliteIndex(tmp_path / "index.sqlite3"),
                blobs=FilesystemBlobStore(tmp_path / "blobs"),
                cache=MemoryCache(),
            ),
            tenant="default\n",
        )


def test_uids_are_dotted_numbers_without_leading_zeros() -> None:
    assert is_valid_uid("1.2.840.10008.1.2.1") and is_valid_uid("0.0")
    for bad in ("", "1.02", "1..2", "1.2.", "1.2\n", "1.2a", "1." + "1" * 63):
        assert not is_valid_uid(bad), bad


def test_like_escaping_matches_the_text_literally(database: Database) -> None:
    database.migrate("like_version", [["CREATE TABLE words (word TEXT)"]])
    words = ["100%", "1000", "a_b", "axb", "c\\d", "c\\\\d"]
    with database.transaction() as cur:
        for word in words:
            cur.execute("INSERT INTO words (word) VALUES (?)", (word,))

    def containing(term: str) -> list[str]:
        with database.read() as cur:
            rows = cur.execute(
                "SELECT word FROM words WHERE word LIKE ? ESCAPE '\\' ORDER BY word",
                (f"%{like_escape(term)}%",),
            ).fetchall()
        return [str(r[0]) for r in rows]

    assert containing("0%") == ["100%"]
    assert containing("a_") == ["a_b"]
    assert containing("c\\d") == ["c\\d"]
