"""Interoperability with dicomweb-client (a client written by others), over a real uvicorn
server on a loopback port: STOW-RS, QIDO-RS, WADO-RS instances, metadata and frames, and
DELETE, each checked against the data sets that went in.

What the client sends, read from ``dicomweb_client/web.py`` (0.61):

* ``retrieve_instance(media_types=(("application/dicom", "*"),))`` asks for
  ``multipart/related; type="application/dicom"; transfer-syntax=*``;
* ``retrieve_study`` without media types asks for ``multipart/related;
  type="application/dicom"`` (Explicit VR Little Endian by default, PS3.18 §8.7.3.5.2);
* ``retrieve_instance_frames`` without media types asks for ``multipart/related; type="*/*"``,
  with ``(("image/jp2", uid),)`` for ``multipart/related; type="image/jp2";
  transfer-syntax=uid`` and with ``(("application/octet-stream", "*"),)`` for
  ``multipart/related; type="application/octet-stream"; transfer-syntax=*``;
* non-streamed GETs carry ``Host: <host>`` without the port.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.factories import CORPUS_DIR, make_instance

pytestmark = pytest.mark.backends

CORPUS_FILES = ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm", "SC_rgb_rle_2frame.dcm")
ANY_SYNTAX = (("application/dicom", "*"),)
JPEG2000 = "1.2.840.10008.1.2.4.91"
RLE = "1.2.840.10008.1.2.5"


def _read(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


@dataclass
class Stored:
    """What went in: the generated study (a 3-frame and a 1-frame instance in one series)
    and the corpus files by name."""

    multiframe: Dataset
    single: Dataset
    corpus: dict[str, Dataset]

    @property
    def all(self) -> list[Dataset]:
        return [self.multiframe, self.single, *self.corpus.values()]


def uids(ds: Dataset) -> tuple[str, str, str]:
    return str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)


def value(result: dict[str, Any], key: str) -> Any:
    (only,) = result[key]["Value"]
    return only


def native_frame(ds: Dataset, number: int) -> bytes:
    size = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * int(ds.BitsAllocated) // 8
    return bytes(ds.PixelData[(number - 1) * size : number * size])


def encapsulated_frames(ds: Dataset) -> list[bytes]:
    count = int(ds.get("NumberOfFrames", 1) or 1)
    return list(generate_frames(ds.PixelData, number_of_frames=count))


@pytest.fixture
def dw(live_server: str) -> DICOMwebClient:
    return DICOMwebClient(url=live_server)


@pytest.fixture
def stored(dw: DICOMwebClient) -> Stored:
    study, series = generate_uid(), generate_uid()
    common = {
        "study_uid": study,
        "series_uid": series,
        "patient_name": "Müller^Jürgen",
        "patient_id": "GEN1",
        "charset": "ISO_IR 100",
        "study_description": "GENERATED",
        "rows": 16,
        "columns": 16,
    }
    multiframe = make_instance(instance_number=1, frames=3, **common)
    single = make_instance(instance_number=2, **common)
    for ds in (multiframe, single):
        ds.preamble = b"\x00" * 128  # what dcmread gives a Part 10 file; dcmwrite keeps it
    corpus = {name: _read(CORPUS_DIR / name) for name in CORPUS_FILES}
    result = dw.store_instances([multiframe, single, *corpus.values()])
    referenced = {str(item.ReferencedSOPInstanceUID) for item in result.ReferencedSOPSequence}
    assert referenced == {uids(ds)[2] for ds in [multiframe, single, *corpus.values()]}
    assert "FailedSOPSequence" not in result
    return Stored(multiframe, single, corpus)


# -- STOW-RS --------------------------------------------------------------------------------


def test_store_instances_reports_each_stored_instance_with_its_class(
    dw: DICOMwebClient, live_server: str
) -> None:
    ds = _read(CORPUS_DIR / "CT_small.dcm")
    result = dw.store_instances([ds])
    (item,) = result.ReferencedSOPSequence
    assert item.ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert item.ReferencedSOPClassUID == ds.SOPClassUID
    assert str(item.RetrieveURL).endswith(
        "/dicomweb/studies/{}/series/{}/instances/{}".format(*uids(ds))
    )


def test_storing_the_same_instance_twice_is_not_a_failure(dw: DICOMwebClient) -> None:
    ds = _read(CORPUS_DIR / "MR_small.dcm")
    dw.store_instances([ds])
    again = dw.store_instances([ds])
    assert "FailedSOPSequence" not in again
    assert len(dw.search_for_instances(search_filters={"SOPInstanceUID": ds.SOPInstanceUID})) == 1


def test_a_generated_data_set_without_a_preamble_is_stored_and_found(dw: DICOMwebClient) -> None:
    # dicomweb-client writes it with dcmwrite as it is: File Meta but no preamble or "DICM".
    ds = make_instance(patient_id="NOPREAMBLE")
    result = dw.store_instances([ds])
    assert "FailedSOPSequence" not in result
    (found,) = dw.search_for_instances(search_filters={"PatientID": "NOPREAMBLE"})
    assert value(found, "00080018") == ds.SOPInstanceUID
    back = dw.retrieve_instance(*uids(ds), media_types=ANY_SYNTAX)
    assert back.PixelData == ds.PixelData
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


# -- QIDO-RS --------------------------------------------------------------------------------


def test_search_for_studies_finds_every_stored_study(dw: DICOMwebClient, stored: Stored) -> None:
    results = dw.search_for_studies()
    assert {value(r, "0020000D") for r in results} == {
        str(ds.StudyInstanceUID) for ds in stored.all
    }


def test_search_for_studies_with_filters_and_fields(dw: DICOMwebClient, stored: Stored) -> None:
    ct = stored.corpus["CT_small.dcm"]
    (result,) = dw.search_for_studies(
        search_filters={"PatientID": ct.PatientID, "StudyDate": f"{ct.StudyDate}-"},
        fields=["StudyDescription", "PatientAge"],
    )
    assert value(result, "0020000D") == ct.StudyInstanceUID
    assert value(result, "00100010") == {"Alphabetic": str(ct.PatientName)}
    assert value(result, "00080061") == "CT"
    assert value(result, "00201206") == 1
    assert value(result, "00201208") == 1
    if "StudyDescription" in ct:
        assert value(result, "00081030") == ct.StudyDescription
    assert value(result, "00101010") == ct.PatientAge


def test_search_for_studies_with_fuzzy_matching(dw: DICOMwebClient, stored: Stored) -> None:
    study = str(stored.multiframe.StudyInstanceUID)
    (fuzzy,) = dw.search_for_studies(fuzzymatching=True, search_filters={"PatientName": "jur"})
    assert value(fuzzy, "0020000D") == study
    assert value(fuzzy, "00100010") == {"Alphabetic": "Müller^Jürgen"}
    strict = dw.search_for_studies(fuzzymatching=False, search_filters={"PatientName": "jur"})
    assert strict == []
    (wildcard,) = dw.search_for_studies(search_filters={"PatientName": "MÜLLER*"})
    assert value(wildcard, "0020000D") == study


def test_search_for_studies_pages_with_limit_and_offset(dw: DICOMwebClient, stored: Stored) -> None:
    first = dw.search_for_studies(limit=2, offset=0)
    second = dw.search_for_studies(limit=2, offset=2)
    assert len(first) == len(second) == 2
    everything = dw.search_for_studies(limit=2, get_remaining=True)
    found = [value(r, "0020000D") for r in everything]
    assert len(found) == len(set(found)) == 5
    assert found[:4] == [value(r, "0020000D") for r in first + second]


def test_search_for_series_in_a_study_and_across_studies(
    dw: DICOMwebClient, stored: Stored
) -> None:
    study, series, _ = uids(stored.multiframe)
    (result,) = dw.search_for_series(study_instance_uid=study)
    assert value(result, "0020000E") == series
    assert value(result, "00201209") == 2
    assert value(result, "00080060") == "CT"
    across = dw.search_for_series(search_filters={"Modality": "MR"})
    assert [value(r, "0020000E") for r in across] == [
        stored.corpus["MR_small.dcm"].SeriesInstanceUID
    ]
    assert value(across[0], "00100020") == stored.corpus["MR_small.dcm"].PatientID
    assert len(dw.search_for_series()) == 5


def test_search_for_instances_with_filters_and_fields(dw: DICOMwebClient, stored: Stored) -> None:
    study, series, sop = uids(stored.multiframe)
    results = dw.search_for_instances(
        study_instance_uid=study, series_instance_uid=series, fields=["BitsStored"]
    )
    assert [value(r, "00080018") for r in results] == [sop, stored.single.SOPInstanceUID]
    assert [value(r, "00280008") for r in results[:1]] == [3]
    assert all(value(r, "00280101") == 12 for r in results)
    sop_class = stored.corpus["SC_rgb_rle_2frame.dcm"].SOPClassUID
    by_class = dw.search_for_instances(search_filters={"SOPClassUID": sop_class})
    assert {(value(r, "0020000D"), value(r, "00080018")) for r in by_class} == {
        (ds.StudyInstanceUID, ds.SOPInstanceUID) for ds in stored.all if ds.SOPClassUID == sop_class
    }


# -- WADO-RS instances ----------------------------------------------------------------------


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_retrieve_instance_in_any_syntax_returns_the_stored_data_set(
    dw: DICOMwebClient, stored: Stored, name: str
) -> None:
    original = stored.corpus[name]
    back = dw.retrieve_instance(*uids(original), media_types=ANY_SYNTAX)
    assert uids(back) == uids(original)
    assert back.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert back.PixelData == original.PixelData
    assert back.SOPClassUID == original.SOPClassUID


def test_retrieve_instance_of_a_generated_multiframe_instance(
    dw: DICOMwebClient, stored: Stored
) -> None:
    back = dw.retrieve_instance(*uids(stored.multiframe), media_types=ANY_SYNTAX)
    assert back.NumberOfFrames == 3
    assert back.PixelData == stored.multiframe.PixelData
    assert str(back.PatientName) == "Müller^Jürgen"


def test_retrieve_instance_decompressed_to_explicit_vr_little_endian(
    dw: DICOMwebClient, stored: Stored
) -> None:
    original = stored.corpus["JPEG2000.dcm"]
    back = dw.retrieve_instance(
        *uids(original), media_types=(("application/dicom", ExplicitVRLittleEndian),)
    )
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(back.pixel_array, original.pixel_array)


def test_retrieve_study_returns_each_instance_of_the_study(
    dw: DICOMwebClient, stored: Stored
) -> None:
    study = str(stored.multiframe.StudyInstanceUID)
    instances = dw.retrieve_study(study)
    assert [ds.SOPInstanceUID for ds in instances] == [
        stored.multiframe.SOPInstanceUID,
        stored.single.SOPInstanceUID,
    ]
    assert [ds.PixelData for ds in instances] == [
        stored.multiframe.PixelData,
        stored.single.PixelData,
    ]
    (rle,) = dw.retrieve_study(
        stored.corpus["SC_rgb_rle_2frame.dcm"].StudyInstanceUID, media_types=ANY_SYNTAX
    )
    assert rle.file_meta.TransferSyntaxUID == RLE
    assert rle.PixelData == stored.corpus["SC_rgb_rle_2frame.dcm"].PixelData


# -- WADO-RS metadata -----------------------------------------------------------------------


def assert_same_attributes(metadata: dict[str, Any], original: Dataset) -> None:
    """Every top-level attribute of the data set comes back with the same value; binary
    values above the inline threshold come back as BulkDataURIs instead."""
    bulk = {key for key, element in metadata.items() if "BulkDataURI" in element}
    assert "7FE00010" in bulk
    inline = {key: element for key, element in metadata.items() if key not in bulk}
    restored = Dataset.from_json(inline)
    for element in original:
        key = f"{element.tag:08X}"
        if key in bulk:
            continue
        assert element.tag in restored, element
        assert restored[element.tag].value == element.value, element
    assert "00020010" not in metadata  # File Meta is not part of the data set


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_retrieve_instance_metadata_matches_the_stored_data_set(
    dw: DICOMwebClient, stored: Stored, name: str
) -> None:
    original = stored.corpus[name]
    metadata = dw.retrieve_instance_metadata(*uids(original))
    assert_same_attributes(metadata, original)


def test_retrieve_series_metadata_matches_the_stored_data_sets(
    dw: DICOMwebClient, stored: Stored
) -> None:
    study, series, _ = uids(stored.multiframe)
    metadata = dw.retrieve_series_metadata(study, series)
    assert [value(m, "00080018") for m in metadata] == [
        stored.multiframe.SOPInstanceUID,
        stored.single.SOPInstanceUID,
    ]
    for item, original in zip(metadata, (stored.multiframe, stored.single), strict=True):
        assert_same_attributes(item, original)
        (uri,) = [item["7FE00010"]["BulkDataURI"]]
        assert uri.endswith(
            f"/studies/{study}/series/{series}/instances/{original.SOPInstanceUID}/bulk/7FE00010"
        )


def test_retrieve_study_metadata_covers_the_whole_study(dw: DICOMwebClient, stored: Stored) -> None:
    metadata = dw.retrieve_study_metadata(str(stored.multiframe.StudyInstanceUID))
    assert {value(m, "00080018") for m in metadata} == {
        stored.multiframe.SOPInstanceUID,
        stored.single.SOPInstanceUID,
    }


# -- WADO-RS frames -------------------------------------------------------------------------


def test_native_frames_of_a_multiframe_instance(dw: DICOMwebClient, stored: Stored) -> None:
    ds = stored.multiframe
    frames = dw.retrieve_instance_frames(*uids(ds), frame_numbers=[3, 1])
    assert frames == [native_frame(ds, 3), native_frame(ds, 1)]
    (second,) = dw.retrieve_instance_frames(
        *uids(ds),
        frame_numbers=[2],
        media_types=(("application/octet-stream", ExplicitVRLittleEndian),),
    )
    assert second == native_frame(ds, 2)
    assert len(second) == 16 * 16 * 2


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_native_frame_of_a_corpus_instance(dw: DICOMwebClient, stored: Stored, name: str) -> None:
    ds = stored.corpus[name]
    (frame,) = dw.retrieve_instance_frames(
        *uids(ds), frame_numbers=[1], media_types=(("application/octet-stream", "*"),)
    )
    assert frame == bytes(ds.PixelData)


def test_jpeg2000_frame_in_its_own_media_type(dw: DICOMwebClient, stored: Stored) -> None:
    ds = stored.corpus["JPEG2000.dcm"]
    frames = dw.retrieve_instance_frames(
        *uids(ds), frame_numbers=[1], media_types=(("image/jp2", JPEG2000),)
    )
    assert frames == encapsulated_frames(ds)
    assert frames[0][:4] in (b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0c")  # J2K codestream or JP2


def test_rle_frames_as_octet_stream_in_any_syntax(dw: DICOMwebClient, stored: Stored) -> None:
    ds = stored.corpus["SC_rgb_rle_2frame.dcm"]
    frames = dw.retrieve_instance_frames(
        *uids(ds), frame_numbers=[1, 2], media_types=(("application/octet-stream", "*"),)
    )
    assert frames == encapsulated_frames(ds)
    assert len(frames) == 2


def test_rle_frames_in_their_own_media_type(dw: DICOMwebClient, stored: Stored) -> None:
    ds = stored.corpus["SC_rgb_rle_2frame.dcm"]
    frames = dw.retrieve_instance_frames(
        *uids(ds), frame_numbers=[2], media_types=(("image/dicom-rle", RLE),)
    )
    assert frames == encapsulated_frames(ds)[1:]


def test_frames_without_media_types_come_in_the_stored_syntax(
    dw: DICOMwebClient, stored: Stored
) -> None:
    ds = stored.corpus["SC_rgb_rle_2frame.dcm"]
    frames = dw.retrieve_instance_frames(*uids(ds), frame_numbers=[1, 2])
    assert frames == encapsulated_frames(ds)


def test_encapsulated_frames_asked_for_as_native_are_decompressed(
    dw: DICOMwebClient, stored: Stored
) -> None:
    ds = stored.corpus["SC_rgb_rle_2frame.dcm"]
    frames = dw.retrieve_instance_frames(
        *uids(ds),
        frame_numbers=[2],
        media_types=(("application/octet-stream", ExplicitVRLittleEndian),),
    )
    assert frames == [ds.pixel_array[1].tobytes()]


def test_a_frame_number_past_the_last_frame_is_a_client_error(
    dw: DICOMwebClient, stored: Stored
) -> None:
    with pytest.raises(requests.exceptions.HTTPError) as raised:
        dw.retrieve_instance_frames(*uids(stored.multiframe), frame_numbers=[4])
    assert 400 <= raised.value.response.status_code < 500


# -- DELETE ---------------------------------------------------------------------------------


def test_a_deleted_study_is_gone_from_search_and_retrieval(
    dw: DICOMwebClient, stored: Stored, live_server: str
) -> None:
    study = str(stored.corpus["CT_small.dcm"].StudyInstanceUID)
    response = requests.delete(f"{live_server}/studies/{study}", timeout=10)
    assert response.status_code in (200, 202, 204)
    assert dw.search_for_studies(search_filters={"StudyInstanceUID": study}) == []
    with pytest.raises(requests.exceptions.HTTPError) as raised:
        dw.retrieve_study_metadata(study)
    assert raised.value.response.status_code == 404
    with pytest.raises(requests.exceptions.HTTPError) as raised:
        dw.retrieve_instance(*uids(stored.corpus["CT_small.dcm"]), media_types=ANY_SYNTAX)
    assert raised.value.response.status_code == 404
    assert len(dw.search_for_studies()) == 4


def test_the_client_delete_methods_remove_an_instance_then_its_series(
    dw: DICOMwebClient, stored: Stored
) -> None:
    study, series, sop = uids(stored.multiframe)
    dw.delete_instance(study, series, sop)
    (left,) = dw.search_for_instances(study_instance_uid=study)
    assert value(left, "00080018") == stored.single.SOPInstanceUID
    with pytest.raises(requests.exceptions.HTTPError) as raised:
        dw.retrieve_instance_metadata(study, series, sop)
    assert raised.value.response.status_code == 404
    dw.delete_series(study, series)
    assert dw.search_for_series(study_instance_uid=study) == []
    with pytest.raises(requests.exceptions.HTTPError) as raised:
        dw.retrieve_series_metadata(study, series)
    assert raised.value.response.status_code == 404
