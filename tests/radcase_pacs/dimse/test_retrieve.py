"""C-MOVE (PS3.4 C.4.2) to DCMTK's storescp and C-GET (PS3.4 C.4.3) to DCMTK's getscu and
pynetdicom: every instance delivered once, compressed instances decompressed for receivers
that take only uncompressed data, unknown destinations refused with 0xA801."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from radcase_pacs.dimse.server import DimseServer, no_delay
from storage.archive import Archive
from tests.factories import CORPUS_DIR, make_instance, to_bytes
from tests.radcase_pacs.dimse.conftest import StoreScp, address, run


def read(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


@pytest.fixture
def study(archive: Archive) -> tuple[str, dict[str, list[str]]]:
    """A study of two series (6 and 4 instances); returns its UID and SOP UIDs by series."""
    study_uid = generate_uid()
    series: dict[str, list[str]] = {}
    for count in (6, 4):
        series_uid = generate_uid()
        for number in range(1, count + 1):
            ds = make_instance(study_uid=study_uid, series_uid=series_uid, instance_number=number)
            archive.ingest(io.BytesIO(to_bytes(ds)))
            series.setdefault(series_uid, []).append(ds.SOPInstanceUID)
    return study_uid, series


@pytest.mark.e2e
def test_movescu_of_a_study_delivers_every_instance_to_the_destination(
    start_dimse: Callable[..., DimseServer],
    storescp: StoreScp,
    study: tuple[str, dict[str, list[str]]],
) -> None:
    server = start_dimse(dimse_peers=f"DEST=127.0.0.1:{storescp.port}")
    study_uid, series = study
    result = run(
        "movescu",
        "-S",
        "-aem",
        "DEST",
        *address(server),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study_uid}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    expected = {uid for uids in series.values() for uid in uids}
    received = storescp.wait_for(len(expected))
    assert sorted(str(read(p).SOPInstanceUID) for p in received) == sorted(expected)


def test_a_move_to_an_unknown_destination_is_refused_with_a801(
    start_dimse: Callable[..., DimseServer], study: tuple[str, dict[str, list[str]]]
) -> None:
    server = start_dimse(dimse_peers="KNOWN=127.0.0.1:1")
    result = run(
        "movescu",
        "-v",
        "-S",
        "-aem",
        "NOBODY",
        *address(server),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={study[0]}",
    )
    # DCMTK names status 0xA801 "Refused: MoveDestinationUnknown".
    assert "Refused: MoveDestinationUnknown" in result.stdout + result.stderr

    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="RADCASE")
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study[0]
    responses = list(assoc.send_c_move(query, "NOBODY", StudyRootQueryRetrieveInformationModelMove))
    assert [int(status.Status) for status, _ in responses] == [0xA801]
    assoc.release()


def test_getscu_of_a_series_delivers_every_instance(
    dimse: DimseServer, study: tuple[str, dict[str, list[str]]], tmp_path: Path
) -> None:
    study_uid, series = study
    series_uid, sop_uids = next(iter(series.items()))
    out = tmp_path / "got"
    out.mkdir()
    result = run(
        "getscu",
        "-S",
        *address(dimse),
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=SERIES",
        "-k",
        f"StudyInstanceUID={study_uid}",
        "-k",
        f"SeriesInstanceUID={series_uid}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    received = sorted(str(read(p).SOPInstanceUID) for p in out.iterdir())
    assert received == sorted(sop_uids)


@pytest.mark.parametrize(
    "name", ["JPEG2000.dcm", "SC_rgb_rle.dcm", "MR_small_jpeg_ls_lossless.dcm"]
)
def test_a_compressed_instance_is_decompressed_for_a_receiver_of_uncompressed_data(
    name: str, dimse: DimseServer, archive: Archive, tmp_path: Path
) -> None:
    """getscu proposes only uncompressed syntaxes by default; the pixels it receives equal
    pydicom's decoding of the original."""
    source = CORPUS_DIR / name
    original = read(source)
    archive.ingest(io.BytesIO(source.read_bytes()))
    out = tmp_path / "got"
    out.mkdir()
    result = run(
        "getscu",
        "-S",
        *address(dimse),
        "-od",
        str(out),
        "-k",
        "QueryRetrieveLevel=IMAGE",
        "-k",
        f"StudyInstanceUID={original.StudyInstanceUID}",
        "-k",
        f"SeriesInstanceUID={original.SeriesInstanceUID}",
        "-k",
        f"SOPInstanceUID={original.SOPInstanceUID}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (received_path,) = list(out.iterdir())
    received = read(received_path)
    assert not received.file_meta.TransferSyntaxUID.is_compressed
    assert np.array_equal(received.pixel_array, original.pixel_array)


def test_a_c_get_sends_what_it_can_and_counts_an_undecodable_instance_as_failed(
    dimse: DimseServer, archive: Archive
) -> None:
    """A JPEG whose bits the installed decoders refuse, for a receiver of uncompressed data
    only: that one sub-operation fails, the rest of the series still arrives, and the final
    status says so (PS3.4 C.4.3.3.1, 0xB000)."""
    study_uid, series_uid = generate_uid(), generate_uid()
    good = make_instance(study_uid=study_uid, series_uid=series_uid)
    bad = read(CORPUS_DIR / "JPEG-lossy.dcm")
    bad.StudyInstanceUID, bad.SeriesInstanceUID = study_uid, series_uid
    bad.SOPInstanceUID = bad.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for ds in (good, bad):
        archive.ingest(io.BytesIO(to_bytes(ds)))
    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset.SOPInstanceUID)
        return 0x0000

    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.add_requested_context(SecondaryCaptureImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate(
        "127.0.0.1",
        dimse.port,
        ae_title="RADCASE",
        ext_neg=[
            build_role(CTImageStorage, scp_role=True),
            build_role(SecondaryCaptureImageStorage, scp_role=True),
        ],
        evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_CONN_OPEN, no_delay)],
    )
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    statuses = list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
    assoc.release()
    final = statuses[-1][0]
    assert final.Status == 0xB000
    assert final.NumberOfCompletedSuboperations == 1
    assert final.NumberOfFailedSuboperations == 1
    assert received == [good.SOPInstanceUID]


@pytest.mark.e2e
def test_a_move_of_a_compressed_instance_keeps_its_syntax_when_the_destination_takes_it(
    start_dimse: Callable[..., DimseServer], storescp: StoreScp, archive: Archive
) -> None:
    source = CORPUS_DIR / "JPEG2000.dcm"
    original = read(source)
    archive.ingest(io.BytesIO(source.read_bytes()))
    server = start_dimse(dimse_peers=f"DEST=127.0.0.1:{storescp.port}")
    result = run(
        "movescu",
        "-S",
        "-aem",
        "DEST",
        *address(server),
        "-k",
        "QueryRetrieveLevel=STUDY",
        "-k",
        f"StudyInstanceUID={original.StudyInstanceUID}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (received_path,) = storescp.wait_for(1)
    received = read(received_path)
    assert received.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert received.PixelData == original.PixelData


def test_pynetdicom_c_get_reports_counts_and_honours_cancel(
    dimse: DimseServer, archive: Archive
) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    for number in range(1, 41):
        ds = make_instance(study_uid=study_uid, series_uid=series_uid, instance_number=number)
        archive.ingest(io.BytesIO(to_bytes(ds)))
    received: list[str] = []

    def on_store(event: evt.Event) -> int:
        received.append(event.dataset.SOPInstanceUID)
        return 0x0000

    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate(
        "127.0.0.1",
        dimse.port,
        ae_title="RADCASE",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, on_store), (evt.EVT_CONN_OPEN, no_delay)],
    )
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    statuses = list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))
    final = statuses[-1][0]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == 40
    assert final.NumberOfFailedSuboperations == 0
    assert sorted(received) == sorted({*received}) and len(received) == 40
    pending = [s for s, _ in statuses[:-1]]
    assert [int(s.NumberOfRemainingSuboperations) for s in pending] == list(range(39, -1, -1))

    received.clear()
    cx = next(
        c
        for c in assoc.accepted_contexts
        if c.abstract_syntax == StudyRootQueryRetrieveInformationModelGet
    )
    cancelled = []
    for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet, msg_id=7):
        cancelled.append(int(status.Status))
        if len(cancelled) == 1:
            assoc.send_c_cancel(7, cx.context_id)
    assert cancelled[-1] == 0xFE00
    assert len(received) < 40
    assoc.release()
