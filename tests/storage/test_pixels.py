"""Decoding one frame from the frame table and the stored JSON (storage.pixels and the
Archive's pixel methods): the same pixels as pydicom decodes from the whole file, without
parsing the stored instance and with one ranged read per frame."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pydicom.filereader
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID

from storage.archive import Archive
from storage.blobs.filesystem import FilesystemBlobStore
from storage.cache.memory import MemoryCache
from storage.errors import NotFound, Unavailable
from storage.index.sqlite import SqliteIndex
from storage.pixels import PixelDescription, can_decode, decode_frame, native_bytes
from storage.stores import Stores
from tests.factories import CORPUS_DIR, make_instance, to_bytes

EXPLICIT_LE = "1.2.840.10008.1.2.1"


class CountingBlobStore(FilesystemBlobStore):
    """The filesystem store, recording which reads each request made."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.whole_reads = 0
        self.ranged_reads = 0

    def get(self, key: str) -> bytes:
        self.whole_reads += 1
        return super().get(key)

    def stream(self, key: str) -> Iterator[bytes]:
        self.whole_reads += 1
        return super().stream(key)

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        self.ranged_reads += 1
        return super().read_range(key, offset, length)


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[tuple[Archive, CountingBlobStore]]:
    blobs = CountingBlobStore(tmp_path / "blobs")
    store = Archive(Stores(SqliteIndex(tmp_path / "index.sqlite3"), blobs, MemoryCache()))
    store.open()
    yield store, blobs
    store.close()


def _ingest(archive: Archive, data: bytes) -> Dataset:
    archive.ingest(io.BytesIO(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


def _uids(ds: Dataset) -> tuple[str, str, str]:
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


@pytest.mark.parametrize(
    ("name", "number", "photometric"),
    [
        ("CT_small.dcm", 1, "MONOCHROME2"),
        ("MR_small_bigendian.dcm", 1, "MONOCHROME2"),
        ("liver_1frame.dcm", 1, "MONOCHROME2"),
        ("image_dfl.dcm", 1, "MONOCHROME2"),
        ("SC_ybr_full_422_uncompressed.dcm", 1, "RGB"),
        ("SC_rgb_rle_2frame.dcm", 2, "RGB"),
        ("MR_small_jpeg_ls_lossless.dcm", 1, "MONOCHROME2"),
        ("J2K_pixelrep_mismatch.dcm", 1, "MONOCHROME2"),
        ("SC_rgb_dcmtk_+eb+cy+np.dcm", 1, "RGB"),
        ("examples_ybr_color.dcm", 17, "RGB"),
        ("rtdose.dcm", 9, "MONOCHROME2"),
        ("examples_palette.dcm", 1, "PALETTE COLOR"),
    ],
)
def test_a_decoded_frame_equals_pydicoms_pixels(
    archive: Archive, name: str, number: int, photometric: str
) -> None:
    ds = _ingest(archive, (CORPUS_DIR / name).read_bytes())
    decoded = archive.decoded_frame(*_uids(ds), number)
    expected = (
        ds.pixel_array if int(ds.get("NumberOfFrames", 1) or 1) == 1 else ds.pixel_array[number - 1]
    )
    assert np.array_equal(decoded.array, expected)
    assert decoded.photometric_interpretation == photometric


def test_multi_frame_one_bit_frames_that_start_mid_byte(archive: Archive) -> None:
    ds = make_instance(rows=5, columns=5, frames=3)
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    bits = np.random.default_rng(7).integers(0, 2, size=75, dtype=np.uint8)
    ds.PixelData = np.packbits(bits, bitorder="little").tobytes()
    _ingest(archive, to_bytes(ds))
    for number in (1, 2, 3):
        decoded = archive.decoded_frame(*_uids(ds), number)
        assert np.array_equal(decoded.array, bits.reshape(3, 5, 5)[number - 1])


def test_float_pixel_data(archive: Archive) -> None:
    ds = make_instance(rows=3, columns=4)
    del ds.PixelData
    del ds.BitsStored, ds.HighBit, ds.PixelRepresentation
    ds.BitsAllocated = 32
    values = np.linspace(-1.5, 2.5, 12, dtype="<f4").reshape(3, 4)
    ds.FloatPixelData = values.tobytes()
    _ingest(archive, to_bytes(ds))
    decoded = archive.decoded_frame(*_uids(ds), 1)
    assert decoded.description.pixel_keyword == "FloatPixelData"
    assert np.array_equal(decoded.array, values)


def test_one_frame_is_one_ranged_read_and_no_dicom_is_parsed(
    counted: tuple[Archive, CountingBlobStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, blobs = counted
    ds = _ingest(archive, (CORPUS_DIR / "examples_ybr_color.dcm").read_bytes())
    for name in ("read_partial", "read_dataset", "dcmread", "data_element_generator"):
        monkeypatch.setattr(pydicom.filereader, name, _refuse)
    monkeypatch.setattr(pydicom, "dcmread", _refuse)
    blobs.ranged_reads = blobs.whole_reads = 0
    decoded = archive.decoded_frame(*_uids(ds), 30)
    assert decoded.array.shape == (240, 320, 3)
    assert (blobs.whole_reads, blobs.ranged_reads) == (0, 1)


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("the stored instance was parsed")


def test_frames_out_of_range_are_not_found(archive: Archive) -> None:
    ds = _ingest(archive, (CORPUS_DIR / "SC_rgb_rle_2frame.dcm").read_bytes())
    for number in (0, 3):
        with pytest.raises(NotFound, match="2 frames"):
            archive.decoded_frame(*_uids(ds), number)


def test_an_instance_without_pixel_data_is_not_found(archive: Archive) -> None:
    ds = make_instance()
    del ds.PixelData
    _ingest(archive, to_bytes(ds))
    with pytest.raises(NotFound, match="no pixel data"):
        archive.decoded_frame(*_uids(ds), 1)


def test_undecodable_frames_and_missing_decoders_are_unavailable_with_the_reason(
    archive: Archive,
) -> None:
    broken = _ingest(archive, (CORPUS_DIR / "JPEG-lossy.dcm").read_bytes())
    with pytest.raises(Unavailable, match=r"frame 1 cannot be decoded: .*libjpeg"):
        archive.decoded_frame(*_uids(broken), 1)
    video = make_instance(rows=4, columns=4)
    video.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")
    video.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])
    video["PixelData"].VR = "OB"
    _ingest(archive, to_bytes(video))
    assert not can_decode("1.2.840.10008.1.2.4.100")
    with pytest.raises(Unavailable, match=r"no decoder .*1\.2\.840\.10008\.1\.2\.4\.100"):
        archive.decoded_frame(*_uids(video), 1)


def test_decompressed_frames_are_native_little_endian_rgb(archive: Archive) -> None:
    ds = _ingest(archive, (CORPUS_DIR / "SC_rgb_dcmtk_+eb+cy+np.dcm").read_bytes())
    stored = archive.frames(*_uids(ds), [1])
    assert stored.encapsulated
    native = archive.decompressed_frames(*_uids(ds), stored, [1])
    assert (native.transfer_syntax, native.encapsulated) == (EXPLICIT_LE, False)
    assert native.frames[0] == ds.pixel_array.tobytes()  # YBR_FULL_422 JPEG comes out RGB


def test_pixel_description_from_json_defaults_and_refusals() -> None:
    doc = {
        "00280010": {"vr": "US", "Value": [4]},
        "00280011": {"vr": "US", "Value": [6]},
        "00280100": {"vr": "US", "Value": [16]},
        "00280008": {"vr": "IS", "Value": ["1A"]},
        "7FE00010": {"vr": "OW", "BulkDataURI": "/x/bulk/7FE00010"},
    }
    described = PixelDescription.from_json(doc)
    assert described == PixelDescription(4, 6, 1, 16, 16, 0, "MONOCHROME2", 0, 1, "PixelData")
    with pytest.raises(Unavailable, match="Rows"):
        PixelDescription.from_json({k: v for k, v in doc.items() if k != "00280010"})
    with pytest.raises(NotFound, match="no pixel data"):
        PixelDescription.from_json({k: v for k, v in doc.items() if k != "7FE00010"})


def test_decode_frame_refuses_geometry_too_large_to_allocate() -> None:
    huge = PixelDescription(60000, 60000, 3, 16, 16, 0, "RGB", 0, 1)
    with pytest.raises(Unavailable, match="byte limit"):
        decode_frame(b"", EXPLICIT_LE, huge)


def test_native_bytes_are_little_endian() -> None:
    description = PixelDescription(1, 2, 1, 16, 16, 1, "MONOCHROME2", 0, 1)
    decoded = decode_frame(np.array([-2, 300], "<i2").tobytes(), EXPLICIT_LE, description)
    assert native_bytes(decoded) == np.array([-2, 300], "<i2").tobytes()
