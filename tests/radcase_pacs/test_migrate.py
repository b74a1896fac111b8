"""``radcase-pacs migrate``: the embedded default (SQLite + folder) moved to PostgreSQL + S3,
interrupted once, resumed while the source keeps receiving, and verified byte for byte."""

from __future__ import annotations

import io
import signal
import sys
import time
from pathlib import Path

import psycopg
import pytest
from pydicom.uid import generate_uid

from radcase_pacs.deployment import clinical_stores
from radcase_pacs.settings import file_settings
from storage.archive import Archive
from tests.backends import MOTO
from tests.factories import CORPUS_UNIQUE, make_instance, to_bytes
from tests.radcase_pacs.migration.sides import migrate

# Enough that the migration is still copying when it is killed (after 300 copies).
GENERATED = 800
MIGRATE = [sys.executable, "-m", "radcase_pacs", "migrate", "--no-progress"]


def write_config(path: Path, **values: str) -> Path:
    path.write_text("".join(f'{key} = "{value}"\n' for key, value in values.items()))
    return path


def fill(archive: Archive, count: int, tenant: str = "default") -> None:
    scoped = archive.with_tenant(tenant)
    study = series = generate_uid()
    for number in range(count):
        if number % 100 == 0:
            study, series = generate_uid(), generate_uid()
        ds = make_instance(study_uid=study, series_uid=series, instance_number=number)
        scoped.ingest(io.BytesIO(to_bytes(ds)))


def target_count(index_url: str) -> int:
    url, _, schema = index_url.partition("?schema=")
    with psycopg.connect(url) as connection:
        try:
            row = connection.execute(f'SELECT count(*) FROM "{schema}".instances').fetchone()
        except psycopg.errors.UndefinedTable:
            return 0  # the migration has not created the target's tables yet
    return int(row[0]) if row else 0


@pytest.mark.e2e
def test_migrate_to_postgres_and_s3_survives_an_interruption_and_verifies(
    tmp_path: Path, postgres_url: str, s3_bucket_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Credentials the standard AWS way (here moto's dummies), for this process and the CLI.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    source_config = write_config(tmp_path / "source.toml", data_dir=str(tmp_path / "embedded"))
    target_config = write_config(
        tmp_path / "target.toml",
        index_url=postgres_url,
        blob_url=f"s3://{s3_bucket_name}/archive",
        s3_endpoint_url=MOTO.endpoint,
    )
    source = Archive(clinical_stores(file_settings(source_config)))
    source.open()
    for path in CORPUS_UNIQUE:
        try:
            source.ingest(io.BytesIO(path.read_bytes()))
        except Exception:  # refused corpus files (no Study UID...) are simply not there
            continue
    fill(source, GENERATED)
    fill(source, 25, tenant="hospital-b")

    first = migrate(source_config, target_config)
    deadline = time.monotonic() + 120
    while target_count(postgres_url) < 300:
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "migration made no progress"
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)  # no clean shutdown: the worst interruption
    first.wait(timeout=30)
    interrupted_at = target_count(postgres_url)

    fill(source, 10)  # the source keeps receiving studies meanwhile
    second = migrate(source_config, target_config)
    output, _ = second.communicate(timeout=900)
    assert second.returncode == 0, output
    assert "verification: OK" in output

    expected = {tenant: [i for i in _all(source, tenant)] for tenant in ("default", "hospital-b")}
    assert len(expected["default"]) >= GENERATED + 10
    target = Archive(clinical_stores(file_settings(target_config)))
    target.open()
    try:
        for tenant, instances in expected.items():
            lines = [line for line in output.splitlines() if line.startswith(f"tenant {tenant}:")]
            assert lines and f"{len(instances)} verified byte-identical" in lines[0], output
            scoped = target.with_tenant(tenant)
            for instance in instances:
                copy = scoped.stored(instance.sop_uid)
                assert copy is not None
                assert copy.sha256 == instance.sha256
                assert scoped.read(copy) == source.with_tenant(tenant).read(instance)
        assert interrupted_at < target_count(postgres_url)
        assert target_count(postgres_url) == sum(len(v) for v in expected.values())
    finally:
        target.close()
        source.close()


def _all(archive: Archive, tenant: str) -> list:  # type: ignore[type-arg]
    from radcase_pacs.migration.archives import instances

    return list(instances(archive.with_tenant(tenant)))
