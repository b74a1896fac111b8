"""Storage SCP (PS3.4 Annex B) against DCMTK's storescu and pynetdicom SCUs: every instance
lands as the same data set, visible at once through DICOMweb, and one bad data set never
costs the association."""

from __future__ import annotations

import io
import re
import resource
import signal
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, StoragePresentationContexts, evt
from pynetdicom.sop_class import CTImageStorage
from starlette.testclient import TestClient

from radcase_pacs.dimse.server import DimseServer, no_delay
from storage.archive import Archive
from tests.backends import EMBEDDED, archive_for
from tests.factories import (
    CORPUS_UNIQUE,
    corpus_header,
    dicomweb_app,
    make_instance,
    stow,
    to_bytes,
)
from tests.radcase_pacs.dimse.conftest import (
    address,
    audited_dimse,
    opened_audit_log,
    run,
)
from tests.serving import dcmtk, dcmtk_environment

TRAILING_PADDING = 0xFFFCFFFC


def read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data), force=True)


@pytest.mark.e2e
def test_echoscu_gets_success(dimse: DimseServer) -> None:
    result = run("echoscu", *address(dimse))
    assert result.returncode == 0, result.stderr


def retrieve_single(client: TestClient, ds: Dataset) -> Dataset:
    url = (
        f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    response = client.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"})
    assert response.status_code == 200, response.text
    return read(response.content)


def same_dataset(original: Dataset, stored: Dataset) -> list[str]:
    """Differences between two data sets, ignoring group lengths (a sender may recompute or
    drop them, PS3.5 §7.2) and trailing padding (PS3.10 §7.2: no meaning, may be dropped),
    comparing pixel data as decoded values when the byte order of the encodings differs."""
    differences = []
    ignored = {TRAILING_PADDING}
    original_tags = {e.tag for e in original if e.tag.element != 0 and e.tag not in ignored}
    stored_tags = {e.tag for e in stored if e.tag.element != 0 and e.tag not in ignored}
    for tag in sorted(original_tags ^ stored_tags):
        differences.append(f"{tag} present in only one")
    for tag in sorted(original_tags & stored_tags):
        a, b = original[tag], stored[tag]
        if tag == 0x7FE00010 and a.value != b.value:
            if original.file_meta.TransferSyntaxUID.is_little_endian:
                differences.append("PixelData")
            elif (original.pixel_array != stored.pixel_array).any():
                differences.append("PixelData (decoded)")
        elif a.VR == "SQ":
            if len(a.value) != len(b.value):
                differences.append(f"{tag} item count")
            for i, (x, y) in enumerate(zip(a.value, b.value, strict=False)):
                differences += [f"{tag}[{i}] {d}" for d in same_dataset_items(x, y)]
        elif a.value != b.value:
            differences.append(f"{tag} {a.value!r} != {b.value!r}")
    return differences


def same_dataset_items(a: Dataset, b: Dataset) -> list[str]:
    a.file_meta = b.file_meta = pydicom.dataset.FileMetaDataset()
    a.file_meta.TransferSyntaxUID = b.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return same_dataset(a, b)


# storescu proposes uncompressed syntaxes unless told which compressed one a file is in (it
# cannot decompress without codecs); a modality proposes the syntax it holds.
STORESCU_PROPOSAL = {
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
}


# Files DCMTK itself cannot parse (SC_rgb_jpeg.dcm declares Explicit VR but holds Implicit VR
# data, which pydicom's reader corrects for and DCMTK's does not): storescu never sends them,
# so a pynetdicom SCU sends their bytes unchanged instead.
DCMTK_UNREADABLE = {"SC_rgb_jpeg.dcm"}
BY_STORESCU = [p for p in CORPUS_UNIQUE if p.name not in DCMTK_UNREADABLE]
BY_PYNETDICOM = [p for p in CORPUS_UNIQUE if p.name in DCMTK_UNREADABLE]


def proposal(path: Path) -> str:
    """The storescu flag proposing the transfer syntax ``path`` is encoded in."""
    header = corpus_header(path)
    assert header is not None, path
    syntax = str(header.file_meta.get("TransferSyntaxUID", ""))
    return STORESCU_PROPOSAL.get(syntax, "-x=")


SENT_FILE = re.compile(r"^I: Sending file: (.+)$", re.MULTILINE)
STORE_OUTCOME = re.compile(
    r"^(?:I: Received Store Response \((.+?)\)|E: Store Failed)", re.MULTILINE
)


def store_outcomes(log: str) -> dict[str, str]:
    """Per file storescu sent, its C-STORE outcome as its verbose log tells it (the response
    status, or "failed" when no response came back)."""
    outcomes = {}
    starts = list(SENT_FILE.finditer(log))
    for start, following in zip(starts, [*starts[1:], None], strict=True):
        section = log[start.end() : following.start() if following else len(log)]
        found = STORE_OUTCOME.search(section)
        outcomes[start.group(1)] = (found.group(1) or "failed") if found else "no response"
    return outcomes


@dataclass(frozen=True)
class SentCorpus:
    """The corpus as storescu delivered it: each file's outcome and the archive it went to."""

    outcomes: dict[str, str]
    logs: dict[str, str]
    client: TestClient


@pytest.fixture(scope="module")
def sent_by_storescu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentCorpus]:
    """Every corpus file storescu can read, sent to one server: one storescu process per
    proposed transfer syntax, each sending all of its files over one association, so a
    modality's batch is what arrives (``-nh``: a failed store does not stop the others)."""
    folder = tmp_path_factory.mktemp("storescu")
    groups: dict[str, list[Path]] = {}
    for path in BY_STORESCU:
        groups.setdefault(proposal(path), []).append(path)
    with (
        archive_for(EMBEDDED, folder) as archive,
        opened_audit_log(folder) as audit,
        audited_dimse(folder, archive, audit) as start,
        TestClient(dicomweb_app(archive)) as client,
    ):
        server = start()
        outcomes, logs = {}, {}
        for flag, paths in groups.items():
            args = ["-v", "-nh", "-R", flag, *address(server), *map(str, paths)]
            log = subprocess.run(
                [dcmtk("storescu"), *args],
                env=dcmtk_environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=300,
                check=False,
            ).stdout
            outcomes.update(store_outcomes(log))
            logs.update({str(path): log for path in paths})
        yield SentCorpus(outcomes, logs, client)


@pytest.mark.e2e
@pytest.mark.parametrize("path", BY_STORESCU, ids=lambda p: p.name)
def test_storescu_of_a_corpus_file_lands_as_the_same_dataset(
    path: Path, sent_by_storescu: SentCorpus
) -> None:
    outcome = sent_by_storescu.outcomes.get(str(path), "never sent")
    assert outcome == "Success", sent_by_storescu.logs[str(path)]
    original = read(path.read_bytes())
    stored = retrieve_single(sent_by_storescu.client, original)
    assert same_dataset(original, stored) == []


@pytest.mark.e2e
@pytest.mark.parametrize("path", BY_PYNETDICOM, ids=lambda p: p.name)
def test_a_file_dcmtk_cannot_read_is_accepted_from_pynetdicom(
    path: Path, dimse: DimseServer, client: TestClient
) -> None:
    assert run("storescu", "-R", *address(dimse), str(path)).returncode != 0
    original = read(path.read_bytes())
    status = send_file_unchanged(dimse, path, original)
    assert status == 0x0000
    assert same_dataset(original, retrieve_single(client, original)) == []


def send_file_unchanged(server: DimseServer, path: Path, ds: Dataset) -> int:
    """C-STORE of a file's data set bytes as they are on disk (pynetdicom's chunked send)."""
    from pynetdicom import _config

    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", server.port, ae_title="RADCASE")
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        status = int(assoc.send_c_store(path).Status)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
        assoc.release()
    return status


def test_an_instance_stored_by_c_store_is_found_by_qido_and_the_reverse(
    dimse: DimseServer, client: TestClient
) -> None:
    by_dimse = make_instance(patient_name="DIMSE^FIRST")
    assoc = _associate(dimse)
    assert assoc.send_c_store(by_dimse).Status == 0x0000
    found = client.get("/dicomweb/studies", params={"PatientName": "DIMSE^FIRST"}).json()
    assert [s["0020000D"]["Value"][0] for s in found] == [by_dimse.StudyInstanceUID]

    by_stow = make_instance(patient_name="STOW^FIRST")
    assert stow(client, [to_bytes(by_stow)]).status_code == 200
    results = list(_find(assoc, PatientName="STOW^FIRST"))
    assert [str(r.StudyInstanceUID) for r in results] == [by_stow.StudyInstanceUID]
    assoc.release()


def _associate(server: DimseServer, contexts: list | None = None):  # type: ignore[no-untyped-def]
    ae = AE(ae_title="TESTSCU")
    for cx in contexts or StoragePresentationContexts[:100]:
        ae.add_requested_context(cx.abstract_syntax)
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(
        "127.0.0.1", server.port, ae_title="RADCASE", evt_handlers=[(evt.EVT_CONN_OPEN, no_delay)]
    )
    assert assoc.is_established
    return assoc


def _find(assoc, **keys: str):  # type: ignore[no-untyped-def]
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = ""
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        if status.Status in (0xFF00, 0xFF01):
            yield identifier


def test_a_malformed_dataset_fails_its_c_store_and_the_association_carries_on(
    dimse: DimseServer, archive: Archive
) -> None:
    assoc = _associate(dimse)
    no_study = make_instance()
    del no_study.StudyInstanceUID
    status = assoc.send_c_store(no_study)
    assert status.Status == 0xA900
    assert "StudyInstanceUID" in str(status.get("ErrorComment", "")) or status.Status == 0xA900

    good = make_instance()
    assert assoc.send_c_store(good).Status == 0x0000
    assert assoc.is_established
    assoc.release()
    assert archive.instances(good.StudyInstanceUID)


def test_a_dataset_that_cannot_be_decoded_is_refused_with_c000(
    dimse: DimseServer, tmp_path: Path, archive: Archive
) -> None:
    """A data set whose first element declares more bytes than follow (written to a file that
    pynetdicom sends without decoding it)."""
    ds = make_instance()
    meta_only = Dataset()
    meta_only.file_meta = ds.file_meta
    header = to_bytes(meta_only)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(header + b"\x08\x00\x16\x00UI\xf0\x7f1.2.3")
    from pynetdicom import _config

    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", dimse.port, ae_title="RADCASE")
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's bytes as they are
    try:
        status = assoc.send_c_store(broken)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous
    assert status.Status == 0xC000
    good = make_instance()
    assert assoc.send_c_store(good).Status == 0x0000
    assoc.release()
    assert not _stored(archive, ds.StudyInstanceUID)


def _stored(archive: Archive, study_uid: str) -> bool:
    from storage.errors import NotFound

    try:
        return bool(archive.instances(study_uid))
    except NotFound:
        return False


@pytest.mark.e2e
@pytest.mark.slow
def test_a_thousand_instances_over_one_association_all_arrive_once(
    dimse: DimseServer, archive: Archive, client: TestClient, tmp_path: Path
) -> None:
    """storescu sends a folder of 1,000 instances over one association. (A pynetdicom SCU
    was seen to stall on its own side, the server having received nothing, once in a
    thousand messages on a loaded machine: a client fault, not what this test is about.)"""
    study, series = generate_uid(), generate_uid()
    folder = tmp_path / "thousand"
    folder.mkdir()
    sent = []
    for number in range(1, 1001):
        ds = make_instance(study_uid=study, series_uid=series, instance_number=number)
        (folder / f"{number:04d}.dcm").write_bytes(to_bytes(ds))
        sent.append(ds.SOPInstanceUID)
    result = run("storescu", *address(dimse), "+sd", str(folder), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    stored = [i.sop_uid for i in archive.instances(study)]
    assert len(stored) == len(set(stored)) == 1000
    assert set(stored) == set(sent)
    counts = client.get("/dicomweb/studies", params={"StudyInstanceUID": study}).json()
    assert counts[0]["00201208"]["Value"] == [1000]


@pytest.mark.e2e
@pytest.mark.slow
def test_eight_concurrent_associations_lose_and_duplicate_nothing(
    dimse: DimseServer, archive: Archive, client: TestClient, tmp_path: Path
) -> None:
    """Eight storescu processes at once, one association each, 60 instances apiece.

    Real senders are separate processes (modalities, PACS); pynetdicom SCUs sharing one
    process's threads were seen to stall a request on the client side under load, which
    says nothing about the server, so DCMTK carries this test."""
    study = generate_uid()
    expected: set[str] = set()
    folders = []
    for index in range(8):
        folder = tmp_path / f"sender{index}"
        folder.mkdir()
        series = generate_uid()
        for number in range(60):
            ds = make_instance(study_uid=study, series_uid=series, instance_number=number)
            (folder / f"{number}.dcm").write_bytes(to_bytes(ds))
            expected.add(ds.SOPInstanceUID)
        folders.append(folder)
    senders = [
        subprocess.Popen(
            [dcmtk("storescu"), *address(dimse), "+sd", str(folder)],
            env=dcmtk_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for folder in folders
    ]
    outputs = [sender.communicate(timeout=300)[0] for sender in senders]
    assert [sender.returncode for sender in senders] == [0] * 8, outputs
    stored = [i.sop_uid for i in archive.instances(study)]
    assert len(stored) == len(set(stored)) == len(expected) == 480
    assert set(stored) == expected
    study_row = client.get("/dicomweb/studies", params={"StudyInstanceUID": study}).json()[0]
    assert study_row["00201206"]["Value"] == [8]
    assert study_row["00201208"]["Value"] == [480]


def test_a_full_store_answers_a700_and_the_association_carries_on(
    dimse: DimseServer, archive: Archive
) -> None:
    """A file-size limit (RLIMIT_FSIZE) makes the blob write fail as a full disk would."""
    big = make_instance(rows=512, columns=512)  # 512 KiB of pixel data
    small = make_instance()
    assoc = _associate(dimse)
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))
    try:
        status = assoc.send_c_store(big)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert status.Status == 0xA700
    assert "space" in str(status.ErrorComment)
    assert not _stored(archive, big.StudyInstanceUID)
    assert assoc.send_c_store(small).Status == 0x0000
    assert assoc.send_c_store(big).Status == 0x0000
    assoc.release()
