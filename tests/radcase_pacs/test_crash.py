"""Crashes between the blob write and the index commit, and the sweep after them.

Two ways of dying: a process that stores instances dies (``os._exit``, so nothing of the
archive's own clean-up runs) inside the index's ``add_instance`` or in the middle of a blob
write; and a real server under concurrent STOW-RS and C-STORE clients is killed with SIGKILL
at several moments. Afterwards every acknowledged instance is there with its bytes, no index
row lacks its blob, and ``radcase-pacs sweep --grace 0`` removes exactly the blobs no row
references.
"""

from __future__ import annotations

import io
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radcase_pacs.deployment import open_deployment
from radcase_pacs.settings import Settings, load_settings
from storage.archive import is_archive_key
from storage.blobs.base import BlobStore
from storage.index.base import Index
from storage.urls import open_blobs, open_index
from tests.backends import MOTO, free_port
from tests.dicomweb.multipart_util import split_multipart
from tests.factories import CT_IMAGE_STORAGE, make_instance, multipart_body, to_bytes

ROOT = Path(__file__).resolve().parents[2]
CRASHED = 86
TENANT = "default"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_INSTANCE_UID = "00081155"


# == the child process that dies mid-ingest =================================================


def ingest_until_crash() -> None:
    """Run in a child process: store the files named on the command line into the
    deployment the environment describes, dying (``os._exit``) at the N-th call of
    ``RADCASE_TEST_CRASH_IN`` when ``RADCASE_TEST_CRASH_AT`` is N."""
    crash_at = int(os.environ.get("RADCASE_TEST_CRASH_AT", "0"))
    calls = [0]

    def dying(original: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            if calls[0] == crash_at:
                os._exit(CRASHED)
            return original(*args, **kwargs)

        return call

    with open_deployment(load_settings(None)) as deployment:
        place = os.environ.get("RADCASE_TEST_CRASH_IN", "commit")
        if place == "commit":  # the blob is written, the index transaction never happens
            from storage.index.sql import SqlIndex

            SqlIndex.add_instance = dying(SqlIndex.add_instance)  # type: ignore[method-assign]
        else:  # the temporary file is written, the rename into place never happens
            os.replace = dying(os.replace)
        for name in sys.argv[1:]:
            with open(name, "rb") as source:
                deployment.clinical.ingest(source)
    os._exit(0)


def run_child(
    env: dict[str, str], files: list[Path], crash_at: int = 0, place: str = "commit"
) -> int:
    code = "from tests.radcase_pacs.test_crash import ingest_until_crash; ingest_until_crash()"
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, files)],
        cwd=ROOT,
        env={**env, "RADCASE_TEST_CRASH_AT": str(crash_at), "RADCASE_TEST_CRASH_IN": place},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, CRASHED), done.stderr
    return done.returncode


def run_sweep(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "radcase_pacs", "sweep", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


# == looking at the stores apart from the archive ===========================================


@dataclass
class Stores:
    index: Index
    blobs: BlobStore

    def listed(self) -> set[str]:
        return {e.key for e in self.blobs.entries() if is_archive_key(e.key)}

    def orphans(self) -> set[str]:
        listed = self.listed()
        return listed - self.index.referenced_keys(listed)

    def rows_without_blob(self) -> list[str]:
        missing = []
        for tenant in self.index.tenants():
            after = ""
            while page := self.index.stored_instances(tenant, after, 500):
                for row in page:
                    for key in (row.blob_key, row.sidecar_key):
                        if key is not None and not self.blobs.exists(key):
                            missing.append(key)
                after = page[-1].sop_uid
        return missing


@contextmanager
def clinical_stores(settings: Settings) -> Iterator[Stores]:
    index = open_index(settings.resolved_index_url)
    blobs = open_blobs(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    index.open()
    blobs.open()
    try:
        yield Stores(index, blobs)
    finally:
        blobs.close()
        index.close()


def stored_bytes(settings: Settings, sop_uids: dict[str, Dataset]) -> dict[str, bytes]:
    """Each instance's bytes as the archive reads them back."""
    with open_deployment(settings) as deployment:
        archive = deployment.archive
        found = {}
        for sop, ds in sop_uids.items():
            (instance,) = archive.instances(ds.StudyInstanceUID, ds.SeriesInstanceUID, sop)
            found[sop] = archive.read(instance)
        return found


# == crash injection =========================================================================


@pytest.fixture(params=["embedded", "production"])
def deployment(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Settings, dict[str, str]]:
    """Settings, and the same as the environment of a child process."""
    for name in list(os.environ):
        if name.startswith("RADCASE_"):
            monkeypatch.delenv(name)
    env = {"RADCASE_AUTH": "off", "RADCASE_DATA_DIR": str(tmp_path / "data")}
    if request.param == "production":
        env |= {
            "RADCASE_INDEX_URL": request.getfixturevalue("postgres_url"),
            "RADCASE_BLOB_URL": f"s3://{request.getfixturevalue('s3_bucket_name')}/archive",
            "RADCASE_S3_ENDPOINT_URL": MOTO.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(None), {**os.environ, **env}


def instance_files(folder: Path, count: int) -> tuple[list[Path], dict[str, Dataset]]:
    """``count`` instances of one study, every third with a bulk value (a sidecar blob)."""
    folder.mkdir()
    study, files, datasets = generate_uid(), [], {}
    for number in range(count):
        ds = make_instance(study_uid=study, instance_number=number + 1)
        if number % 3 == 2:
            ds.add_new(0x00282000, "OB", bytes([number]) * 3000)  # ICC Profile: bulk data
        path = folder / f"{number}.dcm"
        path.write_bytes(to_bytes(ds))
        files.append(path)
        datasets[str(ds.SOPInstanceUID)] = ds
    return files, datasets


def test_orphans_of_processes_killed_before_the_index_commit_are_exactly_what_the_sweep_removes(
    deployment: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = deployment
    files, datasets = instance_files(tmp_path / "in", 9)
    sops = list(datasets)
    # Dies committing the third instance; then one with a sidecar, on its own.
    assert run_child(env, files[0:4], crash_at=3) == CRASHED
    assert run_child(env, [files[5]], crash_at=1) == CRASHED
    # The first orphan's instance is sent again (its sender saw no acknowledgement): the
    # same key is written again, and committed this time.
    assert run_child(env, [files[2], files[3], files[4], *files[6:]]) == 0
    with clinical_stores(settings) as stores:
        orphans = stores.orphans()
        assert len(orphans) == 2  # the instance of the second death and its bulk sidecar
        assert all(key.split("/")[3].startswith(f"{sops[5]}.") for key in orphans)
        assert stores.rows_without_blob() == []
        listed = stores.listed()
        out = run_sweep(env, "--grace", "0")
        assert "removed 2 orphans" in out
        assert stores.listed() == listed - orphans
        assert stores.orphans() == set()
        assert stores.rows_without_blob() == []
    kept = {sop: ds for sop, ds in datasets.items() if sop != sops[5]}
    read = stored_bytes(settings, kept)
    for number, sop in enumerate(sops):
        if sop in kept:
            assert read[sop] == files[number].read_bytes()


def test_a_process_killed_in_the_middle_of_a_blob_write_leaves_a_partial_write_the_sweep_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("RADCASE_"):
            monkeypatch.delenv(name)
    env = {**os.environ, "RADCASE_AUTH": "off", "RADCASE_DATA_DIR": str(tmp_path / "data")}
    settings = Settings(data_dir=tmp_path / "data")
    files, datasets = instance_files(tmp_path / "in", 2)
    assert run_child(env, files, crash_at=2, place="rename") == CRASHED
    leftovers = list((tmp_path / "data" / "blobs").rglob("*.tmp"))
    assert len(leftovers) == 1
    with clinical_stores(settings) as stores:
        assert len(stores.listed()) == 1
        assert stores.orphans() == set()
        assert "removed 1 abandoned partial writes" in run_sweep(env, "--grace", "0")
        assert not leftovers[0].exists()
        assert len(stores.listed()) == 1
    (first, _) = datasets
    assert stored_bytes(settings, {first: datasets[first]})[first] == files[0].read_bytes()


# == a real server killed with SIGKILL under concurrent STOW-RS and C-STORE ================


@dataclass
class Acknowledged:
    """Every instance whose storage the server confirmed: STOW-RS in ReferencedSOPSequence
    of a 200/202 answer (with the bytes sent), C-STORE with status 0x0000 (the data set)."""

    stow: dict[str, bytes] = field(default_factory=dict)
    cstore: dict[str, Dataset] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    associations: list[Any] = field(default_factory=list)
    """Open associations: aborted once their server is gone, not left to time out."""


@dataclass
class ServerProcess:
    """``radcase-pacs serve`` on the embedded default, in a data folder that outlives it."""

    data: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    http_port: int = 0
    dimse_port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.http_port, self.dimse_port = free_port(), free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RADCASE_")},
            "RADCASE_AUTH": "off",
            "RADCASE_DATA_DIR": str(self.data),
            "RADCASE_DIMSE_PORT": str(self.dimse_port),
            "RADCASE_SWEEP_INTERVAL_SECONDS": "0",
            "RADCASE_LOG_LEVEL": "warning",
            "RADCASE_SHUTDOWN_DRAIN_SECONDS": "0",
        }
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "radcase_pacs", "serve", "--port", str(self.http_port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)

    def end(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.send_signal(how)
            process.wait(timeout=30)


def stow_client(server: ServerProcess, stop: threading.Event, acked: Acknowledged) -> None:
    study = generate_uid()
    with httpx.Client(timeout=20) as client:
        while not stop.is_set():
            sent = {}
            for _ in range(2):
                ds = make_instance(study_uid=study, rows=16, columns=16)
                sent[str(ds.SOPInstanceUID)] = to_bytes(ds)
            body, content_type = multipart_body(list(sent.values()))
            try:
                answer = client.post(
                    f"{server.base}/dicomweb/studies",
                    content=body,
                    headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
                )
            except httpx.TransportError:
                return  # the server is gone
            if answer.status_code in (200, 202):
                items = answer.json().get(REFERENCED_SOP_SEQUENCE, {}).get("Value", [])
                with acked.lock:
                    for item in items:
                        sop = item[REFERENCED_SOP_INSTANCE_UID]["Value"][0]
                        acked.stow[sop] = sent[sop]


def cstore_client(server: ServerProcess, stop: threading.Event, acked: Acknowledged) -> None:
    from pynetdicom import AE, evt

    def no_delay(event: Any) -> None:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    ae = AE(ae_title="CRASHTEST")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 3
    ae.add_requested_context(CT_IMAGE_STORAGE, ExplicitVRLittleEndian)
    assoc = ae.associate(
        "127.0.0.1",
        server.dimse_port,
        ae_title="RADCASE",
        evt_handlers=[(evt.EVT_CONN_OPEN, no_delay)],
    )
    if not assoc.is_established:
        return
    with acked.lock:
        acked.associations.append(assoc)
    study = generate_uid()
    try:
        while not stop.is_set() and assoc.is_established:
            ds = make_instance(study_uid=study, rows=16, columns=16)
            try:
                answer = assoc.send_c_store(ds)
            except RuntimeError:  # the association ended (the server died) just before
                return
            if assoc.is_established and getattr(answer, "Status", None) == 0x0000:
                with acked.lock:
                    acked.cstore[str(ds.SOPInstanceUID)] = ds
    finally:
        if assoc.is_established:
            assoc.release()


def sent_data_set(ds: Dataset) -> bytes:
    """The data set bytes a C-STORE SCU sends in Explicit VR Little Endian."""
    from pynetdicom.dsutils import encode

    encoded = encode(ds, False, True)
    assert encoded is not None
    return encoded


def data_set_of(stored: bytes) -> bytes:
    """The bytes after the preamble and the File Meta Information group (PS3.10 §7.1)."""
    assert stored[128:132] == b"DICM"
    assert stored[132:136] == b"\x02\x00\x00\x00"  # (0002,0000) File Meta Information Group Length
    group_length = int.from_bytes(stored[140:144], "little")
    return stored[144 + group_length :]


def check_acknowledged(settings: Settings, acked: Acknowledged) -> None:
    every = {sop: make_dataset(data) for sop, data in acked.stow.items()} | acked.cstore
    read = stored_bytes(settings, every)
    for sop, sent in acked.stow.items():
        assert read[sop] == sent, f"STOW-RS instance {sop} differs"
    for sop, ds in acked.cstore.items():
        assert data_set_of(read[sop]) == sent_data_set(ds), f"C-STORE instance {sop} differs"


def make_dataset(data: bytes) -> Dataset:
    import pydicom

    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def check_wado(server: ServerProcess, acked: Acknowledged, count: int) -> None:
    """A sample of both kinds, retrieved over WADO-RS from the restarted server."""
    chosen = random.sample(sorted(acked.stow), count) + random.sample(sorted(acked.cstore), count)
    for sop in chosen:
        ds = make_dataset(acked.stow[sop]) if sop in acked.stow else acked.cstore[sop]
        answer = httpx.get(
            f"{server.base}/dicomweb/studies/{ds.StudyInstanceUID}/series/"
            f"{ds.SeriesInstanceUID}/instances/{sop}",
            headers={"Accept": 'multipart/related; type="application/dicom"'},
            timeout=20,
        )
        assert answer.status_code == 200, answer.text
        (part,) = split_multipart(answer)
        if sop in acked.stow:
            assert part.body == acked.stow[sop]
        else:
            assert data_set_of(part.body) == sent_data_set(acked.cstore[sop])


@pytest.mark.e2e
def test_a_server_killed_under_load_keeps_every_acknowledged_instance_and_the_sweep_only_orphans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three SIGKILLs at different moments of concurrent STOW-RS (three clients) and C-STORE
    (two associations), restarting on the same data folder in between (end to end: about
    half a minute)."""
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    for name in list(os.environ):
        if name.startswith("RADCASE_"):
            monkeypatch.delenv(name)
    data = tmp_path / "data"
    server = ServerProcess(data, tmp_path / "server.log")
    acked = Acknowledged()
    for delay in (1.0, 1.7, 2.4):
        server.start()
        stop = threading.Event()
        clients = [
            threading.Thread(target=stow_client, args=(server, stop, acked)) for _ in range(3)
        ]
        clients += [
            threading.Thread(target=cstore_client, args=(server, stop, acked)) for _ in range(2)
        ]
        for client in clients:
            client.start()
        time.sleep(delay)
        server.end(signal.SIGKILL)
        stop.set()
        with acked.lock:
            for association in acked.associations:
                association.abort()
            acked.associations.clear()
        for client in clients:
            client.join(timeout=15)
            assert not client.is_alive(), client.name
    assert len(acked.stow) > 20 and len(acked.cstore) > 20, (len(acked.stow), len(acked.cstore))

    settings = Settings(data_dir=data)
    server.start()
    try:
        check_wado(server, acked, 5)
        check_acknowledged(settings, acked)
    finally:
        server.end(signal.SIGTERM)

    with clinical_stores(settings) as stores:
        assert stores.rows_without_blob() == []
        listed, orphans = stores.listed(), stores.orphans()
        env = {
            **os.environ,
            "RADCASE_AUTH": "off",
            "RADCASE_DATA_DIR": str(data),
            "RADCASE_LOG_LEVEL": "warning",
        }
        out = run_sweep(env, "--grace", "0")
        assert f"removed {len(orphans)} orphans" in out.splitlines()[0], out
        assert stores.listed() == listed - orphans
        assert stores.rows_without_blob() == []
        assert list(stores.blobs.partial_writes()) == []
    check_acknowledged(settings, acked)
